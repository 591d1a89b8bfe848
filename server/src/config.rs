//! The server's settings, each declared once: the field is the TOML key
//! (`[sandbox]` fields under `sandbox.`), its `#[arg]` is the flag and the
//! environment variable, its doc comment is the help text and the README's
//! description, and [`Config::default`] is the only place its default is
//! written. Layers, lowest first: defaults, the TOML file, environment,
//! flags. `wasmwiz-server serve` works with none given (SQLite in
//! `./wasmwiz-data`, in-process limits).

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, sync::LazyLock, time::Duration};

use clap::{ArgAction, Args};
use serde::{Deserialize, Serialize};

use crate::engine::SandboxConfig;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// The default tiers, shipped with the binary (`wasmwiz-server config
/// defaults` prints them with the rest).
const DEFAULT_TIERS_TOML: &str = include_str!("../config/tiers.toml");

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    Toml(#[from] toml::de::Error),
    #[error("tls_cert and tls_key must be given together")]
    TlsHalfConfigured,
    #[error(
        "a `pepper` of at least 16 characters is required with PostgreSQL or in production \
         (set WASMWIZ_PEPPER or `pepper` in the config file); keys are hashed with it"
    )]
    PepperRequired,
    #[error("`{0}` must be positive")]
    NotPositive(&'static str),
    #[error("tier `{tier}`: `{key}` must be positive")]
    TierNotPositive { tier: String, key: &'static str },
    #[error("tier `{tier}`: `{key}` must be positive unless the tier is unmetered")]
    TierMeteredZero { tier: String, key: &'static str },
}

/// Server configuration.
#[derive(Debug, Clone, Serialize, Deserialize, Args)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on for gRPC, grpc-web and HTTP.
    #[arg(
        id = "listen",
        long = "listen",
        env = "WASMWIZ_LISTEN",
        global = true,
        required = false
    )]
    pub listen: SocketAddr,
    /// Directory for the embedded SQLite database and the generated key pepper.
    #[arg(
        id = "data_dir",
        long = "data-dir",
        env = "WASMWIZ_DATA_DIR",
        global = true,
        required = false
    )]
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; none: the SQLite file in `data_dir`.
    #[arg(
        id = "database_url",
        long = "database-url",
        env = "DATABASE_URL",
        global = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Redis URL for rate limits shared by several replicas; none: in-process limiters.
    #[arg(id = "redis_url", long = "redis-url", env = "REDIS_URL", global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    /// Secret for hashing API keys (HMAC-SHA256), hex or text; none: generated
    /// once into `data_dir/pepper`. Required with PostgreSQL or `production`.
    #[arg(
        id = "pepper",
        long = "pepper",
        env = "WASMWIZ_PEPPER",
        global = true,
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pepper: Option<String>,
    /// Production mode: JSON logs, and a configured `pepper` is mandatory.
    #[arg(
        id = "production",
        long = "production",
        env = "WASMWIZ_PRODUCTION",
        global = true,
        required = false,
        action = ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub production: bool,
    /// PEM certificate chain for TLS (with `tls_key`).
    #[arg(
        id = "tls_cert",
        long = "tls-cert",
        env = "WASMWIZ_TLS_CERT",
        global = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS (with `tls_cert`).
    #[arg(
        id = "tls_key",
        long = "tls-key",
        env = "WASMWIZ_TLS_KEY",
        global = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// OTLP/gRPC collector for traces (e.g. `http://otel-collector:4317`);
    /// none: no traces are exported.
    #[arg(
        id = "otlp_endpoint",
        long = "otlp-endpoint",
        env = "WASMWIZ_OTLP_ENDPOINT",
        global = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// Origins allowed by CORS for grpc-web; `*` allows any origin, which is
    /// safe here because auth is a bearer header, not a cookie.
    #[arg(
        id = "cors_origins",
        long = "cors-origins",
        env = "WASMWIZ_CORS_ORIGINS",
        global = true,
        required = false,
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// Seconds running executions get to finish after SIGTERM.
    #[arg(
        id = "shutdown_grace_secs",
        long = "shutdown-grace-secs",
        env = "WASMWIZ_SHUTDOWN_GRACE_SECS",
        global = true,
        required = false
    )]
    pub shutdown_grace_secs: u64,
    /// Days usage records are kept.
    #[arg(
        id = "usage_retention_days",
        long = "usage-retention-days",
        env = "WASMWIZ_USAGE_RETENTION_DAYS",
        global = true,
        required = false
    )]
    pub usage_retention_days: u32,
    /// Seconds an authenticated key stays cached (bounds how long a revoked key keeps working).
    #[arg(
        id = "key_cache_secs",
        long = "key-cache-secs",
        env = "WASMWIZ_KEY_CACHE_SECS",
        global = true,
        required = false
    )]
    pub key_cache_secs: u64,
    /// HTTP/2 streams open at once on one connection.
    #[arg(
        id = "max_concurrent_streams",
        long = "max-concurrent-streams",
        env = "WASMWIZ_MAX_CONCURRENT_STREAMS",
        global = true,
        required = false
    )]
    pub max_concurrent_streams: u32,
    /// Connections open at once from one IP address.
    #[arg(
        id = "max_connections_per_ip",
        long = "max-connections-per-ip",
        env = "WASMWIZ_MAX_CONNECTIONS_PER_IP",
        global = true,
        required = false
    )]
    pub max_connections_per_ip: usize,
    /// Connections open at once in total; 0: derived from the process's
    /// file-descriptor limit.
    #[arg(
        id = "max_connections",
        long = "max-connections",
        env = "WASMWIZ_MAX_CONNECTIONS",
        global = true,
        required = false
    )]
    pub max_connections: usize,
    /// Seconds a new connection has to finish TLS and send the headers of its
    /// first request (HTTP/2 preface included).
    #[arg(
        id = "handshake_timeout_secs",
        long = "handshake-timeout-secs",
        env = "WASMWIZ_HANDSHAKE_TIMEOUT_SECS",
        global = true,
        required = false
    )]
    pub handshake_timeout_secs: u64,
    /// Seconds a connection with no open request (stream) is kept.
    #[arg(
        id = "idle_timeout_secs",
        long = "idle-timeout-secs",
        env = "WASMWIZ_IDLE_TIMEOUT_SECS",
        global = true,
        required = false
    )]
    pub idle_timeout_secs: u64,
    /// Seconds one request message may take to arrive once its first byte has
    /// (streams may be quiet between messages).
    #[arg(
        id = "message_timeout_secs",
        long = "message-timeout-secs",
        env = "WASMWIZ_MESSAGE_TIMEOUT_SECS",
        global = true,
        required = false
    )]
    pub message_timeout_secs: u64,
    /// A message also gets one second per this many bytes it declares, so a
    /// large upload on a slow link is not cut; 0: no allowance.
    #[arg(
        id = "message_min_bytes_per_sec",
        long = "message-min-bytes-per-sec",
        env = "WASMWIZ_MESSAGE_MIN_BYTES_PER_SEC",
        global = true,
        required = false
    )]
    pub message_min_bytes_per_sec: u64,
    /// Largest request message of an unauthenticated call (health,
    /// reflection), and the body cap of the HTTP routes, bytes.
    #[arg(
        id = "anonymous_message_bytes",
        long = "anonymous-message-bytes",
        env = "WASMWIZ_ANONYMOUS_MESSAGE_BYTES",
        global = true,
        required = false
    )]
    pub anonymous_message_bytes: usize,
    /// Bytes an authenticated message may carry beyond its tier's
    /// `max_module_bytes + max_stdin_bytes` (arguments, environment, fields).
    #[arg(
        id = "message_overhead_bytes",
        long = "message-overhead-bytes",
        env = "WASMWIZ_MESSAGE_OVERHEAD_BYTES",
        global = true,
        required = false
    )]
    pub message_overhead_bytes: usize,
    /// Ed25519 key that signs execution receipts: hex of its 32-byte seed;
    /// none: generated once into `data_dir/receipt-signing-key`. Give every
    /// replica the same one.
    #[arg(
        id = "receipt_signing_key",
        long = "receipt-signing-key",
        env = "WASMWIZ_RECEIPT_SIGNING_KEY",
        global = true,
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_signing_key: Option<String>,
    /// Public keys (hex) of former receipt signing keys, still listed by
    /// `GetServerInfo` so the receipts they signed keep verifying.
    #[arg(
        id = "receipt_keys_retired",
        long = "receipt-keys-retired",
        env = "WASMWIZ_RECEIPT_KEYS_RETIRED",
        global = true,
        required = false,
        value_delimiter = ','
    )]
    pub receipt_keys_retired: Vec<String>,
    /// Largest result (output and collected files) the result cache stores, bytes.
    #[arg(
        id = "result_cache_max_entry_bytes",
        long = "result-cache-max-entry-bytes",
        env = "WASMWIZ_RESULT_CACHE_MAX_ENTRY_BYTES",
        global = true,
        required = false
    )]
    pub result_cache_max_entry_bytes: u64,
    /// Bytes of results the cache keeps per account; the oldest go first.
    #[arg(
        id = "result_cache_account_bytes",
        long = "result-cache-account-bytes",
        env = "WASMWIZ_RESULT_CACHE_ACCOUNT_BYTES",
        global = true,
        required = false
    )]
    pub result_cache_account_bytes: u64,
    /// Bytes of results the cache keeps in total (in the database).
    #[arg(
        id = "result_cache_total_bytes",
        long = "result-cache-total-bytes",
        env = "WASMWIZ_RESULT_CACHE_TOTAL_BYTES",
        global = true,
        required = false
    )]
    pub result_cache_total_bytes: u64,
    /// Seconds a cached result is served after its run.
    #[arg(
        id = "result_cache_ttl_secs",
        long = "result-cache-ttl-secs",
        env = "WASMWIZ_RESULT_CACHE_TTL_SECS",
        global = true,
        required = false
    )]
    pub result_cache_ttl_secs: u64,
    /// MiB of results each replica keeps in memory in front of the database.
    #[arg(
        id = "result_cache_memory_mib",
        long = "result-cache-memory-mib",
        env = "WASMWIZ_RESULT_CACHE_MEMORY_MIB",
        global = true,
        required = false
    )]
    pub result_cache_memory_mib: u64,
    /// Result cache lookups per minute per account (unmetered tiers: no limit); 0: no limit.
    #[arg(
        id = "result_cache_lookups_per_minute",
        long = "result-cache-lookups-per-minute",
        env = "WASMWIZ_RESULT_CACHE_LOOKUPS_PER_MINUTE",
        global = true,
        required = false
    )]
    pub result_cache_lookups_per_minute: u32,
    /// Milliseconds a replica's claim on a detached job lasts without a
    /// heartbeat; a replica that dies mid-run loses its jobs after this.
    #[arg(
        id = "jobs_lease_ms",
        long = "jobs-lease-ms",
        env = "WASMWIZ_JOBS_LEASE_MS",
        global = true,
        required = false
    )]
    pub jobs_lease_ms: u64,
    /// Seconds a detached execution's result and output are kept after it ends.
    #[arg(
        id = "jobs_retention_secs",
        long = "jobs-retention-secs",
        env = "WASMWIZ_JOBS_RETENTION_SECS",
        global = true,
        required = false
    )]
    pub jobs_retention_secs: u64,
    /// Let webhooks reach private, loopback and link-local addresses (SSRF
    /// guard off; for local receivers only).
    #[arg(
        id = "webhook_allow_private",
        long = "webhook-allow-private",
        env = "WASMWIZ_WEBHOOK_ALLOW_PRIVATE",
        global = true,
        required = false,
        action = ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub webhook_allow_private: bool,
    /// Let webhook URLs use plain http:// (otherwise https:// only).
    #[arg(
        id = "webhook_allow_http",
        long = "webhook-allow-http",
        env = "WASMWIZ_WEBHOOK_ALLOW_HTTP",
        global = true,
        required = false,
        action = ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub webhook_allow_http: bool,
    /// Seconds a failing webhook is retried (exponential backoff from 1 s).
    #[arg(
        id = "webhook_retry_secs",
        long = "webhook-retry-secs",
        env = "WASMWIZ_WEBHOOK_RETRY_SECS",
        global = true,
        required = false
    )]
    pub webhook_retry_secs: u64,
    /// The engine's identity in inputs digests and receipts; always this
    /// build's (tests replace it to see an engine change).
    #[arg(skip)]
    #[serde(skip)]
    pub engine_identity: crate::exec::identity::EngineIdentity,
    /// Execution engine resources.
    #[command(flatten)]
    pub sandbox: SandboxSettings,
    /// Tiers by name (TOML only: `[tiers.NAME]`).
    #[arg(skip)]
    pub tiers: BTreeMap<String, Tier>,
}

