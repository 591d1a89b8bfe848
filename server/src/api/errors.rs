//! The one table from domain errors to gRPC statuses with google.rpc
//! details (the error table in README, "API in one minute"). Unexpected errors become INTERNAL
//! without leaking internals (they are logged instead).

use std::{collections::HashMap, time::Duration};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    engine::{Busy, ModuleError},
    limits::{LimitError, RateHeaders, StdinWritesLimited, UploadLimitError},
    store::{OverQuota, TooManyKeys},
};

/// Bytes in the units a person reads (exact below 1 KiB).
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (size, unit) in UNITS {
        if bytes >= size {
            let value = bytes as f64 / size as f64;
            return if bytes.is_multiple_of(size) {
                format!("{} {unit}", bytes / size)
            } else {
                format!("{value:.1} {unit}")
            };
        }
    }
    format!("{bytes} bytes")
}

/// What a tier limit counts, for the message and ErrorInfo's `unit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Bytes,
    Fuel,
    Ms,
    Count,
}

impl Unit {
    /// The name clients see in ErrorInfo metadata.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Bytes => "bytes",
            Unit::Fuel => "fuel",
            Unit::Ms => "ms",
            Unit::Count => "count",
        }
    }

    /// `value` with its unit, plus the human form when it reads differently
    /// ("2147483648 bytes (2 GiB)"): the exact figure stays for scripts.
    fn amount(self, value: u64) -> String {
        match self {
            Unit::Bytes if value >= 1 << 10 => format!("{value} bytes ({})", human_bytes(value)),
            Unit::Bytes => format!("{value} bytes"),
            Unit::Fuel => format!("{value} fuel"),
            Unit::Ms => format!("{value} ms"),
            Unit::Count => format!("{value} items"),
        }
    }
}

/// The reason of the ErrorInfo that sits beside a limit's BadRequest.
pub const LIMIT_EXCEEDED: &str = "LIMIT_EXCEEDED";
/// The reason of the ErrorInfo of an upload abandoned for idling, so
/// clients tell it from their own deadline.
pub const UPLOAD_IDLE: &str = "UPLOAD_IDLE";
/// The domain of this service's ErrorInfo reasons.
pub const ERROR_DOMAIN: &str = "wasmwiz";

/// ErrorInfo metadata of a limit, so clients can word it in their own terms
/// (the flag or option the user set, human units).
pub fn limit_metadata(
    field: &str,
    requested: u64,
    maximum: u64,
    unit: Unit,
    tier: &str,
) -> HashMap<String, String> {
    HashMap::from([
        ("field".to_string(), field.to_string()),
        ("requested".to_string(), requested.to_string()),
        ("maximum".to_string(), maximum.to_string()),
        ("unit".to_string(), unit.as_str().to_string()),
        ("tier".to_string(), tier.to_string()),
    ])
}

/// A request past one of its tier's maxima.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AboveTierMax {
    /// The API field, as the BadRequest names it (`limits.memory_bytes`).
    pub field: String,
    pub requested: u64,
    pub max: u64,
    pub unit: Unit,
    pub tier: String,
    /// What is counted when the field alone does not say it.
    pub counting: Option<&'static str>,
}

impl std::fmt::Display for AboveTierMax {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} is above the {} tier's maximum of {}",
            self.field,
            self.unit.amount(self.requested),
            self.tier,
            self.unit.amount(self.max)
        )?;
        if let Some(counting) = self.counting {
            write!(f, " for {counting}")?;
        }
        Ok(())
    }
}

impl AboveTierMax {
    fn status(&self, message: String) -> Status {
        let description = match self.counting {
            Some(counting) => format!(
                "{counting} may hold at most {}; this request has {}",
                self.unit.amount(self.max),
                self.requested
            ),
            None => format!(
                "the maximum is {}; this request has {}",
                self.max, self.requested
            ),
        };
        let mut details = ErrorDetails::with_bad_request_violation(self.field.clone(), description);
        details.set_error_info(
            LIMIT_EXCEEDED,
            ERROR_DOMAIN,
            limit_metadata(&self.field, self.requested, self.max, self.unit, &self.tier),
        );
        Status::with_error_details(Code::InvalidArgument, message, details)
    }
}

/// An input tree (`fs`) past its byte or entry limit. Not an
/// [`AboveTierMax`]: the byte limit in force may be the request's own
/// `limits.fs_bytes`, below the tier's maximum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeTooBig {
    pub requested: u64,
    pub maximum: u64,
    /// Bytes of file contents, or entries (a count).
    pub unit: Unit,
    pub tier: String,
}

