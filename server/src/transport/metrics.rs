//! Counters of the transport layer, registered with the server's
//! Prometheus registry (`/metrics`).

use prometheus::{IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// What the transport layer did, for operators and tests.
#[derive(Clone)]
pub struct TransportMetrics {
    /// Connections being served.
    pub connections_open: IntGauge,
    /// Connections closed at accept, by `reason` (`per_ip`, `total`).
    pub connections_refused: IntCounterVec,
    /// Connections closed by a timeout, by `reason` (`handshake`, `idle`).
    pub connections_timed_out: IntCounterVec,
    /// Request body bytes read from clients (all routes).
    pub request_body_bytes: IntCounter,
}

impl TransportMetrics {
    pub fn new() -> Self {
        Self {
            connections_open: IntGauge::new("connections_open", "Connections being served")
                .expect("valid metric"),
            connections_refused: IntCounterVec::new(
                Opts::new(
                    "connections_refused_total",
                    "Connections closed at accept because of a connection cap",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            connections_timed_out: IntCounterVec::new(
                Opts::new(
                    "connections_timed_out_total",
                    "Connections closed by the handshake or idle timeout",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            request_body_bytes: IntCounter::new(
                "request_body_bytes_total",
                "Request body bytes read from clients",
            )
            .expect("valid metric"),
        }
    }

    /// Adds these metrics to `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.connections_open.clone()))?;
        registry.register(Box::new(self.connections_refused.clone()))?;
        registry.register(Box::new(self.connections_timed_out.clone()))?;
        registry.register(Box::new(self.request_body_bytes.clone()))?;
        Ok(())
    }
}

impl Default for TransportMetrics {
    fn default() -> Self {
        Self::new()
    }
}