/// Server-wide sandbox resources (`[sandbox]`).
#[derive(Debug, Clone, Serialize, Deserialize, Args)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxSettings {
    /// Worker threads for guest code; 0: the number of cores.
    #[arg(
        id = "sandbox.workers",
        long = "sandbox-workers",
        env = "WASMWIZ_SANDBOX_WORKERS",
        global = true,
        required = false
    )]
    pub workers: usize,
    /// Executions running at once.
    #[arg(
        id = "sandbox.max_running",
        long = "sandbox-max-running",
        env = "WASMWIZ_SANDBOX_MAX_RUNNING",
        global = true,
        required = false
    )]
    pub max_running: usize,
    /// Sum of running executions' memory limits, MiB.
    #[arg(
        id = "sandbox.memory_budget_mib",
        long = "sandbox-memory-budget-mib",
        env = "WASMWIZ_SANDBOX_MEMORY_BUDGET_MIB",
        global = true,
        required = false
    )]
    pub memory_budget_mib: u64,
    /// Executions allowed to wait for a slot.
    #[arg(
        id = "sandbox.max_queue",
        long = "sandbox-max-queue",
        env = "WASMWIZ_SANDBOX_MAX_QUEUE",
        global = true,
        required = false
    )]
    pub max_queue: usize,
    /// Milliseconds one may wait for a slot before UNAVAILABLE.
    #[arg(
        id = "sandbox.max_queue_wait_ms",
        long = "sandbox-max-queue-wait-ms",
        env = "WASMWIZ_SANDBOX_MAX_QUEUE_WAIT_MS",
        global = true,
        required = false
    )]
    pub max_queue_wait_ms: u64,
    /// Percent of `memory_budget_mib` one user may hold at once (the default
    /// 25 of 8 GiB fits the largest default tier's 1 GiB).
    #[arg(
        id = "sandbox.tenant_memory_share_percent",
        long = "sandbox-tenant-memory-share-percent",
        env = "WASMWIZ_SANDBOX_TENANT_MEMORY_SHARE_PERCENT",
        global = true,
        required = false
    )]
    pub tenant_memory_share_percent: u32,
    /// Percent of `max_running` one user may hold at once; a tier's
    /// `max_concurrent` above this share waits in the queue for the rest.
    #[arg(
        id = "sandbox.tenant_running_share_percent",
        long = "sandbox-tenant-running-share-percent",
        env = "WASMWIZ_SANDBOX_TENANT_RUNNING_SHARE_PERCENT",
        global = true,
        required = false
    )]
    pub tenant_running_share_percent: u32,
    /// Compiled-module cache size, MiB of estimated compiled size.
    #[arg(
        id = "sandbox.module_cache_mib",
        long = "sandbox-module-cache-mib",
        env = "WASMWIZ_SANDBOX_MODULE_CACHE_MIB",
        global = true,
        required = false
    )]
    pub module_cache_mib: u64,
    /// Fuel of an execution's first slice, run inline on the async thread
    /// (tiny programs finish without a thread hop; it also bounds the host
    /// work done there).
    #[arg(
        id = "sandbox.inline_slice_fuel",
        long = "sandbox-inline-slice-fuel",
        env = "WASMWIZ_SANDBOX_INLINE_SLICE_FUEL",
        global = true,
        required = false
    )]
    pub inline_slice_fuel: u64,
    /// Fuel per slice on a worker: bounds how late a timeout or cancel lands.
    /// Also the most a start section may use (it cannot be paused).
    #[arg(
        id = "sandbox.slice_fuel",
        long = "sandbox-slice-fuel",
        env = "WASMWIZ_SANDBOX_SLICE_FUEL",
        global = true,
        required = false
    )]
    pub slice_fuel: u64,
}

