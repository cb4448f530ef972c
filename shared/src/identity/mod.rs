//! The identity area: accounts, email/password and wallet identities, sessions and roles.
//!
//! One sub-module per capability, each with its rules and its handlers (`<capability>::api`):
//! [`account`] (registration, password login, profile, linked identities, roles), [`wallet`]
//! (Sign-In with Ethereum), [`sessions`] (tokens, live sessions, login history), [`recovery`]
//! (password reset and change, email verification) and [`mfa`] (TOTP). Shared by them: the
//! request and response bodies ([`dto`]), the records ([`model`]), abuse limits ([`abuse`]),
//! errors ([`error`]), audit actions ([`audit`]), configuration ([`config`]) and the OpenAPI tags
//! and links ([`openapi`]). Below, one `HttpApi` per deployable function. The core never
//! imports this area.

pub mod abuse;
pub mod account;
pub mod audit;
pub mod config;
pub mod dto;
pub mod error;
pub mod facade;
pub mod mfa;
pub mod model;
pub mod openapi;
pub mod recovery;
pub mod refresh;
pub mod sessions;
pub mod state;
pub mod step_up;
pub mod wallet;

use account::api as account_api;
use mfa::api as mfa_api;
use recovery::api as recovery_api;
use sessions::api as sessions_api;
use wallet::api as wallet_api;

pub use config::IdentityConfig;
pub use error::IdentityError;
pub use state::IdentityState;

use crate::chain::AlloyRpc;
use crate::platform::{Platform, StartupError, Tokens};

use crate::endpoint;
use crate::function::{Endpoint, HttpApi};
use std::sync::Arc;

/// The state for routers that verify wallet proofs: with the chain RPC client
/// (`CHAIN_RPC_URLS`) for EIP-1271 contract wallets.
fn with_chain(platform: &Platform) -> Result<IdentityState, StartupError> {
    let rpc = AlloyRpc::new(platform.config.chain_rpc_urls.clone());
    IdentityState::with_chain(platform, Arc::new(rpc))
}

/// `register`: a new account, by email and password or by wallet.
pub struct Register;

impl HttpApi for Register {
    type State = IdentityState;
    const ENDPOINTS: &'static [Endpoint<IdentityState>] = &[
        endpoint!(account_api::register_email_password),
        endpoint!(wallet_api::register_blockchain),
    ];
    fn state(platform: &Platform) -> Result<IdentityState, StartupError> {
        with_chain(platform)
    }
}

/// `auth-nonce`: a single-use SIWE nonce.
pub struct AuthNonce;

impl HttpApi for AuthNonce {
    type State = IdentityState;
    const ENDPOINTS: &'static [Endpoint<IdentityState>] = &[endpoint!(wallet_api::auth_nonce)];
    fn state(platform: &Platform) -> Result<IdentityState, StartupError> {
        IdentityState::new(platform)
    }
}

/// `login-blockchain`: sign in with Ethereum.
pub struct LoginBlockchain;

impl HttpApi for LoginBlockchain {
    type State = IdentityState;
    const ENDPOINTS: &'static [Endpoint<IdentityState>] =
        &[endpoint!(wallet_api::login_blockchain)];
    fn state(platform: &Platform) -> Result<IdentityState, StartupError> {
        with_chain(platform)
    }
}

/// `link-identity`: add an email or a wallet to the caller's account.
pub struct LinkIdentity;

impl HttpApi for LinkIdentity {
    type State = IdentityState;
    const ENDPOINTS: &'static [Endpoint<IdentityState>] = &[endpoint!(account_api::link_identity)];
    fn state(platform: &Platform) -> Result<IdentityState, StartupError> {
        with_chain(platform)
    }
}

/// `unlink-identity`: remove one of the caller's identities.
pub struct UnlinkIdentity;

impl HttpApi for UnlinkIdentity {
    type State = IdentityState;
    const ENDPOINTS: &'static [Endpoint<IdentityState>] =
        &[endpoint!(account_api::unlink_identity)];
    fn state(platform: &Platform) -> Result<IdentityState, StartupError> {
        IdentityState::new(platform)
    }
}

/// `login`: sign in with email and password.
pub struct Login;

impl HttpApi for Login {
    type State = IdentityState;
    const ENDPOINTS: &'static [Endpoint<IdentityState>] =
        &[endpoint!(account_api::login_email_password)];
    fn state(platform: &Platform) -> Result<IdentityState, StartupError> {
        IdentityState::new(platform)
    }
}

/// `profile`: the caller's account and its login history.
pub struct Profile;

