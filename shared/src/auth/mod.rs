//! Credentials any area may check: password hashing and access tokens (JWT, and the keys that
//! sign and verify them).

pub mod jwt;
pub mod keys;
pub mod password;

pub use jwt::{AccessClaims, Amr, Methods, TokenSigner, TokenVerifier};
pub use keys::SigningKey;
pub use password::PasswordHasher;
