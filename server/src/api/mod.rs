//! gRPC services: one thin file per service over the shared [`AppState`],
//! with validation in [`convert`] and every error mapped in [`errors`].

pub mod account;
pub mod admin;
pub mod convert;
pub mod errors;
pub mod execution;
pub mod jobs;
pub mod modules;
pub mod server_info;
pub mod upload;

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use bytes::Bytes;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response};

use self::errors::ApiError;
use crate::{
    auth::{Authenticator, Caller},
    config::{Config, Tier},
    engine::{sha256_hex, CompiledModule, Sandbox},
    exec::result_cache::{CacheSettings, ResultCache},
    limits::{LimitMetrics, Limits},
    metrics::Metrics,
    receipts::ReceiptKeys,
    store::{Store, UsageWriter},
};

/// Everything the services share.
pub struct AppState {
    pub config: Config,
    pub store: Store,
    /// Group-committed usage records (durable before each write returns).
    pub usage: UsageWriter,
    pub sandbox: Arc<Sandbox>,
    pub auth: Authenticator,
    pub limits: Arc<Limits>,
    pub metrics: Metrics,
    /// Cancelled when the shutdown grace period ends: running guests stop.
    pub hard_stop: CancellationToken,
    /// The keys that sign execution receipts.
    pub receipt_keys: ReceiptKeys,
    /// The deterministic result cache's in-process half.
    pub result_cache: ResultCache,
    /// This replica's live interactive executions, for `WriteStdin`.
    pub sessions: Arc<crate::exec::sessions::Sessions>,
    draining: AtomicBool,
    /// (user, sha256) pairs known to be linked, to skip a query per run.
    ownership: moka::sync::Cache<(String, String), ()>,
    /// (user, sha256) pairs the user is known to have run or stored, to
    /// skip a query per run (only positive answers: a pair never becomes
    /// unseen, and one seen on another replica is found in the store).
    seen: moka::sync::Cache<(String, String), ()>,
}

/// A module ready to run.
#[derive(Clone)]
pub struct Resolved {
    pub module: Arc<CompiledModule>,
    /// The compiled module was cached *and* this account has run or stored
    /// these bytes before. The compiled code is shared by every account,
    /// but whether someone else ran the same bytes is not theirs to know.
    pub cache_hit: bool,
}

impl AppState {
    pub fn new(
        config: Config,
        store: Store,
        sandbox: Arc<Sandbox>,
        auth: Authenticator,
    ) -> anyhow::Result<Self> {
        let metrics = Metrics::new();
        let limits = Limits::new(
            store.clone(),
            config.redis_url.as_deref(),
            LimitMetrics {
                fallback_active: metrics.redis_fallback_active.clone(),
                fallback_decisions: metrics.redis_fallback_decisions.clone(),
            },
        )?;
        let receipt_keys = ReceiptKeys::load(
            config.receipt_signing_key.as_deref(),
            &config.receipt_keys_retired,
            &config.data_dir,
        )?;
        let result_cache =
            ResultCache::new(CacheSettings::from_config(&config), metrics.registry())?;
        let sessions = Arc::new(crate::exec::sessions::Sessions::default());
        if let Some(url) = config.redis_url.as_deref() {
            sessions.route_through_redis(url)?;
        }
        Ok(Self {
            sessions,
            receipt_keys,
            result_cache,
            config,
            usage: UsageWriter::spawn(store.clone()),
            store,
            sandbox,
            auth,
            limits: Arc::new(limits),
            metrics,
            hard_stop: CancellationToken::new(),
            draining: AtomicBool::new(false),
            ownership: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(std::time::Duration::from_secs(5))
                .build(),
            seen: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(std::time::Duration::from_secs(600))
                .build(),
        })
    }

    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// The caller the transport layer authenticated from this request's
    /// headers before its body was read (`transport::auth_layer`).
    pub async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, ApiError> {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or(ApiError::Unauthenticated)
    }

