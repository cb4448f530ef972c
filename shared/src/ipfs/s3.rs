//! Blocks in an S3 bucket (`IPFS_S3_BUCKET`), one object per block keyed `IPFS_S3_PREFIX` + CID:
//! the store for Lambda, whose disk does not outlive an instance.
//!
//! Requests are signed by `aws-sigv4` (the AWS SDK's own signer) and sent with reqwest, over
//! the ring TLS provider that every client in the binary shares. Hand-written rather than
//! `aws-sdk-s3` for size: that client (with its runtime) took each document function's
//! deployment zip from 4 MB to 6.6–7.3 MB, past Lambda's 5 MB budget, to make two calls,
//! GetObject and PutObject.
//!
//! Settings come from the environment as the AWS SDKs read them (`crate::aws`), with
//! `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL` for an S3-compatible store (the moto server in
//! tests), whose buckets are addressed by path.

use super::Cid;
use super::store::{Blocks, IpfsError, IpfsResult};
use crate::config::Env;
use async_trait::async_trait;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use std::time::{Duration, SystemTime};

fn unavailable(err: impl std::fmt::Display) -> IpfsError {
    IpfsError::Unavailable(format!("S3: {err}"))
}

/// Where S3 is and who we are to it.
#[derive(Clone)]
pub struct S3Settings {
    region: String,
    identity: Option<Identity>,
    /// A custom endpoint (path-style addressing), or `None` for AWS itself.
    endpoint: Option<String>,
}

impl S3Settings {
    pub fn from_env(env: &Env) -> Self {
        let aws = crate::aws::AwsEnv::from_env(env);
        Self {
            region: aws.region,
            identity: aws.credentials.map(Identity::from),
            endpoint: crate::aws::AwsEnv::endpoint(env, "S3"),
        }
    }
}

/// A signed S3 client for one bucket: the few object calls this project makes.
pub struct S3Bucket {
    bucket: String,
    settings: S3Settings,
    client: crate::tls::LazyHttp,
}

impl S3Bucket {
    pub fn new(bucket: String, settings: S3Settings) -> Self {
        Self {
            bucket,
            settings,
            client: crate::tls::LazyHttp::new(Duration::from_secs(20)),
        }
    }

    /// The URL of `key` (empty: the bucket itself). Keys here are CIDs under a prefix: letters,
    /// digits and `/`, nothing to escape.
    fn url(&self, key: &str) -> String {
        match &self.settings.endpoint {
            Some(endpoint) => format!("{endpoint}/{}/{key}", self.bucket),
            None => format!(
                "https://{}.s3.{}.amazonaws.com/{key}",
                self.bucket, self.settings.region
            ),
        }
    }

    /// Sends a request, SigV4-signed when there are credentials.
    async fn send(
        &self,
        method: reqwest::Method,
        key: &str,
        body: Vec<u8>,
    ) -> IpfsResult<reqwest::Response> {
        let url = self.url(key);
        let mut request = self.client.get().request(method.clone(), &url);
        if let Some(identity) = &self.settings.identity {
            let signed = signature_headers(
                identity,
                &self.settings.region,
                method.as_str(),
                &url,
                &[],
                &body,
                SystemTime::now(),
            )?;
            for (name, value) in signed {
                request = request.header(name, value);
            }
        }
        request.body(body).send().await.map_err(unavailable)
    }

    /// The object's bytes, or `None` when the bucket has no such key.
    pub async fn get(&self, key: &str) -> IpfsResult<Option<Vec<u8>>> {
        let response = self.send(reqwest::Method::GET, key, Vec::new()).await?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unavailable)?;
        if status.is_success() {
            return Ok(Some(bytes.to_vec()));
        }
        // A missing key is a 404 with the code NoSuchKey; a missing bucket is a 404 too, but one
        // that means the store is not there.
        if status == reqwest::StatusCode::NOT_FOUND
            && String::from_utf8_lossy(&bytes).contains("<Code>NoSuchKey</Code>")
        {
            return Ok(None);
        }
        Err(unavailable(format!("GetObject {key} answered {status}")))
    }

    pub async fn put(&self, key: &str, body: Vec<u8>) -> IpfsResult<()> {
        let response = self.send(reqwest::Method::PUT, key, body).await?;
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(unavailable(format!("PutObject {key} answered {status}"))),
        }
    }

    /// Creates the bucket (tests and first set-up; `template.yaml` creates it on AWS).
    pub async fn create(&self) -> IpfsResult<()> {
        self.put("", Vec::new()).await
    }
}

/// The headers that sign a request to S3 (SigV4 as S3 takes it: the payload's SHA-256 in
/// `x-amz-content-sha256`, the path neither normalised nor encoded twice). `headers` are signed
/// too and must be sent as given.
fn signature_headers(
    identity: &Identity,
    region: &str,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    time: SystemTime,
) -> IpfsResult<Vec<(String, String)>> {
    let mut settings = SigningSettings::default();
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    let params = v4::SigningParams::builder()
        .identity(identity)
        .region(region)
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .map_err(unavailable)?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().copied(),
        SignableBody::Bytes(body),
    )
    .map_err(unavailable)?;
    let (instructions, _) = sign(signable, &params).map_err(unavailable)?.into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect())
}

/// [`Blocks`] in an [`S3Bucket`], each under `prefix` + its CID.
pub struct S3Blocks {
    bucket: S3Bucket,
    prefix: String,
}

impl S3Blocks {
    pub fn new(bucket: S3Bucket, prefix: String) -> Self {
        Self { bucket, prefix }
    }

    fn key(&self, cid: &Cid) -> String {
        format!("{}{cid}", self.prefix)
    }
}

#[async_trait]
impl Blocks for S3Blocks {
    async fn get_block(&self, cid: &Cid) -> IpfsResult<Option<Vec<u8>>> {
        self.bucket.get(&self.key(cid)).await
    }

    async fn put_block(&self, cid: &Cid, block: &[u8]) -> IpfsResult<()> {
        self.bucket.put(&self.key(cid), block.to_vec()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_credential_types::Credentials;

    /// AWS's worked example of signing a GetObject request ("Signature Calculations for the
    /// Authorization Header: Transferring Payload in a Single Chunk", Example: GET Object).
    #[test]
    fn requests_are_signed_as_the_s3_documentation_shows() -> crate::TestResult {
        let identity: Identity = Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            None,
            None,
            "example",
        )
        .into();
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_369_353_600); // 2013-05-24
        let headers = signature_headers(
            &identity,
            "us-east-1",
            "GET",
            "https://examplebucket.s3.amazonaws.com/test.txt",
            &[("range", "bytes=0-9")],
            b"",
            time,
        )?;
        let authorization = headers
            .iter()
            .find(|(name, _)| name == "authorization")
            .map(|(_, value)| value.as_str());
        assert_eq!(
            authorization,
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
                 SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
                 Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
            )
        );
        assert!(headers.contains(&(
            "x-amz-content-sha256".into(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into()
        )));
        Ok(())
    }
}
