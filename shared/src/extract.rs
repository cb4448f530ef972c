//! Request extractors whose every rejection is an [`AppError`] (problem+json), plus the
//! authenticated-user extractor and the role guards every protected route uses.

use crate::auth::Amr;
use crate::domain::Role;
use crate::error::{AppError, FieldError};
use crate::platform::{Edge, Tokens};
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::marker::PhantomData;
use uuid::Uuid;

/// JSON body in, JSON body out. Bad JSON, unknown fields and wrong types are 400s.
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(AppError::UnsupportedMediaType(
                "expected Content-Type: application/json".into(),
            ));
        }
        let bytes = read_body(req, state).await?;
        // Every request body is a JSON object. serde would also read a struct from an array
        // (`[]` as "no fields"), which the documented schema does not allow.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(AppError::BadRequest(
                "the body must be a JSON object".into(),
            ));
        }
        let axum::Json(value) = axum::Json::<T>::from_bytes(&bytes)?;
        Ok(Self(value))
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::JsonDataError(err) => {
                Self::Validation(vec![data_error(&err.body_text())])
            }
            JsonRejection::JsonSyntaxError(_) => {
                Self::BadRequest("the body is not valid JSON".into())
            }
            JsonRejection::MissingJsonContentType(_) => {
                Self::UnsupportedMediaType("expected Content-Type: application/json".into())
            }
            JsonRejection::BytesRejection(err)
                if err.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Self::PayloadTooLarge("the body is too large".into())
            }
            _ => Self::BadRequest("the body could not be read".into()),
        }
    }
}

/// A raw body of any content type (documents); too large is a 413 problem.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_body(req, state).await.map(Self)
    }
}

async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<axum::body::Bytes, AppError> {
    axum::body::Bytes::from_request(req, state)
        .await
        .map_err(|err| match err.status() {
            axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                AppError::PayloadTooLarge("the body is too large".into())
            }
            _ => AppError::BadRequest("the body could not be read".into()),
        })
}

/// `application/json` or any `+json` type, as axum's own extractor decides.
fn is_json(headers: &axum::http::HeaderMap) -> bool {
    let Some(Ok(value)) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .map(|v| v.to_str())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5 && subtype[subtype.len() - 5..].eq_ignore_ascii_case("+json"))
}

/// Turns serde's message (as axum words it) into a field error: `path: message`, or a root-level
/// `missing field `x`` / `unknown field `x``.
fn data_error(text: &str) -> FieldError {
    let text = text
        .strip_prefix("Failed to deserialize the JSON body into the target type: ")
        .unwrap_or(text);
    let message = text.split(" at line ").next().unwrap_or(text);
    let backticked = || message.split('`').nth(1).map(str::to_owned);
    if message.starts_with("missing field") || message.starts_with("unknown field") {
        return FieldError::new(backticked().unwrap_or_else(|| "body".into()), message);
    }
    match message.split_once(": ") {
        Some((path, rest)) if !path.contains(' ') => FieldError::new(path, rest),
        _ => FieldError::new("body", message),
    }
}

/// Path parameters; a malformed one (say, not a UUID) is a 400.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e: PathRejection| {
                AppError::BadRequest(format!("invalid path: {}", e.body_text()))
            })?;
        Ok(Self(value))
    }
}

/// Query parameters; malformed ones are a 400.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state)
                .await
                .map_err(|e: QueryRejection| {
                    let text = e.body_text();
                    let message = text
                        .strip_prefix("Failed to deserialize query string: ")
                        .unwrap_or(&text);
                    AppError::invalid("query", message)
                })?;
        Ok(Self(value))
    }
}

/// The client's address, for per-IP rate limits: the API Gateway source IP under Lambda; the
/// last `X-Forwarded-For` hop when `TRUST_FORWARDED_FOR` is set (behind one trusted proxy);
/// otherwise the socket peer. `unknown` when none is known (all such callers share a bucket).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIp(pub String);

