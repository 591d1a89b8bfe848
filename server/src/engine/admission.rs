//! Admission control: a global limit on running executions and a global
//! memory budget (the sum of admitted executions' memory limits), with a
//! bounded queue and a bounded wait. Past either bound the caller gets
//! [`Busy`] (UNAVAILABLE with a retry hint) instead of an unbounded backlog.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The server is saturated; try again shortly.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("the server is busy: {reason}")]
pub struct Busy {
    pub reason: String,
}

const MIB: u64 = 1024 * 1024;

/// Shared admission state.
pub struct Admission {
    running: Arc<Semaphore>,
    memory: Arc<Semaphore>,
    memory_total_mib: u32,
    queued: AtomicUsize,
    max_queue: usize,
    max_wait: Duration,
}

/// Held for the whole execution; dropping it releases the slot and memory.
pub struct Permit {
    _running: OwnedSemaphorePermit,
    _memory: OwnedSemaphorePermit,
}

impl Admission {
    pub fn new(
        max_running: usize,
        memory_budget_bytes: u64,
        max_queue: usize,
        max_wait: Duration,
    ) -> Self {
        let memory_total_mib =
            u32::try_from((memory_budget_bytes / MIB).max(1)).unwrap_or(u32::MAX);
        Self {
            running: Arc::new(Semaphore::new(max_running.max(1))),
            memory: Arc::new(Semaphore::new(memory_total_mib as usize)),
            memory_total_mib,
            queued: AtomicUsize::new(0),
            max_queue,
            max_wait,
        }
    }

    /// Executions waiting for admission right now.
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Waits (boundedly) for a slot and `memory_bytes` of the budget.
    pub async fn admit(&self, memory_bytes: u64) -> Result<Permit, Busy> {
        let mib = u32::try_from(memory_bytes.div_ceil(MIB).max(1))
            .unwrap_or(u32::MAX)
            .min(self.memory_total_mib);
        if let (Ok(running), Ok(memory)) = (
            self.running.clone().try_acquire_owned(),
            self.memory.clone().try_acquire_many_owned(mib),
        ) {
            return Ok(Permit {
                _running: running,
                _memory: memory,
            });
        }
        if self.queued.fetch_add(1, Ordering::SeqCst) >= self.max_queue {
            self.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(Busy {
                reason: format!("{} executions are already queued", self.max_queue),
            });
        }
        let waited = tokio::time::timeout(self.max_wait, async {
            let running = self.running.clone().acquire_owned().await;
            let memory = self.memory.clone().acquire_many_owned(mib).await;
            (running, memory)
        })
        .await;
        self.queued.fetch_sub(1, Ordering::SeqCst);
        match waited {
            Ok((Ok(running), Ok(memory))) => Ok(Permit {
                _running: running,
                _memory: memory,
            }),
            Ok(_) => Err(Busy {
                reason: "the server is shutting down".into(),
            }),
            Err(_) => Err(Busy {
                reason: format!("no execution slot freed up within {:?}", self.max_wait),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn full_queue_is_refused_and_slots_are_released() {
        let admission = Admission::new(1, 64 * MIB, 1, Duration::from_secs(30));
        let first = admission.admit(MIB).await.unwrap();
        let admission = Arc::new(admission);
        let waiter = {
            let admission = admission.clone();
            tokio::spawn(async move { admission.admit(MIB).await.map(|_| ()) })
        };
        while admission.queue_depth() == 0 {
            tokio::task::yield_now().await;
        }
        let refused = admission.admit(MIB).await.err().expect("queue is full");
        assert!(refused.reason.contains("queued"), "{refused}");
        drop(first);
        waiter
            .await
            .unwrap()
            .expect("the queued execution is admitted");
    }

    #[tokio::test]
    async fn memory_budget_bounds_admission() {
        let admission = Admission::new(8, 100 * MIB, 0, Duration::from_millis(10));
        let big = admission.admit(80 * MIB).await.unwrap();
        assert!(admission.admit(40 * MIB).await.is_err());
        drop(big);
        admission.admit(40 * MIB).await.unwrap();
    }
}
