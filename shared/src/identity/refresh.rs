//! Opaque tokens: 256 random bits, shown once, stored only as SHA-256. Refresh tokens, and the
//! single-use tokens of mailed links (password reset, email verification).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// Length of an encoded token: 32 bytes in unpadded base64url.
pub const ENCODED_LEN: usize = 43;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A new token and the hash to store.
pub fn generate() -> (String, Vec<u8>) {
    let mut raw = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut raw);
    let token = b64(&raw);
    let hash = hash(&token);
    (token, hash)
}

/// The stored form of a presented token, or `None` when it cannot be one of ours (checked
/// before touching the database).
pub fn parse(presented: &str) -> Option<Vec<u8>> {
    let well_formed = presented.len() == ENCODED_LEN
        && URL_SAFE_NO_PAD
            .decode(presented)
            .is_ok_and(|raw| raw.len() == 32);
    well_formed.then(|| hash(presented))
}

/// The request schema of such a token.
pub fn schema() -> utoipa::openapi::schema::Object {
    crate::domain::schema::string(Some(ENCODED_LEN), Some(ENCODED_LEN))
        .pattern(Some("^[A-Za-z0-9_-]+$"))
        .description(Some("An opaque token: 43 base64url characters"))
        .build()
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_bit_and_hash_consistently() {
        let (token, stored) = generate();
        assert_eq!(token.len(), ENCODED_LEN);
        assert_eq!(parse(&token), Some(stored));
        assert_ne!(generate().0, token);
    }

    #[test]
    fn malformed_tokens_are_refused_without_lookup() {
        assert_eq!(parse(""), None);
        assert_eq!(parse("short"), None);
        assert_eq!(parse(&"!".repeat(ENCODED_LEN)), None);
    }
}