/// One tier's allowances. Limits requested as 0 get the maximum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// Executions per minute (ignored when `unmetered`).
    pub per_minute: u64,
    /// Executions per UTC day (ignored when `unmetered`).
    pub per_day: u64,
    pub max_module_bytes: u64,
    pub max_stdin_bytes: u64,
    pub max_memory_bytes: u64,
    pub max_fuel: u64,
    pub max_timeout_ms: u64,
    pub max_output_bytes: u64,
    /// Executions of one user at once.
    pub max_concurrent: u32,
    /// No rate limit or quota.
    pub unmetered: bool,
    /// Bytes of modules one account may keep stored; 0 = no limit.
    pub max_stored_bytes: u64,
    /// Modules one account may keep stored; 0 = no limit.
    pub max_stored_modules: u64,
    /// Uploads (UploadModule, PutModule, runs with `keep_module`) per
    /// minute, a budget of their own (ignored when `unmetered`).
    pub uploads_per_minute: u64,
    /// Uploads of one user in progress at once.
    pub max_concurrent_uploads: u32,
    /// An upload stream that sends no message for this long is ended.
    pub upload_idle_timeout_ms: u64,
    /// Items of args and env together (program_name included).
    pub max_args: u32,
    /// Bytes of args and env together as the guest sees them (`arg\0`,
    /// `NAME=value\0`).
    pub max_args_bytes: u64,
    /// Live API keys per account that self-service `CreateMyApiKey` may
    /// reach (operators' `CreateApiKey` is not capped).
    pub max_api_keys: u32,
    /// Cases in one `RunBatch` request.
    pub max_batch_cases: u32,
    /// Bytes of file contents the guest's in-memory filesystem may hold,
    /// input included (default and maximum of `limits.fs_bytes`).
    pub max_fs_bytes: u64,
    /// Entries (files, directories, symlinks) that filesystem may hold.
    pub max_fs_entries: u64,
    /// Interactive runs: the longest one wait for stdin may last (default
    /// and maximum of `limits.idle_timeout_ms`).
    pub max_idle_timeout_ms: u64,
    /// Interactive runs: the longest a whole session may last, waits
    /// included (`timeout_ms` counts only running time).
    pub max_session_ms: u64,
    /// Interactive runs: `WriteStdin` calls one account may make a second,
    /// over all its executions (per replica); 0: no limit (unmetered only).
    pub stdin_writes_per_second: u32,
    /// Interactive runs: how many `WriteStdin` calls may come at once
    /// before the per-second rate applies.
    pub stdin_write_burst: u32,
}

