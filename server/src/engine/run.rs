//! One execution as a resumable state machine: instantiate (with the start
//! section's fuel capped, since it cannot be sliced), then run `_start` in
//! fuel slices. Between slices the async driver (see `driver.rs`) sends
//! output, feeds stdin and checks the deadline and cancellation, so a guest
//! can never hold a thread past its time. Fuel is counted exactly across
//! slices, so slicing never changes `fuel_consumed`.

use std::fmt;

use wasmi::{
    Caller, Func, Linker, ResourceLimiter, ResumableCall, ResumableCallHostTrap,
    ResumableCallOutOfFuel, Store, Val,
};
use wasmi_core::LimiterError;
use wasmi_wasi::WasiCtx;

use super::{
    io::{OutputBuffer, StdinBuffer},
    outcome::{trap_kind_name, Outcome},
};

/// Fuel a start section may burn: it runs inside instantiation, unsliced, so
/// this bounds the time it can hold a thread.
pub const START_FUEL_CAP: u64 = 200_000_000;

/// Per-execution store data: the WASI context plus our limiter and stdio.
pub struct HostState {
    pub wasi: WasiCtx,
    limiter: GuestLimiter,
    output: OutputBuffer,
    stdin: StdinBuffer,
    /// False while the start section runs (a non-resumable call), so shims
    /// must not interrupt it.
    interruptible: bool,
}

/// Memory, table and instance limits, recording the peak and what was hit.
struct GuestLimiter {
    memory_bytes: u64,
    table_elements: u64,
    memory_peak: u64,
    hit: Option<String>,
}

/// Tables a guest may have (WASI programs use one).
const MAX_TABLES: usize = 4;
/// Elements per table.
const MAX_TABLE_ELEMENTS: u64 = 1_000_000;

impl GuestLimiter {
    /// Allows growth to `desired` unless it passes the module's own
    /// `maximum` (a normal failed grow) or our `limit` (recorded, ends the run).
    fn grow(
        &mut self,
        what: &str,
        desired: usize,
        maximum: Option<usize>,
        limit: u64,
    ) -> Result<bool, LimiterError> {
        if maximum.is_some_and(|max| desired > max) {
            return Ok(false);
        }
        if desired as u64 > limit {
            self.hit = Some(format!("{what} of {desired} exceeds the limit of {limit}"));
            return Err(LimiterError::ResourceLimiterDeniedAllocation);
        }
        Ok(true)
    }
}

impl ResourceLimiter for GuestLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        let allowed = self.grow("linear memory (bytes)", desired, maximum, self.memory_bytes)?;
        if allowed {
            self.memory_peak = self.memory_peak.max(desired as u64);
        }
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> Result<bool, LimiterError> {
        self.grow("a table (elements)", desired, maximum, self.table_elements)
    }

    fn instances(&self) -> usize {
        1
    }
    fn tables(&self) -> usize {
        MAX_TABLES
    }
    fn memories(&self) -> usize {
        1
    }
}

/// Why a shim paused the guest (a resumable host trap, not a real trap).
#[derive(Debug)]
enum Interrupt {
    /// Output passed the flush threshold; resume with `fd_write`'s errno.
    Flush(i32),
    /// `fd_read(0, ...)` found no data yet; the driver completes it.
    NeedStdin {
        iovs: u32,
        iovs_len: u32,
        nread: u32,
    },
    /// The guest wrote past `max_output_bytes`.
    OutputLimit,
}

impl fmt::Display for Interrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl wasmi::errors::HostError for Interrupt {}

/// Adds WASI preview1 plus our `fd_write`/`fd_read` shims to `linker`.
pub fn link_wasi(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    use wasmi_wasi::sync::snapshots::preview_1::wrapped;
    wasmi_wasi::add_to_linker(linker, |s: &mut HostState| &mut s.wasi)
        .map_err(|e| anyhow::anyhow!("linking WASI: {e}"))?;
    linker.allow_shadowing(true);

    let write = wrapped::fd_write::<HostState, WasiCtx>(|s| &mut s.wasi);
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "fd_write",
        move |caller: Caller<'_, HostState>,
              fd: i32,
              iovs: i32,
              iovs_len: i32,
              nwritten: i32|
              -> Result<i32, wasmi::Error> {
            let output = caller.data().output.clone();
            let interruptible = caller.data().interruptible;
            let errno = write(caller, fd, iovs, iovs_len, nwritten)?;
            if output.truncated() {
                return Err(wasmi::Error::host(Interrupt::OutputLimit));
            }
            if interruptible && output.wants_flush() {
                return Err(wasmi::Error::host(Interrupt::Flush(errno)));
            }
            Ok(errno)
        },
    )?;

    let read = wrapped::fd_read::<HostState, WasiCtx>(|s| &mut s.wasi);
    linker.func_wrap(
        "wasi_snapshot_preview1",
        "fd_read",
        move |caller: Caller<'_, HostState>,
              fd: i32,
              iovs: i32,
              iovs_len: i32,
              nread: i32|
              -> Result<i32, wasmi::Error> {
            let data = caller.data();
            if fd == 0 && data.interruptible && data.stdin.would_block() {
                return Err(wasmi::Error::host(Interrupt::NeedStdin {
                    iovs: iovs as u32,
                    iovs_len: iovs_len as u32,
                    nread: nread as u32,
                }));
            }
            read(caller, fd, iovs, iovs_len, nread)
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}

/// How a finished execution ended, before timing and totals are added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    pub outcome: Outcome,
    pub exit_code: i32,
    pub trap_kind: String,
    pub message: String,
}