    /// The caller's tier (a tier removed from config is an operator error).
    pub fn tier(&self, caller: &Caller) -> Result<&Tier, ApiError> {
        self.config.tier(&caller.tier).ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!(
                "user {} has unknown tier {}",
                caller.email,
                caller.tier
            ))
        })
    }

    /// `body` with the caller's current `ratelimit-*` headers (for calls that
    /// are not executions and so consume nothing).
    pub fn respond<T>(&self, caller: &Caller, body: T) -> Response<T> {
        let mut response = Response::new(body);
        if let Some(tier) = self.config.tier(&caller.tier) {
            if let Some(headers) = self.limits.peek(&caller.user_id, &caller.tier, tier) {
                errors::insert_rate_headers(response.metadata_mut(), &headers);
            }
        }
        response
    }

    /// Refuses admin RPCs to user keys.
    pub fn require_admin(&self, caller: &Caller) -> Result<(), ApiError> {
        if caller.admin {
            Ok(())
        } else {
            Err(ApiError::PermissionDenied(
                "this call needs an admin API key",
            ))
        }
    }

    #[tracing::instrument(name = "compile", skip_all)]
    async fn compile(&self, bytes: Bytes) -> Result<Arc<CompiledModule>, ApiError> {
        // Compilation is CPU-bound and proportional to size: keep it off the
        // async workers' hot path.
        let sandbox = self.sandbox.clone();
        let compiled = tokio::task::spawn_blocking(move || sandbox.compile(&bytes))
            .await
            .map_err(|e| ApiError::Internal(e.into()))??;
        Ok(compiled)
    }

    /// Compiles inline bytes (or takes them from the cache), storing them
    /// for the caller when `keep`.
    pub async fn module_from_bytes(
        &self,
        caller: &Caller,
        bytes: Bytes,
        keep: bool,
    ) -> Result<Resolved, ApiError> {
        let sha256 = sha256_hex(&bytes);
        let resolved = match self.sandbox.cached(&sha256) {
            Some(module) => {
                self.count_cache(true);
                Resolved {
                    cache_hit: self.has_seen(&caller.user_id, &sha256).await?,
                    module,
                }
            }
            None => {
                self.count_cache(false);
                let module = self.compile(bytes.clone()).await?;
                self.sandbox.cache_insert(module.clone());
                Resolved {
                    module,
                    cache_hit: false,
                }
            }
        };
        if keep {
            let tier = self.tier(caller)?;
            let _upload = self
                .limits
                .admit_upload(&caller.user_id, &caller.tier, tier)
                .await?;
            self.keep_module(caller, &resolved.module, &bytes).await?;
        }
        Ok(resolved)
    }

    /// A module the caller stored before, by sha256.
    pub async fn module_by_sha(&self, caller: &Caller, sha256: &str) -> Result<Resolved, ApiError> {
        let key = (caller.user_id.clone(), sha256.to_string());
        let not_found = || ApiError::NotFound {
            resource_type: "module",
            name: sha256.to_string(),
        };
        if !self.ownership.contains_key(&key) {
            if self
                .store
                .module_info(&caller.user_id, sha256)
                .await?
                .is_none()
            {
                return Err(not_found());
            }
            self.ownership.insert(key, ());
        }
        if let Some(module) = self.sandbox.cached(sha256) {
            self.count_cache(true);
            return Ok(Resolved {
                module,
                cache_hit: true,
            });
        }
        let bytes = self
            .store
            .module_bytes(&caller.user_id, sha256)
            .await?
            .ok_or_else(not_found)?;
        let module = self.compile(Bytes::from(bytes)).await?;
        self.sandbox.cache_insert(module.clone());
        self.count_cache(false);
        Ok(Resolved {
            module,
            cache_hit: false,
        })
    }

    /// Remembers that the caller has a module (after storing it): it
    /// owns it, and has stored these bytes (see [`AppState::mark_seen`]).
    pub fn note_ownership(&self, user_id: &str, sha256: &str) {
        self.ownership
            .insert((user_id.to_string(), sha256.to_string()), ());
        self.mark_seen(user_id, sha256);
    }

    /// Whether `user_id` has run or stored the module `sha256`.
    async fn has_seen(&self, user_id: &str, sha256: &str) -> Result<bool, ApiError> {
        let key = (user_id.to_string(), sha256.to_string());
        if self.seen.contains_key(&key) {
            return Ok(true);
        }
        let seen = self.store.has_used_module(user_id, sha256).await?;
        if seen {
            self.seen.insert(key, ());
        }
        Ok(seen)
    }

    /// Remembers that `user_id` ran (its admission row is committed) or
    /// stored the module `sha256`.
    /// Every run calls this: a key already known is only read (which keeps
    /// it from idling out), as a moka insert costs a write op per call.
    pub fn mark_seen(&self, user_id: &str, sha256: &str) {
        let key = (user_id.to_string(), sha256.to_string());
        if self.seen.get(&key).is_none() {
            self.seen.insert(key, ());
        }
    }

    /// Forgets that the caller has a module (after deletion).
    pub fn forget_ownership(&self, user_id: &str, sha256: &str) {
        self.ownership
            .invalidate(&(user_id.to_string(), sha256.to_string()));
    }

    fn count_cache(&self, hit: bool) {
        if hit {
            self.metrics.cache_hits.inc();
        } else {
            self.metrics.cache_misses.inc();
        }
    }
}
