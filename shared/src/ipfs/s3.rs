//! Blocks in an S3 bucket (`IPFS_S3_BUCKET`), one object per block keyed `IPFS_S3_PREFIX` + CID:
//! the store for Lambda, whose disk does not outlive an instance.
//!
//! The client is built on first use (loading the AWS configuration is asynchronous, and a
//! function that never touches a document never pays for it). It takes the usual AWS settings
//! from the environment (region, credentials, `AWS_ENDPOINT_URL`); with a custom endpoint (an
//! S3-compatible store, the moto server in tests) it addresses buckets by path.

use super::Cid;
use super::store::{Blocks, IpfsError, IpfsResult};
use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;

pub struct S3Blocks {
    bucket: String,
    prefix: String,
    client: tokio::sync::OnceCell<Client>,
}

fn unavailable(err: impl std::fmt::Display) -> IpfsError {
    IpfsError::Unavailable(format!("S3 blockstore: {err}"))
}

impl S3Blocks {
    pub fn new(bucket: String, prefix: String) -> Self {
        Self {
            bucket,
            prefix,
            client: tokio::sync::OnceCell::new(),
        }
    }

    /// With a client already built (tests).
    pub fn with_client(bucket: String, prefix: String, client: Client) -> Self {
        Self {
            bucket,
            prefix,
            client: tokio::sync::OnceCell::from(client),
        }
    }

    async fn client(&self) -> &Client {
        self.client.get_or_init(client_from_env).await
    }

    fn key(&self, cid: &Cid) -> String {
        format!("{}{cid}", self.prefix)
    }
}

/// An S3 client from the environment, its HTTPS on the ring provider (the one crypto provider
/// every client in the binary uses).
pub async fn client_from_env() -> Client {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let shared = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await;
    let custom_endpoint = shared.endpoint_url().is_some();
    let config = aws_sdk_s3::config::Builder::from(&shared)
        .force_path_style(custom_endpoint)
        .build();
    Client::from_conf(config)
}

#[async_trait]
impl Blocks for S3Blocks {
    async fn get_block(&self, cid: &Cid) -> IpfsResult<Option<Vec<u8>>> {
        let response = self
            .client()
            .await
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(cid))
            .send()
            .await;
        let object = match response {
            Ok(object) => object,
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                return Ok(None);
            }
            Err(err) => {
                return Err(unavailable(aws_sdk_s3::error::DisplayErrorContext(err)));
            }
        };
        let bytes = object.body.collect().await.map_err(unavailable)?;
        Ok(Some(bytes.into_bytes().to_vec()))
    }

    async fn put_block(&self, cid: &Cid, block: &[u8]) -> IpfsResult<()> {
        self.client()
            .await
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(cid))
            .content_type("application/vnd.ipld.raw")
            .body(ByteStream::from(block.to_vec()))
            .send()
            .await
            .map_err(|e| unavailable(aws_sdk_s3::error::DisplayErrorContext(e)))?;
        Ok(())
    }
}