impl HttpApi for Profile {
    type State = IdentityState;
    const ENDPOINTS: &'static [Endpoint<IdentityState>] = &[
        endpoint!(account_api::profile),
        endpoint!(sessions_api::login_history),
    ];
    fn state(platform: &Platform) -> Result<IdentityState, StartupError> {
        IdentityState::new(platform)
    }
}

/// `token`: refresh-token rotation and logout.
pub struct Token;

impl HttpApi for Token {
    type State = IdentityState;
    const ENDPOINTS: &'static [Endpoint<IdentityState>] = &[
        endpoint!(sessions_api::refresh),
        endpoint!(sessions_api::logout),
    ];
    fn state(platform: &Platform) -> Result<IdentityState, StartupError> {
        IdentityState::new(platform)
    }
}

/// `password`: forgot (a mailed reset link), reset, and change.
pub struct Password;

impl HttpApi for Password {
    type State = IdentityState;
    const ENDPOINTS: &'static [Endpoint<IdentityState>] = &[
        endpoint!(recovery_api::password_forgot),
        endpoint!(recovery_api::password_reset),
        endpoint!(recovery_api::password_change),
    ];
    fn state(platform: &Platform) -> Result<IdentityState, StartupError> {
        IdentityState::new(platform)
    }
}

/// `email-verification`: the mailed link's check, and a new link.
pub struct EmailVerification;

impl HttpApi for EmailVerification {
    type State = IdentityState;
    const ENDPOINTS: &'static [Endpoint<IdentityState>] = &[
        endpoint!(recovery_api::verify_email),
        endpoint!(recovery_api::resend_verification),
    ];
    fn state(platform: &Platform) -> Result<IdentityState, StartupError> {
        IdentityState::new(platform)
    }
}

/// `sessions`: the caller's live sessions, and ending one.
pub struct Sessions;

impl HttpApi for Sessions {
    type State = IdentityState;
    const ENDPOINTS: &'static [Endpoint<IdentityState>] = &[
        endpoint!(sessions_api::sessions),
        endpoint!(sessions_api::end_session),
    ];
    fn state(platform: &Platform) -> Result<IdentityState, StartupError> {
        IdentityState::new(platform)
    }
}

/// `mfa`: TOTP enrolment, activation and removal.
pub struct Mfa;

impl HttpApi for Mfa {
    type State = IdentityState;
    const ENDPOINTS: &'static [Endpoint<IdentityState>] = &[
        endpoint!(mfa_api::mfa_enroll),
        endpoint!(mfa_api::mfa_activate),
        endpoint!(mfa_api::mfa_remove),
    ];
    fn state(platform: &Platform) -> Result<IdentityState, StartupError> {
        IdentityState::new(platform)
    }
}

/// `login-mfa`: the second step of a sign-in with TOTP on.
pub struct LoginMfa;

impl HttpApi for LoginMfa {
    type State = IdentityState;
    const ENDPOINTS: &'static [Endpoint<IdentityState>] = &[endpoint!(mfa_api::login_mfa)];
    fn state(platform: &Platform) -> Result<IdentityState, StartupError> {
        IdentityState::new(platform)
    }
}

/// `jwks`: the public keys; needs only the token keys.
pub struct Jwks;

impl HttpApi for Jwks {
    type State = Tokens;
    const ENDPOINTS: &'static [Endpoint<Tokens>] = &[endpoint!(sessions_api::jwks)];
    fn state(platform: &Platform) -> Result<Tokens, StartupError> {
        Ok(platform.tokens.clone())
    }
}

/// `users`: the account list and roles (ADMIN).
pub struct Users;

impl HttpApi for Users {
    type State = IdentityState;
    const ENDPOINTS: &'static [Endpoint<IdentityState>] = &[
        endpoint!(account_api::list_users),
        endpoint!(account_api::set_role),
    ];
    fn state(platform: &Platform) -> Result<IdentityState, StartupError> {
        IdentityState::new(platform)
    }
}

/// What expires in identity's tables, for the housekeeping job: spent SIWE nonces
/// ([`wallet::nonce::PURGE`]), mailed tokens a day past their expiry or use, and MFA challenges a
/// day past their expiry.
pub const PURGES: &[crate::purge::Purge] = &[
    wallet::nonce::PURGE,
    crate::purge::Purge {
        name: "account_tokens",
        run: |pool| {
            Box::pin(async move {
                sqlx::query!(
                    "DELETE FROM account_tokens WHERE expires_at < now() - interval '1 day'
                       OR used_at < now() - interval '1 day'"
                )
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
            })
        },
    },
    crate::purge::Purge {
        name: "mfa_challenges",
        run: |pool| {
            Box::pin(async move {
                sqlx::query!(
                    "DELETE FROM mfa_challenges WHERE expires_at < now() - interval '1 day'"
                )
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
            })
        },
    },
];