impl Ending {
    fn exit(code: i32) -> Self {
        Self {
            outcome: if code == 0 {
                Outcome::Success
            } else {
                Outcome::ExitNonzero
            },
            exit_code: code,
            trap_kind: String::new(),
            message: if code == 0 {
                String::new()
            } else {
                format!("the guest exited with code {code}")
            },
        }
    }

    /// An ending where the guest did not exit (exit code -1).
    pub fn stopped(outcome: Outcome, message: impl Into<String>) -> Self {
        Self {
            outcome,
            exit_code: -1,
            trap_kind: String::new(),
            message: message.into(),
        }
    }

    fn trap(kind: &str, message: impl Into<String>) -> Self {
        Self {
            trap_kind: kind.to_string(),
            ..Self::stopped(Outcome::Trap, message)
        }
    }
}

/// What one slice did.
pub enum Step {
    /// The execution is over.
    Finished(Ending),
    /// Paused (fuel slice used up, or output to flush); run another slice.
    Continue,
    /// Paused in `fd_read(0)` with no data; feed stdin, then run a slice.
    NeedStdin,
}

enum CallState {
    NotStarted(Func),
    OutOfFuel(ResumableCallOutOfFuel),
    HostTrap(ResumableCallHostTrap, Resume),
    Done,
}

enum Resume {
    Value(i32),
    StdinRead {
        iovs: u32,
        iovs_len: u32,
        nread: u32,
    },
}

/// Everything needed to start one execution.
pub struct Setup {
    pub wasi: WasiCtx,
    pub output: OutputBuffer,
    pub stdin: StdinBuffer,
    pub fuel: u64,
    pub memory_bytes: u64,
}

/// A live execution between slices.
pub struct Execution {
    store: Store<HostState>,
    memory: Option<wasmi::Memory>,
    state: CallState,
    budget: u64,
    consumed: u64,
}

impl Execution {
    /// Instantiates the module (running its start section, if any); the
    /// ending is `Some` when instantiation itself ended the run.
    pub fn start(
        linker: &Linker<HostState>,
        module: &wasmi::Module,
        setup: Setup,
    ) -> (Self, Option<Ending>) {
        let state = HostState {
            wasi: setup.wasi,
            limiter: GuestLimiter {
                memory_bytes: setup.memory_bytes,
                table_elements: MAX_TABLE_ELEMENTS,
                memory_peak: 0,
                hit: None,
            },
            output: setup.output,
            stdin: setup.stdin,
            interruptible: false,
        };
        let mut store = Store::new(linker.engine(), state);
        store.limiter(|s| &mut s.limiter);
        let start_fuel = setup.fuel.min(START_FUEL_CAP);
        let mut exec = Execution {
            memory: None,
            state: CallState::Done,
            budget: setup.fuel,
            consumed: 0,
            store,
        };
        exec.store
            .set_fuel(start_fuel)
            .expect("fuel metering is enabled");
        let instantiated = contain_panic(|| linker.instantiate_and_start(&mut exec.store, module));
        exec.consumed = start_fuel - exec.store.get_fuel().unwrap_or(0);
        let instance = match instantiated {
            Err(ending) => return (exec, Some(ending)),
            Ok(Ok(instance)) => instance,
            Ok(Err(error)) => {
                let mut ending = exec.classify(&error);
                if ending.outcome == Outcome::OutOfFuel && start_fuel < exec.budget {
                    ending.message = format!(
                        "the start section ran out of fuel (start sections may use at most {START_FUEL_CAP} fuel)"
                    );
                }
                return (exec, Some(ending));
            }
        };
        if exec.store.data().output.truncated() {
            return (exec, Some(output_limit_ending()));
        }
        let start = instance
            .get_func(&exec.store, "_start")
            .expect("validated modules export _start");
        exec.memory = instance.get_memory(&exec.store, "memory");
        exec.state = CallState::NotStarted(start);
        exec.store.data_mut().interruptible = true;
        (exec, None)
    }

