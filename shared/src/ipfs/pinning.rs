//! The IPFS Pinning Service API (the vendor-neutral one: `POST /pins`, `GET /pins/{requestid}`,
//! bearer token), in front of the store that holds the bytes.
//!
//! A pinning service takes a CID, not bytes: it fetches the blocks over IPFS, from the
//! `origins` we name (the node that holds them). So the bytes are first put in the inner store
//! (a Kubo node, say), then the pin is requested; reads go to the inner store. The service's
//! PinStatus must name our CID (else 502, nothing recorded); a `failed` status is a 502 too.
//! `queued` and `pinning` are followed with `GET /pins/{requestid}` for up to the configured
//! wait; a pin still on its way then is reported as `pinned: false`, with its request id, which
//! the `pin-follow-up` worker keeps following ([`IpfsStore::follow_pin`]).
//!
//! Hand-written over reqwest: no maintained Rust crate speaks this API.

use super::store::{IpfsError, IpfsResult, IpfsStore, Put};
use super::{Cid, Imported};
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;

/// Where the pinning service is and how long a request waits for `pinned`.
#[derive(Debug, Clone)]
pub struct PinningConfig {
    /// `IPFS_PINNING_URL`: the API's base URL (its `/pins` is below it).
    pub url: String,
    /// `IPFS_PINNING_TOKEN`: the service's access token.
    pub token: SecretString,
    /// `IPFS_PINNING_ORIGINS`: multiaddrs of the node holding the bytes (comma-separated).
    pub origins: Vec<String>,
    /// `IPFS_PINNING_WAIT_SECS` (default 5, at most 20).
    pub wait: Duration,
}

impl PartialEq for PinningConfig {
    fn eq(&self, other: &Self) -> bool {
        self.url == other.url
            && self.token.expose_secret() == other.token.expose_secret()
            && self.origins == other.origins
            && self.wait == other.wait
    }
}

impl Eq for PinningConfig {}

pub struct PinningService {
    config: PinningConfig,
    inner: Arc<dyn IpfsStore>,
    client: crate::tls::LazyHttp,
}

/// The API's PinStatus, as far as we read it.
#[derive(serde::Deserialize)]
struct PinStatus {
    requestid: String,
    status: Status,
    pin: Pin,
}

#[derive(serde::Deserialize)]
struct Pin {
    cid: String,
}

#[derive(serde::Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum Status {
    Queued,
    Pinning,
    Pinned,
    Failed,
}

/// How often a queued pin is asked about.
const POLL: Duration = Duration::from_millis(250);

impl PinningService {
    pub fn new(config: PinningConfig, inner: Arc<dyn IpfsStore>) -> Self {
        Self {
            config,
            inner,
            client: crate::tls::LazyHttp::new(Duration::from_secs(10)),
        }
    }

    fn unavailable(err: impl std::fmt::Display) -> IpfsError {
        IpfsError::Unavailable(format!("pinning service: {}", crate::redact::Redacted(err)))
    }

    /// Sends `request` with the token; the answer's PinStatus.
    async fn status(&self, request: reqwest::RequestBuilder) -> IpfsResult<PinStatus> {
        let response = request
            .bearer_auth(self.config.token.expose_secret())
            .send()
            .await
            .map_err(Self::unavailable)?;
        let code = response.status();
        if code.is_server_error() || code == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(Self::unavailable(format!("answered {code}")));
        }
        if !code.is_success() {
            // 400, 401, 404: our request or our token is wrong; retrying will not help.
            return Err(IpfsError::Refused(format!(
                "pinning service answered {code}"
            )));
        }
        response
            .json()
            .await
            .map_err(|e| IpfsError::Mismatch(format!("a PinStatus that does not parse: {e}")))
    }

    /// `{url}/pins/{requestid}`, the id escaped as one path segment.
    fn pin_url(&self, requestid: &str) -> IpfsResult<reqwest::Url> {
        let mut url = reqwest::Url::parse(&self.config.url).map_err(Self::unavailable)?;
        url.path_segments_mut()
            .map_err(|()| Self::unavailable("IPFS_PINNING_URL cannot take a path"))?
            .pop_if_empty()
            .extend(["pins", requestid]);
        Ok(url)
    }

    /// Checks that a PinStatus is about `cid` and has not failed; whether it is pinned.
    fn check(status: &PinStatus, cid: &Cid) -> IpfsResult<bool> {
        let named = Cid::try_from(status.pin.cid.as_str()).ok();
        if named != Some(*cid) {
            return Err(IpfsError::Mismatch(format!(
                "a pin of {:?} when {cid} was asked for",
                status.pin.cid
            )));
        }
        match status.status {
            Status::Failed => Err(IpfsError::Refused(format!(
                "pin request {} for {cid} failed",
                status.requestid
            ))),
            Status::Pinned => Ok(true),
            Status::Queued | Status::Pinning => Ok(false),
        }
    }
}

#[async_trait]
impl IpfsStore for PinningService {
    async fn put(&self, file: &Imported, bytes: &[u8]) -> IpfsResult<Put> {
        let held = self.inner.put(file, bytes).await?;
        if held.cid != file.root {
            return Ok(held); // `store` refuses it: nothing is pinned for a wrong CID
        }
        let body = serde_json::json!({
            "cid": file.root.to_string(),
            "name": format!("gantry {}", file.root),
            "origins": self.config.origins,
        });
        let url = format!("{}/pins", self.config.url);
        let mut status = self
            .status(self.client.get().post(&url).json(&body))
            .await?;
        let deadline = tokio::time::Instant::now() + self.config.wait;
        loop {
            let pinned = Self::check(&status, &file.root)?;
            if pinned || tokio::time::Instant::now() + POLL > deadline {
                return Ok(Put {
                    cid: file.root,
                    pinned,
                    pin_request: (!pinned).then(|| status.requestid.clone()),
                });
            }
            tokio::time::sleep(POLL).await;
            let url = self.pin_url(&status.requestid)?;
            status = self.status(self.client.get().get(url)).await?;
        }
    }

    async fn fetch(&self, cid: &Cid) -> IpfsResult<Option<Vec<u8>>> {
        self.inner.fetch(cid).await
    }

    async fn follow_pin(&self, cid: &Cid, request: &str) -> IpfsResult<bool> {
        let url = self.pin_url(request)?;
        let status = self.status(self.client.get().get(url)).await?;
        Self::check(&status, cid)
    }
}
