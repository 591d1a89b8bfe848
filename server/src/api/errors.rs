//! The one table from domain errors to gRPC statuses with google.rpc
//! details (DESIGN.md, error table). Unexpected errors become INTERNAL
//! without leaking internals (they are logged instead).

use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    engine::{Busy, ModuleError},
    limits::{LimitError, RateHeaders},
};

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
