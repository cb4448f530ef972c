//! Argon2id password hashing at OWASP parameters, in PHC string format.

use crate::domain::Password;
use crate::error::{AppError, AppResult};
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;

/// OWASP Password Storage Cheat Sheet: Argon2id, m=19456 KiB, t=2, p=1.
pub const OWASP_M_COST: u32 = 19_456;
pub const OWASP_T_COST: u32 = 2;
pub const OWASP_P_COST: u32 = 1;

/// A hash, at the same parameters, of a random password nobody kept. Verifying against it
/// costs exactly what verifying a real hash costs, so a login for an unknown account takes the
/// same time as a wrong password, from the first request on (a test pins its parameters).
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$HQMbM0HUIOW3LMIadMbbxQ$j0ypzN96TYAcvygdydD72rvFuQsCYkuuhTqQ1x4JbjE";

/// Whether `hash` was made at today's parameters (the PHC prefix `hash_blocking` writes).
fn is_current(hash: &str) -> bool {
    let current = format!("$argon2id$v=19$m={OWASP_M_COST},t={OWASP_T_COST},p={OWASP_P_COST}$");
    hash.starts_with(&current)
}

#[derive(Clone)]
pub struct PasswordHasher {
    /// Built on first use: `Argon2::new` detects AVX2 with CPUID, which traps to the hypervisor
    /// in a VM (Lambda's included) and cost 35 µs of every cold start, hashing or not.
    argon: Arc<OnceLock<Argon2<'static>>>,
    /// Each hash holds 19 MiB for tens of milliseconds: at most one per core runs at once, the
    /// rest queue, so a burst of logins cannot exhaust memory or starve other blocking work.
    /// Sized on first use: counting cores reads cgroup files, which most functions, that never
    /// hash, should not pay for at cold start.
    slots: Arc<OnceLock<Arc<Semaphore>>>,
}

impl PasswordHasher {
    pub fn owasp() -> Self {
        Self {
            argon: Arc::new(OnceLock::new()),
            slots: Arc::new(OnceLock::new()),
        }
    }

    fn argon(&self) -> &Argon2<'static> {
        self.argon.get_or_init(|| {
            let params = Params::new(OWASP_M_COST, OWASP_T_COST, OWASP_P_COST, None)
                .unwrap_or_else(|_| Params::default());
            Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        })
    }

    /// Hashes on the calling thread. Use [`Self::hash`] from async code.
    pub fn hash_blocking(&self, password: &str) -> AppResult<String> {
        self.argon()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AppError::internal(anyhow::anyhow!("argon2 hash failed: {e}")))
    }

    /// Verifies on the calling thread. `None` (no such account) verifies against the dummy
    /// hash and is always false.
    pub fn verify_blocking(&self, password: &str, stored: Option<&str>) -> bool {
        let matches = PasswordHash::new(stored.unwrap_or(DUMMY_HASH)).is_ok_and(|parsed| {
            self.argon()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        });
        matches && stored.is_some()
    }

    /// Hashes a new password off the async executor (Argon2id takes tens of milliseconds).
    pub async fn hash(&self, password: &Password) -> AppResult<String> {
        let secret = password.expose().to_owned();
        self.run(move |this| this.hash_blocking(&secret)).await?
    }

    /// Verifies off the async executor. `stored` is `None` for an unknown account.
    pub async fn verify(&self, password: &str, stored: Option<String>) -> AppResult<bool> {
        let password = password.to_owned();
        self.run(move |this| this.verify_blocking(&password, stored.as_deref()))
            .await
    }

    /// Verifies off the async executor, like [`Self::verify`]; when the password matches a hash
    /// made with other parameters than today's (older costs, another Argon2 variant), also hashes
    /// it again at today's, in the same blocking task: `Some(new hash)` to store.
    pub async fn verify_and_upgrade(
        &self,
        password: &str,
        stored: Option<String>,
    ) -> AppResult<(bool, Option<String>)> {
        let password = password.to_owned();
        self.run(move |this| {
            let stored = stored.as_deref();
            if !this.verify_blocking(&password, stored) {
                return Ok((false, None));
            }
            match stored {
                Some(hash) if !is_current(hash) => Ok((true, Some(this.hash_blocking(&password)?))),
                _ => Ok((true, None)),
            }
        })
        .await?
    }

    /// Runs `work` on the blocking pool once a slot is free.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Self) -> T + Send + 'static,
    ) -> AppResult<T> {
        let slots = self.slots.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, usize::from);
            Arc::new(Semaphore::new(cores))
        });
        let permit = Arc::clone(slots)
            .acquire_owned()
            .await
            .map_err(|e| AppError::internal(anyhow::anyhow!("hasher closed: {e}")))?;
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work(&this)
        })
        .await
        .map_err(|e| AppError::internal(anyhow::anyhow!("password task failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestResult;

    const OWASP_PREFIX: &str = "$argon2id$v=19$m=19456,t=2,p=1$";

    #[test]
    fn hashes_are_argon2id_phc_at_owasp_cost() -> TestResult {
        let h = PasswordHasher::owasp().hash_blocking("correct horse")?;
        assert!(h.starts_with(OWASP_PREFIX), "{h}");
        Ok(())
    }

    #[test]
    fn verify_accepts_the_right_password_only() -> TestResult {
        let hasher = PasswordHasher::owasp();
        let h = hasher.hash_blocking("correct horse")?;
        assert!(hasher.verify_blocking("correct horse", Some(&h)));
        assert!(!hasher.verify_blocking("correct hors", Some(&h)));
        assert!(!hasher.verify_blocking("correct horse", Some("not a phc string")));
        Ok(())
    }

    #[test]
    fn unknown_accounts_never_verify_but_cost_a_real_verification() {
        let hasher = PasswordHasher::owasp();
        assert!(!hasher.verify_blocking("anything", None));
        // The dummy parses and carries the production parameters, so the work is identical.
        assert!(DUMMY_HASH.starts_with(OWASP_PREFIX), "{DUMMY_HASH}");
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn salts_differ_between_hashes() -> TestResult {
        let hasher = PasswordHasher::owasp();
        assert_ne!(hasher.hash_blocking("same")?, hasher.hash_blocking("same")?);
        Ok(())
    }
}
