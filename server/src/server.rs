//! Wiring: store, sandbox, services, HTTP routes and the listener, with
//! bounded graceful shutdown.

use std::{future::Future, sync::Arc, time::Duration};

use http::{header::HeaderName, HeaderValue, Method};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tower::{Layer, ServiceExt};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};
use wasmwiz_proto::v1::{
    account_service_server::AccountServiceServer, admin_service_server::AdminServiceServer,
    execution_service_server::ExecutionServiceServer, module_service_server::ModuleServiceServer,
};

use crate::{
    api::{
        account::AccountApi, admin::AdminApi, execution::ExecutionApi, modules::ModuleApi, AppState,
    },
    auth::{load_pepper, Authenticator},
    config::Config,
    engine::Sandbox,
    store::{now_ms, Backend, Store},
    transport::{
        self, Admission, ConnectionSettings, Guarded, HttpService, MessagePolicy, Serving,
        TransportMetrics,
    },
    web,
};

/// Request headers grpc-web clients send (listed: `*` does not cover
/// `authorization` in every browser).
const ALLOWED_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "x-api-key",
    "x-request-id",
    "connect-protocol-version",
    "connect-timeout-ms",
];

/// Headers a browser client may read from grpc-web responses.
const EXPOSED_HEADERS: &[&str] = &[
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "ratelimit-limit",
    "ratelimit-remaining",
    "ratelimit-reset",
    "retry-after",
];

fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::mirror_request()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::POST, Method::GET, Method::OPTIONS])
        .allow_headers(
            ALLOWED_HEADERS
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect::<Vec<_>>(),
        )
        .expose_headers(
            EXPOSED_HEADERS
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect::<Vec<_>>(),
        )
        .max_age(Duration::from_secs(3600))
}

/// Every log line of a request carries its `x-request-id` (given by the
/// client or generated) and path.
fn request_span<B>(request: &http::Request<B>) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!("request", request_id = %id, path = %request.uri().path())
}

/// Largest response message: a module download or a tier's output, plus
/// the overhead.
fn encoding_max(config: &Config) -> usize {
    config
        .tiers
        .values()
        .map(|t| t.max_module_bytes.max(t.max_output_bytes))
        .max()
        .unwrap_or(0)
        .saturating_add(config.message_overhead_bytes as u64)
        .try_into()
        .unwrap_or(usize::MAX)
}

/// The HTTP routes (playground, probes, metrics) read no request body;
/// whatever one sends is capped at `max` bytes.
fn capped_web_body(
    max: usize,
) -> impl Fn(http::Request<axum::body::Body>) -> http::Request<axum::body::Body> + Clone {
    move |request| {
        request.map(|body| axum::body::Body::new(http_body_util::Limited::new(body, max)))
    }
}

/// Opens the store (migrations included), marking usage rows a crash left
/// unfinished as aborted.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    std::fs::create_dir_all(&config.data_dir)?;
    let store = Store::connect(&config.database_url()).await?;
    let longest_ms = config
        .tiers
        .values()
        .map(|t| t.max_timeout_ms)
        .max()
        .unwrap_or(0) as i64;
    let cutoff = match store.backend() {
        // One process owns the file: whatever is RUNNING was interrupted.
        Backend::Sqlite => now_ms() + 1,
        // Other replicas may be running executions: only rows older than
        // the longest possible execution are certainly dead.
        Backend::Postgres => {
            now_ms() - longest_ms - (config.shutdown_grace_secs as i64 * 1000) - 60_000
        }
    };
    let aborted = store.usage_abort_running(cutoff).await?;
    if aborted > 0 {
        tracing::warn!(
            aborted,
            "marked usage records of interrupted executions as aborted"
        );
    }
    Ok(store)
}

/// The key authenticator of this configuration.
pub fn authenticator(config: &Config, store: &Store) -> anyhow::Result<Authenticator> {
    let pepper = load_pepper(config.pepper.as_deref(), &config.data_dir)?;
    Ok(Authenticator::new(
        store.clone(),
        pepper,
        Duration::from_secs(config.key_cache_secs),
    ))
}

