//! Admission control: a global limit on running executions and a global
//! memory budget (the sum of admitted executions' memory charges), each with
//! a per-tenant share, a bounded queue and a bounded wait. Past either bound
//! the caller gets [`Busy`] (UNAVAILABLE with a retry hint) instead of an
//! unbounded backlog.
//!
//! # Fair share without head-of-line blocking
//! One tenant (user id) may hold at most `tenant_memory_share_percent` of
//! the memory budget and `tenant_running_share_percent` of the running
//! slots. Waiters are not served in order: every release wakes them all and
//! each admits itself if it fits now. A FIFO semaphore would let one
//! tenant's big waiting request block every request queued behind it; here a
//! request that does not fit (past its tenant's share, or too big for what
//! is free) never keeps a request that fits from passing. The price is that
//! a big request can be overtaken by smaller ones; the bounded wait bounds
//! how long.
//!
//! Admission happens before a run starts and never changes its result: the
//! guest's memory limit is the request's own, whatever the load.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// The server is saturated; try again shortly.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("the server is busy: {reason}")]
pub struct Busy {
    pub reason: String,
    /// Which bound refused, for `/metrics`: `queue_full`, `tenant_share`
    /// or `server_busy`.
    pub kind: &'static str,
}

const MIB: u64 = 1024 * 1024;

/// What admission allows at once.
#[derive(Debug, Clone)]
pub struct AdmissionLimits {
    /// Executions running at once, server-wide.
    pub max_running: usize,
    /// Sum of running executions' memory charges, server-wide.
    pub memory_budget_bytes: u64,
    /// Executions that may wait for admission, server-wide.
    pub max_queue: usize,
    /// How long one may wait.
    pub max_wait: Duration,
    /// Percent of the memory budget one tenant may hold (1–100).
    pub tenant_memory_share_percent: u32,
    /// Percent of the running slots one tenant may hold (1–100).
    pub tenant_running_share_percent: u32,
}

/// What is admitted now, in total and per tenant.
#[derive(Default)]
struct Ledger {
    running: usize,
    memory_mib: u64,
    held_by: HashMap<String, Held>,
}

/// One tenant's running executions and their memory.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub running: usize,
    pub memory_mib: u64,
}

/// Why a request could not be admitted right now.
enum Blocked {
    /// The tenant's own share is in use.
    OwnShare(Held),
    /// The server's slots or memory are in use.
    Server,
}

struct Shared {
    ledger: Mutex<Ledger>,
    /// Signalled whenever something is released.
    freed: Notify,
    queued: AtomicUsize,
    max_running: usize,
    memory_total_mib: u64,
    max_queue: usize,
    max_wait: Duration,
    tenant_running: usize,
    tenant_memory_mib: u64,
}

/// Shared admission state.
pub struct Admission(Arc<Shared>);

/// Held for the whole execution; dropping it releases the slot and memory.
pub struct Permit {
    shared: Arc<Shared>,
    /// None for a trusted run, which has no share to give back.
    tenant: Option<String>,
    memory_mib: u64,
    /// The running slot is given back while the guest waits for input
    /// (its memory stays charged).
    parked: bool,
}

impl Permit {
    /// Gives back the running slot (not the memory) while an interactive
    /// guest waits for input, so idle sessions do not fill the server.
    pub fn park(&mut self) {
        if self.parked {
            return;
        }
        self.parked = true;
        {
            let mut ledger = self.shared.ledger.lock();
            ledger.running -= 1;
            if let Some(tenant) = &self.tenant {
                if let Some(held) = ledger.held_by.get_mut(tenant) {
                    held.running -= 1;
                }
            }
        }
        self.shared.freed.notify_waiters();
    }

    /// Takes a running slot again (waiting while the server or the
    /// tenant's share is full) before a parked guest runs on.
    pub async fn unpark(&mut self) {
        while self.parked {
            let freed = self.shared.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            {
                let mut ledger = self.shared.ledger.lock();
                let own = self
                    .tenant
                    .as_ref()
                    .map_or(0, |t| ledger.held_by.get(t).map_or(0, |h| h.running));
                let tenant_full = self.tenant.is_some() && own >= self.shared.tenant_running;
                if ledger.running < self.shared.max_running && !tenant_full {
                    ledger.running += 1;
                    if let Some(tenant) = &self.tenant {
                        ledger.held_by.entry(tenant.clone()).or_default().running += 1;
                    }
                    self.parked = false;
                    return;
                }
            }
            freed.await;
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let running = usize::from(!self.parked);
        {
            let mut ledger = self.shared.ledger.lock();
            ledger.running -= running;
            ledger.memory_mib -= self.memory_mib;
            if let Some(tenant) = &self.tenant {
                if let Some(held) = ledger.held_by.get_mut(tenant) {
                    held.running -= running;
                    held.memory_mib -= self.memory_mib;
                    if held.running == 0 && held.memory_mib == 0 {
                        ledger.held_by.remove(tenant);
                    }
                }
            }
        }
        self.shared.freed.notify_waiters();
    }
}

/// A place in the queue, given back however the wait ends (also when the
/// caller goes away mid-wait).
struct Queued<'a>(&'a Shared);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::SeqCst);
    }
}

