//! Users and their API keys (only HMACs of secrets are stored).

use sqlx::Row;

use super::{now_ms, Store};

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: String,
    pub email: String,
    pub tier: String,
    pub created_at: i64,
}

/// A key joined with its user, as authentication needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub key_id: String,
    pub user_id: String,
    pub email: String,
    pub tier: String,
    pub secret_hash: String,
    pub admin: bool,
    pub label: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The key that created this one (self-service), if any.
    pub parent_key_id: Option<String>,
}

/// A key to insert.
pub struct NewKey<'a> {
    pub key_id: &'a str,
    pub user_id: &'a str,
    pub secret_hash: &'a str,
    pub admin: bool,
    pub label: &'a str,
    pub expires_at: Option<i64>,
    /// The key that created this one (revoking it revokes this one).
    pub parent_key_id: Option<&'a str>,
}

/// The account already has its maximum of live keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyKeys {
    pub live: u64,
    pub max: u32,
}

/// Why a child key was not created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefused {
    TooMany(TooManyKeys),
    /// The parent was revoked or expired after it authenticated the call.
    ParentNotLive,
}

/// Locks the user's row until the transaction ends (PostgreSQL; SQLite's
/// write transactions hold the database lock already), so key creation
/// and revocation of one user never interleave.
async fn lock_user(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    backend: super::Backend,
    user_id: &str,
) -> sqlx::Result<()> {
    if backend == super::Backend::Postgres {
        sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
            .bind(user_id)
            .fetch_optional(&mut **tx)
            .await?;
    }
    Ok(())
}

const KEY_COLUMNS: &str = "k.id, k.user_id, u.email, u.tier, k.secret_hash, k.admin, k.label, \
     k.created_at, k.expires_at, k.revoked_at, k.parent_key_id \
     FROM api_keys k JOIN users u ON u.id = k.user_id";

fn key_from_row(row: &sqlx::any::AnyRow) -> sqlx::Result<KeyRecord> {
    Ok(KeyRecord {
        key_id: row.try_get(0)?,
        user_id: row.try_get(1)?,
        email: row.try_get(2)?,
        tier: row.try_get(3)?,
        secret_hash: row.try_get(4)?,
        admin: row.try_get::<i64, _>(5)? != 0,
        label: row.try_get(6)?,
        created_at: row.try_get(7)?,
        expires_at: row.try_get(8)?,
        revoked_at: row.try_get(9)?,
        parent_key_id: row.try_get(10)?,
    })
}

fn user_from_row(row: &sqlx::any::AnyRow) -> sqlx::Result<UserRow> {
    Ok(UserRow {
        id: row.try_get(0)?,
        email: row.try_get(1)?,
        tier: row.try_get(2)?,
        created_at: row.try_get(3)?,
    })
}

impl Store {
    /// The user with `email`, created with `tier` if unknown; an existing
    /// user's tier is changed to `tier` when `set_tier` is true.
    pub async fn ensure_user(
        &self,
        email: &str,
        tier: &str,
        set_tier: bool,
    ) -> sqlx::Result<UserRow> {
        let id = uuid::Uuid::now_v7().to_string();
        sqlx::query(
            "INSERT INTO users (id, email, tier, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(&id)
        .bind(email)
        .bind(tier)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        if set_tier {
            sqlx::query("UPDATE users SET tier = $1 WHERE email = $2")
                .bind(tier)
                .bind(email)
                .execute(self.pool())
                .await?;
        }
        Ok(self
            .user_by_email(email)
            .await?
            .expect("user exists after upsert"))
    }

    pub async fn user_by_email(&self, email: &str) -> sqlx::Result<Option<UserRow>> {
        sqlx::query("SELECT id, email, tier, created_at FROM users WHERE email = $1")
            .bind(email)
            .fetch_optional(self.pool())
            .await?
            .map(|r| user_from_row(&r))
            .transpose()
    }

    /// Creates a user; `Ok(None)` when the email is taken.
    pub async fn create_user(&self, email: &str, tier: &str) -> sqlx::Result<Option<UserRow>> {
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, tier, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(uuid::Uuid::now_v7().to_string())
        .bind(email)
        .bind(tier)
        .bind(now_ms())
        .execute(self.pool())
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(None);
        }
        self.user_by_email(email).await
    }

    /// Sets a user's tier; `None` when the user is unknown.
    pub async fn set_tier(&self, email: &str, tier: &str) -> sqlx::Result<Option<UserRow>> {
        sqlx::query("UPDATE users SET tier = $1 WHERE email = $2")
            .bind(tier)
            .bind(email)
            .execute(self.pool())
            .await?;
        self.user_by_email(email).await
    }

