//! The HTTP side of the port: the playground (assets embedded in the
//! binary), bundled example modules, `/healthz`, `/readyz` and `/metrics`.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

use crate::api::AppState;

/// Content-Security-Policy of the playground: same-origin everything, no
/// inline code, never framed.
pub const CSP: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const INDEX_HTML: &[u8] = include_bytes!("../../assets/playground/index.html");
const PLAYGROUND_JS: &[u8] = include_bytes!("../../assets/playground/playground.js");
const PLAYGROUND_CSS: &[u8] = include_bytes!("../../assets/playground/playground.css");

macro_rules! examples {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_bytes!(concat!("../../../examples/guests/", $name, ".wasm")) as &[u8])),*]
    };
}

/// Example modules offered by the playground.
pub const EXAMPLES: &[(&str, &[u8])] = examples!(
    "hello",
    "echo",
    "hash",
    "progress",
    "clockrand",
    "argsenv",
    "exitcode",
    "stderr",
    "trap",
    "loop",
    "fib",
    "rust_wordfreq",
    "rust_panic",
    "fsreport",
    "calc",
    "guess",
);

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn example(Path(file): Path<String>) -> Response {
    let name = file.strip_suffix(".wasm").unwrap_or(&file);
    match EXAMPLES.iter().find(|(n, _)| *n == name) {
        Some((_, bytes)) => asset("application/wasm", bytes),
        None => (StatusCode::NOT_FOUND, "no such example").into_response(),
    }
}

async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    if state.is_draining() {
        return (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response();
    }
    if !state.store.ping().await {
        return (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n").into_response();
    }
    "ready\n".into_response()
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    crate::metrics::refresh(&state);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

/// Routes served beside the gRPC services on the same port.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }),
        )
        .route(
            "/playground.js",
            get(|| async { asset("text/javascript; charset=utf-8", PLAYGROUND_JS) }),
        )
        .route(
            "/playground.css",
            get(|| async { asset("text/css; charset=utf-8", PLAYGROUND_CSS) }),
        )
        .route("/examples/{file}", get(example))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}
