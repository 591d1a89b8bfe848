//! What a host call costs in fuel, and how it pays.
//!
//! wasmi meters guest instructions only: the work a WASI function does for
//! the guest (filling 64 MiB with random bytes, copying two million args,
//! walking a million poll subscriptions) is invisible to it. Every
//! `wasi_snapshot_preview1` import is therefore wrapped (see `host_calls`)
//! and, before doing anything, charges
//!
//! `CALL_BASE + items × per-item cost + bytes × per-byte cost`
//!
//! computed from its arguments, the guest's memory and the context (see
//! [`host_call_cost`]). The rates are calibrated so that fuel tracks time in
//! the same ratio as ordinary instructions (wasmi runs ≈ 0.4–1.2·10⁹ fuel/s
//! here; see `docs/security/engine.md` for the measurements).
//!
//! # Paying
//! A call may cost more than is left of the current fuel slice. It then
//! draws the rest from the execution's remaining budget (the *reserve*): the
//! overdraft is recorded here, added to `fuel_consumed` after the slice, and
//! the slice's fuel is set to 0 so the guest yields at its next instruction.
//! A call the whole remaining budget cannot pay ends the run out of fuel.
//! Costs depend only on the request, so `fuel_consumed` does not depend on
//! slice sizes. During the inline first slice (on an async runtime thread)
//! nothing may be overdrawn: such a call is deferred to a worker instead.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use super::outcome::Outcome;

/// Fuel every host call costs: the call itself, the memory lookup,
/// wasi-common's dispatch and argument checks (≈ 140 ns measured).
pub const CALL_BASE: u64 = 150;
/// Per item a call walks: an iovec, an arg or env string, a pointer slot.
pub const PER_ITEM: u64 = 20;
/// Per `poll_oneoff` subscription: read, decoded and tracked by wasi-common
/// (≈ 2 µs and 150 bytes each, measured with a million of them).
pub const PER_SUBSCRIPTION: u64 = 2000;
/// Fuel per KiB copied between guest memory and host memory that already
/// exists (stdin, args, env, paths): memcpy ≈ 0.11–0.23 ns/byte; one fuel
/// per 16 bytes, the same rate wasmi charges for `memory.copy`/`fill`.
pub const COPY_FUEL_PER_KIB: u64 = 64;
/// Fuel per KiB of output: copied into a fresh buffer (≈ 0.4 ns/byte with
/// the page faults), then encoded and sent off the guest's thread.
pub const OUTPUT_FUEL_PER_KIB: u64 = 384;
/// Fuel per KiB of `random_get` output (a ChaCha12 stream: ≈ 0.55 ns/byte).
pub const RANDOM_FUEL_PER_KIB: u64 = 576;
/// Subscriptions one `poll_oneoff` may pass; more get `EINVAL` before
/// wasi-common allocates anything for them.
pub const MAX_POLL_SUBSCRIPTIONS: u32 = 4096;
/// Iovecs one read or write may pass (POSIX `IOV_MAX`); more get `EINVAL`
/// before wasi-common allocates per iovec.
pub const MAX_IOVECS: u32 = 1024;
/// Host work that can be large (`random_get`) runs in pieces of this size,
/// checking the deadline and cancellation between them.
pub const HOST_CHUNK_BYTES: usize = 1024 * 1024;

/// Fuel for copying `bytes` bytes.
pub fn copy_cost(bytes: u64) -> u64 {
    rate(bytes, COPY_FUEL_PER_KIB)
}

/// Fuel for `bytes` bytes written to stdout/stderr.
pub fn output_cost(bytes: u64) -> u64 {
    rate(bytes, OUTPUT_FUEL_PER_KIB)
}

/// Fuel for `bytes` bytes of random output.
pub fn random_cost(bytes: u64) -> u64 {
    rate(bytes, RANDOM_FUEL_PER_KIB)
}

