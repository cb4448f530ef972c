//! Request and response bodies, exactly as the contract names them.

use super::model::{Identity, User};
use crate::domain::Role;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterEmailPassword {
    #[schema(schema_with = crate::domain::Email::schema)]
    pub email: String,
    #[schema(schema_with = crate::domain::Password::schema)]
    pub password: String,
    #[serde(default)]
    #[schema(schema_with = crate::domain::DisplayName::schema)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginEmailPassword {
    #[schema(schema_with = crate::domain::Email::schema)]
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    pub role: Role,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    pub user: User,
    #[serde(flatten)]
    pub tokens: TokenPair,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Profile {
    pub user: User,
    pub identities: Vec<Identity>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    pub items: Vec<User>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(format = Uuid)]
    pub cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NonceRequest {
    /// Optionally binds the nonce to this wallet address (any case).
    #[serde(default)]
    #[schema(schema_with = crate::auth::siwe::schema::address)]
    pub address: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NonceIssued {
    /// Put this in the SIWE message's `Nonce:` line. Single-use.
    pub nonce: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: time::OffsetDateTime,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBlockchain {
    #[schema(schema_with = crate::auth::siwe::schema::message)]
    pub message: String,
    #[schema(schema_with = crate::auth::siwe::schema::signature)]
    pub signature: String,
    #[serde(default)]
    #[schema(schema_with = crate::domain::DisplayName::schema)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBlockchain {
    #[schema(schema_with = crate::auth::siwe::schema::message)]
    pub message: String,
    #[schema(schema_with = crate::auth::siwe::schema::signature)]
    pub signature: String,
}

/// The new identity and its fresh proof.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LinkIdentity {
    EmailPassword {
        #[schema(schema_with = crate::domain::Email::schema)]
        email: String,
        #[schema(schema_with = crate::domain::Password::schema)]
        password: String,
    },
    BlockchainAddress {
        #[schema(schema_with = crate::auth::siwe::schema::message)]
        message: String,
        #[schema(schema_with = crate::auth::siwe::schema::signature)]
        signature: String,
    },
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnlinkIdentity {
    pub identity_id: uuid::Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Identities {
    pub identities: Vec<Identity>,
}
