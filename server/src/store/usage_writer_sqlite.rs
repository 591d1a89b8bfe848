//! The usage writer on the embedded SQLite file: a thread of its own with
//! a connection of its own (rusqlite on the same SQLite library as sqlx).
//! It waits for writes, commits a batch to the usage inbox
//! ([`super::usage_inbox`]) and answers it directly: no hop through sqlx's
//! worker thread and back through an async task per commit, which is where
//! the commit's wall time went (the load benchmark's Runs wait for it
//! before `started`). Between batches it moves inbox rows on into
//! `usage_records`.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use rusqlite::{
    types::{ToSqlOutput, Value, ValueRef},
    Connection, OpenFlags, ToSql, TransactionBehavior,
};
use tokio::sync::mpsc;

use super::{
    usage_inbox::{append_sql, settle_sql, BOUNDARY_SQL, CLEAR_SQL, SETTLE_MAX, SETTLE_ROWS},
    usage_writer::{cells, latest, take_queued, Cell, Lag, Queued, MAX_BATCH, ROWS_PER_STATEMENT},
};
use crate::exec::UsageRecord;

/// Statements kept prepared (one per batch size seen recently).
const PREPARED_STATEMENTS: usize = 64;

/// Starts the writer thread; it ends once every sender is dropped, after
/// moving what is left in the inbox.
pub(super) fn spawn(file: PathBuf, mut rx: mpsc::Receiver<Queued>, lag: Arc<Lag>) {
    std::thread::Builder::new()
        .name("usage-writer".into())
        .spawn(move || {
            let mut writer = Writer {
                file,
                connection: None,
                unsettled: 0,
            };
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while let Some(first) = rx.blocking_recv() {
                batch.push(first);
                take_queued(&mut rx, &mut batch);
                let (rows, acks) = lag.begin_batch(&mut batch);
                let result = writer.append(rows);
                lag.acknowledge(acks, result.map_err(|e| e.to_string()));
                // Move rows on when no run waits for the writer, or when
                // too many wait in the inbox.
                if writer.unsettled >= SETTLE_MAX {
                    writer.settle(writer.unsettled - SETTLE_MAX + SETTLE_ROWS);
                } else if writer.unsettled >= SETTLE_ROWS && rx.is_empty() {
                    writer.settle(SETTLE_ROWS);
                }
            }
            while writer.unsettled > 0 && writer.settle(MAX_BATCH) {}
        })
        .expect("starting the usage writer thread");
}

/// The writer thread's connection and how many rows it has left in the
/// inbox (an upper bound: reads move rows too).
struct Writer {
    file: PathBuf,
    connection: Option<Connection>,
    unsettled: usize,
}

impl Writer {
    /// Commits the latest state of each row to the inbox.
    fn append(&mut self, writes: Vec<UsageRecord>) -> rusqlite::Result<()> {
        let rows = latest(writes);
        let count = rows.len();
        self.with_connection(|conn| append(conn, rows))?;
        self.unsettled += count;
        Ok(())
    }

    /// Moves the oldest `rows` rows of the inbox into `usage_records`;
    /// false once the inbox is empty or the move failed (the rows stay in
    /// the inbox for the next move).
    fn settle(&mut self, rows: usize) -> bool {
        match self.with_connection(|conn| settle(conn, rows)) {
            Ok(moved) => {
                self.unsettled = if moved < rows {
                    0
                } else {
                    self.unsettled.saturating_sub(moved)
                };
                moved > 0
            }
            Err(error) => {
                tracing::warn!(%error, "moving usage records out of the inbox failed");
                false
            }
        }
    }

    /// Runs `work` on the connection, opened on first use and opened anew
    /// after a failure.
    fn with_connection<T>(
        &mut self,
        work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let conn = match self.connection.as_mut() {
            Some(conn) => conn,
            None => self.connection.insert(open(&self.file)?),
        };
        let result = work(conn);
        if result.is_err() {
            self.connection = None;
        }
        result
    }
}

/// The writer's connection: the pool's settings that matter for writing
/// (the file is already in WAL mode, set by the pool's connections).
fn open(file: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Checkpoints run in the background (`Store::spawn_checkpointer`).
    conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    conn.set_prepared_statement_cache_capacity(PREPARED_STATEMENTS);
    Ok(conn)
}

/// `rows` into the inbox in one autocommit statement, or in one
/// transaction when they need more than one.
fn append(conn: &mut Connection, mut rows: Vec<UsageRecord>) -> rusqlite::Result<()> {
    if rows.len() <= ROWS_PER_STATEMENT {
        return execute(conn, rows);
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().min(ROWS_PER_STATEMENT));
        execute(&tx, rows)?;
        rows = rest;
    }
    tx.commit()
}

fn execute(conn: &Connection, rows: Vec<UsageRecord>) -> rusqlite::Result<()> {
    let mut statement = conn.prepare_cached(&append_sql(rows.len()))?;
    let values: Vec<Cell> = rows.into_iter().flat_map(cells).collect();
    statement.execute(rusqlite::params_from_iter(values.iter()))?;
    Ok(())
}

/// Moves the oldest `rows` inbox rows into `usage_records` in one
/// transaction; how many it moved.
fn settle(conn: &mut Connection, rows: usize) -> rusqlite::Result<usize> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let last: Option<i64> = tx
        .prepare_cached(BOUNDARY_SQL)?
        .query_row([rows as i64], |row| row.get(0))?;
    let Some(last) = last else {
        return Ok(0);
    };
    tx.prepare_cached(&settle_sql())?.execute([last])?;
    let moved = tx.prepare_cached(CLEAR_SQL)?.execute([last])?;
    tx.commit()?;
    Ok(moved)
}

