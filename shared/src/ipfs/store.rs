//! Where documents live: one trait, chosen by configuration (`IPFS_BACKEND`).
//! - `disk` (the default): a blockstore on local disk, blocks keyed by CID. Refused under
//!   Lambda, whose disk does not outlive an instance.
//! - `kubo`: a Kubo node's RPC API (`/api/v0/add` with cid-version=1 and raw leaves, pinned;
//!   `/api/v0/cat`).
//! - `s3`: a blockstore in an S3 bucket, blocks keyed by CID ([`super::s3`]).
//!
//! With `IPFS_PINNING_URL` set, a pinning service ([`super::pinning`]) pins what the backend
//! holds.
//!
//! Whatever the backend, the CID is computed by our importer first; a backend that reports
//! another CID is refused (502) and nothing is recorded. Bytes read back are re-imported and
//! must give the CID asked for (502 otherwise), so a backend can never serve altered content.

use super::pinning::{PinningConfig, PinningService};
use super::s3::{S3Blocks, S3Bucket, S3Settings};
use super::{Cid, Imported, block_matches, dagpb, import};
use crate::config::{ConfigError, Env};
use crate::error::AppError;
use async_trait::async_trait;
use secrecy::SecretString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Put {
    /// The CID the backend reports.
    pub cid: Cid,
    /// Pinned now (false: a pinning service still has the request queued).
    pub pinned: bool,
}

/// A stored file and whether it is pinned yet.
pub struct Stored {
    pub file: Imported,
    pub pinned: bool,
}

#[async_trait]
pub trait IpfsStore: Send + Sync {
    /// Stores and pins `file` (already imported by us).
    async fn put(&self, file: &Imported, bytes: &[u8]) -> IpfsResult<Put>;
    /// The file's bytes, as the backend has them (not yet verified), or `None` when unknown.
    async fn fetch(&self, cid: &Cid) -> IpfsResult<Option<Vec<u8>>>;
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

/// What a function that stores or reads documents needs from its deployment. A Lambda's disk is
/// ephemeral, so under SAM blocks go to the stack's S3 bucket; OpenFaaS replicas share no disk,
/// so there they go to a Kubo node.
pub const NEED: crate::function::Need = {
    use crate::function::{AwsAccess, FaasValue, Need, SamValue, Var, optional};
    Need {
        name: "ipfs",
        can_be_unavailable: true,
        vars: &[
            Var {
                name: "IPFS_BACKEND",
                sam: SamValue::Fixed { value: "s3" },
                openfaas: FaasValue::Value { value: "kubo" },
            },
            Var {
                name: "IPFS_S3_BUCKET",
                sam: SamValue::Fixed {
                    value: "!Ref DocumentsBucket",
                },
                openfaas: FaasValue::Unset,
            },
            Var {
                name: "IPFS_KUBO_URL",
                sam: SamValue::Unset,
                openfaas: FaasValue::Value {
                    value: "http://kubo.openfaas:5001",
                },
            },
            Var {
                name: "IPFS_PINNING_URL",
                sam: optional(
                    "IpfsPinningUrl",
                    false,
                    "An IPFS Pinning Service API base URL (its /pins is below it) that pins every document too; empty for none",
                ),
                openfaas: FaasValue::Unset,
            },
            Var {
                name: "IPFS_PINNING_TOKEN",
                sam: optional(
                    "IpfsPinningToken",
                    true,
                    "The pinning service's access token (required with IpfsPinningUrl)",
                ),
                openfaas: FaasValue::Unset,
            },
            Var {
                name: "IPFS_PINNING_ORIGINS",
                sam: optional(
                    "IpfsPinningOrigins",
                    false,
                    "Comma-separated multiaddrs of the IPFS node that serves the documents' blocks to the pinning service",
                ),
                openfaas: FaasValue::Unset,
            },
        ],
        aws: &[AwsAccess::DocumentsBucket],
    }
};

/// Where documents live: the backend (`IPFS_BACKEND`) and, optionally, a pinning service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpfsConfig {
    pub backend: Backend,
    /// `IPFS_PINNING_URL` and its settings, when set.
    pub pinning: Option<PinningConfig>,
}

/// Which backend holds the bytes, from `IPFS_BACKEND` (`disk`, `kubo` or `s3`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `IPFS_BLOCKSTORE_DIR` (default `.data/ipfs`).
    Disk { dir: PathBuf },
    /// `IPFS_KUBO_URL`, the RPC API's base URL (e.g. `http://127.0.0.1:5001`).
    Kubo { url: String },
    /// `IPFS_S3_BUCKET`, and `IPFS_S3_PREFIX` (default `blocks/`) before each CID.
    S3 { bucket: String, prefix: String },
}

