//! Every `wasi_snapshot_preview1` import, metered.
//!
//! wasmi_wasi's linker has no fuel hook, so each function is defined here:
//! it pays its cost (see [`super::host_fuel`]) and then calls wasi-common's
//! implementation directly. Calling wasi-common ourselves (instead of
//! `wasmi_wasi::…::wrapped`) lets a call find the guest's memory without the
//! calling instance, which is what allows a call deferred from the inline
//! slice to run later on a worker via `Func::call`.
//!
//! On top of the plain wrappers, a few functions are shims:
//! - `fd_write` pauses the guest to flush output and ends it at the output limit;
//! - `fd_read(0)` pauses the guest when streamed stdin has no data yet;
//! - `random_get` fills in [`HOST_CHUNK_BYTES`] pieces, stopping at the
//!   deadline or on cancellation;
//! - `poll_oneoff` refuses more than [`MAX_POLL_SUBSCRIPTIONS`] with `EINVAL`;
//! - reads and writes refuse more than [`MAX_IOVECS`] iovecs with `EINVAL`.

use std::{
    future::Future,
    pin::pin,
    task::{Context, Poll, Waker},
};

use wasi_common::snapshots::preview_1::wasi_snapshot_preview1;
use wasmi::{Caller, Extern, Linker, Memory, Val};
use wasmi_wasi::{wasi_common, WasmiGuestMemory as GuestMemory};

use super::{
    compile::WASI_MODULE,
    host_fuel::{
        host_call_cost, CostContext, Shortfall, HOST_CHUNK_BYTES, MAX_IOVECS,
        MAX_POLL_SUBSCRIPTIONS,
    },
    run::{HostState, Interrupt},
};

/// WASI errno values the shims return themselves.
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: i32 = 28;

/// Polls a wasi-common future that never waits (our files, clocks and
/// scheduler are all non-blocking) to completion.
fn run_ready<F: Future>(future: F) -> Result<F::Output, wasmi::Error> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => Ok(value),
        Poll::Pending => Err(wasmi::Error::new("a WASI call tried to wait")),
    }
}

/// wasi-common's error as wasmi's: `proc_exit` stays an exit.
fn wasi_error(error: wiggle::anyhow::Error) -> wasmi::Error {
    match error.downcast::<wasi_common::I32Exit>() {
        Ok(wasi_common::I32Exit(status)) => wasmi::Error::i32_exit(status),
        Err(error) => wasmi::Error::new(error.to_string()),
    }
}

/// The guest's exported memory: from the calling instance, or (for a call
/// made from the host, such as a deferred one) the one recorded at start.
fn guest_memory(caller: &Caller<'_, HostState>) -> Option<Memory> {
    caller
        .get_export("memory")
        .and_then(Extern::into_memory)
        .or(caller.data().memory)
}

/// Pays for `name(args…)`, or says why it cannot run here.
fn charge(
    caller: &mut Caller<'_, HostState>,
    name: &'static str,
    args: &[i64],
    vals: impl FnOnce() -> Vec<Val>,
) -> Result<(), wasmi::Error> {
    let fuel = caller.get_fuel()?;
    let cost = {
        let memory = guest_memory(caller);
        let (memory, state): (&[u8], &HostState) = match memory {
            Some(memory) => {
                let (memory, state) = memory.data_and_store_mut(&mut *caller);
                (memory, state)
            }
            None => (&[], caller.data()),
        };
        let cx = CostContext {
            memory,
            args: state.args_sizes,
            env: state.env_sizes,
            // Only a read's price depends on it (and it takes a lock).
            stdin_buffered: if name == "fd_read" {
                state.stdin.buffered()
            } else {
                0
            },
            limit: fuel.saturating_add(state.meter.available()),
        };
        host_call_cost(name, args, &cx)
    };
    let paid = caller.data_mut().meter.pay(fuel, cost);
    match paid {
        Ok(left) => {
            caller.set_fuel(left)?;
            if let Some(trace) = &caller.data().trace {
                trace.record(name);
            }
            Ok(())
        }
        Err(Shortfall::Defer) => Err(wasmi::Error::host(Interrupt::Defer(vals()))),
        Err(Shortfall::OutOfFuel) => Err(wasmi::Error::host(Interrupt::OutOfFuel)),
    }
}