fn rate(bytes: u64, fuel_per_kib: u64) -> u64 {
    let fuel = (u128::from(bytes) * u128::from(fuel_per_kib)).div_ceil(1024);
    u64::try_from(fuel).unwrap_or(u64::MAX)
}

/// What the cost of a call depends on besides its arguments.
pub struct CostContext<'a> {
    /// The guest's linear memory (empty if it has none).
    pub memory: &'a [u8],
    /// (count, total bytes with NULs) of the args.
    pub args: (u64, u64),
    /// (count, total bytes with NULs) of the environment.
    pub env: (u64, u64),
    /// Stdin bytes a read could take now.
    pub stdin_buffered: u64,
    /// Fuel the call can pay at most: walking guest data (iovecs) is only
    /// done once the per-item part of the cost fits in it.
    pub limit: u64,
}

/// The fuel `name(args…)` costs, before it runs. Unknown names cost the base.
pub fn host_call_cost(name: &str, args: &[i64], cx: &CostContext<'_>) -> u64 {
    let arg = |i: usize| args.get(i).copied().unwrap_or(0) as u32;
    let strings = |(count, bytes): (u64, u64)| count * PER_ITEM + copy_cost(bytes);
    let work = match name {
        // Write `count` pointers and `bytes` of strings.
        "args_get" => strings(cx.args),
        "environ_get" => strings(cx.env),
        // wasi-common sums the lengths on every call.
        "args_sizes_get" => cx.args.0 * PER_ITEM,
        "environ_sizes_get" => cx.env.0 * PER_ITEM,
        // Past the cap the call is refused (EINVAL) without touching them.
        "fd_write" | "fd_pwrite" | "sock_send" | "fd_read" | "fd_pread" | "sock_recv"
            if arg(2) > MAX_IOVECS =>
        {
            0
        }
        "fd_write" | "fd_pwrite" | "sock_send" => {
            let items = u64::from(arg(2)) * PER_ITEM;
            if CALL_BASE + items > cx.limit {
                return CALL_BASE + items;
            }
            items + output_cost(iovec_bytes(cx.memory, arg(1), arg(2)))
        }
        "fd_read" | "fd_pread" | "sock_recv" => {
            let items = u64::from(arg(2)) * PER_ITEM;
            if CALL_BASE + items > cx.limit {
                return CALL_BASE + items;
            }
            // wasi-common reads into the first non-empty iovec only.
            let mut bytes = first_iovec_len(cx.memory, arg(1), arg(2));
            if name == "fd_read" && arg(0) == 0 {
                bytes = bytes.min(cx.stdin_buffered);
            }
            items + copy_cost(bytes)
        }
        // Past the cap the call is refused (EINVAL) without touching them.
        "poll_oneoff" if arg(2) > MAX_POLL_SUBSCRIPTIONS => 0,
        "poll_oneoff" => u64::from(arg(2)) * PER_SUBSCRIPTION,
        "random_get" => random_cost(u64::from(arg(1))),
        "fd_prestat_dir_name" => copy_cost(u64::from(arg(2))),
        "fd_readdir" => copy_cost(u64::from(arg(2))),
        "path_create_directory" | "path_remove_directory" | "path_unlink_file" => {
            copy_cost(u64::from(arg(2)))
        }
        "path_filestat_get" | "path_filestat_set_times" | "path_open" => {
            copy_cost(u64::from(arg(3)))
        }
        "path_readlink" => copy_cost(u64::from(arg(2)) + u64::from(arg(4))),
        "path_link" => copy_cost(u64::from(arg(3)) + u64::from(arg(6))),
        "path_rename" => copy_cost(u64::from(arg(2)) + u64::from(arg(5))),
        "path_symlink" => copy_cost(u64::from(arg(1)) + u64::from(arg(4))),
        _ => 0,
    };
    CALL_BASE.saturating_add(work)
}