/// An http(s) URL setting without its trailing slash.
fn http_url(env: &Env, name: &'static str, backend: &str) -> Result<String, ConfigError> {
    let url = env.get(name).ok_or_else(|| {
        ConfigError::invalid(name, format!("is required with IPFS_BACKEND={backend}"))
    })?;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ConfigError::invalid(name, "must be an http(s) URL"));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

impl IpfsConfig {
    pub fn from_env(env: &Env, under_lambda: bool) -> Result<Self, ConfigError> {
        let name = env.get("IPFS_BACKEND").unwrap_or_else(|| "disk".into());
        let backend = match name.as_str() {
            "disk" if under_lambda => {
                return Err(ConfigError::invalid(
                    "IPFS_BACKEND",
                    "disk is refused under Lambda: an instance's disk is ephemeral; use s3 or kubo",
                ));
            }
            "disk" => Backend::Disk {
                dir: env
                    .get("IPFS_BLOCKSTORE_DIR")
                    .map_or_else(|| PathBuf::from(".data/ipfs"), PathBuf::from),
            },
            "kubo" => Backend::Kubo {
                url: http_url(env, "IPFS_KUBO_URL", "kubo")?,
            },
            "s3" => Backend::S3 {
                bucket: env
                    .get("IPFS_S3_BUCKET")
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| {
                        ConfigError::invalid("IPFS_S3_BUCKET", "is required with IPFS_BACKEND=s3")
                    })?,
                prefix: env
                    .get("IPFS_S3_PREFIX")
                    .unwrap_or_else(|| "blocks/".into()),
            },
            _ => {
                return Err(ConfigError::invalid(
                    "IPFS_BACKEND",
                    "must be disk, kubo or s3",
                ));
            }
        };
        let pinning = match env.get("IPFS_PINNING_URL") {
            None => None,
            Some(_) => Some(PinningConfig {
                url: http_url(env, "IPFS_PINNING_URL", "a pinning service")?,
                token: env
                    .get("IPFS_PINNING_TOKEN")
                    .filter(|t| !t.is_empty())
                    .map(SecretString::from)
                    .ok_or_else(|| {
                        ConfigError::invalid(
                            "IPFS_PINNING_TOKEN",
                            "is required with IPFS_PINNING_URL",
                        )
                    })?,
                origins: env
                    .get("IPFS_PINNING_ORIGINS")
                    .map(|o| {
                        o.split(',')
                            .map(str::trim)
                            .filter(|a| !a.is_empty())
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default(),
                wait: Duration::from_secs(match env.get("IPFS_PINNING_WAIT_SECS") {
                    None => 5,
                    Some(secs) => secs.parse().ok().filter(|s| *s <= 20).ok_or_else(|| {
                        ConfigError::invalid("IPFS_PINNING_WAIT_SECS", "must be 0 to 20")
                    })?,
                }),
            }),
        };
        Ok(Self { backend, pinning })
    }

    /// The store; `env` gives the S3 client its AWS settings.
    pub fn build(&self, env: &Env) -> Arc<dyn IpfsStore> {
        let inner: Arc<dyn IpfsStore> = match &self.backend {
            Backend::Disk { dir } => Arc::new(DiskBlockstore::new(dir.clone())),
            Backend::Kubo { url } => Arc::new(KuboRpc::new(url.clone())),
            Backend::S3 { bucket, prefix } => {
                let bucket = S3Bucket::new(bucket.clone(), S3Settings::from_env(env));
                Arc::new(Blockstore(S3Blocks::new(bucket, prefix.clone())))
            }
        };
        match &self.pinning {
            None => inner,
            Some(config) => Arc::new(PinningService::new(config.clone(), inner)),
        }
    }
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

/// Blocks on local disk: one file per block, named by its CID.
pub struct DiskBlocks {
    dir: PathBuf,
}

pub type DiskBlockstore = Blockstore<DiskBlocks>;

fn io(err: std::io::Error) -> IpfsError {
    IpfsError::Unavailable(format!("local blockstore: {err}"))
}

impl DiskBlockstore {
    pub fn new(dir: PathBuf) -> Self {
        Blockstore(DiskBlocks { dir })
    }
}

#[async_trait]
impl Blocks for DiskBlocks {
    async fn get_block(&self, cid: &Cid) -> IpfsResult<Option<Vec<u8>>> {
        match tokio::fs::read(self.dir.join(cid.to_string())).await {
            Ok(block) => Ok(Some(block)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(io(err)),
        }
    }

    async fn put_block(&self, cid: &Cid, block: &[u8]) -> IpfsResult<()> {
        let path = self.dir.join(cid.to_string());
        if tokio::fs::try_exists(&path).await.map_err(io)? {
            return Ok(()); // content-addressed: already there means already right
        }
        tokio::fs::create_dir_all(&self.dir).await.map_err(io)?;
        // Write then rename, so a reader never sees half a block.
        let partial = self
            .dir
            .join(format!("{cid}.{}.part", uuid::Uuid::new_v4()));
        tokio::fs::write(&partial, block).await.map_err(io)?;
        tokio::fs::rename(&partial, &path).await.map_err(io)?;
        Ok(())
    }
}

/// A Kubo node's RPC API.
pub struct KuboRpc {
    base: String,
    client: crate::tls::LazyHttp,
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
            client: crate::tls::LazyHttp::new(Duration::from_secs(20)),
        }
    }

    fn unavailable(err: impl std::fmt::Display) -> IpfsError {
        IpfsError::Unavailable(format!("Kubo RPC: {err}"))
    }
}

#[async_trait]
impl IpfsStore for KuboRpc {
    async fn put(&self, _file: &Imported, bytes: &[u8]) -> IpfsResult<Put> {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes.to_vec()).file_name("file"),
        );
        let url = format!(
            "{}/api/v0/add?cid-version=1&raw-leaves=true&chunker=size-262144&hash=sha2-256&pin=true&quieter=true",
            self.base
        );
        let response = self
            .client
            .get()
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
        let cid = Cid::try_from(added.hash.as_str())
            .map_err(|_| IpfsError::Mismatch(format!("{:?}, which is not a CID", added.hash)))?;
        Ok(Put { cid, pinned: true })
    }

    async fn fetch(&self, cid: &Cid) -> IpfsResult<Option<Vec<u8>>> {
        let url = format!("{}/api/v0/cat?arg={cid}", self.base);
        let response = self
            .client
            .get()
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
        let file = store(&disk, &bytes).await?.file;
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
    fn disk_is_refused_under_lambda_and_remote_backends_need_their_settings() {
        let backend = |pairs: &[(&str, &str)], lambda: bool| {
            IpfsConfig::from_env(&Env::from_pairs(pairs.iter().copied()), lambda)
                .map(|c| c.backend)
                .ok()
        };
        assert_eq!(backend(&[], true), None);
        assert!(matches!(backend(&[], false), Some(Backend::Disk { .. })));
        assert_eq!(backend(&[("IPFS_BACKEND", "kubo")], true), None);
        assert_eq!(
            backend(
                &[
                    ("IPFS_BACKEND", "kubo"),
                    ("IPFS_KUBO_URL", "http://127.0.0.1:5001/")
                ],
                true
            ),
            Some(Backend::Kubo {
                url: "http://127.0.0.1:5001".into()
            })
        );
        assert_eq!(
            backend(
                &[("IPFS_BACKEND", "kubo"), ("IPFS_KUBO_URL", "ftp://x")],
                true
            ),
            None
        );
        assert_eq!(backend(&[("IPFS_BACKEND", "s3")], true), None);
        assert_eq!(
            backend(&[("IPFS_BACKEND", "s3"), ("IPFS_S3_BUCKET", "docs")], true),
            Some(Backend::S3 {
                bucket: "docs".into(),
                prefix: "blocks/".into()
            })
        );
        assert_eq!(backend(&[("IPFS_BACKEND", "ipfs")], false), None);
    }

    #[test]
    fn a_pinning_service_needs_a_token_and_a_sane_wait() {
        let pinning = |pairs: &[(&str, &str)]| {
            IpfsConfig::from_env(&Env::from_pairs(pairs.iter().copied()), false).map(|c| c.pinning)
        };
        assert_eq!(pinning(&[]).ok(), Some(None));
        let url = ("IPFS_PINNING_URL", "https://pins.example/api/");
        assert!(pinning(&[url]).is_err(), "a token is required");
        let token = ("IPFS_PINNING_TOKEN", "secret");
        let config = pinning(&[
            url,
            token,
            ("IPFS_PINNING_ORIGINS", " /ip4/1.2.3.4/tcp/4001 ,"),
        ])
        .ok()
        .flatten();
        let config = config.as_ref();
        assert_eq!(
            config.map(|c| c.url.as_str()),
            Some("https://pins.example/api")
        );
        assert_eq!(
            config.map(|c| c.origins.clone()),
            Some(vec!["/ip4/1.2.3.4/tcp/4001".to_owned()])
        );
        assert_eq!(config.map(|c| c.wait), Some(Duration::from_secs(5)));
        for wait in ["21", "-1", "soon"] {
            assert!(
                pinning(&[url, token, ("IPFS_PINNING_WAIT_SECS", wait)]).is_err(),
                "{wait}"
            );
        }
    }
}
