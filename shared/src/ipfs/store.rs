//! Where documents live: one trait, chosen by configuration (`IPFS_BACKEND`).
//! - `disk` (the default): a blockstore on local disk, blocks keyed by CID. Refused under
//!   Lambda, whose disk does not outlive an instance.
//! - `kubo`: a Kubo node's RPC API (`/api/v0/add` with cid-version=1 and raw leaves, pinned;
//!   `/api/v0/cat`).
//!
//! Whatever the backend, the CID is computed by our importer first; a backend that reports
//! another CID is refused (502) and nothing is recorded. Bytes read back are re-imported and
//! must give the CID asked for (502 otherwise), so a backend can never serve altered content.

use super::{Cid, Imported, block_matches, dagpb, import};
use crate::config::{ConfigError, Env};
use crate::error::AppError;
use async_trait::async_trait;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum IpfsError {
    /// The backend cannot be reached or failed (retry later).
    #[error("the IPFS backend is unavailable: {0}")]
    Unavailable(String),
    /// The backend answered with something other than what we computed or asked for.
    #[error("the IPFS backend returned {0}")]
    Mismatch(String),
}

impl From<IpfsError> for AppError {
    fn from(err: IpfsError) -> Self {
        tracing::warn!(error = %err, "IPFS backend");
        match err {
            IpfsError::Unavailable(_) => AppError::Unavailable(err.to_string()),
            IpfsError::Mismatch(_) => AppError::BadGateway(err.to_string()),
        }
    }
}

pub type IpfsResult<T> = Result<T, IpfsError>;

#[async_trait]
pub trait IpfsStore: Send + Sync {
    /// Stores and pins `file` (already imported by us). Returns the CID the backend reports.
    async fn put(&self, file: &Imported, bytes: &[u8]) -> IpfsResult<Cid>;
    /// The file's bytes, as the backend has them (not yet verified), or `None` when unknown.
    async fn fetch(&self, cid: &Cid) -> IpfsResult<Option<Vec<u8>>>;
}

/// Stores `bytes` through `store`: our CID, checked against the backend's.
pub async fn store(store: &dyn IpfsStore, bytes: &[u8]) -> IpfsResult<Imported> {
    let file = import(bytes);
    let reported = store.put(&file, bytes).await?;
    if reported != file.root {
        return Err(IpfsError::Mismatch(format!(
            "CID {reported}, but the content's CID is {}",
            file.root
        )));
    }
    Ok(file)
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

/// Which backend, from `IPFS_BACKEND` (`disk` or `kubo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpfsConfig {
    /// `IPFS_BLOCKSTORE_DIR` (default `.data/ipfs`).
    Disk { dir: PathBuf },
    /// `IPFS_KUBO_URL`, the RPC API's base URL (e.g. `http://127.0.0.1:5001`).
    Kubo { url: String },
}

impl IpfsConfig {
    pub fn from_env(env: &Env, under_lambda: bool) -> Result<Self, ConfigError> {
        let backend = env.get("IPFS_BACKEND").unwrap_or_else(|| "disk".into());
        match backend.as_str() {
            "disk" if under_lambda => Err(ConfigError::invalid(
                "IPFS_BACKEND",
                "disk is refused under Lambda: an instance's disk is ephemeral; use kubo",
            )),
            "disk" => Ok(Self::Disk {
                dir: env
                    .get("IPFS_BLOCKSTORE_DIR")
                    .map_or_else(|| PathBuf::from(".data/ipfs"), PathBuf::from),
            }),
            "kubo" => {
                let url = env.get("IPFS_KUBO_URL").ok_or_else(|| {
                    ConfigError::invalid("IPFS_KUBO_URL", "is required with IPFS_BACKEND=kubo")
                })?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(ConfigError::invalid(
                        "IPFS_KUBO_URL",
                        "must be an http(s) URL",
                    ));
                }
                Ok(Self::Kubo {
                    url: url.trim_end_matches('/').to_owned(),
                })
            }
            _ => Err(ConfigError::invalid("IPFS_BACKEND", "must be disk or kubo")),
        }
    }

    pub fn build(&self) -> Arc<dyn IpfsStore> {
        match self {
            Self::Disk { dir } => Arc::new(DiskBlockstore::new(dir.clone())),
            Self::Kubo { url } => Arc::new(KuboRpc::new(url.clone())),
        }
    }
}

/// A blockstore on local disk: one file per block, named by its CID. Reading walks the DAG from
/// the root and checks every block against its CID on the way.
pub struct DiskBlockstore {
    dir: PathBuf,
}

fn io(err: std::io::Error) -> IpfsError {
    IpfsError::Unavailable(format!("local blockstore: {err}"))
}

impl DiskBlockstore {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    async fn block(&self, cid: &Cid) -> IpfsResult<Option<Vec<u8>>> {
        match tokio::fs::read(self.dir.join(cid.to_string())).await {
            Ok(block) if block_matches(cid, &block) => Ok(Some(block)),
            Ok(_) => Err(IpfsError::Mismatch(format!("a corrupt block for {cid}"))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io(err)),
        }
    }
}

