//! API keys: `wwz_<id>_<secret>` with 256 random bits of secret, stored as
//! HMAC-SHA256(pepper, id:secret), looked up by id and compared in constant
//! time. Malformed, unknown, revoked and expired keys get the same answer,
//! and unknown ids cost the same HMAC as known ones. Known keys are cached
//! for `key_cache_secs` (so revocation lands within that); unknown ids are
//! never cached, so a key created a moment ago (on any replica) works at
//! once.
//!
//! The cache serves only a presented key whose secret verifies against the
//! cached record. A known id with a wrong secret goes to the database like
//! an unknown id does, so both failures take one route (one store lookup,
//! one HMAC, one constant-time compare) and timing does not tell an
//! attacker which key ids exist.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::{
    audit::{self, AuthFailure},
    store::{now_ms, KeyRecord, KeyRefused, NewKey, Store},
};

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
    /// Key lookups that went to the store (the route every failure takes).
    store_lookups: Arc<AtomicU64>,
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
            store_lookups: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Key lookups that went to the store since start.
    pub fn store_lookups(&self) -> u64 {
        self.store_lookups.load(Ordering::Relaxed)
    }

    /// The stored record for `key_id` (cached when found).
    async fn lookup(&self, key_id: &str) -> Option<Arc<KeyRecord>> {
        self.store_lookups.fetch_add(1, Ordering::Relaxed);
        match self.store.key(key_id).await {
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
        }
    }

    /// A 32-byte key for `purpose`, HMAC-SHA256(pepper, purpose): a
    /// server-side secret kept out of the database and shared by every
    /// replica that shares the pepper (e.g. to encrypt webhook secrets).
    pub fn derive_key(&self, purpose: &str) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.pepper).expect("HMAC takes any key length");
        mac.update(b"wasmwiz derived key:");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
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
            audit::authentication_failed(None, AuthFailure::Malformed);
            return Err(Unauthenticated);
        };
        let computed = self.hash(key_id, secret);
        let verifies = |record: &KeyRecord| -> bool {
            computed
                .as_bytes()
                .ct_eq(record.secret_hash.as_bytes())
                .into()
        };
        // A cached record answers only for its own secret; anything else
        // takes the unknown id's route through the store.
        let cached = self
            .cache
            .get(key_id)
            .await
            .filter(|record| verifies(record));
        let record = match cached {
            Some(record) => Some(record),
            None => self.lookup(key_id).await,
        };
        let Some(record) = record else {
            // Same work as for a known id, then the same answer.
            let _ = computed.as_bytes().ct_eq(computed.as_bytes());
            audit::authentication_failed(Some(key_id), AuthFailure::UnknownKey);
            return Err(Unauthenticated);
        };
        let matches = verifies(&record);
        let now = now_ms();
        if !matches || record.revoked_at.is_some() || record.expires_at.is_some_and(|t| t <= now) {
            let reason = if !matches {
                AuthFailure::WrongSecret
            } else if record.revoked_at.is_some() {
                AuthFailure::Revoked
            } else {
                AuthFailure::Expired
            };
            audit::authentication_failed(Some(key_id), reason);
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

    /// An authenticator over a fresh SQLite store, and a key it minted.
    async fn with_key() -> (Authenticator, MintedKey, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::connect(&crate::store::sqlite_url(dir.path()))
            .await
            .unwrap();
        let user = store.ensure_user("a@x.io", "free", false).await.unwrap();
        let auth = Authenticator::new(store, b"pepper".to_vec(), Duration::from_secs(600));
        let minted = auth.mint(&user.id, false, "test", None).await.unwrap();
        (auth, minted, dir)
    }

    /// Store lookups `presented` costs (it must be refused).
    async fn lookups_of_a_refusal(auth: &Authenticator, presented: &str) -> u64 {
        let before = auth.store_lookups();
        assert_eq!(auth.authenticate(presented).await, Err(Unauthenticated));
        auth.store_lookups() - before
    }

    #[tokio::test]
    async fn a_known_id_with_a_wrong_secret_takes_the_unknown_ids_route() {
        let (auth, minted, _dir) = with_key().await;
        auth.authenticate(&minted.key).await.expect("the key works");
        let wrong_secret = format!("wwz_{}_{}", minted.key_id, "0".repeat(64));
        let unknown_id = format!("wwz_{}_{}", "f".repeat(16), "0".repeat(64));
        let known = lookups_of_a_refusal(&auth, &wrong_secret).await;
        let unknown = lookups_of_a_refusal(&auth, &unknown_id).await;
        assert_eq!(
            known, 1,
            "the cached record did not answer for a wrong secret"
        );
        assert_eq!(known, unknown);
    }

    #[tokio::test]
    async fn a_verified_key_is_served_from_the_cache() {
        let (auth, minted, _dir) = with_key().await;
        auth.authenticate(&minted.key).await.unwrap();
        let before = auth.store_lookups();
        auth.authenticate(&minted.key).await.unwrap();
        assert_eq!(auth.store_lookups(), before);
    }

    #[tokio::test]
    async fn a_wrong_secret_does_not_evict_the_right_one() {
        let (auth, minted, _dir) = with_key().await;
        auth.authenticate(&minted.key).await.unwrap();
        let wrong_secret = format!("wwz_{}_{}", minted.key_id, "0".repeat(64));
        let _ = auth.authenticate(&wrong_secret).await;
        auth.authenticate(&minted.key).await.expect("still valid");
    }

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
