//! The one error type of the SDK, built in one place ([`Error::from_status`])
//! from a gRPC status and its google.rpc details.

use std::{fmt, io, path::PathBuf, time::Duration};

use tonic::{metadata::MetadataMap, Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, QuotaViolation, StatusExt};

/// Everything a WasmWiz call can fail with.
///
/// What the *guest* does (exit codes, traps, running out of fuel) is not an
/// error: it is reported in [`crate::Output`] / [`crate::Finished`]. An
/// `Error` means the request itself failed: the server refused it
/// ([`Error::Api`]), could not be reached ([`Error::Connect`]), or a local
/// problem occurred before anything was sent.
///
/// ```
/// # async fn demo(client: wasmwiz::Client) {
/// use wasmwiz::{Code, Error, Module};
///
/// match client.run(Module::sha256("00".repeat(32))).output().await {
///     Ok(output) => println!("{:?}", output.outcome),
///     Err(Error::Api(e)) if e.code() == Code::NotFound => eprintln!("upload it first"),
///     Err(e) if e.code() == Code::ResourceExhausted => {
///         eprintln!("rate limited; retry in {:?}", e.retry_after());
///     }
///     Err(e) => eprintln!("{e}"),
/// }
/// # }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server answered with a non-OK gRPC status.
    #[error("{0}")]
    Api(Box<ApiError>),
    /// The server could not be reached (connection refused, DNS, TLS).
    #[error("cannot connect to {url}: {reason}")]
    Connect {
        /// The server URL.
        url: String,
        /// The innermost cause, in words (e.g. "connection refused").
        reason: String,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The client configuration is invalid (bad URL, bad key, bad certificate).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A local file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The server answered something this client does not understand
    /// (e.g. a stream that ended without a `finished` event).
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Builds the error of a gRPC status, parsing its details. This is the
    /// one place statuses become SDK errors.
    pub fn from_status(status: Status) -> Self {
        Error::Api(Box::new(ApiError::from_status(status)))
    }

    /// The gRPC code: the server's for [`Error::Api`], `UNAVAILABLE` for
    /// [`Error::Connect`], `INVALID_ARGUMENT` for local configuration and
    /// file errors, `INTERNAL` for protocol errors.
    pub fn code(&self) -> Code {
        match self {
            Error::Api(e) => e.code(),
            Error::Connect { .. } => Code::Unavailable,
            Error::Config(_) | Error::Io { .. } => Code::InvalidArgument,
            Error::Protocol(_) => Code::Internal,
        }
    }

    /// The server's details, when the server answered.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Error::Api(e) => Some(e),
            _ => None,
        }
    }

    /// How long the server asked to wait before retrying (RetryInfo or the
    /// `retry-after` metadata), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        self.api().and_then(ApiError::retry_after)
    }

    /// True for errors worth retrying: UNAVAILABLE (including connection
    /// failures), and RESOURCE_EXHAUSTED when the server says when to come
    /// back (rate limits, quotas, concurrency). A full storage quota or key
    /// limit says no such thing: waiting would not free it.
    pub fn is_retryable(&self) -> bool {
        match self.code() {
            Code::Unavailable => true,
            Code::ResourceExhausted => self.retry_after().is_some(),
            _ => false,
        }
    }

    /// True when the server could not be reached at all (connection refused,
    /// reset, DNS or TLS failure), as opposed to a server that answered.
    pub fn is_connection_error(&self) -> bool {
        match self {
            Error::Connect { .. } => true,
            Error::Api(e) => e.is_transport(),
            _ => false,
        }
    }
}

impl From<Status> for Error {
    fn from(status: Status) -> Self {
        Error::from_status(status)
    }
}

/// A non-OK gRPC status from the server, with its parsed details.
pub struct ApiError {
    status: Status,
    details: ErrorDetails,
    retry_after: Option<Duration>,
    rate_limit: Option<RateLimit>,
}

impl ApiError {
    /// Parses a status: google.rpc details from `grpc-status-details-bin`,
    /// retry-after from RetryInfo or the `retry-after` metadata (seconds),
    /// and the `ratelimit-*` metadata.
    pub fn from_status(status: Status) -> Self {
        let details = status.get_error_details();
        let retry_after = details
            .retry_info()
            .and_then(|r| r.retry_delay)
            .or_else(|| {
                status
                    .metadata()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(Duration::from_secs_f64)
            });
        let rate_limit = RateLimit::from_metadata(status.metadata());
        ApiError {
            status,
            details,
            retry_after,
            rate_limit,
        }
    }

    /// The gRPC status code.
    pub fn code(&self) -> Code {
        self.status.code()
    }

    /// The server's message.
    pub fn message(&self) -> &str {
        self.status.message()
    }

    /// The raw status (metadata included).
    pub fn status(&self) -> &Status {
        &self.status
    }

