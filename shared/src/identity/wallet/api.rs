//! Sign-In with Ethereum's functions (`auth-nonce`, `login-blockchain`) and their handlers:
//! nonces, wallet registration (served by `register`) and wallet login. Thin: extract, call the rule, choose the status.

use super::{self as wallet};
use crate::endpoint;
use crate::error::AppResult;
use crate::extract::{ClientInfo, ClientIp, Json};
use crate::function::needs::{CHAIN_RPC, DATABASE, EPHEMERAL_TABLE, PRIVATE_KEY};
use crate::function::{FunctionSpec, Http, Trigger};
use crate::identity::config::SIWE_NEED;
use crate::identity::dto::*;
use crate::identity::state::IdentityState;
use axum::extract::State;
use axum::http::StatusCode;

#[utoipa::path(post, path = "/auth/nonce", tag = "identity",
    request_body = NonceRequest,
    responses(
        (status = 201, description = "A single-use nonce for a SIWE message", body = NonceIssued),
        (status = 400, description = "Invalid address"),
        (status = 429, description = "Rate-limited; see Retry-After"),
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
        (status = 400, description = "Not an EIP-4361 message, or bad input"),
        (status = 401, description = "A check, the nonce or the signature failed (one answer for all)"),
        (status = 409, description = "The wallet is already registered"),
        (status = 422, description = "The message has the EIP-4361 preamble but breaks the rest of its grammar"),
        (status = 429, description = "Rate-limited; see Retry-After"),
    ))]
pub async fn register_blockchain(
    State(state): State<IdentityState>,
    client: ClientInfo,
    Json(body): Json<RegisterBlockchain>,
) -> AppResult<(StatusCode, Json<Registered>)> {
    Ok((
        StatusCode::CREATED,
        Json(wallet::register(&state, &client, body).await?),
    ))
}

#[utoipa::path(post, path = "/login-blockchain", tag = "identity",
    request_body = LoginBlockchain,
    responses(
        (status = 200, description = "Signed in (a TokenPair), or, with TOTP on, `{\"mfa_required\":true,\"mfa_token\"}` for POST /login/mfa", body = SignedIn),
        (status = 400, description = "Not an EIP-4361 message, or bad input"),
        (status = 401, description = "A check, the nonce, the signature or the account failed (one answer for all)"),
        (status = 422, description = "The message has the EIP-4361 preamble but breaks the rest of its grammar"),
        (status = 429, description = "Rate-limited or locked out; see Retry-After"),
    ))]
pub async fn login_blockchain(
    State(state): State<IdentityState>,
    client: ClientInfo,
    Json(body): Json<LoginBlockchain>,
) -> AppResult<Json<SignedIn>> {
    Ok(Json(wallet::login(&state, &client, body).await?))
}

/// `auth-nonce`: a single-use SIWE nonce.
pub static AUTH_NONCE: FunctionSpec = FunctionSpec {
    name: "auth-nonce",
    trigger: Trigger::Http(&Http::new(IdentityState::new, &[endpoint!(auth_nonce)])),
    needs: &[&SIWE_NEED],
};

/// `login-blockchain`: sign in with Ethereum.
pub static LOGIN_BLOCKCHAIN: FunctionSpec = FunctionSpec {
    name: "login-blockchain",
    trigger: Trigger::Http(&Http::new(
        IdentityState::with_rpc,
        &[endpoint!(login_blockchain)],
    )),
    needs: &[
        &DATABASE,
        &PRIVATE_KEY,
        &SIWE_NEED,
        &CHAIN_RPC,
        &EPHEMERAL_TABLE,
    ],
};
