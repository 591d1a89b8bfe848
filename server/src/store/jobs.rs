//! The durable job queue of detached executions, shared by every replica on
//! the same database. A replica claims the oldest queued job (or one whose
//! lease expired: its replica died) with a lease it keeps renewing; on
//! PostgreSQL the claim skips rows another replica is claiming
//! (`FOR UPDATE SKIP LOCKED`), on SQLite the single UPDATE is atomic. Events
//! are stored one encoded `ExecuteEvent` per row (each bounded: output
//! chunks and file pieces are small), so no value nears a column limit.

use sqlx::Row;

use super::{Backend, Store};

/// A job's state as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Queued,
    Running,
    Finished,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Finished => "finished",
            JobState::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "running" => JobState::Running,
            "finished" => JobState::Finished,
            "cancelled" => JobState::Cancelled,
            _ => JobState::Queued,
        }
    }

    /// Nothing more will happen to the job.
    pub fn is_terminal(self) -> bool {
        matches!(self, JobState::Finished | JobState::Cancelled)
    }
}

/// A job to queue.
pub struct NewJob<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub key_id: &'a str,
    pub tier: &'a str,
    pub module_sha256: &'a str,
    pub request: &'a [u8],
    pub webhook_url: &'a str,
    pub now_ms: i64,
    /// The batch it is a case of, and the case's index.
    pub batch: Option<(&'a str, i64)>,
}

/// A batch to queue, with its cases' jobs.
pub struct NewBatch<'a> {
    pub id: &'a str,
    pub user_id: &'a str,
    pub webhook_url: &'a str,
    pub now_ms: i64,
}

/// A job as stored (without its events).
#[derive(Debug, Clone)]
pub struct JobRow {
    pub id: String,
    pub user_id: String,
    pub key_id: String,
    pub tier: String,
    pub module_sha256: String,
    pub request: Vec<u8>,
    pub webhook_url: String,
    pub state: JobState,
    pub attempts: i64,
    pub finished: Option<Vec<u8>>,
    pub outcome: i32,
    pub error: String,
    pub batch_id: Option<String>,
    pub case_index: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, user_id, key_id, tier, module_sha256, request, webhook_url, state, \
                       attempts, finished, outcome, created_at, updated_at, error, batch_id, case_index";

fn job_row(row: &sqlx::any::AnyRow) -> sqlx::Result<JobRow> {
    Ok(JobRow {
        id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        key_id: row.try_get(2)?,
        tier: row.try_get(3)?,
        module_sha256: row.try_get(4)?,
        request: row.try_get(5)?,
        webhook_url: row.try_get(6)?,
        state: JobState::parse(&row.try_get::<String, _>(7)?),
        attempts: row.try_get(8)?,
        finished: row.try_get(9)?,
        outcome: row.try_get::<i64, _>(10)? as i32,
        created_at: row.try_get(11)?,
        updated_at: row.try_get(12)?,
        error: row.try_get(13)?,
        batch_id: row.try_get(14)?,
        case_index: row.try_get(15)?,
    })
}

async fn insert_job(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    job: &NewJob<'_>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO jobs (id, user_id, key_id, tier, module_sha256, request, webhook_url, \
         state, created_at, updated_at, batch_id, case_index) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', $8, $8, $9, $10)",
    )
    .bind(job.id)
    .bind(job.user_id)
    .bind(job.key_id)
    .bind(job.tier)
    .bind(job.module_sha256)
    .bind(job.request)
    .bind(job.webhook_url)
    .bind(job.now_ms)
    .bind(job.batch.map(|(id, _)| id))
    .bind(job.batch.map_or(0, |(_, index)| index))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A claimed job: run it while the lease holds.
pub struct Claimed {
    pub job: JobRow,
    /// This attempt's number (1 for the first run).
    pub attempt: i64,
}

