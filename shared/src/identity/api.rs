//! Identity's HTTP handlers and their OpenAPI paths. Thin: extract, call the rule, choose the
//! status. Nothing else.

use super::dto::{
    Identities, LinkIdentity, LoginBlockchain, LoginEmailPassword, NonceIssued, NonceRequest,
    PageQuery, Profile, RefreshRequest, RegisterBlockchain, RegisterEmailPassword, Registered,
    SetRole, TokenPair, UnlinkIdentity, UserPage,
};
use super::model::{Identity, User};
use super::state::IdentityState;
use super::{links, service, session, wallet};
use crate::auth::keys::Jwks;
use crate::error::{AppResult, Problem};
use crate::extract::{AdminOnly, AuthUser, Authorized, ClientIp, Json, Path, Query};
use crate::platform::Tokens;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

#[utoipa::path(post, path = "/register-email-password", tag = "identity",
    request_body = RegisterEmailPassword,
    responses(
        (status = 201, description = "Account created and signed in", body = Registered),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The email is already registered", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn register_email_password(
    State(state): State<IdentityState>,
    ip: ClientIp,
    Json(body): Json<RegisterEmailPassword>,
) -> AppResult<(StatusCode, Json<Registered>)> {
    let registered = service::register_email(&state, &ip, body).await?;
    Ok((StatusCode::CREATED, Json(registered)))
}

#[utoipa::path(post, path = "/login-email-password", tag = "identity",
    request_body = LoginEmailPassword,
    responses(
        (status = 200, description = "Signed in", body = TokenPair),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Wrong email or password (one answer for both)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn login_email_password(
    State(state): State<IdentityState>,
    ip: ClientIp,
    Json(body): Json<LoginEmailPassword>,
) -> AppResult<Json<TokenPair>> {
    Ok(Json(service::login_email(&state, &ip, body).await?))
}

#[utoipa::path(get, path = "/profile", tag = "identity", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller and every identity they hold", body = Profile),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn profile(
    State(state): State<IdentityState>,
    caller: AuthUser,
) -> AppResult<Json<Profile>> {
    Ok(Json(service::profile(&state, &caller).await?))
}

#[utoipa::path(post, path = "/token/refresh", tag = "tokens",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new pair; the presented refresh token is spent", body = TokenPair),
        (status = 401, description = "Invalid, expired, revoked or reused token (reuse revokes the family)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn refresh(
    State(state): State<IdentityState>,
    Json(body): Json<RefreshRequest>,
) -> AppResult<Json<TokenPair>> {
    Ok(Json(session::rotate(&state, &body.refresh_token).await?))
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

#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of users", body = UserPage),
        (status = 400, description = "Bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an ADMIN", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_users(
    State(state): State<IdentityState>,
    _admin: Authorized<AdminOnly>,
    Query(query): Query<PageQuery>,
) -> AppResult<Json<UserPage>> {
    Ok(Json(service::list_users(&state, query).await?))
}

#[utoipa::path(put, path = "/users/{id}/role", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    request_body = SetRole,
    responses(
        (status = 200, description = "The updated user", body = User),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not an ADMIN", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Would leave no ADMIN", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_role(
    State(state): State<IdentityState>,
    Authorized(admin, _): Authorized<AdminOnly>,
    Path(id): Path<Uuid>,
    Json(body): Json<SetRole>,
) -> AppResult<Json<User>> {
    Ok(Json(
        service::change_role(&state, &admin, id, body.role).await?,
    ))
}

#[utoipa::path(post, path = "/auth/nonce", tag = "identity",
    request_body = NonceRequest,
    responses(
        (status = 201, description = "A single-use nonce for a SIWE message", body = NonceIssued),
        (status = 400, description = "Invalid address", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate-limited; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn auth_nonce(
    State(state): State<IdentityState>,
    ip: ClientIp,
    Json(body): Json<NonceRequest>,
) -> AppResult<(StatusCode, Json<NonceIssued>)> {
    Ok((
        StatusCode::CREATED,
        Json(wallet::issue_nonce(&state, &ip, body).await?),
    ))
}

#[utoipa::path(post, path = "/register-blockchain", tag = "identity",
    request_body = RegisterBlockchain,
    responses(
        (status = 201, description = "Account created with a wallet identity, and signed in", body = Registered),
        (status = 400, description = "Not an EIP-4361 message, or bad input", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A check, the nonce or the signature failed (one answer for all)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The wallet is already registered", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate-limited; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn register_blockchain(
    State(state): State<IdentityState>,
    ip: ClientIp,
    Json(body): Json<RegisterBlockchain>,
) -> AppResult<(StatusCode, Json<Registered>)> {
    Ok((
        StatusCode::CREATED,
        Json(wallet::register(&state, &ip, body).await?),
    ))
}

#[utoipa::path(post, path = "/login-blockchain", tag = "identity",
    request_body = LoginBlockchain,
    responses(
        (status = 200, description = "Signed in", body = TokenPair),
        (status = 400, description = "Not an EIP-4361 message, or bad input", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A check, the nonce, the signature or the account failed (one answer for all)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate-limited or locked out; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn login_blockchain(
    State(state): State<IdentityState>,
    ip: ClientIp,
    Json(body): Json<LoginBlockchain>,
) -> AppResult<Json<TokenPair>> {
    Ok(Json(wallet::login(&state, &ip, body).await?))
}

#[utoipa::path(post, path = "/link-identity", tag = "identity", security(("bearer" = [])),
    request_body = LinkIdentity,
    responses(
        (status = 201, description = "The identity, now linked", body = Identity),
        (status = 400, description = "Invalid input", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "No valid access token, or the proof failed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The identity belongs to an account already", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate-limited; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn link_identity(
    State(state): State<IdentityState>,
    ip: ClientIp,
    caller: AuthUser,
    Json(body): Json<LinkIdentity>,
) -> AppResult<(StatusCode, Json<Identity>)> {
    Ok((
        StatusCode::CREATED,
        Json(links::link(&state, &ip, &caller, body).await?),
    ))
}

#[utoipa::path(post, path = "/unlink-identity", tag = "identity", security(("bearer" = [])),
    request_body = UnlinkIdentity,
    responses(
        (status = 200, description = "The identities that remain", body = Identities),
        (status = 401, description = "No valid access token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Not one of the caller's identities", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It is the last identity", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn unlink_identity(
    State(state): State<IdentityState>,
    caller: AuthUser,
    Json(body): Json<UnlinkIdentity>,
) -> AppResult<Json<Identities>> {
    Ok(Json(
        links::unlink(&state, &caller, body.identity_id).await?,
    ))
}

/// Identity's part of the OpenAPI document; the composition root merges every area's.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        register_email_password,
        login_email_password,
        profile,
        refresh,
        logout,
        jwks,
        list_users,
        set_role,
        auth_nonce,
        register_blockchain,
        login_blockchain,
        link_identity,
        unlink_identity,
    ),
    tags(
        (name = "identity", description = "Accounts and sign-in"),
        (name = "tokens", description = "Sessions and signing keys"),
        (name = "users", description = "User administration (ADMIN)"),
    )
)]
pub struct IdentityApi;
