//! One execution as a resumable state machine: instantiate (with the start
//! section's fuel capped, since it cannot be sliced), then run `_start` in
//! fuel slices. Between slices the async driver (see `driver.rs`) sends
//! output, feeds stdin and checks the deadline and cancellation, so a guest
//! can never hold a thread past its time. Fuel is counted exactly across
//! slices, so slicing never changes `fuel_consumed`.

use std::{
    fmt,
    sync::{atomic::AtomicBool, Arc},
    time::Duration,
};

use wasmi::{
    Func, Linker, ResourceLimiter, ResumableCall, ResumableCallHostTrap, ResumableCallOutOfFuel,
    Store, Val,
};
use wasmi_core::LimiterError;
use wasmi_wasi::WasiCtx;

use super::{
    host_fuel::{self, HostMeter},
    io::{OutputBuffer, StdinBuffer},
    outcome::{trap_kind_name, Outcome},
    trace::ThreadTrace,
};

/// Per-execution store data: the WASI context plus our limiter, stdio and
/// the meter host calls pay through.
pub struct HostState {
    pub wasi: WasiCtx,
    limiter: GuestLimiter,
    pub(super) output: OutputBuffer,
    pub(super) stdin: StdinBuffer,
    /// False while the start section runs (a non-resumable call), so shims
    /// must not interrupt it.
    pub(super) interruptible: bool,
    /// The instance's memory once instantiated, for host calls made from
    /// the host side (deferred calls have no calling instance).
    pub(super) memory: Option<wasmi::Memory>,
    pub(super) meter: HostMeter,
    /// (count, bytes) of args and env, which host call costs depend on.
    pub(super) args_sizes: (u64, u64),
    pub(super) env_sizes: (u64, u64),
    pub(super) trace: Option<ThreadTrace>,
    /// The guest's in-memory filesystem, whose work host calls pay for.
    pub(super) fs: Option<super::vfs::Fs>,
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
/// Linear memories a guest may have (WASI preview1 knows only `memory`).
const MAX_MEMORIES: usize = 1;
/// Instances per store: the guest's module alone.
const MAX_INSTANCES: usize = 1;
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
        MAX_INSTANCES
    }
    fn tables(&self) -> usize {
        MAX_TABLES
    }
    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

/// Why a host function paused or stopped the guest (a host error, not a
/// wasm trap).
#[derive(Debug)]
pub(super) enum Interrupt {
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
    /// On the inline slice, a call cost more than the slice had left: it
    /// runs on a worker with these arguments, then the guest resumes.
    Defer(Vec<Val>),
    /// The remaining budget could not pay for a call.
    OutOfFuel,
    /// Long host work stopped at the deadline or on cancellation.
    Stop(Outcome),
}

impl fmt::Display for Interrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

impl wasmi::errors::HostError for Interrupt {}

/// Adds WASI preview1, every function metered (see `host_calls`).
pub fn link_wasi(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    super::host_calls::link(linker)
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
    /// Paused (fuel slice used up, output to flush, or a host call deferred
    /// to a worker); run another slice.
    Continue,
    /// Paused in `fd_read(0)` with no data; feed stdin, then run a slice.
    NeedStdin,
}

/// What to do after a host function returned an error to the interpreter.
enum Action {
    Exit(i32),
    Resume(Resume),
    Defer(Vec<Val>),
    OutputLimit,
    OutOfFuel,
    Stop(Outcome),
    Fail(String),
}

impl Action {
    fn of(error: &wasmi::Error) -> Self {
        if let Some(code) = error.i32_exit_status() {
            return Self::Exit(code);
        }
        match error.downcast_ref::<Interrupt>() {
            Some(Interrupt::Flush(errno)) => Self::Resume(Resume::Value(*errno)),
            Some(Interrupt::NeedStdin {
                iovs,
                iovs_len,
                nread,
            }) => Self::Resume(Resume::StdinRead {
                iovs: *iovs,
                iovs_len: *iovs_len,
                nread: *nread,
            }),
            Some(Interrupt::OutputLimit) => Self::OutputLimit,
            Some(Interrupt::Defer(args)) => Self::Defer(args.clone()),
            Some(Interrupt::OutOfFuel) => Self::OutOfFuel,
            Some(Interrupt::Stop(outcome)) => Self::Stop(*outcome),
            None => Self::Fail(
                format!("a host function failed: {error}")
                    .trim()
                    .to_string(),
            ),
        }
    }
}

/// The ending of a run cancelled before the guest finished.
pub fn cancelled_ending() -> Ending {
    Ending::stopped(
        Outcome::Cancelled,
        "the execution was cancelled before the guest finished",
    )
}

