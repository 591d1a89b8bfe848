//! OpenTelemetry traces of a real server, received by an in-process OTLP
//! collector (a tonic server implementing the collector's trace service):
//! one `Run` sent with a W3C `traceparent` is one span under the client's
//! span, with a child per step.

mod support;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        trace_service_server::{TraceService, TraceServiceServer},
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    },
    trace::v1::Span,
};
use support::*;
use tonic::{Request, Response, Status};
use tracing_subscriber::{filter::Targets, prelude::*};
use wasmwiz_server::telemetry;

/// Every span the collector received.
#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

/// The collector, listening on 127.0.0.1; its URL.
async fn start_collector(collector: Collector) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(TraceServiceServer::new(collector))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}

const CLIENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_run_is_one_span_under_the_clients_with_a_child_per_step() {
    let collector = Collector::default();
    let url = start_collector(collector.clone()).await;
    let provider = telemetry::otlp_provider(&url).unwrap();
    tracing_subscriber::registry()
        .with(
            telemetry::layer(&provider)
                .with_filter(Targets::new().with_target("wasmwiz_server", tracing::Level::INFO)),
        )
        .init();

    let server = TestServer::start().await;
    let key = server.create_key("traces@test.local", "free", false).await;
    let mut c = clients(&server, Some(&key)).await;
    let mut request = Request::new(run_bytes(guest("hello")));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")
            .parse()
            .unwrap(),
    );
    let ran = collect(c.exec.run(request).await.unwrap().into_inner())
        .await
        .unwrap();
    assert_eq!(ran.outcome(), wasmwiz_proto::v1::Outcome::Success);

    // The Run's spans, once they have all been exported.
    let ours = |spans: &[Span]| -> Vec<Span> {
        spans
            .iter()
            .filter(|s| hex::encode(&s.trace_id) == CLIENT_TRACE)
            .cloned()
            .collect()
    };
    let mut spans = Vec::new();
    for _ in 0..100 {
        let flushing = provider.clone();
        tokio::task::spawn_blocking(move || flushing.force_flush())
            .await
            .unwrap()
            .unwrap();
        spans = ours(&collector.0.lock().unwrap());
        if spans
            .iter()
            .any(|s| s.name == "/wasmwiz.v1.ExecutionService/Run")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let by_id: HashMap<Vec<u8>, &Span> = spans.iter().map(|s| (s.span_id.clone(), s)).collect();
    let rpc = spans
        .iter()
        .find(|s| s.name == "/wasmwiz.v1.ExecutionService/Run")
        .unwrap_or_else(|| panic!("no Run span in {spans:?}"));
    assert_eq!(hex::encode(&rpc.parent_span_id), CLIENT_SPAN);
    let path_of = |span: &Span| -> Vec<String> {
        let mut path = vec![span.name.clone()];
        let mut at = span;
        while let Some(parent) = by_id.get(&at.parent_span_id) {
            path.insert(0, parent.name.clone());
            at = parent;
        }
        path
    };
    let mut tree: Vec<String> = spans
        .iter()
        .filter(|s| s.span_id != rpc.span_id)
        .map(|s| path_of(s)[1..].join(" > "))
        .collect();
    tree.sort();
    assert_eq!(
        tree,
        vec![
            "admission",
            "auth",
            "limits",
            "resolve_module",
            "resolve_module > compile",
            "run",
            // hello ends in its first slice: one row, admission and end at once.
            "usage_commit",
        ]
    );
}
