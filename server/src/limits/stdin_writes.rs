//! The `WriteStdin` budget: each account may make its tier's
//! `stdin_writes_per_second` writes a second, in bursts of at most
//! `stdin_write_burst`, summed over all its interactive executions. Every
//! write takes a lock and wakes a guest, so without a rate of its own a
//! tenant could spend the server's CPU on empty writes at any rate.
//!
//! Kept per replica, in process (a write is routed through Redis only when
//! it lands on a replica that does not run the execution; it is counted on
//! the replica it landed on): with N replicas behind a balancer an account
//! gets at most N times its rate. A GCRA bucket per account (governor),
//! forgotten after [`FORGET_AFTER`] without a write, by when it is whole
//! again anyway for any burst under that many seconds of rate.

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use governor::{clock::Clock, DefaultDirectRateLimiter, Quota, RateLimiter};

use crate::config::Tier;

/// How long an account's bucket is kept without a write.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// A write past the account's rate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "rate limit of {per_second} stdin writes per second (bursts of {burst}) exceeded for this \
     account; retry in {} ms (send larger writes less often)",
    retry_after.as_millis().max(1)
)]
pub struct StdinWritesLimited {
    pub per_second: u32,
    pub burst: u32,
    pub retry_after: Duration,
}

/// Each account's `WriteStdin` bucket on this replica.
pub struct StdinWriteLimits {
    /// Keyed by account and the tier's rate, so a changed tier starts a
    /// fresh bucket of the new size.
    buckets: moka::sync::Cache<(String, NonZeroU32, NonZeroU32), Arc<DefaultDirectRateLimiter>>,
}

impl Default for StdinWriteLimits {
    fn default() -> Self {
        Self {
            buckets: moka::sync::Cache::builder()
                .time_to_idle(FORGET_AFTER)
                .build(),
        }
    }
}

impl StdinWriteLimits {
    /// Takes one write from `user_id`'s budget, or says how long to wait.
    /// A tier with no rate (`stdin_writes_per_second = 0`, unmetered tiers
    /// only) is not limited.
    pub fn take(&self, user_id: &str, tier: &Tier) -> Result<(), StdinWritesLimited> {
        let Some(rate) = NonZeroU32::new(tier.stdin_writes_per_second) else {
            return Ok(());
        };
        let burst = NonZeroU32::new(tier.stdin_write_burst).unwrap_or(rate);
        let bucket = self
            .buckets
            .get_with((user_id.to_string(), rate, burst), || {
                Arc::new(RateLimiter::direct(
                    Quota::per_second(rate).allow_burst(burst),
                ))
            });
        bucket.check().map_err(|not_until| StdinWritesLimited {
            per_second: rate.get(),
            burst: burst.get(),
            retry_after: not_until.wait_time_from(governor::clock::DefaultClock::default().now()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(per_second: u32, burst: u32) -> Tier {
        Tier {
            stdin_writes_per_second: per_second,
            stdin_write_burst: burst,
            ..crate::config::default_tiers()["free"].clone()
        }
    }

    #[test]
    fn the_burst_is_allowed_and_the_next_write_waits_under_a_second() {
        let limits = StdinWriteLimits::default();
        let t = tier(2, 3);
        for _ in 0..3 {
            limits.take("u", &t).expect("inside the burst");
        }
        let refused = limits.take("u", &t).unwrap_err();
        assert_eq!((refused.per_second, refused.burst), (2, 3));
        assert!(refused.retry_after > Duration::ZERO);
        assert!(refused.retry_after <= Duration::from_millis(500));
    }

    #[test]
    fn accounts_have_buckets_of_their_own() {
        let limits = StdinWriteLimits::default();
        let t = tier(1, 1);
        limits.take("u", &t).unwrap();
        assert!(limits.take("u", &t).is_err());
        limits
            .take("v", &t)
            .expect("another account's bucket is whole");
    }

    #[test]
    fn a_tier_without_a_rate_is_not_limited() {
        let limits = StdinWriteLimits::default();
        let t = tier(0, 0);
        for _ in 0..1000 {
            limits.take("u", &t).unwrap();
        }
    }
}