/// Pays for the filesystem work the call just did (components walked,
/// entries skipped, bytes zeroed), which its arguments could not price.
fn settle_fs(caller: &mut Caller<'_, HostState>) -> Result<(), wasmi::Error> {
    let Some(owed) = caller.data().fs.as_ref().map(|fs| fs.take_fuel()) else {
        return Ok(());
    };
    if owed == 0 {
        return Ok(());
    }
    let fuel = caller.get_fuel()?;
    match caller.data_mut().meter.pay_after(fuel, owed) {
        Ok(left) => {
            caller.set_fuel(left)?;
            Ok(())
        }
        Err(_) => Err(wasmi::Error::host(Interrupt::OutOfFuel)),
    }
}

macro_rules! wasi_functions {
    ($( fn $name:ident($($arg:ident : $ty:ty),* $(,)?) -> $ret:tt; )*) => {
        /// wasi-common's implementation of each function, unmetered (with
        /// WASI's own signatures, however many arguments they take).
        #[allow(clippy::too_many_arguments)]
        mod plain {
            use super::*;
            $(
                pub fn $name(
                    caller: &mut Caller<'_, HostState>,
                    $($arg: $ty),*
                ) -> Result<$ret, wasmi::Error> {
                    let Some(memory) = guest_memory(caller) else {
                        return Err(wasmi::Error::new("missing required WASI memory export"));
                    };
                    let (memory, state) = memory.data_and_store_mut(&mut *caller);
                    let mut memory = GuestMemory::Unshared(memory);
                    let result = run_ready(wasi_snapshot_preview1::$name(
                        &mut state.wasi,
                        &mut memory,
                        $($arg),*
                    ));
                    settle_fs(caller)?;
                    result?.map(<$ret>::from).map_err(wasi_error)
                }
            )*
        }

        /// Defines every function as "pay, then call wasi-common".
        fn link_metered(linker: &mut Linker<HostState>) -> Result<(), wasmi::errors::LinkerError> {
            $(
                linker.func_wrap(
                    WASI_MODULE,
                    stringify!($name),
                    |mut caller: Caller<'_, HostState>, $($arg: $ty),*| -> Result<$ret, wasmi::Error> {
                        charge(
                            &mut caller,
                            stringify!($name),
                            &[$(i64::from($arg)),*],
                            || vec![$(Val::from($arg)),*],
                        )?;
                        plain::$name(&mut caller, $($arg),*)
                    },
                )?;
            )*
            Ok(())
        }
    };
}