    /// Fuel consumed so far.
    pub fn fuel_consumed(&self) -> u64 {
        self.consumed
    }

    /// Largest linear memory reached, in bytes.
    pub fn memory_peak(&self) -> u64 {
        self.store.data().limiter.memory_peak
    }

    /// Runs the guest for at most `slice` fuel.
    pub fn run_slice(&mut self, slice: u64) -> Step {
        let remaining = self.budget - self.consumed;
        let state = std::mem::replace(&mut self.state, CallState::Done);
        let give = match &state {
            CallState::OutOfFuel(call) => {
                let required = call.required_fuel();
                if required > remaining {
                    return self.out_of_fuel();
                }
                slice.max(required).min(remaining)
            }
            _ => slice.min(remaining),
        };
        if give == 0 {
            return self.out_of_fuel();
        }
        self.store.set_fuel(give).expect("fuel metering is enabled");
        let resume_value = match &state {
            CallState::HostTrap(
                _,
                Resume::StdinRead {
                    iovs,
                    iovs_len,
                    nread,
                },
            ) => Some(self.complete_stdin_read(*iovs, *iovs_len, *nread)),
            CallState::HostTrap(_, Resume::Value(v)) => Some(*v),
            _ => None,
        };
        let store = &mut self.store;
        let result = contain_panic(move || match state {
            CallState::NotStarted(func) => func.call_resumable(store, &[], &mut []),
            CallState::OutOfFuel(call) => call.resume(store, &mut []),
            CallState::HostTrap(call, _) => {
                let value = resume_value.expect("set for host traps");
                call.resume(store, &[Val::I32(value)], &mut [])
            }
            CallState::Done => Err(wasmi::Error::new("the execution already finished")),
        });
        let result = match result {
            Ok(result) => result,
            Err(ending) => {
                self.consumed += give - self.store.get_fuel().unwrap_or(give);
                return Step::Finished(ending);
            }
        };
        self.consumed += give - self.store.get_fuel().unwrap_or(0);
        match result {
            Ok(ResumableCall::Finished) => Step::Finished(self.exit_ending(0)),
            Ok(ResumableCall::OutOfFuel(call)) => {
                if self.consumed >= self.budget {
                    return self.out_of_fuel();
                }
                self.state = CallState::OutOfFuel(call);
                Step::Continue
            }
            Ok(ResumableCall::HostTrap(call)) => self.host_trap(call),
            Err(error) => Step::Finished(self.classify(&error)),
        }
    }

    fn out_of_fuel(&mut self) -> Step {
        self.consumed = self.budget;
        Step::Finished(Ending::stopped(
            Outcome::OutOfFuel,
            format!("the guest used all of its {} fuel", self.budget),
        ))
    }

    fn exit_ending(&self, code: i32) -> Ending {
        if self.store.data().output.truncated() {
            return output_limit_ending();
        }
        Ending::exit(code)
    }

    fn host_trap(&mut self, call: ResumableCallHostTrap) -> Step {
        let error = call.host_error();
        if let Some(code) = error.i32_exit_status() {
            return Step::Finished(self.exit_ending(code));
        }
        match error.downcast_ref::<Interrupt>() {
            Some(Interrupt::Flush(errno)) => {
                let errno = *errno;
                self.state = CallState::HostTrap(call, Resume::Value(errno));
                Step::Continue
            }
            Some(Interrupt::NeedStdin {
                iovs,
                iovs_len,
                nread,
            }) => {
                let resume = Resume::StdinRead {
                    iovs: *iovs,
                    iovs_len: *iovs_len,
                    nread: *nread,
                };
                self.state = CallState::HostTrap(call, resume);
                Step::NeedStdin
            }
            Some(Interrupt::OutputLimit) => Step::Finished(output_limit_ending()),
            None => {
                let message = format!("a host function failed: {error}");
                Step::Finished(Ending::trap("host_error", message.trim()))
            }
        }
    }