/// Total length of the iovecs at `iovs` (0 if the array is out of bounds:
/// wasi-common then fails the call with `EFAULT` before copying).
fn iovec_bytes(memory: &[u8], iovs: u32, iovs_len: u32) -> u64 {
    iovecs(memory, iovs, iovs_len).map_or(0, |it| it.map(u64::from).sum())
}

/// Length of the first non-empty iovec (0 if none or out of bounds).
fn first_iovec_len(memory: &[u8], iovs: u32, iovs_len: u32) -> u64 {
    iovecs(memory, iovs, iovs_len)
        .and_then(|mut it| it.find(|&len| len > 0))
        .map_or(0, u64::from)
}

/// The lengths of an in-bounds iovec array. Its size is bounded by the
/// guest's memory, and the caller has charged per item before walking it.
fn iovecs(memory: &[u8], iovs: u32, iovs_len: u32) -> Option<impl Iterator<Item = u32> + '_> {
    let start = usize::try_from(iovs).ok()?;
    let len = usize::try_from(iovs_len).ok()?.checked_mul(8)?;
    let array = memory.get(start..start.checked_add(len)?)?;
    Some(
        array
            .chunks_exact(8)
            .map(|iov| u32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]])),
    )
}

/// Why a call could not be paid for where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortfall {
    /// On the inline slice: run the call on a worker instead.
    Defer,
    /// The whole remaining budget cannot pay.
    OutOfFuel,
}

/// The paying side of one execution's host calls, plus the stop condition
/// long host work checks between pieces.
#[derive(Debug, Default)]
pub struct HostMeter {
    /// Budget outside the current slice that host calls may draw on.
    reserve: u64,
    /// Drawn from `reserve` during the current slice.
    overdraft: u64,
    /// The inline first slice: never overdraw, defer instead.
    inline: bool,
    deadline: Option<std::time::Instant>,
    cancelled: Arc<AtomicBool>,
}

impl HostMeter {
    /// A meter stopping host work at `deadline` or when `cancelled` is set.
    pub fn new(deadline: Option<std::time::Instant>, cancelled: Arc<AtomicBool>) -> Self {
        Self {
            deadline,
            cancelled,
            ..Self::default()
        }
    }

    /// Starts a slice: `reserve` may be overdrawn (unless `inline`).
    pub fn begin_slice(&mut self, reserve: u64, inline: bool) {
        self.reserve = reserve;
        self.overdraft = 0;
        self.inline = inline;
    }

    /// Ends a slice, returning the fuel overdrawn during it.
    pub fn end_slice(&mut self) -> u64 {
        self.reserve = 0;
        std::mem::take(&mut self.overdraft)
    }

    /// Pays `cost` from `fuel` (what is left of the slice), overdrawing the
    /// reserve if needed; returns the slice fuel left afterwards.
    pub fn pay(&mut self, fuel: u64, cost: u64) -> Result<u64, Shortfall> {
        if cost <= fuel {
            return Ok(fuel - cost);
        }
        if self.inline {
            return Err(Shortfall::Defer);
        }
        let need = cost - fuel;
        if need > self.reserve - self.overdraft {
            return Err(Shortfall::OutOfFuel);
        }
        self.overdraft += need;
        Ok(0)
    }

    /// Pays `cost` for work a call has already done (the filesystem's
    /// walks and fills): like [`HostMeter::pay`], but never deferred, since
    /// the work cannot be undone; bounded per call by the tree's limits.
    pub fn pay_after(&mut self, fuel: u64, cost: u64) -> Result<u64, Shortfall> {
        if cost <= fuel {
            return Ok(fuel - cost);
        }
        let need = cost - fuel;
        if need > self.reserve - self.overdraft {
            self.overdraft = self.reserve;
            return Err(Shortfall::OutOfFuel);
        }
        self.overdraft += need;
        Ok(0)
    }

