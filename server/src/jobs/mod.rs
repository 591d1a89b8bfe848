//! Detached executions: a job queue in the database (any replica runs any
//! job; see [`crate::store::jobs`]), the worker each replica runs, the
//! webhook sender (its queue in the database too), and retention of
//! finished jobs' results.

pub mod deliveries;
pub mod webhook_secret;
pub mod webhooks;
pub mod worker;

/// How many times a job is begun at most: its first run and one re-run
/// after its replica died mid-run.
pub const MAX_ATTEMPTS: i64 = 2;
