//! A Kubo node's RPC API as a backend: `/api/v0/add` with cid-version=1 and raw leaves,
//! pinned; `/api/v0/cat` to read.

use super::store::{IpfsError, IpfsResult, IpfsStore, Put};
use super::{Cid, Imported};
use async_trait::async_trait;
use std::time::Duration;

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
        IpfsError::Unavailable(format!("Kubo RPC: {}", crate::redact::Redacted(err)))
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
        Ok(Put {
            cid,
            pinned: true,
            pin_request: None,
        })
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
