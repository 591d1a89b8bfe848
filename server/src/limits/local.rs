//! The in-process backend: governor GCRA buckets, daily counters seeded
//! from the usage records (so they survive restarts), and a semaphore per
//! user. Alone it limits one server; behind Redis it is the fallback, at
//! this replica's [`FairShare`] of each per-minute rate.

use std::{
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
    nanos::Nanos,
    Quota, RateLimiter,
};
use tokio::sync::Semaphore;

use super::{
    backend::{Backend, BackendError, Budget, Minute, Slot, StoreError, Unreachable},
    charge::{SharedState, Taken},
};
use crate::store::Store;

/// The share of a per-minute rate one replica admits on its own: the rate
/// divided by the replicas last seen alive (1 without Redis), at least 1.
#[derive(Debug)]
pub(super) struct FairShare {
    replicas: AtomicU64,
}

impl Default for FairShare {
    fn default() -> Self {
        Self {
            replicas: AtomicU64::new(1),
        }
    }
}

impl FairShare {
    pub(super) fn set_replicas(&self, replicas: u64) {
        self.replicas.store(replicas.max(1), Ordering::Relaxed);
    }

    /// This replica's cells a minute of a `per_minute` rate.
    pub(super) fn of(&self, per_minute: u64) -> NonZeroU32 {
        let share = (per_minute / self.replicas.load(Ordering::Relaxed).max(1)).max(1);
        NonZeroU32::new(u32::try_from(share).unwrap_or(u32::MAX)).expect("at least 1")
    }
}

/// One rate's per-user limiter, with its state kept reachable so a cell
/// can be given back.
struct MinuteBucket {
    limiter: RateLimiter<String, SharedState, DefaultClock, StateInformationMiddleware>,
    state: SharedState,
    interval: Nanos,
}

impl MinuteBucket {
    fn new(per_minute: NonZeroU32) -> Self {
        let quota = Quota::per_minute(per_minute);
        let state = SharedState::default();
        Self {
            limiter: RateLimiter::new(quota, state.clone(), DefaultClock::default()),
            state,
            interval: Nanos::from(quota.replenish_interval()),
        }
    }
}

/// In-process limits of one server.
pub(super) struct LocalBackend {
    store: Store,
    pub(super) fair_share: FairShare,
    /// One bucket per budget and effective rate: tiers of the same rate
    /// share one (keyed by user, so nothing is shared between users), and
    /// a new fair share starts fresh buckets, as a new quota must.
    minute: moka::sync::Cache<(Budget, NonZeroU32), Arc<MinuteBucket>>,
    days: moka::future::Cache<(String, String), Arc<AtomicU64>>,
    running: moka::sync::Cache<(Budget, String), Arc<Semaphore>>,
}

impl LocalBackend {
    pub(super) fn new(store: Store) -> Self {
        Self {
            store,
            fair_share: FairShare::default(),
            minute: moka::sync::Cache::builder()
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            days: moka::future::Cache::builder()
                .time_to_live(Duration::from_secs(26 * 3600))
                .build(),
            running: moka::sync::Cache::builder()
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        }
    }

    async fn day_counter(&self, user_id: &str, day: &str) -> Result<Arc<AtomicU64>, StoreError> {
        let store = self.store.clone();
        let (user, today) = (user_id.to_string(), day.to_string());
        self.days
            .try_get_with((user_id.to_string(), day.to_string()), async move {
                let n = store.usage_count_day(&user, &today).await?;
                Ok::<_, sqlx::Error>(Arc::new(AtomicU64::new(n)))
            })
            .await
            .map_err(StoreError)
    }

    /// [`Backend::take_minute`], which cannot fail here.
    pub(super) fn minute(&self, budget: Budget, user_id: &str, per_minute: u64) -> Minute {
        let rate = self.fair_share.of(per_minute);
        let bucket = self
            .minute
            .get_with((budget, rate), || Arc::new(MinuteBucket::new(rate)));
        let key = user_id.to_string();
        match bucket.limiter.check_key(&key) {
            Ok(snapshot) => Minute::Taken {
                remaining: u64::from(snapshot.remaining_burst_capacity()),
                cell: Taken::LocalMinute {
                    state: bucket.state.clone(),
                    key,
                    interval: bucket.interval,
                },
            },
            Err(not_until) => Minute::Refused {
                retry_after: not_until.wait_time_from(DefaultClock::default().now()),
            },
        }
    }

    /// [`Backend::take_day`]: only the usage records can fail here.
    pub(super) async fn day(
        &self,
        user_id: &str,
        day: &str,
        limit: u64,
    ) -> Result<Option<Taken>, StoreError> {
        let counter = self.day_counter(user_id, day).await?;
        if counter.fetch_add(1, Ordering::SeqCst) >= limit {
            counter.fetch_sub(1, Ordering::SeqCst);
            return Ok(None);
        }
        Ok(Some(Taken::LocalDay(counter)))
    }

    /// [`Backend::used_on`]: only the usage records can fail here.
    pub(super) async fn used(&self, user_id: &str, day: &str) -> Result<u64, StoreError> {
        Ok(self.day_counter(user_id, day).await?.load(Ordering::SeqCst))
    }

