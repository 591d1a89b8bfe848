//! The upload budget: uploads (`UploadModule`, `PutModule`, runs with
//! `keep_module`) have a per-minute allowance of their own per tier, apart
//! from executions, so a pipeline that uploads then runs does not spend its
//! runs on uploads (and a flood of uploads, which write to the database, is
//! stopped without touching the execution allowance); and one user has at
//! most `max_concurrent_uploads` in progress, so idle streams cannot pile
//! up. They go through the same backends as executions (under `upload:`
//! keys in Redis), so with Redis both are shared by every replica and if it
//! fails each replica limits locally at its fair share.

use std::time::Duration;

use super::{
    backend::{Budget, Minute, Slot},
    retry_secs, Limits,
};
use crate::config::Tier;

/// Why an upload was refused before any byte was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadLimitError {
    #[error("rate limit of {limit} uploads per minute exceeded; retry in {} s", retry_after.as_secs())]
    PerMinute { limit: u64, retry_after: Duration },
    #[error("at most {limit} uploads of this user may be in progress at once")]
    Concurrency { limit: u32 },
}

/// An admitted upload; dropping it frees the user's upload slot.
pub struct UploadPermit {
    _slot: Slot,
}

/// How long a shared upload slot lives if its replica dies holding it.
const UPLOAD_LEASE: Duration = Duration::from_secs(600);

impl Limits {
    /// Admits one upload of `user_id` or says why not. The slot is taken
    /// first, so an upload refused for concurrency spends no allowance
    /// (and a taken cell is never given back).
    pub async fn admit_upload(
        &self,
        user_id: &str,
        _tier_name: &str,
        tier: &Tier,
    ) -> Result<UploadPermit, UploadLimitError> {
        let slot = self
            .backend
            .take_slot(
                Budget::Uploads,
                user_id,
                tier.max_concurrent_uploads,
                UPLOAD_LEASE,
                false,
            )
            .await
            .ok_or(UploadLimitError::Concurrency {
                limit: tier.max_concurrent_uploads,
            })?;
        if !tier.unmetered {
            let minute = self
                .backend
                .take_minute(Budget::Uploads, user_id, tier.uploads_per_minute)
                .await;
            if let Minute::Refused { retry_after } = minute {
                return Err(UploadLimitError::PerMinute {
                    limit: tier.uploads_per_minute,
                    retry_after: retry_secs(retry_after),
                });
            }
        }
        Ok(UploadPermit { _slot: slot })
    }
}