/// The built-in tiers, parsed once.
static DEFAULT_TIERS: LazyLock<BTreeMap<String, Tier>> = LazyLock::new(|| {
    toml::from_str(DEFAULT_TIERS_TOML).expect("the built-in tiers.toml is a complete tier table")
});

/// The default tiers: free, basic, pro, unlimited.
pub fn default_tiers() -> BTreeMap<String, Tier> {
    DEFAULT_TIERS.clone()
}

impl Default for SandboxSettings {
    fn default() -> Self {
        let engine = SandboxConfig::default();
        Self {
            // The engine's default is the core count of this machine; 0
            // says so without writing a machine's figure into the config.
            workers: 0,
            max_running: engine.max_running,
            memory_budget_mib: engine.memory_budget_bytes / MIB,
            max_queue: engine.max_queue,
            max_queue_wait_ms: engine.max_queue_wait.as_millis() as u64,
            tenant_memory_share_percent: engine.tenant_memory_share_percent,
            tenant_running_share_percent: engine.tenant_running_share_percent,
            module_cache_mib: engine.module_cache_bytes / MIB,
            inline_slice_fuel: engine.inline_slice_fuel,
            slice_fuel: engine.slice_fuel,
        }
    }
}

impl SandboxSettings {
    pub fn to_sandbox_config(&self) -> SandboxConfig {
        let engine = SandboxConfig::default();
        SandboxConfig {
            workers: if self.workers == 0 {
                engine.workers
            } else {
                self.workers
            },
            max_running: self.max_running,
            memory_budget_bytes: self.memory_budget_mib * MIB,
            max_queue: self.max_queue,
            max_queue_wait: Duration::from_millis(self.max_queue_wait_ms),
            tenant_memory_share_percent: self.tenant_memory_share_percent,
            tenant_running_share_percent: self.tenant_running_share_percent,
            module_cache_bytes: self.module_cache_mib * MIB,
            inline_slice_fuel: self.inline_slice_fuel,
            slice_fuel: self.slice_fuel,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".parse().expect("valid address"),
            data_dir: PathBuf::from("wasmwiz-data"),
            database_url: None,
            redis_url: None,
            pepper: None,
            production: false,
            tls_cert: None,
            tls_key: None,
            otlp_endpoint: None,
            cors_origins: vec!["*".into()],
            shutdown_grace_secs: 30,
            usage_retention_days: 30,
            key_cache_secs: 2,
            max_concurrent_streams: 100,
            max_connections_per_ip: 64,
            max_connections: 0,
            handshake_timeout_secs: 10,
            idle_timeout_secs: 300,
            message_timeout_secs: 30,
            message_min_bytes_per_sec: MIB,
            anonymous_message_bytes: 64 * KIB as usize,
            message_overhead_bytes: MIB as usize,
            receipt_signing_key: None,
            receipt_keys_retired: Vec::new(),
            engine_identity: Default::default(),
            result_cache_max_entry_bytes: 16 * MIB,
            result_cache_account_bytes: 256 * MIB,
            result_cache_total_bytes: 8 * 1024 * MIB,
            result_cache_ttl_secs: 7 * 86_400,
            result_cache_memory_mib: 128,
            result_cache_lookups_per_minute: 6_000,
            jobs_lease_ms: 10_000,
            jobs_retention_secs: 7 * 86_400,
            webhook_allow_private: false,
            webhook_allow_http: false,
            webhook_retry_secs: 3600,
            sandbox: SandboxSettings::default(),
            tiers: default_tiers(),
        }
    }
}

