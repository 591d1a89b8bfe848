//! Group commit for usage records: every execution writes two rows' worth
//! (insert at admission, finalize at the end), and each must be durable
//! before the caller goes on. One writer task applies everything queued
//! since its last commit in one transaction and acknowledges each write
//! after that commit, so thousands of executions per second cost a few
//! commits, not thousands.

use tokio::sync::{mpsc, oneshot};

use super::{
    usage::{UsageFinish, UsageStart},
    Store,
};
use crate::engine::Report;

/// One queued write.
pub enum UsageWrite {
    Begin {
        id: String,
        user_id: String,
        key_id: String,
        module_sha256: String,
        started_at: i64,
        day: String,
    },
    Finish {
        id: String,
        finished_at: i64,
        report: Box<Report>,
    },
}

type Ack = oneshot::Sender<Result<(), String>>;

/// Handle to the writer task (cheap to clone).
#[derive(Clone)]
pub struct UsageWriter {
    queue: mpsc::Sender<(UsageWrite, Ack)>,
}

/// Writes applied in one transaction at most.
const MAX_BATCH: usize = 512;

impl UsageWriter {
    /// Starts the writer task; it ends when every handle is dropped.
    pub fn spawn(store: Store) -> Self {
        let (queue, mut rx) = mpsc::channel::<(UsageWrite, Ack)>(4096);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(MAX_BATCH);
            while let Some(first) = rx.recv().await {
                batch.push(first);
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let (writes, acks): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
                let result = store.apply_usage(&writes).await.map_err(|e| e.to_string());
                if let Err(error) = &result {
                    tracing::error!(%error, writes = writes.len(), "writing usage records failed");
                }
                for ack in acks {
                    let _ = ack.send(result.clone());
                }
            }
        });
        Self { queue }
    }

    /// Queues `write` (in order with every other write) and returns a
    /// handle that resolves once it is committed.
    pub async fn enqueue(&self, write: UsageWrite) -> anyhow::Result<Committed> {
        let (ack, done) = oneshot::channel();
        self.queue
            .send((write, ack))
            .await
            .map_err(|_| anyhow::anyhow!("the usage writer has stopped"))?;
        Ok(Committed(done))
    }

    /// Queues `write` and waits until it is committed.
    pub async fn write(&self, write: UsageWrite) -> anyhow::Result<()> {
        self.enqueue(write).await?.wait().await
    }
}

/// A queued write's commit.
pub struct Committed(oneshot::Receiver<Result<(), String>>);

impl Committed {
    /// Waits for the commit (or its failure).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.0
            .await
            .map_err(|_| anyhow::anyhow!("the usage writer has stopped"))?
            .map_err(|e| anyhow::anyhow!("writing usage records: {e}"))
    }
}

impl Store {
    /// Applies queued usage writes, in order, in one transaction.
    pub async fn apply_usage(&self, writes: &[UsageWrite]) -> sqlx::Result<()> {
        let mut tx = self.pool().begin().await?;
        for write in writes {
            match write {
                UsageWrite::Begin {
                    id,
                    user_id,
                    key_id,
                    module_sha256,
                    started_at,
                    day,
                } => {
                    Self::usage_begin_in(
                        &mut tx,
                        UsageStart {
                            id,
                            user_id,
                            key_id,
                            module_sha256,
                            started_at: *started_at,
                            day,
                        },
                    )
                    .await?
                }
                UsageWrite::Finish {
                    id,
                    finished_at,
                    report,
                } => {
                    Self::usage_finish_in(
                        &mut tx,
                        UsageFinish {
                            id,
                            finished_at: *finished_at,
                            report,
                        },
                    )
                    .await?
                }
            }
        }
        tx.commit().await
    }
}