/// The ending of a run past its timeout.
pub fn timeout_ending(timeout: Duration) -> Ending {
    Ending::stopped(
        Outcome::Timeout,
        format!(
            "the guest did not finish within its {} ms timeout",
            timeout.as_millis()
        ),
    )
}

enum CallState {
    NotStarted(Func),
    OutOfFuel(ResumableCallOutOfFuel),
    HostTrap(ResumableCallHostTrap, Resume),
    /// A host call deferred from the inline slice, with its arguments.
    Deferred(ResumableCallHostTrap, Vec<Val>),
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

/// What running a slice returned: the guest paused or ended, or a deferred
/// host call failed (its error is handled like the guest's own host trap).
enum Progress {
    Call(ResumableCall),
    DeferredFailed(ResumableCallHostTrap, wasmi::Error),
}

/// Everything needed to start one execution.
pub struct Setup {
    pub wasi: WasiCtx,
    pub output: OutputBuffer,
    pub stdin: StdinBuffer,
    pub fuel: u64,
    pub memory_bytes: u64,
    /// Fuel the start section may use (it cannot be sliced or resumed).
    pub start_fuel_cap: u64,
    /// When long host work must stop, and the timeout it comes from.
    pub deadline: Option<std::time::Instant>,
    pub timeout: Duration,
    /// Set by the driver when the execution is cancelled.
    pub cancelled: Arc<AtomicBool>,
    pub trace: Option<ThreadTrace>,
    /// The filesystem the WASI context preopens, if any.
    pub fs: Option<super::vfs::Fs>,
}

/// A live execution between slices.
pub struct Execution {
    store: Store<HostState>,
    memory: Option<wasmi::Memory>,
    state: CallState,
    budget: u64,
    consumed: u64,
    timeout: Duration,
}

impl Execution {
    /// Instantiates the module (running its start section, if any); the
    /// ending is `Some` when instantiation itself ended the run.
    pub fn start(
        linker: &Linker<HostState>,
        module: &wasmi::Module,
        setup: Setup,
    ) -> (Self, Option<Ending>) {
        if let Some(trace) = &setup.trace {
            trace.record("instantiate");
        }
        let sizes = |a: &wasmi_wasi::wasi_common::StringArray| {
            (
                u64::from(a.number_elements()),
                u64::from(a.cumulative_size()),
            )
        };
        let state = HostState {
            args_sizes: sizes(&setup.wasi.args),
            env_sizes: sizes(&setup.wasi.env),
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
            memory: None,
            meter: HostMeter::new(setup.deadline, setup.cancelled),
            trace: setup.trace,
            fs: setup.fs,
        };
        let mut store = Store::new(linker.engine(), state);
        store.limiter(|s| &mut s.limiter);
        let start_cap = setup.start_fuel_cap.max(1);
        let start_fuel = setup.fuel.min(start_cap);
        let mut exec = Execution {
            memory: None,
            state: CallState::Done,
            budget: setup.fuel,
            consumed: 0,
            timeout: setup.timeout,
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
                if ending.outcome == Outcome::OutOfFuel {
                    exec.consumed = start_fuel;
                }
                if ending.outcome == Outcome::OutOfFuel && start_fuel < exec.budget {
                    ending.message = format!(
                        "the start section ran out of fuel (start sections cannot be paused, so they may use at most {start_cap} fuel)"
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
        let data = exec.store.data_mut();
        data.memory = exec.memory;
        data.interruptible = true;
        (exec, None)
    }

    /// Fuel consumed so far.
    pub fn fuel_consumed(&self) -> u64 {
        self.consumed
    }

    /// The guest's filesystem, if it has one.
    pub fn filesystem(&self) -> Option<super::vfs::Fs> {
        self.store.data().fs.clone()
    }

    /// Largest linear memory reached, in bytes.
    pub fn memory_peak(&self) -> u64 {
        self.store.data().limiter.memory_peak
    }

    /// Runs the guest for at most `slice` fuel; host calls may draw on the
    /// rest of the budget.
    pub fn run_slice(&mut self, slice: u64) -> Step {
        self.run(slice, false)
    }

    /// Runs the guest for at most `slice` fuel on an async runtime thread:
    /// a host call that costs more than the slice has left is not run but
    /// deferred (the next slice, on a worker, runs it).
    pub fn run_inline_slice(&mut self, slice: u64) -> Step {
        self.run(slice, true)
    }

    fn run(&mut self, slice: u64, inline: bool) -> Step {
        if slice == 0 && self.consumed < self.budget {
            // An empty slice (inline slices may be configured off).
            return Step::Continue;
        }
        let mut state = std::mem::replace(&mut self.state, CallState::Done);
        if let CallState::HostTrap(
            call,
            Resume::StdinRead {
                iovs,
                iovs_len,
                nread,
            },
        ) = state
        {
            // The paused read is completed (and paid for) before the slice.
            match self.complete_stdin_read(iovs, iovs_len, nread) {
                Some(errno) => state = CallState::HostTrap(call, Resume::Value(errno)),
                None => return self.out_of_fuel(),
            }
        }
        let remaining = self.budget - self.consumed;
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
        self.store
            .data_mut()
            .meter
            .begin_slice(remaining - give, inline);
        let store = &mut self.store;
        let result = contain_panic(move || match state {
            CallState::NotStarted(func) => {
                func.call_resumable(store, &[], &mut []).map(Progress::Call)
            }
            CallState::OutOfFuel(call) => call.resume(store, &mut []).map(Progress::Call),
            CallState::HostTrap(call, resume) => {
                let Resume::Value(value) = resume else {
                    unreachable!("stdin reads are completed above")
                };
                call.resume(store, &[Val::I32(value)], &mut [])
                    .map(Progress::Call)
            }
            CallState::Deferred(call, args) => {
                let func = call.host_func();
                let mut results: Vec<Val> = func
                    .ty(&*store)
                    .results()
                    .iter()
                    .map(|ty| Val::default_for_ty(*ty))
                    .collect();
                match func.call(&mut *store, &args, &mut results) {
                    Ok(()) => call.resume(store, &results, &mut []).map(Progress::Call),
                    Err(error) => Ok(Progress::DeferredFailed(call, error)),
                }
            }
            CallState::Done => Err(wasmi::Error::new("the execution already finished")),
        });
        let left = self.store.get_fuel().unwrap_or(0);
        let overdraft = self.store.data_mut().meter.end_slice();
        self.consumed = (self.consumed + (give - left) + overdraft).min(self.budget);
        let result = match result {
            Ok(result) => result,
            Err(ending) => return Step::Finished(ending),
        };
        match result {
            Ok(Progress::Call(ResumableCall::Finished)) => Step::Finished(self.exit_ending(0)),
            Ok(Progress::Call(ResumableCall::OutOfFuel(call))) => {
                if self.consumed >= self.budget {
                    return self.out_of_fuel();
                }
                self.state = CallState::OutOfFuel(call);
                Step::Continue
            }
            Ok(Progress::Call(ResumableCall::HostTrap(call))) => {
                let action = Action::of(call.host_error());
                self.act(call, action)
            }
            Ok(Progress::DeferredFailed(call, error)) => {
                let action = Action::of(&error);
                self.act(call, action)
            }
            Err(error) => Step::Finished(self.classify(&error)),
        }
    }

    /// The ending for host work stopped with `outcome`.
    fn stopped(&self, outcome: Outcome) -> Ending {
        match outcome {
            Outcome::Timeout => timeout_ending(self.timeout),
            _ => cancelled_ending(),
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

    /// Continues after a host function returned an error to the guest.
    fn act(&mut self, call: ResumableCallHostTrap, action: Action) -> Step {
        match action {
            Action::Exit(code) => Step::Finished(self.exit_ending(code)),
            Action::Resume(resume) => {
                let need_stdin = matches!(resume, Resume::StdinRead { .. });
                self.state = CallState::HostTrap(call, resume);
                if need_stdin {
                    Step::NeedStdin
                } else {
                    Step::Continue
                }
            }
            Action::Defer(args) => {
                self.state = CallState::Deferred(call, args);
                Step::Continue
            }
            Action::OutputLimit => Step::Finished(output_limit_ending()),
            Action::OutOfFuel => self.out_of_fuel(),
            Action::Stop(outcome) => Step::Finished(self.stopped(outcome)),
            Action::Fail(message) => Step::Finished(Ending::trap("host_error", message)),
        }
    }

    /// Performs an `fd_read(0, iovs, iovs_len, nread)` that was paused for
    /// data, after paying for it; returns its WASI errno, or `None` when the
    /// budget cannot pay.
    fn complete_stdin_read(&mut self, iovs: u32, iovs_len: u32, nread: u32) -> Option<i32> {
        const ERRNO_FAULT: i32 = 21;
        let Some(memory) = self.memory else {
            return Some(ERRNO_FAULT);
        };
        let stdin = self.store.data().stdin.clone();
        let remaining = self.budget - self.consumed;
        let items = host_fuel::CALL_BASE + u64::from(iovs_len) * host_fuel::PER_ITEM;
        if items > remaining {
            return None;
        }
        let data = memory.data_mut(&mut self.store);
        let word = |data: &[u8], at: u64| -> Option<u32> {
            let at = usize::try_from(at).ok()?;
            let bytes = data.get(at..at.checked_add(4)?)?;
            Some(u32::from_le_bytes(bytes.try_into().ok()?))
        };
        let iovs_end = u64::from(iovs) + 8 * u64::from(iovs_len);
        if iovs_end > data.len() as u64 {
            self.consumed += items;
            return Some(ERRNO_FAULT);
        }
        // What the read will copy: the iovecs' room, up to what has arrived.
        let room: u64 = (0..u64::from(iovs_len))
            .filter_map(|i| word(data, u64::from(iovs) + 8 * i + 4))
            .map(u64::from)
            .sum();
        let cost = items + host_fuel::copy_cost(room.min(stdin.buffered()));
        if cost > remaining {
            return None;
        }
        self.consumed += cost;
        let mut total: u32 = 0;
        for i in 0..u64::from(iovs_len) {
            let base = u64::from(iovs) + 8 * i;
            let (Some(ptr), Some(len)) = (word(data, base), word(data, base + 4)) else {
                return Some(ERRNO_FAULT);
            };
            let (ptr, len) = (ptr as usize, len as usize);
            let Some(buf) = ptr.checked_add(len).and_then(|end| data.get_mut(ptr..end)) else {
                return Some(ERRNO_FAULT);
            };
            let n = stdin.read_into(buf);
            total = total.saturating_add(n as u32);
            if n < len {
                break;
            }
        }
        let at = nread as usize;
        Some(
            match at.checked_add(4).and_then(|end| data.get_mut(at..end)) {
                Some(slot) => {
                    slot.copy_from_slice(&total.to_le_bytes());
                    0
                }
                None => ERRNO_FAULT,
            },
        )
    }
    /// Maps an error that ended the run to an outcome.
    fn classify(&mut self, error: &wasmi::Error) -> Ending {
        if let Some(hit) = self.store.data_mut().limiter.hit.take() {
            return Ending::stopped(Outcome::MemoryLimit, hit);
        }
        if let Some(code) = error.i32_exit_status() {
            return self.exit_ending(code);
        }
        match error.downcast_ref::<Interrupt>() {
            Some(Interrupt::OutputLimit) => return output_limit_ending(),
            Some(Interrupt::Stop(outcome)) => return self.stopped(*outcome),
            Some(Interrupt::OutOfFuel) => {
                return Ending::stopped(
                    Outcome::OutOfFuel,
                    format!("the guest used all of its {} fuel", self.budget),
                )
            }
            _ => {}
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
        if let wasmi::errors::ErrorKind::Instantiation(error) = error.kind() {
            return instantiation_ending(error);
        }
        Ending::trap("host_error", error.to_string().trim().to_string())
    }
}

/// Maps a failed instantiation to an ending by its kind. Memory and table
/// sizes past the guest's limits were already recorded by [`GuestLimiter`];
/// what is left is the count of instances, tables and memories (checked by
/// wasmi against the limiter), an allocation the host could not make, and
/// an element segment that does not fit its table (a trap, per the spec).
fn instantiation_ending(error: &wasmi::errors::InstantiationError) -> Ending {
    use wasmi::errors::InstantiationError as E;
    let too_many = |what: &str, most: usize| {
        Ending::stopped(
            Outcome::MemoryLimit,
            format!("the module has more {what} than the {most} a guest may have"),
        )
    };
    match error {
        E::TooManyTables => too_many("tables", MAX_TABLES),
        E::TooManyMemories => too_many("linear memories", MAX_MEMORIES),
        E::TooManyInstances => too_many("instances", MAX_INSTANCES),
        E::FailedToInstantiateMemory(_) | E::FailedToInstantiateTable(_) => {
            Ending::stopped(Outcome::MemoryLimit, error.to_string())
        }
        E::ElementSegmentDoesNotFit { .. } => {
            let kind = trap_kind_name(wasmi::TrapCode::TableOutOfBounds);
            Ending::trap(kind, format!("wasm trap: {}", kind.replace('_', " ")))
        }
        _ => Ending::trap("host_error", error.to_string()),
    }
}

impl Drop for Execution {
    fn drop(&mut self) {
        if let Some(trace) = &self.store.data().trace {
            trace.record("drop");
        }
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
        fs: None,
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
        memory: None,
        meter: HostMeter::default(),
        args_sizes: (0, 0),
        env_sizes: (0, 0),
        trace: None,
        fs: None,
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