impl std::fmt::Display for TreeTooBig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.unit {
            Unit::Count => write!(
                f,
                "the input tree (fs) has {} entries, implicit parent directories included; \
                 the {} tier allows {}",
                self.requested, self.tier, self.maximum
            ),
            _ => write!(
                f,
                "the input files (fs) hold {}; the limit is {} (limits.fs_bytes); send \
                 fewer or smaller files, or raise limits.fs_bytes up to the {} tier's maximum",
                self.unit.amount(self.requested),
                self.unit.amount(self.maximum),
                self.tier
            ),
        }
    }
}

impl TreeTooBig {
    fn status(&self, message: String) -> Status {
        let mut details = ErrorDetails::with_bad_request_violation("fs", message.clone());
        details.set_error_info(
            LIMIT_EXCEEDED,
            ERROR_DOMAIN,
            limit_metadata("fs", self.requested, self.maximum, self.unit, &self.tier),
        );
        Status::with_error_details(Code::InvalidArgument, message, details)
    }
}

/// "storing 3 MiB more would pass this account's storage quota of …".
fn over_quota_message(over: &OverQuota) -> String {
    let limit = |max: u64, unit: &dyn Fn(u64) -> String| {
        if max == 0 {
            "no limit".to_string()
        } else {
            unit(max)
        }
    };
    format!(
        "storing this module ({}) would pass this account's storage quota: {} of {} and {} of {} \
         modules are used; delete modules (DeleteModule) to make room",
        human_bytes(over.adding_bytes),
        human_bytes(over.used.bytes),
        limit(over.quota.max_bytes, &human_bytes),
        over.used.modules,
        limit(over.quota.max_modules, &|n| n.to_string()),
    )
}

