//! The guest's WASI world, deny-by-default: no host directories, no
//! sockets, no host clock or entropy. A request's in-memory filesystem (see
//! `vfs`) is the only preopen: fd 3, named `/`. Time is virtual and deterministic; the
//! RNG is seeded by the request. Every preview1 import still links, so real
//! programs instantiate and get error codes instead of crashes.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

use cap_rand::SeedableRng;
use cap_std::time::{Duration, Instant, SystemTime};
use wasmi_wasi::wasi_common::{
    clocks::{WasiClocks, WasiMonotonicClock, WasiSystemClock},
    sched::{Poll, RwEventFlags, Subscription, WasiSched},
    table::Table,
    Error, WasiCtx, WasiFile,
};

/// Virtual wall-clock epoch seen by every guest: 2024-01-01T00:00:00Z.
pub const VIRTUAL_EPOCH_UNIX_SECS: u64 = 1_704_067_200;
/// Each clock read advances virtual time by this much, so busy-waiting on the
/// clock terminates and time is strictly monotonic without a host clock.
pub const CLOCK_STEP_NANOS: u64 = 1_000;

/// Nanoseconds of virtual time elapsed since the guest started.
#[derive(Clone, Debug, Default)]
pub struct VirtualTime(Arc<AtomicU64>);

impl VirtualTime {
    /// The current virtual time, without advancing it (file timestamps).
    pub fn now_nanos(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
    fn tick(&self) -> u64 {
        self.0.fetch_add(CLOCK_STEP_NANOS, Ordering::Relaxed) + CLOCK_STEP_NANOS
    }
    /// Moves the clock on by `nanos` (tests of timestamps).
    #[cfg(test)]
    pub fn advance_for_test(&self, nanos: u64) {
        self.0.fetch_add(nanos, Ordering::Relaxed);
    }
    fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.0.fetch_add(nanos, Ordering::Relaxed);
    }
}

struct VirtualSystemClock(VirtualTime);

impl WasiSystemClock for VirtualSystemClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(CLOCK_STEP_NANOS)
    }
    fn now(&self, _precision: Duration) -> SystemTime {
        let since_epoch =
            Duration::from_secs(VIRTUAL_EPOCH_UNIX_SECS) + Duration::from_nanos(self.0.tick());
        SystemTime::from_std(std::time::UNIX_EPOCH + since_epoch)
    }
}

struct VirtualMonotonicClock {
    time: VirtualTime,
    base: std::time::Instant,
}

impl WasiMonotonicClock for VirtualMonotonicClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(CLOCK_STEP_NANOS)
    }
    fn now(&self, _precision: Duration) -> Instant {
        Instant::from_std(self.base + Duration::from_nanos(self.time.tick()))
    }
}

/// Sleeping and `poll_oneoff` advance virtual time instead of blocking;
/// stdin/stdout subscriptions are always ready (reads then wait for data in
/// the driver, outside the interpreter).
struct VirtualSched(VirtualTime);

#[wiggle::async_trait]
impl WasiSched for VirtualSched {
    async fn poll_oneoff<'a>(&self, poll: &mut Poll<'a>) -> Result<(), Error> {
        let mut any_io = false;
        for sub in poll.rw_subscriptions() {
            any_io = true;
            match sub {
                Subscription::Read(r) => {
                    let ready = r.file.num_ready_bytes().unwrap_or(0).max(1);
                    r.complete(ready, RwEventFlags::empty());
                }
                Subscription::Write(w) => w.complete(0, RwEventFlags::empty()),
                Subscription::MonotonicClock(_) => {}
            }
        }
        if !any_io {
            if let Some(wait) = poll
                .earliest_clock_deadline()
                .and_then(|t| t.duration_until())
            {
                self.0.advance(wait);
            }
        }
        Ok(())
    }
    async fn sched_yield(&self) -> Result<(), Error> {
        Ok(())
    }
    async fn sleep(&self, duration: Duration) -> Result<(), Error> {
        self.0.advance(duration);
        Ok(())
    }
}

/// Everything a guest may see of the world.
pub struct WasiSetup {
    pub program_name: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub random_seed: u64,
    pub stdin: Box<dyn WasiFile>,
    pub stdout: Box<dyn WasiFile>,
    pub stderr: Box<dyn WasiFile>,
    /// The in-memory filesystem, preopened as `/` (fd 3).
    pub fs: Option<super::vfs::Fs>,
}

/// Builds the guest's WASI context from exactly what the request gives.
pub fn build_ctx(setup: WasiSetup) -> Result<WasiCtx, wasmi_wasi::wasi_common::StringArrayError> {
    let time = VirtualTime::default();
    let clocks = WasiClocks::new()
        .with_system(VirtualSystemClock(time.clone()))
        .with_monotonic(VirtualMonotonicClock {
            time: time.clone(),
            base: std::time::Instant::now(),
        });
    let rng = cap_rand::rngs::StdRng::seed_from_u64(setup.random_seed);
    if let Some(fs) = &setup.fs {
        fs.lock().set_clock(time.clone());
    }
    let mut ctx = WasiCtx::new(
        Box::new(rng),
        clocks,
        Box::new(VirtualSched(time)),
        Table::new(),
    );
    ctx.push_arg(&setup.program_name)?;
    for arg in &setup.args {
        ctx.push_arg(arg)?;
    }
    for (key, value) in &setup.env {
        ctx.push_env(key, value)?;
    }
    ctx.set_stdin(setup.stdin);
    ctx.set_stdout(setup.stdout);
    ctx.set_stderr(setup.stderr);
    if let Some(fs) = setup.fs {
        // The table is empty above stdio, so this is fd 3.
        ctx.push_preopened_dir(Box::new(fs.root()), "/")
            .expect("a fresh table has room for the preopen");
    }
    Ok(ctx)
}
