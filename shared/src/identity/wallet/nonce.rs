//! SIWE nonces that cost no database write to issue.
//!
//! A nonce carries its own expiry and is authenticated with HMAC-SHA256 under
//! `SIWE_NONCE_SECRET`: `hex(expiry_be32 ‖ random_96 ‖ tag_96)`, 56 lowercase hex characters
//! (alphanumeric, as EIP-4361 requires, with 96 random bits). A nonce bound to an address has
//! the address in its tag. Issuing is pure computation; single use is enforced when a nonce is
//! spent: it is inserted into `spent_nonces` inside the transaction that opens the session, so of
//! concurrent submissions exactly one commits. This module owns that table: a nonce is spent only
//! by the database function `spend_nonce` (migration `20261208000001`), which [`spend`] calls and
//! so does wallet login as the first step of its one-statement sign-in
//! (`identity::wallet::login`); both are covered by the concurrent-submission tests. [`PURGE`]
//! deletes the rows of expired nonces.

use crate::purge::Purge;
use alloy::primitives::{Address, hex};
use hmac::{Hmac, Mac};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use sqlx::PgConnection;
use std::time::Duration;
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

const RANDOM_BYTES: usize = 12;
const TAG_BYTES: usize = 12;
const RAW_LEN: usize = 4 + RANDOM_BYTES + TAG_BYTES;
/// Characters in an encoded nonce.
pub const NONCE_LEN: usize = RAW_LEN * 2;
const DOMAIN: &[u8] = b"gantry/siwe-nonce/v1";
/// Shortest secret accepted (bytes).
pub const MIN_SECRET_BYTES: usize = 32;

/// The nonce MAC key.
#[derive(Clone)]
pub struct NonceKey(SecretString);

impl std::fmt::Debug for NonceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceKey(..)")
    }
}

/// A nonce as issued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedNonce {
    pub nonce: String,
    pub expires_at: OffsetDateTime,
}

/// Why a presented nonce is not usable. Never shown: every case is the same 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NonceInvalid {
    #[error("not a nonce of ours")]
    Forged,
    #[error("expired")]
    Expired,
}

impl NonceKey {
    /// `None` when the secret is shorter than [`MIN_SECRET_BYTES`].
    pub fn new(secret: SecretString) -> Option<Self> {
        (secret.expose_secret().len() >= MIN_SECRET_BYTES).then_some(Self(secret))
    }

    /// A random key (tests, `gantry keygen`).
    pub fn generate_secret() -> String {
        let mut raw = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut raw);
        hex::encode(raw)
    }

    fn tag(&self, body: &[u8], address: Option<Address>) -> [u8; TAG_BYTES] {
        // new_from_slice accepts keys of any length for HMAC.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(DOMAIN);
        mac.update(body);
        if let Some(address) = address {
            mac.update(address.as_slice());
        }
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }

    /// A fresh nonce valid for `ttl` from `now`, bound to `address` when given.
    pub fn issue(
        &self,
        address: Option<Address>,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> IssuedNonce {
        // Whole seconds, rounded down so the nonce never outlives its ttl.
        let expires = now
            .unix_timestamp()
            .saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(0));
        let expiry = u32::try_from(expires).unwrap_or(u32::MAX);
        let mut raw = [0u8; RAW_LEN];
        raw[..4].copy_from_slice(&expiry.to_be_bytes());
        rand::rngs::OsRng.fill_bytes(&mut raw[4..4 + RANDOM_BYTES]);
        let tag = self.tag(&raw[..4 + RANDOM_BYTES], address);
        raw[4 + RANDOM_BYTES..].copy_from_slice(&tag);
        IssuedNonce {
            nonce: hex::encode(raw),
            expires_at: OffsetDateTime::from_unix_timestamp(i64::from(expiry))
                .unwrap_or(OffsetDateTime::UNIX_EPOCH),
        }
    }

    /// Checks that `nonce` is one of ours, unexpired at `now`, and either unbound or bound to
    /// `address`. Returns its expiry. Says nothing about whether it was spent.
    pub fn check(
        &self,
        nonce: &str,
        address: Address,
        now: OffsetDateTime,
    ) -> Result<OffsetDateTime, NonceInvalid> {
        let raw: [u8; RAW_LEN] = (nonce.len() == NONCE_LEN)
            .then(|| hex::decode(nonce).ok())
            .flatten()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(NonceInvalid::Forged)?;
        let (body, tag) = raw.split_at(4 + RANDOM_BYTES);
        let matches = |bound: Option<Address>| bool::from(self.tag(body, bound).ct_eq(tag));
        if !(matches(None) || matches(Some(address))) {
            return Err(NonceInvalid::Forged);
        }
        let expiry = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        let expires_at = OffsetDateTime::from_unix_timestamp(i64::from(expiry))
            .map_err(|_| NonceInvalid::Forged)?;
        if expires_at <= now {
            return Err(NonceInvalid::Expired);
        }
        Ok(expires_at)
    }
}

