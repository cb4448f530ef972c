//! HMAC-SHA256 webhook signatures, as Stripe and BTCPay both sign: computed over the raw body
//! (and, for Stripe, the timestamp), compared in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Whether `hex_signature` is the HMAC-SHA256 under `key` of `parts` concatenated. A signature
/// that is not hex, or of the wrong length, is simply wrong. The comparison is constant-time
/// (`hmac`'s `verify_slice`).
pub fn matches(key: &[u8], parts: &[&[u8]], hex_signature: &str) -> bool {
    let Ok(signature) = alloy::hex::decode(hex_signature) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return false;
    };
    for part in parts {
        mac.update(part);
    }
    mac.verify_slice(&signature).is_ok()
}

/// The hex HMAC-SHA256 under `key` of `parts` concatenated (tests and benchmarks sign with it).
pub fn sign(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable_key());
    for part in parts {
        mac.update(part);
    }
    alloy::hex::encode(mac.finalize().into_bytes())
}

/// HMAC takes a key of any length, so `new_from_slice` cannot fail.
fn unreachable_key() -> HmacSha256 {
    unreachable!("HMAC accepts keys of every length")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 4231, test case 2.
    #[test]
    fn rfc4231_vector() {
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert_eq!(
            sign(b"Jefe", &[b"what do ya want ", b"for nothing?"]),
            expected
        );
        assert!(matches(
            b"Jefe",
            &[b"what do ya want for nothing?"],
            expected
        ));
        assert!(!matches(
            b"jefe",
            &[b"what do ya want for nothing?"],
            expected
        ));
        assert!(!matches(
            b"Jefe",
            &[b"what do ya want for nothing!"],
            expected
        ));
        assert!(!matches(b"Jefe", &[b"what do ya want for nothing?"], "zz"));
        assert!(!matches(
            b"Jefe",
            &[b"what do ya want for nothing?"],
            &expected[..62]
        ));
    }
}