    /// Fuel a call may draw beyond the slice (none on the inline slice).
    pub fn available(&self) -> u64 {
        if self.inline {
            0
        } else {
            self.reserve - self.overdraft
        }
    }

    /// Why long host work must stop now, if it must.
    pub fn stop(&self) -> Option<Outcome> {
        if self.cancelled.load(Ordering::Relaxed) {
            return Some(Outcome::Cancelled);
        }
        if self
            .deadline
            .is_some_and(|at| std::time::Instant::now() >= at)
        {
            return Some(Outcome::Timeout);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cx(memory: &[u8]) -> CostContext<'_> {
        CostContext {
            memory,
            args: (3, 30),
            env: (2, 2048),
            stdin_buffered: 10,
            limit: u64::MAX,
        }
    }

    fn iovec(memory: &mut [u8], at: usize, ptr: u32, len: u32) {
        memory[at..at + 4].copy_from_slice(&ptr.to_le_bytes());
        memory[at + 4..at + 8].copy_from_slice(&len.to_le_bytes());
    }

    #[test]
    fn costs_grow_per_byte_and_per_item() {
        let mem = [0u8; 64];
        let c = |name, args: &[i64]| host_call_cost(name, args, &cx(&mem));
        assert_eq!(c("sched_yield", &[]), CALL_BASE);
        assert_eq!(c("random_get", &[0, 4096]), CALL_BASE + random_cost(4096));
        assert_eq!(
            c("environ_get", &[0, 0]),
            CALL_BASE + 2 * PER_ITEM + copy_cost(2048)
        );
        assert_eq!(c("args_sizes_get", &[0, 0]), CALL_BASE + 3 * PER_ITEM);
        assert_eq!(
            c("poll_oneoff", &[0, 0, 1000, 0]),
            CALL_BASE + 1000 * PER_SUBSCRIPTION
        );
        assert_eq!(
            c("path_open", &[3, 0, 0, 4096, 0, 0, 0, 0, 0]),
            CALL_BASE + copy_cost(4096)
        );
    }

    #[test]
    fn iovec_costs_read_the_guests_iovecs_and_ignore_bad_ones() {
        let mut mem = vec![0u8; 64];
        iovec(&mut mem, 0, 32, 0);
        iovec(&mut mem, 8, 32, 2048);
        iovec(&mut mem, 16, 32, 1024);
        let c = |name, args: &[i64], mem: &[u8]| host_call_cost(name, args, &cx(mem));
        assert_eq!(
            c("fd_write", &[1, 0, 3, 60], &mem),
            CALL_BASE + 3 * PER_ITEM + output_cost(3072)
        );
        // A read fills the first non-empty iovec, and stdin has 10 bytes.
        assert_eq!(
            c("fd_read", &[0, 0, 3, 60], &mem),
            CALL_BASE + 3 * PER_ITEM + copy_cost(10)
        );
        // Out of bounds: only the items are charged (the call faults).
        assert_eq!(
            c("fd_write", &[1, 0, 1000, 60], &mem),
            CALL_BASE + 1000 * PER_ITEM
        );
        // Past the cap: refused, so only the base.
        assert_eq!(c("fd_write", &[1, 0, 1025, 60], &mem), CALL_BASE);
    }

    #[test]
    fn paying_overdraws_the_reserve_and_defers_inline() {
        let mut meter = HostMeter::default();
        meter.begin_slice(100, false);
        assert_eq!(meter.pay(50, 20), Ok(30));
        assert_eq!(meter.pay(50, 120), Ok(0));
        assert_eq!(meter.pay(0, 31), Err(Shortfall::OutOfFuel));
        assert_eq!(meter.pay(0, 30), Ok(0));
        assert_eq!(meter.end_slice(), 100);
        meter.begin_slice(1_000, true);
        assert_eq!(meter.pay(50, 51), Err(Shortfall::Defer));
        assert_eq!(meter.end_slice(), 0);
    }
}
