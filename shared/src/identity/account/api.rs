//! The account's functions (`register`, `login`, `profile`, `link-identity`, `unlink-identity`,
//! `users`) and their handlers: registration and password login, the profile, linked
//! identities, and user administration. Thin: extract, call the rule, choose the status.

use super::{self as account, links};
use crate::endpoint;
use crate::error::AppResult;
use crate::extract::{AdminOnly, AuthUser, Authorized, ClientInfo, ClientIp, Json, Path, Query};
use crate::function::needs::{CHAIN_RPC, DATABASE, EPHEMERAL_TABLE, PRIVATE_KEY, PUBLIC_KEYS};
use crate::function::{FunctionSpec, Http, Trigger};
use crate::identity::config::{ACCOUNT_MAIL_NEED, SIWE_NEED};
use crate::identity::dto::*;
use crate::identity::model::{Identity, User};
use crate::identity::sessions::api as sessions_api;
use crate::identity::state::IdentityState;
use crate::identity::wallet::api as wallet_api;
use axum::extract::State;
use axum::http::StatusCode;
use uuid::Uuid;

#[utoipa::path(post, path = "/register-email-password", tag = "identity",
    request_body = RegisterEmailPassword,
    responses(
        (status = 201, description = "Account created and signed in", body = Registered),
        (status = 409, description = "The email is already registered"),
        (status = 422, description = "Well-formed but refused: the password is too common"),
        (status = 429, description = "Rate-limited; see Retry-After"),
    ))]
pub async fn register_email_password(
    State(state): State<IdentityState>,
    client: ClientInfo,
    Json(body): Json<RegisterEmailPassword>,
) -> AppResult<(StatusCode, Json<Registered>)> {
    let registered = account::register_email(&state, &client, body).await?;
    Ok((StatusCode::CREATED, Json(registered)))
}

#[utoipa::path(post, path = "/login-email-password", tag = "identity",
    request_body = LoginEmailPassword,
    responses(
        (status = 200, description = "Signed in (a TokenPair), or, with TOTP on, `{\"mfa_required\":true,\"mfa_token\"}` for POST /login/mfa", body = SignedIn),
        (status = 401, description = "Wrong email or password (one answer for both)"),
        (status = 403, description = "REQUIRE_VERIFIED_EMAIL is on and the address is not verified yet (type urn:gantry:problem:email-not-verified; only after a right password)"),
        (status = 429, description = "Rate-limited, or the account is locked out after failures; see Retry-After"),
    ))]
pub async fn login_email_password(
    State(state): State<IdentityState>,
    client: ClientInfo,
    Json(body): Json<LoginEmailPassword>,
) -> AppResult<Json<SignedIn>> {
    Ok(Json(account::login_email(&state, &client, body).await?))
}

#[utoipa::path(get, path = "/profile", tag = "identity", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller and every identity they hold", body = Profile),
    ))]
pub async fn profile(
    State(state): State<IdentityState>,
    caller: AuthUser,
) -> AppResult<Json<Profile>> {
    Ok(Json(account::profile(&state, &caller).await?))
}

#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of users", body = UserPage),
        (status = 403, description = "Not an ADMIN"),
    ))]
pub async fn list_users(
    State(state): State<IdentityState>,
    _admin: Authorized<AdminOnly>,
    Query(query): Query<PageQuery>,
) -> AppResult<Json<UserPage>> {
    Ok(Json(account::list_users(&state, query).await?))
}

#[utoipa::path(put, path = "/users/{id}/role", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    request_body = SetRole,
    responses(
        (status = 200, description = "The updated user", body = User),
        (status = 403, description = "Not an ADMIN"),
        (status = 404, description = "No such user"),
        (status = 409, description = "Would leave no ADMIN"),
    ))]
pub async fn set_role(
    State(state): State<IdentityState>,
    Authorized(admin, _): Authorized<AdminOnly>,
    Path(id): Path<Uuid>,
    Json(body): Json<SetRole>,
) -> AppResult<Json<User>> {
    Ok(Json(
        account::change_role(&state, &admin, id, body.role).await?,
    ))
}

#[utoipa::path(post, path = "/link-identity", tag = "identity", security(("bearer" = [])),
    request_body = LinkIdentity,
    responses(
        (status = 201, description = "The identity, now linked", body = Identity),
        (status = 401, description = "No valid access token, or the proof failed"),
        (status = 409, description = "The identity belongs to an account already"),
        (status = 422, description = "Well-formed but refused: a common password, or a SIWE message that breaks the EIP-4361 grammar"),
        (status = 429, description = "Rate-limited; see Retry-After"),
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
        (status = 404, description = "Not one of the caller's identities"),
        (status = 409, description = "It is the last identity"),
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

/// `register`: a new account, by email and password or by wallet.
pub static REGISTER: FunctionSpec = FunctionSpec {
    name: "register",
    trigger: Trigger::Http(&Http::new(
        IdentityState::with_rpc,
        &[
            endpoint!(register_email_password),
            endpoint!(wallet_api::register_blockchain),
        ],
    )),
    needs: &[
        &DATABASE,
        &PRIVATE_KEY,
        &SIWE_NEED,
        &CHAIN_RPC,
        &EPHEMERAL_TABLE,
        &ACCOUNT_MAIL_NEED,
    ],
};

/// `login`: sign in with email and password.
pub static LOGIN: FunctionSpec = FunctionSpec {
    name: "login",
    trigger: Trigger::Http(&Http::new(
        IdentityState::new,
        &[endpoint!(login_email_password)],
    )),
    needs: &[
        &DATABASE,
        &PRIVATE_KEY,
        &EPHEMERAL_TABLE,
        &ACCOUNT_MAIL_NEED,
    ],
};

/// `profile`: the caller's account and its login history.
pub static PROFILE: FunctionSpec = FunctionSpec {
    name: "profile",
    trigger: Trigger::Http(&Http::new(
        IdentityState::new,
        &[endpoint!(profile), endpoint!(sessions_api::login_history)],
    )),
    needs: &[&DATABASE, &PUBLIC_KEYS],
};

/// `link-identity`: add an email or a wallet to the caller's account.
pub static LINK_IDENTITY: FunctionSpec = FunctionSpec {
    name: "link-identity",
    trigger: Trigger::Http(&Http::new(
        IdentityState::with_rpc,
        &[endpoint!(link_identity)],
    )),
    needs: &[
        &DATABASE,
        &PUBLIC_KEYS,
        &SIWE_NEED,
        &CHAIN_RPC,
        &EPHEMERAL_TABLE,
        &ACCOUNT_MAIL_NEED,
    ],
};

/// `unlink-identity`: remove one of the caller's identities.
pub static UNLINK_IDENTITY: FunctionSpec = FunctionSpec {
    name: "unlink-identity",
    trigger: Trigger::Http(&Http::new(
        IdentityState::new,
        &[endpoint!(unlink_identity)],
    )),
    needs: &[&DATABASE, &PUBLIC_KEYS],
};

/// `users`: the account list and roles (ADMIN).
pub static USERS: FunctionSpec = FunctionSpec {
    name: "users",
    trigger: Trigger::Http(&Http::new(
        IdentityState::new,
        &[endpoint!(list_users), endpoint!(set_role)],
    )),
    needs: &[&DATABASE, &PUBLIC_KEYS],
};