impl Config {
    /// Parses a TOML file over the defaults. A `[tiers.NAME]` table changes
    /// the keys it gives of the default tier `NAME`, or adds a tier whose
    /// left-out keys take the `free` tier's values.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let mut file: toml::Table = toml::from_str(text)?;
        if let Some(given) = file.remove("tiers") {
            let given: BTreeMap<String, toml::Table> = given.try_into()?;
            let mut tiers = tier_tables(&DEFAULT_TIERS);
            for (name, keys) in given {
                let mut tier = tiers
                    .get(&name)
                    .or_else(|| tiers.get("free"))
                    .cloned()
                    .unwrap_or_default();
                tier.extend(keys);
                tiers.insert(name, tier);
            }
            file.insert(
                "tiers".into(),
                toml::Value::try_from(tiers).map_err(de_error)?,
            );
        }
        Ok(file.try_into()?)
    }

    /// The complete default configuration as a TOML file.
    pub fn defaults_toml() -> String {
        toml::to_string(&Config::default()).expect("the configuration serializes to TOML")
    }

    /// The database URL in force (the SQLite file by default).
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| crate::store::sqlite_url(&self.data_dir))
    }

    /// The tier named `name`, if configured.
    pub fn tier(&self, name: &str) -> Option<&Tier> {
        self.tiers.get(name)
    }

    /// Checks what cannot be checked by types.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::TlsHalfConfigured);
        }
        let uses_postgres = self.database_url().starts_with("postgres");
        if (self.production || uses_postgres) && self.pepper.as_deref().unwrap_or("").len() < 16 {
            return Err(ConfigError::PepperRequired);
        }
        let positive = [
            ("max_concurrent_streams", self.max_concurrent_streams as u64),
            ("max_connections_per_ip", self.max_connections_per_ip as u64),
            ("handshake_timeout_secs", self.handshake_timeout_secs),
            ("idle_timeout_secs", self.idle_timeout_secs),
            ("message_timeout_secs", self.message_timeout_secs),
            ("sandbox.inline_slice_fuel", self.sandbox.inline_slice_fuel),
            ("sandbox.slice_fuel", self.sandbox.slice_fuel),
        ];
        if let Some((key, _)) = positive.iter().find(|(_, value)| *value == 0) {
            return Err(ConfigError::NotPositive(key));
        }
        for (name, tier) in &self.tiers {
            tier.validate().map_err(|(key, metered)| match metered {
                false => ConfigError::TierNotPositive {
                    tier: name.clone(),
                    key,
                },
                true => ConfigError::TierMeteredZero {
                    tier: name.clone(),
                    key,
                },
            })?;
        }
        Ok(())
    }
}

