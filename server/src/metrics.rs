//! Prometheus metrics, served as text at `/metrics`.

use prometheus::{
    register_gauge_with_registry, register_histogram_vec_with_registry,
    register_int_counter_vec_with_registry, register_int_counter_with_registry,
    register_int_gauge_vec_with_registry, register_int_gauge_with_registry, Encoder, Gauge,
    HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry, TextEncoder,
};

mod refresh;
mod rpc;

pub use refresh::{record_certificate, refresh};
pub use rpc::RpcResponses;

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    pub executions: IntCounterVec,
    pub duration_seconds: HistogramVec,
    pub fuel: HistogramVec,
    pub cache_hits: IntCounter,
    pub cache_misses: IntCounter,
    pub cache_bytes: IntGauge,
    pub queue_depth: IntGauge,
    pub running: IntGauge,
    pub rate_limited: IntCounterVec,
    pub uploaded_bytes: IntCounter,
    pub redis_fallback_active: IntGauge,
    pub redis_fallback_decisions: IntCounter,
    /// Executions refused by admission (queue full, share or slots busy).
    pub admission_refused: IntCounterVec,
    pub memory_budget_bytes: IntGauge,
    pub memory_admitted_bytes: IntGauge,
    pub cache_entries: IntGauge,
    pub usage_writer_pending: IntGauge,
    pub usage_writer_lag_seconds: Gauge,
    pub data_dir_size_bytes: IntGauge,
    pub data_dir_available_bytes: IntGauge,
    pub tls_cert_not_after: IntGauge,
    pub draining: IntGauge,
    pub build_info: IntGaugeVec,
    /// gRPC answers by status code (see [`RpcResponses`]).
    pub grpc_responses: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let metrics = Self::register();
        metrics
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        // Every refusal reason is exported from the start (at 0), so rates
        // and alerts see a series before the first refusal.
        for reason in ["queue_full", "tenant_share", "server_busy"] {
            metrics.admission_refused.with_label_values(&[reason]);
        }
        for reason in ["per_minute", "per_day", "concurrency"] {
            metrics.rate_limited.with_label_values(&[reason]);
        }
        metrics
    }

    fn register() -> Self {
        let registry = Registry::new_custom(Some("wasmwiz".into()), None).expect("valid prefix");
        let r = &registry;
        Self {
            executions: register_int_counter_vec_with_registry!(
                "executions_total",
                "Executions finished, by outcome and tier",
                &["outcome", "tier"],
                r
            )
            .expect("metric"),
            duration_seconds: register_histogram_vec_with_registry!(
                "execution_duration_seconds",
                "Wall-clock duration of executions",
                &["tier"],
                vec![0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0],
                r
            )
            .expect("metric"),
            fuel: register_histogram_vec_with_registry!(
                "execution_fuel",
                "Fuel consumed by executions",
                &["tier"],
                prometheus::exponential_buckets(1e4, 10.0, 10).expect("buckets"),
                r
            )
            .expect("metric"),
            cache_hits: register_int_counter_with_registry!(
                "module_cache_hits_total",
                "Compiled-module cache hits",
                r
            )
            .expect("metric"),
            cache_misses: register_int_counter_with_registry!(
                "module_cache_misses_total",
                "Compiled-module cache misses",
                r
            )
            .expect("metric"),
            cache_bytes: register_int_gauge_with_registry!(
                "module_cache_bytes",
                "Module bytes in the compiled cache",
                r
            )
            .expect("metric"),
            queue_depth: register_int_gauge_with_registry!(
                "queue_depth",
                "Executions waiting for admission",
                r
            )
            .expect("metric"),
            running: register_int_gauge_with_registry!(
                "running_executions",
                "Executions running now",
                r
            )
            .expect("metric"),
            rate_limited: register_int_counter_vec_with_registry!(
                "rate_limited_total",
                "Requests refused by rate limits, quotas or concurrency",
                &["reason"],
                r
            )
            .expect("metric"),
            uploaded_bytes: register_int_counter_with_registry!(
                "uploaded_bytes_total",
                "Module bytes received",
                r
            )
            .expect("metric"),
            redis_fallback_active: register_int_gauge_with_registry!(
                "redis_fallback_active",
                "1 while rate limits are local because Redis is unreachable",
                r
            )
            .expect("metric"),
            redis_fallback_decisions: register_int_counter_with_registry!(
                "redis_fallback_decisions_total",
                "Limit decisions taken locally because Redis was unreachable",
                r
            )
            .expect("metric"),
            admission_refused: register_int_counter_vec_with_registry!(
                "admission_refused_total",
                "Executions refused by admission, by reason (queue_full, tenant_share, server_busy)",
                &["reason"],
                r
            )
            .expect("metric"),
            memory_budget_bytes: register_int_gauge_with_registry!(
                "memory_budget_bytes",
                "Memory all running executions may be charged together",
                r
            )
            .expect("metric"),
            memory_admitted_bytes: register_int_gauge_with_registry!(
                "memory_admitted_bytes",
                "Memory charged to running executions now",
                r
            )
            .expect("metric"),
            cache_entries: register_int_gauge_with_registry!(
                "module_cache_entries",
                "Modules in the compiled cache",
                r
            )
            .expect("metric"),
            usage_writer_pending: register_int_gauge_with_registry!(
                "usage_writer_pending",
                "Usage-record writes queued and not yet committed",
                r
            )
            .expect("metric"),
            usage_writer_lag_seconds: register_gauge_with_registry!(
                "usage_writer_lag_seconds",
                "How long the oldest write of the batch being committed has waited (between batches: the last batch's)",
                r
            )
            .expect("metric"),
            data_dir_size_bytes: register_int_gauge_with_registry!(
                "data_dir_filesystem_size_bytes",
                "Size of the filesystem holding the data dir",
                r
            )
            .expect("metric"),
            data_dir_available_bytes: register_int_gauge_with_registry!(
                "data_dir_filesystem_available_bytes",
                "Bytes the server may still write on the filesystem holding the data dir",
                r
            )
            .expect("metric"),
            tls_cert_not_after: register_int_gauge_with_registry!(
                "tls_cert_not_after_timestamp_seconds",
                "Expiry (Unix time) of the served TLS certificate; 0 without TLS",
                r
            )
            .expect("metric"),
            draining: register_int_gauge_with_registry!(
                "draining",
                "1 while the replica drains for shutdown",
                r
            )
            .expect("metric"),
            build_info: register_int_gauge_vec_with_registry!(
                "build_info",
                "Always 1; the server's version as a label",
                &["version"],
                r
            )
            .expect("metric"),
            grpc_responses: register_int_counter_vec_with_registry!(
                "grpc_responses_total",
                "gRPC answers by status code (Streamed: the status came in trailers)",
                &["code"],
                r
            )
            .expect("metric"),
            registry,
        }
    }

    /// The registry, for metrics defined by other modules (transport).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding metrics");
        String::from_utf8(out).expect("metrics are UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
