//! The AWS settings every AWS client here reads, from the environment as the AWS SDKs read it:
//! `AWS_REGION` (or `AWS_DEFAULT_REGION`), the credentials in `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN` (what Lambda gives every function), and a
//! custom endpoint in `AWS_ENDPOINT_URL_<SERVICE>` or `AWS_ENDPOINT_URL` (the moto server in
//! tests). Read here rather than through `aws-config`, whose credential chain (profiles, SSO,
//! IMDS) a function never needs and which adds to every binary that links it.

use crate::config::Env;
use aws_credential_types::Credentials;

#[derive(Clone, Debug)]
pub struct AwsEnv {
    pub region: String,
    /// `None` when the environment holds no keys (requests then go unsigned and are refused).
    pub credentials: Option<Credentials>,
}

impl AwsEnv {
    pub fn from_env(env: &Env) -> Self {
        let credentials = match (
            env.get("AWS_ACCESS_KEY_ID"),
            env.get("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Some(id), Some(secret)) => Some(Credentials::new(
                id,
                secret,
                env.get("AWS_SESSION_TOKEN"),
                None,
                "environment",
            )),
            _ => None,
        };
        Self {
            region: env
                .get("AWS_REGION")
                .or_else(|| env.get("AWS_DEFAULT_REGION"))
                .unwrap_or_else(|| "us-east-1".into()),
            credentials,
        }
    }

    /// The endpoint for `service` (`S3`, `SQS`): its own variable, else the general one, else
    /// `None` (AWS itself). Without a trailing slash.
    pub fn endpoint(env: &Env, service: &str) -> Option<String> {
        env.get(&format!("AWS_ENDPOINT_URL_{service}"))
            .or_else(|| env.get("AWS_ENDPOINT_URL"))
            .map(|e| e.trim_end_matches('/').to_owned())
    }
}

/// An AWS SDK client configured from [`AwsEnv`] (region, credentials, `AWS_ENDPOINT_URL_<SERVICE>`)
/// sent through reqwest (`smithy-transport-reqwest`: the HTTP and TLS stack every function already
/// links, on the process-wide ring provider), built without I/O: the first call opens the
/// connection. A macro because each SDK crate has its own `Config` and `Client` types.
#[cfg_attr(
    not(any(
        feature = "sqs",
        feature = "kms",
        feature = "dynamodb",
        feature = "ses"
    )),
    allow(unused_macros)
)]
macro_rules! sdk_client {
    ($sdk:ident, $env:expr, $service:literal) => {{
        $crate::tls::install_provider();
        let aws = $crate::aws::AwsEnv::from_env($env);
        let http = smithy_transport_reqwest::ReqwestHttpClient::new();
        let mut config = $sdk::Config::builder()
            .behavior_version($sdk::config::BehaviorVersion::latest())
            .region($sdk::config::Region::new(aws.region))
            .http_client(http);
        if let Some(credentials) = aws.credentials {
            config = config.credentials_provider(credentials);
        }
        if let Some(endpoint) = $crate::aws::AwsEnv::endpoint($env, $service) {
            config = config.endpoint_url(endpoint);
        }
        $sdk::Client::from_conf(config.build())
    }};
}
#[cfg_attr(
    not(any(
        feature = "sqs",
        feature = "kms",
        feature = "dynamodb",
        feature = "ses"
    )),
    allow(unused_imports)
)]
pub(crate) use sdk_client;