fn share_of<T: Into<u64>>(total: T, percent: u32) -> u64 {
    (total.into() * u64::from(percent.clamp(1, 100)) / 100).max(1)
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Self {
        let max_running = limits.max_running.max(1);
        let memory_total_mib = (limits.memory_budget_bytes / MIB).max(1);
        Self(Arc::new(Shared {
            ledger: Mutex::new(Ledger::default()),
            freed: Notify::new(),
            queued: AtomicUsize::new(0),
            max_running,
            memory_total_mib,
            max_queue: limits.max_queue,
            max_wait: limits.max_wait,
            tenant_running: share_of(max_running as u64, limits.tenant_running_share_percent)
                as usize,
            tenant_memory_mib: share_of(memory_total_mib, limits.tenant_memory_share_percent),
        }))
    }

    /// Executions waiting for admission right now.
    pub fn queue_depth(&self) -> usize {
        self.0.queued.load(Ordering::Relaxed)
    }

    /// Memory charged to running executions now.
    pub fn memory_admitted_bytes(&self) -> u64 {
        self.0.ledger.lock().memory_mib * MIB
    }

    /// Memory all running executions may be charged together.
    pub fn memory_budget_bytes(&self) -> u64 {
        self.0.memory_total_mib * MIB
    }

    /// What `tenant` holds right now.
    pub fn held_by(&self, tenant: &str) -> Held {
        let ledger = self.0.ledger.lock();
        ledger.held_by.get(tenant).copied().unwrap_or_default()
    }

    /// The MiB charged for `memory_bytes`: at least 1, and at most one
    /// tenant's share (so any request can be admitted on an idle server).
    fn charge_mib(&self, memory_bytes: u64) -> u64 {
        memory_bytes
            .div_ceil(MIB)
            .clamp(1, self.0.tenant_memory_mib)
    }

    fn try_admit(&self, tenant: Option<&str>, memory_mib: u64) -> Result<Permit, Blocked> {
        let shared = &self.0;
        let mut ledger = shared.ledger.lock();
        if let Some(tenant) = tenant {
            let held = ledger.held_by.get(tenant).copied().unwrap_or_default();
            if held.running >= shared.tenant_running
                || held.memory_mib + memory_mib > shared.tenant_memory_mib
            {
                return Err(Blocked::OwnShare(held));
            }
        }
        if ledger.running >= shared.max_running
            || ledger.memory_mib + memory_mib > shared.memory_total_mib
        {
            return Err(Blocked::Server);
        }
        ledger.running += 1;
        ledger.memory_mib += memory_mib;
        if let Some(tenant) = tenant {
            let entry = ledger.held_by.entry(tenant.to_string()).or_default();
            entry.running += 1;
            entry.memory_mib += memory_mib;
        }
        Ok(Permit {
            shared: shared.clone(),
            tenant: tenant.map(str::to_string),
            memory_mib,
            parked: false,
        })
    }

    /// A place in the queue. The queue is bounded server-wide; how much of
    /// it one user can take is bounded by its tier's `max_concurrent`.
    fn enqueue(&self) -> Result<Queued<'_>, Busy> {
        let shared = &self.0;
        if shared.queued.fetch_add(1, Ordering::SeqCst) >= shared.max_queue {
            shared.queued.fetch_sub(1, Ordering::SeqCst);
            return Err(Busy {
                reason: format!("{} executions are already queued", shared.max_queue),
                kind: "queue_full",
            });
        }
        Ok(Queued(shared))
    }

    fn refusal(&self, blocked: Blocked) -> Busy {
        let shared = &self.0;
        let kind = match blocked {
            Blocked::OwnShare(_) => "tenant_share",
            Blocked::Server => "server_busy",
        };
        let reason = match blocked {
            Blocked::OwnShare(held) => format!(
                "your account's share of this server is in use ({} of {} running executions, \
                 {} of {} MiB of memory) and did not free up within {:?}; it frees up as your \
                 running executions end",
                held.running,
                shared.tenant_running,
                held.memory_mib,
                shared.tenant_memory_mib,
                shared.max_wait
            ),
            Blocked::Server => {
                format!("no execution slot freed up within {:?}", shared.max_wait)
            }
        };
        Busy { reason, kind }
    }

    /// Admits `tenant`'s execution charged `memory_bytes`, waiting
    /// (boundedly) while its share or the server is full.
    pub async fn admit(&self, tenant: &str, memory_bytes: u64) -> Result<Permit, Busy> {
        self.admit_as(Some(tenant), memory_bytes).await
    }

    /// Admits a trusted execution (the operator's unmetered tiers): bounded
    /// by the server's slots and budget, not by a tenant's share.
    pub async fn admit_trusted(&self, memory_bytes: u64) -> Result<Permit, Busy> {
        self.admit_as(None, memory_bytes).await
    }

    async fn admit_as(&self, tenant: Option<&str>, memory_bytes: u64) -> Result<Permit, Busy> {
        let memory_mib = self.charge_mib(memory_bytes);
        if let Ok(permit) = self.try_admit(tenant, memory_mib) {
            return Ok(permit);
        }
        let _queued = self.enqueue()?;
        let deadline = tokio::time::Instant::now() + self.0.max_wait;
        loop {
            // Registered before the check, so a release in between wakes us.
            let freed = self.0.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let blocked = match self.try_admit(tenant, memory_mib) {
                Ok(permit) => return Ok(permit),
                Err(blocked) => blocked,
            };
            if tokio::time::timeout_at(deadline, freed).await.is_err() {
                return Err(self.refusal(blocked));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    const GIB: u64 = 1024 * MIB;

    fn admission(max_running: usize, budget: u64, max_wait: Duration) -> Arc<Admission> {
        Arc::new(Admission::new(AdmissionLimits {
            max_running,
            memory_budget_bytes: budget,
            max_queue: 256,
            max_wait,
            tenant_memory_share_percent: 25,
            tenant_running_share_percent: 25,
        }))
    }

    /// Starts `admit` in the background and waits until it is queued.
    async fn queued_admit(
        admission: &Arc<Admission>,
        tenant: &'static str,
        bytes: u64,
    ) -> tokio::task::JoinHandle<Result<Permit, Busy>> {
        let before = admission.queue_depth();
        let waiter = {
            let admission = admission.clone();
            tokio::spawn(async move { admission.admit(tenant, bytes).await })
        };
        while admission.queue_depth() == before {
            tokio::task::yield_now().await;
        }
        waiter
    }

    #[tokio::test]
    async fn full_queue_is_refused_and_slots_are_released() {
        let admission = Arc::new(Admission::new(AdmissionLimits {
            max_running: 1,
            memory_budget_bytes: 64 * MIB,
            max_queue: 1,
            max_wait: Duration::from_secs(30),
            tenant_memory_share_percent: 100,
            tenant_running_share_percent: 100,
        }));
        let first = admission.admit("a", MIB).await.unwrap();
        let waiter = queued_admit(&admission, "b", MIB).await;
        let refused = admission
            .admit("c", MIB)
            .await
            .err()
            .expect("queue is full");
        assert!(refused.reason.contains("queued"), "{refused}");
        drop(first);
        waiter
            .await
            .unwrap()
            .expect("the queued execution is admitted");
    }

    #[tokio::test]
    async fn memory_budget_bounds_admission() {
        let admission = Admission::new(AdmissionLimits {
            max_running: 8,
            memory_budget_bytes: 100 * MIB,
            max_queue: 0,
            max_wait: Duration::from_millis(10),
            tenant_memory_share_percent: 100,
            tenant_running_share_percent: 100,
        });
        let big = admission.admit("a", 80 * MIB).await.unwrap();
        assert!(admission.admit("b", 40 * MIB).await.is_err());
        drop(big);
        admission.admit("b", 40 * MIB).await.unwrap();
    }

    #[tokio::test]
    async fn a_tenant_at_its_share_does_not_delay_another_tenants_run() {
        let admission = admission(64, 8 * GIB, Duration::from_secs(600));
        let mut held = Vec::new();
        let mut waiting = Vec::new();
        for _ in 0..8 {
            match admission.admit("a", GIB).now_or_never() {
                Some(permit) => held.push(permit.unwrap()),
                None => waiting.push(queued_admit(&admission, "a", GIB).await),
            }
        }
        assert_eq!(held.len(), 2, "a 25 % share of 8 GiB holds two 1 GiB runs");
        assert_eq!(admission.queue_depth(), 6);
        let other = admission
            .admit("b", MIB)
            .now_or_never()
            .expect("admitted without waiting")
            .expect("admitted");
        assert_eq!(admission.held_by("b").running, 1);
        drop(other);
        for waiter in waiting {
            waiter.abort();
        }
    }

    #[tokio::test]
    async fn a_tenants_excess_waits_then_is_refused_naming_its_share() {
        let admission = admission(64, 8 * GIB, Duration::from_millis(50));
        let _one = admission.admit("a", GIB).await.unwrap();
        let _two = admission.admit("a", GIB).await.unwrap();
        let refused = admission
            .admit("a", GIB)
            .await
            .err()
            .expect("past its share");
        assert!(refused.reason.contains("your account's share"), "{refused}");
        assert_eq!(admission.queue_depth(), 0, "the wait left the queue");
    }

    #[tokio::test]
    async fn running_slots_are_shared_too() {
        let admission = admission(8, 8 * GIB, Duration::from_millis(50));
        let _held: Vec<_> = (0..2)
            .map(|_| admission.admit("a", MIB).now_or_never().unwrap().unwrap())
            .collect();
        assert!(
            admission.admit("a", MIB).await.is_err(),
            "2 of 8 slots each"
        );
        admission.admit("b", MIB).now_or_never().unwrap().unwrap();
    }

    #[tokio::test]
    async fn trusted_runs_are_bounded_by_the_server_not_by_a_share() {
        let admission = admission(8, 8 * GIB, Duration::from_millis(50));
        let held: Vec<_> = (0..8)
            .map(|_| {
                admission
                    .admit_trusted(GIB)
                    .now_or_never()
                    .unwrap()
                    .unwrap()
            })
            .collect();
        assert!(
            admission.admit_trusted(MIB).await.is_err(),
            "all 8 slots are taken"
        );
        assert_eq!(admission.held_by("a"), Held::default());
        drop(held);
        admission.admit("a", MIB).now_or_never().unwrap().unwrap();
    }

    #[tokio::test]
    async fn slot_and_memory_come_back_when_an_execution_ends() {
        let admission = admission(64, 8 * GIB, Duration::from_secs(600));
        let first = admission.admit("a", GIB).await.unwrap();
        let _second = admission.admit("a", GIB).await.unwrap();
        let waiter = queued_admit(&admission, "a", GIB).await;
        drop(first);
        let third = waiter
            .await
            .unwrap()
            .expect("admitted once the first ended");
        assert_eq!(
            admission.held_by("a"),
            Held {
                running: 2,
                memory_mib: 2048
            }
        );
        drop(third);
        assert_eq!(admission.held_by("a").memory_mib, 1024);
    }

    #[tokio::test]
    async fn a_big_waiting_request_does_not_block_a_smaller_one_behind_it() {
        let admission = Arc::new(Admission::new(AdmissionLimits {
            max_running: 8,
            memory_budget_bytes: 100 * MIB,
            max_queue: 8,
            max_wait: Duration::from_secs(600),
            tenant_memory_share_percent: 100,
            tenant_running_share_percent: 100,
        }));
        let _held = admission.admit("a", 60 * MIB).await.unwrap();
        let big = queued_admit(&admission, "b", 50 * MIB).await;
        admission
            .admit("c", 30 * MIB)
            .now_or_never()
            .expect("passes the waiting big request")
            .unwrap();
        big.abort();
    }

    #[tokio::test]
    async fn a_caller_that_goes_away_gives_its_queue_place_back() {
        let admission = admission(64, 8 * GIB, Duration::from_secs(600));
        let _one = admission.admit("a", GIB).await.unwrap();
        let _two = admission.admit("a", GIB).await.unwrap();
        let waiter = queued_admit(&admission, "a", GIB).await;
        waiter.abort();
        let _ = waiter.await;
        assert_eq!(admission.queue_depth(), 0);
    }

    #[test]
    fn a_request_is_charged_at_most_one_share() {
        let admission = Admission::new(AdmissionLimits {
            max_running: 8,
            memory_budget_bytes: 1024 * MIB,
            max_queue: 8,
            max_wait: Duration::from_secs(1),
            tenant_memory_share_percent: 25,
            tenant_running_share_percent: 25,
        });
        assert_eq!(admission.charge_mib(GIB), 256);
        assert_eq!(admission.charge_mib(1), 1);
    }
}
