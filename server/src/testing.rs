//! A real server on 127.0.0.1:0 for tests (this crate's, the Rust SDK's):
//! `run` with a temporary data dir, SQLite or a fresh PostgreSQL database,
//! and an admin key minted before start.

use std::{net::SocketAddr, time::Duration};

use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{
    metadata::MetadataValue,
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
    Request, Status,
};

use crate::{server, Config};

/// PostgreSQL server used by tests (a fresh database is created per server).
pub const TEST_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432";

/// Which database a test server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// True when PostgreSQL answers; with `CI=true` its absence is a failure.
pub async fn postgres_available() -> bool {
    let reachable = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::net::TcpStream::connect("127.0.0.1:5432"),
    )
    .await
    .is_ok_and(|c| c.is_ok());
    if !reachable && std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but PostgreSQL is not reachable on 127.0.0.1:5432");
    }
    reachable
}

/// Creates an empty database and returns its URL.
pub async fn fresh_postgres_database() -> anyhow::Result<String> {
    use sqlx::{Connection, Executor};
    let name = format!("wwz_test_{}", uuid::Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&format!("{TEST_POSTGRES}/postgres")).await?;
    admin
        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await?;
    admin.close().await?;
    Ok(format!("{TEST_POSTGRES}/{name}"))
}

/// A running server and what a test needs to talk to it.
pub struct TestServer {
    pub addr: SocketAddr,
    pub url: String,
    pub admin_key: String,
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    _data_dir: Option<tempfile::TempDir>,
}

/// Adds `authorization: Bearer <key>` to every call.
#[derive(Clone)]
pub struct BearerAuth(pub Option<String>);

impl tonic::service::Interceptor for BearerAuth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(key) = &self.0 {
            let value: MetadataValue<_> = format!("Bearer {key}")
                .parse()
                .map_err(|_| Status::invalid_argument("key is not valid metadata"))?;
            request.metadata_mut().insert("authorization", value);
        }
        Ok(request)
    }
}

/// A channel with a key attached.
pub type Authed = InterceptedService<Channel, BearerAuth>;

impl TestServer {
    /// A server on SQLite with default config.
    pub async fn start() -> Self {
        Self::start_with(Db::Sqlite, |_| {}).await
    }

    /// A server on `db`, after `tweak` adjusts the config.
    pub async fn start_with(db: Db, tweak: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            data_dir: data_dir.path().to_path_buf(),
            shutdown_grace_secs: 10,
            ..Config::default()
        };
        if db == Db::Postgres {
            config.database_url = Some(
                fresh_postgres_database()
                    .await
                    .expect("creating a PostgreSQL database"),
            );
            config.pepper = Some("test-pepper-0123456789".into());
        }
        tweak(&mut config);
        Self::start_config(config, Some(data_dir)).await
    }

    /// A server with exactly `config` (e.g. to restart on the same data).
    pub async fn start_config(config: Config, data_dir: Option<tempfile::TempDir>) -> Self {
        let store = server::open_store(&config)
            .await
            .expect("opening the store");
        let auth = server::authenticator(&config, &store).expect("pepper");
        let user = store
            .ensure_user("admin@test.local", "unlimited", true)
            .await
            .expect("admin user");
        let admin_key = auth
            .mint(&user.id, true, "tests", None)
            .await
            .expect("admin key")
            .key;
        store.close().await;
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(server::run(listener, config.clone(), async move {
            let _ = stopped.await;
        }));
        let server = Self {
            addr,
            url: format!("http://{addr}"),
            admin_key,
            config,
            stop: Some(stop),
            handle: Some(handle),
            _data_dir: data_dir,
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&self) {
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("test server did not start listening");
    }

    /// A gRPC channel to the server.
    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(self.url.clone())
            .expect("url")
            .tcp_nodelay(true)
            .connect()
            .await
            .expect("connecting")
    }

    /// A channel that sends `key` (or no key).
    pub async fn authed(&self, key: Option<&str>) -> Authed {
        InterceptedService::new(self.channel().await, BearerAuth(key.map(str::to_string)))
    }

    /// Creates a key through the admin API.
    pub async fn create_key(&self, email: &str, tier: &str, admin: bool) -> String {
        use wasmwiz_proto::v1::{admin_service_client::AdminServiceClient, CreateApiKeyRequest};
        let mut client = AdminServiceClient::new(self.authed(Some(&self.admin_key)).await);
        client
            .create_api_key(CreateApiKeyRequest {
                email: email.into(),
                tier: tier.into(),
                admin,
                ..Default::default()
            })
            .await
            .expect("creating a key")
            .into_inner()
            .key
    }

    /// Starts the graceful shutdown without waiting for it.
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down gracefully and waits for the server to exit.
    pub async fn stop(mut self) -> (Config, Option<tempfile::TempDir>) {
        self.begin_shutdown();
        if let Some(handle) = self.handle.take() {
            tokio::time::timeout(Duration::from_secs(60), handle)
                .await
                .expect("server stops within the grace period")
                .expect("server task")
                .expect("server exits cleanly");
        }
        (self.config.clone(), self._data_dir.take())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}
