//! Signed execution receipts: the server's Ed25519 keys ([`keys`]) and
//! how a statement becomes a [`v1::Receipt`] and is checked again
//! ([`sign`], [`verify`]). What a statement holds is built by the
//! execution lifecycle (`exec::receipting`).

pub mod keys;

use ed25519_dalek::{Signature, Signer, Verifier, VerifyingKey};
use prost::Message;
use wasmwiz_proto::v1;

pub use self::keys::{key_id, ReceiptKeys};

/// Signs the serialized `statement` with the current key.
pub fn sign(keys: &ReceiptKeys, statement: &v1::ReceiptStatement) -> v1::Receipt {
    let bytes = statement.encode_to_vec();
    let signature = keys.signing_key().sign(&bytes);
    v1::Receipt {
        statement: bytes,
        signature: signature.to_bytes().to_vec(),
        key_id: keys.key_id().to_string(),
    }
}

/// Why a receipt did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the signature is not 64 bytes")]
    MalformedSignature,
    #[error("the signature does not match the statement and key")]
    BadSignature,
    #[error("the statement is not a ReceiptStatement: {0}")]
    MalformedStatement(String),
}

/// Checks `receipt`'s signature with `public` and decodes its statement.
pub fn verify(
    receipt: &v1::Receipt,
    public: &VerifyingKey,
) -> Result<v1::ReceiptStatement, VerifyError> {
    let signature =
        Signature::from_slice(&receipt.signature).map_err(|_| VerifyError::MalformedSignature)?;
    public
        .verify(&receipt.statement, &signature)
        .map_err(|_| VerifyError::BadSignature)?;
    v1::ReceiptStatement::decode(receipt.statement.as_slice())
        .map_err(|e| VerifyError::MalformedStatement(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> ReceiptKeys {
        ReceiptKeys::from_seed_hex(&"07".repeat(32), &[]).unwrap()
    }

    fn statement() -> v1::ReceiptStatement {
        v1::ReceiptStatement {
            version: 1,
            module_sha256: "ab".repeat(32),
            fuel_consumed: 1234,
            ..Default::default()
        }
    }

    #[test]
    fn a_signed_statement_verifies_with_the_public_key() {
        let keys = keys();
        let receipt = sign(&keys, &statement());
        assert_eq!(receipt.key_id, keys.key_id());
        assert_eq!(verify(&receipt, &keys.public_key()), Ok(statement()));
    }

    #[test]
    fn any_flipped_statement_byte_fails_verification() {
        let keys = keys();
        let receipt = sign(&keys, &statement());
        for at in 0..receipt.statement.len() {
            let mut tampered = receipt.clone();
            tampered.statement[at] ^= 1;
            assert_eq!(
                verify(&tampered, &keys.public_key()),
                Err(VerifyError::BadSignature),
                "byte {at}"
            );
        }
    }

    #[test]
    fn another_key_does_not_verify() {
        let receipt = sign(&keys(), &statement());
        let other = ReceiptKeys::from_seed_hex(&"08".repeat(32), &[]).unwrap();
        assert_eq!(
            verify(&receipt, &other.public_key()),
            Err(VerifyError::BadSignature)
        );
    }
}