impl<S> FromRequestParts<S> for ClientIp
where
    Edge: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        use lambda_http::request::RequestContext;
        let from_lambda = match parts.extensions.get::<RequestContext>() {
            Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.clone(),
            Some(RequestContext::ApiGatewayV1(ctx)) => ctx.identity.source_ip.clone(),
            _ => None,
        };
        let forwarded = || {
            parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .rfind(|hop| hop.parse::<std::net::IpAddr>().is_ok())
                .map(str::to_owned)
        };
        let from_proxy = if Edge::from_ref(state).trust_forwarded_for {
            forwarded()
        } else {
            None
        };
        let from_socket = || {
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                .map(|info| info.0.ip().to_string())
        };
        Ok(Self(
            from_lambda
                .or(from_proxy)
                .or_else(from_socket)
                .unwrap_or_else(|| "unknown".to_owned()),
        ))
    }
}

/// Where a sign-in comes from, as a session and the login history show it: the [`ClientIp`] and
/// the `User-Agent` (cut to 512 characters; absent or not text: `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: ClientIp,
    pub user_agent: Option<String>,
}

/// The longest user agent kept.
pub const MAX_USER_AGENT_CHARS: usize = 512;

impl<S> FromRequestParts<S> for ClientInfo
where
    Edge: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ip = ClientIp::from_request_parts(parts, state).await?;
        let user_agent = parts
            .headers
            .get(axum::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| v.chars().take(MAX_USER_AGENT_CHARS).collect());
        Ok(Self { ip, user_agent })
    }
}

/// The caller, as proven by a valid access token.
#[derive(Debug, Clone)]
pub struct AuthUser {
    pub user_id: Uuid,
    pub role: Role,
    pub identity_id: Uuid,
    pub amr: Vec<Amr>,
    /// When the session was signed in (unix seconds, the token's `auth_time`).
    pub auth_time: i64,
    pub token_id: Uuid,
    /// The session (refresh-token family) the token belongs to.
    pub session_id: Uuid,
    pub email_verified: bool,
}

impl<S> FromRequestParts<S> for AuthUser
where
    Tokens: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let missing = AppError::Unauthorized("a bearer access token is required");
        let value = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(missing)?;
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or(AppError::Unauthorized("a bearer access token is required"))?;
        let claims = Tokens::from_ref(state).verifier().verify(token)?;
        Ok(Self {
            user_id: claims.sub,
            role: claims.role,
            identity_id: claims.idp,
            amr: claims.amr,
            auth_time: claims.auth_time,
            token_id: claims.jti,
            session_id: claims.sid,
            email_verified: claims.email_verified,
        })
    }
}

/// Which roles a route admits.
pub trait Policy {
    const ALLOWED: &'static [Role];
}

pub struct AdminOnly;
impl Policy for AdminOnly {
    const ALLOWED: &'static [Role] = &[Role::Admin];
}

pub struct StaffOrAdmin;
impl Policy for StaffOrAdmin {
    const ALLOWED: &'static [Role] = &[Role::Staff, Role::Admin];
}

/// An authenticated caller whose role the policy `P` admits; otherwise 401 or 403.
pub struct Authorized<P: Policy>(pub AuthUser, pub PhantomData<P>);

impl<P: Policy, S> FromRequestParts<S> for Authorized<P>
where
    Tokens: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let user = AuthUser::from_request_parts(parts, state).await?;
        if !P::ALLOWED.contains(&user.role) {
            return Err(AppError::Forbidden);
        }
        Ok(Self(user, PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_become_field_errors() {
        let missing = data_error(
            "Failed to deserialize the JSON body into the target type: missing field `email` at line 1 column 2",
        );
        assert_eq!(missing.field, "email");
        let unknown = data_error(
            "Failed to deserialize the JSON body into the target type: unknown field `admin`, expected `email` or `password` at line 1 column 9",
        );
        assert_eq!(unknown.field, "admin");
        let typed = data_error(
            "Failed to deserialize the JSON body into the target type: role: unknown variant `ROOT`, expected one of `ADMIN`, `STAFF`, `CLIENT` at line 1 column 14",
        );
        assert_eq!(typed.field, "role");
        assert!(typed.message.starts_with("unknown variant"));
    }
}