wasi_functions! {
    fn args_get(argv: i32, argv_buf: i32) -> i32;
    fn args_sizes_get(offset0: i32, offset1: i32) -> i32;
    fn environ_get(environ: i32, environ_buf: i32) -> i32;
    fn environ_sizes_get(offset0: i32, offset1: i32) -> i32;
    fn clock_res_get(id: i32, offset0: i32) -> i32;
    fn clock_time_get(id: i32, precision: i64, offset0: i32) -> i32;
    fn fd_advise(fd: i32, offset: i64, len: i64, advice: i32) -> i32;
    fn fd_allocate(fd: i32, offset: i64, len: i64) -> i32;
    fn fd_close(fd: i32) -> i32;
    fn fd_datasync(fd: i32) -> i32;
    fn fd_fdstat_get(fd: i32, offset0: i32) -> i32;
    fn fd_fdstat_set_flags(fd: i32, flags: i32) -> i32;
    fn fd_fdstat_set_rights(fd: i32, fs_rights_base: i64, fs_rights_inheriting: i64) -> i32;
    fn fd_filestat_get(fd: i32, offset0: i32) -> i32;
    fn fd_filestat_set_size(fd: i32, size: i64) -> i32;
    fn fd_filestat_set_times(fd: i32, atim: i64, mtim: i64, fst_flags: i32) -> i32;
    fn fd_pread(fd: i32, iov_buf: i32, iov_buf_len: i32, offset: i64, offset0: i32) -> i32;
    fn fd_prestat_get(fd: i32, offset0: i32) -> i32;
    fn fd_prestat_dir_name(fd: i32, path: i32, path_len: i32) -> i32;
    fn fd_pwrite(fd: i32, ciov_buf: i32, ciov_buf_len: i32, offset: i64, offset0: i32) -> i32;
    fn fd_read(fd: i32, iov_buf: i32, iov_buf_len: i32, offset1: i32) -> i32;
    fn fd_readdir(fd: i32, buf: i32, buf_len: i32, cookie: i64, offset0: i32) -> i32;
    fn fd_renumber(fd: i32, to: i32) -> i32;
    fn fd_seek(fd: i32, offset: i64, whence: i32, offset0: i32) -> i32;
    fn fd_sync(fd: i32) -> i32;
    fn fd_tell(fd: i32, offset0: i32) -> i32;
    fn fd_write(fd: i32, ciov_buf: i32, ciov_buf_len: i32, offset0: i32) -> i32;
    fn path_create_directory(fd: i32, offset: i32, length: i32) -> i32;
    fn path_filestat_get(fd: i32, flags: i32, offset: i32, length: i32, offset0: i32) -> i32;
    fn path_filestat_set_times(
        fd: i32, flags: i32, offset: i32, length: i32, atim: i64, mtim: i64, fst_flags: i32,
    ) -> i32;
    fn path_link(
        old_fd: i32, old_flags: i32, old_offset: i32, old_length: i32,
        new_fd: i32, new_offset: i32, new_length: i32,
    ) -> i32;
    fn path_open(
        fd: i32, dirflags: i32, offset: i32, length: i32, oflags: i32,
        fs_rights_base: i64, fdflags: i64, fs_rights_inheriting: i32, offset0: i32,
    ) -> i32;
    fn path_readlink(fd: i32, offset: i32, length: i32, buf: i32, buf_len: i32, offset0: i32) -> i32;
    fn path_remove_directory(fd: i32, offset: i32, length: i32) -> i32;
    fn path_rename(
        fd: i32, old_offset: i32, old_length: i32, new_fd: i32, new_offset: i32, new_length: i32,
    ) -> i32;
    fn path_symlink(old_offset: i32, old_length: i32, fd: i32, new_offset: i32, new_length: i32) -> i32;
    fn path_unlink_file(fd: i32, offset: i32, length: i32) -> i32;
    fn poll_oneoff(in_: i32, out: i32, nsubscriptions: i32, offset0: i32) -> i32;
    fn proc_exit(rval: i32) -> ();
    fn proc_raise(sig: i32) -> i32;
    fn sched_yield() -> i32;
    fn random_get(buf: i32, buf_len: i32) -> i32;
    fn sock_accept(fd: i32, flags: i32, offset0: i32) -> i32;
    fn sock_recv(
        fd: i32, iov_buf: i32, iov_buf_len: i32, ri_flags: i32, offset0: i32, offset1: i32,
    ) -> i32;
    fn sock_send(fd: i32, ciov_buf: i32, ciov_buf_len: i32, si_flags: i32, offset0: i32) -> i32;
    fn sock_shutdown(fd: i32, how: i32) -> i32;
}

