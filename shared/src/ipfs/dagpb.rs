//! dag-pb, the protobuf envelope of UnixFS nodes, and the UnixFS `Data` message inside it.
//!
//! Hand-written: the encoding is four small protobuf messages, and no maintained Rust crate
//! builds UnixFS files with Kubo's balanced layout (the rs-ipfs and iroh UnixFS crates are
//! archived). Field order follows the dag-pb spec's canonical form (Links before Data), which
//! is what makes our CIDs byte-identical to Kubo's.

use cid::Cid;

/// UnixFS `Data.Type` of a file node.
const UNIXFS_FILE: u64 = 2;

fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8 & 0x7f) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn key(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, (field << 3) | wire);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    key(out, field, 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn varint_field(out: &mut Vec<u8>, field: u64, n: u64) {
    key(out, field, 0);
    varint(out, n);
}

/// One link of a file node: the child, and the total size of the child's DAG (`Tsize`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub cid: Cid,
    pub tsize: u64,
}

/// Encodes a UnixFS file node: `links` to its children and, in `Data`, the file's size and each
/// child's file size (`blocksizes`). Links carry an empty name, as Kubo writes them.
pub fn encode_file_node(links: &[Link], filesize: u64, blocksizes: &[u64]) -> Vec<u8> {
    let mut data = Vec::with_capacity(16 + blocksizes.len() * 4);
    varint_field(&mut data, 1, UNIXFS_FILE);
    varint_field(&mut data, 3, filesize);
    for size in blocksizes {
        varint_field(&mut data, 4, *size);
    }
    let mut node = Vec::with_capacity(links.len() * 44 + data.len() + 4);
    for link in links {
        let mut encoded = Vec::with_capacity(44);
        bytes_field(&mut encoded, 1, &link.cid.to_bytes());
        bytes_field(&mut encoded, 2, b"");
        varint_field(&mut encoded, 3, link.tsize);
        bytes_field(&mut node, 2, &encoded);
    }
    bytes_field(&mut node, 1, &data);
    node
}

/// What a reader needs from a dag-pb node: its children in order, and the file bytes the node
/// holds itself (UnixFS `Data.Data`, for nodes that carry data instead of raw leaves).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Node {
    pub links: Vec<Cid>,
    pub data: Vec<u8>,
}

/// One protobuf field: number, wire type, the varint (wire type 0) and the bytes (wire type 2).
type Field<'a> = (u64, u64, u64, &'a [u8]);

/// A protobuf reader over `buf`: every field in order. `None` on malformed input.
fn fields(mut buf: &[u8]) -> Option<Vec<Field<'_>>> {
    fn read_varint(buf: &mut &[u8]) -> Option<u64> {
        let mut n = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = buf.split_first()?;
            *buf = rest;
            n |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(n);
            }
        }
        None
    }
    let mut out = Vec::new();
    while !buf.is_empty() {
        let tag = read_varint(&mut buf)?;
        let (field, wire) = (tag >> 3, tag & 7);
        match wire {
            0 => out.push((field, wire, read_varint(&mut buf)?, &[][..])),
            2 => {
                let len = usize::try_from(read_varint(&mut buf)?).ok()?;
                if len > buf.len() {
                    return None;
                }
                let (value, rest) = buf.split_at(len);
                buf = rest;
                out.push((field, wire, 0, value));
            }
            _ => return None,
        }
    }
    Some(out)
}

/// Decodes a dag-pb node; `None` when it is not one.
pub fn decode(block: &[u8]) -> Option<Node> {
    let mut node = Node::default();
    for (field, wire, _, value) in fields(block)? {
        match (field, wire) {
            (2, 2) => {
                let hash = fields(value)?
                    .into_iter()
                    .find(|(f, w, _, _)| *f == 1 && *w == 2)?
                    .3;
                node.links.push(Cid::try_from(hash).ok()?);
            }
            (1, 2) => {
                for (f, w, _, v) in fields(value)? {
                    if f == 2 && w == 2 {
                        node.data.extend_from_slice(v);
                    }
                }
            }
            _ => {}
        }
    }
    Some(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_node_round_trips() {
        let child = crate::ipfs::cid_of(crate::ipfs::RAW, b"leaf");
        let block = encode_file_node(
            &[Link {
                cid: child,
                tsize: 4,
            }],
            4,
            &[4],
        );
        let node = decode(&block).unwrap_or_default();
        assert_eq!(node.links, [child]);
        assert!(node.data.is_empty());
        assert!(decode(&[0x12, 0x05, 0x00]).is_none(), "truncated");
    }
}