    /// [`Backend::take_slot`], which cannot fail here. No lease: the
    /// permit dies with its holder.
    pub(super) async fn slot(
        &self,
        budget: Budget,
        user_id: &str,
        limit: u32,
        wait: bool,
    ) -> Option<Slot> {
        let semaphore = self.running.get_with((budget, user_id.to_string()), || {
            Arc::new(Semaphore::new(limit.max(1) as usize))
        });
        let permit = if wait {
            semaphore.acquire_owned().await.ok()
        } else {
            semaphore.try_acquire_owned().ok()
        };
        permit.map(Slot::Local)
    }
}

impl Backend for LocalBackend {
    async fn take_minute(
        &self,
        budget: Budget,
        user_id: &str,
        per_minute: u64,
    ) -> Result<Minute, Unreachable> {
        Ok(self.minute(budget, user_id, per_minute))
    }

    async fn take_day(
        &self,
        user_id: &str,
        day: &str,
        limit: u64,
    ) -> Result<Option<Taken>, BackendError> {
        Ok(self.day(user_id, day, limit).await?)
    }

    async fn used_on(&self, user_id: &str, day: &str) -> Result<u64, BackendError> {
        Ok(self.used(user_id, day).await?)
    }

    async fn take_slot(
        &self,
        budget: Budget,
        user_id: &str,
        limit: u32,
        _lease: Duration,
        wait: bool,
    ) -> Result<Option<Slot>, Unreachable> {
        Ok(self.slot(budget, user_id, limit, wait).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn local() -> (LocalBackend, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&crate::store::sqlite_url(dir.path()))
            .await
            .unwrap();
        (LocalBackend::new(store), dir)
    }

    async fn take(local: &LocalBackend, budget: Budget, per_minute: u64) -> Option<Taken> {
        match local.take_minute(budget, "u", per_minute).await.unwrap() {
            Minute::Taken { cell, .. } => Some(cell),
            Minute::Refused { .. } => None,
        }
    }

    #[tokio::test]
    async fn the_minute_burst_is_the_rate_and_then_refuses_with_a_wait() {
        let (local, _dir) = local().await;
        for left in [2, 1, 0] {
            match local.take_minute(Budget::Executions, "u", 3).await.unwrap() {
                Minute::Taken { remaining, .. } => assert_eq!(remaining, left),
                Minute::Refused { .. } => panic!("refused inside the burst"),
            }
        }
        match local.take_minute(Budget::Executions, "u", 3).await.unwrap() {
            Minute::Refused { retry_after } => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(20))
            }
            Minute::Taken { .. } => panic!("a fourth cell of three"),
        }
    }

    #[tokio::test]
    async fn executions_and_uploads_have_minutes_of_their_own() {
        let (local, _dir) = local().await;
        assert!(take(&local, Budget::Executions, 1).await.is_some());
        assert!(take(&local, Budget::Executions, 1).await.is_none());
        assert!(take(&local, Budget::Uploads, 1).await.is_some());
    }

    #[tokio::test]
    async fn executions_and_uploads_have_slots_of_their_own() {
        let (local, _dir) = local().await;
        let _held = local.slot(Budget::Executions, "u", 1, false).await.unwrap();
        assert!(local.slot(Budget::Uploads, "u", 1, false).await.is_some());
    }

    #[tokio::test]
    async fn a_fair_share_divides_the_rate_by_the_replicas() {
        let (local, _dir) = local().await;
        local.fair_share.set_replicas(2);
        assert!(take(&local, Budget::Executions, 4).await.is_some());
        assert!(take(&local, Budget::Executions, 4).await.is_some());
        assert!(take(&local, Budget::Executions, 4).await.is_none());
    }

    #[test]
    fn a_fair_share_is_at_least_one_cell() {
        let share = FairShare::default();
        share.set_replicas(10);
        assert_eq!(share.of(3).get(), 1);
    }

    #[tokio::test]
    async fn the_day_counts_up_to_its_limit() {
        let (local, _dir) = local().await;
        let first = local.take_day("u", "2026-01-01", 1).await.unwrap();
        assert!(first.is_some());
        assert!(local
            .take_day("u", "2026-01-01", 1)
            .await
            .unwrap()
            .is_none());
        assert_eq!(local.used_on("u", "2026-01-01").await.unwrap(), 1);
        assert_eq!(local.used_on("u", "2026-01-02").await.unwrap(), 0);
    }

    #[tokio::test]
    async fn a_slot_is_freed_when_dropped() {
        let (local, _dir) = local().await;
        let lease = Duration::from_secs(1);
        let held = local
            .take_slot(Budget::Executions, "u", 1, lease, false)
            .await
            .unwrap();
        assert!(held.is_some());
        let refused = local.take_slot(Budget::Executions, "u", 1, lease, false);
        assert!(refused.await.unwrap().is_none());
        drop(held);
        let again = local.take_slot(Budget::Executions, "u", 1, lease, false);
        assert!(again.await.unwrap().is_some());
    }
}
