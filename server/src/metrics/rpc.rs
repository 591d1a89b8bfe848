//! gRPC answers by status code, read from each response's headers: an RPC
//! refused before its first message (every error but one mid-stream) has a
//! trailers-only answer carrying `grpc-status` there; the others carry it
//! in trailers and count as `Streamed`.

use prometheus::IntCounterVec;

/// Counts one response of the service stack (non-gRPC routes are ignored).
#[derive(Clone)]
pub struct RpcResponses(pub IntCounterVec);

impl RpcResponses {
    pub fn observe<B>(&self, response: &http::Response<B>) {
        let headers = response.headers();
        let grpc = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"));
        if !grpc {
            return;
        }
        let code = match headers.get("grpc-status").and_then(|v| v.to_str().ok()) {
            Some(status) => code_name(status),
            None => "Streamed",
        };
        self.0.with_label_values(&[code]).inc();
    }
}

/// The status code's name (`Internal`, `Unavailable`, ...).
fn code_name(status: &str) -> &'static str {
    match status.parse::<i32>().map(tonic::Code::from) {
        Ok(tonic::Code::Ok) => "Ok",
        Ok(tonic::Code::Cancelled) => "Cancelled",
        Ok(tonic::Code::Unknown) | Err(_) => "Unknown",
        Ok(tonic::Code::InvalidArgument) => "InvalidArgument",
        Ok(tonic::Code::DeadlineExceeded) => "DeadlineExceeded",
        Ok(tonic::Code::NotFound) => "NotFound",
        Ok(tonic::Code::AlreadyExists) => "AlreadyExists",
        Ok(tonic::Code::PermissionDenied) => "PermissionDenied",
        Ok(tonic::Code::ResourceExhausted) => "ResourceExhausted",
        Ok(tonic::Code::FailedPrecondition) => "FailedPrecondition",
        Ok(tonic::Code::Aborted) => "Aborted",
        Ok(tonic::Code::OutOfRange) => "OutOfRange",
        Ok(tonic::Code::Unimplemented) => "Unimplemented",
        Ok(tonic::Code::Internal) => "Internal",
        Ok(tonic::Code::Unavailable) => "Unavailable",
        Ok(tonic::Code::DataLoss) => "DataLoss",
        Ok(tonic::Code::Unauthenticated) => "Unauthenticated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(response: http::Response<()>) -> Vec<(String, u64)> {
        let counter = IntCounterVec::new(prometheus::Opts::new("t", "t"), &["code"]).unwrap();
        RpcResponses(counter.clone()).observe(&response);
        let mut out = Vec::new();
        for family in prometheus::core::Collector::collect(&counter) {
            for metric in family.get_metric() {
                out.push((
                    metric.get_label()[0].value().to_string(),
                    metric.get_counter().get_value() as u64,
                ));
            }
        }
        out
    }

    #[test]
    fn a_trailers_only_error_is_counted_by_its_code_name() {
        let response = http::Response::builder()
            .header("content-type", "application/grpc")
            .header("grpc-status", "13")
            .body(())
            .unwrap();
        assert_eq!(counted(response), vec![("Internal".to_string(), 1)]);
    }

    #[test]
    fn a_response_without_status_in_its_headers_counts_as_streamed() {
        let response = http::Response::builder()
            .header("content-type", "application/grpc+proto")
            .body(())
            .unwrap();
        assert_eq!(counted(response), vec![("Streamed".to_string(), 1)]);
    }

    #[test]
    fn a_plain_http_response_is_not_counted() {
        let response = http::Response::builder()
            .header("content-type", "text/plain")
            .body(())
            .unwrap();
        assert_eq!(counted(response), vec![]);
    }
}
