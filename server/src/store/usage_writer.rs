//! Group commit for usage records: every execution writes its row once
//! (finished within its first slice) or twice (at admission, then finalized
//! at the end), and each write must be durable
//! before the caller goes on. One writer task takes everything queued since
//! its last commit, collapses it to the latest state of each row, writes it
//! on its own connection with one multi-row upsert (atomic by itself; a
//! transaction only past 500 rows), and acknowledges each write after that
//! commit — one statement per batch, not two per execution. On PostgreSQL
//! the writer is an async task on a pooled sqlx connection; on the embedded
//! SQLite file it is a thread with a connection of its own
//! ([`super::usage_writer_sqlite`]), which saves each commit two hops
//! through sqlx's worker thread and an async task.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use parking_lot::Mutex;

use futures::future::{FutureExt, Shared};
use tokio::sync::{mpsc, oneshot};

use sqlx::{pool::PoolConnection, Any, AnyConnection, Connection};

use super::{usage::RUNNING, Backend, Store};
use crate::exec::UsageRecord;

type Ack = oneshot::Sender<Result<(), String>>;

/// A queued write: the row, who waits for its commit, and since when.
pub(super) type Queued = (UsageRecord, Ack, Instant);

/// Handle to the writer task (cheap to clone).
#[derive(Clone)]
pub struct UsageWriter {
    queue: mpsc::Sender<Queued>,
    lag: Arc<Lag>,
}

/// How far the writer is behind, for `/metrics`.
#[derive(Default)]
pub(super) struct Lag {
    /// Writes queued and not yet acknowledged.
    pending: AtomicU64,
    /// When the oldest write of the batch being committed was queued.
    in_flight_since: Mutex<Option<Instant>>,
    /// The last committed batch's oldest write's wait, at its commit.
    last: Mutex<Duration>,
}

/// Writes taken into one batch at most (one statement, or one transaction
/// when the batch needs more than one statement).
pub(super) const MAX_BATCH: usize = 1024;
/// Rows per statement ([`COLUMN_COUNT`] parameters each, under SQLite's 32766).
pub(super) const ROWS_PER_STATEMENT: usize = 500;

impl UsageWriter {
    /// Starts the writer; it ends when every handle is dropped.
    pub fn spawn(store: Store) -> Self {
        let (queue, rx) = mpsc::channel::<Queued>(4096);
        let lag = Arc::new(Lag::default());
        match store.sqlite_file() {
            Some(file) => super::usage_writer_sqlite::spawn(file.to_path_buf(), rx, lag.clone()),
            None => spawn_sqlx(store, rx, lag.clone()),
        }
        Self { queue, lag }
    }

    /// Writes queued and not yet committed.
    pub fn pending(&self) -> u64 {
        self.lag.pending.load(Ordering::Relaxed)
    }

    /// How long the oldest write of the batch being committed has waited,
    /// or (between batches) how long the last batch's oldest write waited.
    pub fn lag(&self) -> Duration {
        let in_flight = self.lag.in_flight_since.lock().map(|since| since.elapsed());
        in_flight.unwrap_or_else(|| *self.lag.last.lock())
    }

    /// Queues `row` (in order with every other write) and returns a handle
    /// that resolves once it is committed.
    pub async fn enqueue(&self, row: UsageRecord) -> anyhow::Result<Committed> {
        let (ack, done) = oneshot::channel();
        self.lag.pending.fetch_add(1, Ordering::Relaxed);
        if self.queue.send((row, ack, Instant::now())).await.is_err() {
            self.lag.pending.fetch_sub(1, Ordering::Relaxed);
            anyhow::bail!("the usage writer has stopped");
        }
        Ok(Committed(done.shared()))
    }
}

/// The writer as an async task on a pooled sqlx connection (PostgreSQL,
/// or an in-memory SQLite database no other connection could open).
fn spawn_sqlx(store: Store, mut rx: mpsc::Receiver<Queued>, lag: Arc<Lag>) {
    tokio::spawn(async move {
        // One connection kept for the writer: no pool checkout (and its
        // liveness ping) per batch.
        let mut connection: Option<PoolConnection<Any>> = None;
        // Closing the store waits for every connection: give ours back.
        let mut closing = Box::pin(store.pool().close_event());
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let first = tokio::select! {
                next = rx.recv() => match next {
                    Some(first) => first,
                    None => break,
                },
                () = &mut closing, if connection.is_some() => {
                    connection = None;
                    continue;
                }
            };
            batch.push(first);
            take_queued(&mut rx, &mut batch);
            let (rows, acks) = lag.begin_batch(&mut batch);
            let result = match connection.as_mut() {
                Some(conn) => Ok(conn),
                None => store.pool().acquire().await.map(|c| connection.insert(c)),
            };
            let result = match result {
                Ok(conn) => upsert_usage(conn, store.backend(), rows).await,
                Err(error) => Err(error),
            };
            if result.is_err() {
                // Start over on a fresh connection next time.
                connection = None;
            }
            lag.acknowledge(acks, result.map_err(|e| e.to_string()));
        }
    });
}

