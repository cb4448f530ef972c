//! An Ethereum account for tests, and the EIP-4361 messages it signs.

use crate::{SIWE_CHAIN, SIWE_DOMAIN};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub struct Wallet {
    pub signer: PrivateKeySigner,
}

/// The fields of a SIWE message a test may vary.
pub struct Siwe<'a> {
    pub domain: &'a str,
    pub uri: String,
    pub chain_id: u64,
    pub nonce: &'a str,
    pub issued_at: OffsetDateTime,
    pub expiration: Option<OffsetDateTime>,
    pub not_before: Option<OffsetDateTime>,
}

impl<'a> Siwe<'a> {
    pub fn new(nonce: &'a str) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            domain: SIWE_DOMAIN,
            uri: format!("https://{SIWE_DOMAIN}/login"),
            chain_id: SIWE_CHAIN,
            nonce,
            issued_at: now,
            expiration: Some(now + time::Duration::minutes(5)),
            not_before: None,
        }
    }
}

fn stamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_default()
}

impl Wallet {
    pub fn random() -> Self {
        Self {
            signer: PrivateKeySigner::random(),
        }
    }

    /// The EIP-55 address.
    pub fn address(&self) -> String {
        self.signer.address().to_checksum(None)
    }

    pub fn message(&self, nonce: &str) -> String {
        self.message_with(&Siwe::new(nonce))
    }

    pub fn message_with(&self, f: &Siwe<'_>) -> String {
        self.message_as(&self.address(), f)
    }

    /// A message naming `address` (say, a contract wallet this key owns).
    pub fn message_as(&self, address: &str, f: &Siwe<'_>) -> String {
        let mut text = format!(
            "{} wants you to sign in with your Ethereum account:\n{}\n\nSign in to gantry.\n\nURI: {}\nVersion: 1\nChain ID: {}\nNonce: {}\nIssued At: {}",
            f.domain,
            address,
            f.uri,
            f.chain_id,
            f.nonce,
            stamp(f.issued_at),
        );
        if let Some(t) = f.expiration {
            text.push_str(&format!("\nExpiration Time: {}", stamp(t)));
        }
        if let Some(t) = f.not_before {
            text.push_str(&format!("\nNot Before: {}", stamp(t)));
        }
        text
    }

    /// EIP-191 `personal_sign`, as 0x-hex.
    pub fn sign(&self, message: &str) -> String {
        let signature = self
            .signer
            .sign_message_sync(message.as_bytes())
            .expect("signing");
        format!("0x{}", alloy::primitives::hex::encode(signature.as_bytes()))
    }
}
