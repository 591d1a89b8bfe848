//! The usage record of one execution, as the lifecycle hands it to the
//! store: plain values, so the sandbox can change its report without the
//! storage layer noticing (the conversion from [`Report`] is here, once).

use crate::engine::Report;

/// A usage row as of one write: the admission (no end yet) or the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRecord {
    pub id: String,
    pub user_id: String,
    pub key_id: String,
    pub module_sha256: String,
    /// UTC day of admission (`YYYY-MM-DD`): the daily quota counts by it.
    pub day: String,
    pub started_at: i64,
    /// Set once the execution ended.
    pub end: Option<UsageEnd>,
    /// A result cache hit: the execution whose result it replayed (such
    /// rows use no execution allowance).
    pub cached_from: Option<String>,
    /// Set when the execution is an attempt of a detached execution.
    pub job: Option<JobAttempt>,
}

/// The detached execution (job) a usage row is an attempt of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobAttempt {
    pub job_id: String,
    /// False for a re-run after an earlier attempt went on record (its
    /// replica died): the account is charged once per job.
    pub charged: bool,
}

/// How an execution ended, in the units the usage table stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEnd {
    pub finished_at: i64,
    /// The outcome's stored name (`OUTCOME_SUCCESS`, `OUTCOME_TIMEOUT`, ...).
    pub outcome: &'static str,
    pub exit_code: i32,
    pub fuel_consumed: u64,
    pub duration_us: u64,
    pub memory_peak_bytes: u64,
    pub stdin_bytes: u64,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
}

impl UsageEnd {
    /// The end of an execution that finished at `finished_at` (ms since
    /// the epoch) with `report`.
    pub fn from_report(finished_at: i64, report: &Report) -> Self {
        Self {
            finished_at,
            outcome: report.outcome.as_str(),
            exit_code: report.exit_code,
            fuel_consumed: report.fuel_consumed,
            duration_us: report.duration.as_micros() as u64,
            memory_peak_bytes: report.memory_peak_bytes,
            stdin_bytes: report.stdin_bytes,
            stdout_bytes: report.stdout_bytes,
            stderr_bytes: report.stderr_bytes,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::engine::Outcome;

    #[test]
    fn a_report_becomes_the_stored_units() {
        let report = Report {
            outcome: Outcome::Timeout,
            exit_code: -1,
            trap_kind: String::new(),
            message: "ran out of time".into(),
            fuel_consumed: 7,
            duration: Duration::from_millis(3),
            memory_peak_bytes: 65536,
            stdout_bytes: 2,
            stderr_bytes: 1,
            output_truncated: false,
            stdin_bytes: 5,
            files: Vec::new(),
        };
        assert_eq!(
            UsageEnd::from_report(42, &report),
            UsageEnd {
                finished_at: 42,
                outcome: Outcome::Timeout.as_str(),
                exit_code: -1,
                fuel_consumed: 7,
                duration_us: 3000,
                memory_peak_bytes: 65536,
                stdin_bytes: 5,
                stdout_bytes: 2,
                stderr_bytes: 1,
            }
        );
    }
}
