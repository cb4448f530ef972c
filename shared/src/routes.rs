//! One router per deployable function, and the gateway that mounts them all.
//!
//! `functions/<name>/src/main.rs` passes the function of the same name to
//! [`crate::runtime::serve`].

use crate::identity::handlers as identity;
use crate::state::AppState;
use axum::Router;
use axum::routing::{get, post, put};

/// `POST /register-email-password`, `POST /register-blockchain`.
pub fn register(state: AppState) -> Router {
    state.install_chain_rpc();
    Router::new()
        .route(
            "/register-email-password",
            post(identity::register_email_password),
        )
        .route("/register-blockchain", post(identity::register_blockchain))
        .with_state(state)
}

/// `POST /auth/nonce`.
pub fn auth_nonce(state: AppState) -> Router {
    Router::new()
        .route("/auth/nonce", post(identity::auth_nonce))
        .with_state(state)
}

/// `POST /login-blockchain`.
pub fn login_blockchain(state: AppState) -> Router {
    state.install_chain_rpc();
    Router::new()
        .route("/login-blockchain", post(identity::login_blockchain))
        .with_state(state)
}

/// `POST /link-identity`.
pub fn link_identity(state: AppState) -> Router {
    state.install_chain_rpc();
    Router::new()
        .route("/link-identity", post(identity::link_identity))
        .with_state(state)
}

/// `POST /unlink-identity`.
pub fn unlink_identity(state: AppState) -> Router {
    Router::new()
        .route("/unlink-identity", post(identity::unlink_identity))
        .with_state(state)
}

/// `POST /login-email-password`.
pub fn login(state: AppState) -> Router {
    Router::new()
        .route(
            "/login-email-password",
            post(identity::login_email_password),
        )
        .with_state(state)
}

/// `GET /profile`.
pub fn profile(state: AppState) -> Router {
    Router::new()
        .route("/profile", get(identity::profile))
        .with_state(state)
}

/// `POST /token/refresh`, `POST /logout`.
pub fn token(state: AppState) -> Router {
    Router::new()
        .route("/token/refresh", post(identity::refresh))
        .route("/logout", post(identity::logout))
        .with_state(state)
}

/// `GET /.well-known/jwks.json`.
pub fn jwks(state: AppState) -> Router {
    Router::new()
        .route("/.well-known/jwks.json", get(identity::jwks))
        .with_state(state)
}

/// `GET /users`, `PUT /users/{id}/role`.
pub fn users(state: AppState) -> Router {
    Router::new()
        .route("/users", get(identity::list_users))
        .route("/users/{id}/role", put(identity::set_role))
        .with_state(state)
}

/// Builds one function's router from the shared state.
pub type Build = fn(AppState) -> Router;

/// Every deployable function by name, as in `functions/`, `template.yaml` and `stack.yml`.
pub const FUNCTIONS: &[(&str, Build)] = &[
    ("auth-nonce", auth_nonce),
    ("jwks", jwks),
    ("link-identity", link_identity),
    ("login", login),
    ("login-blockchain", login_blockchain),
    ("profile", profile),
    ("register", register),
    ("token", token),
    ("unlink-identity", unlink_identity),
    ("users", users),
];

/// The local gateway: every function's routes on one port, plus `GET /openapi.json`.
pub fn gateway(state: AppState) -> Router {
    FUNCTIONS
        .iter()
        .fold(Router::new(), |app, (_, build)| {
            app.merge(build(state.clone()))
        })
        .route("/openapi.json", get(crate::openapi::serve))
}
