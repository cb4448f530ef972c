//! Credentials and sessions: password hashing, access tokens (JWT) and refresh tokens.

pub mod jwt;
pub mod keys;
pub mod password;
pub mod refresh;

pub use jwt::{AccessClaims, Amr, TokenSigner, TokenVerifier};
pub use keys::SigningKey;
pub use password::PasswordHasher;
