//! Opt-in retries of RESOURCE_EXHAUSTED and UNAVAILABLE that honour the
//! server's retry-after, with jitter and caps.

use std::{fmt, sync::Arc, time::Duration};

use crate::Error;

type RetryHook = Arc<dyn Fn(&Error, Duration, u32) + Send + Sync>;

/// When and how long to wait before trying a refused call again.
///
/// Only RESOURCE_EXHAUSTED (rate limit, quota, concurrency) and UNAVAILABLE
/// (server saturated or draining, connection failures) are retried. The wait
/// is the server's retry-after (RetryInfo or `retry-after` metadata) plus up
/// to `jitter` of it on top (never less than the server asked), or an
/// exponential backoff from `base_delay` when the server gave none. A wait
/// longer than `max_delay` is not attempted: the error is returned at once,
/// so a daily quota (retry in hours) fails fast.
///
/// A run is retried only when it was refused before it started (the server
/// has not run the guest); an error in the middle of a stream is returned.
///
/// ```
/// use std::time::Duration;
/// use wasmwiz::RetryPolicy;
///
/// let policy = RetryPolicy::default()
///     .max_retries(3)
///     .max_delay(Duration::from_secs(30))
///     .on_retry(|error, wait, attempt| {
///         eprintln!("attempt {attempt}: {error}; waiting {wait:?}");
///     });
/// # let _ = policy;
/// ```
#[derive(Clone)]
pub struct RetryPolicy {
    pub(crate) max_retries: u32,
    pub(crate) base_delay: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) jitter: f64,
    pub(crate) on_retry: Option<RetryHook>,
}

impl Default for RetryPolicy {
    /// 5 retries, 500 ms base backoff, waits capped at 60 s, 10 % jitter.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 5,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
            jitter: 0.1,
            on_retry: None,
        }
    }
}

impl fmt::Debug for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryPolicy")
            .field("max_retries", &self.max_retries)
            .field("base_delay", &self.base_delay)
            .field("max_delay", &self.max_delay)
            .field("jitter", &self.jitter)
            .finish_non_exhaustive()
    }
}

impl RetryPolicy {
    /// How many times to retry one call (0 disables retries).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// First backoff when the server gave no retry-after; doubles per retry.
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// The longest single wait. When the server asks for more, the error is
    /// returned instead of waiting.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Random extra wait, as a fraction of the wait (0.0..=1.0), so that
    /// clients refused together do not come back together.
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction.clamp(0.0, 1.0);
        self
    }

    /// Called before each wait with the error, the wait and the attempt
    /// number (1 for the first retry).
    pub fn on_retry(
        mut self,
        hook: impl Fn(&Error, Duration, u32) + Send + Sync + 'static,
    ) -> Self {
        self.on_retry = Some(Arc::new(hook));
        self
    }

    /// The wait before retry number `attempt + 1` after `error`, or `None`
    /// when the error must be returned.
    pub fn delay(&self, error: &Error, attempt: u32) -> Option<Duration> {
        if attempt >= self.max_retries || !error.is_retryable() {
            return None;
        }
        let jitter = |d: Duration| d.mul_f64(self.jitter * rand::random::<f64>());
        let wait = match error.retry_after() {
            Some(after) => {
                if after > self.max_delay {
                    return None;
                }
                (after + jitter(after)).min(self.max_delay.max(after))
            }
            None => {
                let backoff = self
                    .base_delay
                    .saturating_mul(2u32.saturating_pow(attempt.min(16)))
                    .min(self.max_delay);
                (backoff + jitter(backoff)).min(self.max_delay)
            }
        };
        Some(wait)
    }

    pub(crate) fn notify(&self, error: &Error, wait: Duration, attempt: u32) {
        if let Some(hook) = &self.on_retry {
            hook(error, wait, attempt);
        }
    }
}

