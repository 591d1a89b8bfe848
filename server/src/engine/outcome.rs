//! What an execution reports when it ends: the outcome taxonomy of the API
//! (`Outcome` and `Finished`, see README "API in one minute"), independent
//! of protobuf.

use std::time::Duration;

/// How an execution ended (mirrors `wasmwiz.v1.Outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Exit code 0.
    Success,
    /// `proc_exit` with a nonzero code.
    ExitNonzero,
    /// The guest trapped; see [`Report::trap_kind`].
    Trap,
    /// The fuel budget ran out.
    OutOfFuel,
    /// The wall-clock timeout passed.
    Timeout,
    /// Memory, tables or instances exceeded their limits.
    MemoryLimit,
    /// More output than `max_output_bytes`.
    OutputLimit,
    /// The caller went away or the server shut down.
    Cancelled,
}

impl Outcome {
    /// The proto enum's name, used in usage records and metrics labels.
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
        }
    }
}

/// The measured result of one execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub outcome: Outcome,
    /// The guest's exit code, or -1 when it did not exit.
    pub exit_code: i32,
    /// For [`Outcome::Trap`]: snake_case trap name (`unreachable`, `host_error`, ...).
    pub trap_kind: String,
    /// Human-readable explanation; empty on success.
    pub message: String,
    pub fuel_consumed: u64,
    pub duration: Duration,
    pub memory_peak_bytes: u64,
    pub stdout_bytes: u64,
    pub stderr_bytes: u64,
    pub output_truncated: bool,
    /// Bytes of stdin the guest was given (streamed stdin: received).
    pub stdin_bytes: u64,
    /// Collected files, in path order (empty without a filesystem).
    pub files: Vec<super::vfs::CollectedFile>,
}

/// snake_case name of a wasmi trap code, as reported in `Finished.trap_kind`.
pub fn trap_kind_name(code: wasmi::TrapCode) -> &'static str {
    use wasmi::TrapCode as T;
    match code {
        T::UnreachableCodeReached => "unreachable",
        T::MemoryOutOfBounds => "memory_out_of_bounds",
        T::TableOutOfBounds => "table_out_of_bounds",
        T::IndirectCallToNull => "indirect_call_to_null",
        T::IntegerDivisionByZero => "integer_divide_by_zero",
        T::IntegerOverflow => "integer_overflow",
        T::BadConversionToInteger => "bad_conversion_to_integer",
        T::StackOverflow => "stack_overflow",
        T::BadSignature => "bad_signature",
        T::OutOfFuel => "out_of_fuel",
        T::GrowthOperationLimited => "growth_operation_limited",
        _ => "unknown",
    }
}
