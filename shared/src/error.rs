//! The one error type that leaves the building.
//!
//! Every failure a client can see is an [`AppError`], rendered as RFC 9457
//! `application/problem+json`. Internal errors are logged with context and never shown.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

pub type AppResult<T> = Result<T, AppError>;

/// One invalid input field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldError {
    pub field: String,
    pub message: String,
    /// The value has the documented shape but a rule refuses it (say, a common password):
    /// when every error of a request is such, the answer is 422 instead of 400.
    #[serde(skip)]
    pub semantic: bool,
}

impl std::fmt::Display for FieldError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
            semantic: false,
        }
    }

    /// A well-formed value that a rule refuses (422 when it is the request's only kind).
    pub fn semantic(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            semantic: true,
            ..Self::new(field, message)
        }
    }
}

/// RFC 9457 problem details, as sent on every error.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    #[serde(rename = "type")]
    pub type_uri: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("invalid input")]
    Validation(Vec<FieldError>),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Missing or invalid credentials or token. The detail is fixed per cause and never says
    /// which part of a credential was wrong.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A valid token whose sign-in is not strong or recent enough for this action (RFC 9470):
    /// 401 with `error="insufficient_user_authentication"` and `max_age`.
    #[error(
        "this needs a second factor used within the last {max_age_secs} seconds: sign in again \
         and finish with your authenticator code or a recovery code (POST /login/mfa; without \
         TOTP, turn it on first: POST /mfa/totp/enroll), then retry with the new access token"
    )]
    StepUpRequired { max_age_secs: u64 },
    #[error("this role may not do that")]
    Forbidden,
    /// A 403 with its own problem type (`urn:gantry:problem:<kind>`), for a refusal a client
    /// acts on differently from a missing role (an unverified email, say).
    #[error("{detail}")]
    Refused {
        kind: &'static str,
        detail: &'static str,
    },
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("too many requests")]
    RateLimited { retry_after_secs: u64 },
    /// An upstream (an IPFS backend, say) answered with something that cannot be right.
    #[error("{0}")]
    BadGateway(String),
    /// A dependency is down or not configured; the message says which.
    #[error("{0}")]
    Unavailable(String),
    /// Not there yet, but soon (a document a worker is still rendering): 503 with
    /// `Retry-After`.
    #[error("{detail}")]
    NotYet {
        detail: &'static str,
        retry_after_secs: u64,
    },
    /// Build it with [`AppError::internal`], which logs it.
    #[error(transparent)]
    Internal(anyhow::Error),
}

impl AppError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(errors) if errors.iter().all(|e| e.semantic) && !errors.is_empty() => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Self::Validation(_) | Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unauthorized(_) | Self::StepUpRequired { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::Refused { .. } => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::Unavailable(_) | Self::NotYet { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(&self) -> &'static str {
        match self {
            Self::Validation(_) if self.status() == StatusCode::UNPROCESSABLE_ENTITY => "refused",
            Self::Validation(_) => "validation",
            Self::BadRequest(_) => "bad-request",
            Self::UnsupportedMediaType(_) => "unsupported-media-type",
            Self::PayloadTooLarge(_) => "payload-too-large",
            Self::Unauthorized(_) => "unauthorized",
            Self::StepUpRequired { .. } => "step-up-required",
            Self::Forbidden => "forbidden",
            Self::Refused { kind, .. } => kind,
            Self::NotFound => "not-found",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::Conflict(_) => "conflict",
            Self::Unprocessable(_) => "unprocessable",
            Self::RateLimited { .. } => "rate-limited",
            Self::BadGateway(_) => "bad-gateway",
            Self::Unavailable(_) => "unavailable",
            Self::NotYet { .. } => "not-yet",
            Self::Internal(_) => "internal",
        }
    }

