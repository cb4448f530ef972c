//! The session functions (`token`, `sessions`, `jwks`) and their handlers: refresh-token
//! rotation, logout, the signing keys, the live sessions and the login history. Thin: extract, call the rule, choose the status.

use super::{self as session, history};
use crate::auth::keys::Jwks;
use crate::endpoint;
use crate::error::AppResult;
use crate::extract::{AuthUser, ClientInfo, Json, Path, Query};
use crate::function::needs::{DATABASE, PRIVATE_KEY, PUBLIC_KEYS};
use crate::function::{FunctionSpec, Http, Trigger};
use crate::identity::dto::*;
use crate::identity::state::IdentityState;
use crate::platform::Tokens;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

#[utoipa::path(post, path = "/token/refresh", tag = "tokens",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new pair; the presented refresh token is spent", body = TokenPair),
        (status = 401, description = "Invalid, expired, revoked or reused token (reuse revokes the family)"),
    ))]
pub async fn refresh(
    State(state): State<IdentityState>,
    client: ClientInfo,
    Json(body): Json<RefreshRequest>,
) -> AppResult<Json<TokenPair>> {
    Ok(Json(
        session::rotate(&state, &client, &body.refresh_token).await?,
    ))
}

#[utoipa::path(post, path = "/logout", tag = "tokens",
    request_body = RefreshRequest,
    responses((status = 204, description = "The token's family is revoked (also answered for unknown tokens)")))]
pub async fn logout(
    State(state): State<IdentityState>,
    Json(body): Json<RefreshRequest>,
) -> AppResult<StatusCode> {
    session::logout(&state, &body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "tokens",
    responses((status = 200, description = "Public keys that verify access tokens", body = Jwks)))]
pub async fn jwks(State(tokens): State<Tokens>) -> Response {
    let mut response = Json(tokens.verifier().jwks().clone()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

#[utoipa::path(get, path = "/sessions", tag = "account", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's live sessions, most recently used first", body = Sessions),
    ))]
pub async fn sessions(
    State(state): State<IdentityState>,
    caller: AuthUser,
) -> AppResult<Json<Sessions>> {
    Ok(Json(session::list(&state, &caller).await?))
}

#[utoipa::path(delete, path = "/sessions/{id}", tag = "account", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "The session is ended: its refresh token no longer works"),
        (status = 404, description = "Not one of the caller's live sessions"),
    ))]
pub async fn end_session(
    State(state): State<IdentityState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<StatusCode> {
    session::end(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/profile/login-history", tag = "account", security(("bearer" = [])),
    params(HistoryQuery),
    responses(
        (status = 200, description = "Sign-in attempts, newest first", body = LoginHistory),
        (status = 400, description = "A bad limit or cursor"),
        (status = 403, description = "`user_id` names another account and the caller is not an ADMIN"),
        (status = 404, description = "An ADMIN named an account that does not exist"),
    ))]
pub async fn login_history(
    State(state): State<IdentityState>,
    caller: AuthUser,
    Query(query): Query<HistoryQuery>,
) -> AppResult<Json<LoginHistory>> {
    Ok(Json(history::page(&state, &caller, query).await?))
}

/// `token`: refresh-token rotation and logout.
pub static TOKEN: FunctionSpec = FunctionSpec {
    name: "token",
    trigger: Trigger::Http(&Http::new(
        IdentityState::new,
        &[endpoint!(refresh), endpoint!(logout)],
    )),
    needs: &[&DATABASE, &PRIVATE_KEY],
};

/// `sessions`: the caller's live sessions, and ending one.
pub static SESSIONS: FunctionSpec = FunctionSpec {
    name: "sessions",
    trigger: Trigger::Http(&Http::new(
        IdentityState::new,
        &[endpoint!(sessions), endpoint!(end_session)],
    )),
    needs: &[&DATABASE, &PUBLIC_KEYS],
};

/// `jwks`: the public keys; needs only the token keys.
pub static JWKS: FunctionSpec = FunctionSpec {
    name: "jwks",
    trigger: Trigger::Http(&Http::new(
        |platform| Ok(platform.tokens.clone()),
        &[endpoint!(jwks)],
    )),
    needs: &[&PUBLIC_KEYS],
};
