//! The upload budget: uploads (`UploadModule`, `PutModule`, runs with
//! `keep_module`) have a per-minute allowance of their own per tier, apart
//! from executions, so a pipeline that uploads then runs does not spend its
//! runs on uploads (and a flood of uploads, which write to the database, is
//! stopped without touching the execution allowance); and one user has at
//! most `max_concurrent_uploads` in progress, so idle streams cannot pile
//! up. With Redis both are shared by every replica (same scripts as
//! executions, under `upload:` keys); if Redis fails, each replica limits
//! locally at the full rate.

use std::{collections::BTreeMap, num::NonZeroU32, sync::Arc, time::Duration};

use governor::{
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
    Quota, RateLimiter,
};
use tokio::sync::Semaphore;

use super::{ceil_secs, Limits, Slot};

/// Per-user GCRA of one tier's uploads (no refunds: an upload refused for
/// concurrency is refused before it takes a cell).
type MinuteLimiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;
use crate::config::Tier;

/// Why an upload was refused before any byte was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadLimitError {
    #[error("rate limit of {limit} uploads per minute exceeded; retry in {} s", retry_after.as_secs())]
    PerMinute { limit: u64, retry_after: Duration },
    #[error("at most {limit} uploads of this user may be in progress at once")]
    Concurrency { limit: u32 },
}

/// An admitted upload; dropping it frees the user's upload slot.
pub struct UploadPermit {
    _slot: Slot,
}

/// In-process upload limiters (used without Redis, or when it fails).
pub(super) struct UploadLimiters {
    minute: BTreeMap<String, Arc<MinuteLimiter>>,
    running: moka::sync::Cache<String, Arc<Semaphore>>,
}

impl UploadLimiters {
    pub(super) fn new(tiers: &BTreeMap<String, Tier>) -> Self {
        let minute = tiers
            .iter()
            .filter(|(_, t)| !t.unmetered)
            .map(|(name, t)| {
                let n = u32::try_from(t.uploads_per_minute.max(1)).unwrap_or(u32::MAX);
                let quota = Quota::per_minute(NonZeroU32::new(n).expect("at least 1"));
                let limiter =
                    RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>();
                (name.clone(), Arc::new(limiter))
            })
            .collect();
        Self {
            minute,
            running: moka::sync::Cache::builder()
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        }
    }
}

/// Redis key space of uploads, beside executions' (user ids are UUIDs).
fn upload_key(user_id: &str) -> String {
    format!("upload:{user_id}")
}

/// How long a shared upload slot lives if its replica dies holding it.
const UPLOAD_LEASE: Duration = Duration::from_secs(600);

impl Limits {
    /// Admits one upload of `user_id` or says why not. The slot is taken
    /// first, so an upload refused for concurrency spends no allowance.
    pub async fn admit_upload(
        &self,
        user_id: &str,
        tier_name: &str,
        tier: &Tier,
    ) -> Result<UploadPermit, UploadLimitError> {
        let slot =
            self.take_upload_slot(user_id, tier)
                .await
                .ok_or(UploadLimitError::Concurrency {
                    limit: tier.max_concurrent_uploads,
                })?;
        if !tier.unmetered {
            self.check_upload_minute(user_id, tier_name, tier).await?;
        }
        Ok(UploadPermit { _slot: slot })
    }

    async fn check_upload_minute(
        &self,
        user_id: &str,
        tier_name: &str,
        tier: &Tier,
    ) -> Result<(), UploadLimitError> {
        let refused = |retry_after: Duration| UploadLimitError::PerMinute {
            limit: tier.uploads_per_minute,
            retry_after: Duration::from_secs(ceil_secs(retry_after).max(1)),
        };
        if let Some(redis) = &self.redis {
            match redis
                .minute(&upload_key(user_id), tier.uploads_per_minute)
                .await
            {
                Ok(check) if check.allowed => return Ok(()),
                Ok(check) => return Err(refused(check.retry_after)),
                Err(error) => self.fell_back(&error),
            }
        }
        match self.uploads.minute.get(tier_name) {
            None => Ok(()),
            Some(limiter) => {
                limiter
                    .check_key(&user_id.to_string())
                    .map(|_| ())
                    .map_err(|not_until| {
                        refused(not_until.wait_time_from(DefaultClock::default().now()))
                    })
            }
        }
    }

    async fn take_upload_slot(&self, user_id: &str, tier: &Tier) -> Option<Slot> {
        let limit = tier.max_concurrent_uploads.max(1);
        if let Some(redis) = &self.redis {
            let member = uuid::Uuid::new_v4().to_string();
            let key = upload_key(user_id);
            match redis.acquire(&key, &member, limit, UPLOAD_LEASE).await {
                Ok(true) => {
                    return Some(Slot::Redis {
                        redis: redis.clone(),
                        user_id: key,
                        member,
                    })
                }
                Ok(false) => return None,
                Err(error) => self.fell_back(&error),
            }
        }
        let semaphore = self.uploads.running.get_with(user_id.to_string(), || {
            Arc::new(Semaphore::new(limit as usize))
        });
        semaphore.try_acquire_owned().ok().map(Slot::Local)
    }
}
