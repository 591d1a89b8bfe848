//! Stored modules: bytes kept once per sha256, visibility per account.

use sqlx::Row;

use super::{now_ms, Store};

/// A module as one account sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRow {
    pub sha256: String,
    pub size: u64,
    pub created_at: i64,
}

/// Result of storing a module for an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutModule {
    pub already_existed: bool,
    pub created_at: i64,
}

impl Store {
    /// Stores `bytes` (if new to the server) and links them to `user_id`.
    pub async fn put_module(
        &self,
        user_id: &str,
        sha256: &str,
        bytes: &[u8],
    ) -> sqlx::Result<PutModule> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let known: Option<i64> = sqlx::query_scalar("SELECT size FROM modules WHERE sha256 = $1")
            .bind(sha256)
            .fetch_optional(&mut *tx)
            .await?;
        if known.is_none() {
            sqlx::query(
                "INSERT INTO modules (sha256, size, bytes, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(sha256)
            .bind(bytes.len() as i64)
            .bind(bytes)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        let linked = sqlx::query(
            "INSERT INTO account_modules (user_id, sha256, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, sha256) DO NOTHING",
        )
        .bind(user_id)
        .bind(sha256)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let already_existed = linked.rows_affected() == 0;
        let created_at = if already_existed {
            self.module_info(user_id, sha256)
                .await?
                .map_or(now, |m| m.created_at)
        } else {
            now
        };
        Ok(PutModule {
            already_existed,
            created_at,
        })
    }

    /// The module if `user_id` has it.
    pub async fn module_info(
        &self,
        user_id: &str,
        sha256: &str,
    ) -> sqlx::Result<Option<ModuleRow>> {
        sqlx::query(
            "SELECT m.sha256, m.size, a.created_at FROM account_modules a \
             JOIN modules m ON m.sha256 = a.sha256 WHERE a.user_id = $1 AND a.sha256 = $2",
        )
        .bind(user_id)
        .bind(sha256)
        .fetch_optional(self.pool())
        .await?
        .map(|r| {
            Ok(ModuleRow {
                sha256: r.try_get(0)?,
                size: r.try_get::<i64, _>(1)? as u64,
                created_at: r.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Whether `user_id` has stored the module or run it (a usage row).
    pub async fn has_used_module(&self, user_id: &str, sha256: &str) -> sqlx::Result<bool> {
        let found: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM (\
               SELECT 1 AS used FROM account_modules WHERE user_id = $1 AND sha256 = $2 \
               UNION ALL \
               SELECT 1 FROM usage_records WHERE user_id = $3 AND module_sha256 = $4 \
               LIMIT 1) AS used",
        )
        .bind(user_id)
        .bind(sha256)
        .bind(user_id)
        .bind(sha256)
        .fetch_one(self.pool())
        .await?;
        Ok(found > 0)
    }

    /// The module's bytes if `user_id` has it.
    pub async fn module_bytes(&self, user_id: &str, sha256: &str) -> sqlx::Result<Option<Vec<u8>>> {
        sqlx::query_scalar(
            "SELECT m.bytes FROM account_modules a JOIN modules m ON m.sha256 = a.sha256 \
             WHERE a.user_id = $1 AND a.sha256 = $2",
        )
        .bind(user_id)
        .bind(sha256)
        .fetch_optional(self.pool())
        .await
    }

    /// A page of the account's modules, newest first; `after` is the
    /// (created_at, sha256) of the previous page's last row.
    pub async fn list_modules(
        &self,
        user_id: &str,
        limit: u32,
        after: Option<(i64, String)>,
    ) -> sqlx::Result<Vec<ModuleRow>> {
        let (before_time, before_sha) = after.unwrap_or((i64::MAX, String::new()));
        let rows = sqlx::query(
            "SELECT m.sha256, m.size, a.created_at FROM account_modules a \
             JOIN modules m ON m.sha256 = a.sha256 WHERE a.user_id = $1 \
             AND (a.created_at < $2 OR (a.created_at = $2 AND a.sha256 > $3)) \
             ORDER BY a.created_at DESC, a.sha256 ASC LIMIT $4",
        )
        .bind(user_id)
        .bind(before_time)
        .bind(before_sha)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ModuleRow {
                    sha256: r.try_get(0)?,
                    size: r.try_get::<i64, _>(1)? as u64,
                    created_at: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Unlinks the module from the account and drops its bytes when no
    /// account has it any more; false when the account did not have it.
    pub async fn delete_module(&self, user_id: &str, sha256: &str) -> sqlx::Result<bool> {
        let mut tx = self.begin_write().await?;
        let removed = sqlx::query("DELETE FROM account_modules WHERE user_id = $1 AND sha256 = $2")
            .bind(user_id)
            .bind(sha256)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM modules WHERE sha256 = $1 AND NOT EXISTS \
             (SELECT 1 FROM account_modules WHERE sha256 = $1)",
        )
        .bind(sha256)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(removed.rows_affected() > 0)
    }
}
