//! Stored modules: bytes kept once per sha256, visibility per account, and
//! each account's storage quota (bytes and module count).

use sqlx::Row;

use super::{now_ms, Backend, Store};

/// A module as one account sees it (never its bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRow {
    pub sha256: String,
    pub size: u64,
    pub created_at: i64,
    /// Import and export counts; `None` for modules stored before they
    /// were recorded and not compiled since.
    pub counts: Option<ModuleCounts>,
}

/// How many imports and exports a module has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModuleCounts {
    pub imports: u32,
    pub exports: u32,
}

/// Result of storing a module for an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutModule {
    pub already_existed: bool,
    pub created_at: i64,
}

/// What an account keeps stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StorageUsage {
    pub bytes: u64,
    pub modules: u64,
}

/// An account's storage allowance; 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageQuota {
    pub max_bytes: u64,
    pub max_modules: u64,
}

/// Why a module was not stored: the quota it would have passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverQuota {
    pub used: StorageUsage,
    pub adding_bytes: u64,
    pub quota: StorageQuota,
}

impl StorageQuota {
    pub const UNLIMITED: StorageQuota = StorageQuota {
        max_bytes: 0,
        max_modules: 0,
    };

    /// `Err` when one more module of `size` bytes would pass the quota.
    pub fn admits(&self, used: StorageUsage, size: u64) -> Result<(), OverQuota> {
        let over_modules = self.max_modules > 0 && used.modules + 1 > self.max_modules;
        let over_bytes = self.max_bytes > 0 && used.bytes.saturating_add(size) > self.max_bytes;
        if over_modules || over_bytes {
            return Err(OverQuota {
                used,
                adding_bytes: size,
                quota: *self,
            });
        }
        Ok(())
    }
}

fn counts_from(row: &sqlx::any::AnyRow, first: usize) -> sqlx::Result<Option<ModuleCounts>> {
    let imports: Option<i64> = row.try_get(first)?;
    let exports: Option<i64> = row.try_get(first + 1)?;
    Ok(imports.zip(exports).map(|(i, e)| ModuleCounts {
        imports: i as u32,
        exports: e as u32,
    }))
}

fn module_row(row: &sqlx::any::AnyRow) -> sqlx::Result<ModuleRow> {
    Ok(ModuleRow {
        sha256: row.try_get(0)?,
        size: row.try_get::<i64, _>(1)? as u64,
        created_at: row.try_get(2)?,
        counts: counts_from(row, 3)?,
    })
}

/// Columns of [`module_row`]: sha256, size, created_at (of the link), counts.
const ROW_COLUMNS: &str = "m.sha256, m.size, a.created_at, m.import_count, m.export_count \
     FROM account_modules a JOIN modules m ON m.sha256 = a.sha256";

const USAGE_SQL: &str = "SELECT COUNT(*), CAST(COALESCE(SUM(m.size), 0) AS BIGINT) \
     FROM account_modules a JOIN modules m ON m.sha256 = a.sha256 WHERE a.user_id = $1";

fn usage_from(row: &sqlx::any::AnyRow) -> sqlx::Result<StorageUsage> {
    Ok(StorageUsage {
        modules: row.try_get::<i64, _>(0)? as u64,
        bytes: row.try_get::<i64, _>(1)? as u64,
    })
}

