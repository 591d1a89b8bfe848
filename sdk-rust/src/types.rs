//! Plain Rust views of the API's messages (limits, events, results).

use std::{
    fmt,
    time::{Duration, SystemTime},
};

use bytes::Bytes;

use crate::{proto, File, RateLimit};

/// Per-execution limits. A field left at `None` takes the tier's default; a
/// value above the tier's maximum is refused with INVALID_ARGUMENT.
///
/// ```
/// use std::time::Duration;
/// use wasmwiz::Limits;
///
/// let limits = Limits::new()
///     .fuel(1_000_000_000)
///     .memory_bytes(64 << 20)
///     .timeout(Duration::from_secs(2))
///     .max_output_bytes(1 << 20);
/// # let _ = limits;
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Fuel budget (wasmi fuel units, about one per instruction).
    pub fuel: Option<u64>,
    /// Linear memory in bytes.
    pub memory_bytes: Option<u64>,
    /// Wall-clock timeout (millisecond precision).
    pub timeout: Option<Duration>,
    /// stdout + stderr bytes (collected files count too).
    pub max_output_bytes: Option<u64>,
    /// Bytes of file contents the guest's filesystem may hold, input included.
    pub fs_bytes: Option<u64>,
    /// Interactive runs: the longest one wait for input may last.
    pub idle_timeout: Option<Duration>,
}

impl Limits {
    /// The tier's defaults for everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the fuel budget.
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.fuel = Some(fuel);
        self
    }

    /// Sets the linear memory limit in bytes.
    pub fn memory_bytes(mut self, bytes: u64) -> Self {
        self.memory_bytes = Some(bytes);
        self
    }

    /// Sets the wall-clock timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the output limit in bytes.
    pub fn max_output_bytes(mut self, bytes: u64) -> Self {
        self.max_output_bytes = Some(bytes);
        self
    }

    /// Sets the filesystem size limit in bytes.
    pub fn fs_bytes(mut self, bytes: u64) -> Self {
        self.fs_bytes = Some(bytes);
        self
    }

    /// Sets the idle timeout of an interactive run (one wait for input).
    pub fn idle_timeout(mut self, idle: Duration) -> Self {
        self.idle_timeout = Some(idle);
        self
    }

    pub(crate) fn to_proto(self) -> proto::Limits {
        proto::Limits {
            fuel: self.fuel.unwrap_or(0),
            memory_bytes: self.memory_bytes.unwrap_or(0),
            timeout_ms: self
                .timeout
                .map(|t| (t.as_millis() as u64).max(1))
                .unwrap_or(0),
            max_output_bytes: self.max_output_bytes.unwrap_or(0),
            fs_bytes: self.fs_bytes.unwrap_or(0),
            idle_timeout_ms: self
                .idle_timeout
                .map(|t| (t.as_millis() as u64).max(1))
                .unwrap_or(0),
        }
    }

    pub(crate) fn from_proto(p: &proto::Limits) -> Self {
        let some = |v: u64| (v != 0).then_some(v);
        Limits {
            fuel: some(p.fuel),
            memory_bytes: some(p.memory_bytes),
            timeout: some(p.timeout_ms).map(Duration::from_millis),
            max_output_bytes: some(p.max_output_bytes),
            fs_bytes: some(p.fs_bytes),
            idle_timeout: some(p.idle_timeout_ms).map(Duration::from_millis),
        }
    }
}

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Outcome {
    /// The guest exited with code 0.
    Success,
    /// The guest exited with a nonzero code.
    ExitNonzero,
    /// The guest trapped ([`Finished::trap_kind`] says how).
    Trap,
    /// The fuel budget ran out.
    OutOfFuel,
    /// The wall-clock timeout passed.
    Timeout,
    /// The guest needed more memory than allowed.
    MemoryLimit,
    /// The guest wrote more than the output limit.
    OutputLimit,
    /// The run was cancelled (client gone, server shutting down).
    Cancelled,
    /// An outcome this client does not know.
    Unspecified,
}

impl Outcome {
    /// From the proto enum's number.
    pub fn from_i32(value: i32) -> Self {
        match proto::Outcome::try_from(value) {
            Ok(proto::Outcome::Success) => Outcome::Success,
            Ok(proto::Outcome::ExitNonzero) => Outcome::ExitNonzero,
            Ok(proto::Outcome::Trap) => Outcome::Trap,
            Ok(proto::Outcome::OutOfFuel) => Outcome::OutOfFuel,
            Ok(proto::Outcome::Timeout) => Outcome::Timeout,
            Ok(proto::Outcome::MemoryLimit) => Outcome::MemoryLimit,
            Ok(proto::Outcome::OutputLimit) => Outcome::OutputLimit,
            Ok(proto::Outcome::Cancelled) => Outcome::Cancelled,
            _ => Outcome::Unspecified,
        }
    }