/// Everything a handler can refuse a request for.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{description}")]
    InvalidArgument { field: String, description: String },
    #[error("{0}")]
    InvalidModule(#[from] ModuleError),
    #[error("{0}")]
    AboveTierMax(Box<AboveTierMax>),
    #[error("{0}")]
    TreeTooBig(Box<TreeTooBig>),
    #[error("{resource_type} {name} not found")]
    NotFound {
        resource_type: &'static str,
        name: String,
    },
    #[error("{0} already exists")]
    AlreadyExists(String),
    #[error("missing or invalid API key")]
    Unauthenticated,
    #[error("{0}")]
    PermissionDenied(&'static str),
    #[error("{0}")]
    Limited(#[from] LimitError),
    #[error("{0}")]
    Busy(#[from] Busy),
    #[error("{}", over_quota_message(.0))]
    StorageQuota(OverQuota),
    #[error("{0}")]
    UploadLimited(#[from] UploadLimitError),
    #[error("{0}")]
    StdinWrites(#[from] StdinWritesLimited),
    #[error("no upload message arrived for {} s; the upload was abandoned (send chunks without long pauses)", .timeout_ms.div_ceil(1000))]
    UploadIdle { timeout_ms: u64 },
    #[error("this account already has {} live API keys, the most its tier allows ({}); revoke one (RevokeMyApiKey) first", .0.live, .0.max)]
    TooManyKeys(TooManyKeys),
    #[error("the server is shutting down; retry on another replica")]
    Draining,
    #[error("rate limit of {limit} result cache lookups per minute exceeded; retry in {} s", retry_after.as_secs())]
    CacheLookups { limit: u64, retry_after: Duration },
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl From<AboveTierMax> for ApiError {
    fn from(above: AboveTierMax) -> Self {
        ApiError::AboveTierMax(Box::new(above))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        ApiError::Internal(error.into())
    }
}

impl ApiError {
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Self {
        ApiError::InvalidArgument {
            field: field.into(),
            description: description.into(),
        }
    }
}

/// Adds the `ratelimit-*` headers to response metadata.
pub fn insert_rate_headers(metadata: &mut tonic::metadata::MetadataMap, headers: &RateHeaders) {
    let pairs = [
        ("ratelimit-limit", headers.limit),
        ("ratelimit-remaining", headers.remaining),
        ("ratelimit-reset", headers.reset_secs),
    ];
    for (name, value) in pairs {
        metadata.insert(
            name,
            value
                .to_string()
                .parse()
                .expect("digits are valid metadata"),
        );
    }
}

fn retry_status(
    code: Code,
    message: String,
    details: &mut ErrorDetails,
    retry_after: Duration,
) -> Status {
    details.set_retry_info(Some(retry_after));
    let mut status = Status::with_error_details(code, message, details.clone());
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    status.metadata_mut().insert(
        "retry-after",
        secs.max(1).to_string().parse().expect("digits"),
    );
    status
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let message = error.to_string();
        match error {
            ApiError::InvalidArgument { field, description } => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request_violation(field, description),
            ),
            ApiError::InvalidModule(e) => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request_violation("module", e.to_string()),
            ),
            ApiError::AboveTierMax(above) => above.status(message),
            ApiError::TreeTooBig(big) => big.status(message),
            ApiError::NotFound {
                resource_type,
                name,
            } => Status::with_error_details(
                Code::NotFound,
                message,
                ErrorDetails::with_resource_info(
                    resource_type,
                    name,
                    "",
                    "not found for this account",
                ),
            ),
            ApiError::AlreadyExists(_) => Status::new(Code::AlreadyExists, message),
            ApiError::Unauthenticated => Status::unauthenticated(message),
            ApiError::PermissionDenied(_) => Status::with_error_details(
                Code::PermissionDenied,
                message,
                ErrorDetails::with_error_info("ADMIN_KEY_REQUIRED", "wasmwiz", []),
            ),
            ApiError::Limited(limit) => {
                let (subject, retry_after, headers) = match &limit {
                    LimitError::PerMinute {
                        retry_after,
                        headers,
                        ..
                    } => ("executions per minute", *retry_after, Some(*headers)),
                    LimitError::Daily {
                        retry_after,
                        headers,
                        ..
                    } => ("executions per day", *retry_after, *headers),
                    LimitError::Concurrency { headers, .. } => {
                        ("concurrent executions", Duration::from_secs(1), *headers)
                    }
                    LimitError::DailyTooSmallForBatch { retry_after, .. } => {
                        ("executions per day", *retry_after, None)
                    }
                };
                let mut details =
                    ErrorDetails::with_quota_failure_violation(subject, limit.to_string());
                let mut status =
                    retry_status(Code::ResourceExhausted, message, &mut details, retry_after);
                if let Some(headers) = headers {
                    insert_rate_headers(status.metadata_mut(), &headers);
                }
                status
            }
            ApiError::StorageQuota(over) => {
                let subject = if over.quota.max_modules > 0
                    && over.used.modules + 1 > over.quota.max_modules
                {
                    "stored modules"
                } else {
                    "stored module bytes"
                };
                Status::with_error_details(
                    Code::ResourceExhausted,
                    message.clone(),
                    ErrorDetails::with_quota_failure_violation(subject, message),
                )
            }
            ApiError::UploadLimited(limit) => {
                let (subject, retry_after) = match &limit {
                    UploadLimitError::PerMinute { retry_after, .. } => {
                        ("uploads per minute", *retry_after)
                    }
                    UploadLimitError::Concurrency { .. } => {
                        ("concurrent uploads", Duration::from_secs(1))
                    }
                };
                let mut details =
                    ErrorDetails::with_quota_failure_violation(subject, limit.to_string());
                retry_status(Code::ResourceExhausted, message, &mut details, retry_after)
            }
            ApiError::StdinWrites(limited) => {
                let mut details = ErrorDetails::with_quota_failure_violation(
                    "stdin writes per second",
                    message.clone(),
                );
                retry_status(
                    Code::ResourceExhausted,
                    message,
                    &mut details,
                    limited.retry_after,
                )
            }
            ApiError::CacheLookups { retry_after, .. } => {
                let mut details = ErrorDetails::with_quota_failure_violation(
                    "result cache lookups per minute",
                    message.clone(),
                );
                retry_status(Code::ResourceExhausted, message, &mut details, retry_after)
            }
            ApiError::UploadIdle { timeout_ms } => Status::with_error_details(
                Code::DeadlineExceeded,
                message,
                ErrorDetails::with_error_info(
                    UPLOAD_IDLE,
                    ERROR_DOMAIN,
                    [("timeout_ms".to_string(), timeout_ms.to_string())],
                ),
            ),
            ApiError::TooManyKeys(_) => Status::with_error_details(
                Code::ResourceExhausted,
                message.clone(),
                ErrorDetails::with_quota_failure_violation("api keys", message),
            ),
            ApiError::Busy(_) | ApiError::Draining => retry_status(
                Code::Unavailable,
                message,
                &mut ErrorDetails::new(),
                Duration::from_secs(1),
            ),
            ApiError::Internal(error) => {
                tracing::error!(error = %format!("{error:#}"), "internal error");
                Status::internal("internal error")
            }
        }
    }
}
