//! Who may run how much: per-minute rate limits (GCRA), daily quotas per
//! user and UTC day (seeded from usage records, so they survive restarts),
//! and per-user concurrency, for executions and, as a budget of their own,
//! uploads. Limits apply to the user, whichever key they use.
//!
//! Each decision goes to one [`backend::Backend`]: in process
//! ([`local`]), or shared by every replica through Redis ([`redis`]) with
//! the in-process one behind it ([`fallback`]): a failing Redis never stops
//! service.

mod backend;
mod charge;
mod fallback;
mod local;
mod redis;
mod stdin_writes;
mod uploads;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use prometheus::{IntCounter, IntGauge};

pub use self::charge::Charge;
pub use self::stdin_writes::{StdinWriteLimits, StdinWritesLimited};
pub use self::uploads::{UploadLimitError, UploadPermit};
use self::{
    backend::{Budget, Minute, Slot},
    fallback::Fallback,
    local::LocalBackend,
    redis::RedisBackend,
};
use crate::{config::Tier, store::Store};

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
    /// A batch needs more executions than are left of today's quota; it is
    /// refused whole, so no case runs.
    #[error("this batch has {needed} cases but only {remaining} of today's {limit} executions are left; it resets at 00:00 UTC (in {} s)", retry_after.as_secs())]
    DailyTooSmallForBatch {
        needed: u64,
        remaining: u64,
        limit: u64,
        retry_after: Duration,
    },
}

impl LimitError {
    /// A batch of `needed` cases with `remaining` executions left today.
    pub fn daily_too_small_for_batch(needed: u64, remaining: u64, tier: &Tier) -> Self {
        LimitError::DailyTooSmallForBatch {
            needed,
            remaining,
            limit: tier.per_day,
            retry_after: retry_secs(until_utc_midnight()),
        }
    }
}

/// Why [`Limits::admit`] gave no allowance.
#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    /// A limit refused the execution: the caller's answer.
    #[error(transparent)]
    Refused(LimitError),
    /// The daily counter could not be read or written: the server's fault.
    #[error("{0:#}")]
    Counter(anyhow::Error),
}

/// Metrics the limiter reports into.
#[derive(Clone)]
pub struct LimitMetrics {
    /// 1 while this replica limits locally because Redis is unreachable.
    pub fallback_active: IntGauge,
    /// Decisions taken by the local fallback instead of Redis.
    pub fallback_decisions: IntCounter,
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
    backend: Fallback<RedisBackend>,
    /// Each user's last per-minute answer, for [`Limits::peek`].
    last_remaining: moka::sync::Cache<String, (u64, Instant)>,
    replica_id: String,
}

/// Today's UTC date, `YYYY-MM-DD`. Formatted once a day, not per run
/// (every admission asks for it).
pub fn utc_day() -> String {
    static TODAY: parking_lot::Mutex<(u64, String)> =
        parking_lot::Mutex::new((u64::MAX, String::new()));
    let day = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs() / 86_400);
    let mut today = TODAY.lock();
    if today.0 != day {
        let midnight =
            chrono::DateTime::from_timestamp((day * 86_400) as i64, 0).unwrap_or_default();
        *today = (day, midnight.format("%Y-%m-%d").to_string());
    }
    today.1.clone()
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

/// A wait as the whole seconds a client is told to retry after (at least 1).
fn retry_secs(d: Duration) -> Duration {
    Duration::from_secs((d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1))
}

/// How often a replica announces itself in Redis.
const HEARTBEAT: Duration = Duration::from_secs(3);

impl Limits {
    /// In-process limits, or shared ones when `redis_url` is given. Limits
    /// follow each call's [`Tier`], so no tier table is kept here.
    pub fn new(
        store: Store,
        redis_url: Option<&str>,
        metrics: LimitMetrics,
    ) -> anyhow::Result<Self> {
        let shared = redis_url
            .map(|url| RedisBackend::new(url, store.clone()))
            .transpose()?;
        Ok(Self {
            backend: Fallback::new(shared, LocalBackend::new(store), metrics),
            last_remaining: moka::sync::Cache::builder()
                .time_to_live(Duration::from_secs(120))
                .build(),
            replica_id: uuid::Uuid::new_v4().to_string(),
        })
    }

