//! The one table from domain errors to gRPC statuses with google.rpc
//! details (DESIGN.md, error table). Unexpected errors become INTERNAL
//! without leaking internals (they are logged instead).

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    engine::{Busy, ModuleError},
    limits::{LimitError, RateHeaders, UploadLimitError},
    store::{OverQuota, TooManyKeys},
};

/// Bytes in the units a person reads (exact below 1 KiB).
fn human_bytes(bytes: u64) -> String {
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
    #[error("{field} of {requested} is above this tier's maximum of {max}")]
    AboveTierMax {
        field: String,
        requested: u64,
        max: u64,
    },
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
    #[error("no upload message arrived for {} s; the upload was abandoned (send chunks without long pauses)", .timeout_ms.div_ceil(1000))]
    UploadIdle { timeout_ms: u64 },
    #[error("this account already has {} live API keys, the most its tier allows ({}); revoke one (RevokeMyApiKey) first", .0.live, .0.max)]
    TooManyKeys(TooManyKeys),
    #[error("the server is shutting down; retry on another replica")]
    Draining,
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
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
            ApiError::AboveTierMax { field, max, .. } => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request_violation(field, format!("the maximum is {max}")),
            ),
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
            ApiError::UploadIdle { .. } => Status::deadline_exceeded(message),
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
