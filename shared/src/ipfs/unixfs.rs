//! The UnixFS importer, with Kubo's `ipfs add --cid-version=1` settings: raw leaves, fixed
//! 256 KiB chunks, a balanced DAG with at most 174 links per node, CIDv1 with sha2-256.

use super::dagpb::{Link, encode_file_node};
use super::{Cid, DAG_PB, RAW, cid_of};

/// Kubo's default chunk size (`size-262144`).
pub const CHUNK: usize = 256 * 1024;
/// Kubo's most links per file node (`UnixFSFileMaxLinks`).
pub const MAX_LINKS: usize = 174;

/// A file as IPFS stores it: its root CID, its size, and every block (children before parents,
/// the root last).
#[derive(Debug)]
pub struct Imported {
    pub root: Cid,
    pub size: u64,
    pub blocks: Vec<(Cid, Vec<u8>)>,
}

/// One node of the level being built: its CID, the bytes of file it covers, and the size of
/// its whole DAG (what a parent's link records as `Tsize`).
#[derive(Clone, Copy)]
struct Entry {
    cid: Cid,
    filesize: u64,
    tsize: u64,
}

/// Imports `bytes`. A file of one chunk (the empty file included) is a single raw block;
/// larger files get file nodes, level by level, each grouping up to 174 children, until one
/// root remains (so every leaf is at the same depth, as in Kubo's balanced layout).
pub fn import(bytes: &[u8]) -> Imported {
    let mut blocks = Vec::with_capacity(bytes.len() / CHUNK + 2);
    let chunks: Vec<&[u8]> = if bytes.is_empty() {
        vec![bytes]
    } else {
        bytes.chunks(CHUNK).collect()
    };
    let mut level: Vec<Entry> = chunks
        .into_iter()
        .map(|chunk| {
            let cid = cid_of(RAW, chunk);
            blocks.push((cid, chunk.to_vec()));
            let size = chunk.len() as u64;
            Entry {
                cid,
                filesize: size,
                tsize: size,
            }
        })
        .collect();
    while level.len() > 1 {
        level = level
            .chunks(MAX_LINKS)
            .map(|children| {
                let links: Vec<Link> = children
                    .iter()
                    .map(|c| Link {
                        cid: c.cid,
                        tsize: c.tsize,
                    })
                    .collect();
                let sizes: Vec<u64> = children.iter().map(|c| c.filesize).collect();
                let filesize = sizes.iter().sum();
                let block = encode_file_node(&links, filesize, &sizes);
                let cid = cid_of(DAG_PB, &block);
                let tsize = block.len() as u64 + children.iter().map(|c| c.tsize).sum::<u64>();
                blocks.push((cid, block));
                Entry {
                    cid,
                    filesize,
                    tsize,
                }
            })
            .collect();
    }
    let root = level
        .first()
        .map_or_else(|| cid_of(RAW, &[]), |entry| entry.cid);
    Imported {
        root,
        size: bytes.len() as u64,
        blocks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixture inputs: xorshift32 from seed 0x9E3779B9, the low byte of each step (the
    /// same stream tests/fixtures/cid/generate.mjs feeds the js importer).
    fn input(size: usize) -> Vec<u8> {
        let mut s: u32 = 0x9E37_79B9;
        (0..size)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                s.to_le_bytes()[0]
            })
            .collect()
    }

    #[derive(serde::Deserialize)]
    struct Vectors {
        vectors: Vec<Vector>,
    }

    #[derive(serde::Deserialize)]
    struct Vector {
        name: String,
        size: usize,
        cid: String,
    }

    /// Every vector the js reference importer produced with Kubo's settings: empty, 1 byte,
    /// exactly one chunk, one chunk + 1, several chunks, 174 chunks (one full level) and
    /// 174 chunks + 1 byte (a second level).
    #[test]
    fn cids_equal_the_reference_importers() -> crate::TestResult {
        let vectors: Vectors =
            serde_json::from_str(include_str!("../../../tests/fixtures/cid/vectors.json"))?;
        assert!(vectors.vectors.len() >= 7);
        for vector in vectors.vectors {
            let imported = import(&input(vector.size));
            assert_eq!(imported.root.to_string(), vector.cid, "{}", vector.name);
            assert_eq!(imported.size, vector.size as u64);
        }
        Ok(())
    }

    /// CIDs Kubo's own tests publish for `ipfs add --cid-version=1`.
    #[test]
    fn cids_equal_the_ones_kubo_publishes() {
        // kubo test/cli/add_test.go: shortStringCidV1.
        assert_eq!(
            import(b"hello world").root.to_string(),
            "bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e"
        );
        // kubo test/sharness/t0114-gateway-subdomains: `echo hello | ipfs add --cid-version 1`.
        assert_eq!(
            import(b"hello\n").root.to_string(),
            "bafkreicysg23kiwv34eg2d7qweipxwosdo2py4ldv42nbauguluen5v6am"
        );
    }

    #[test]
    fn a_second_level_has_two_children_and_every_block_hashes_to_its_cid() {
        let imported = import(&input(MAX_LINKS * CHUNK + 1));
        let root = imported
            .blocks
            .last()
            .map(|(cid, block)| (*cid, block.clone()));
        let Some((root_cid, root_block)) = root else {
            panic!("no blocks");
        };
        assert_eq!(root_cid, imported.root);
        let node = super::super::dagpb::decode(&root_block).unwrap_or_default();
        assert_eq!(node.links.len(), 2);
        assert_eq!(imported.blocks.len(), 175 + 2 + 1);
        for (cid, block) in &imported.blocks {
            assert!(super::super::block_matches(cid, block));
        }
    }
}
