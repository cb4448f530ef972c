//! The identity area: accounts, email/password and wallet identities, sessions and roles.
//!
//! One sub-module per capability, each with its rules and its handlers (`<capability>::api`):
//! [`account`] (registration, password login, profile, linked identities, roles), [`wallet`]
//! (Sign-In with Ethereum), [`sessions`] (tokens, live sessions, login history), [`recovery`]
//! (password reset and change, email verification) and [`mfa`] (TOTP). Shared by them: the
//! request and response bodies ([`dto`]), the records ([`model`]), abuse limits ([`abuse`]),
//! errors ([`error`]), audit actions ([`audit`]), configuration ([`config`]) and the OpenAPI tags
//! and links ([`openapi`]). Each capability's `api` declares the functions that serve its
//! handlers (`account::api::REGISTER`, ...). The core never imports this area.

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

pub use config::IdentityConfig;
pub use error::IdentityError;
pub use state::IdentityState;

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
