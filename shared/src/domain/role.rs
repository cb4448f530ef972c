use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A user's role. Stored as the Postgres enum `user_role`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sqlx(type_name = "user_role", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    Admin,
    Staff,
    Client,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_the_contract() -> crate::TestResult {
        assert_eq!(serde_json::to_string(&Role::Admin)?, "\"ADMIN\"");
        assert!(serde_json::from_str::<Role>("\"admin\"").is_err());
        assert!(serde_json::from_str::<Role>("\"ROOT\"").is_err());
        Ok(())
    }
}
