//! Group commit for usage records: every execution writes its row once
//! (finished within its first slice) or twice (at admission, then finalized
//! at the end), and each write must be durable
//! before the caller goes on. One writer task takes everything queued since
//! its last commit, collapses it to the latest state of each row, writes it
//! on its own connection with one multi-row upsert (atomic by itself; a
//! transaction only past 500 rows), and acknowledges each write after that
//! commit — one statement per batch, not two per execution.

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
type Queued = (UsageRecord, Ack, Instant);

/// Handle to the writer task (cheap to clone).
#[derive(Clone)]
pub struct UsageWriter {
    queue: mpsc::Sender<Queued>,
    lag: Arc<Lag>,
}

/// How far the writer is behind, for `/metrics`.
#[derive(Default)]
struct Lag {
    /// Writes queued and not yet acknowledged.
    pending: AtomicU64,
    /// When the oldest write of the batch being committed was queued.
    in_flight_since: Mutex<Option<Instant>>,
    /// The last committed batch's oldest write's wait, at its commit.
    last: Mutex<Duration>,
}

/// Writes taken into one batch at most (one statement, or one transaction
/// when the batch needs more than one statement).
const MAX_BATCH: usize = 1024;
/// Rows per statement ([`COLUMN_COUNT`] parameters each, under SQLite's 32766).
const ROWS_PER_STATEMENT: usize = 500;

impl UsageWriter {
    /// Starts the writer task; it ends when every handle is dropped.
    pub fn spawn(store: Store) -> Self {
        let (queue, mut rx) = mpsc::channel::<Queued>(4096);
        let lag = Arc::new(Lag::default());
        let writer_lag = lag.clone();
        tokio::spawn(async move {
            let lag = writer_lag;
            // One connection kept for the writer: no pool checkout (and its
            // liveness ping) per batch, and on SQLite its page cache stays
            // warm because no other connection is writing usage rows.
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
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let oldest = batch.iter().map(|(_, _, queued)| *queued).min();
                *lag.in_flight_since.lock() = oldest;
                let (rows, acks): (Vec<_>, Vec<_>) =
                    batch.drain(..).map(|(row, ack, _)| (row, ack)).unzip();
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
                let result = result.map_err(|e| e.to_string());

                if let Err(error) = &result {
                    tracing::error!(%error, "writing usage records failed");
                }
                if let Some(oldest) = lag.in_flight_since.lock().take() {
                    *lag.last.lock() = oldest.elapsed();
                }
                lag.pending.fetch_sub(acks.len() as u64, Ordering::Relaxed);
                for ack in acks {
                    let _ = ack.send(result.clone());
                }
            }
        });
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

const COLUMNS: &str = "id, user_id, key_id, module_sha256, day, started_at, finished_at, outcome, \
     exit_code, fuel_consumed, duration_us, memory_peak_bytes, stdin_bytes, stdout_bytes, stderr_bytes, \
     cached_from, job_id, charged";
/// How many values each row binds (the names in [`COLUMNS`]).
const COLUMN_COUNT: usize = 18;

/// Writes the latest state of each row: one autocommit statement, or one
/// transaction when the rows need more than one statement. A finished row
/// never goes back to running, and rows marked aborted stay so.
async fn upsert_usage(
    conn: &mut AnyConnection,
    backend: Backend,
    writes: Vec<UsageRecord>,
) -> sqlx::Result<()> {
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
    if latest.len() <= ROWS_PER_STATEMENT {
        // One statement is atomic on its own: no BEGIN and COMMIT round
        // trips to the database (on SQLite, each is a thread hop).
        upsert_statement(backend, &latest)
            .execute(&mut *conn)
            .await?;
        return Ok(());
    }
    let mut tx = conn.begin_with(backend.begin_write_sql()).await?;
    for chunk in latest.chunks(ROWS_PER_STATEMENT) {
        upsert_statement(backend, chunk).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// `(?, ?, ...), (...)` for `rows` rows of [`COLUMN_COUNT`] columns, in one string (no
/// string per cell: this runs for every batch).
fn placeholders(backend: Backend, rows: usize) -> String {
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

/// One multi-row upsert of `rows` (at most [`ROWS_PER_STATEMENT`]).
/// SQLite gets positional `?` placeholders: it binds `$N` by looking each
/// name up, which costs more than the rest of the statement's binding.
fn upsert_statement(
    backend: Backend,
    rows: &[UsageRecord],
) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    let sql = format!(
        "INSERT INTO usage_records ({COLUMNS}) VALUES {} ON CONFLICT (id) DO UPDATE SET \
         finished_at = excluded.finished_at, outcome = excluded.outcome, exit_code = excluded.exit_code, \
         fuel_consumed = excluded.fuel_consumed, duration_us = excluded.duration_us, \
         memory_peak_bytes = excluded.memory_peak_bytes, stdin_bytes = excluded.stdin_bytes, \
         stdout_bytes = excluded.stdout_bytes, stderr_bytes = excluded.stderr_bytes \
         WHERE usage_records.outcome = '{RUNNING}' AND excluded.outcome <> '{RUNNING}'",
        placeholders(backend, rows.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for row in rows {
        let end = row.end.as_ref();
        query = query
            .bind(row.id.clone())
            .bind(row.user_id.clone())
            .bind(row.key_id.clone())
            .bind(row.module_sha256.clone())
            .bind(row.day.clone())
            .bind(row.started_at)
            .bind(end.map(|e| e.finished_at))
            .bind(end.map_or(RUNNING, |e| e.outcome))
            .bind(end.map(|e| i64::from(e.exit_code)))
            .bind(end.map_or(0, |e| e.fuel_consumed as i64))
            .bind(end.map_or(0, |e| e.duration_us as i64))
            .bind(end.map_or(0, |e| e.memory_peak_bytes as i64))
            .bind(end.map_or(0, |e| e.stdin_bytes as i64))
            .bind(end.map_or(0, |e| e.stdout_bytes as i64))
            .bind(end.map_or(0, |e| e.stderr_bytes as i64))
            .bind(row.cached_from.clone())
            .bind(row.job.as_ref().map(|job| job.job_id.clone()))
            .bind(row.job.as_ref().map_or(1, |job| i64::from(job.charged)));
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