    /// The proto name, e.g. `OUTCOME_OUT_OF_FUEL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "OUTCOME_SUCCESS",
            Outcome::ExitNonzero => "OUTCOME_EXIT_NONZERO",
            Outcome::Trap => "OUTCOME_TRAP",
            Outcome::OutOfFuel => "OUTCOME_OUT_OF_FUEL",
            Outcome::Timeout => "OUTCOME_TIMEOUT",
            Outcome::MemoryLimit => "OUTCOME_MEMORY_LIMIT",
            Outcome::OutputLimit => "OUTCOME_OUTPUT_LIMIT",
            Outcome::Cancelled => "OUTCOME_CANCELLED",
            Outcome::Unspecified => "OUTCOME_UNSPECIFIED",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Success => "success",
            Outcome::ExitNonzero => "exit nonzero",
            Outcome::Trap => "trap",
            Outcome::OutOfFuel => "out of fuel",
            Outcome::Timeout => "timeout",
            Outcome::MemoryLimit => "memory limit",
            Outcome::OutputLimit => "output limit",
            Outcome::Cancelled => "cancelled",
            Outcome::Unspecified => "unspecified",
        })
    }
}

/// Comparison of stdout with the expected stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// No expected stdout was given.
    None,
    /// stdout equals the expected bytes.
    Accepted,
    /// stdout differs from the expected bytes.
    WrongAnswer,
}

impl Verdict {
    /// From the proto enum's number.
    pub fn from_i32(value: i32) -> Self {
        match proto::Verdict::try_from(value) {
            Ok(proto::Verdict::Accepted) => Verdict::Accepted,
            Ok(proto::Verdict::WrongAnswer) => Verdict::WrongAnswer,
            _ => Verdict::None,
        }
    }

    /// The proto name, e.g. `VERDICT_WRONG_ANSWER`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::None => "VERDICT_UNSPECIFIED",
            Verdict::Accepted => "VERDICT_ACCEPTED",
            Verdict::WrongAnswer => "VERDICT_WRONG_ANSWER",
        }
    }
}

/// The execution was admitted and the module compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The module's lowercase hex sha256.
    pub module_sha256: String,
    /// True when the compiled module came from the server's cache.
    pub cache_hit: bool,
    /// The effective limits (tier defaults filled in).
    pub limits: Limits,
    /// The id of this execution's usage record.
    pub execution_id: String,
}

impl From<proto::Started> for Started {
    fn from(p: proto::Started) -> Self {
        Started {
            module_sha256: p.module_sha256,
            cache_hit: p.cache_hit,
            limits: p
                .limits
                .as_ref()
                .map(Limits::from_proto)
                .unwrap_or_default(),
            execution_id: p.execution_id,
        }
    }
}

/// How an execution ended, with what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    /// How it ended.
    pub outcome: Outcome,
    /// The guest's exit code; -1 when it did not exit.
    pub exit_code: i32,
    /// For [`Outcome::Trap`]: `unreachable`, `stack_overflow`, ….
    pub trap_kind: String,
    /// A human-readable explanation (empty on success).
    pub message: String,
    /// Fuel consumed (identical for identical requests).
    pub fuel_consumed: u64,
    /// Wall-clock time of the run.
    pub duration: Duration,
    /// Largest linear memory reached, in bytes.
    pub memory_peak_bytes: u64,
    /// Bytes of stdout delivered.
    pub stdout_bytes: u64,
    /// Bytes of stderr delivered.
    pub stderr_bytes: u64,
    /// True when output was cut at the output limit.
    pub output_truncated: bool,
    /// The comparison with the expected stdout, when one was given.
    pub verdict: Verdict,
    /// The signed receipt, when the run asked for one ([`crate::receipt`]
    /// verifies it).
    pub receipt: Option<proto::Receipt>,
}

impl Finished {
    /// True when the guest exited 0 and its stdout matched (or no stdout
    /// was expected).
    pub fn passed(&self) -> bool {
        self.outcome == Outcome::Success && self.verdict != Verdict::WrongAnswer
    }
}

impl From<proto::Finished> for Finished {
    fn from(p: proto::Finished) -> Self {
        Finished {
            outcome: Outcome::from_i32(p.outcome),
            exit_code: p.exit_code,
            trap_kind: p.trap_kind,
            message: p.message,
            fuel_consumed: p.fuel_consumed,
            duration: Duration::from_micros(p.duration_us),
            memory_peak_bytes: p.memory_peak_bytes,
            stdout_bytes: p.stdout_bytes,
            stderr_bytes: p.stderr_bytes,
            output_truncated: p.output_truncated,
            verdict: Verdict::from_i32(p.verdict),
            receipt: p.receipt,
        }
    }
}

/// One event of a running execution, in the order the server sent it:
/// `Started`, then `Stdout`/`Stderr` chunks as the guest writes them, then
/// the collected files' pieces, then one `Finished`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Admitted and compiled.
    Started(Started),
    /// A chunk of the guest's stdout.
    Stdout(Bytes),
    /// A chunk of the guest's stderr.
    Stderr(Bytes),
    /// One piece of a collected file: files come in path order, a file over
    /// 1 MiB as consecutive pieces with the same path ([`Output::files`]
    /// has them reassembled).
    File(File),
    /// The run ended.
    Finished(Finished),
}

