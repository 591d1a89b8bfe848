//! Detached executions: a job queue in the database (any replica runs any
//! job; see [`crate::store::jobs`]), the worker each replica runs, and
//! retention of finished jobs' results.

pub mod webhooks;
pub mod worker;

/// How many times a job is begun at most: its first run and one re-run
/// after its replica died mid-run.
pub const MAX_ATTEMPTS: i64 = 2;
