//! Which backend holds documents, chosen by configuration (`IPFS_BACKEND`):
//! - `disk` (the default): a blockstore on local disk ([`super::disk`]). Refused under Lambda,
//!   whose disk does not outlive an instance.
//! - `kubo`: a Kubo node's RPC API ([`super::kubo`]).
//! - `s3`: a blockstore in an S3 bucket ([`super::s3`]).
//!
//! With `IPFS_PINNING_URL` set, a pinning service ([`super::pinning`]) pins what the backend
//! holds.

use super::disk::DiskBlockstore;
use super::kubo::KuboRpc;
use super::pinning::{PinningConfig, PinningService};
use super::s3::{S3Blocks, S3Bucket, S3Settings};
use super::store::{Blockstore, IpfsStore};
use crate::config::{ConfigError, Env};
use secrecy::SecretString;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// What a worker that stores documents needs besides [`NEED`]: writes to the stack's bucket (a
/// function with routes is granted them by its routes' methods).
pub const STORES: crate::function::Need = crate::function::Need {
    name: "ipfs-stores",
    can_be_unavailable: true,
    vars: &[],
    aws: &[crate::function::AwsAccess::DocumentsBucketWrites],
};

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

#[cfg(test)]
mod tests {
    use super::*;

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
