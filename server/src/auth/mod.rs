//! API keys: `wwz_<id>_<secret>` with 256 random bits of secret, stored as
//! HMAC-SHA256(pepper, id:secret), looked up by id and compared in constant
//! time. Malformed, unknown, revoked and expired keys get the same answer,
//! and unknown ids cost the same HMAC as known ones. Known keys are cached
//! for `key_cache_secs` (so revocation lands within that); unknown ids are
//! never cached, so a key created a moment ago works at once.

use std::{sync::Arc, time::Duration};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::store::{now_ms, KeyRecord, KeyRefused, NewKey, Store};

/// Who is calling, once authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: String,
    pub email: String,
    pub tier: String,
    pub key_id: String,
    pub admin: bool,
}

/// The one answer for every bad key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("missing or invalid API key")]
pub struct Unauthenticated;

/// A freshly minted key (the secret is shown once).
#[derive(Debug, Clone)]
pub struct MintedKey {
    pub key: String,
    pub key_id: String,
}

/// Parses and verifies keys; mints new ones.
#[derive(Clone)]
pub struct Authenticator {
    store: Store,
    pepper: Arc<Vec<u8>>,
    cache: moka::future::Cache<String, Arc<KeyRecord>>,
}

const PREFIX: &str = "wwz";

/// Splits `wwz_<id>_<secret>`; `None` when malformed.
pub fn parse_key(key: &str) -> Option<(&str, &str)> {
    let mut parts = key.splitn(3, '_');
    let (prefix, id, secret) = (parts.next()?, parts.next()?, parts.next()?);
    let hex_ok = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (prefix == PREFIX && hex_ok(id, 16) && hex_ok(secret, 64)).then_some((id, secret))
}

impl Authenticator {
    pub fn new(store: Store, pepper: Vec<u8>, cache_ttl: Duration) -> Self {
        Self {
            store,
            pepper: Arc::new(pepper),
            cache: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(cache_ttl)
                .build(),
        }
    }

    fn hash(&self, key_id: &str, secret: &str) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.pepper).expect("HMAC takes any key length");
        mac.update(key_id.as_bytes());
        mac.update(b":");
        mac.update(secret.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Verifies a presented key.
    pub async fn authenticate(&self, presented: &str) -> Result<Caller, Unauthenticated> {
        let Some((key_id, secret)) = parse_key(presented) else {
            return Err(Unauthenticated);
        };
        let record = match self.cache.get(key_id).await {
            Some(record) => Some(record),
            None => match self.store.key(key_id).await {
                Ok(Some(record)) => {
                    let record = Arc::new(record);
                    self.cache.insert(key_id.to_string(), record.clone()).await;
                    Some(record)
                }
                Ok(None) => None,
                Err(error) => {
                    tracing::error!(%error, key_id, "key lookup failed");
                    None
                }
            },
        };
        let computed = self.hash(key_id, secret);
        let Some(record) = record else {
            // Same work as for a known id, then the same answer.
            let _ = computed.as_bytes().ct_eq(computed.as_bytes());
            return Err(Unauthenticated);
        };
        let matches: bool = computed
            .as_bytes()
            .ct_eq(record.secret_hash.as_bytes())
            .into();
        let now = now_ms();
        if !matches || record.revoked_at.is_some() || record.expires_at.is_some_and(|t| t <= now) {
            return Err(Unauthenticated);
        }
        Ok(Caller {
            user_id: record.user_id.clone(),
            email: record.email.clone(),
            tier: record.tier.clone(),
            key_id: record.key_id.clone(),
            admin: record.admin,
        })
    }

    /// Creates a key for `user_id` and stores its hash.
    pub async fn mint(
        &self,
        user_id: &str,
        admin: bool,
        label: &str,
        expires_at: Option<i64>,
    ) -> sqlx::Result<MintedKey> {
        let (key_id, secret) = fresh_key();
        self.store
            .insert_key(NewKey {
                key_id: &key_id,
                user_id,
                secret_hash: &self.hash(&key_id, &secret),
                admin,
                label,
                expires_at,
                parent_key_id: None,
            })
            .await?;
        Ok(MintedKey {
            key: format!("{PREFIX}_{key_id}_{secret}"),
            key_id,
        })
    }

    /// Creates a key below `parent` (same user and admin flag; the caller
    /// has already capped `expires_at` at the parent's), unless the user
    /// has `max_live` live keys or the parent stopped being live.
    pub async fn mint_child(
        &self,
        parent: &Caller,
        label: &str,
        expires_at: Option<i64>,
        max_live: u32,
    ) -> sqlx::Result<Result<MintedKey, KeyRefused>> {
        let (key_id, secret) = fresh_key();
        let inserted = self
            .store
            .insert_key_capped(
                NewKey {
                    key_id: &key_id,
                    user_id: &parent.user_id,
                    secret_hash: &self.hash(&key_id, &secret),
                    admin: parent.admin,
                    label,
                    expires_at,
                    parent_key_id: Some(&parent.key_id),
                },
                max_live,
            )
            .await?;
        Ok(inserted.map(|()| MintedKey {
            key: format!("{PREFIX}_{key_id}_{secret}"),
            key_id,
        }))
    }

    /// Drops a key from this replica's cache (after revoking it here).
    pub async fn forget(&self, key_id: &str) {
        self.cache.invalidate(key_id).await;
    }
}

/// A new key id (64 bits) and secret (256 bits), hex.
fn fresh_key() -> (String, String) {
    let mut id = [0u8; 8];
    let mut secret = [0u8; 32];
    rand::rng().fill_bytes(&mut id);
    rand::rng().fill_bytes(&mut secret);
    (hex::encode(id), hex::encode(secret))
}

/// Loads the pepper from config, or from (or into) `data_dir/pepper`.
pub fn load_pepper(
    configured: Option<&str>,
    data_dir: &std::path::Path,
) -> anyhow::Result<Vec<u8>> {
    if let Some(pepper) = configured {
        return Ok(pepper.as_bytes().to_vec());
    }
    let path = data_dir.join("pepper");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(existing.trim().as_bytes().to_vec());
    }
    std::fs::create_dir_all(data_dir)?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let pepper = hex::encode(bytes);
    write_private(&path, &pepper)?;
    Ok(pepper.into_bytes())
}

fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_only_in_their_exact_shape() {
        let id = "0123456789abcdef";
        let secret = "a".repeat(64);
        assert_eq!(
            parse_key(&format!("wwz_{id}_{secret}")),
            Some((id, secret.as_str()))
        );
        assert_eq!(parse_key(&format!("xyz_{id}_{secret}")), None);
        assert_eq!(parse_key(&format!("wwz_{id}_{}", "a".repeat(63))), None);
        assert_eq!(parse_key(&format!("wwz_{id}_{}g", "a".repeat(63))), None);
        assert_eq!(parse_key("wwz__"), None);
        assert_eq!(parse_key(""), None);
    }
}
