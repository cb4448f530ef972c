//! Content addressing for documents: our own UnixFS importer (CIDs equal to Kubo's
//! `ipfs add --cid-version=1`), the verifier that re-checks bytes against a CID, and the
//! backends that store them (a local disk blockstore by default; Kubo RPC and the Pinning
//! Service API next, an S3 blockstore for Lambda).

pub mod dagpb;
pub mod store;
pub mod unixfs;

pub use cid::Cid;
pub use store::{IpfsConfig, IpfsError, IpfsStore};
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

/// Parses a CID from text; `None` when it is not one.
pub fn parse_cid(text: &str) -> Option<Cid> {
    Cid::try_from(text).ok()
}

/// The text form we use everywhere: CIDv1, base32 (what `Cid::to_string` gives for v1).
pub fn to_text(cid: &Cid) -> String {
    cid.to_string()
}
