//! Who may run how much: per-minute rate limits (governor GCRA buckets, one
//! limiter per tier keyed by user), daily quotas per user and UTC day
//! (counted from usage records, so they survive restarts), and per-user
//! concurrency. Limits apply to the user, whichever key they use.

use std::{
    collections::BTreeMap,
    num::NonZeroU32,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use governor::{
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    state::keyed::DefaultKeyedStateStore,
    Quota, RateLimiter,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{config::Tier, store::Store};

type MinuteLimiter =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// `ratelimit-*` header values for a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateHeaders {
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the allowance is whole again.
    pub reset_secs: u64,
}

/// Why an execution was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("rate limit of {limit} executions per minute exceeded; retry in {} s", retry_after.as_secs())]
    PerMinute {
        limit: u64,
        retry_after: Duration,
        headers: RateHeaders,
    },
    #[error("daily quota of {limit} executions exceeded; it resets at 00:00 UTC (in {} s)", retry_after.as_secs())]
    Daily {
        limit: u64,
        retry_after: Duration,
        headers: Option<RateHeaders>,
    },
    #[error("at most {limit} executions of this user may run at once")]
    Concurrency {
        limit: u32,
        headers: Option<RateHeaders>,
    },
}

/// An admitted execution's allowance; dropping it frees the concurrency slot.
pub struct Allowance {
    pub headers: Option<RateHeaders>,
    counted: Option<Arc<AtomicU64>>,
    _concurrency: OwnedSemaphorePermit,
}

