//! Credentials and sessions: password hashing, access tokens (JWT), refresh tokens, and Sign-In
//! with Ethereum (message checks and self-authenticating nonces).

pub mod jwt;
pub mod keys;
pub mod nonce;
pub mod password;
pub mod refresh;
pub mod siwe;
pub mod totp;

pub use jwt::{AccessClaims, Amr, Methods, TokenSigner, TokenVerifier};
pub use keys::SigningKey;
pub use password::PasswordHasher;
