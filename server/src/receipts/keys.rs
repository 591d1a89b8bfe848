//! The receipt keys: one Ed25519 signing key — configured (so replicas
//! share it) or generated on first start into `data_dir/receipt-signing-key`
//! (mode 0600) — and the public keys of retired signing keys, still listed
//! so receipts they signed keep verifying.

use std::path::Path;

use anyhow::{bail, Context};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::RngCore;
use sha2::{Digest, Sha256};
use wasmwiz_proto::v1;

/// The file a generated signing key is kept in, inside the data dir.
pub const KEY_FILE: &str = "receipt-signing-key";

/// The id of a public key: the first 16 hex digits of its sha256.
pub fn key_id(public: &VerifyingKey) -> String {
    hex::encode(&Sha256::digest(public.as_bytes())[..8])
}

/// The signing key and the retired public keys.
pub struct ReceiptKeys {
    signing: SigningKey,
    id: String,
    retired: Vec<VerifyingKey>,
}

impl std::fmt::Debug for ReceiptKeys {
    /// Names the key by id; the secret never appears.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiptKeys")
            .field("key_id", &self.id)
            .field("retired", &self.retired.len())
            .finish()
    }
}

impl ReceiptKeys {
    /// The configured key (hex of the 32-byte seed), else the one in
    /// `data_dir` (generated there when absent); `retired` are hex public
    /// keys.
    pub fn load(
        configured: Option<&str>,
        retired: &[String],
        data_dir: &Path,
    ) -> anyhow::Result<Self> {
        match configured {
            Some(seed) => Self::from_seed_hex(seed, retired)
                .context("receipt_signing_key (WASMWIZ_RECEIPT_SIGNING_KEY)"),
            None => {
                let path = data_dir.join(KEY_FILE);
                let seed = read_or_generate(&path)?;
                Self::from_seed_hex(&seed, retired)
                    .with_context(|| format!("the receipt signing key in {}", path.display()))
            }
        }
    }

    /// Keys from a hex seed and hex retired public keys.
    pub fn from_seed_hex(seed: &str, retired: &[String]) -> anyhow::Result<Self> {
        let signing = SigningKey::from_bytes(&hex32(seed, "the signing key")?);
        let retired = retired
            .iter()
            .enumerate()
            .map(|(i, public)| {
                let bytes = hex32(public, &format!("receipt_keys_retired[{i}]"))?;
                VerifyingKey::from_bytes(&bytes).with_context(|| {
                    format!("receipt_keys_retired[{i}] is not an Ed25519 public key")
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            id: key_id(&signing.verifying_key()),
            signing,
            retired,
        })
    }

    /// The id of the signing key.
    pub fn key_id(&self) -> &str {
        &self.id
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    pub(super) fn signing_key(&self) -> &SigningKey {
        &self.signing
    }

    /// The current key first, then the retired ones (the current key is
    /// not listed twice if it was also given as retired).
    pub fn listed(&self) -> Vec<v1::ReceiptKey> {
        let current = self.public_key();
        std::iter::once((current, true))
            .chain(
                self.retired
                    .iter()
                    .filter(|k| **k != current)
                    .map(|k| (*k, false)),
            )
            .map(|(key, current)| v1::ReceiptKey {
                key_id: key_id(&key),
                public_key: key.as_bytes().to_vec(),
                current,
            })
            .collect()
    }
}

/// 64 hex digits as 32 bytes, or an error naming `what`.
fn hex32(text: &str, what: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(text.trim()).ok();
    match bytes.and_then(|b| <[u8; 32]>::try_from(b).ok()) {
        Some(bytes) => Ok(bytes),
        None => bail!("{what} must be 64 hex digits (32 bytes)"),
    }
}

/// The hex seed in `path`, generating a fresh one there first when the
/// file does not exist (created 0600 and only if absent, so two processes
/// starting at once end up with the same key).
fn read_or_generate(path: &Path) -> anyhow::Result<String> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        return Ok(existing);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    let text = format!("{}\n", hex::encode(seed));
    match write_private(path, &text) {
        Ok(()) => Ok(text),
        // Another process created it first: use theirs.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(path)?)
        }
        Err(error) => Err(error).with_context(|| format!("cannot write {}", path.display())),
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_key_is_kept_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let first = ReceiptKeys::load(None, &[], dir.path()).unwrap();
        let again = ReceiptKeys::load(None, &[], dir.path()).unwrap();
        assert_eq!(first.key_id(), again.key_id());
    }

    #[cfg(unix)]
    #[test]
    fn the_generated_key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        ReceiptKeys::load(None, &[], dir.path()).unwrap();
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_configured_key_wins_over_the_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let generated = ReceiptKeys::load(None, &[], dir.path()).unwrap();
        let configured = ReceiptKeys::load(Some(&"11".repeat(32)), &[], dir.path()).unwrap();
        assert_ne!(configured.key_id(), generated.key_id());
        assert_eq!(
            configured.key_id(),
            ReceiptKeys::from_seed_hex(&"11".repeat(32), &[])
                .unwrap()
                .key_id()
        );
    }

    #[test]
    fn a_malformed_configured_key_is_refused_with_its_setting_named() {
        let error = ReceiptKeys::from_seed_hex("abc", &[]).unwrap_err();
        assert!(error.to_string().contains("64 hex digits"), "{error:#}");
        let dir = tempfile::tempdir().unwrap();
        let error = ReceiptKeys::load(Some("abc"), &[], dir.path()).unwrap_err();
        assert!(
            format!("{error:#}").contains("receipt_signing_key"),
            "{error:#}"
        );
    }

    #[test]
    fn retired_keys_stay_listed_after_the_current_one() {
        let old = ReceiptKeys::from_seed_hex(&"01".repeat(32), &[]).unwrap();
        let old_public = hex::encode(old.public_key().as_bytes());
        let keys = ReceiptKeys::from_seed_hex(&"02".repeat(32), &[old_public]).unwrap();
        let listed = keys.listed();
        assert_eq!(listed.len(), 2);
        assert_eq!(
            (listed[0].key_id.as_str(), listed[0].current),
            (keys.key_id(), true)
        );
        assert_eq!(
            (listed[1].key_id.as_str(), listed[1].current),
            (old.key_id(), false)
        );
        assert_eq!(listed[1].public_key, old.public_key().as_bytes().to_vec());
    }

    #[test]
    fn the_key_id_is_derived_from_the_public_key() {
        let keys = ReceiptKeys::from_seed_hex(&"03".repeat(32), &[]).unwrap();
        let id = keys.key_id();
        assert_eq!(id.len(), 16);
        assert_eq!(
            id,
            &hex::encode(Sha256::digest(keys.public_key().as_bytes()))[..16]
        );
    }
}
