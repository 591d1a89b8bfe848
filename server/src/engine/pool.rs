//! A fixed pool of blocking worker threads for guest fuel slices.
//!
//! Slices of all running executions queue here in FIFO order, so many
//! admitted executions share a few cores round-robin, and guest code never
//! runs on the async runtime's threads after its first, short slice.

use std::{sync::mpsc, thread};

use tokio::sync::oneshot;

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Worker threads that run closures and hand results back to async code.
pub struct WorkerPool {
    jobs: mpsc::Sender<Job>,
}

/// Interpreter frames live on wasmi's own stack, but host calls and lazy
/// translation still recurse on the thread's stack: give them room.
const WORKER_STACK_BYTES: usize = 8 * 1024 * 1024;

/// Nice value of the worker threads. Guests that keep every worker busy
/// must not delay the async runtime's threads (health checks, other
/// tenants' I/O and first slices): under contention the kernel runs those
/// first. Guests lose no fuel or result, only CPU share when cores are busy.
pub const WORKER_NICE: i32 = 10;

/// Lowers the calling thread's scheduling priority to [`WORKER_NICE`].
fn lower_own_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority on the calling thread's own id has no memory effects.
    unsafe {
        let tid = libc::gettid() as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, WORKER_NICE) != 0 {
            tracing::warn!("could not lower the worker thread's priority");
        }
    }
}

impl WorkerPool {
    /// Starts `threads` workers (at least one).
    pub fn new(threads: usize) -> Self {
        let (jobs, receiver) = mpsc::channel::<Job>();
        let receiver = std::sync::Arc::new(parking_lot::Mutex::new(receiver));
        for i in 0..threads.max(1) {
            let receiver = receiver.clone();
            thread::Builder::new()
                .name(format!("wasmwiz-worker-{i}"))
                .stack_size(WORKER_STACK_BYTES)
                .spawn(move || {
                    lower_own_priority();
                    loop {
                        let job = receiver.lock().recv();
                        match job {
                            // A panicking job must not take the worker with it.
                            Ok(job) => {
                                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                            }
                            Err(_) => return,
                        }
                    }
                })
                .expect("spawning a worker thread");
        }
        Self { jobs }
    }

    /// Runs `f` on a worker without waiting for it.
    pub fn spawn(&self, f: impl FnOnce() + Send + 'static) {
        self.jobs.send(Box::new(f)).expect("worker pool is alive");
    }

    /// Runs `f` on a worker and waits for its result.
    pub async fn run<R: Send + 'static>(&self, f: impl FnOnce() -> R + Send + 'static) -> R {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.jobs.send(job).expect("worker pool is alive");
        rx.await.expect("worker finished the job")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn workers_run_at_a_lower_priority_than_the_runtime() {
        // SAFETY: getpriority reads the calling thread's nice value.
        let own = || unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
        let worker_nice = WorkerPool::new(1).run(own).await;
        assert_eq!(worker_nice, WORKER_NICE);
    }
}
