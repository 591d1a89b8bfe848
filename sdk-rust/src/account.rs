//! The caller's account (`AccountService`) and operator calls
//! (`AdminService`, through [`Client::admin`]).

use std::time::SystemTime;

use crate::{proto, Client, NewApiKey, Result};

/// The caller's account: who, which tier, its limits and what is left.
pub type WhoAmI = proto::WhoAmIResponse;
/// Usage totals, per-day series and counts by outcome.
pub type Usage = proto::GetUsageResponse;
/// An API key's public facts (never its secret).
pub type ApiKeyInfo = proto::ApiKeyInfo;
/// A user account.
pub type User = proto::User;

fn timestamp(t: SystemTime) -> prost_types::Timestamp {
    prost_types::Timestamp::from(t)
}

impl Client {
    /// Who the key belongs to, its tier's limits and what is left of this
    /// minute's and today's allowance (`WhoAmI`).
    ///
    /// ```no_run
    /// # async fn demo(client: wasmwiz::Client) -> wasmwiz::Result<()> {
    /// let me = client.whoami().await?;
    /// println!("{} ({}), {} runs left this minute", me.email, me.tier, me.remaining_this_minute);
    /// # Ok(()) }
    /// ```
    pub async fn whoami(&self) -> Result<WhoAmI> {
        self.unary(
            self.account_client(),
            proto::WhoAmIRequest {},
            |mut c, r| async move { c.who_am_i(r).await },
        )
        .await
    }

    /// The caller's usage over the last `days` UTC days, today included
    /// (0 = the server's default of 30).
    pub async fn usage(&self, days: u32) -> Result<Usage> {
        let message = proto::GetUsageRequest {
            email: String::new(),
            days,
        };
        self.unary(self.account_client(), message, |mut c, r| async move {
            c.get_usage(r).await
        })
        .await
    }

    /// A new key for the caller (same user, tier and admin flag), below the
    /// key this client uses: it expires no later than that key (with it,
    /// when `expires_at` is `None`) and is revoked with it.
    pub async fn create_my_key(
        &self,
        label: &str,
        expires_at: Option<SystemTime>,
    ) -> Result<NewApiKey> {
        let message = proto::CreateMyApiKeyRequest {
            label: label.to_string(),
            expires_at: expires_at.map(timestamp),
        };
        let created = self
            .unary(self.account_client(), message, |mut c, r| async move {
                c.create_my_api_key(r).await
            })
            .await?;
        Ok(NewApiKey {
            key: created.key,
            key_id: created.key_id,
            expires_at: created
                .expires_at
                .and_then(|t| SystemTime::try_from(t).ok()),
            parent_key_id: created.parent_key_id,
        })
    }

    /// The caller's keys.
    pub async fn my_keys(&self) -> Result<Vec<ApiKeyInfo>> {
        let listed = self
            .unary(
                self.account_client(),
                proto::ListMyApiKeysRequest {},
                |mut c, r| async move { c.list_my_api_keys(r).await },
            )
            .await?;
        Ok(listed.keys)
    }

    /// Revokes one of the caller's keys.
    pub async fn revoke_my_key(&self, key_id: &str) -> Result<()> {
        let message = proto::RevokeMyApiKeyRequest {
            key_id: key_id.to_string(),
        };
        self.unary(self.account_client(), message, |mut c, r| async move {
            c.revoke_my_api_key(r).await
        })
        .await?;
        Ok(())
    }

    /// Operator calls; each needs an admin key (PERMISSION_DENIED otherwise).
    ///
    /// ```no_run
    /// # async fn demo(client: wasmwiz::Client) -> wasmwiz::Result<()> {
    /// use wasmwiz::NewKey;
    ///
    /// let key = client.admin().create_key(NewKey::new("ci@example.com").tier("basic")).await?;
    /// println!("give this to CI: {}", key.key);
    /// # Ok(()) }
    /// ```
    pub fn admin(&self) -> Admin<'_> {
        Admin { client: self }
    }
}

