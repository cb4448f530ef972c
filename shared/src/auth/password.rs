//! Argon2id password hashing at OWASP parameters, in PHC string format.

use crate::domain::Password;
use crate::error::{AppError, AppResult};
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::{Arc, OnceLock};

/// OWASP Password Storage Cheat Sheet: Argon2id, m=19456 KiB, t=2, p=1.
pub const OWASP_M_COST: u32 = 19_456;
pub const OWASP_T_COST: u32 = 2;
pub const OWASP_P_COST: u32 = 1;

#[derive(Clone)]
pub struct PasswordHasher {
    argon: Arc<Argon2<'static>>,
    /// A hash of a random password, verified against when the account does not exist so that an
    /// unknown email costs exactly what a wrong password costs.
    dummy: Arc<OnceLock<String>>,
}

impl Default for PasswordHasher {
    fn default() -> Self {
        Self::owasp()
    }
}

impl PasswordHasher {
    pub fn owasp() -> Self {
        let params = Params::new(OWASP_M_COST, OWASP_T_COST, OWASP_P_COST, None)
            .unwrap_or_else(|_| Params::default());
        Self {
            argon: Arc::new(Argon2::new(Algorithm::Argon2id, Version::V0x13, params)),
            dummy: Arc::new(OnceLock::new()),
        }
    }

    /// Hashes on the calling thread. Use [`Self::hash`] from async code.
    pub fn hash_blocking(&self, password: &str) -> AppResult<String> {
        self.argon
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AppError::Internal(anyhow::anyhow!("argon2 hash failed: {e}")))
    }

    /// Verifies on the calling thread. `None` verifies against the dummy hash and returns false.
    pub fn verify_blocking(&self, password: &str, phc: Option<&str>) -> bool {
        let dummy;
        let stored = match phc {
            Some(stored) => stored,
            None => {
                dummy = self.dummy_hash();
                dummy.as_str()
            }
        };
        let ok = match PasswordHash::new(stored) {
            Ok(parsed) => self
                .argon
                .verify_password(password.as_bytes(), &parsed)
                .is_ok(),
            Err(_) => false,
        };
        ok && phc.is_some()
    }

    fn dummy_hash(&self) -> String {
        self.dummy
            .get_or_init(|| {
                let mut random = [0u8; 24];
                rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut random);
                self.hash_blocking(&crate::auth::refresh::b64(&random))
                    .unwrap_or_default()
            })
            .clone()
    }

    /// Hashes a new password off the async executor (Argon2id takes tens of milliseconds).
    pub async fn hash(&self, password: &Password) -> AppResult<String> {
        let this = self.clone();
        let secret = password.expose().to_owned();
        tokio::task::spawn_blocking(move || this.hash_blocking(&secret))
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("hash task failed: {e}")))?
    }

    /// Verifies off the async executor. `stored` is `None` for an unknown account.
    pub async fn verify(&self, password: &str, stored: Option<String>) -> AppResult<bool> {
        let this = self.clone();
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || this.verify_blocking(&password, stored.as_deref()))
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("verify task failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_phc_at_owasp_cost() {
        let h = PasswordHasher::owasp()
            .hash_blocking("correct horse")
            .unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
    }

    #[test]
    fn verify_accepts_the_right_password_only() {
        let hasher = PasswordHasher::owasp();
        let h = hasher.hash_blocking("correct horse").unwrap();
        assert!(hasher.verify_blocking("correct horse", Some(&h)));
        assert!(!hasher.verify_blocking("correct hors", Some(&h)));
        assert!(!hasher.verify_blocking("correct horse", Some("not a phc string")));
    }

    #[test]
    fn unknown_accounts_never_verify() {
        let hasher = PasswordHasher::owasp();
        assert!(!hasher.verify_blocking("anything", None));
        // The dummy is a real hash at the same cost, so the work matches a real verify.
        assert!(
            hasher
                .dummy_hash()
                .starts_with("$argon2id$v=19$m=19456,t=2,p=1$")
        );
    }

    #[test]
    fn salts_differ_between_hashes() {
        let hasher = PasswordHasher::owasp();
        assert_ne!(
            hasher.hash_blocking("same").unwrap(),
            hasher.hash_blocking("same").unwrap()
        );
    }
}