impl Tier {
    /// The first key that must not be 0, and whether only metered tiers need it.
    fn validate(&self) -> Result<(), (&'static str, bool)> {
        let always = [
            ("max_fuel", self.max_fuel),
            ("max_timeout_ms", self.max_timeout_ms),
            ("max_memory_bytes", self.max_memory_bytes),
            (
                "max_concurrent_uploads",
                u64::from(self.max_concurrent_uploads),
            ),
            ("upload_idle_timeout_ms", self.upload_idle_timeout_ms),
            ("max_fs_bytes", self.max_fs_bytes),
            ("max_fs_entries", self.max_fs_entries),
            ("max_idle_timeout_ms", self.max_idle_timeout_ms),
            ("max_session_ms", self.max_session_ms),
        ];
        if let Some((key, _)) = always.iter().find(|(_, v)| *v == 0) {
            return Err((key, false));
        }
        let metered = [
            ("per_minute", self.per_minute),
            ("per_day", self.per_day),
            ("uploads_per_minute", self.uploads_per_minute),
            (
                "stdin_writes_per_second",
                u64::from(self.stdin_writes_per_second),
            ),
            ("stdin_write_burst", u64::from(self.stdin_write_burst)),
        ];
        match metered.iter().find(|(_, v)| *v == 0) {
            Some((key, _)) if !self.unmetered => Err((key, true)),
            _ => Ok(()),
        }
    }
}

