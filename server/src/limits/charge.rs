//! What one execution takes from its user's allowances (a per-minute cell,
//! one of today's executions), as a guard that gives it all back when
//! dropped unless confirmed. Every refusal after the allowance was taken
//! (module not found or invalid, per-user concurrency, server busy, the
//! admission row failing to commit) then refunds by construction: only an
//! execution whose admission is on record is charged.

use std::{
    convert::Infallible,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use governor::{
    nanos::Nanos,
    state::{keyed::DashMapStateStore, StateStore},
};

use super::redis::RedisLimits;

/// A keyed governor state store that a refund can reach after the limiter
/// took a cell (governor has no "give back", but GCRA's state is just each
/// key's theoretical arrival time, and returning a cell moves it back by one
/// emission interval).
#[derive(Clone, Default)]
pub(super) struct SharedState(Arc<DashMapStateStore<String>>);

impl StateStore for SharedState {
    type Key = String;

    fn measure_and_replace<T, F, E>(&self, key: &String, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

impl SharedState {
    /// Moves `key`'s arrival time back by `interval`: one cell returned.
    /// GCRA treats an arrival time in the past as "now", so a refund never
    /// grants more than the burst.
    fn give_back(&self, key: &String, interval: Nanos) {
        let _ = self.measure_and_replace(key, |tat| {
            let tat = tat.unwrap_or_else(|| Nanos::from(0));
            Ok::<_, Infallible>(((), tat.saturating_sub(interval)))
        });
    }
}

/// One thing taken, and how to return it.
pub(super) enum Taken {
    /// A cell of the in-process per-minute limiter.
    LocalMinute {
        state: SharedState,
        key: String,
        interval: Nanos,
    },
    /// A cell of the shared (Redis) per-minute limiter.
    RedisMinute {
        redis: Arc<RedisLimits>,
        user_id: String,
        per_minute: u64,
    },
    /// One of today's executions, counted in process.
    LocalDay(Arc<AtomicU64>),
    /// One of today's executions, counted in Redis.
    RedisDay {
        redis: Arc<RedisLimits>,
        user_id: String,
        day: String,
    },
}

impl Taken {
    fn give_back(self) {
        match self {
            Taken::LocalMinute {
                state,
                key,
                interval,
            } => state.give_back(&key, interval),
            Taken::LocalDay(counter) => {
                let _ =
                    counter.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
            }
            Taken::RedisMinute {
                redis,
                user_id,
                per_minute,
            } => spawn_refund(async move { redis.minute_refund(&user_id, per_minute).await }),
            Taken::RedisDay {
                redis,
                user_id,
                day,
            } => spawn_refund(async move { redis.daily_refund(&user_id, &day).await }),
        }
    }
}

/// Redis refunds are network calls: they run in the background (and a
/// refund lost with Redis itself errs in the user's disfavour only until
/// the counters expire).
fn spawn_refund(
    refund: impl std::future::Future<Output = redis::RedisResult<()>> + Send + 'static,
) {
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            if let Err(error) = refund.await {
                tracing::warn!(%error, "giving back a shared allowance failed");
            }
        });
    }
}

/// Everything one execution took; given back on drop unless [`confirm`]ed.
///
/// [`confirm`]: Charge::confirm
#[derive(Default)]
pub struct Charge {
    taken: Vec<Taken>,
    confirmed: bool,
}

impl Charge {
    pub(super) fn take(&mut self, taken: Taken) {
        self.taken.push(taken);
    }

    /// The execution is admitted and on record: keep the charge.
    pub fn confirm(&mut self) {
        self.confirmed = true;
    }

    /// Whether [`Charge::confirm`] was called.
    pub fn is_confirmed(&self) -> bool {
        self.confirmed
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if !self.confirmed {
            for taken in self.taken.drain(..) {
                taken.give_back();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{num::NonZeroU32, time::Duration};

    use governor::{clock::DefaultClock, Quota, RateLimiter};

    use super::*;

    fn limiter(per_minute: u32) -> (RateLimiter<String, SharedState, DefaultClock>, SharedState) {
        let state = SharedState::default();
        let quota = Quota::per_minute(NonZeroU32::new(per_minute).unwrap());
        let limiter = RateLimiter::new(quota, state.clone(), DefaultClock::default());
        (limiter, state)
    }

    fn minute_charge(state: &SharedState, per_minute: u64) -> Charge {
        let mut charge = Charge::default();
        charge.take(Taken::LocalMinute {
            state: state.clone(),
            key: "u".into(),
            interval: Nanos::from(Duration::from_secs(60) / per_minute as u32),
        });
        charge
    }

    #[test]
    fn an_unconfirmed_minute_cell_comes_back_on_drop() {
        let (limiter, state) = limiter(2);
        let key = "u".to_string();
        limiter.check_key(&key).unwrap();
        limiter.check_key(&key).unwrap();
        assert!(limiter.check_key(&key).is_err(), "the burst is spent");
        drop(minute_charge(&state, 2));
        limiter
            .check_key(&key)
            .expect("the refunded cell is usable");
        assert!(
            limiter.check_key(&key).is_err(),
            "exactly one cell came back"
        );
    }

    #[test]
    fn a_confirmed_minute_cell_stays_spent() {
        let (limiter, state) = limiter(2);
        let key = "u".to_string();
        limiter.check_key(&key).unwrap();
        limiter.check_key(&key).unwrap();
        let mut charge = minute_charge(&state, 2);
        charge.confirm();
        drop(charge);
        assert!(limiter.check_key(&key).is_err());
    }

    #[test]
    fn refunds_never_grant_more_than_the_burst() {
        let (limiter, state) = limiter(2);
        let key = "u".to_string();
        for _ in 0..5 {
            drop(minute_charge(&state, 2));
        }
        limiter.check_key(&key).unwrap();
        limiter.check_key(&key).unwrap();
        assert!(limiter.check_key(&key).is_err());
    }

    #[test]
    fn an_unconfirmed_day_comes_back_and_a_confirmed_one_stays() {
        let counter = Arc::new(AtomicU64::new(3));
        let mut refunded = Charge::default();
        refunded.take(Taken::LocalDay(counter.clone()));
        drop(refunded);
        assert_eq!(counter.load(Ordering::SeqCst), 2);
        let mut kept = Charge::default();
        kept.take(Taken::LocalDay(counter.clone()));
        kept.confirm();
        drop(kept);
        assert_eq!(counter.load(Ordering::SeqCst), 2);
    }
}
