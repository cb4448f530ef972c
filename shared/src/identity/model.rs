//! Identity's records as the contract shows them.

use crate::domain::Role;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

/// `User` as the contract shows it.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct User {
    pub id: Uuid,
    pub name: String,
    pub email: Option<String>,
    pub role: Role,
    /// Whether `email` has been proven by a link sent to it.
    pub email_verified: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `Identity` as the contract shows it. It never carries a credential.
#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct Identity {
    pub id: Uuid,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: IdentityType,
    pub identifier: String,
    pub is_primary_login: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// For a wallet: its DID form, `did:pkh:eip155:<chain>:<address>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub did: Option<String>,
}

/// The kind of an identity. Stored as the Postgres enum `identity_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "snake_case")]
#[sqlx(type_name = "identity_type", rename_all = "snake_case")]
pub enum IdentityType {
    EmailPassword,
    BlockchainAddress,
    Did,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_types_use_the_contract_names() -> crate::TestResult {
        assert_eq!(
            serde_json::to_string(&IdentityType::BlockchainAddress)?,
            "\"blockchain_address\""
        );
        Ok(())
    }
}
