//! Wiring: store, sandbox, services, HTTP routes and the listener, with
//! bounded graceful shutdown.
//!
//! [`run`] reads top to bottom: open the state, build the [`routes`], start
//! the [`Background`] tasks, serve until the [`Drain`] has run its course.

use std::{convert::Infallible, future::Future, sync::Arc, time::Duration};

use http::{header::HeaderName, HeaderValue, Method};
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::{sync::CancellationToken, task::AbortOnDropHandle};
use tonic::{server::NamedService, service::Routes};
use tonic_health::{server::HealthReporter, ServingStatus};
use tower::{Layer, Service, ServiceExt};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};
use wasmwiz_proto::v1::{
    account_service_server::AccountServiceServer, admin_service_server::AdminServiceServer,
    execution_service_server::ExecutionServiceServer, module_service_server::ModuleServiceServer,
    server_service_server::ServerServiceServer,
};

use crate::{
    api::{
        account::AccountApi, admin::AdminApi, execution::ExecutionApi, modules::ModuleApi,
        server_info::ServerInfoApi, AppState,
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
    let path = request.uri().path();
    let span = tracing::info_span!("request", otel.name = %path, request_id = %id, path = %path);
    crate::telemetry::adopt_remote_parent(&span, request.headers());
    span
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

/// Runs the server on `listener` until `shutdown` resolves, then drains
/// (see [`Drain`]). Validates `config` first.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.validate()?;
    serve(listener, config, shutdown).await
}

/// [`run`] for a configuration the caller has already validated (the
/// binary validates once, before it touches the database).
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(transport::tls::acceptor(cert, key)?),
        _ => None,
    };
    let store = open_store(&config).await?;
    let auth = authenticator(&config, &store)?;
    let sandbox = Arc::new(Sandbox::new(config.sandbox.to_sandbox_config())?);
    let state = Arc::new(AppState::new(config.clone(), store.clone(), sandbox, auth)?);
    if let Some(cert) = &config.tls_cert {
        if let Err(error) = crate::metrics::record_certificate(&state.metrics, cert) {
            tracing::warn!(%error, "reading the certificate's expiry for /metrics");
        }
    }

    let services = routes(&state)?;
    services.report(ServingStatus::Serving).await;
    let background = Background::start(&state, &store);
    let drain = Drain::new(state.clone(), services.clone_reporting());

    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("WasmWiz listening on {scheme}://{addr} (gRPC, grpc-web)");
    println!("Playground: {scheme}://{addr}/");
    println!("Receipt signing key id: {}", state.receipt_keys.key_id());

    let rpc_responses = crate::metrics::RpcResponses(state.metrics.grpc_responses.clone());
    let service = tower::ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(cors(&config.cors_origins))
        .service(services.routes)
        .map_response(move |response: http::Response<_>| {
            rpc_responses.observe(&response);
            response.map(tonic::body::Body::new)
        });
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
    let (stop_accepting, force_close) = drain.signals();
    // Detached: its grace timer still cancels executions that outlive
    // their connections after the listener has returned.
    tokio::spawn(drain.run(shutdown));
    transport::serve(listener, serving, stop_accepting, force_close).await;
    background.stop().await;
    store.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The routed gRPC services with the HTTP routes under them, and the names
/// of the services (what health reports on and reflection lists).
pub struct Services {
    pub routes: Routes,
    pub names: Vec<&'static str>,
    health: HealthReporter,
}

impl Services {
    /// Sets every routed service, and the server as a whole (`""`), to `status`.
    async fn report(&self, status: ServingStatus) {
        for name in self.names.iter().copied().chain([""]) {
            self.health.set_service_status(name, status).await;
        }
    }

    /// What the drain needs to turn health to NOT_SERVING.
    fn clone_reporting(&self) -> Reporting {
        Reporting {
            names: self.names.clone(),
            health: self.health.clone(),
        }
    }
}

/// The health half of [`Services`], kept by the [`Drain`].
struct Reporting {
    names: Vec<&'static str>,
    health: HealthReporter,
}

/// Collects services into [`Routes`], each behind grpc-web and its message
/// guard, remembering its name.
struct RouteList {
    routes: Routes,
    names: Vec<&'static str>,
}

impl RouteList {
    fn add<S>(mut self, service: S) -> Self
    where
        S: Service<http::Request<tonic::body::Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Response: axum::response::IntoResponse,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes = self.routes.add_service(service);
        self
    }
}

