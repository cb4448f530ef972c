//! The identity area: accounts, email/password and wallet identities, sessions and roles.
//!
//! It owns its routes and their OpenAPI paths ([`api`]), its router builders (below, one per
//! deployable function), its errors and the constraint names they map ([`error`]), its audit
//! actions ([`audit`]) and its configuration section ([`config`]). The core never imports it.

pub mod abuse;
pub mod api;
pub mod audit;
pub mod config;
pub mod dto;
pub mod error;
pub mod links;
pub mod model;
pub mod service;
pub mod session;
pub mod state;
pub mod wallet;

pub use config::IdentityConfig;
pub use error::IdentityError;
pub use state::IdentityState;

use crate::chain::AlloyRpc;
use crate::platform::{Platform, StartupError};
use axum::Router;
use axum::routing::{get, post, put};
use std::sync::Arc;

/// The state for routers that verify wallet proofs: with the chain RPC client
/// (`CHAIN_RPC_URLS`) for EIP-1271 contract wallets.
fn with_chain(platform: &Platform) -> Result<IdentityState, StartupError> {
    let rpc = AlloyRpc::new(platform.config.chain_rpc_urls.clone());
    IdentityState::with_chain(platform, Arc::new(rpc))
}

/// `POST /register-email-password`, `POST /register-blockchain`.
pub fn register(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route(
            "/register-email-password",
            post(api::register_email_password),
        )
        .route("/register-blockchain", post(api::register_blockchain))
        .with_state(with_chain(platform)?))
}

/// `POST /auth/nonce`.
pub fn auth_nonce(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route("/auth/nonce", post(api::auth_nonce))
        .with_state(IdentityState::new(platform)?))
}

/// `POST /login-blockchain`.
pub fn login_blockchain(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route("/login-blockchain", post(api::login_blockchain))
        .with_state(with_chain(platform)?))
}

/// `POST /link-identity`.
pub fn link_identity(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route("/link-identity", post(api::link_identity))
        .with_state(with_chain(platform)?))
}

/// `POST /unlink-identity`.
pub fn unlink_identity(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route("/unlink-identity", post(api::unlink_identity))
        .with_state(IdentityState::new(platform)?))
}

/// `POST /login-email-password`.
pub fn login(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route("/login-email-password", post(api::login_email_password))
        .with_state(IdentityState::new(platform)?))
}

/// `GET /profile`.
pub fn profile(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route("/profile", get(api::profile))
        .with_state(IdentityState::new(platform)?))
}

/// `POST /token/refresh`, `POST /logout`.
pub fn token(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route("/token/refresh", post(api::refresh))
        .route("/logout", post(api::logout))
        .with_state(IdentityState::new(platform)?))
}

/// `GET /.well-known/jwks.json`: needs only the token keys.
pub fn jwks(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route("/.well-known/jwks.json", get(api::jwks))
        .with_state(platform.tokens.clone()))
}

/// `GET /users`, `PUT /users/{id}/role`.
pub fn users(platform: &Platform) -> Result<Router, StartupError> {
    Ok(Router::new()
        .route("/users", get(api::list_users))
        .route("/users/{id}/role", put(api::set_role))
        .with_state(IdentityState::new(platform)?))
}

/// What expires in identity's tables, for the housekeeping job: spent SIWE nonces (a nonce past
/// its expiry is refused on its own, so its row no longer guards anything).
pub const PURGES: &[crate::store::housekeeping::Purge] = &[crate::store::housekeeping::Purge {
    name: "spent_nonces",
    run: |pool| {
        Box::pin(async move {
            sqlx::query!("DELETE FROM spent_nonces WHERE expires_at < now()")
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
    },
}];
