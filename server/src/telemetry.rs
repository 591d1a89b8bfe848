//! OpenTelemetry traces, exported over OTLP/gRPC when `otlp_endpoint` is
//! set: every `tracing` span becomes an OpenTelemetry span (one per RPC,
//! with children for auth, limits, module resolution, compile, admission,
//! run and usage commits), and an RPC whose client sent a W3C
//! `traceparent` joins the client's trace.

use http::HeaderMap;
use opentelemetry::{
    propagation::{Extractor, TextMapPropagator},
    trace::TracerProvider as _,
};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::{propagation::TraceContextPropagator, trace::SdkTracerProvider, Resource};
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{registry::LookupSpan, Layer};

/// A provider batching spans to the OTLP collector at `endpoint`. Must be
/// built inside the Tokio runtime (the gRPC client lives on it); call
/// `shutdown` on it before exiting to send what is still buffered.
pub fn otlp_provider(endpoint: &str) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(Resource::builder().with_service_name("wasmwiz").build())
        .build())
}

/// The `tracing` layer turning spans into `provider`'s spans.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl Layer<S>
where
    S: Subscriber + for<'span> LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("wasmwiz"))
}

/// Makes `span` a child of the client's span named by a W3C `traceparent`
/// header (and `tracestate`); without one, or without tracing, nothing
/// changes.
pub fn adopt_remote_parent(span: &tracing::Span, headers: &HeaderMap) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    // Without the OpenTelemetry layer (no `otlp_endpoint`) there is nothing
    // to attach the parent to.
    let _ = span.set_parent(parent);
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}
