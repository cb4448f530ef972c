//! Content addressing for documents: our own UnixFS importer (CIDs equal to Kubo's
//! `ipfs add --cid-version=1`), the verifier that re-checks bytes against a CID, and the
//! backends that store them (a local disk blockstore by default, Kubo RPC, an S3 blockstore
//! for Lambda, and a pinning service in front of any of them).

pub mod config;
pub mod dagpb;
pub mod disk;
pub mod kubo;
pub mod pinning;
pub mod s3;
pub mod store;
pub mod unixfs;

pub use cid::Cid;
pub use config::IpfsConfig;
pub use store::{IpfsError, IpfsStore};
pub use unixfs::{Imported, import};

/// Multicodec of raw blocks (UnixFS leaves).
pub const RAW: u64 = 0x55;
/// Multicodec of dag-pb blocks (UnixFS file nodes).
pub const DAG_PB: u64 = 0x70;
/// Multihash code of sha2-256.
pub const SHA2_256: u64 = 0x12;

/// The CIDv1 of `block` under `codec`, hashed with sha2-256.
pub fn cid_of(codec: u64, block: &[u8]) -> Cid {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(block);
    // A 32-byte digest always fits the 64-byte multihash: `wrap` cannot fail here.
    let hash = multihash::Multihash::<64>::wrap(SHA2_256, &digest).unwrap_or_default();
    Cid::new_v1(codec, hash)
}

/// Whether `block` is what `cid` names (sha2-256 only; other hashes are never ours).
pub fn block_matches(cid: &Cid, block: &[u8]) -> bool {
    cid.hash().code() == SHA2_256 && cid_of(cid.codec(), block) == *cid
}

/// The text shape of the CIDs requests may carry: CIDv1 in base32 with a sha2-256 multihash
/// (what this API issues), or a CIDv0. Text of another shape is a 400; text of this shape that
/// does not decode names nothing we hold (404).
pub const CID_PATTERN: &str = "^(b[a-z2-7]{58}|Qm[1-9A-HJ-NP-Za-km-z]{44})$";

/// Whether `text` has the shape [`CID_PATTERN`] says.
pub fn has_cid_shape(text: &str) -> bool {
    let base58 = |c: char| c.is_ascii_alphanumeric() && !matches!(c, '0' | 'O' | 'I' | 'l');
    match (text.strip_prefix('b'), text.strip_prefix("Qm")) {
        (Some(rest), _) if rest.len() == 58 => rest
            .chars()
            .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)),
        (_, Some(rest)) if rest.len() == 44 => rest.chars().all(base58),
        _ => false,
    }
}

/// Parses a CID from text; `None` when it is not one.
pub fn parse_cid(text: &str) -> Option<Cid> {
    Cid::try_from(text).ok()
}

/// The text form we use everywhere: CIDv1, base32 (what `Cid::to_string` gives for v1).
pub fn to_text(cid: &Cid) -> String {
    cid.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cid_pattern_says_what_has_cid_shape_does() -> crate::TestResult {
        let pattern = regex::Regex::new(CID_PATTERN)?;
        let ours = import(b"x").root.to_string();
        for text in [
            ours.as_str(),
            "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXEN",
            "QmZULkCELmmk5XNfCgTnCyFgAVxBRBXyDHGGMVoLFLiXE0",
            &ours.to_uppercase(),
            &ours[..58],
            "0",
            "bafy",
        ] {
            assert_eq!(pattern.is_match(text), has_cid_shape(text), "{text}");
        }
        Ok(())
    }
}
