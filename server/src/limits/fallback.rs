//! The shared backend first, the local one when it fails: a failing Redis
//! never stops service. Each decision the shared backend cannot take is
//! taken locally instead (per-minute rates at this replica's fair share),
//! logged once, and counted in the fallback metrics; the next decision
//! tries the shared backend again, so service returns to it as soon as it
//! answers.

use std::{
    convert::Infallible,
    future::Future,
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

use super::{
    backend::{Backend, BackendError, Budget, Minute, Slot, StoreError, Unreachable},
    charge::Taken,
    local::LocalBackend,
    LimitMetrics,
};

/// What a shared backend's error means here: unreachable (fall back), or
/// something no backend could decide (`Passed` on to the caller).
trait Failure {
    type Passed;
    fn unreachable(self) -> Result<Unreachable, Self::Passed>;
}

impl Failure for Unreachable {
    type Passed = Infallible;
    fn unreachable(self) -> Result<Unreachable, Infallible> {
        Ok(self)
    }
}

impl Failure for BackendError {
    type Passed = StoreError;
    fn unreachable(self) -> Result<Unreachable, StoreError> {
        match self {
            BackendError::Unreachable(unreachable) => Ok(unreachable),
            BackendError::Store(error) => Err(error),
        }
    }
}

/// `shared` in front of `local`; without a shared backend, just `local`.
pub(super) struct Fallback<S> {
    shared: Option<S>,
    local: LocalBackend,
    falling_back: AtomicBool,
    metrics: LimitMetrics,
}

impl<S: Backend> Fallback<S> {
    pub(super) fn new(shared: Option<S>, local: LocalBackend, metrics: LimitMetrics) -> Self {
        Self {
            shared,
            local,
            falling_back: AtomicBool::new(false),
            metrics,
        }
    }

    pub(super) fn shared(&self) -> Option<&S> {
        self.shared.as_ref()
    }

    /// The replicas last seen alive: the local fallback admits
    /// `1 / replicas` of each per-minute rate.
    pub(super) fn set_replicas(&self, replicas: u64) {
        self.local.fair_share.set_replicas(replicas);
    }

    /// The shared backend failed (`decided`: and a decision was taken
    /// locally instead).
    pub(super) fn fell_back(&self, error: &Unreachable, decided: bool) {
        if decided {
            self.metrics.fallback_decisions.inc();
        }
        if !self.falling_back.swap(true, Ordering::SeqCst) {
            self.metrics.fallback_active.set(1);
            tracing::error!(%error, "Redis unreachable: limiting locally at a fair share");
        }
    }

    /// The shared backend answered.
    pub(super) fn recovered(&self) {
        if self.falling_back.swap(false, Ordering::SeqCst) {
            self.metrics.fallback_active.set(0);
            tracing::warn!("Redis reachable again: shared limits restored");
        }
    }

    /// Asks the shared backend, or the local one when there is none or it
    /// is unreachable.
    async fn decide<'a, T, E, A, B>(
        &'a self,
        shared: impl FnOnce(&'a S) -> A,
        local: impl FnOnce(&'a LocalBackend) -> B,
    ) -> Result<T, E::Passed>
    where
        E: Failure,
        A: Future<Output = Result<T, E>>,
        B: Future<Output = Result<T, E::Passed>>,
    {
        if let Some(backend) = &self.shared {
            match shared(backend).await {
                Ok(answer) => {
                    self.recovered();
                    return Ok(answer);
                }
                Err(error) => self.fell_back(&error.unreachable()?, true),
            }
        }
        local(&self.local).await
    }

    /// One cell of `user_id`'s per-minute allowance in `budget`.
    pub(super) async fn take_minute(
        &self,
        budget: Budget,
        user_id: &str,
        per_minute: u64,
    ) -> Minute {
        let Ok(minute) = self
            .decide(
                |s| s.take_minute(budget, user_id, per_minute),
                |l| async move { Ok(l.minute(budget, user_id, per_minute)) },
            )
            .await;
        minute
    }

    /// One of today's executions, or `None` past `limit`.
    pub(super) async fn take_day(
        &self,
        user_id: &str,
        day: &str,
        limit: u64,
    ) -> Result<Option<Taken>, StoreError> {
        self.decide(
            |s| s.take_day(user_id, day, limit),
            |l| l.day(user_id, day, limit),
        )
        .await
    }

    /// Executions counted on `day`.
    pub(super) async fn used_on(&self, user_id: &str, day: &str) -> Result<u64, StoreError> {
        self.decide(|s| s.used_on(user_id, day), |l| l.used(user_id, day))
            .await
    }

    /// A running slot (see [`Backend::take_slot`]).
    pub(super) async fn take_slot(
        &self,
        budget: Budget,
        user_id: &str,
        limit: u32,
        lease: Duration,
        wait: bool,
    ) -> Option<Slot> {
        let Ok(slot) = self
            .decide(
                |s| s.take_slot(budget, user_id, limit, lease, wait),
                |l| async move { Ok(l.slot(budget, user_id, limit, wait).await) },
            )
            .await;
        slot
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use prometheus::{IntCounter, IntGauge};

    use super::*;
    use crate::store::Store;

    /// A shared backend that fails on demand (answering from a local
    /// backend of its own otherwise) and counts the calls it answered.
    struct Flaky {
        down: AtomicBool,
        answered: AtomicUsize,
        inner: LocalBackend,
    }

    impl Flaky {
        fn check(&self) -> Result<(), Unreachable> {
            if self.down.load(Ordering::SeqCst) {
                let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
                return Err(Unreachable(refused.into()));
            }
            self.answered.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    impl Backend for Flaky {
        async fn take_minute(
            &self,
            budget: Budget,
            user_id: &str,
            per_minute: u64,
        ) -> Result<Minute, Unreachable> {
            self.check()?;
            self.inner.take_minute(budget, user_id, per_minute).await
        }

        async fn take_day(
            &self,
            user_id: &str,
            day: &str,
            limit: u64,
        ) -> Result<Option<Taken>, BackendError> {
            self.check()?;
            self.inner.take_day(user_id, day, limit).await
        }

        async fn used_on(&self, user_id: &str, day: &str) -> Result<u64, BackendError> {
            self.check()?;
            self.inner.used_on(user_id, day).await
        }

        async fn take_slot(
            &self,
            budget: Budget,
            user_id: &str,
            limit: u32,
            lease: Duration,
            wait: bool,
        ) -> Result<Option<Slot>, Unreachable> {
            self.check()?;
            self.inner
                .take_slot(budget, user_id, limit, lease, wait)
                .await
        }
    }

    struct Setup {
        fallback: Fallback<Flaky>,
        metrics: LimitMetrics,
        _dir: tempfile::TempDir,
    }

    async fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&crate::store::sqlite_url(dir.path()))
            .await
            .unwrap();
        let metrics = LimitMetrics {
            fallback_active: IntGauge::new("fallback_active", "test").unwrap(),
            fallback_decisions: IntCounter::new("fallback_decisions", "test").unwrap(),
        };
        let flaky = Flaky {
            down: AtomicBool::new(false),
            answered: AtomicUsize::new(0),
            inner: LocalBackend::new(store.clone()),
        };
        let local = LocalBackend::new(store);
        Setup {
            fallback: Fallback::new(Some(flaky), local, metrics.clone()),
            metrics,
            _dir: dir,
        }
    }

    impl Setup {
        fn flaky(&self) -> &Flaky {
            self.fallback.shared().unwrap()
        }

        fn set_down(&self, down: bool) {
            self.flaky().down.store(down, Ordering::SeqCst);
        }

        async fn minute_taken(&self, per_minute: u64) -> bool {
            let minute = self
                .fallback
                .take_minute(Budget::Executions, "u", per_minute)
                .await;
            matches!(minute, Minute::Taken { .. })
        }
    }

    #[tokio::test]
    async fn an_answering_shared_backend_decides_and_nothing_is_counted() {
        let s = setup().await;
        assert!(s.minute_taken(10).await);
        assert_eq!(s.flaky().answered.load(Ordering::SeqCst), 1);
        assert_eq!(s.metrics.fallback_decisions.get(), 0);
        assert_eq!(s.metrics.fallback_active.get(), 0);
    }

    #[tokio::test]
    async fn an_unreachable_shared_backend_falls_back_and_counts_each_decision() {
        let s = setup().await;
        s.set_down(true);
        assert!(s.minute_taken(10).await);
        let day = s.fallback.take_day("u", "2026-01-01", 5).await.unwrap();
        assert!(day.is_some());
        assert_eq!(s.flaky().answered.load(Ordering::SeqCst), 0);
        assert_eq!(s.metrics.fallback_decisions.get(), 2);
        assert_eq!(s.metrics.fallback_active.get(), 1);
    }

    #[tokio::test]
    async fn the_fallback_admits_the_fair_share_of_the_rate() {
        let s = setup().await;
        s.fallback.set_replicas(2);
        s.set_down(true);
        assert!(s.minute_taken(4).await);
        assert!(s.minute_taken(4).await);
        assert!(!s.minute_taken(4).await, "2 of 4 per replica of two");
    }

    #[tokio::test]
    async fn the_shared_backend_decides_again_once_it_answers() {
        let s = setup().await;
        s.set_down(true);
        assert!(s.minute_taken(10).await);
        s.set_down(false);
        assert!(s.minute_taken(10).await);
        assert_eq!(s.flaky().answered.load(Ordering::SeqCst), 1);
        assert_eq!(s.metrics.fallback_decisions.get(), 1);
        assert_eq!(s.metrics.fallback_active.get(), 0);
    }

    #[tokio::test]
    async fn a_store_error_is_passed_on_not_fallen_back_from() {
        let s = setup().await;
        let lost = BackendError::Store(sqlx::Error::PoolClosed.into());
        let answer: Result<(), StoreError> = s
            .fallback
            .decide(|_| async { Err(lost) }, |_| async { Ok(()) })
            .await;
        assert!(answer.is_err(), "the local backend was not asked");
        assert_eq!(s.metrics.fallback_decisions.get(), 0);
    }

    #[tokio::test]
    async fn a_closed_redis_port_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&crate::store::sqlite_url(dir.path()))
            .await
            .unwrap();
        // Bound then dropped: nothing listens there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("redis://127.0.0.1:{port}");
        let redis = super::super::redis::RedisBackend::new(&url, store).unwrap();
        let minute = redis.take_minute(Budget::Executions, "u", 10).await;
        assert!(minute.is_err(), "refused connections are unreachable");
    }
}
