//! AccountService: the caller's own account, usage and keys.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use wasmwiz_proto::v1::{self, account_service_server::AccountService};

use super::{errors::ApiError, modules::proto_timestamp, AppState};
use crate::{
    audit::{self, Via},
    config::Tier,
    store::{KeyRecord, KeyRefused},
};

pub struct AccountApi {
    pub state: Arc<AppState>,
}

pub fn tier_limits(name: &str, tier: &Tier) -> v1::TierLimits {
    v1::TierLimits {
        tier: name.to_string(),
        per_minute: if tier.unmetered { 0 } else { tier.per_minute },
        per_day: if tier.unmetered { 0 } else { tier.per_day },
        max_module_bytes: tier.max_module_bytes,
        max_stdin_bytes: tier.max_stdin_bytes,
        max_memory_bytes: tier.max_memory_bytes,
        max_fuel: tier.max_fuel,
        max_timeout_ms: tier.max_timeout_ms,
        max_output_bytes: tier.max_output_bytes,
        max_concurrent: tier.max_concurrent,
        unmetered: tier.unmetered,
        max_stored_bytes: tier.max_stored_bytes,
        max_stored_modules: tier.max_stored_modules,
        uploads_per_minute: if tier.unmetered {
            0
        } else {
            tier.uploads_per_minute
        },
        max_concurrent_uploads: tier.max_concurrent_uploads,
        upload_idle_timeout_ms: tier.upload_idle_timeout_ms,
        max_args: tier.max_args,
        max_args_bytes: tier.max_args_bytes,
        max_api_keys: tier.max_api_keys,
        max_fs_bytes: tier.max_fs_bytes,
        max_fs_entries: tier.max_fs_entries,
    }
}

pub fn key_info(key: &KeyRecord) -> v1::ApiKeyInfo {
    v1::ApiKeyInfo {
        key_id: key.key_id.clone(),
        email: key.email.clone(),
        tier: key.tier.clone(),
        admin: key.admin,
        label: key.label.clone(),
        created_at: Some(proto_timestamp(key.created_at)),
        expires_at: key.expires_at.map(proto_timestamp),
        revoked_at: key.revoked_at.map(proto_timestamp),
        parent_key_id: key.parent_key_id.clone().unwrap_or_default(),
    }
}

/// A child key's expiry: never after its parent's. Without a requested
/// expiry the child expires with its parent; a later one is refused rather
/// than silently shortened, so the caller learns the real lifetime.
pub fn child_expiry(requested: Option<i64>, parent: Option<i64>) -> Result<Option<i64>, ApiError> {
    match (requested, parent) {
        (None, parent) => Ok(parent),
        (Some(requested), Some(parent)) if requested > parent => Err(ApiError::invalid(
            "expires_at",
            format!(
                "must not be after the expiry of the key making this call ({})",
                chrono::DateTime::from_timestamp_millis(parent)
                    .map_or_else(|| parent.to_string(), |t| t.to_rfc3339())
            ),
        )),
        (Some(requested), _) => Ok(Some(requested)),
    }
}

/// Converts an optional proto timestamp to unix ms, refusing the past.
pub fn expiry_ms(expires_at: Option<prost_types::Timestamp>) -> Result<Option<i64>, ApiError> {
    let Some(ts) = expires_at else {
        return Ok(None);
    };
    let ms = ts.seconds.saturating_mul(1000) + i64::from(ts.nanos / 1_000_000);
    if ms <= crate::store::now_ms() {
        return Err(ApiError::invalid("expires_at", "must be in the future"));
    }
    Ok(Some(ms))
}

/// Usage summary for the last `days` UTC days (zeros filled in).
pub async fn usage(
    state: &AppState,
    user_id: Option<&str>,
    days: u32,
) -> Result<v1::GetUsageResponse, ApiError> {
    let days = match days {
        0 => 30,
        n => n.min(366),
    };
    let today = chrono::Utc::now().date_naive();
    let first = today - chrono::Duration::days(i64::from(days) - 1);
    let summary = state
        .store
        .usage_summary(user_id, &first.format("%Y-%m-%d").to_string())
        .await?;
    let (cache_hits, fuel_saved) = state
        .store
        .usage_cache_hits(user_id, &first.format("%Y-%m-%d").to_string())
        .await?;
    let mut daily = Vec::with_capacity(days as usize);
    for offset in 0..days {
        let day = (first + chrono::Duration::days(i64::from(offset)))
            .format("%Y-%m-%d")
            .to_string();
        let found = summary.daily.iter().find(|d| d.day == day);
        daily.push(v1::DailyUsage {
            executions: found.map_or(0, |d| d.executions),
            fuel_consumed: found.map_or(0, |d| d.fuel_consumed),
            duration_us: found.map_or(0, |d| d.duration_us),
            date: day,
        });
    }
    Ok(v1::GetUsageResponse {
        executions: summary.executions,
        fuel_consumed: summary.fuel_consumed,
        duration_us: summary.duration_us,
        daily,
        by_outcome: summary.by_outcome.into_iter().collect(),
        cache_hits,
        fuel_saved,
    })
}

#[tonic::async_trait]
impl AccountService for AccountApi {
    async fn rotate_webhook_secret(
        &self,
        request: Request<v1::RotateWebhookSecretRequest>,
    ) -> Result<Response<v1::RotateWebhookSecretResponse>, Status> {
        let caller = self.state.caller(&request).await?;
        let secret = crate::jobs::webhook_secret::rotate(&self.state, &caller.user_id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(v1::RotateWebhookSecretResponse { secret }))
    }

