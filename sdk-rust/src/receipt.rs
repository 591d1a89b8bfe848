//! Offline verification of execution receipts.
//!
//! A [`Receipt`](crate::proto::Receipt) is an Ed25519 signature over the
//! bytes of a serialized [`ReceiptStatement`](crate::proto::ReceiptStatement).
//! [`verify`] checks the signature with a public key (from
//! `GetServerInfo`, or handed out by the server's operator) and returns the
//! statement; [`Verified`]'s methods then check output you hold against its
//! digests. No server is contacted.
//!
//! ```
//! # fn demo(receipt_bytes: &[u8], public_key: &[u8; 32], stdout: &[u8]) -> Result<(), wasmwiz::receipt::ReceiptError> {
//! let receipt = wasmwiz::receipt::decode(receipt_bytes)?;
//! let verified = wasmwiz::receipt::verify(&receipt, public_key)?;
//! verified.check_stdout(stdout)?;
//! println!("{} ran {} with fuel {}", verified.statement.execution_id,
//!          verified.statement.module_sha256, verified.statement.fuel_consumed);
//! # Ok(()) }
//! ```

use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use prost::Message;
use sha2::{Digest, Sha256};

use crate::proto::{Receipt, ReceiptStatement};

/// Why a receipt, or output checked against it, did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The public key is not 32 bytes (64 hex digits) of an Ed25519 key.
    #[error("the public key is not an Ed25519 public key (64 hex digits): {0}")]
    BadPublicKey(String),
    /// The receipt names another key than the one given.
    #[error("the receipt was signed by key {receipt}, but the public key given has id {given}")]
    OtherKey {
        /// `Receipt.key_id`.
        receipt: String,
        /// The id of the key given.
        given: String,
    },
    /// The signature does not match the statement under this key.
    #[error("the signature does not match the statement: the receipt was altered or not signed by this key")]
    BadSignature,
    /// The receipt or its statement cannot be decoded.
    #[error("not a receipt: {0}")]
    Malformed(String),
    /// Output given to check does not match the statement's digest.
    #[error(
        "{what} does not match the receipt: its sha256 is {actual}, the receipt states {stated}"
    )]
    Mismatch {
        /// `stdout`, `stderr` or `file PATH`.
        what: String,
        /// The digest in the statement.
        stated: String,
        /// The digest of what was given.
        actual: String,
    },
    /// A file was given that the statement does not list.
    #[error("the receipt lists no collected file {0}")]
    NoSuchFile(String),
}

/// The id of an Ed25519 public key as receipts name it: the first 16 hex
/// digits of its sha256.
pub fn key_id(public_key: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(public_key)[..8])
}

/// A public key from 64 hex digits (surrounding whitespace ignored).
pub fn parse_public_key(text: &str) -> Result<[u8; 32], ReceiptError> {
    hex::decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| ReceiptError::BadPublicKey("expected 64 hex digits".into()))
}

/// A receipt whose signature checked out, with its statement.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// What the server signed.
    pub statement: ReceiptStatement,
    /// The id of the key that signed.
    pub key_id: String,
}

/// Checks `receipt`'s signature with `public_key` and decodes its
/// statement (the signed bytes, exactly as received).
pub fn verify(receipt: &Receipt, public_key: &[u8; 32]) -> Result<Verified, ReceiptError> {
    let key = VerifyingKey::from_bytes(public_key)
        .map_err(|e| ReceiptError::BadPublicKey(e.to_string()))?;
    let given = key_id(public_key);
    if !receipt.key_id.is_empty() && receipt.key_id != given {
        return Err(ReceiptError::OtherKey {
            receipt: receipt.key_id.clone(),
            given,
        });
    }
    let signature =
        Signature::from_slice(&receipt.signature).map_err(|_| ReceiptError::BadSignature)?;
    key.verify(&receipt.statement, &signature)
        .map_err(|_| ReceiptError::BadSignature)?;
    let statement = ReceiptStatement::decode(receipt.statement.as_slice())
        .map_err(|e| ReceiptError::Malformed(e.to_string()))?;
    Ok(Verified {
        statement,
        key_id: given,
    })
}

/// Decodes a receipt from the bytes of a serialized `Receipt` message.
pub fn decode(bytes: &[u8]) -> Result<Receipt, ReceiptError> {
    Receipt::decode(bytes).map_err(|e| ReceiptError::Malformed(e.to_string()))
}