    /// Every parsed google.rpc detail.
    pub fn details(&self) -> &ErrorDetails {
        &self.details
    }

    /// How long to wait before retrying, when the server said.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// QuotaFailure violations (RESOURCE_EXHAUSTED): which allowance ran out.
    pub fn quota_violations(&self) -> &[QuotaViolation] {
        self.details
            .quota_failure()
            .map(|q| q.violations.as_slice())
            .unwrap_or_default()
    }

    /// The numbers of a refused limit (the ErrorInfo `LIMIT_EXCEEDED`
    /// beside a BadRequest), so a client can word it in its own terms.
    pub fn limit_exceeded(&self) -> Option<LimitExceeded> {
        let info = self.details.error_info()?;
        if info.reason != "LIMIT_EXCEEDED" {
            return None;
        }
        let number = |key: &str| info.metadata.get(key)?.parse::<u64>().ok();
        Some(LimitExceeded {
            field: info.metadata.get("field")?.clone(),
            requested: number("requested")?,
            maximum: number("maximum")?,
            unit: info.metadata.get("unit").cloned().unwrap_or_default(),
            tier: info.metadata.get("tier").cloned().unwrap_or_default(),
        })
    }

    /// BadRequest violations (INVALID_ARGUMENT): which field, and why.
    pub fn field_violations(&self) -> &[FieldViolation] {
        self.details
            .bad_request()
            .map(|b| b.field_violations.as_slice())
            .unwrap_or_default()
    }

    /// ResourceInfo (NOT_FOUND): `(resource_type, resource_name)`.
    pub fn resource(&self) -> Option<(&str, &str)> {
        self.details
            .resource_info()
            .map(|r| (r.resource_type.as_str(), r.resource_name.as_str()))
    }

    /// ErrorInfo reason (e.g. `ADMIN_KEY_REQUIRED` for PERMISSION_DENIED).
    pub fn reason(&self) -> Option<&str> {
        self.details.error_info().map(|e| e.reason.as_str())
    }

    /// The `ratelimit-*` metadata that came with the error, if any.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit
    }

    /// True when the status was made by the client's transport (the server
    /// was not reached or the connection broke), not sent by the server.
    pub fn is_transport(&self) -> bool {
        use std::error::Error as _;
        self.code() == Code::Unavailable
            && self.details.retry_info().is_none()
            && self.status.source().is_some()
    }

    /// The innermost cause of a transport failure in words, e.g.
    /// "Connection refused (os error 111)".
    pub fn transport_reason(&self) -> Option<String> {
        use std::error::Error as _;
        let mut source = self.status.source()?;
        while let Some(next) = source.source() {
            source = next;
        }
        Some(source.to_string())
    }
}

/// A request value above its tier's maximum, as the server's ErrorInfo
/// metadata gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitExceeded {
    /// The request field, e.g. `limits.memory_bytes` or `cases[3].stdin`.
    pub field: String,
    /// The value asked for, in `unit`.
    pub requested: u64,
    /// The tier's maximum, in `unit`.
    pub maximum: u64,
    /// `bytes`, `fuel`, `ms` or `count`.
    pub unit: String,
    /// The caller's tier.
    pub tier: String,
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("code", &self.code())
            .field("message", &self.message())
            .field("retry_after", &self.retry_after)
            .field("details", &self.details)
            .finish()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", code_name(self.code()))?;
        if !self.message().is_empty() {
            write!(f, ": {}", self.message())?;
        }
        for v in self.field_violations() {
            write!(f, "; {}: {}", v.field, v.description)?;
        }
        for v in self.quota_violations() {
            write!(f, "; {}: {}", v.subject, v.description)?;
        }
        if let Some(wait) = self.retry_after {
            write!(f, "; retry after {}", crate::util::format_duration(wait))?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.status)
    }
}

/// The gRPC name of a code, e.g. `RESOURCE_EXHAUSTED`.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The `ratelimit-limit`, `ratelimit-remaining` and `ratelimit-reset`
/// metadata of a response (absent for the `unlimited` tier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Executions allowed per window.
    pub limit: u64,
    /// Executions left in this window.
    pub remaining: u64,
    /// Time until the window resets.
    pub reset: Duration,
}

impl RateLimit {
    /// Reads the `ratelimit-*` metadata, when all three are present.
    pub fn from_metadata(metadata: &MetadataMap) -> Option<Self> {
        let get = |name: &str| -> Option<u64> {
            metadata
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse().ok())
        };
        Some(RateLimit {
            limit: get("ratelimit-limit")?,
            remaining: get("ratelimit-remaining")?,
            reset: Duration::from_secs(get("ratelimit-reset")?),
        })
    }
}

/// Walks an error's sources to the innermost one, in words.
pub(crate) fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}
