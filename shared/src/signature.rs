//! HMAC-SHA256 signatures, as Stripe and BTCPay sign their webhooks and the outbox relay signs the
//! jobs it sends over HTTP (OpenFaaS): computed over the raw body (and a timestamp), compared in
//! constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The HMAC-SHA256 under `key` of `parts` concatenated.
pub fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC takes a key of any length, so this cannot fail; the fallback is never reached.
    let Ok(mut mac) = HmacSha256::new_from_slice(key) else {
        return [0; 32];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Whether `hex_signature` (either case) spells `expected`, compared in constant time. Not hex,
/// or another length, is simply unequal.
pub fn hex_eq(expected: &[u8; 32], hex_signature: &str) -> bool {
    let mut given = [0u8; 32];
    if alloy::hex::decode_to_slice(hex_signature, &mut given).is_err() {
        return false;
    }
    bool::from(subtle::ConstantTimeEq::ct_eq(&given[..], &expected[..]))
}

/// Whether `hex_signature` is the HMAC-SHA256 under `key` of `parts` concatenated.
pub fn matches(key: &[u8], parts: &[&[u8]], hex_signature: &str) -> bool {
    hex_eq(&mac(key, parts), hex_signature)
}

/// The hex HMAC-SHA256 under `key` of `parts` concatenated (tests and benchmarks sign with it).
pub fn sign(key: &[u8], parts: &[&[u8]]) -> String {
    alloy::hex::encode(mac(key, parts))
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
