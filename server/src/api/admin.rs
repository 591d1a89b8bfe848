//! AdminService: operator calls, admin keys only.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use wasmwiz_proto::v1::{self, admin_service_server::AdminService};

use super::{
    account::{expiry_ms, key_info, usage},
    errors::ApiError,
    modules::proto_timestamp,
    AppState,
};
use crate::{
    audit::{self, Via},
    auth::Caller,
    store::UserRow,
};

pub struct AdminApi {
    pub state: Arc<AppState>,
}

fn user_proto(user: &UserRow) -> v1::User {
    v1::User {
        email: user.email.clone(),
        tier: user.tier.clone(),
        created_at: Some(proto_timestamp(user.created_at)),
    }
}

impl AdminApi {
    /// The caller, when its key is an admin key; a refusal of `action`
    /// is audited.
    async fn admin<T>(&self, request: &Request<T>, action: &str) -> Result<Caller, ApiError> {
        let caller = self.state.caller(request).await?;
        self.state
            .require_admin(&caller)
            .inspect_err(|_| audit::permission_denied(&caller, action))?;
        Ok(caller)
    }

    fn known_tier(&self, tier: &str) -> Result<(), ApiError> {
        if self.state.config.tier(tier).is_none() {
            let known: Vec<_> = self.state.config.tiers.keys().cloned().collect();
            return Err(ApiError::invalid(
                "tier",
                format!("unknown tier `{tier}`; known: {}", known.join(", ")),
            ));
        }
        Ok(())
    }
}

fn email_field(email: &str) -> Result<String, ApiError> {
    let email = email.trim();
    if email.is_empty() || !email.contains('@') || email.len() > 320 {
        return Err(ApiError::invalid("email", "must be an email address"));
    }
    Ok(email.to_string())
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn create_user(
        &self,
        request: Request<v1::CreateUserRequest>,
    ) -> Result<Response<v1::CreateUserResponse>, Status> {
        let caller = self.admin(&request, "create_user").await?;
        let req = request.into_inner();
        let email = email_field(&req.email)?;
        let tier = if req.tier.is_empty() {
            "free".to_string()
        } else {
            req.tier
        };
        self.known_tier(&tier)?;
        let user = self
            .state
            .store
            .create_user(&email, &tier)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::AlreadyExists(format!("user {email}")))?;
        audit::admin_action(&caller, "create_user", &email, Some(&tier));
        Ok(Response::new(v1::CreateUserResponse {
            user: Some(user_proto(&user)),
        }))
    }

    async fn set_tier(
        &self,
        request: Request<v1::SetTierRequest>,
    ) -> Result<Response<v1::SetTierResponse>, Status> {
        let caller = self.admin(&request, "set_tier").await?;
        let req = request.into_inner();
        self.known_tier(&req.tier)?;
        let user = self
            .state
            .store
            .set_tier(&req.email, &req.tier)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound {
                resource_type: "user",
                name: req.email.clone(),
            })?;
        audit::admin_action(&caller, "set_tier", &req.email, Some(&req.tier));
        Ok(Response::new(v1::SetTierResponse {
            user: Some(user_proto(&user)),
        }))
    }

    async fn create_api_key(
        &self,
        request: Request<v1::CreateApiKeyRequest>,
    ) -> Result<Response<v1::CreateApiKeyResponse>, Status> {
        let caller = self.admin(&request, "create_api_key").await?;
        let req = request.into_inner();
        let email = email_field(&req.email)?;
        let set_tier = !req.tier.is_empty();
        let tier = if set_tier {
            req.tier.clone()
        } else {
            "free".to_string()
        };
        self.known_tier(&tier)?;
        let expires_at = expiry_ms(req.expires_at)?;
        let user = self
            .state
            .store
            .ensure_user(&email, &tier, set_tier)
            .await
            .map_err(ApiError::from)?;
        let minted = self
            .state
            .auth
            .mint(&user.id, req.admin, &req.label, expires_at)
            .await
            .map_err(ApiError::from)?;
        audit::key_created(&caller, &minted.key_id, &user.id, req.admin, Via::Admin);
        Ok(Response::new(v1::CreateApiKeyResponse {
            key: minted.key,
            key_id: minted.key_id,
        }))
    }

    async fn list_api_keys(
        &self,
        request: Request<v1::ListApiKeysRequest>,
    ) -> Result<Response<v1::ListApiKeysResponse>, Status> {
        let caller = self.admin(&request, "list_api_keys").await?;
        let email = request.get_ref().email.trim().to_string();
        let user_id = if email.is_empty() {
            None
        } else {
            Some(
                self.state
                    .store
                    .user_by_email(&email)
                    .await
                    .map_err(ApiError::from)?
                    .ok_or(ApiError::NotFound {
                        resource_type: "user",
                        name: email.clone(),
                    })?
                    .id,
            )
        };
        let keys = self
            .state
            .store
            .list_keys(user_id.as_deref())
            .await
            .map_err(ApiError::from)?;
        audit::admin_action(&caller, "list_api_keys", &email, None);
        Ok(Response::new(v1::ListApiKeysResponse {
            keys: keys.iter().map(key_info).collect(),
        }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<v1::RevokeApiKeyRequest>,
    ) -> Result<Response<v1::RevokeApiKeyResponse>, Status> {
        let caller = self.admin(&request, "revoke_api_key").await?;
        let key_id = request.get_ref().key_id.clone();
        let revoked = self.state.revoke_key(&key_id, None).await?;
        audit::key_revoked(&caller, &key_id, revoked as u64, Via::Admin);
        Ok(Response::new(v1::RevokeApiKeyResponse {}))
    }

    async fn get_usage(
        &self,
        request: Request<v1::GetUsageRequest>,
    ) -> Result<Response<v1::GetUsageResponse>, Status> {
        let caller = self.admin(&request, "get_usage").await?;
        let req = request.into_inner();
        let user_id = if req.email.is_empty() {
            None
        } else {
            Some(
                self.state
                    .store
                    .user_by_email(&req.email)
                    .await
                    .map_err(ApiError::from)?
                    .ok_or(ApiError::NotFound {
                        resource_type: "user",
                        name: req.email.clone(),
                    })?
                    .id,
            )
        };
        let usage = usage(&self.state, user_id.as_deref(), req.days).await?;
        audit::admin_action(&caller, "get_usage", &req.email, None);
        Ok(Response::new(usage))
    }
}
