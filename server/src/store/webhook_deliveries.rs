//! Webhook deliveries still to make, shared by every replica on the same
//! database: queued when a job or batch ends, claimed for one attempt at a
//! time under a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL, a single
//! atomic UPDATE on SQLite), then rescheduled with their backoff or
//! deleted. A replica that dies between attempts loses nothing; one that
//! dies during an attempt leaves it to be made again once its lease
//! expires (deliveries are at least once).

use sqlx::Row;

use super::{Backend, Store};

/// A delivery to queue.
pub struct NewDelivery<'a> {
    /// The job or batch whose webhook it is.
    pub id: &'a str,
    pub user_id: &'a str,
    pub url: &'a str,
    pub body: &'a [u8],
    pub now_ms: i64,
    /// The wait after a first failure.
    pub first_backoff_ms: i64,
    /// No attempt is made after this.
    pub give_up_at: i64,
}

/// A delivery claimed for one attempt.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub id: String,
    pub user_id: String,
    pub url: String,
    pub body: Vec<u8>,
    /// Attempts made before this one.
    pub attempts: i64,
    pub backoff_ms: i64,
    pub give_up_at: i64,
}

impl Store {
    /// Queues a delivery, due at once; a second one for the same id is
    /// ignored (a job's webhook is sent once).
    pub async fn delivery_queue(&self, delivery: &NewDelivery<'_>) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO webhook_deliveries (id, user_id, url, body, next_attempt_at, \
             backoff_ms, give_up_at) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(delivery.id)
        .bind(delivery.user_id)
        .bind(delivery.url)
        .bind(delivery.body)
        .bind(delivery.now_ms)
        .bind(delivery.first_backoff_ms)
        .bind(delivery.give_up_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Claims the delivery due longest for `owner` until `now_ms + lease_ms`
    /// (one whose last claimant died mid-attempt is due again).
    pub async fn delivery_claim(
        &self,
        owner: &str,
        now_ms: i64,
        lease_ms: i64,
    ) -> sqlx::Result<Option<Delivery>> {
        // A plain read first: an idle replica polling takes no write lock.
        let candidate: Option<String> = sqlx::query_scalar(
            "SELECT id FROM webhook_deliveries WHERE next_attempt_at <= $1 \
             AND (lease_owner IS NULL OR lease_expires_at < $1) LIMIT 1",
        )
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await?;
        if candidate.is_none() {
            return Ok(None);
        }
        let lock = match self.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE webhook_deliveries SET lease_owner = $1, lease_expires_at = $2 \
             WHERE id = (SELECT id FROM webhook_deliveries WHERE next_attempt_at <= $3 \
             AND (lease_owner IS NULL OR lease_expires_at < $3) \
             ORDER BY next_attempt_at LIMIT 1{lock}) \
             RETURNING id, user_id, url, body, attempts, backoff_ms, give_up_at"
        )))
        .bind(owner)
        .bind(now_ms + lease_ms)
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(Delivery {
                id: row.try_get(0)?,
                user_id: row.try_get(1)?,
                url: row.try_get(2)?,
                body: row.try_get(3)?,
                attempts: row.try_get(4)?,
                backoff_ms: row.try_get(5)?,
                give_up_at: row.try_get(6)?,
            })
        })
        .transpose()
    }

    /// After a failed attempt: due again at `next_at`, the wait after that
    /// one `backoff_ms`.
    pub async fn delivery_reschedule(
        &self,
        id: &str,
        owner: &str,
        next_at: i64,
        backoff_ms: i64,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, next_attempt_at = $1, \
             backoff_ms = $2, lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $3 AND lease_owner = $4",
        )
        .bind(next_at)
        .bind(backoff_ms)
        .bind(id)
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The delivery is over (delivered, refused for good, or given up).
    pub async fn delivery_done(&self, id: &str, owner: &str) -> sqlx::Result<()> {
        sqlx::query("DELETE FROM webhook_deliveries WHERE id = $1 AND lease_owner = $2")
            .bind(id)
            .bind(owner)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// How many deliveries are queued (any state).
    pub async fn delivery_count(&self) -> sqlx::Result<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM webhook_deliveries")
            .fetch_one(self.pool())
            .await
    }
}