    pub async fn insert_key(&self, key: NewKey<'_>) -> sqlx::Result<()> {
        Self::insert_key_with(self.pool(), &key).await
    }

    async fn insert_key_with<'c>(
        executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
        key: &NewKey<'_>,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "INSERT INTO api_keys (id, user_id, secret_hash, admin, label, created_at, expires_at, \
             parent_key_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(key.key_id)
        .bind(key.user_id)
        .bind(key.secret_hash)
        .bind(i64::from(key.admin))
        .bind(key.label)
        .bind(now_ms())
        .bind(key.expires_at)
        .bind(key.parent_key_id)
        .execute(executor)
        .await?;
        Ok(())
    }

    /// Inserts `key` unless its user already has `max_live` live keys
    /// (neither revoked nor expired) or its parent is no longer live.
    /// Counted and inserted under the per-user lock that revocation takes
    /// too, so concurrent calls cannot pass the cap and a child cannot slip
    /// in beside a revocation of its parent.
    pub async fn insert_key_capped(
        &self,
        key: NewKey<'_>,
        max_live: u32,
    ) -> sqlx::Result<Result<(), KeyRefused>> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        lock_user(&mut tx, self.backend(), key.user_id).await?;
        if let Some(parent) = key.parent_key_id {
            let live: Option<i64> = sqlx::query_scalar(
                "SELECT COUNT(*) FROM api_keys WHERE id = $1 AND revoked_at IS NULL \
                 AND (expires_at IS NULL OR expires_at > $2)",
            )
            .bind(parent)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            if live.unwrap_or(0) == 0 {
                tx.rollback().await?;
                return Ok(Err(KeyRefused::ParentNotLive));
            }
        }
        let live: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_keys WHERE user_id = $1 AND revoked_at IS NULL \
             AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(key.user_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        if live as u64 >= u64::from(max_live) {
            tx.rollback().await?;
            return Ok(Err(KeyRefused::TooMany(TooManyKeys {
                live: live as u64,
                max: max_live,
            })));
        }
        Self::insert_key_with(&mut *tx, &key).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    pub async fn key(&self, key_id: &str) -> sqlx::Result<Option<KeyRecord>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} WHERE k.id = $1"
        )))
        .bind(key_id)
        .fetch_optional(self.pool())
        .await?
        .map(|r| key_from_row(&r))
        .transpose()
    }

    /// Keys of one user (or of everyone), newest first.
    pub async fn list_keys(&self, user_id: Option<&str>) -> sqlx::Result<Vec<KeyRecord>> {
        let rows = match user_id {
            Some(user_id) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {KEY_COLUMNS} WHERE k.user_id = $1 ORDER BY k.created_at DESC, k.id"
                )))
                .bind(user_id)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {KEY_COLUMNS} ORDER BY k.created_at DESC, k.id"
                )))
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.iter().map(key_from_row).collect()
    }

    /// Revokes a live key (only the user's own when `user_id` is given) and,
    /// transitively, every live key created below it. Returns the ids
    /// revoked, the key itself first; empty when no such live key.
    pub async fn revoke_key(
        &self,
        key_id: &str,
        user_id: Option<&str>,
    ) -> sqlx::Result<Vec<String>> {
        let mut tx = self.begin_write().await?;
        let owner: Option<String> =
            sqlx::query_scalar("SELECT user_id FROM api_keys WHERE id = $1")
                .bind(key_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(owner) = owner.filter(|owner| user_id.is_none_or(|u| u == owner)) else {
            tx.rollback().await?;
            return Ok(Vec::new());
        };
        // Under the owner's lock, the tree below includes every child
        // committed before, and none can be added until this commits.
        lock_user(&mut tx, self.backend(), &owner).await?;
        let rows: Vec<String> = sqlx::query_scalar(
            "WITH RECURSIVE tree(id) AS ( \
               SELECT id FROM api_keys WHERE id = $1 AND revoked_at IS NULL \
               UNION ALL \
               SELECT k.id FROM api_keys k JOIN tree t ON k.parent_key_id = t.id \
             ) \
             UPDATE api_keys SET revoked_at = $2 \
             WHERE id IN (SELECT id FROM tree) AND revoked_at IS NULL RETURNING id",
        )
        .bind(key_id)
        .bind(now_ms())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        if !rows.iter().any(|id| id == key_id) {
            return Ok(Vec::new());
        }
        let mut ids = rows;
        ids.sort_by_key(|id| id != key_id);
        Ok(ids)
    }

    /// True when the database holds no keys at all (first start).
    pub async fn has_no_keys(&self) -> sqlx::Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys")
            .fetch_one(self.pool())
            .await?;
        Ok(n == 0)
    }
}