impl Store {
    /// Queues a job (durable when this returns).
    pub async fn job_insert(&self, job: &NewJob<'_>) -> sqlx::Result<()> {
        let mut tx = self.begin_write().await?;
        insert_job(&mut tx, job).await?;
        tx.commit().await
    }

    /// Queues a batch and its cases' jobs in one transaction.
    pub async fn job_batch_insert(
        &self,
        batch: &NewBatch<'_>,
        jobs: &[NewJob<'_>],
    ) -> sqlx::Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO job_batches (id, user_id, webhook_url, cases, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(batch.id)
        .bind(batch.user_id)
        .bind(batch.webhook_url)
        .bind(jobs.len() as i64)
        .bind(batch.now_ms)
        .execute(&mut *tx)
        .await?;
        for job in jobs {
            insert_job(&mut tx, job).await?;
        }
        tx.commit().await
    }

    /// When every case of `batch_id` has ended and nobody has sent the
    /// batch's webhook yet: takes that duty (once, across replicas) and
    /// returns the batch's webhook URL and its cases in order.
    pub async fn job_batch_take_notify(
        &self,
        batch_id: &str,
    ) -> sqlx::Result<Option<(String, Vec<JobRow>)>> {
        let mut tx = self.begin_write().await?;
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE batch_id = $1 AND state IN ('queued', 'running')",
        )
        .bind(batch_id)
        .fetch_one(&mut *tx)
        .await?;
        if open > 0 {
            return Ok(None);
        }
        let url: Option<String> = sqlx::query_scalar(
            "UPDATE job_batches SET notified = 1 WHERE id = $1 AND notified = 0 \
             RETURNING webhook_url",
        )
        .bind(batch_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(url) = url else {
            return Ok(None);
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM jobs WHERE batch_id = $1 ORDER BY case_index"
        )))
        .bind(batch_id)
        .fetch_all(&mut *tx)
        .await?;
        let jobs = rows.iter().map(job_row).collect::<sqlx::Result<Vec<_>>>()?;
        tx.commit().await?;
        Ok(Some((url, jobs)))
    }

    /// `user_id`'s batch `batch_id`: whether its webhook was queued (every
    /// case ended) and its cases in order; `None` when not theirs.
    pub async fn job_batch_get(
        &self,
        user_id: &str,
        batch_id: &str,
    ) -> sqlx::Result<Option<(bool, Vec<JobRow>)>> {
        let notified: Option<i64> =
            sqlx::query_scalar("SELECT notified FROM job_batches WHERE id = $1 AND user_id = $2")
                .bind(batch_id)
                .bind(user_id)
                .fetch_optional(self.pool())
                .await?;
        let Some(notified) = notified else {
            return Ok(None);
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM jobs WHERE batch_id = $1 AND user_id = $2 ORDER BY case_index"
        )))
        .bind(batch_id)
        .bind(user_id)
        .fetch_all(self.pool())
        .await?;
        let cases = rows.iter().map(job_row).collect::<sqlx::Result<Vec<_>>>()?;
        Ok(Some((notified != 0, cases)))
    }

    /// Claims the oldest runnable job for `owner` until `now_ms + lease_ms`:
    /// a queued one, or a running one whose lease expired (its replica
    /// died; it runs again from the start). Jobs already begun
    /// `max_attempts` times are not claimed again.
    pub async fn job_claim(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
        max_attempts: i64,
    ) -> sqlx::Result<Option<Claimed>> {
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = $1, \
             lease_expires_at = $2, updated_at = $3 WHERE id = (SELECT id FROM jobs \
             WHERE cancel_requested = 0 AND attempts < $4 AND (state = 'queued' \
             OR (state = 'running' AND lease_expires_at < $3)) \
             ORDER BY created_at LIMIT 1{lock}) RETURNING {COLUMNS}"
        );
        // A plain read first: an idle worker polling takes no write lock.
        let candidate: Option<String> = sqlx::query_scalar(
            "SELECT id FROM jobs WHERE state = 'queued' \
             OR (state = 'running' AND lease_expires_at < $1) LIMIT 1",
        )
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await?;
        if candidate.is_none() {
            return Ok(None);
        }
        let mut tx = self.begin_write().await?;
        // Jobs that can never be claimed again (begun `max_attempts` times,
        // their last replica gone) end with an error instead of waiting.
        sqlx::query(
            "UPDATE jobs SET state = 'finished', updated_at = $1, lease_owner = NULL, \
             lease_expires_at = NULL, error = 'the execution was begun the most times \
             allowed and its replica stopped each time' \
             WHERE attempts >= $2 AND (state = 'queued' \
             OR (state = 'running' AND lease_expires_at < $1))",
        )
        .bind(now_ms)
        .bind(max_attempts)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(owner)
            .bind(now_ms + lease_ms)
            .bind(now_ms)
            .bind(max_attempts)
            .fetch_optional(&mut *tx)
            .await?;
        let claimed = match row {
            Some(row) => {
                let job = job_row(&row)?;
                // The run restarts: what an earlier attempt produced goes.
                sqlx::query("DELETE FROM job_events WHERE job_id = $1")
                    .bind(&job.id)
                    .execute(&mut *tx)
                    .await?;
                Some(Claimed {
                    attempt: job.attempts,
                    job,
                })
            }
            None => None,
        };
        tx.commit().await?;
        Ok(claimed)
    }

    /// Records which usage row an attempt wrote.
    pub async fn job_attempt(
        &self,
        job_id: &str,
        attempt: i64,
        usage_id: &str,
        replica: &str,
        now_ms: i64,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO job_attempts (job_id, attempt, usage_id, replica, started_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(job_id)
        .bind(attempt)
        .bind(usage_id)
        .bind(replica)
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Whether an attempt of the job has a usage row (and so was charged):
    /// the row names its job in the same commit that admits it.
    pub async fn job_usage_on_record(&self, job_id: &str) -> sqlx::Result<bool> {
        self.settle_usage().await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM usage_records WHERE job_id = $1")
            .bind(job_id)
            .fetch_one(self.pool())
            .await?;
        Ok(n > 0)
    }

    /// The usage row ids of a job's attempts, in order.
    pub async fn job_attempt_usage_ids(&self, job_id: &str) -> sqlx::Result<Vec<String>> {
        sqlx::query_scalar("SELECT usage_id FROM job_attempts WHERE job_id = $1 ORDER BY attempt")
            .bind(job_id)
            .fetch_all(self.pool())
            .await
    }

    /// Extends `owner`'s lease. `None`: the lease is lost (expired and
    /// claimed by another replica, or the job ended); otherwise whether a
    /// cancellation was requested.
    pub async fn job_renew(
        &self,
        job_id: &str,
        owner: &str,
        until_ms: i64,
    ) -> sqlx::Result<Option<bool>> {
        let row = sqlx::query(
            "UPDATE jobs SET lease_expires_at = $1 WHERE id = $2 AND lease_owner = $3 \
             AND state = 'running' RETURNING cancel_requested",
        )
        .bind(until_ms)
        .bind(job_id)
        .bind(owner)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| row.try_get::<i64, _>(0).map(|c| c != 0))
            .transpose()
    }

    /// Appends one encoded event.
    pub async fn job_event(&self, job_id: &str, seq: i64, event: &[u8]) -> sqlx::Result<()> {
        sqlx::query("INSERT INTO job_events (job_id, seq, event) VALUES ($1, $2, $3)")
            .bind(job_id)
            .bind(seq)
            .bind(event)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Up to `limit` events after `after`, in order: (seq, encoded event).
    pub async fn job_events(
        &self,
        job_id: &str,
        after: i64,
        limit: i64,
    ) -> sqlx::Result<Vec<(i64, Vec<u8>)>> {
        let rows = sqlx::query(
            "SELECT seq, event FROM job_events WHERE job_id = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3",
        )
        .bind(job_id)
        .bind(after)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    /// Ends `owner`'s attempt in `state`. False when the lease was lost.
    pub async fn job_end(
        &self,
        job_id: &str,
        owner: &str,
        state: JobState,
        finished: Option<&[u8]>,
        outcome: i32,
        now_ms: i64,
    ) -> sqlx::Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, finished = $2, outcome = $3, updated_at = $4, \
             lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $5 AND lease_owner = $6 AND state = 'running'",
        )
        .bind(state.as_str())
        .bind(finished)
        .bind(i64::from(outcome))
        .bind(now_ms)
        .bind(job_id)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Gives a claimed job back to the queue (it was refused for now: rate
    /// or capacity); the attempt does not count.
    pub async fn job_requeue(&self, job_id: &str, owner: &str, now_ms: i64) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = attempts - 1, lease_owner = NULL, \
             lease_expires_at = NULL, updated_at = $1 \
             WHERE id = $2 AND lease_owner = $3 AND state = 'running'",
        )
        .bind(now_ms)
        .bind(job_id)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Puts a job whose run this replica stopped (shutting down) back in the
    /// queue; the attempt counts.
    pub async fn job_release(&self, job_id: &str, owner: &str, now_ms: i64) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE jobs SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL, \
             updated_at = $1 WHERE id = $2 AND lease_owner = $3 AND state = 'running'",
        )
        .bind(now_ms)
        .bind(job_id)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Ends `owner`'s attempt without a result.
    pub async fn job_fail(
        &self,
        job_id: &str,
        owner: &str,
        error: &str,
        now_ms: i64,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE jobs SET state = 'finished', error = $1, updated_at = $2, \
             lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $3 AND lease_owner = $4 AND state = 'running'",
        )
        .bind(error)
        .bind(now_ms)
        .bind(job_id)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// How many of `user_id`'s jobs are queued or running.
    pub async fn job_active_count(&self, user_id: &str) -> sqlx::Result<i64> {
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE user_id = $1 AND state IN ('queued', 'running')",
        )
        .bind(user_id)
        .fetch_one(self.pool())
        .await
    }

    /// `user_id`'s job `job_id`, if it is theirs.
    pub async fn job_get(&self, user_id: &str, job_id: &str) -> sqlx::Result<Option<JobRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM jobs WHERE id = $1 AND user_id = $2"
        )))
        .bind(job_id)
        .bind(user_id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(job_row).transpose()
    }

    /// Asks for a job to stop: a queued job (or one whose replica died) is
    /// cancelled at once, a running one by its replica at its next lease
    /// renewal. The state afterwards and whether this call ended the job,
    /// or `None` when not `user_id`'s.
    pub async fn job_cancel(
        &self,
        user_id: &str,
        job_id: &str,
        now_ms: i64,
    ) -> sqlx::Result<Option<(JobState, bool)>> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "UPDATE jobs SET cancel_requested = 1 WHERE id = $1 AND user_id = $2 \
             AND state IN ('queued', 'running')",
        )
        .bind(job_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        let ended = sqlx::query(
            "UPDATE jobs SET state = 'cancelled', updated_at = $3, lease_owner = NULL \
             WHERE id = $1 AND user_id = $2 AND (state = 'queued' \
             OR (state = 'running' AND lease_expires_at < $3))",
        )
        .bind(job_id)
        .bind(user_id)
        .bind(now_ms)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let state: Option<String> =
            sqlx::query_scalar("SELECT state FROM jobs WHERE id = $1 AND user_id = $2")
                .bind(job_id)
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(state.map(|s| (JobState::parse(&s), ended)))
    }

    /// `user_id`'s jobs, newest first, optionally in one state.
    pub async fn job_list(
        &self,
        user_id: &str,
        state: Option<JobState>,
        limit: i64,
        offset: i64,
    ) -> sqlx::Result<Vec<JobRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM jobs WHERE user_id = $1 AND ($2 = '' OR state = $2) \
             ORDER BY created_at DESC, id DESC LIMIT $3 OFFSET $4"
        )))
        .bind(user_id)
        .bind(state.map_or("", JobState::as_str))
        .bind(limit)
        .bind(offset)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(job_row).collect()
    }

    /// Deletes jobs that ended before `before_ms` with their events (their
    /// usage rows, and which attempt wrote which, stay). How many jobs went.
    pub async fn job_purge(&self, before_ms: i64) -> sqlx::Result<u64> {
        let mut tx = self.begin_write().await?;
        let ended = "SELECT id FROM jobs WHERE state IN ('finished', 'cancelled') \
                     AND updated_at < $1";
        for table in ["job_events", "webhook_attempts"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE job_id IN ({ended})"
            )))
            .bind(before_ms)
            .execute(&mut *tx)
            .await?;
        }
        let gone = sqlx::query(
            "DELETE FROM jobs WHERE state IN ('finished', 'cancelled') AND updated_at < $1",
        )
        .bind(before_ms)
        .execute(&mut *tx)
        .await?;
        // Deliveries given up on long ago that no replica ended.
        sqlx::query("DELETE FROM webhook_deliveries WHERE give_up_at < $1")
            .bind(before_ms)
            .execute(&mut *tx)
            .await?;
        // A batch's own webhook attempts go with it.
        sqlx::query(
            "DELETE FROM webhook_attempts WHERE job_id IN (SELECT id FROM job_batches \
             WHERE created_at < $1 AND NOT EXISTS \
             (SELECT 1 FROM jobs WHERE jobs.batch_id = job_batches.id))",
        )
        .bind(before_ms)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM job_batches WHERE created_at < $1 \
             AND NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.batch_id = job_batches.id)",
        )
        .bind(before_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(gone.rows_affected())
    }
}

