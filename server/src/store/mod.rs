//! Durable state through sqlx: users, API keys, modules and usage records.
//!
//! One code path serves both databases through sqlx's `Any` driver (SQL is
//! written in the dialect both accept: `$n` placeholders, `ON CONFLICT`,
//! BIGINT columns; the usage writer's multi-row upsert is the exception: it
//! is built per backend, with `?` on SQLite, and on the SQLite file it is
//! written by a thread of its own through rusqlite, see `usage_writer`); each database has its own migrations under
//! `migrations/`. SQLite (one file in the data dir, WAL mode) is the
//! embedded default; `postgres://` URLs select PostgreSQL.

pub mod jobs;
mod modules;
pub mod result_cache;
mod usage;
mod usage_inbox;
mod usage_writer;
mod usage_writer_sqlite;
mod users;
pub mod webhook_deliveries;

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::{
    any::{AnyConnectOptions, AnyPoolOptions},
    migrate::Migrator,
    AnyPool, Executor,
};

pub use self::{
    modules::{ModuleCounts, ModuleRow, OverQuota, PutModule, StorageQuota, StorageUsage},
    usage::{DailyUsage, UsageSummary},
    usage_writer::{Committed, UsageWriter},
    users::{KeyRecord, KeyRefused, NewKey, TooManyKeys, UserRow},
};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

/// How often [`Store::spawn_checkpointer`] checkpoints the SQLite WAL: the
/// WAL holds about this much time's writes before it is reused.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);

/// WAL frames past which a checkpoint also makes the next writer start the
/// WAL over (RESTART), so the file stays near this size (4 KiB pages: 16 MiB)
/// even when writes never pause long enough for SQLite to reuse it alone.
const WAL_RESTART_FRAMES: i64 = 4096;

/// One background checkpoint: PASSIVE (copies what it can, never waits),
/// then RESTART only when the WAL has grown past [`WAL_RESTART_FRAMES`].
async fn checkpoint(pool: &AnyPool) -> sqlx::Result<()> {
    let (_busy, frames, _copied): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(pool)
            .await?;
    if frames > WAL_RESTART_FRAMES {
        sqlx::query("PRAGMA wal_checkpoint(RESTART)")
            .execute(pool)
            .await?;
    }
    Ok(())
}

/// Which database backs the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The statement that begins a transaction that will write (see
    /// [`Store::begin_write`]).
    pub(crate) fn begin_write_sql(self) -> &'static str {
        match self {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        }
    }
}

/// Handle to the database (cheap to clone).
#[derive(Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The embedded database's file (`None` on PostgreSQL or in memory):
    /// the usage writer opens a connection of its own to it.
    sqlite_file: Option<std::sync::Arc<Path>>,
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The SQLite URL of the embedded default database in `data_dir`.
pub fn sqlite_url(data_dir: &Path) -> String {
    format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("wasmwiz.db").display()
    )
}

impl Store {
    /// Connects and runs pending migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            anyhow::bail!("unsupported database URL (use sqlite://… or postgres://…): {url}");
        };
        let sqlite_file = match backend {
            Backend::Sqlite => {
                let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
                let file = options.get_filename();
                (!file.as_os_str().is_empty() && file != Path::new(":memory:"))
                    .then(|| std::sync::Arc::from(file))
            }
            Backend::Postgres => None,
        };
        let options = AnyConnectOptions::from_str(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        // Checkpoints run in the background instead (see
                        // `spawn_checkpointer`): no commit waits for one.
                        conn.execute("PRAGMA wal_autocheckpoint = 0").await?;
                        conn.execute("PRAGMA busy_timeout = 10000").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await?;
        match backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&pool).await?,
        }
        Ok(Self {
            pool,
            backend,
            sqlite_file,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The embedded database's file, when it is one.
    pub(crate) fn sqlite_file(&self) -> Option<&Path> {
        self.sqlite_file.as_deref()
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// On SQLite, checkpoints the WAL every [`CHECKPOINT_EVERY`] in the
    /// background, after moving a few usage rows out of the inbox. PASSIVE
    /// never blocks writers, and taking checkpoints off the commit path
    /// took the load benchmark's p99 from ≈5 ms to ≈1.5 ms. None on
    /// PostgreSQL.
    pub fn spawn_checkpointer(&self) -> Option<tokio::task::JoinHandle<()>> {
        if self.backend != Backend::Sqlite {
            return None;
        }
        let store = self.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                // What an idle usage writer left in the inbox (it moves
                // larger batches itself).
                if let Err(error) = store.settle_inbox(Some(usage_inbox::SETTLE_ROWS)).await {
                    tracing::warn!(%error, "moving usage records out of the inbox failed");
                }
                if let Err(error) = checkpoint(&store.pool).await {
                    tracing::warn!(%error, "SQLite WAL checkpoint failed");
                }
            }
        }))
    }

    /// A transaction that will write. On SQLite it takes the write lock at
    /// BEGIN (IMMEDIATE): a deferred transaction that reads first cannot
    /// upgrade once another connection has committed, and fails at once
    /// with SQLITE_BUSY instead of waiting.
    pub(crate) async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'static, sqlx::Any>> {
        self.pool.begin_with(self.backend.begin_write_sql()).await
    }

    /// True when the database answers (for `/readyz`).
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}