/// Adds what else is queued to `batch`, up to [`MAX_BATCH`], without waiting.
pub(super) fn take_queued(rx: &mut mpsc::Receiver<Queued>, batch: &mut Vec<Queued>) {
    while batch.len() < MAX_BATCH {
        match rx.try_recv() {
            Ok(next) => batch.push(next),
            Err(_) => break,
        }
    }
}

impl Lag {
    /// Marks `batch` in flight and splits it into rows and acknowledgements.
    pub(super) fn begin_batch(&self, batch: &mut Vec<Queued>) -> (Vec<UsageRecord>, Vec<Ack>) {
        *self.in_flight_since.lock() = batch.iter().map(|(_, _, queued)| *queued).min();
        batch.drain(..).map(|(row, ack, _)| (row, ack)).unzip()
    }

    /// Answers every write of a batch with its commit's result.
    pub(super) fn acknowledge(&self, acks: Vec<Ack>, result: Result<(), String>) {
        if let Err(error) = &result {
            tracing::error!(%error, "writing usage records failed");
        }
        if let Some(oldest) = self.in_flight_since.lock().take() {
            *self.last.lock() = oldest.elapsed();
        }
        self.pending.fetch_sub(acks.len() as u64, Ordering::Relaxed);
        for ack in acks {
            let _ = ack.send(result.clone());
        }
    }
}

/// A queued write's commit; clones wait for the same commit, so the event
/// stream and the execution's end can both depend on the admission row.
#[derive(Clone)]
pub struct Committed(Shared<oneshot::Receiver<Result<(), String>>>);

impl Committed {
    /// Waits for the commit (or its failure).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.0
            .await
            .map_err(|_| anyhow::anyhow!("the usage writer has stopped"))?
            .map_err(|e| anyhow::anyhow!("writing usage records: {e}"))
    }
}

pub(super) const COLUMNS: &str = "id, user_id, key_id, module_sha256, day, started_at, finished_at, outcome, \
     exit_code, fuel_consumed, duration_us, memory_peak_bytes, stdin_bytes, stdout_bytes, stderr_bytes, \
     cached_from, job_id, charged";
/// How many values each row binds (the names in [`COLUMNS`]).
const COLUMN_COUNT: usize = 18;

/// The latest state of each row, in the order rows were first queued.
pub(super) fn latest(writes: Vec<UsageRecord>) -> Vec<UsageRecord> {
    let mut latest: Vec<UsageRecord> = Vec::with_capacity(writes.len());
    let mut index: HashMap<String, usize> = HashMap::with_capacity(writes.len());
    for row in writes {
        match index.get(&row.id) {
            Some(&at) => latest[at] = row,
            None => {
                index.insert(row.id.clone(), latest.len());
                latest.push(row);
            }
        }
    }
    latest
}

