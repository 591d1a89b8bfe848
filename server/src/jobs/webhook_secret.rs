//! Webhook secrets at rest: HMAC signing needs the secret itself, so the
//! database keeps it, sealed with AES-256-GCM under a key derived from the
//! server's pepper (never in the database) and bound to its account (the
//! account id is the associated data, so a sealed secret copied to another
//! account does not open). A database dump alone reveals no secret.

use anyhow::{anyhow, Context};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};

use crate::{api::AppState, auth::Authenticator, store::now_ms};

/// What a sealed value starts with (stored values without it are from
/// before sealing: read as they are, sealed at the next rotation).
const SEALED: &str = "sealed1:";

/// The sealing key's purpose, in its derivation from the pepper.
const PURPOSE: &str = "webhook secrets v1";

fn key(auth: &Authenticator) -> LessSafeKey {
    let unbound =
        UnboundKey::new(&AES_256_GCM, &auth.derive_key(PURPOSE)).expect("a 32-byte AES key");
    LessSafeKey::new(unbound)
}

/// `secret` of `user_id`, sealed for storage.
pub fn seal(auth: &Authenticator, user_id: &str, secret: &str) -> String {
    let nonce: [u8; NONCE_LEN] = rand::random();
    let mut sealed = secret.as_bytes().to_vec();
    key(auth)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(user_id.as_bytes()),
            &mut sealed,
        )
        .expect("a webhook secret is far below AES-GCM's length limit");
    format!("{SEALED}{}{}", hex::encode(nonce), hex::encode(sealed))
}

/// The secret a stored value holds for `user_id`.
pub fn open(auth: &Authenticator, user_id: &str, stored: &str) -> anyhow::Result<String> {
    let Some(sealed) = stored.strip_prefix(SEALED) else {
        return Ok(stored.to_string());
    };
    let bytes = hex::decode(sealed).context("a sealed webhook secret is not hex")?;
    if bytes.len() < NONCE_LEN {
        return Err(anyhow!("a sealed webhook secret is too short"));
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).expect("NONCE_LEN bytes");
    let mut sealed = sealed.to_vec();
    let opened = key(auth)
        .open_in_place(nonce, Aad::from(user_id.as_bytes()), &mut sealed)
        .map_err(|_| {
            anyhow!(
                "the webhook secret does not decrypt (the server's pepper changed?): \
                 rotate it with RotateWebhookSecret"
            )
        })?;
    String::from_utf8(opened.to_vec()).context("a webhook secret is not UTF-8")
}

/// Makes, seals and stores a new secret for `user_id`; returns it (the
/// only time it is shown).
pub async fn rotate(state: &AppState, user_id: &str) -> sqlx::Result<String> {
    let secret = format!("whsec_{}", hex::encode(rand::random::<[u8; 32]>()));
    let sealed = seal(&state.auth, user_id, &secret);
    state
        .store
        .webhook_secret_set(user_id, &sealed, now_ms())
        .await?;
    Ok(secret)
}

/// `user_id`'s current secret, if one was made.
pub async fn read(state: &AppState, user_id: &str) -> anyhow::Result<Option<String>> {
    match state.store.webhook_secret(user_id).await? {
        Some(stored) => open(&state.auth, user_id, &stored).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn auth(pepper: &str) -> (Authenticator, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::connect(&crate::store::sqlite_url(dir.path()))
            .await
            .unwrap();
        let auth = Authenticator::new(
            store,
            pepper.as_bytes().to_vec(),
            std::time::Duration::from_secs(1),
        );
        (auth, dir)
    }

    #[tokio::test]
    async fn a_sealed_secret_opens_for_its_account() {
        let (auth, _dir) = auth("pepper-0123456789").await;
        let sealed = seal(&auth, "u1", "whsec_abc");
        assert!(!sealed.contains("whsec_abc"), "{sealed}");
        assert_eq!(open(&auth, "u1", &sealed).unwrap(), "whsec_abc");
    }

    #[tokio::test]
    async fn a_sealed_secret_does_not_open_for_another_account() {
        let (auth, _dir) = auth("pepper-0123456789").await;
        let sealed = seal(&auth, "u1", "whsec_abc");
        assert!(open(&auth, "u2", &sealed).is_err());
    }

    #[tokio::test]
    async fn a_sealed_secret_does_not_open_under_another_pepper() {
        let (sealer, _a) = auth("pepper-0123456789").await;
        let (other, _b) = auth("another-pepper-9876").await;
        let sealed = seal(&sealer, "u1", "whsec_abc");
        let refused = open(&other, "u1", &sealed).unwrap_err();
        assert!(format!("{refused}").contains("rotate"), "{refused}");
    }

    #[tokio::test]
    async fn two_seals_of_one_secret_differ() {
        let (auth, _dir) = auth("pepper-0123456789").await;
        assert_ne!(
            seal(&auth, "u1", "whsec_abc"),
            seal(&auth, "u1", "whsec_abc")
        );
    }

    #[tokio::test]
    async fn a_secret_stored_before_sealing_reads_as_it_is() {
        let (auth, _dir) = auth("pepper-0123456789").await;
        assert_eq!(open(&auth, "u1", "whsec_plain").unwrap(), "whsec_plain");
    }
}