    async fn who_am_i(
        &self,
        request: Request<v1::WhoAmIRequest>,
    ) -> Result<Response<v1::WhoAmIResponse>, Status> {
        let caller = self.state.caller(&request).await?;
        let tier = self.state.tier(&caller)?;
        let remaining_this_minute = self
            .state
            .limits
            .peek(&caller.user_id, &caller.tier, tier)
            .map_or(0, |h| h.remaining);
        let remaining_today = self
            .state
            .limits
            .remaining_today(&caller.user_id, tier)
            .await
            .map_err(ApiError::from)?;
        let stored = self
            .state
            .store
            .storage_usage(&caller.user_id)
            .await
            .map_err(ApiError::from)?;
        let key = self
            .state
            .store
            .key(&caller.key_id)
            .await
            .map_err(ApiError::from)?;
        let body = v1::WhoAmIResponse {
            email: caller.email.clone(),
            tier: caller.tier.clone(),
            limits: Some(tier_limits(&caller.tier, tier)),
            remaining_this_minute,
            remaining_today,
            key_id: caller.key_id.clone(),
            admin: caller.admin,
            stored_bytes: stored.bytes,
            stored_modules: stored.modules,
            key_expires_at: key.and_then(|k| k.expires_at).map(proto_timestamp),
        };
        Ok(self.state.respond(&caller, body))
    }

    async fn get_usage(
        &self,
        request: Request<v1::GetUsageRequest>,
    ) -> Result<Response<v1::GetUsageResponse>, Status> {
        let caller = self.state.caller(&request).await?;
        let body = usage(&self.state, Some(&caller.user_id), request.get_ref().days).await?;
        Ok(self.state.respond(&caller, body))
    }

    async fn create_my_api_key(
        &self,
        request: Request<v1::CreateMyApiKeyRequest>,
    ) -> Result<Response<v1::CreateMyApiKeyResponse>, Status> {
        let caller = self.state.caller(&request).await?;
        let tier = self.state.tier(&caller)?;
        let req = request.into_inner();
        let parent = self
            .state
            .store
            .key(&caller.key_id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::Unauthenticated)?;
        let expires_at = child_expiry(expiry_ms(req.expires_at)?, parent.expires_at)?;
        let minted = self
            .state
            .auth
            .mint_child(&caller, &req.label, expires_at, tier.max_api_keys)
            .await
            .map_err(ApiError::from)?
            .map_err(|refused| match refused {
                KeyRefused::TooMany(too_many) => {
                    audit::limit_refused(&caller, "api_keys");
                    ApiError::TooManyKeys(too_many)
                }
                KeyRefused::ParentNotLive => ApiError::Unauthenticated,
            })?;
        audit::key_created(
            &caller,
            &minted.key_id,
            &caller.user_id,
            false,
            Via::SelfService,
        );
        Ok(self.state.respond(
            &caller,
            v1::CreateMyApiKeyResponse {
                key: minted.key,
                key_id: minted.key_id,
                expires_at: expires_at.map(proto_timestamp),
                parent_key_id: caller.key_id.clone(),
            },
        ))
    }

    async fn list_my_api_keys(
        &self,
        request: Request<v1::ListMyApiKeysRequest>,
    ) -> Result<Response<v1::ListMyApiKeysResponse>, Status> {
        let caller = self.state.caller(&request).await?;
        let keys = self
            .state
            .store
            .list_keys(Some(&caller.user_id))
            .await
            .map_err(ApiError::from)?;
        Ok(self.state.respond(
            &caller,
            v1::ListMyApiKeysResponse {
                keys: keys.iter().map(key_info).collect(),
            },
        ))
    }

    async fn revoke_my_api_key(
        &self,
        request: Request<v1::RevokeMyApiKeyRequest>,
    ) -> Result<Response<v1::RevokeMyApiKeyResponse>, Status> {
        let caller = self.state.caller(&request).await?;
        let key_id = request.get_ref().key_id.clone();
        let revoked = self
            .state
            .revoke_key(&key_id, Some(&caller.user_id))
            .await?;
        audit::key_revoked(&caller, &key_id, revoked as u64, Via::SelfService);
        Ok(self.state.respond(&caller, v1::RevokeMyApiKeyResponse {}))
    }
}

impl AppState {
    /// Revokes key `key_id` and every key created below it (only among
    /// `owner`'s keys when given), and drops them from the auth cache at
    /// once. Returns how many were revoked; an unknown key is NOT_FOUND.
    pub(super) async fn revoke_key(
        &self,
        key_id: &str,
        owner: Option<&str>,
    ) -> Result<usize, ApiError> {
        let revoked = self.store.revoke_key(key_id, owner).await?;
        if revoked.is_empty() {
            return Err(ApiError::NotFound {
                resource_type: "api key",
                name: key_id.to_string(),
            });
        }
        for id in &revoked {
            self.auth.forget(id).await;
        }
        Ok(revoked.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_child_expires_with_its_parent_unless_it_asks_for_sooner() {
        assert_eq!(child_expiry(None, Some(5_000)).unwrap(), Some(5_000));
        assert_eq!(child_expiry(Some(4_000), Some(5_000)).unwrap(), Some(4_000));
        assert!(child_expiry(Some(6_000), Some(5_000)).is_err());
        assert_eq!(child_expiry(Some(6_000), None).unwrap(), Some(6_000));
        assert_eq!(child_expiry(None, None).unwrap(), None);
    }
}