/// Writes the latest state of each row: one autocommit statement, or one
/// transaction when the rows need more than one statement. A finished row
/// never goes back to running, and rows marked aborted stay so.
async fn upsert_usage(
    conn: &mut AnyConnection,
    backend: Backend,
    writes: Vec<UsageRecord>,
) -> sqlx::Result<()> {
    let latest = latest(writes);
    if latest.len() <= ROWS_PER_STATEMENT {
        // One statement is atomic on its own: no BEGIN and COMMIT round
        // trips to the database.
        upsert_statement(backend, latest)
            .execute(&mut *conn)
            .await?;
        return Ok(());
    }
    let mut tx = conn.begin_with(backend.begin_write_sql()).await?;
    for chunk in latest.chunks(ROWS_PER_STATEMENT) {
        upsert_statement(backend, chunk.to_vec())
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// `(?, ?, ...), (...)` for `rows` rows of [`COLUMN_COUNT`] columns, in one string (no
/// string per cell: this runs for every batch).
pub(super) fn placeholders(backend: Backend, rows: usize) -> String {
    use std::fmt::Write as _;
    let mut values = String::with_capacity(rows * COLUMN_COUNT * 6);
    for r in 0..rows {
        values.push_str(if r == 0 { "(" } else { ", (" });
        for c in 1..=COLUMN_COUNT {
            if c > 1 {
                values.push_str(", ");
            }
            match backend {
                Backend::Postgres => {
                    let _ = write!(values, "${}", r * COLUMN_COUNT + c);
                }
                Backend::Sqlite => values.push('?'),
            }
        }
        values.push(')');
    }
    values
}

/// The multi-row upsert of `rows` rows (at most [`ROWS_PER_STATEMENT`]).
/// SQLite gets positional `?` placeholders: it binds `$N` by looking each
/// name up, which costs more than the rest of the statement's binding.
pub(super) fn upsert_sql(backend: Backend, rows: usize) -> String {
    format!(
        "INSERT INTO usage_records ({COLUMNS}) VALUES {} {}",
        placeholders(backend, rows),
        on_conflict()
    )
}

/// What writing a row that exists does: a finished row never goes back to
/// running, and rows marked aborted stay so (shared with the inbox's move
/// into `usage_records`).
pub(super) fn on_conflict() -> String {
    format!(
        "ON CONFLICT (id) DO UPDATE SET \
         finished_at = excluded.finished_at, outcome = excluded.outcome, exit_code = excluded.exit_code, \
         fuel_consumed = excluded.fuel_consumed, duration_us = excluded.duration_us, \
         memory_peak_bytes = excluded.memory_peak_bytes, stdin_bytes = excluded.stdin_bytes, \
         stdout_bytes = excluded.stdout_bytes, stderr_bytes = excluded.stderr_bytes \
         WHERE usage_records.outcome = '{RUNNING}' AND excluded.outcome <> '{RUNNING}'"
    )
}

/// One value a usage row binds, in [`COLUMNS`] order: both writers bind
/// the same cells.
pub(super) enum Cell {
    Text(String),
    Name(&'static str),
    MaybeText(Option<String>),
    Int(i64),
    MaybeInt(Option<i64>),
}

/// `row`'s values in [`COLUMNS`] order.
pub(super) fn cells(row: UsageRecord) -> [Cell; COLUMN_COUNT] {
    use Cell::*;
    let end = row.end.as_ref();
    let count = |value: fn(&crate::exec::UsageEnd) -> u64| Int(end.map_or(0, |e| value(e) as i64));
    [
        Text(row.id),
        Text(row.user_id),
        Text(row.key_id),
        Text(row.module_sha256),
        Text(row.day),
        Int(row.started_at),
        MaybeInt(end.map(|e| e.finished_at)),
        Name(end.map_or(RUNNING, |e| e.outcome)),
        MaybeInt(end.map(|e| i64::from(e.exit_code))),
        count(|e| e.fuel_consumed),
        count(|e| e.duration_us),
        count(|e| e.memory_peak_bytes),
        count(|e| e.stdin_bytes),
        count(|e| e.stdout_bytes),
        count(|e| e.stderr_bytes),
        MaybeText(row.cached_from),
        MaybeText(row.job.as_ref().map(|job| job.job_id.clone())),
        Int(row.job.as_ref().map_or(1, |job| i64::from(job.charged))),
    ]
}

/// One multi-row upsert of `rows` (at most [`ROWS_PER_STATEMENT`]) through sqlx.
fn upsert_statement(
    backend: Backend,
    rows: Vec<UsageRecord>,
) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    let sql = upsert_sql(backend, rows.len());
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for cell in rows.into_iter().flat_map(cells) {
        query = match cell {
            Cell::Text(text) => query.bind(text),
            Cell::Name(name) => query.bind(name),
            Cell::MaybeText(text) => query.bind(text),
            Cell::Int(int) => query.bind(int),
            Cell::MaybeInt(int) => query.bind(int),
        };
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_postgres_cells_across_rows() {
        let two = placeholders(Backend::Postgres, 2);
        assert!(two.starts_with("($1, $2, "), "{two}");
        let (last, next) = (COLUMN_COUNT, COLUMN_COUNT + 1);
        assert!(two.contains(&format!("${last}), (${next}, ")), "{two}");
        assert!(two.ends_with(&format!("${})", 2 * COLUMN_COUNT)), "{two}");
    }

    #[test]
    fn placeholders_for_sqlite_are_positional() {
        let one = placeholders(Backend::Sqlite, 1);
        assert_eq!(one, format!("({})", vec!["?"; COLUMN_COUNT].join(", ")));
    }
}