/// Adds every WASI preview1 function, metered, plus the shims.
pub fn link(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    link_metered(linker).map_err(|e| anyhow::anyhow!("linking WASI: {e}"))?;
    linker.allow_shadowing(true);
    linker.func_wrap(WASI_MODULE, "fd_write", fd_write)?;
    linker.func_wrap(WASI_MODULE, "fd_read", fd_read)?;
    linker.func_wrap(WASI_MODULE, "fd_pwrite", fd_pwrite)?;
    linker.func_wrap(WASI_MODULE, "fd_pread", fd_pread)?;
    linker.func_wrap(WASI_MODULE, "sock_send", sock_send)?;
    linker.func_wrap(WASI_MODULE, "sock_recv", sock_recv)?;
    linker.func_wrap(WASI_MODULE, "random_get", random_get)?;
    linker.func_wrap(WASI_MODULE, "poll_oneoff", poll_oneoff)?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Writes, then pauses the guest to flush a full buffer (not during the
/// start section, which cannot be resumed) or ends it at the output limit.
fn fd_write(
    mut caller: Caller<'_, HostState>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    nwritten: i32,
) -> Result<i32, wasmi::Error> {
    let args = [fd, iovs, iovs_len, nwritten];
    charge(&mut caller, "fd_write", &args.map(i64::from), || {
        args.map(Val::from).to_vec()
    })?;
    if iovs_len as u32 > MAX_IOVECS {
        return Ok(ERRNO_INVAL);
    }
    let errno = plain::fd_write(&mut caller, fd, iovs, iovs_len, nwritten)?;
    let data = caller.data();
    if data.output.truncated() {
        return Err(wasmi::Error::host(Interrupt::OutputLimit));
    }
    if data.interruptible && data.output.wants_flush() {
        return Err(wasmi::Error::host(Interrupt::Flush(errno)));
    }
    Ok(errno)
}

/// Reads; on streamed stdin with no data yet, pauses the guest so the driver
/// can wait for data outside the interpreter (it then completes the read and
/// charges for it).
fn fd_read(
    mut caller: Caller<'_, HostState>,
    fd: i32,
    iovs: i32,
    iovs_len: i32,
    nread: i32,
) -> Result<i32, wasmi::Error> {
    let data = caller.data();
    if fd == 0 && data.interruptible && data.stdin.would_block() && iovs_len as u32 <= MAX_IOVECS {
        return Err(wasmi::Error::host(Interrupt::NeedStdin {
            iovs: iovs as u32,
            iovs_len: iovs_len as u32,
            nread: nread as u32,
        }));
    }
    let args = [fd, iovs, iovs_len, nread];
    charge(&mut caller, "fd_read", &args.map(i64::from), || {
        args.map(Val::from).to_vec()
    })?;
    if iovs_len as u32 > MAX_IOVECS {
        return Ok(ERRNO_INVAL);
    }
    plain::fd_read(&mut caller, fd, iovs, iovs_len, nread)
}

/// The other iovec calls: capped like `fd_read`/`fd_write`, then plain.
macro_rules! iovec_capped {
    ($( fn $name:ident($($arg:ident : $ty:ty),*) cap $len:ident; )*) => {
        $(
            fn $name(
                mut caller: Caller<'_, HostState>,
                $($arg: $ty),*
            ) -> Result<i32, wasmi::Error> {
                charge(
                    &mut caller,
                    stringify!($name),
                    &[$(i64::from($arg)),*],
                    || vec![$(Val::from($arg)),*],
                )?;
                if $len as u32 > MAX_IOVECS {
                    return Ok(ERRNO_INVAL);
                }
                plain::$name(&mut caller, $($arg),*)
            }
        )*
    };
}

iovec_capped! {
    fn fd_pread(fd: i32, iovs: i32, iovs_len: i32, offset: i64, nread: i32) cap iovs_len;
    fn fd_pwrite(fd: i32, iovs: i32, iovs_len: i32, offset: i64, nwritten: i32) cap iovs_len;
    fn sock_recv(fd: i32, iovs: i32, iovs_len: i32, flags: i32, nread: i32, oflags: i32) cap iovs_len;
    fn sock_send(fd: i32, iovs: i32, iovs_len: i32, flags: i32, nwritten: i32) cap iovs_len;
}

/// Fills in pieces, stopping between them at the deadline or on
/// cancellation. Filling piecewise yields the same bytes as one fill (the
/// generator is a block stream consumed in whole words; pieces are word
/// multiples).
fn random_get(mut caller: Caller<'_, HostState>, buf: i32, len: i32) -> Result<i32, wasmi::Error> {
    let args = [buf, len];
    charge(&mut caller, "random_get", &args.map(i64::from), || {
        args.map(Val::from).to_vec()
    })?;
    let (start, len) = (buf as u32 as u64, len as u32 as u64);
    let memory_len = guest_memory(&caller).map_or(0, |m| m.data(&caller).len() as u64);
    if start + len > memory_len {
        return Ok(ERRNO_FAULT);
    }
    let mut done = 0;
    loop {
        let piece = (len - done).min(HOST_CHUNK_BYTES as u64);
        let errno = plain::random_get(&mut caller, (start + done) as i32, piece as i32)?;
        done += piece;
        if errno != 0 || done == len {
            return Ok(errno);
        }
        if let Some(outcome) = caller.data().meter.stop() {
            return Err(wasmi::Error::host(Interrupt::Stop(outcome)));
        }
    }
}

/// Refuses huge subscription counts before wasi-common allocates per item.
fn poll_oneoff(
    mut caller: Caller<'_, HostState>,
    subs: i32,
    events: i32,
    nsubscriptions: i32,
    nevents: i32,
) -> Result<i32, wasmi::Error> {
    let args = [subs, events, nsubscriptions, nevents];
    charge(&mut caller, "poll_oneoff", &args.map(i64::from), || {
        args.map(Val::from).to_vec()
    })?;
    if nsubscriptions as u32 > MAX_POLL_SUBSCRIPTIONS {
        return Ok(ERRNO_INVAL);
    }
    plain::poll_oneoff(&mut caller, subs, events, nsubscriptions, nevents)
}