    /// The problem document a client sees.
    pub fn problem(&self) -> Problem {
        let status = self.status();
        let detail = match self {
            Self::Validation(_) if status == StatusCode::UNPROCESSABLE_ENTITY => {
                "one or more fields are well-formed but refused".to_owned()
            }
            Self::Validation(_) => "one or more fields are invalid".to_owned(),
            Self::Internal(_) => "an unexpected error occurred".to_owned(),
            Self::NotFound => "the resource does not exist or you may not see it".to_owned(),
            Self::RateLimited { retry_after_secs } => {
                format!("too many requests; retry after {retry_after_secs} seconds")
            }
            other => other.to_string(),
        };
        Problem {
            type_uri: format!("urn:gantry:problem:{}", self.slug()),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            errors: match self {
                Self::Validation(errors) => errors.clone(),
                _ => Vec::new(),
            },
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let problem = self.problem();
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = (self.status(), body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match &self {
            Self::Unauthorized(_) => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::StepUpRequired { max_age_secs } => {
                let challenge = format!(
                    "Bearer error=\"insufficient_user_authentication\", \
                     error_description=\"A second factor used within the last {max_age_secs} \
                     seconds is required\", max_age={max_age_secs}"
                );
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            Self::RateLimited { retry_after_secs }
            | Self::NotYet {
                retry_after_secs, ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

impl From<anyhow::Error> for AppError {
    fn from(err: anyhow::Error) -> Self {
        Self::internal(err)
    }
}

impl AppError {
    /// An unexpected failure. Logged here, where it happens, so the line carries the spans of
    /// the operation that failed (rules are `#[instrument]`ed); the client sees only a 500.
    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        let err = err.into();
        tracing::error!(error = %crate::redact::urls(&format!("{err:?}")), "internal error");
        Self::Internal(err)
    }
}

/// The constraint a unique violation broke, if `err` is one. Areas map their own constraint
/// names to the conflict a client sees (by name, never by message text).
pub fn unique_violation(err: &sqlx::Error) -> Option<&str> {
    match err {
        sqlx::Error::Database(db) if db.is_unique_violation() => db.constraint(),
        _ => None,
    }
}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_) => {
                tracing::error!(error = %err, "database unavailable");
                Self::Unavailable("the database is unavailable".to_owned())
            }
            // A row still referenced by others (an invoice's project, say) cannot go.
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => {
                Self::Conflict("other records still refer to it".to_owned())
            }
            // Includes unique violations no area mapped: a conflict nobody expected is a bug.
            _ => Self::internal(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn render(err: AppError) -> (StatusCode, axum::http::HeaderMap, serde_json::Value) {
        let response = err.into_response();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = match response.into_body().collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) => panic!("body: {e}"),
        };
        let body = serde_json::from_slice(&bytes).unwrap_or_default();
        (status, headers, body)
    }

    #[tokio::test]
    async fn internal_errors_do_not_leak_their_cause() {
        let (status, headers, body) = render(AppError::internal(anyhow::anyhow!(
            "password=hunter2 at db.rs:12"
        )))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
        assert!(!body.to_string().contains("hunter2"));
        assert_eq!(body["status"], 500);
    }

    #[tokio::test]
    async fn validation_errors_list_fields() {
        let (status, _, body) = render(AppError::invalid("email", "not an email")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["errors"][0]["field"], "email");
        assert_eq!(body["type"], "urn:gantry:problem:validation");
        assert_eq!(body["title"], "Bad Request");
    }

    #[tokio::test]
    async fn rate_limits_carry_retry_after() {
        let (status, headers, _) = render(AppError::RateLimited {
            retry_after_secs: 7,
        })
        .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(headers[header::RETRY_AFTER], "7");
    }

    #[tokio::test]
    async fn a_step_up_names_the_rfc_9470_error_and_what_to_do() {
        let (status, headers, body) = render(AppError::StepUpRequired { max_age_secs: 300 }).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            "Bearer error=\"insufficient_user_authentication\", error_description=\"A second \
             factor used within the last 300 seconds is required\", max_age=300"
        );
        assert_eq!(body["type"], "urn:gantry:problem:step-up-required");
        assert!(
            body["detail"]
                .as_str()
                .is_some_and(|d| d.contains("POST /login/mfa") && d.contains("300 seconds")),
            "{body}"
        );
    }

    #[tokio::test]
    async fn unauthorized_asks_for_a_bearer_token() {
        let (_, headers, _) = render(AppError::Unauthorized("invalid token")).await;
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
    }
}