impl Allowance {
    /// Gives back today's count when the execution was refused after all
    /// (e.g. the server was busy), so quotas count admitted executions only.
    pub fn refund(mut self) {
        if let Some(counter) = self.counted.take() {
            counter.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// The limiter state of one server.
pub struct Limits {
    store: Store,
    minute: BTreeMap<String, Arc<MinuteLimiter>>,
    daily: moka::future::Cache<(String, String), Arc<AtomicU64>>,
    concurrency: moka::sync::Cache<String, Arc<Semaphore>>,
    last_remaining: moka::sync::Cache<String, (u64, std::time::Instant)>,
}

/// Today's UTC date, `YYYY-MM-DD`.
pub fn utc_day() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

fn until_utc_midnight() -> Duration {
    let now = chrono::Utc::now();
    let tomorrow = (now + chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    (tomorrow - now).to_std().unwrap_or(Duration::from_secs(1))
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Limits {
    pub fn new(store: Store, tiers: &BTreeMap<String, Tier>) -> Self {
        let minute = tiers
            .iter()
            .filter(|(_, t)| !t.unmetered)
            .map(|(name, t)| {
                let per_minute =
                    NonZeroU32::new(u32::try_from(t.per_minute).unwrap_or(u32::MAX).max(1))
                        .expect("nonzero");
                let limiter = RateLimiter::keyed(Quota::per_minute(per_minute))
                    .with_middleware::<StateInformationMiddleware>();
                (name.clone(), Arc::new(limiter))
            })
            .collect();
        Self {
            store,
            minute,
            daily: moka::future::Cache::builder()
                .time_to_live(Duration::from_secs(26 * 3600))
                .build(),
            concurrency: moka::sync::Cache::builder()
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            last_remaining: moka::sync::Cache::builder()
                .time_to_live(Duration::from_secs(120))
                .build(),
        }
    }

    fn headers_for(tier: &Tier, remaining: u64) -> RateHeaders {
        let per_cell = 60.0 / tier.per_minute.max(1) as f64;
        RateHeaders {
            limit: tier.per_minute,
            remaining,
            reset_secs: ((tier.per_minute - remaining.min(tier.per_minute)) as f64 * per_cell)
                .ceil() as u64,
        }
    }

    /// Current headers without consuming anything (for non-execution calls).
    pub fn peek(&self, user_id: &str, tier_name: &str, tier: &Tier) -> Option<RateHeaders> {
        if tier.unmetered || !self.minute.contains_key(tier_name) {
            return None;
        }
        let remaining = match self.last_remaining.get(user_id) {
            Some((remaining, at)) => {
                let refilled = (at.elapsed().as_secs_f64() * tier.per_minute as f64 / 60.0) as u64;
                (remaining + refilled).min(tier.per_minute)
            }
            None => tier.per_minute,
        };
        Some(Self::headers_for(tier, remaining))
    }

    /// Executions left today for the user (for WhoAmI).
    pub async fn remaining_today(&self, user_id: &str, tier: &Tier) -> anyhow::Result<u64> {
        if tier.unmetered {
            return Ok(u64::MAX);
        }
        let counter = self.daily_counter(user_id).await?;
        Ok(tier.per_day.saturating_sub(counter.load(Ordering::SeqCst)))
    }

    async fn daily_counter(&self, user_id: &str) -> anyhow::Result<Arc<AtomicU64>> {
        let day = utc_day();
        let store = self.store.clone();
        let key = (user_id.to_string(), day.clone());
        let user = user_id.to_string();
        self.daily
            .try_get_with(key, async move {
                let n = store.usage_count_day(&user, &day).await?;
                Ok::<_, sqlx::Error>(Arc::new(AtomicU64::new(n)))
            })
            .await
            .map_err(|e| anyhow::anyhow!("counting today's executions: {e}"))
    }

    /// Admits one execution (a batch's cases count one each) or says why
    /// not. With `wait_for_slot`, a full per-user concurrency limit waits
    /// instead of refusing (batches queue their own cases).
    pub async fn admit(
        &self,
        user_id: &str,
        tier_name: &str,
        tier: &Tier,
        wait_for_slot: bool,
    ) -> anyhow::Result<Result<Allowance, LimitError>> {
        let mut headers = None;
        let mut counted: Option<Arc<AtomicU64>> = None;
        if !tier.unmetered {
            if let Some(limiter) = self.minute.get(tier_name) {
                match limiter.check_key(&user_id.to_string()) {
                    Ok(snapshot) => {
                        let remaining = u64::from(snapshot.remaining_burst_capacity());
                        self.last_remaining
                            .insert(user_id.to_string(), (remaining, std::time::Instant::now()));
                        headers = Some(Self::headers_for(tier, remaining));
                    }
                    Err(not_until) => {
                        let wait = not_until.wait_time_from(DefaultClock::default().now());
                        self.last_remaining
                            .insert(user_id.to_string(), (0, std::time::Instant::now()));
                        return Ok(Err(LimitError::PerMinute {
                            limit: tier.per_minute,
                            retry_after: Duration::from_secs(ceil_secs(wait).max(1)),
                            headers: Self::headers_for(tier, 0),
                        }));
                    }
                }
            }
            let counter = self.daily_counter(user_id).await?;
            if counter.fetch_add(1, Ordering::SeqCst) >= tier.per_day {
                counter.fetch_sub(1, Ordering::SeqCst);
                return Ok(Err(LimitError::Daily {
                    limit: tier.per_day,
                    retry_after: Duration::from_secs(ceil_secs(until_utc_midnight()).max(1)),
                    headers,
                }));
            }
            counted = Some(counter);
        }
        let semaphore = self.concurrency.get_with(user_id.to_string(), || {
            Arc::new(Semaphore::new(tier.max_concurrent.max(1) as usize))
        });
        let permit = if wait_for_slot {
            semaphore.acquire_owned().await.ok()
        } else {
            semaphore.try_acquire_owned().ok()
        };
        match permit {
            Some(permit) => Ok(Ok(Allowance {
                headers,
                counted,
                _concurrency: permit,
            })),
            None => {
                if let Some(counter) = counted {
                    counter.fetch_sub(1, Ordering::SeqCst);
                }
                Ok(Err(LimitError::Concurrency {
                    limit: tier.max_concurrent,
                    headers,
                }))
            }
        }
    }
}
