//! Where documents live: one trait ([`IpfsStore`]) that every backend implements, and the
//! generic blockstore ([`Blockstore`]) the disk and S3 backends share. Which backend serves a
//! function is chosen by configuration in [`super::config`]; the backends live beside it
//! ([`super::disk`], [`super::kubo`], [`super::s3`], and [`super::pinning`] on top of any).
//!
//! Whatever the backend, the CID is computed by our importer first; a backend that reports
//! another CID is refused (502) and nothing is recorded. Bytes read back are re-imported and
//! must give the CID asked for (502 otherwise), so a backend can never serve altered content.

use super::{Cid, Imported, block_matches, dagpb, import};
use crate::error::AppError;
use async_trait::async_trait;

#[derive(Debug, thiserror::Error)]
pub enum IpfsError {
    /// The backend cannot be reached or failed (retry later).
    #[error("the IPFS backend is unavailable: {0}")]
    Unavailable(String),
    /// The backend answered with something other than what we computed or asked for.
    #[error("the IPFS backend returned {0}")]
    Mismatch(String),
    /// The backend refused or failed the request for good (a failed pin, a rejected token).
    #[error("{0}")]
    Refused(String),
}

impl From<IpfsError> for AppError {
    fn from(err: IpfsError) -> Self {
        tracing::warn!(error = %err, "IPFS backend");
        match err {
            IpfsError::Unavailable(_) => AppError::Unavailable(err.to_string()),
            IpfsError::Mismatch(_) | IpfsError::Refused(_) => AppError::BadGateway(err.to_string()),
        }
    }
}

pub type IpfsResult<T> = Result<T, IpfsError>;

/// What a backend says of a file it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    /// The CID the backend reports.
    pub cid: Cid,
    /// Pinned now (false: a pinning service still has the request queued).
    pub pinned: bool,
    /// While not pinned: the pinning service's request, to follow with [`IpfsStore::follow_pin`].
    pub pin_request: Option<String>,
}

/// A stored file and whether it is pinned yet.
pub struct Stored {
    pub file: Imported,
    pub pinned: bool,
    /// The pin request to follow while not pinned.
    pub pin_request: Option<String>,
}

#[async_trait]
pub trait IpfsStore: Send + Sync {
    /// Stores and pins `file` (already imported by us).
    async fn put(&self, file: &Imported, bytes: &[u8]) -> IpfsResult<Put>;
    /// The file's bytes, as the backend has them (not yet verified), or `None` when unknown.
    async fn fetch(&self, cid: &Cid) -> IpfsResult<Option<Vec<u8>>>;
    /// Whether the pin request `request` for `cid` (from a [`Put`]) is pinned now; an error
    /// when it failed or names another CID. Backends that pin as they store have nothing to
    /// follow.
    async fn follow_pin(&self, _cid: &Cid, _request: &str) -> IpfsResult<bool> {
        Ok(true)
    }
}

/// Stores `bytes` through `store`: our CID, checked against the backend's.
pub async fn store(store: &dyn IpfsStore, bytes: &[u8]) -> IpfsResult<Stored> {
    let file = import(bytes);
    let put = store.put(&file, bytes).await?;
    if put.cid != file.root {
        return Err(IpfsError::Mismatch(format!(
            "CID {}, but the content's CID is {}",
            put.cid, file.root
        )));
    }
    Ok(Stored {
        file,
        pinned: put.pinned,
        pin_request: put.pin_request,
    })
}

/// Reads `cid` through `store` and re-checks the bytes against it.
pub async fn read(store: &dyn IpfsStore, cid: &Cid) -> IpfsResult<Option<Vec<u8>>> {
    let Some(bytes) = store.fetch(cid).await? else {
        return Ok(None);
    };
    let actual = import(&bytes).root;
    if actual != *cid {
        return Err(IpfsError::Mismatch(format!(
            "bytes whose CID is {actual} for {cid}"
        )));
    }
    Ok(Some(bytes))
}

/// A place that keeps blocks by CID: the disk, an S3 bucket. [`Blockstore`] makes one an
/// [`IpfsStore`]: it writes every block of a file, and reads a file back by walking its DAG
/// from the root, checking every block against its CID on the way.
#[async_trait]
pub trait Blocks: Send + Sync {
    /// The block's bytes as kept, or `None` when there is no such block.
    async fn get_block(&self, cid: &Cid) -> IpfsResult<Option<Vec<u8>>>;
    /// Keeps `block` under `cid` (content-addressed: writing it again changes nothing).
    async fn put_block(&self, cid: &Cid, block: &[u8]) -> IpfsResult<()>;
}

pub struct Blockstore<B>(pub B);

impl<B: Blocks> Blockstore<B> {
    async fn block(&self, cid: &Cid) -> IpfsResult<Option<Vec<u8>>> {
        match self.0.get_block(cid).await? {
            Some(block) if block_matches(cid, &block) => Ok(Some(block)),
            Some(_) => Err(IpfsError::Mismatch(format!("a corrupt block for {cid}"))),
            None => Ok(None),
        }
    }
}

#[async_trait]
impl<B: Blocks> IpfsStore for Blockstore<B> {
    async fn put(&self, file: &Imported, _bytes: &[u8]) -> IpfsResult<Put> {
        for (cid, block) in &file.blocks {
            self.0.put_block(cid, block).await?;
        }
        Ok(Put {
            cid: file.root,
            pinned: true,
            pin_request: None,
        })
    }

    async fn fetch(&self, root: &Cid) -> IpfsResult<Option<Vec<u8>>> {
        let mut out = Vec::new();
        let mut stack = vec![*root];
        while let Some(cid) = stack.pop() {
            let Some(block) = self.block(&cid).await? else {
                return if cid == *root {
                    Ok(None)
                } else {
                    Err(IpfsError::Mismatch(format!("a DAG missing block {cid}")))
                };
            };
            if cid.codec() == super::RAW {
                out.extend_from_slice(&block);
                continue;
            }
            let node = dagpb::decode(&block)
                .ok_or_else(|| IpfsError::Mismatch(format!("a block {cid} that is not dag-pb")))?;
            out.extend_from_slice(&node.data);
            stack.extend(node.links.iter().rev());
        }
        Ok(Some(out))
    }
}
