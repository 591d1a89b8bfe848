//! One configuration struct for flags, environment and an optional TOML
//! file. Every field has a documented default; `wasmwiz-server serve` works
//! with none given (SQLite in `./wasmwiz-data`, in-process limits).

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use serde::Deserialize;

use crate::engine::SandboxConfig;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

/// Server configuration. TOML keys are the field names.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on for gRPC, grpc-web and HTTP. Default 127.0.0.1:8080.
    pub listen: SocketAddr,
    /// Directory for the embedded SQLite database and the generated key
    /// pepper. Default `./wasmwiz-data`.
    pub data_dir: PathBuf,
    /// `sqlite://…` or `postgres://…`; default: SQLite file in `data_dir`.
    pub database_url: Option<String>,
    /// Redis URL for rate limits shared by several replicas; default: in-process.
    pub redis_url: Option<String>,
    /// Secret for hashing API keys (HMAC-SHA256), hex or text. Default: generated
    /// once into `data_dir/pepper`; required with PostgreSQL or `production`.
    pub pepper: Option<String>,
    /// Production mode: JSON logs, and a configured `pepper` is mandatory.
    pub production: bool,
    /// PEM certificate chain and private key for TLS (both or neither).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Origins allowed by CORS for grpc-web; `["*"]` (the default) allows any
    /// origin, which is safe here because auth is a bearer header, not a cookie.
    pub cors_origins: Vec<String>,
    /// Seconds running executions get to finish after SIGTERM. Default 30.
    pub shutdown_grace_secs: u64,
    /// Days usage records are kept. Default 30.
    pub usage_retention_days: u32,
    /// Seconds an authenticated key stays cached (bounds how long a revoked
    /// key keeps working). Default 2.
    pub key_cache_secs: u64,
    /// HTTP/2 streams open at once on one connection. Default 100.
    pub max_concurrent_streams: u32,
    /// Connections open at once from one IP address. Default 64.
    pub max_connections_per_ip: usize,
    /// Connections open at once in total; 0 (the default) derives the cap
    /// from the process's file-descriptor limit (see `transport::fd_limit`).
    pub max_connections: usize,
    /// Seconds a new connection has to finish TLS and send the headers of
    /// its first request (HTTP/2 preface included). Default 10.
    pub handshake_timeout_secs: u64,
    /// Seconds a connection with no open request (stream) is kept. Default 300.
    pub idle_timeout_secs: u64,
    /// Seconds one request message may take to arrive once its first byte
    /// has (streams may be quiet between messages). Default 30.
    pub message_timeout_secs: u64,
    /// A message also gets one second per this many bytes it declares, so a
    /// large upload on a slow link is not cut; 0: no allowance. Default 1 MiB.
    pub message_min_bytes_per_sec: u64,
    /// Largest request message of an unauthenticated call (health,
    /// reflection), and the body cap of the HTTP routes, bytes. Default 64 KiB.
    pub anonymous_message_bytes: usize,
    /// Bytes an authenticated message may carry beyond its tier's
    /// `max_module_bytes + max_stdin_bytes` (arguments, environment, fields).
    /// Default 1 MiB.
    pub message_overhead_bytes: usize,
    /// Execution engine resources.
    pub sandbox: SandboxSettings,
    /// Tiers by name; defaults: free, basic, pro, unlimited (DESIGN.md).
    pub tiers: BTreeMap<String, Tier>,
}

/// Server-wide sandbox resources.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxSettings {
    /// Worker threads for guest code. Default: number of cores.
    pub workers: usize,
    /// Executions running at once. Default 64.
    pub max_running: usize,
    /// Sum of running executions' memory limits, MiB. Default 8192.
    pub memory_budget_mib: u64,
    /// Executions allowed to wait for a slot. Default 256.
    pub max_queue: usize,
    /// Milliseconds one may wait before UNAVAILABLE. Default 10000.
    pub max_queue_wait_ms: u64,
    /// Percent of `memory_budget_mib` one user may hold at once. Default 25
    /// (2 GiB of the default 8 GiB: the largest default tier's 1 GiB fits).
    pub tenant_memory_share_percent: u32,
    /// Percent of `max_running` one user may hold at once. Default 25 (16
    /// of 64). A tier's `max_concurrent` above this share waits in the
    /// queue for the rest.
    pub tenant_running_share_percent: u32,
    /// Compiled-module cache size, MiB of module bytes. Default 512.
    pub module_cache_mib: u64,
}

