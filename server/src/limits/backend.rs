//! What a rate-limit backend does: the per-minute GCRA, the daily quota and
//! per-user running slots. Implemented in process ([`super::local`]) and in
//! Redis ([`super::redis`]); [`super::fallback`] puts one in front of the
//! other.
//!
//! There are no refund or release methods: what a take returns gives
//! itself back (a [`Taken`] through its [`super::Charge`], a [`Slot`] on
//! drop). Guards are dropped synchronously, possibly long after the call
//! that took them, so each carries what it needs to return itself.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::sync::OwnedSemaphorePermit;

use super::{charge::Taken, redis::RedisLimits};

/// Which allowance a call draws on: executions and uploads have budgets of
/// their own, so uploads never spend runs (and the other way round).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Budget {
    Executions,
    Uploads,
}

/// The shared backend did not answer: limit locally instead. (A refusal
/// is an answer, not an error.)
#[derive(Debug, thiserror::Error)]
#[error("shared limits unreachable: {0}")]
pub(super) struct Unreachable(#[from] pub(super) redis::RedisError);

/// Today's count could not be read from the usage records: no backend can
/// decide the daily quota then, so this is passed on, not fallen back from.
#[derive(Debug, Clone, thiserror::Error)]
#[error("counting today's executions: {0}")]
pub(super) struct StoreError(#[source] pub(super) Arc<sqlx::Error>);

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        Self(Arc::new(error))
    }
}

/// Why the daily quota could not be decided.
#[derive(Debug, thiserror::Error)]
pub(super) enum BackendError {
    #[error(transparent)]
    Unreachable(#[from] Unreachable),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<redis::RedisError> for BackendError {
    fn from(error: redis::RedisError) -> Self {
        Self::Unreachable(error.into())
    }
}

/// One per-minute decision.
pub(super) enum Minute {
    /// A cell was taken; `remaining` more fit in the burst now.
    Taken { remaining: u64, cell: Taken },
    /// The burst is spent; a cell frees up after `retry_after`.
    Refused { retry_after: Duration },
}

/// A running slot, freed when dropped.
pub(super) enum Slot {
    Local(#[allow(dead_code)] OwnedSemaphorePermit),
    Redis {
        redis: Arc<RedisLimits>,
        key: String,
        member: String,
    },
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Slot::Redis { redis, key, member } = self {
            let (redis, key, member) = (redis.clone(), std::mem::take(key), std::mem::take(member));
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(error) = redis.release(&key, &member).await {
                        tracing::warn!(%error, "releasing a shared running slot failed (it expires by itself)");
                    }
                });
            }
        }
    }
}

/// The operations every backend answers. Keys are user ids; `budget`
/// keeps executions and uploads apart.
pub(super) trait Backend: Send + Sync {
    /// Takes one cell of `user_id`'s per-minute allowance in `budget`, at
    /// `per_minute` cells a minute (which is also the burst).
    fn take_minute(
        &self,
        budget: Budget,
        user_id: &str,
        per_minute: u64,
    ) -> impl Future<Output = Result<Minute, Unreachable>> + Send;

    /// Counts one of `user_id`'s executions on UTC `day` against `limit`;
    /// `None` when the quota is used up.
    fn take_day(
        &self,
        user_id: &str,
        day: &str,
        limit: u64,
    ) -> impl Future<Output = Result<Option<Taken>, BackendError>> + Send;

    /// Executions of `user_id` counted on UTC `day`.
    fn used_on(
        &self,
        user_id: &str,
        day: &str,
    ) -> impl Future<Output = Result<u64, BackendError>> + Send;

    /// One of `limit` running slots of `user_id` in `budget`, held for at
    /// most `lease` if its holder dies; with `wait` it waits for a slot
    /// instead of answering `None`.
    fn take_slot(
        &self,
        budget: Budget,
        user_id: &str,
        limit: u32,
        lease: Duration,
        wait: bool,
    ) -> impl Future<Output = Result<Option<Slot>, Unreachable>> + Send;
}