    /// With Redis: announces this replica every few seconds and keeps the
    /// count of live replicas (the fair share of a fallback).
    pub fn spawn_heartbeat(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        self.backend.shared()?;
        let limits = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(HEARTBEAT);
            loop {
                tick.tick().await;
                let Some(limits) = limits.upgrade() else {
                    return;
                };
                let Some(redis) = limits.backend.shared() else {
                    return;
                };
                match redis.heartbeat(&limits.replica_id).await {
                    Ok(n) => {
                        limits.backend.set_replicas(n);
                        limits.backend.recovered();
                    }
                    Err(error) => limits.backend.fell_back(&error, false),
                }
            }
        }))
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
    pub fn peek(&self, user_id: &str, _tier_name: &str, tier: &Tier) -> Option<RateHeaders> {
        if tier.unmetered {
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
        let used = self.backend.used_on(user_id, &utc_day()).await?;
        Ok(tier.per_day.saturating_sub(used))
    }

    /// Admits one execution (a batch's cases count one each) or says why
    /// not. With `wait_for_slot`, a full per-user concurrency limit waits
    /// instead of refusing (batches queue their own cases). What it takes
    /// is given back when the allowance is dropped unconfirmed, so every
    /// refusal here or later (concurrency, module not found, busy) is free.
    /// The outer error is the usage records failing to give today's count.
    pub async fn admit(
        &self,
        user_id: &str,
        tier: &Tier,
        wait_for_slot: bool,
    ) -> Result<Allowance, AdmitError> {
        let mut headers = None;
        let mut charge = Charge::default();
        if !tier.unmetered {
            let minute = self
                .backend
                .take_minute(Budget::Executions, user_id, tier.per_minute)
                .await;
            let remaining = match minute {
                Minute::Taken { remaining, cell } => {
                    charge.take(cell);
                    remaining
                }
                Minute::Refused { retry_after } => {
                    self.last_remaining
                        .insert(user_id.to_string(), (0, Instant::now()));
                    return Err(AdmitError::Refused(LimitError::PerMinute {
                        limit: tier.per_minute,
                        retry_after: retry_secs(retry_after),
                        headers: Self::headers_for(tier, 0),
                    }));
                }
            };
            self.last_remaining
                .insert(user_id.to_string(), (remaining, Instant::now()));
            headers = Some(Self::headers_for(tier, remaining));
            match self
                .backend
                .take_day(user_id, &utc_day(), tier.per_day)
                .await
                .map_err(|error| AdmitError::Counter(error.into()))?
            {
                Some(counted) => charge.take(counted),
                None => {
                    return Err(AdmitError::Refused(LimitError::Daily {
                        limit: tier.per_day,
                        retry_after: retry_secs(until_utc_midnight()),
                        headers,
                    }))
                }
            }
        }
        self.slot_for(user_id, tier, wait_for_slot, headers, charge)
            .await
    }

    /// Admits the re-run of a detached execution whose earlier attempt is
    /// on record (its replica died): that attempt took the per-minute cell
    /// and today's execution, so this one takes only its concurrency slot.
    pub async fn admit_rerun(&self, user_id: &str, tier: &Tier) -> Result<Allowance, AdmitError> {
        let headers = self.peek(user_id, "", tier);
        self.slot_for(user_id, tier, false, headers, Charge::default())
            .await
    }

    /// The per-user concurrency slot that completes an allowance (`charge`
    /// is given back when there is none).
    async fn slot_for(
        &self,
        user_id: &str,
        tier: &Tier,
        wait_for_slot: bool,
        headers: Option<RateHeaders>,
        charge: Charge,
    ) -> Result<Allowance, AdmitError> {
        // A shared slot outlives a replica that dies holding it by this much.
        let lease = Duration::from_millis(tier.max_timeout_ms) + Duration::from_secs(120);
        let slot = self
            .backend
            .take_slot(
                Budget::Executions,
                user_id,
                tier.max_concurrent,
                lease,
                wait_for_slot,
            )
            .await;
        match slot {
            Some(slot) => Ok(Allowance {
                headers,
                charge,
                _slot: slot,
            }),
            // `charge` is dropped unconfirmed: the refusal costs nothing.
            None => Err(AdmitError::Refused(LimitError::Concurrency {
                limit: tier.max_concurrent,
                headers,
            })),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cached_day_is_todays_utc_date() {
        let before = chrono::Utc::now().format("%Y-%m-%d").to_string();
        let (first, second) = (utc_day(), utc_day());
        let after = chrono::Utc::now().format("%Y-%m-%d").to_string();
        assert!(
            first == before || first == after,
            "{first} is not {before} or {after}"
        );
        assert_eq!(first, second);
    }

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

    fn metrics() -> LimitMetrics {
        LimitMetrics {
            fallback_active: IntGauge::new("fallback_active", "test").unwrap(),
            fallback_decisions: IntCounter::new("fallback_decisions", "test").unwrap(),
        }
    }

    /// Limits over a fresh SQLite store, in process or with Redis at
    /// `redis_url`.
    async fn limits_with(
        redis_url: Option<&str>,
        metrics: LimitMetrics,
    ) -> (Limits, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&crate::store::sqlite_url(dir.path()))
            .await
            .unwrap();
        (Limits::new(store, redis_url, metrics).unwrap(), dir)
    }

    /// In-process limits.
    async fn limits() -> (Limits, tempfile::TempDir) {
        limits_with(None, metrics()).await
    }

    /// A Redis URL nothing answers at (a port bound, then freed).
    fn closed_redis_url() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("redis://{}", listener.local_addr().unwrap())
    }

    async fn admit(limits: &Limits, t: &Tier) -> Result<Allowance, LimitError> {
        match limits.admit("u", t, false).await {
            Ok(allowance) => Ok(allowance),
            Err(AdmitError::Refused(refusal)) => Err(refusal),
            Err(AdmitError::Counter(error)) => panic!("counter failed: {error:#}"),
        }
    }

    #[tokio::test]
    async fn a_concurrency_refusal_gives_the_minute_and_the_day_back() {
        let t = tier(3, 100, 1);
        let (limits, _dir) = limits().await;
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
        let (limits, _dir) = limits().await;
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

    async fn rerun(limits: &Limits, t: &Tier) -> Result<Allowance, LimitError> {
        match limits.admit_rerun("u", t).await {
            Ok(allowance) => Ok(allowance),
            Err(AdmitError::Refused(refusal)) => Err(refusal),
            Err(AdmitError::Counter(error)) => panic!("counter failed: {error:#}"),
        }
    }

    #[tokio::test]
    async fn a_rerun_uses_none_of_todays_executions() {
        let t = tier(10, 100, 4);
        let (limits, _dir) = limits().await;
        let mut first = admit(&limits, &t).await.unwrap();
        first.confirm();
        let mut again = rerun(&limits, &t).await.unwrap();
        again.confirm();
        drop((first, again));
        assert_eq!(limits.remaining_today("u", &t).await.unwrap(), 99);
    }

    #[tokio::test]
    async fn a_rerun_spends_no_minute_cell() {
        let t = tier(1, 100, 4);
        let (limits, _dir) = limits().await;
        let mut again = rerun(&limits, &t).await.unwrap();
        again.confirm();
        admit(&limits, &t)
            .await
            .expect("the only cell of the minute is still there");
    }

    #[tokio::test]
    async fn a_rerun_still_needs_a_concurrency_slot() {
        let t = tier(10, 100, 1);
        let (limits, _dir) = limits().await;
        let _running = admit(&limits, &t).await.unwrap();
        assert!(matches!(
            rerun(&limits, &t).await.err(),
            Some(LimitError::Concurrency { .. })
        ));
    }

    #[tokio::test]
    async fn a_daily_refusal_gives_the_minute_back() {
        let t = tier(2, 1, 4);
        let (limits, _dir) = limits().await;
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

    #[tokio::test]
    async fn an_unreachable_redis_still_admits_and_counts_every_decision() {
        let t = tier(3, 100, 1);
        let metrics = metrics();
        let url = closed_redis_url();
        let (limits, _dir) = limits_with(Some(&url), metrics.clone()).await;
        let allowance = admit(&limits, &t).await.expect("admitted locally");
        assert_eq!(allowance.headers.unwrap().remaining, 2);
        assert_eq!(metrics.fallback_active.get(), 1);
        assert_eq!(
            metrics.fallback_decisions.get(),
            3,
            "the minute, the day and the slot"
        );
    }

    #[tokio::test]
    async fn uploads_do_not_spend_the_execution_minute() {
        let mut t = tier(1, 100, 1);
        t.uploads_per_minute = 1;
        let (limits, _dir) = limits().await;
        drop(limits.admit_upload("u", "t", &t).await.unwrap());
        let mut run = admit(&limits, &t)
            .await
            .expect("the execution minute is whole");
        run.confirm();
    }

    #[tokio::test]
    async fn an_upload_past_its_minute_is_refused() {
        let mut t = tier(10, 100, 1);
        t.uploads_per_minute = 1;
        let (limits, _dir) = limits().await;
        drop(limits.admit_upload("u", "t", &t).await.unwrap());
        assert!(matches!(
            limits.admit_upload("u", "t", &t).await.err(),
            Some(UploadLimitError::PerMinute { limit: 1, .. })
        ));
    }

    #[tokio::test]
    async fn an_upload_refused_for_concurrency_spends_no_minute() {
        let mut t = tier(10, 100, 1);
        t.uploads_per_minute = 2;
        t.max_concurrent_uploads = 1;
        let (limits, _dir) = limits().await;
        let held = limits.admit_upload("u", "t", &t).await.unwrap();
        for _ in 0..3 {
            assert!(matches!(
                limits.admit_upload("u", "t", &t).await.err(),
                Some(UploadLimitError::Concurrency { limit: 1 })
            ));
        }
        drop(held);
        limits
            .admit_upload("u", "t", &t)
            .await
            .expect("the second of two cells is still there");
    }
}