/// One tier's allowances. Limits requested as 0 get the maximum.
///
/// Fields added after the first release have serde defaults (the `free`
/// tier's values) so operators' existing `[tiers.NAME]` tables keep parsing.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
    #[serde(default)]
    pub unmetered: bool,
    /// Bytes of modules one account may keep stored; 0 = no limit.
    #[serde(default = "tier_defaults::max_stored_bytes")]
    pub max_stored_bytes: u64,
    /// Modules one account may keep stored; 0 = no limit.
    #[serde(default = "tier_defaults::max_stored_modules")]
    pub max_stored_modules: u64,
    /// Uploads (UploadModule, PutModule, runs with `keep_module`) per
    /// minute, a budget of their own (ignored when `unmetered`).
    #[serde(default = "tier_defaults::uploads_per_minute")]
    pub uploads_per_minute: u64,
    /// Uploads of one user in progress at once.
    #[serde(default = "tier_defaults::max_concurrent_uploads")]
    pub max_concurrent_uploads: u32,
    /// An upload stream that sends no message for this long is ended.
    #[serde(default = "tier_defaults::upload_idle_timeout_ms")]
    pub upload_idle_timeout_ms: u64,
    /// Items of args and env together (program_name included).
    #[serde(default = "tier_defaults::max_args")]
    pub max_args: u32,
    /// Bytes of args and env together as the guest sees them (`arg\0`,
    /// `NAME=value\0`).
    #[serde(default = "tier_defaults::max_args_bytes")]
    pub max_args_bytes: u64,
    /// Live API keys per account that self-service `CreateMyApiKey` may
    /// reach (operators' `CreateApiKey` is not capped).
    #[serde(default = "tier_defaults::max_api_keys")]
    pub max_api_keys: u32,
    /// Cases in one `RunBatch` request.
    #[serde(default = "tier_defaults::max_batch_cases")]
    pub max_batch_cases: u32,
}

/// Defaults of the fields added to [`Tier`] later: the `free` tier's.
mod tier_defaults {
    use super::{KIB, MIB};

    pub fn max_stored_bytes() -> u64 {
        64 * MIB
    }
    pub fn max_stored_modules() -> u64 {
        50
    }
    pub fn uploads_per_minute() -> u64 {
        10
    }
    pub fn max_concurrent_uploads() -> u32 {
        2
    }
    pub fn upload_idle_timeout_ms() -> u64 {
        30_000
    }
    pub fn max_args() -> u32 {
        256
    }
    pub fn max_args_bytes() -> u64 {
        64 * KIB
    }
    pub fn max_api_keys() -> u32 {
        100
    }
    pub fn max_batch_cases() -> u32 {
        100
    }
}

/// Storage, upload, command-line and key allowances of one default tier.
struct TierExtras {
    stored_bytes: u64,
    stored_modules: u64,
    uploads_per_minute: u64,
    concurrent_uploads: u32,
    args: u32,
    args_bytes: u64,
    api_keys: u32,
    batch_cases: u32,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        let defaults = SandboxConfig::default();
        Self {
            workers: defaults.workers,
            max_running: defaults.max_running,
            memory_budget_mib: defaults.memory_budget_bytes / MIB,
            max_queue: defaults.max_queue,
            max_queue_wait_ms: defaults.max_queue_wait.as_millis() as u64,
            tenant_memory_share_percent: defaults.tenant_memory_share_percent,
            tenant_running_share_percent: defaults.tenant_running_share_percent,
            module_cache_mib: defaults.module_cache_bytes / MIB,
        }
    }
}

impl SandboxSettings {
    pub fn to_sandbox_config(&self) -> SandboxConfig {
        SandboxConfig {
            workers: self.workers,
            max_running: self.max_running,
            memory_budget_bytes: self.memory_budget_mib * MIB,
            max_queue: self.max_queue,
            max_queue_wait: Duration::from_millis(self.max_queue_wait_ms),
            tenant_memory_share_percent: self.tenant_memory_share_percent,
            tenant_running_share_percent: self.tenant_running_share_percent,
            module_cache_bytes: self.module_cache_mib * MIB,
            ..SandboxConfig::default()
        }
    }
}

