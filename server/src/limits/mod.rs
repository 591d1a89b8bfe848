//! Who may run how much: per-minute rate limits (GCRA token buckets: the
//! in-process governor per tier keyed by user, or one Redis script shared by
//! every replica), daily quotas per user and UTC day (seeded from usage
//! records, so they survive restarts), and per-user concurrency. Limits
//! apply to the user, whichever key they use.
//!
//! With Redis, a failing Redis never stops service: each replica falls back
//! to a local limiter at its fair share (the per-minute rate divided by the
//! replicas last seen alive), logs it, counts it in metrics, and returns to
//! Redis as soon as it answers again.

mod charge;
mod redis;
mod uploads;

use std::{
    collections::BTreeMap,
    num::NonZeroU32,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use governor::{
    clock::{Clock, DefaultClock},
    middleware::StateInformationMiddleware,
    nanos::Nanos,
    Quota, RateLimiter,
};
use parking_lot::Mutex;
use prometheus::{IntCounter, IntGauge};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

pub use self::charge::Charge;
pub use self::uploads::{UploadLimitError, UploadPermit};
use self::{
    charge::{SharedState, Taken},
    redis::RedisLimits,
};
use crate::{config::Tier, store::Store};

/// One tier's in-process per-minute limiter, with its state kept reachable
/// so a cell can be given back.
struct MinuteBucket {
    limiter: RateLimiter<String, SharedState, DefaultClock, StateInformationMiddleware>,
    state: SharedState,
    interval: Nanos,
}

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

/// Metrics the limiter reports into.
#[derive(Clone)]
pub struct LimitMetrics {
    /// 1 while this replica limits locally because Redis is unreachable.
    pub fallback_active: IntGauge,
    /// Decisions taken by the local fallback instead of Redis.
    pub fallback_decisions: IntCounter,
}

enum Slot {
    Local(#[allow(dead_code)] OwnedSemaphorePermit),
    Redis {
        redis: Arc<RedisLimits>,
        user_id: String,
        member: String,
    },
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Slot::Redis {
            redis,
            user_id,
            member,
        } = self
        {
            let (redis, user_id, member) = (
                redis.clone(),
                std::mem::take(user_id),
                std::mem::take(member),
            );
            tokio::spawn(async move {
                if let Err(error) = redis.release(&user_id, &member).await {
                    tracing::warn!(%error, "releasing a shared concurrency slot failed (it expires by itself)");
                }
            });
        }
    }
}

/// An execution's allowance: its per-user concurrency slot (freed on drop)
/// and its [`Charge`] (given back on drop unless [`Allowance::confirm`]ed).
pub struct Allowance {
    pub headers: Option<RateHeaders>,
    charge: Charge,
    _slot: Slot,
}

impl Allowance {
    /// The execution is admitted and its admission row committed: from now
    /// on it counts against the per-minute rate and today's quota.
    pub fn confirm(&mut self) {
        self.charge.confirm();
    }

    /// The execution will not be on record after all: give the charge back
    /// now (the concurrency slot stays held until the run has stopped).
    pub fn give_back(&mut self) {
        drop(std::mem::take(&mut self.charge));
    }
}

/// The limiter state of one server.
pub struct Limits {
    store: Store,
    minute: BTreeMap<String, Arc<MinuteBucket>>,
    fair_share: Mutex<(u64, BTreeMap<String, Arc<MinuteBucket>>)>,
    per_minute: BTreeMap<String, u64>,
    daily: moka::future::Cache<(String, String), Arc<AtomicU64>>,
    concurrency: moka::sync::Cache<String, Arc<Semaphore>>,
    last_remaining: moka::sync::Cache<String, (u64, std::time::Instant)>,
    redis: Option<Arc<RedisLimits>>,
    replicas: AtomicU64,
    falling_back: AtomicBool,
    metrics: LimitMetrics,
    replica_id: String,
    uploads: uploads::UploadLimiters,
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

fn limiters(tiers: &BTreeMap<String, u64>, share: u64) -> BTreeMap<String, Arc<MinuteBucket>> {
    tiers
        .iter()
        .map(|(name, per_minute)| {
            let n = u32::try_from((per_minute / share.max(1)).max(1)).unwrap_or(u32::MAX);
            let quota = Quota::per_minute(NonZeroU32::new(n).expect("at least 1"));
            let state = SharedState::default();
            let limiter = RateLimiter::<_, _, _, StateInformationMiddleware>::new(
                quota,
                state.clone(),
                DefaultClock::default(),
            );
            let bucket = MinuteBucket {
                limiter,
                state,
                interval: Nanos::from(quota.replenish_interval()),
            };
            (name.clone(), Arc::new(bucket))
        })
        .collect()
}

impl Limits {
    /// In-process limits, or shared ones when `redis_url` is given.
    pub fn new(
        store: Store,
        tiers: &BTreeMap<String, Tier>,
        redis_url: Option<&str>,
        metrics: LimitMetrics,
    ) -> anyhow::Result<Self> {
        let per_minute: BTreeMap<String, u64> = tiers
            .iter()
            .filter(|(_, t)| !t.unmetered)
            .map(|(name, t)| (name.clone(), t.per_minute))
            .collect();
        let redis = redis_url.map(RedisLimits::new).transpose()?.map(Arc::new);
        Ok(Self {
            store,
            minute: limiters(&per_minute, 1),
            fair_share: Mutex::new((1, limiters(&per_minute, 1))),
            per_minute,
            daily: moka::future::Cache::builder()
                .time_to_live(Duration::from_secs(26 * 3600))
                .build(),
            concurrency: moka::sync::Cache::builder()
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            last_remaining: moka::sync::Cache::builder()
                .time_to_live(Duration::from_secs(120))
                .build(),
            redis,
            replicas: AtomicU64::new(1),
            falling_back: AtomicBool::new(false),
            metrics,
            replica_id: uuid::Uuid::new_v4().to_string(),
            uploads: uploads::UploadLimiters::new(tiers),
        })
    }

    /// With Redis: announces this replica every few seconds and keeps the
    /// count of live replicas (the fair share of a fallback).
    pub fn spawn_heartbeat(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let redis = self.redis.clone()?;
        let limits = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3));
            loop {
                tick.tick().await;
                let Some(limits) = limits.upgrade() else {
                    return;
                };
                match redis.heartbeat(&limits.replica_id).await {
                    Ok(n) => {
                        limits.replicas.store(n, Ordering::Relaxed);
                        limits.recovered();
                    }
                    Err(error) => limits.fell_back(&error),
                }
            }
        }))
    }

    fn fell_back(&self, error: &::redis::RedisError) {
        self.metrics.fallback_decisions.inc();
        if !self.falling_back.swap(true, Ordering::SeqCst) {
            self.metrics.fallback_active.set(1);
            tracing::error!(%error, "Redis unreachable: limiting locally at a fair share");
        }
    }

    fn recovered(&self) {
        if self.falling_back.swap(false, Ordering::SeqCst) {
            self.metrics.fallback_active.set(0);
            tracing::warn!("Redis reachable again: shared limits restored");
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
        if tier.unmetered || !self.per_minute.contains_key(tier_name) {
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
            return Ok(0);
        }
        if let Some(redis) = &self.redis {
            match redis.daily_used(user_id, &utc_day()).await {
                Ok(Some(used)) => return Ok(tier.per_day.saturating_sub(used)),
                Ok(None) => {
                    let used = self.store.usage_count_day(user_id, &utc_day()).await?;
                    return Ok(tier.per_day.saturating_sub(used));
                }
                Err(error) => self.fell_back(&error),
            }
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

    /// The per-minute decision: `Ok((remaining, the cell taken))` (no cell
    /// for a tier without a limiter) or the refusal.
    async fn check_minute(
        &self,
        user_id: &str,
        tier_name: &str,
        tier: &Tier,
    ) -> Result<(u64, Option<Taken>), LimitError> {
        let refused = |retry_after: Duration| LimitError::PerMinute {
            limit: tier.per_minute,
            retry_after: Duration::from_secs(ceil_secs(retry_after).max(1)),
            headers: Self::headers_for(tier, 0),
        };
        let local = |bucket: Option<Arc<MinuteBucket>>| match bucket {
            None => Ok((tier.per_minute, None)),
            Some(bucket) => {
                let key = user_id.to_string();
                match bucket.limiter.check_key(&key) {
                    Ok(snapshot) => Ok((
                        u64::from(snapshot.remaining_burst_capacity()),
                        Some(Taken::LocalMinute {
                            state: bucket.state.clone(),
                            key,
                            interval: bucket.interval,
                        }),
                    )),
                    Err(not_until) => Err(refused(
                        not_until.wait_time_from(DefaultClock::default().now()),
                    )),
                }
            }
        };
        if let Some(redis) = &self.redis {
            match redis.minute(user_id, tier.per_minute).await {
                Ok(check) => {
                    self.recovered();
                    return if check.allowed {
                        Ok((
                            check.remaining,
                            Some(Taken::RedisMinute {
                                redis: redis.clone(),
                                user_id: user_id.to_string(),
                                per_minute: tier.per_minute,
                            }),
                        ))
                    } else {
                        Err(refused(check.retry_after))
                    };
                }
                Err(error) => {
                    self.fell_back(&error);
                    return local(self.fair_share_limiter(tier_name));
                }
            }
        }
        local(self.minute.get(tier_name).cloned())
    }

    fn fair_share_limiter(&self, tier_name: &str) -> Option<Arc<MinuteBucket>> {
        let replicas = self.replicas.load(Ordering::Relaxed).max(1);
        let mut share = self.fair_share.lock();
        if share.0 != replicas {
            *share = (replicas, limiters(&self.per_minute, replicas));
        }
        share.1.get(tier_name).cloned()
    }

    /// Counts one execution against today's quota.
    async fn check_daily(&self, user_id: &str, tier: &Tier) -> anyhow::Result<Result<Taken, ()>> {
        let day = utc_day();
        if let Some(redis) = &self.redis {
            let mut seeded = redis.daily(user_id, &day, None, tier.per_day).await;
            if let Ok(None) = seeded {
                let from_db = self.store.usage_count_day(user_id, &day).await?;
                seeded = redis
                    .daily(user_id, &day, Some(from_db), tier.per_day)
                    .await;
            }
            match seeded {
                Ok(Some((true, _))) => {
                    return Ok(Ok(Taken::RedisDay {
                        redis: redis.clone(),
                        user_id: user_id.to_string(),
                        day,
                    }))
                }
                Ok(_) => return Ok(Err(())),
                Err(error) => self.fell_back(&error),
            }
        }
        let counter = self.daily_counter(user_id).await?;
        if counter.fetch_add(1, Ordering::SeqCst) >= tier.per_day {
            counter.fetch_sub(1, Ordering::SeqCst);
            return Ok(Err(()));
        }
        Ok(Ok(Taken::LocalDay(counter)))
    }

    async fn take_slot(&self, user_id: &str, tier: &Tier, wait: bool) -> Option<Slot> {
        if let Some(redis) = &self.redis {
            let member = uuid::Uuid::new_v4().to_string();
            let lease = Duration::from_millis(tier.max_timeout_ms) + Duration::from_secs(120);
            loop {
                match redis
                    .acquire(user_id, &member, tier.max_concurrent.max(1), lease)
                    .await
                {
                    Ok(true) => {
                        return Some(Slot::Redis {
                            redis: redis.clone(),
                            user_id: user_id.to_string(),
                            member,
                        })
                    }
                    Ok(false) if wait => tokio::time::sleep(Duration::from_millis(20)).await,
                    Ok(false) => return None,
                    Err(error) => {
                        self.fell_back(&error);
                        break;
                    }
                }
            }
        }
        let semaphore = self.concurrency.get_with(user_id.to_string(), || {
            Arc::new(Semaphore::new(tier.max_concurrent.max(1) as usize))
        });
        let permit = if wait {
            semaphore.acquire_owned().await.ok()
        } else {
            semaphore.try_acquire_owned().ok()
        };
        permit.map(Slot::Local)
    }

    /// Admits one execution (a batch's cases count one each) or says why
    /// not. With `wait_for_slot`, a full per-user concurrency limit waits
    /// instead of refusing (batches queue their own cases). What it takes
    /// is given back when the allowance is dropped unconfirmed, so every
    /// refusal here or later (concurrency, module not found, busy) is free.
    pub async fn admit(
        &self,
        user_id: &str,
        tier_name: &str,
        tier: &Tier,
        wait_for_slot: bool,
    ) -> anyhow::Result<Result<Allowance, LimitError>> {
        let mut headers = None;
        let mut charge = Charge::default();
        if !tier.unmetered {
            let remaining = match self.check_minute(user_id, tier_name, tier).await {
                Ok((remaining, cell)) => {
                    if let Some(cell) = cell {
                        charge.take(cell);
                    }
                    remaining
                }
                Err(refusal) => {
                    self.last_remaining
                        .insert(user_id.to_string(), (0, std::time::Instant::now()));
                    return Ok(Err(refusal));
                }
            };
            self.last_remaining
                .insert(user_id.to_string(), (remaining, std::time::Instant::now()));
            headers = Some(Self::headers_for(tier, remaining));
            match self.check_daily(user_id, tier).await? {
                Ok(counted) => charge.take(counted),
                Err(()) => {
                    return Ok(Err(LimitError::Daily {
                        limit: tier.per_day,
                        retry_after: Duration::from_secs(ceil_secs(until_utc_midnight()).max(1)),
                        headers,
                    }))
                }
            }
        }
        match self.take_slot(user_id, tier, wait_for_slot).await {
            Some(slot) => Ok(Ok(Allowance {
                headers,
                charge,
                _slot: slot,
            })),
            None => {
                // `charge` is dropped unconfirmed: the refusal costs nothing.
                Ok(Err(LimitError::Concurrency {
                    limit: tier.max_concurrent,
                    headers,
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(per_minute: u64, per_day: u64, max_concurrent: u32) -> Tier {
        Tier {
            per_minute,
            per_day,
            max_module_bytes: 1 << 20,
            max_stdin_bytes: 1 << 20,
            max_memory_bytes: 1 << 20,
            max_fuel: 1_000,
            max_timeout_ms: 1_000,
            max_output_bytes: 1 << 20,
            max_concurrent,
            unmetered: false,
            ..crate::config::default_tiers()["free"].clone()
        }
    }

    /// In-process limits over a fresh SQLite store, with one tier `t`.
    async fn limits(t: &Tier) -> (Limits, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&crate::store::sqlite_url(dir.path()))
            .await
            .unwrap();
        let metrics = LimitMetrics {
            fallback_active: IntGauge::new("fallback_active", "test").unwrap(),
            fallback_decisions: IntCounter::new("fallback_decisions", "test").unwrap(),
        };
        let tiers = BTreeMap::from([("t".to_string(), t.clone())]);
        (Limits::new(store, &tiers, None, metrics).unwrap(), dir)
    }

    async fn admit(limits: &Limits, t: &Tier) -> Result<Allowance, LimitError> {
        limits.admit("u", "t", t, false).await.unwrap()
    }

    #[tokio::test]
    async fn a_concurrency_refusal_gives_the_minute_and_the_day_back() {
        let t = tier(3, 100, 1);
        let (limits, _dir) = limits(&t).await;
        let mut running = admit(&limits, &t).await.unwrap();
        running.confirm();
        for _ in 0..5 {
            assert!(matches!(
                admit(&limits, &t).await.err(),
                Some(LimitError::Concurrency { .. })
            ));
        }
        assert_eq!(limits.remaining_today("u", &t).await.unwrap(), 99);
        drop(running);
        let next = admit(&limits, &t)
            .await
            .expect("the minute was not used up");
        assert_eq!(
            next.headers.unwrap().remaining,
            1,
            "two of three cells used"
        );
    }

    #[tokio::test]
    async fn an_unconfirmed_allowance_costs_nothing() {
        let t = tier(2, 100, 4);
        let (limits, _dir) = limits(&t).await;
        for _ in 0..5 {
            drop(admit(&limits, &t).await.unwrap());
        }
        assert_eq!(limits.remaining_today("u", &t).await.unwrap(), 100);
        let mut kept = admit(&limits, &t).await.unwrap();
        kept.confirm();
        drop(kept);
        assert_eq!(limits.remaining_today("u", &t).await.unwrap(), 99);
        assert_eq!(
            admit(&limits, &t).await.unwrap().headers.unwrap().remaining,
            0,
            "one confirmed cell of two, and this one"
        );
    }

    #[tokio::test]
    async fn a_daily_refusal_gives_the_minute_back() {
        let t = tier(2, 1, 4);
        let (limits, _dir) = limits(&t).await;
        let mut first = admit(&limits, &t).await.unwrap();
        first.confirm();
        // Each refusal takes the last minute cell and gives it back: had it
        // kept it, the next check would be refused by the minute instead.
        for _ in 0..3 {
            assert!(matches!(
                admit(&limits, &t).await.err(),
                Some(LimitError::Daily { .. })
            ));
        }
    }
}