/// Runs the server on `listener` until `shutdown` resolves, then drains:
/// NOT_SERVING, no new executions, running ones get `shutdown_grace_secs`,
/// then are cancelled.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.validate()?;
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(transport::tls::acceptor(cert, key)?),
        _ => None,
    };
    let store = open_store(&config).await?;
    let auth = authenticator(&config, &store)?;
    let sandbox = Arc::new(Sandbox::new(config.sandbox.to_sandbox_config())?);
    let state = Arc::new(AppState::new(config.clone(), store.clone(), sandbox, auth)?);
    let heartbeat = state.limits.spawn_heartbeat();
    let addr = listener.local_addr()?;
    let scheme = if config.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };

    if store.has_no_keys().await? {
        let user = store
            .ensure_user("admin@localhost", "unlimited", true)
            .await?;
        let minted = state.auth.mint(&user.id, true, "first start", None).await?;
        println!("First start: created an admin API key (shown once, keep it safe):");
        println!("{}", minted.key);
    }
    println!("WasmWiz listening on {scheme}://{addr} (gRPC, grpc-web)");
    println!("Playground: {scheme}://{addr}/");

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<ExecutionServiceServer<ExecutionApi>>()
        .await;
    health.set_serving::<ModuleServiceServer<ModuleApi>>().await;
    health
        .set_serving::<AccountServiceServer<AccountApi>>()
        .await;
    health.set_serving::<AdminServiceServer<AdminApi>>().await;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(wasmwiz_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(wasmwiz_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;

    let max = transport::auth_layer::largest_message_bytes(&config);
    let anonymous = || MessagePolicy::Anonymous(transport::auth_layer::anonymous_limit(&config));
    let authenticated = |carries_modules| MessagePolicy::Authenticated {
        state: state.clone(),
        carries_modules,
    };
    // grpc-web is enabled per gRPC service, so plain HTTP/1.1 requests
    // (playground, health, metrics) reach the web routes untranslated. The
    // guard sits inside it: it sees gRPC framing on both protocols.
    let grpc_web = tonic_web::GrpcWebLayer::new();
    let routes = Routes::from(
        web::router(state.clone()).layer(tower::util::MapRequestLayer::new(capped_web_body(
            config.anonymous_message_bytes,
        ))),
    )
    .add_service(grpc_web.layer(Guarded::new(health_service, anonymous())))
    .add_service(grpc_web.layer(Guarded::new(reflection_v1, anonymous())))
    .add_service(grpc_web.layer(Guarded::new(reflection_v1alpha, anonymous())))
    .add_service(
        grpc_web.layer(Guarded::new(
            ExecutionServiceServer::new(ExecutionApi {
                state: state.clone(),
            })
            .max_decoding_message_size(max)
            .max_encoding_message_size(encoding_max(&config)),
            authenticated(true),
        )),
    )
    .add_service(
        grpc_web.layer(Guarded::new(
            ModuleServiceServer::new(ModuleApi {
                state: state.clone(),
            })
            .max_decoding_message_size(max)
            .max_encoding_message_size(encoding_max(&config)),
            authenticated(true),
        )),
    )
    .add_service(grpc_web.layer(Guarded::new(
        AccountServiceServer::new(AccountApi {
            state: state.clone(),
        }),
        authenticated(false),
    )))
    .add_service(grpc_web.layer(Guarded::new(
        AdminServiceServer::new(AdminApi {
            state: state.clone(),
        }),
        authenticated(false),
    )))
    .prepare();

    let housekeeping = tokio::spawn(housekeeping(state.clone()));
    let checkpointer = store.spawn_checkpointer();

    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let drain_state = state.clone();
    let stop_accepting = CancellationToken::new();
    let force_close = CancellationToken::new();
    let drain = {
        let stop_accepting = stop_accepting.clone();
        let force_close = force_close.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: draining");
            drain_state.start_draining();
            health
                .set_not_serving::<ExecutionServiceServer<ExecutionApi>>()
                .await;
            health
                .set_not_serving::<ModuleServiceServer<ModuleApi>>()
                .await;
            health
                .set_not_serving::<AccountServiceServer<AccountApi>>()
                .await;
            health
                .set_not_serving::<AdminServiceServer<AdminApi>>()
                .await;
            health
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
            // No new connections; open ones finish their requests (GOAWAY).
            stop_accepting.cancel();
            let hard_stop = drain_state.hard_stop.clone();
            tokio::time::sleep(grace).await;
            tracing::warn!("grace period over: cancelling running executions");
            hard_stop.cancel();
            // Connections that outlive the grace period (e.g. health Watch
            // streams) must not keep the process alive: cap the whole drain.
            tokio::time::sleep(Duration::from_secs(5)).await;
            tracing::warn!("connections still open after the grace period: closing them");
            force_close.cancel();
        }
    };
    let drain = tokio::spawn(drain);

    let service = tower::ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(cors(&config.cors_origins))
        .service(routes)
        .map_response(|response: http::Response<_>| response.map(tonic::body::Body::new));
    let max_connections = transport::fd_limit::connection_cap(config.max_connections);
    tracing::info!(
        max_connections,
        max_connections_per_ip = config.max_connections_per_ip,
        max_concurrent_streams = config.max_concurrent_streams,
        "connection limits"
    );
    let transport_metrics = TransportMetrics::new();
    transport_metrics.register(state.metrics.registry())?;
    let serving = Serving {
        service: HttpService::new(service),
        settings: Arc::new(ConnectionSettings::from_config(&config)),
        admission: Admission::new(config.max_connections_per_ip, max_connections),
        tls,
        metrics: transport_metrics,
    };
    transport::serve(listener, serving, stop_accepting, force_close).await;
    // The drain task ends on its own: its grace timer still cancels
    // executions that outlive their connections.
    drop(drain);
    housekeeping.abort();
    if let Some(checkpointer) = checkpointer {
        checkpointer.abort();
    }
    if let Some(heartbeat) = heartbeat {
        heartbeat.abort();
    }
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// Retention cleanup and stale-row sweeping, hourly.
async fn housekeeping(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let retention_ms = i64::from(state.config.usage_retention_days) * 86_400_000;
        match state.store.usage_purge(now_ms() - retention_ms).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "usage retention cleanup"),
            Err(error) => tracing::warn!(%error, "usage retention cleanup failed"),
        }
    }
}