impl ToSql for Cell {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Cell::Text(text) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Cell::Name(name) => ToSqlOutput::Borrowed(ValueRef::Text(name.as_bytes())),
            Cell::MaybeText(Some(text)) => ToSqlOutput::Borrowed(ValueRef::Text(text.as_bytes())),
            Cell::Int(int) | Cell::MaybeInt(Some(int)) => ToSqlOutput::Owned(Value::Integer(*int)),
            Cell::MaybeText(None) | Cell::MaybeInt(None) => ToSqlOutput::Owned(Value::Null),
        })
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Row as _;

    use super::super::{Store, UsageWriter};
    use crate::exec::{UsageEnd, UsageRecord};

    fn row(id: usize, end: Option<UsageEnd>) -> UsageRecord {
        UsageRecord {
            id: format!("row-{id:05}"),
            user_id: "user".into(),
            key_id: "key".into(),
            module_sha256: "sha".into(),
            day: "2026-12-02".into(),
            started_at: 1,
            end,
            cached_from: None,
            job: None,
        }
    }

    fn finished() -> UsageEnd {
        UsageEnd {
            finished_at: 2,
            outcome: "OUTCOME_SUCCESS",
            exit_code: 0,
            fuel_consumed: 7,
            duration_us: 3,
            memory_peak_bytes: 65536,
            stdin_bytes: 0,
            stdout_bytes: 5,
            stderr_bytes: 0,
        }
    }

    async fn store(dir: &tempfile::TempDir) -> Store {
        Store::connect(&super::super::sqlite_url(dir.path()))
            .await
            .unwrap()
    }

    /// Queues `row` and waits for its commit.
    async fn write(writer: &UsageWriter, row: UsageRecord) {
        writer.enqueue(row).await.unwrap().wait().await.unwrap();
    }

    async fn count(store: &Store, table: &str) -> i64 {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM {table}"
        )))
        .fetch_one(store.pool())
        .await
        .unwrap()
        .get("n")
    }

    /// Waits for the inbox to empty (a background move ends on its own
    /// time), failing after 10 s.
    async fn inbox_emptied(store: &Store) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while count(store, "usage_inbox").await > 0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the inbox stayed full"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// A batch of more rows than one statement takes reaches the inbox
    /// whole (in one transaction), visible through the pool's connections.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_batch_past_one_statement_is_appended_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let mut conn = super::open(store.sqlite_file().unwrap()).unwrap();
        let rows = (0..2 * super::ROWS_PER_STATEMENT + 200)
            .map(|id| row(id, None))
            .collect();
        super::append(&mut conn, rows).unwrap();
        assert_eq!(
            count(&store, "usage_inbox").await,
            2 * super::ROWS_PER_STATEMENT as i64 + 200
        );
    }

    /// The writer's move takes the oldest rows, no more than asked.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_move_takes_at_most_the_rows_asked() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let mut conn = super::open(store.sqlite_file().unwrap()).unwrap();
        super::append(&mut conn, (0..10).map(|id| row(id, None)).collect()).unwrap();
        assert_eq!(super::settle(&mut conn, 4).unwrap(), 4);
        assert_eq!(count(&store, "usage_records").await, 4);
        let oldest_left: String = sqlx::query_scalar("SELECT id FROM usage_inbox ORDER BY seq")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(oldest_left, "row-00004");
    }

    /// Moved in one batch, a final row written after its admission row
    /// replaces it, as a direct upsert would.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_move_applies_rows_in_the_order_written() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let mut conn = super::open(store.sqlite_file().unwrap()).unwrap();
        super::append(&mut conn, vec![row(1, None)]).unwrap();
        super::append(&mut conn, vec![row(1, Some(finished()))]).unwrap();
        assert_eq!(super::settle(&mut conn, 64).unwrap(), 2);
        let stored =
            sqlx::query("SELECT outcome, fuel_consumed FROM usage_records WHERE id = 'row-00001'")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(stored.get::<String, _>("outcome"), "OUTCOME_SUCCESS");
        assert_eq!(stored.get::<i64, _>("fuel_consumed"), 7);
    }

    /// A read of usage sees a row the writer acknowledged, even while the
    /// row is still in the inbox.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_read_of_usage_sees_rows_still_in_the_inbox() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let writer = UsageWriter::spawn(store.clone());
        write(&writer, row(1, Some(finished()))).await;
        assert_eq!(
            count(&store, "usage_inbox").await,
            1,
            "one row, under a move's batch"
        );
        assert_eq!(
            store.usage_count_day("user", "2026-12-02").await.unwrap(),
            1
        );
        assert_eq!(count(&store, "usage_inbox").await, 0);
    }

    /// Rows an idle writer left in the inbox (fewer than it moves at once)
    /// are moved by the background checkpointer.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_checkpointer_moves_what_an_idle_writer_left() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let writer = UsageWriter::spawn(store.clone());
        write(&writer, row(1, Some(finished()))).await;
        let checkpointer = store.spawn_checkpointer().unwrap();
        inbox_emptied(&store).await;
        checkpointer.abort();
        assert_eq!(count(&store, "usage_records").await, 1);
    }

    /// The writer moves what is left in the inbox before it ends.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_writer_empties_the_inbox_when_it_ends() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let writer = UsageWriter::spawn(store.clone());
        write(&writer, row(1, Some(finished()))).await;
        drop(writer);
        inbox_emptied(&store).await;
        assert_eq!(count(&store, "usage_records").await, 1);
    }
}