    /// Performs an `fd_read(0, iovs, iovs_len, nread)` that was paused for
    /// data; returns its WASI errno.
    fn complete_stdin_read(&mut self, iovs: u32, iovs_len: u32, nread: u32) -> i32 {
        const ERRNO_FAULT: i32 = 21;
        let Some(memory) = self.memory else {
            return ERRNO_FAULT;
        };
        let stdin = self.store.data().stdin.clone();
        let data = memory.data_mut(&mut self.store);
        let word = |data: &[u8], at: u64| -> Option<u32> {
            let at = usize::try_from(at).ok()?;
            let bytes = data.get(at..at.checked_add(4)?)?;
            Some(u32::from_le_bytes(bytes.try_into().ok()?))
        };
        let iovs_end = u64::from(iovs) + 8 * u64::from(iovs_len);
        if iovs_end > data.len() as u64 {
            return ERRNO_FAULT;
        }
        let mut total: u32 = 0;
        for i in 0..u64::from(iovs_len) {
            let base = u64::from(iovs) + 8 * i;
            let (Some(ptr), Some(len)) = (word(data, base), word(data, base + 4)) else {
                return ERRNO_FAULT;
            };
            let (ptr, len) = (ptr as usize, len as usize);
            let Some(buf) = ptr.checked_add(len).and_then(|end| data.get_mut(ptr..end)) else {
                return ERRNO_FAULT;
            };
            let n = stdin.read_into(buf);
            total = total.saturating_add(n as u32);
            if n < len {
                break;
            }
        }
        let at = nread as usize;
        match at.checked_add(4).and_then(|end| data.get_mut(at..end)) {
            Some(slot) => {
                slot.copy_from_slice(&total.to_le_bytes());
                0
            }
            None => ERRNO_FAULT,
        }
    }

    /// Maps an error that ended the run to an outcome.
    fn classify(&mut self, error: &wasmi::Error) -> Ending {
        if let Some(hit) = self.store.data_mut().limiter.hit.take() {
            return Ending::stopped(Outcome::MemoryLimit, hit);
        }
        if let Some(code) = error.i32_exit_status() {
            return self.exit_ending(code);
        }
        if let Some(Interrupt::OutputLimit) = error.downcast_ref::<Interrupt>() {
            return output_limit_ending();
        }
        if let Some(code) = error.as_trap_code() {
            if code == wasmi::TrapCode::OutOfFuel {
                // Only the unsliced start section runs out of fuel this way;
                // `consumed` already holds all the fuel it was given.
                return Ending::stopped(
                    Outcome::OutOfFuel,
                    format!("the guest used all of its {} fuel", self.budget),
                );
            }
            let kind = trap_kind_name(code);
            return Ending::trap(kind, format!("wasm trap: {}", kind.replace('_', " ")));
        }
        let text = error.to_string();
        if matches!(error.kind(), wasmi::errors::ErrorKind::Instantiation(_))
            || text.contains("limit")
        {
            return Ending::stopped(Outcome::MemoryLimit, text.trim().to_string());
        }
        Ending::trap("host_error", text.trim().to_string())
    }
}

fn output_limit_ending() -> Ending {
    Ending::stopped(
        Outcome::OutputLimit,
        "the guest wrote more than max_output_bytes; output was cut at the limit",
    )
}

/// Host state for type-checking imports (never runs a guest).
pub fn placeholder_host_state() -> HostState {
    use super::wasi::{build_ctx, WasiSetup};
    use wasmi_wasi::wasi_common::pipe::{ReadPipe, WritePipe};
    let wasi = build_ctx(WasiSetup {
        program_name: String::new(),
        args: Vec::new(),
        env: Vec::new(),
        random_seed: 0,
        stdin: Box::new(ReadPipe::new(std::io::empty())),
        stdout: Box::new(WritePipe::new(std::io::sink())),
        stderr: Box::new(WritePipe::new(std::io::sink())),
    })
    .expect("empty args and env are valid");
    HostState {
        wasi,
        limiter: GuestLimiter {
            memory_bytes: 0,
            table_elements: 0,
            memory_peak: 0,
            hit: None,
        },
        output: OutputBuffer::new(0),
        stdin: StdinBuffer::default(),
        interruptible: false,
    }
}

/// Runs `f`, turning a panic inside the interpreter into an ending: a bug in
/// wasmi on some module must fail that execution, not the server.
fn contain_panic<R>(f: impl FnOnce() -> R) -> Result<R, Ending> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|panic| {
        let detail = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        tracing::error!(%detail, "the interpreter panicked; the execution is ended");
        Ending::trap(
            ENGINE_ERROR,
            format!("the interpreter failed on this module ({detail}); nothing else was affected"),
        )
    })
}

/// `trap_kind` of an execution the interpreter itself failed on.
pub const ENGINE_ERROR: &str = "engine_error";