/// Tiers as TOML tables, to merge a file's keys into.
fn tier_tables(tiers: &BTreeMap<String, Tier>) -> BTreeMap<String, toml::Table> {
    tiers
        .iter()
        .map(|(name, tier)| {
            let table = toml::Table::try_from(tier).expect("a tier serializes to a table");
            (name.clone(), table)
        })
        .collect()
}

fn de_error(error: impl std::fmt::Display) -> toml::de::Error {
    <toml::de::Error as serde::de::Error>::custom(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_error(text: &str) -> String {
        match Config::from_toml(text) {
            Err(ConfigError::Toml(error)) => error.to_string(),
            other => panic!("expected a TOML error, got {other:?}"),
        }
    }

    #[test]
    fn defaults_parse_and_match_the_design() {
        let config = Config::from_toml("").unwrap();
        config.validate().unwrap();
        assert_eq!(config.listen.port(), 8080);
        let free = config.tier("free").unwrap();
        assert_eq!(
            (free.per_minute, free.per_day, free.max_concurrent),
            (10, 500, 2)
        );
        assert_eq!(free.max_memory_bytes, 128 * MIB);
        assert!(config.tier("unlimited").unwrap().unmetered);
    }

    #[test]
    fn a_file_overrides_top_level_and_sandbox_keys() {
        let config = Config::from_toml(
            "listen = \"0.0.0.0:9000\"\nshutdown_grace_secs = 5\n[sandbox]\nworkers = 3\nslice_fuel = 7\n",
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.shutdown_grace_secs, 5);
        assert_eq!((config.sandbox.workers, config.sandbox.slice_fuel), (3, 7));
        assert_eq!(config.sandbox.to_sandbox_config().slice_fuel, 7);
    }

    #[test]
    fn a_new_tier_takes_the_free_tiers_values_for_keys_it_leaves_out() {
        let config = Config::from_toml("[tiers.team]\nper_day = 100\n").unwrap();
        let team = config.tier("team").unwrap();
        assert_eq!(
            team,
            &Tier {
                per_day: 100,
                ..default_tiers()["free"].clone()
            }
        );
        assert!(config.tier("free").is_some(), "default tiers stay");
    }

    #[test]
    fn a_default_tier_is_changed_key_by_key() {
        let config = Config::from_toml("[tiers.pro]\nper_minute = 7\n").unwrap();
        assert_eq!(
            config.tier("pro").unwrap(),
            &Tier {
                per_minute: 7,
                ..default_tiers()["pro"].clone()
            }
        );
    }

    #[test]
    fn an_unknown_key_is_named() {
        assert!(
            parse_error("no_such_key = 1").contains("unknown field `no_such_key`"),
            "{}",
            parse_error("no_such_key = 1")
        );
    }

    #[test]
    fn an_unknown_sandbox_key_is_named() {
        let error = parse_error("[sandbox]\nworker = 1\n");
        assert!(error.contains("unknown field `worker`"), "{error}");
    }

    #[test]
    fn an_unknown_tier_key_is_named() {
        let error = parse_error("[tiers.team]\nper_week = 1\n");
        assert!(error.contains("unknown field `per_week`"), "{error}");
    }

    #[test]
    fn a_tier_value_of_the_wrong_type_is_refused() {
        let error = parse_error("[tiers.team]\nper_minute = \"ten\"\n");
        assert!(error.contains("expected u64"), "{error}");
        assert!(error.contains("tiers.team.per_minute"), "{error}");
    }

    #[test]
    fn a_metered_tier_without_a_per_minute_rate_is_refused() {
        let config = Config::from_toml("[tiers.team]\nper_minute = 0\n").unwrap();
        assert!(matches!(
            config.validate(),
            Err(ConfigError::TierMeteredZero { ref tier, key: "per_minute" }) if tier == "team"
        ));
    }

    #[test]
    fn a_metered_tier_without_a_stdin_write_rate_is_refused() {
        let config = Config::from_toml("[tiers.team]\nstdin_writes_per_second = 0\n").unwrap();
        assert!(matches!(
            config.validate(),
            Err(ConfigError::TierMeteredZero { ref tier, key: "stdin_writes_per_second" })
                if tier == "team"
        ));
    }

    #[test]
    fn an_unmetered_tier_may_have_no_rates() {
        let config =
            Config::from_toml("[tiers.team]\nunmetered = true\nper_minute = 0\nper_day = 0\n")
                .unwrap();
        config.validate().unwrap();
    }

    #[test]
    fn a_tier_without_fuel_is_refused() {
        let config = Config::from_toml("[tiers.team]\nmax_fuel = 0\n").unwrap();
        assert!(matches!(
            config.validate(),
            Err(ConfigError::TierNotPositive { ref tier, key: "max_fuel" }) if tier == "team"
        ));
    }

    #[test]
    fn postgres_requires_a_pepper() {
        let config = Config {
            database_url: Some("postgres://localhost/x".into()),
            ..Config::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::PepperRequired)
        ));
    }

    #[test]
    fn production_requires_a_pepper() {
        let config = Config {
            production: true,
            ..Config::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::PepperRequired)
        ));
    }

    #[test]
    fn a_short_pepper_is_refused_in_production() {
        let config = Config {
            production: true,
            pepper: Some("too-short".into()),
            ..Config::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::PepperRequired)
        ));
    }

    #[test]
    fn tls_needs_both_certificate_and_key() {
        let config = Config {
            tls_cert: Some("cert.pem".into()),
            ..Config::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::TlsHalfConfigured)
        ));
    }

    #[test]
    fn a_zero_slice_fuel_is_refused() {
        let config = Config::from_toml("[sandbox]\nslice_fuel = 0\n").unwrap();
        assert!(matches!(
            config.validate(),
            Err(ConfigError::NotPositive("sandbox.slice_fuel"))
        ));
    }

    #[test]
    fn a_zero_stream_cap_is_refused() {
        let config = Config::from_toml("max_concurrent_streams = 0").unwrap();
        assert!(matches!(
            config.validate(),
            Err(ConfigError::NotPositive("max_concurrent_streams"))
        ));
    }

    #[test]
    fn the_printed_defaults_parse_back_to_the_defaults() {
        let printed = Config::defaults_toml();
        let parsed = Config::from_toml(&printed).unwrap();
        assert_eq!(toml::to_string(&parsed).unwrap(), printed);
        assert_eq!(parsed.tiers, default_tiers());
    }

    #[test]
    fn the_printed_defaults_include_the_tiers_and_sandbox() {
        let printed = Config::defaults_toml();
        for table in ["[sandbox]", "[tiers.free]", "[tiers.unlimited]"] {
            assert!(printed.contains(table), "no {table} in:\n{printed}");
        }
        assert!(printed.contains("inline_slice_fuel = 50000"), "{printed}");
        assert!(printed.contains("slice_fuel = 20000000"), "{printed}");
    }
}
