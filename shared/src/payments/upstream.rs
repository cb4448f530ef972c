//! Calling a payment provider's API, with one answer to every way a call can go wrong.

use crate::error::{AppError, AppResult};
use crate::redact::Redacted;
use serde::de::DeserializeOwned;

/// Sends `request` to `provider` (its name in messages) and reads its JSON answer as `T`. A
/// network failure, a timeout, a 5xx or a 429 is a 503 (try again later); any other refusal is a
/// 502 whose detail is `refusal(status, body)`, which must name only what the provider documents
/// (an error code, the status), never its body; an answer that does not parse is a 502. Bodies
/// are logged, never shown.
pub(crate) async fn call<T: DeserializeOwned>(
    provider: &'static str,
    request: reqwest::RequestBuilder,
    refusal: impl FnOnce(reqwest::StatusCode, &[u8]) -> String,
) -> AppResult<T> {
    let unavailable = || AppError::Unavailable(format!("{provider} is unavailable"));
    let response = request.send().await.map_err(|err| {
        tracing::warn!(provider, error = %Redacted(&err), "the provider did not answer");
        unavailable()
    })?;
    let status = response.status();
    let body = response.bytes().await.map_err(|err| {
        tracing::warn!(provider, error = %Redacted(&err), "the provider's answer was cut off");
        unavailable()
    })?;
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        tracing::warn!(provider, %status, "the provider failed");
        return Err(unavailable());
    }
    if !status.is_success() {
        let body_text = String::from_utf8_lossy(&body);
        tracing::warn!(provider, %status, body = %body_text, "the provider refused a request");
        return Err(AppError::BadGateway(refusal(status, &body)));
    }
    serde_json::from_slice(&body).map_err(|err| {
        tracing::error!(provider, error = %err, "the provider's answer could not be read");
        AppError::BadGateway(format!("{provider}'s answer could not be read"))
    })
}
