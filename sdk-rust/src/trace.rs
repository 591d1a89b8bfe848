//! W3C Trace Context for calls: a `traceparent` given to the client goes
//! with every request, so the server's spans (see the server's `otlp_endpoint`)
//! join the caller's trace, e.g. a CI job's.

use tonic::{
    metadata::{Ascii, MetadataValue},
    Request,
};

use crate::{Error, Result};

/// Checks `value` is a W3C `traceparent` (`00-<32 hex trace id>-<16 hex
/// parent id>-<2 hex flags>`, ids not all zero) and makes it a header value.
pub(crate) fn parse_traceparent(value: &str) -> Result<MetadataValue<Ascii>> {
    let bad = || {
        Error::Config(format!(
            "`{value}` is not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)"
        ))
    };
    let parts: Vec<&str> = value.trim().split('-').collect();
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    match parts.as_slice() {
        [version, trace, parent, flags]
            if hex(version, 2)
                && *version != "ff"
                && hex(trace, 32)
                && nonzero(trace)
                && hex(parent, 16)
                && nonzero(parent)
                && hex(flags, 2) =>
        {
            value.trim().to_ascii_lowercase().parse().map_err(|_| bad())
        }
        _ => Err(bad()),
    }
}

/// Puts the `traceparent` on a request.
pub(crate) fn attach<T>(request: &mut Request<T>, traceparent: Option<&MetadataValue<Ascii>>) {
    if let Some(value) = traceparent {
        request.metadata_mut().insert("traceparent", value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_w3c_traceparent_is_accepted() {
        assert_eq!(parse_traceparent(GOOD).unwrap(), GOOD);
    }

    #[test]
    fn a_malformed_traceparent_is_a_config_error() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
        ] {
            assert!(
                matches!(parse_traceparent(bad), Err(Error::Config(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_traceparent_goes_on_the_request() {
        let value = parse_traceparent(GOOD).unwrap();
        let mut request = Request::new(());
        attach(&mut request, Some(&value));
        assert_eq!(request.metadata().get("traceparent").unwrap(), GOOD);
    }

    #[test]
    fn without_one_the_request_has_no_traceparent() {
        let mut request = Request::new(());
        attach(&mut request, None);
        assert!(request.metadata().get("traceparent").is_none());
    }
}