fn matches(what: String, stated: &str, bytes: &[u8]) -> Result<(), ReceiptError> {
    let actual = hex::encode(Sha256::digest(bytes));
    if actual == stated {
        Ok(())
    } else {
        Err(ReceiptError::Mismatch {
            what,
            stated: stated.to_string(),
            actual,
        })
    }
}

impl Verified {
    /// Checks the guest's whole stdout against the statement.
    pub fn check_stdout(&self, stdout: &[u8]) -> Result<(), ReceiptError> {
        matches("stdout".into(), &self.statement.stdout_sha256, stdout)
    }

    /// Checks the guest's whole stderr against the statement.
    pub fn check_stderr(&self, stderr: &[u8]) -> Result<(), ReceiptError> {
        matches("stderr".into(), &self.statement.stderr_sha256, stderr)
    }

    /// Checks a collected file's contents against the statement.
    pub fn check_file(&self, path: &str, contents: &[u8]) -> Result<(), ReceiptError> {
        let stated = self
            .statement
            .files
            .iter()
            .find(|f| f.path == path)
            .ok_or_else(|| ReceiptError::NoSuchFile(path.to_string()))?;
        matches(format!("file {path}"), &stated.sha256, contents)
    }

    /// Checks a module's bytes against the statement's module sha256.
    pub fn check_module(&self, module: &[u8]) -> Result<(), ReceiptError> {
        matches("module".into(), &self.statement.module_sha256, module)
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;
    use crate::proto::FileDigest;

    fn signed(statement: &ReceiptStatement) -> (Receipt, [u8; 32]) {
        let signing = SigningKey::from_bytes(&[4u8; 32]);
        let public = signing.verifying_key().to_bytes();
        let bytes = statement.encode_to_vec();
        let receipt = Receipt {
            signature: signing.sign(&bytes).to_bytes().to_vec(),
            statement: bytes,
            key_id: key_id(&public),
        };
        (receipt, public)
    }

    fn statement() -> ReceiptStatement {
        ReceiptStatement {
            version: 1,
            stdout_sha256: hex::encode(Sha256::digest(b"out")),
            stderr_sha256: hex::encode(Sha256::digest(b"")),
            files: vec![FileDigest {
                path: "out/a".into(),
                sha256: hex::encode(Sha256::digest(b"A")),
                size: 1,
            }],
            fuel_consumed: 10,
            ..Default::default()
        }
    }

    #[test]
    fn a_signed_receipt_verifies_and_its_outputs_check() {
        let (receipt, public) = signed(&statement());
        let verified = verify(&receipt, &public).unwrap();
        assert_eq!(verified.statement, statement());
        verified.check_stdout(b"out").unwrap();
        verified.check_stderr(b"").unwrap();
        verified.check_file("out/a", b"A").unwrap();
    }

    #[test]
    fn changed_output_is_a_mismatch() {
        let (receipt, public) = signed(&statement());
        let verified = verify(&receipt, &public).unwrap();
        assert!(matches!(
            verified.check_stdout(b"Out"),
            Err(ReceiptError::Mismatch { ref what, .. }) if what == "stdout"
        ));
        assert!(matches!(
            verified.check_file("out/a", b"B"),
            Err(ReceiptError::Mismatch { .. })
        ));
        assert_eq!(
            verified.check_file("out/b", b"A"),
            Err(ReceiptError::NoSuchFile("out/b".into()))
        );
    }

    #[test]
    fn a_changed_statement_fails_the_signature() {
        let (mut receipt, public) = signed(&statement());
        let mut changed = statement();
        changed.fuel_consumed = 11;
        receipt.statement = changed.encode_to_vec();
        assert_eq!(verify(&receipt, &public), Err(ReceiptError::BadSignature));
    }

    #[test]
    fn another_key_is_named() {
        let (receipt, _) = signed(&statement());
        let other = SigningKey::from_bytes(&[5u8; 32])
            .verifying_key()
            .to_bytes();
        assert!(matches!(
            verify(&receipt, &other),
            Err(ReceiptError::OtherKey { .. })
        ));
    }

    #[test]
    fn a_public_key_is_64_hex_digits() {
        assert!(parse_public_key(&"ab".repeat(32)).is_ok());
        assert!(matches!(
            parse_public_key("abcd"),
            Err(ReceiptError::BadPublicKey(_))
        ));
    }
}