/// Spends `nonce` inside the caller's transaction. `false`: it was spent before. A concurrent
/// spender of the same nonce waits on the primary key until this transaction ends, then finds
/// it taken, so exactly one of them commits a session.
pub async fn spend(
    conn: &mut PgConnection,
    nonce: &str,
    expires_at: OffsetDateTime,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar!(
        r#"SELECT spend_nonce($1, $2) AS "spent!""#,
        nonce,
        expires_at
    )
    .fetch_one(conn)
    .await
}

/// Spent nonces for the housekeeping job: a nonce past its expiry is refused on its own, so its
/// row no longer guards anything.
pub const PURGE: Purge = Purge {
    name: "spent_nonces",
    run: |pool| {
        Box::pin(async move {
            sqlx::query!("DELETE FROM spent_nonces WHERE expires_at < now()")
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> NonceKey {
        NonceKey(SecretString::from(NonceKey::generate_secret()))
    }

    const TTL: Duration = Duration::from_secs(600);

    #[test]
    fn a_nonce_is_alphanumeric_with_96_random_bits_and_checks_out() {
        let (key, now, address) = (key(), OffsetDateTime::now_utc(), Address::repeat_byte(7));
        let issued = key.issue(None, TTL, now);
        assert_eq!(issued.nonce.len(), NONCE_LEN);
        assert!(issued.nonce.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(issued.nonce, key.issue(None, TTL, now).nonce);
        assert_eq!(
            key.check(&issued.nonce, address, now),
            Ok(issued.expires_at)
        );
        assert!(
            issued.expires_at <= now + TTL
                && issued.expires_at > now + TTL - time::Duration::SECOND
        );
    }

    #[test]
    fn expired_forged_and_foreign_nonces_fail() {
        let (key, now) = (key(), OffsetDateTime::now_utc());
        let issued = key.issue(None, TTL, now);
        let anyone = Address::repeat_byte(1);
        let later = now + TTL + time::Duration::SECOND;
        assert_eq!(
            key.check(&issued.nonce, anyone, later),
            Err(NonceInvalid::Expired)
        );
        // Another key's nonce, a flipped bit, a wrong length, non-hex.
        let other = self::key().issue(None, TTL, now);
        assert_eq!(
            key.check(&other.nonce, anyone, now),
            Err(NonceInvalid::Forged)
        );
        let mut flipped = issued.nonce.clone().into_bytes();
        flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap_or_default();
        assert_eq!(key.check(&flipped, anyone, now), Err(NonceInvalid::Forged));
        assert_eq!(
            key.check("abcdef12", anyone, now),
            Err(NonceInvalid::Forged)
        );
        let not_hex = "z".repeat(NONCE_LEN);
        assert_eq!(key.check(&not_hex, anyone, now), Err(NonceInvalid::Forged));
    }

    #[test]
    fn a_bound_nonce_works_only_for_its_address() {
        let (key, now) = (key(), OffsetDateTime::now_utc());
        let (owner, other) = (Address::repeat_byte(2), Address::repeat_byte(3));
        let bound = key.issue(Some(owner), TTL, now);
        assert!(key.check(&bound.nonce, owner, now).is_ok());
        assert_eq!(
            key.check(&bound.nonce, other, now),
            Err(NonceInvalid::Forged)
        );
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(NonceKey::new(SecretString::from("short")).is_none());
        assert!(NonceKey::new(SecretString::from(NonceKey::generate_secret())).is_some());
    }
}
