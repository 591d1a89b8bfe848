//! The embedded database's usage inbox (migration 0009). The SQLite usage
//! writer commits each batch of rows to `usage_inbox`, an append to one
//! B-tree, and acknowledges it: that commit is what a run waits for before
//! `started`, and it no longer writes `usage_records`' table and indexes
//! (five B-trees for a finished row). Rows move into `usage_records`
//! later, many to a commit, which shares each index page's write among
//! them: by the writer when its queue is empty and enough rows wait (or
//! too many do), a few at each tick of the background checkpointer (rows
//! an idle writer left), and by every read of usage before it reads
//! ([`Store::settle_usage`]), so no reader sees `usage_records` behind a
//! write it was told is durable. PostgreSQL has no inbox: its writer
//! upserts `usage_records` directly.

use super::{
    usage_writer::{on_conflict, placeholders, COLUMNS},
    Backend, Store,
};

/// Rows the writer moves in one commit once its queue is empty: enough to
/// share the index pages' writes among many rows, few enough that a run
/// arriving meanwhile waits about a millisecond.
pub(super) const SETTLE_ROWS: usize = 64;

/// Rows past which the writer moves a batch even while writes wait, so the
/// inbox stays small when the queue never empties.
pub(super) const SETTLE_MAX: usize = 1024;

/// The multi-row insert of `rows` rows into the inbox.
pub(super) fn append_sql(rows: usize) -> String {
    format!(
        "INSERT INTO usage_inbox ({COLUMNS}) VALUES {}",
        placeholders(Backend::Sqlite, rows)
    )
}

/// Moves the inbox's rows up to `seq = $1` into `usage_records` in the
/// order they were written, with the same upsert a direct write makes;
/// [`CLEAR_SQL`] then removes them, in the same transaction.
pub(super) fn settle_sql() -> String {
    // `WHERE` keeps SQLite from reading `ON CONFLICT` as a join's `ON`.
    format!(
        "INSERT INTO usage_records ({COLUMNS}) SELECT {COLUMNS} FROM usage_inbox \
         WHERE seq <= $1 ORDER BY seq {}",
        on_conflict()
    )
}

/// Removes the rows [`settle_sql`] moved.
pub(super) const CLEAR_SQL: &str = "DELETE FROM usage_inbox WHERE seq <= $1";

/// The last `seq` of the first `rows` rows waiting (`$1`), or of all of
/// them with a limit of -1.
pub(super) const BOUNDARY_SQL: &str =
    "SELECT MAX(seq) FROM (SELECT seq FROM usage_inbox ORDER BY seq LIMIT $1)";

impl Store {
    /// Moves every row in the inbox into `usage_records`; every read of
    /// usage calls it first. A no-op on PostgreSQL and in memory, where the
    /// writer writes `usage_records` directly.
    pub(crate) async fn settle_usage(&self) -> sqlx::Result<()> {
        self.settle_inbox(None).await
    }

    /// Moves the oldest `at_most` rows (all with `None`) in one transaction.
    pub(super) async fn settle_inbox(&self, at_most: Option<usize>) -> sqlx::Result<()> {
        if self.sqlite_file.is_none() {
            return Ok(());
        }
        let limit = at_most.map_or(-1, |rows| rows as i64);
        let last: Option<i64> = sqlx::query_scalar(BOUNDARY_SQL)
            .bind(limit)
            .fetch_one(self.pool())
            .await?;
        let Some(last) = last else {
            return Ok(());
        };
        let mut tx = self.begin_write().await?;
        sqlx::query(sqlx::AssertSqlSafe(settle_sql()))
            .bind(last)
            .execute(&mut *tx)
            .await?;
        sqlx::query(CLEAR_SQL).bind(last).execute(&mut *tx).await?;
        tx.commit().await
    }
}