/// Every service of the server, written once: the application services,
/// health and reflection (listing exactly what is routed), over the HTTP
/// routes (playground, probes, metrics).
pub fn routes(state: &Arc<AppState>) -> anyhow::Result<Services> {
    let config = &state.config;
    let max = transport::auth_layer::largest_message_bytes(config);
    let encoding = encoding_max(config);
    let anonymous = || MessagePolicy::Anonymous(transport::auth_layer::anonymous_limit(config));
    let authenticated = |carries_modules| MessagePolicy::Authenticated {
        state: state.clone(),
        carries_modules,
    };
    // grpc-web is enabled per gRPC service, so plain HTTP/1.1 requests
    // (playground, health, metrics) reach the web routes untranslated. The
    // guard sits inside it: it sees gRPC framing on both protocols.
    let grpc_web = tonic_web::GrpcWebLayer::new();
    let web = web::router(state.clone()).layer(tower::util::MapRequestLayer::new(capped_web_body(
        config.anonymous_message_bytes,
    )));
    let (health, health_service) = tonic_health::server::health_reporter();
    let list = RouteList {
        routes: Routes::from(web),
        names: Vec::new(),
    }
    .add(
        grpc_web.layer(Guarded::new(
            ExecutionServiceServer::new(ExecutionApi {
                state: state.clone(),
            })
            .max_decoding_message_size(max)
            .max_encoding_message_size(encoding),
            authenticated(true),
        )),
    )
    .add(
        grpc_web.layer(Guarded::new(
            ModuleServiceServer::new(ModuleApi {
                state: state.clone(),
            })
            .max_decoding_message_size(max)
            .max_encoding_message_size(encoding),
            authenticated(true),
        )),
    )
    .add(grpc_web.layer(Guarded::new(
        AccountServiceServer::new(AccountApi {
            state: state.clone(),
        }),
        authenticated(false),
    )))
    .add(grpc_web.layer(Guarded::new(
        AdminServiceServer::new(AdminApi {
            state: state.clone(),
        }),
        authenticated(false),
    )))
    .add(grpc_web.layer(Guarded::new(health_service, anonymous())))
    // Needs no key: verifiers fetch the receipt keys here.
    .add(grpc_web.layer(Guarded::new(
        ServerServiceServer::new(ServerInfoApi {
            state: state.clone(),
        }),
        anonymous(),
    )));
    let reflection = |names: &[&'static str]| {
        names
            .iter()
            .chain(&[
                tonic_reflection::pb::v1::server_reflection_server::SERVICE_NAME,
                tonic_reflection::pb::v1alpha::server_reflection_server::SERVICE_NAME,
            ])
            .fold(
                tonic_reflection::server::Builder::configure()
                    .register_encoded_file_descriptor_set(wasmwiz_proto::FILE_DESCRIPTOR_SET)
                    .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
                |builder, name| builder.with_service_name(*name),
            )
    };
    let reflection_v1 = reflection(&list.names).build_v1()?;
    let reflection_v1alpha = reflection(&list.names).build_v1alpha()?;
    let list = list
        .add(grpc_web.layer(Guarded::new(reflection_v1, anonymous())))
        .add(grpc_web.layer(Guarded::new(reflection_v1alpha, anonymous())));
    Ok(Services {
        routes: list.routes.prepare(),
        names: list.names,
        health,
    })
}

/// How the server stops once `shutdown` resolves: health turns
/// NOT_SERVING and new executions are refused; the listener stops
/// accepting (open connections get GOAWAY and finish their requests);
/// after `shutdown_grace_secs` running executions are cancelled; and
/// [`Drain::FINAL_DEADLINE`] later, connections still open are closed.
struct Drain {
    state: Arc<AppState>,
    reporting: Reporting,
    grace: Duration,
    stop_accepting: CancellationToken,
    force_close: CancellationToken,
}

impl Drain {
    /// How long connections may outlive the grace period (e.g. health
    /// Watch streams) before they are closed, so none keeps the process alive.
    const FINAL_DEADLINE: Duration = Duration::from_secs(5);

    fn new(state: Arc<AppState>, reporting: Reporting) -> Self {
        Self {
            grace: Duration::from_secs(state.config.shutdown_grace_secs),
            state,
            reporting,
            stop_accepting: CancellationToken::new(),
            force_close: CancellationToken::new(),
        }
    }

    /// The transport's signals: stop accepting, and close what is still open.
    fn signals(&self) -> (CancellationToken, CancellationToken) {
        (self.stop_accepting.clone(), self.force_close.clone())
    }

    async fn run(self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        tracing::info!("shutting down: draining");
        self.state.start_draining();
        for name in self.reporting.names.iter().copied().chain([""]) {
            self.reporting
                .health
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
        self.stop_accepting.cancel();
        tokio::time::sleep(self.grace).await;
        tracing::warn!("grace period over: cancelling running executions");
        self.state.hard_stop.cancel();
        tokio::time::sleep(Self::FINAL_DEADLINE).await;
        tracing::warn!("connections still open after the grace period: closing them");
        self.force_close.cancel();
    }
}

/// The server's background tasks (usage retention, the SQLite checkpointer,
/// the Redis heartbeat, the job worker and the webhook sender), stopped
/// together when serving ends.
struct Background(JoinSet<()>);

impl Background {
    fn start(state: &Arc<AppState>, store: &Store) -> Self {
        let mut tasks = JoinSet::new();
        tasks.spawn(housekeeping(state.clone()));
        let jobs = Some(crate::jobs::worker::spawn(state.clone()));
        let webhooks = Some(crate::jobs::deliveries::spawn(state.clone()));
        for task in [
            store.spawn_checkpointer(),
            state.limits.spawn_heartbeat(),
            jobs,
            webhooks,
        ]
        .into_iter()
        .flatten()
        {
            // Dropping the guard (when the set aborts it) aborts the task.
            let task = AbortOnDropHandle::new(task);
            tasks.spawn(async move {
                let _ = task.await;
            });
        }
        Self(tasks)
    }

    /// Aborts every task and waits until they are gone.
    async fn stop(mut self) {
        self.0.shutdown().await;
    }
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
        if let Err(error) = state.store.result_cache_purge(now_ms()).await {
            tracing::warn!(%error, "purging expired result cache entries failed");
        }
    }
}
