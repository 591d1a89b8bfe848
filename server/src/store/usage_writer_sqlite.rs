//! The usage writer on the embedded SQLite file: a thread of its own with
//! a connection of its own (rusqlite on the same SQLite library as sqlx).
//! It waits for writes, commits a batch and answers it directly: no hop
//! through sqlx's worker thread and back through an async task per commit,
//! which is where the commit's wall time went (the load benchmark's Runs
//! wait for it before `started`).

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
    usage_writer::{
        cells, latest, take_queued, upsert_sql, Cell, Lag, Queued, MAX_BATCH, ROWS_PER_STATEMENT,
    },
    Backend,
};
use crate::exec::UsageRecord;

/// Statements kept prepared (one per batch size seen recently).
const PREPARED_STATEMENTS: usize = 64;

/// Starts the writer thread; it ends once every sender is dropped.
pub(super) fn spawn(file: PathBuf, mut rx: mpsc::Receiver<Queued>, lag: Arc<Lag>) {
    std::thread::Builder::new()
        .name("usage-writer".into())
        .spawn(move || {
            let mut connection: Option<Connection> = None;
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while let Some(first) = rx.blocking_recv() {
                batch.push(first);
                take_queued(&mut rx, &mut batch);
                let (rows, acks) = lag.begin_batch(&mut batch);
                let result = match connection.as_mut() {
                    Some(conn) => Ok(conn),
                    None => open(&file).map(|conn| connection.insert(conn)),
                }
                .and_then(|conn| upsert(conn, rows));
                if result.is_err() {
                    // Start over on a fresh connection next time.
                    connection = None;
                }
                lag.acknowledge(acks, result.map_err(|e| e.to_string()));
            }
        })
        .expect("starting the usage writer thread");
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

/// The latest state of each row in one autocommit statement, or in one
/// transaction when they need more than one (see `usage_writer`).
fn upsert(conn: &mut Connection, writes: Vec<UsageRecord>) -> rusqlite::Result<()> {
    let mut rows = latest(writes);
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
    let mut statement = conn.prepare_cached(&upsert_sql(Backend::Sqlite, rows.len()))?;
    let values: Vec<Cell> = rows.into_iter().flat_map(cells).collect();
    statement.execute(rusqlite::params_from_iter(values.iter()))?;
    Ok(())
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

    /// A batch of more rows than one statement takes is written whole
    /// (in one transaction), visible through the pool's own connections.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_batch_past_one_statement_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let mut conn = super::open(store.sqlite_file().unwrap()).unwrap();
        let rows = (0..2 * super::ROWS_PER_STATEMENT + 200)
            .map(|id| row(id, None))
            .collect();
        super::upsert(&mut conn, rows).unwrap();
        let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM usage_records")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .get("n");
        assert_eq!(count, 2 * super::ROWS_PER_STATEMENT as i64 + 200);
    }

    /// A final row queued behind its admission row replaces it.
    #[tokio::test(flavor = "multi_thread")]
    async fn the_final_row_replaces_the_admission_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir).await;
        let writer = UsageWriter::spawn(store.clone());
        writer
            .enqueue(row(1, None))
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        writer
            .enqueue(row(1, Some(finished())))
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
        let stored =
            sqlx::query("SELECT outcome, fuel_consumed FROM usage_records WHERE id = 'row-00001'")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(stored.get::<String, _>("outcome"), "OUTCOME_SUCCESS");
        assert_eq!(stored.get::<i64, _>("fuel_consumed"), 7);
    }
}