#[async_trait]
impl IpfsStore for DiskBlockstore {
    async fn put(&self, file: &Imported, _bytes: &[u8]) -> IpfsResult<Cid> {
        tokio::fs::create_dir_all(&self.dir).await.map_err(io)?;
        for (cid, block) in &file.blocks {
            let path = self.dir.join(cid.to_string());
            if tokio::fs::try_exists(&path).await.map_err(io)? {
                continue; // content-addressed: already there means already right
            }
            // Write then rename, so a reader never sees half a block.
            let partial = self
                .dir
                .join(format!("{cid}.{}.part", uuid::Uuid::new_v4()));
            tokio::fs::write(&partial, block).await.map_err(io)?;
            tokio::fs::rename(&partial, &path).await.map_err(io)?;
        }
        Ok(file.root)
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

/// A Kubo node's RPC API.
pub struct KuboRpc {
    base: String,
    client: std::sync::OnceLock<reqwest::Client>,
}

#[derive(serde::Deserialize)]
struct Added {
    #[serde(rename = "Hash")]
    hash: String,
}

impl KuboRpc {
    pub fn new(base: String) -> Self {
        Self {
            base,
            client: std::sync::OnceLock::new(),
        }
    }

    fn client(&self) -> &reqwest::Client {
        self.client.get_or_init(|| {
            crate::tls::install_provider();
            reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(20))
                .build()
                .unwrap_or_default()
        })
    }

    fn unavailable(err: impl std::fmt::Display) -> IpfsError {
        IpfsError::Unavailable(format!("Kubo RPC: {err}"))
    }
}

#[async_trait]
impl IpfsStore for KuboRpc {
    async fn put(&self, _file: &Imported, bytes: &[u8]) -> IpfsResult<Cid> {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes.to_vec()).file_name("file"),
        );
        let url = format!(
            "{}/api/v0/add?cid-version=1&raw-leaves=true&chunker=size-262144&hash=sha2-256&pin=true&quieter=true",
            self.base
        );
        let response = self
            .client()
            .post(url)
            .multipart(form)
            .send()
            .await
            .map_err(Self::unavailable)?;
        if !response.status().is_success() {
            return Err(Self::unavailable(format!(
                "add answered {}",
                response.status()
            )));
        }
        let added: Added = response
            .json()
            .await
            .map_err(|e| IpfsError::Mismatch(format!("an add response that is not JSON: {e}")))?;
        Cid::try_from(added.hash.as_str())
            .map_err(|_| IpfsError::Mismatch(format!("{:?}, which is not a CID", added.hash)))
    }

    async fn fetch(&self, cid: &Cid) -> IpfsResult<Option<Vec<u8>>> {
        let url = format!("{}/api/v0/cat?arg={cid}", self.base);
        let response = self
            .client()
            .post(url)
            .send()
            .await
            .map_err(Self::unavailable)?;
        if response.status() == reqwest::StatusCode::INTERNAL_SERVER_ERROR {
            // Kubo answers 500 with a JSON error for content it cannot find locally (offline).
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(Self::unavailable(format!(
                "cat answered {}",
                response.status()
            )));
        }
        let bytes = response.bytes().await.map_err(Self::unavailable)?;
        Ok(Some(bytes.to_vec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_disk_blockstore_round_trips_and_detects_corruption() -> crate::TestResult {
        let dir = std::env::temp_dir().join(format!("gantry-ipfs-{}", uuid::Uuid::new_v4()));
        let disk = DiskBlockstore::new(dir.clone());
        let bytes: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
        let file = store(&disk, &bytes).await?;
        assert_eq!(read(&disk, &file.root).await?, Some(bytes.clone()));
        let unknown = import(b"never stored").root;
        assert_eq!(read(&disk, &unknown).await?, None);
        // Flip one byte of a leaf: the read fails instead of serving altered bytes.
        let (leaf, _) = &file.blocks[1];
        let path = dir.join(leaf.to_string());
        let mut block = std::fs::read(&path)?;
        block[0] ^= 1;
        std::fs::write(&path, block)?;
        assert!(matches!(
            read(&disk, &file.root).await,
            Err(IpfsError::Mismatch(_))
        ));
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    #[test]
    fn disk_is_refused_under_lambda_and_kubo_needs_a_url() {
        let env = Env::from_pairs([("X", "y")]);
        assert!(IpfsConfig::from_env(&env, true).is_err());
        assert!(matches!(
            IpfsConfig::from_env(&env, false),
            Ok(IpfsConfig::Disk { .. })
        ));
        let env = Env::from_pairs([("IPFS_BACKEND", "kubo")]);
        assert!(IpfsConfig::from_env(&env, true).is_err());
        let env = Env::from_pairs([
            ("IPFS_BACKEND", "kubo"),
            ("IPFS_KUBO_URL", "http://127.0.0.1:5001/"),
        ]);
        assert_eq!(
            IpfsConfig::from_env(&env, true).ok(),
            Some(IpfsConfig::Kubo {
                url: "http://127.0.0.1:5001".into()
            })
        );
    }
}