/// The default tiers: free, basic, pro, unlimited.
pub fn default_tiers() -> BTreeMap<String, Tier> {
    let tier = |per_minute,
                per_day,
                module,
                stdin,
                memory,
                fuel,
                timeout_s: u64,
                output,
                concurrent,
                unmetered,
                extras: TierExtras| Tier {
        per_minute,
        per_day,
        max_module_bytes: module,
        max_stdin_bytes: stdin,
        max_memory_bytes: memory,
        max_fuel: fuel,
        max_timeout_ms: timeout_s * 1000,
        max_output_bytes: output,
        max_concurrent: concurrent,
        unmetered,
        max_stored_bytes: extras.stored_bytes,
        max_stored_modules: extras.stored_modules,
        uploads_per_minute: extras.uploads_per_minute,
        max_concurrent_uploads: extras.concurrent_uploads,
        upload_idle_timeout_ms: tier_defaults::upload_idle_timeout_ms(),
        max_args: extras.args,
        max_args_bytes: extras.args_bytes,
        max_api_keys: extras.api_keys,
        max_batch_cases: extras.batch_cases,
    };
    BTreeMap::from([
        (
            "free".into(),
            tier(
                10,
                500,
                10 * MIB,
                MIB,
                128 * MIB,
                1_000_000_000_000,
                5,
                MIB,
                2,
                false,
                TierExtras {
                    stored_bytes: 64 * MIB,
                    stored_modules: 50,
                    uploads_per_minute: 10,
                    concurrent_uploads: 2,
                    args: 256,
                    args_bytes: 64 * KIB,
                    api_keys: 100,
                    batch_cases: 100,
                },
            ),
        ),
        (
            "basic".into(),
            tier(
                100,
                10_000,
                50 * MIB,
                16 * MIB,
                256 * MIB,
                10_000_000_000_000,
                30,
                16 * MIB,
                8,
                false,
                TierExtras {
                    stored_bytes: GIB,
                    stored_modules: 500,
                    uploads_per_minute: 100,
                    concurrent_uploads: 4,
                    args: 1024,
                    args_bytes: 256 * KIB,
                    api_keys: 100,
                    batch_cases: 1000,
                },
            ),
        ),
        (
            "pro".into(),
            tier(
                500,
                50_000,
                256 * MIB,
                256 * MIB,
                GIB,
                100_000_000_000_000,
                120,
                256 * MIB,
                32,
                false,
                TierExtras {
                    stored_bytes: 16 * GIB,
                    stored_modules: 5000,
                    uploads_per_minute: 500,
                    concurrent_uploads: 8,
                    args: 4096,
                    args_bytes: MIB,
                    api_keys: 100,
                    batch_cases: 10_000,
                },
            ),
        ),
        (
            "unlimited".into(),
            tier(
                0,
                0,
                256 * MIB,
                256 * MIB,
                GIB,
                100_000_000_000_000,
                120,
                256 * MIB,
                256,
                true,
                TierExtras {
                    stored_bytes: 0,
                    stored_modules: 0,
                    uploads_per_minute: 0,
                    concurrent_uploads: 64,
                    args: 4096,
                    args_bytes: MIB,
                    api_keys: 1000,
                    batch_cases: 10_000,
                },
            ),
        ),
    ])
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
            sandbox: SandboxSettings::default(),
            tiers: default_tiers(),
        }
    }
}

impl Config {
    /// Parses a TOML file over the defaults. Tiers given in the file are
    /// added to (or replace same-named) default tiers.
    pub fn from_toml(text: &str) -> anyhow::Result<Self> {
        let mut config: Config = toml::from_str(text)?;
        let mut tiers = default_tiers();
        tiers.extend(std::mem::take(&mut config.tiers));
        config.tiers = tiers;
        Ok(config)
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
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            anyhow::bail!("tls_cert and tls_key must be given together");
        }
        let uses_postgres = self.database_url().starts_with("postgres");
        if (self.production || uses_postgres) && self.pepper.as_deref().unwrap_or("").len() < 16 {
            anyhow::bail!(
                "a `pepper` of at least 16 characters is required with PostgreSQL or in production \
                 (set WASMWIZ_PEPPER or `pepper` in the config file); keys are hashed with it"
            );
        }
        if self.max_concurrent_streams == 0
            || self.max_connections_per_ip == 0
            || self.handshake_timeout_secs == 0
            || self.idle_timeout_secs == 0
            || self.message_timeout_secs == 0
        {
            anyhow::bail!(
                "max_concurrent_streams, max_connections_per_ip, handshake_timeout_secs, \
                 idle_timeout_secs and message_timeout_secs must be positive"
            );
        }
        for (name, tier) in &self.tiers {
            if tier.max_fuel == 0 || tier.max_timeout_ms == 0 || tier.max_memory_bytes == 0 {
                anyhow::bail!(
                    "tier `{name}`: max_fuel, max_timeout_ms and max_memory_bytes must be positive"
                );
            }
            if !tier.unmetered
                && (tier.per_minute == 0 || tier.per_day == 0 || tier.uploads_per_minute == 0)
            {
                anyhow::bail!(
                    "tier `{name}`: per_minute, per_day and uploads_per_minute must be positive \
                     unless unmetered"
                );
            }
            if tier.max_concurrent_uploads == 0 || tier.upload_idle_timeout_ms == 0 {
                anyhow::bail!(
                    "tier `{name}`: max_concurrent_uploads and upload_idle_timeout_ms must be positive"
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_file_overrides_fields_and_adds_tiers() {
        let config = Config::from_toml(
            r#"
            listen = "0.0.0.0:9000"
            shutdown_grace_secs = 5
            [sandbox]
            workers = 3
            [tiers.team]
            per_minute = 50
            per_day = 100
            max_module_bytes = 1000
            max_stdin_bytes = 1000
            max_memory_bytes = 65536
            max_fuel = 1000
            max_timeout_ms = 1000
            max_output_bytes = 1000
            max_concurrent = 1
            "#,
        )
        .unwrap();
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.sandbox.workers, 3);
        let team = config.tier("team").unwrap();
        assert_eq!(team.per_day, 100);
        // Fields the file leaves out get the free tier's values.
        let free = config.tier("free").unwrap();
        assert_eq!(
            (team.max_stored_bytes, team.max_args, team.max_api_keys),
            (free.max_stored_bytes, free.max_args, free.max_api_keys)
        );
        assert!(config.tier("free").is_some());
        assert!(Config::from_toml("no_such_key = 1").is_err());
    }

    #[test]
    fn postgres_requires_a_pepper() {
        let config = Config {
            database_url: Some("postgres://localhost/x".into()),
            ..Config::default()
        };
        assert!(config.validate().is_err());
    }
}