/// What [`Admin::create_key`] creates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewKey {
    /// The user (created when unknown).
    pub email: String,
    /// When non-empty, the user's tier is set to this.
    pub tier: String,
    /// Admin keys may call `AdminService`.
    pub admin: bool,
    /// A label for listings.
    pub label: String,
    /// When the key stops working.
    pub expires_at: Option<SystemTime>,
}

impl NewKey {
    /// A key for `email`.
    pub fn new(email: impl Into<String>) -> Self {
        NewKey {
            email: email.into(),
            ..NewKey::default()
        }
    }

    /// Sets (and changes) the user's tier.
    pub fn tier(mut self, tier: impl Into<String>) -> Self {
        self.tier = tier.into();
        self
    }

    /// Makes it an admin key.
    pub fn admin(mut self, admin: bool) -> Self {
        self.admin = admin;
        self
    }

    /// Sets the label.
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// Sets the expiry.
    pub fn expires_at(mut self, at: SystemTime) -> Self {
        self.expires_at = Some(at);
        self
    }
}

/// Operator calls (`AdminService`); see [`Client::admin`].
#[derive(Debug, Clone, Copy)]
pub struct Admin<'a> {
    client: &'a Client,
}

impl Admin<'_> {
    /// Creates a user (tier default `free`).
    pub async fn create_user(&self, email: &str, tier: &str) -> Result<User> {
        let c = self.client;
        let message = proto::CreateUserRequest {
            email: email.to_string(),
            tier: tier.to_string(),
        };
        let created = c
            .unary(c.admin_client(), message, |mut c, r| async move {
                c.create_user(r).await
            })
            .await?;
        Ok(created.user.unwrap_or_default())
    }

    /// Moves a user to another tier.
    pub async fn set_tier(&self, email: &str, tier: &str) -> Result<User> {
        let c = self.client;
        let message = proto::SetTierRequest {
            email: email.to_string(),
            tier: tier.to_string(),
        };
        let updated = c
            .unary(c.admin_client(), message, |mut c, r| async move {
                c.set_tier(r).await
            })
            .await?;
        Ok(updated.user.unwrap_or_default())
    }

    /// Creates a key (and the user when unknown); the secret is returned
    /// once.
    pub async fn create_key(&self, key: NewKey) -> Result<NewApiKey> {
        let c = self.client;
        let message = proto::CreateApiKeyRequest {
            email: key.email,
            tier: key.tier,
            admin: key.admin,
            expires_at: key.expires_at.map(timestamp),
            label: key.label,
        };
        let created = c
            .unary(c.admin_client(), message, |mut c, r| async move {
                c.create_api_key(r).await
            })
            .await?;
        Ok(NewApiKey {
            key: created.key,
            key_id: created.key_id,
            expires_at: key.expires_at,
            parent_key_id: String::new(),
        })
    }

    /// Keys of one user, or of everyone when `email` is `None`.
    pub async fn list_keys(&self, email: Option<&str>) -> Result<Vec<ApiKeyInfo>> {
        let c = self.client;
        let message = proto::ListApiKeysRequest {
            email: email.unwrap_or_default().to_string(),
        };
        let listed = c
            .unary(c.admin_client(), message, |mut c, r| async move {
                c.list_api_keys(r).await
            })
            .await?;
        Ok(listed.keys)
    }

    /// Revokes any key by id.
    pub async fn revoke_key(&self, key_id: &str) -> Result<()> {
        let c = self.client;
        let message = proto::RevokeApiKeyRequest {
            key_id: key_id.to_string(),
        };
        c.unary(c.admin_client(), message, |mut c, r| async move {
            c.revoke_api_key(r).await
        })
        .await?;
        Ok(())
    }

    /// Usage of one user, or of everyone when `email` is `None`.
    pub async fn usage(&self, email: Option<&str>, days: u32) -> Result<Usage> {
        let c = self.client;
        let message = proto::GetUsageRequest {
            email: email.unwrap_or_default().to_string(),
            days,
        };
        c.unary(c.admin_client(), message, |mut c, r| async move {
            c.get_usage(r).await
        })
        .await
    }
}