/// One recorded webhook delivery attempt.
#[derive(Debug, Clone)]
pub struct WebhookAttemptRow {
    pub at: i64,
    pub http_status: i64,
    pub error: String,
}

impl Store {
    /// Replaces `user_id`'s webhook secret.
    pub async fn webhook_secret_set(
        &self,
        user_id: &str,
        secret: &str,
        now_ms: i64,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO webhook_secrets (user_id, secret, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, \
             created_at = excluded.created_at",
        )
        .bind(user_id)
        .bind(secret)
        .bind(now_ms)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// `user_id`'s webhook secret, if one was made.
    pub async fn webhook_secret(&self, user_id: &str) -> sqlx::Result<Option<String>> {
        sqlx::query_scalar("SELECT secret FROM webhook_secrets WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(self.pool())
            .await
    }

    /// Records attempt number `seq` of a job's webhook.
    pub async fn webhook_attempt(
        &self,
        job_id: &str,
        seq: i64,
        attempt: &WebhookAttemptRow,
    ) -> sqlx::Result<()> {
        sqlx::query(
            // Again when a replica died after recording the attempt and
            // before rescheduling its delivery: the later one stands.
            "INSERT INTO webhook_attempts (job_id, seq, at, http_status, error) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (job_id, seq) DO UPDATE SET \
             at = excluded.at, http_status = excluded.http_status, error = excluded.error",
        )
        .bind(job_id)
        .bind(seq)
        .bind(attempt.at)
        .bind(attempt.http_status)
        .bind(&attempt.error)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A job's webhook attempts, in order.
    pub async fn webhook_attempts(&self, job_id: &str) -> sqlx::Result<Vec<WebhookAttemptRow>> {
        let rows = sqlx::query(
            "SELECT at, http_status, error FROM webhook_attempts WHERE job_id = $1 ORDER BY seq",
        )
        .bind(job_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(WebhookAttemptRow {
                    at: row.try_get(0)?,
                    http_status: row.try_get(1)?,
                    error: row.try_get(2)?,
                })
            })
            .collect()
    }
}