/// A finished execution with its collected output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Everything the guest wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything the guest wrote to stderr.
    pub stderr: Vec<u8>,
    /// The collected files, whole, in path order.
    pub files: Vec<File>,
    /// How it ended.
    pub outcome: Outcome,
    /// The guest's exit code; -1 when it did not exit.
    pub exit_code: i32,
    /// For [`Outcome::Trap`]: the trap's kind.
    pub trap_kind: String,
    /// A human-readable explanation (empty on success).
    pub message: String,
    /// Fuel consumed.
    pub fuel_consumed: u64,
    /// Wall-clock time of the run.
    pub duration: Duration,
    /// Largest linear memory reached, in bytes.
    pub memory_peak_bytes: u64,
    /// True when output was cut at the output limit.
    pub output_truncated: bool,
    /// The comparison with the expected stdout.
    pub verdict: Verdict,
    /// What the server said when the run started.
    pub started: Started,
    /// The complete final event.
    pub finished: Finished,
    /// The rate-limit metadata of the response, if the tier is metered.
    pub rate_limit: Option<RateLimit>,
}

impl Output {
    pub(crate) fn new(
        started: Started,
        finished: Finished,
        stdout: Vec<u8>,
        stderr: Vec<u8>,
        files: Vec<File>,
        rate_limit: Option<RateLimit>,
    ) -> Self {
        Output {
            stdout,
            stderr,
            files,
            outcome: finished.outcome,
            exit_code: finished.exit_code,
            trap_kind: finished.trap_kind.clone(),
            message: finished.message.clone(),
            fuel_consumed: finished.fuel_consumed,
            duration: finished.duration,
            memory_peak_bytes: finished.memory_peak_bytes,
            output_truncated: finished.output_truncated,
            verdict: finished.verdict,
            started,
            finished,
            rate_limit,
        }
    }

    /// stdout as text (invalid UTF-8 replaced).
    pub fn stdout_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    /// stderr as text (invalid UTF-8 replaced).
    pub fn stderr_lossy(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// True when the guest exited 0 and its stdout matched (if expected).
    pub fn passed(&self) -> bool {
        self.finished.passed()
    }
}

/// One import of a stored module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleImport {
    /// Always `wasi_snapshot_preview1`.
    pub module: String,
    /// The imported name.
    pub name: String,
    /// `func`, `table`, `memory` or `global`.
    pub kind: String,
}

/// One export of a stored module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleExport {
    /// The exported name.
    pub name: String,
    /// `func`, `table`, `memory` or `global`.
    pub kind: String,
}

/// What the server knows of a stored module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Lowercase hex sha256.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// True when the account already had it before this call (an upload
    /// that was skipped or deduplicated).
    pub already_existed: bool,
    /// Its imports (empty in a plain listing: see
    /// [`Client::list_modules_detailed`](crate::Client::list_modules_detailed)).
    pub imports: Vec<ModuleImport>,
    /// Its exports (empty in a plain listing).
    pub exports: Vec<ModuleExport>,
    /// When the account first stored it.
    pub created_at: Option<SystemTime>,
    /// How many imports it has (`None` only in a listing, for a module
    /// stored before the server kept counts and not compiled since).
    pub import_count: Option<u32>,
    /// How many exports it has (as `import_count`).
    pub export_count: Option<u32>,
}

impl From<proto::ModuleInfo> for ModuleInfo {
    fn from(p: proto::ModuleInfo) -> Self {
        ModuleInfo {
            sha256: p.sha256,
            size: p.size,
            already_existed: p.already_existed,
            imports: p
                .imports
                .into_iter()
                .map(|i| ModuleImport {
                    module: i.module,
                    name: i.name,
                    kind: i.kind,
                })
                .collect(),
            exports: p
                .exports
                .into_iter()
                .map(|e| ModuleExport {
                    name: e.name,
                    kind: e.kind,
                })
                .collect(),
            created_at: p.created_at.and_then(|t| SystemTime::try_from(t).ok()),
            import_count: p.import_count,
            export_count: p.export_count,
        }
    }
}

/// Progress of a module upload, given to the progress callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadProgress {
    /// Bytes handed to the connection so far.
    pub sent: u64,
    /// The module's size.
    pub total: u64,
    /// True when the server already had the module and nothing is sent.
    pub skipped: bool,
}

/// A new API key: the secret (shown once) and its id.
#[derive(Clone, PartialEq, Eq)]
pub struct NewApiKey {
    /// The secret `wwz_<id>_<secret>`; the server never shows it again.
    pub key: String,
    /// The `<id>` part, for listing and revoking.
    pub key_id: String,
    /// When it expires (`None`: never). A key made with
    /// [`Client::create_my_key`](crate::Client::create_my_key) expires with
    /// the key that made it unless it asked for sooner.
    pub expires_at: Option<SystemTime>,
    /// The key that made it (self-service keys); revoking that one revokes
    /// this one too. Empty for keys an operator made.
    pub parent_key_id: String,
}

impl fmt::Debug for NewApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewApiKey")
            .field("key", &"<redacted>")
            .field("key_id", &self.key_id)
            .field("expires_at", &self.expires_at)
            .field("parent_key_id", &self.parent_key_id)
            .finish()
    }
}
