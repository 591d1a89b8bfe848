//! Usage records: inserted when an execution is admitted and finalized when
//! it ends (before the client sees `finished`), so a crash leaves a
//! `RUNNING` row that the next start marks `ABORTED`: nothing lost or doubled.

use sqlx::Row;

use super::Store;

/// Outcome stored while an execution runs.
pub const RUNNING: &str = "RUNNING";
/// Outcome of executions a crash interrupted.
pub const ABORTED: &str = "ABORTED";

/// One UTC day of a usage summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyUsage {
    pub day: String,
    pub executions: u64,
    pub fuel_consumed: u64,
    pub duration_us: u64,
}

/// Totals, per-day series and per-outcome counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageSummary {
    pub executions: u64,
    pub fuel_consumed: u64,
    pub duration_us: u64,
    pub daily: Vec<DailyUsage>,
    pub by_outcome: Vec<(String, u64)>,
}

impl Store {
    /// Marks `RUNNING` rows started before `started_before` as aborted.
    pub async fn usage_abort_running(&self, started_before: i64) -> sqlx::Result<u64> {
        self.settle_usage().await?;
        // `RUNNING` is written into the SQL so the partial index of running
        // rows (migration 0002) can serve it.
        let done = sqlx::query(
            "UPDATE usage_records SET outcome = $1 WHERE outcome = 'RUNNING' AND started_at < $2",
        )
        .bind(ABORTED)
        .bind(started_before)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected())
    }

    /// Executions admitted for `user_id` on UTC `day` (the daily quota).
    pub async fn usage_count_day(&self, user_id: &str, day: &str) -> sqlx::Result<u64> {
        self.settle_usage().await?;
        let n: i64 = sqlx::query_scalar(
            // Result cache hits and re-runs of a detached execution (whose
            // first attempt counted) use no execution allowance.
            "SELECT COUNT(*) FROM usage_records WHERE user_id = $1 AND day = $2 \
             AND cached_from IS NULL AND charged = 1",
        )
        .bind(user_id)
        .bind(day)
        .fetch_one(self.pool())
        .await?;
        Ok(n as u64)
    }

    /// Deletes records started before `before` (retention).
    pub async fn usage_purge(&self, before: i64) -> sqlx::Result<u64> {
        self.settle_usage().await?;
        let done = sqlx::query("DELETE FROM usage_records WHERE started_at < $1 AND outcome <> $2")
            .bind(before)
            .bind(RUNNING)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// Usage from UTC day `since_day` on, for one user or everyone. A
    /// detached execution run again after its replica died counts as one
    /// execution, while its fuel, time and outcomes cover every attempt
    /// (the work the server did).
    pub async fn usage_summary(
        &self,
        user_id: Option<&str>,
        since_day: &str,
    ) -> sqlx::Result<UsageSummary> {
        self.settle_usage().await?;
        // Result cache hits are counted apart (`usage_cache_hits`).
        let filter = if user_id.is_some() {
            "AND cached_from IS NULL AND user_id = $2"
        } else {
            "AND cached_from IS NULL"
        };
        let daily_sql = format!(
            "SELECT day, CAST(COALESCE(SUM(charged), 0) AS BIGINT), CAST(COALESCE(SUM(fuel_consumed), 0) AS BIGINT), CAST(COALESCE(SUM(duration_us), 0) AS BIGINT) \
             FROM usage_records WHERE day >= $1 {filter} GROUP BY day ORDER BY day"
        );
        let outcome_sql = format!(
            "SELECT outcome, COUNT(*) FROM usage_records WHERE day >= $1 {filter} GROUP BY outcome ORDER BY outcome"
        );
        let mut daily_query = sqlx::query(sqlx::AssertSqlSafe(daily_sql)).bind(since_day);
        let mut outcome_query = sqlx::query(sqlx::AssertSqlSafe(outcome_sql)).bind(since_day);
        if let Some(user_id) = user_id {
            daily_query = daily_query.bind(user_id);
            outcome_query = outcome_query.bind(user_id);
        }
        let mut summary = UsageSummary::default();
        for row in daily_query.fetch_all(self.pool()).await? {
            let day = DailyUsage {
                day: row.try_get(0)?,
                executions: row.try_get::<i64, _>(1)? as u64,
                fuel_consumed: row.try_get::<i64, _>(2)? as u64,
                duration_us: row.try_get::<i64, _>(3)? as u64,
            };
            summary.executions += day.executions;
            summary.fuel_consumed += day.fuel_consumed;
            summary.duration_us += day.duration_us;
            summary.daily.push(day);
        }
        for row in outcome_query.fetch_all(self.pool()).await? {
            summary
                .by_outcome
                .push((row.try_get(0)?, row.try_get::<i64, _>(1)? as u64));
        }
        Ok(summary)
    }
}