#[cfg(test)]
mod tests {
    use tonic::{metadata::MetadataValue, Code, Status};
    use tonic_types::{ErrorDetails, StatusExt};

    use super::*;

    fn exhausted(retry_after: Duration) -> Error {
        let details = ErrorDetails::with_retry_info(Some(retry_after));
        Error::from(Status::with_error_details(
            Code::ResourceExhausted,
            "slow down",
            details,
        ))
    }

    #[test]
    fn waits_at_least_retry_after_plus_jitter() {
        let policy = RetryPolicy::default().jitter(0.5);
        for _ in 0..100 {
            let wait = policy.delay(&exhausted(Duration::from_secs(6)), 0).unwrap();
            assert!(wait >= Duration::from_secs(6), "{wait:?}");
            assert!(wait <= Duration::from_secs(9), "{wait:?}");
        }
    }

    #[test]
    fn retry_after_from_metadata_when_no_retry_info() {
        let mut status = Status::new(Code::Unavailable, "busy");
        status
            .metadata_mut()
            .insert("retry-after", MetadataValue::from_static("3"));
        let error = Error::from(status);
        assert_eq!(error.retry_after(), Some(Duration::from_secs(3)));
        let wait = RetryPolicy::default().jitter(0.0).delay(&error, 0);
        assert_eq!(wait, Some(Duration::from_secs(3)));
    }

    #[test]
    fn caps_and_limits() {
        let policy = RetryPolicy::default()
            .max_delay(Duration::from_secs(5))
            .max_retries(2);
        // The server asks for more than the cap: give up at once.
        assert_eq!(policy.delay(&exhausted(Duration::from_secs(60)), 0), None);
        // Out of retries.
        assert_eq!(policy.delay(&exhausted(Duration::from_secs(1)), 2), None);
        // Not retryable.
        let denied = Error::from(Status::permission_denied("no"));
        assert_eq!(policy.delay(&denied, 0), None);
        // No retry-after: exponential backoff, capped.
        let unavailable = Error::from(Status::unavailable("down"));
        let policy = RetryPolicy::default()
            .jitter(0.0)
            .base_delay(Duration::from_millis(100))
            .max_delay(Duration::from_millis(350))
            .max_retries(10);
        let waits: Vec<_> = (0..4)
            .map(|n| policy.delay(&unavailable, n).unwrap().as_millis())
            .collect();
        assert_eq!(waits, [100, 200, 350, 350]);
    }

    #[test]
    fn details_are_parsed() {
        let mut details =
            ErrorDetails::with_quota_failure_violation("executions per minute", "10 a minute");
        details.set_retry_info(Some(Duration::from_secs(6)));
        let mut status =
            Status::with_error_details(Code::ResourceExhausted, "rate limited", details);
        for (k, v) in [
            ("ratelimit-limit", "10"),
            ("ratelimit-remaining", "0"),
            ("ratelimit-reset", "6"),
        ] {
            status
                .metadata_mut()
                .insert(k, MetadataValue::from_static(v));
        }
        let error = Error::from(status);
        let api = error.api().unwrap();
        assert_eq!(api.quota_violations()[0].subject, "executions per minute");
        assert_eq!(api.retry_after(), Some(Duration::from_secs(6)));
        let rate = api.rate_limit().unwrap();
        assert_eq!(
            (rate.limit, rate.remaining, rate.reset),
            (10, 0, Duration::from_secs(6))
        );
        assert_eq!(
            error.to_string(),
            "RESOURCE_EXHAUSTED: rate limited; executions per minute: 10 a minute; retry after 6.0 s"
        );
        let bad = Error::from(Status::with_error_details(
            Code::InvalidArgument,
            "bad",
            ErrorDetails::with_bad_request_violation("limits.fuel", "the maximum is 10"),
        ));
        assert_eq!(
            bad.api().unwrap().field_violations()[0].field,
            "limits.fuel"
        );
        assert!(!bad.is_retryable());
    }
}