impl Store {
    /// Stores `bytes` (if new to the server) and links them to `user_id`,
    /// unless the link would pass `quota`.
    ///
    /// The quota is checked and the link written in one transaction that
    /// holds a per-user write lock (SQLite: the database's, taken at BEGIN
    /// IMMEDIATE; PostgreSQL: the user's row, `FOR UPDATE`), so concurrent
    /// uploads of one account are serialized and never overshoot it.
    pub async fn put_module(
        &self,
        user_id: &str,
        sha256: &str,
        bytes: &[u8],
        counts: ModuleCounts,
        quota: StorageQuota,
    ) -> sqlx::Result<Result<PutModule, OverQuota>> {
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        if self.backend() == Backend::Postgres {
            sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        }
        let linked: Option<i64> = sqlx::query_scalar(
            "SELECT created_at FROM account_modules WHERE user_id = $1 AND sha256 = $2",
        )
        .bind(user_id)
        .bind(sha256)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(created_at) = linked {
            tx.rollback().await?;
            return Ok(Ok(PutModule {
                already_existed: true,
                created_at,
            }));
        }
        let used = usage_from(
            &sqlx::query(USAGE_SQL)
                .bind(user_id)
                .fetch_one(&mut *tx)
                .await?,
        )?;
        if let Err(over) = quota.admits(used, bytes.len() as u64) {
            tx.rollback().await?;
            return Ok(Err(over));
        }
        let known: Option<Option<i64>> =
            sqlx::query_scalar("SELECT import_count FROM modules WHERE sha256 = $1")
                .bind(sha256)
                .fetch_optional(&mut *tx)
                .await?;
        match known {
            None => {
                sqlx::query(
                    "INSERT INTO modules (sha256, size, bytes, created_at, import_count, \
                     export_count) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (sha256) DO NOTHING",
                )
                .bind(sha256)
                .bind(bytes.len() as i64)
                .bind(bytes)
                .bind(now)
                .bind(i64::from(counts.imports))
                .bind(i64::from(counts.exports))
                .execute(&mut *tx)
                .await?;
            }
            Some(None) => Self::record_counts(&mut *tx, sha256, counts).await?,
            Some(Some(_)) => {}
        }
        sqlx::query(
            "INSERT INTO account_modules (user_id, sha256, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, sha256) DO NOTHING",
        )
        .bind(user_id)
        .bind(sha256)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Ok(PutModule {
            already_existed: false,
            created_at: now,
        }))
    }

    async fn record_counts<'c>(
        executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
        sha256: &str,
        counts: ModuleCounts,
    ) -> sqlx::Result<()> {
        sqlx::query(
            "UPDATE modules SET import_count = $1, export_count = $2 \
             WHERE sha256 = $3 AND import_count IS NULL",
        )
        .bind(i64::from(counts.imports))
        .bind(i64::from(counts.exports))
        .bind(sha256)
        .execute(executor)
        .await?;
        Ok(())
    }

    /// Records the counts of a module stored before they were kept (once it
    /// has been compiled again).
    pub async fn set_module_counts(&self, sha256: &str, counts: ModuleCounts) -> sqlx::Result<()> {
        Self::record_counts(self.pool(), sha256, counts).await
    }

    /// Bytes and modules the account keeps stored.
    pub async fn storage_usage(&self, user_id: &str) -> sqlx::Result<StorageUsage> {
        usage_from(
            &sqlx::query(USAGE_SQL)
                .bind(user_id)
                .fetch_one(self.pool())
                .await?,
        )
    }

    /// The module if `user_id` has it.
    pub async fn module_info(
        &self,
        user_id: &str,
        sha256: &str,
    ) -> sqlx::Result<Option<ModuleRow>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ROW_COLUMNS} WHERE a.user_id = $1 AND a.sha256 = $2"
        )))
        .bind(user_id)
        .bind(sha256)
        .fetch_optional(self.pool())
        .await?
        .map(|r| module_row(&r))
        .transpose()
    }

    /// Whether `user_id` has stored the module or run it (a usage row).
    pub async fn has_used_module(&self, user_id: &str, sha256: &str) -> sqlx::Result<bool> {
        self.settle_usage().await?;
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
    /// (created_at, sha256) of the previous page's last row. Reads sizes
    /// and counts only, never the modules' bytes.
    pub async fn list_modules(
        &self,
        user_id: &str,
        limit: u32,
        after: Option<(i64, String)>,
    ) -> sqlx::Result<Vec<ModuleRow>> {
        let (before_time, before_sha) = after.unwrap_or((i64::MAX, String::new()));
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ROW_COLUMNS} WHERE a.user_id = $1 \
             AND (a.created_at < $2 OR (a.created_at = $2 AND a.sha256 > $3)) \
             ORDER BY a.created_at DESC, a.sha256 ASC LIMIT $4"
        )))
        .bind(user_id)
        .bind(before_time)
        .bind(before_sha)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(module_row).collect()
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
