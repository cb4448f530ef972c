//! Time-based one-time passwords (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps, ±1 step of
//! skew) through `totp-rs`, and the sealing of their secrets at rest: AES-256-GCM (ring, already
//! linked as rustls's provider) under `MFA_ENCRYPTION_KEY`, with the account id as associated
//! data, so a sealed secret copied to another account's row does not open.

use crate::error::{AppError, AppResult};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use secrecy::{ExposeSecret, SecretBox};
use totp_rs::{Builder, Secret, Totp};
use uuid::Uuid;

/// Secret length: 160 bits, as RFC 4226 recommends.
pub const SECRET_BYTES: usize = 20;
/// Digits of a code.
pub const DIGITS: u8 = 6;
/// Seconds per step.
pub const STEP: u64 = 30;

/// A TOTP secret in the clear (kept in memory only while a code is checked or shown once).
pub struct TotpSecret(SecretBox<[u8; SECRET_BYTES]>);

impl TotpSecret {
    /// 160 fresh bits from the OS.
    pub fn generate() -> Self {
        let mut bytes = [0u8; SECRET_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(SecretBox::new(Box::new(bytes)))
    }

    /// The base32 form (RFC 4648, no padding) authenticator apps take.
    pub fn base32(&self) -> String {
        Secret::new_stack(*self.0.expose_secret()).to_base32()
    }

    fn totp(&self, issuer: &str, account: &str) -> AppResult<Totp> {
        // `:` separates issuer and account in the label; neither may hold one.
        Builder::new()
            .with_secret(Secret::new_stack(*self.0.expose_secret()))
            .with_digits(DIGITS)
            .with_step_duration(STEP)
            .with_skew(1)
            .with_issuer(Some(issuer.replace(':', " ")))
            .with_account_name(account.replace(':', " "))
            .build()
            .map_err(|e| AppError::internal(anyhow::anyhow!("TOTP parameters: {e}")))
    }

    /// The `otpauth://totp/...` URI an authenticator app scans.
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> AppResult<String> {
        self.totp(issuer, account)?
            .to_url()
            .map_err(|e| AppError::internal(anyhow::anyhow!("otpauth URI: {e}")))
    }

    /// The step (`unix time / 30`) whose code `code` is, within one step of `now`; `None` for a
    /// wrong or malformed code. Accepting a step once is the caller's job.
    pub fn matching_step(&self, code: &str, now: u64) -> Option<u64> {
        let totp = self.totp("gantry", "check").ok()?;
        totp.check(code.trim(), now)
    }

    /// The code for `time`.
    #[cfg(test)]
    fn code_at(&self, time: u64) -> String {
        self.totp("gantry", "code")
            .map(|totp| totp.generate(time).to_string())
            .unwrap_or_default()
    }
}

/// The key TOTP secrets are sealed with: 32 bytes from `MFA_ENCRYPTION_KEY` (base64).
pub struct SealingKey(LessSafeKey);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(<redacted>)")
    }
}

impl SealingKey {
    /// From base64 of exactly 32 bytes.
    pub fn from_base64(encoded: &str) -> Option<Self> {
        let bytes = STANDARD.decode(encoded.trim()).ok()?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes).ok()?;
        (bytes.len() == 32).then(|| Self(LessSafeKey::new(key)))
    }

    /// A new random key, base64 (for `gantry keygen`).
    pub fn generate_base64() -> String {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        STANDARD.encode(bytes)
    }

    /// `nonce || ciphertext || tag`, bound to `owner`.
    pub fn seal(&self, secret: &TotpSecret, owner: Uuid) -> AppResult<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut sealed = secret.0.expose_secret().to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(owner.as_bytes()),
                &mut sealed,
            )
            .map_err(|_| AppError::internal(anyhow::anyhow!("sealing a TOTP secret failed")))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The secret `sealed` holds for `owner`; an error if it was altered, sealed under another
    /// key or for another account.
    pub fn open(&self, sealed: &[u8], owner: Uuid) -> AppResult<TotpSecret> {
        let failed = || AppError::internal(anyhow::anyhow!("a sealed TOTP secret does not open"));
        let (nonce, ciphertext) = sealed.split_at_checked(NONCE_LEN).ok_or_else(failed)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| failed())?;
        let mut buffer = ciphertext.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(owner.as_bytes()), &mut buffer)
            .map_err(|_| failed())?;
        let bytes: [u8; SECRET_BYTES] = plain.try_into().map_err(|_| failed())?;
        Ok(TotpSecret(SecretBox::new(Box::new(bytes))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestResult;

    fn rfc_secret() -> TotpSecret {
        TotpSecret(SecretBox::new(Box::new(*b"12345678901234567890")))
    }

    /// RFC 6238 Appendix B, SHA-1 column, at 6 digits (the last six of the RFC's eight: the
    /// truncation is the same number modulo 10^6).
    #[test]
    fn rfc_6238_appendix_b_vectors() {
        let secret = rfc_secret();
        for (time, eight) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(secret.code_at(time), eight[2..], "T = {time}");
            assert_eq!(secret.matching_step(&eight[2..], time), Some(time / STEP));
        }
    }

    #[test]
    fn a_code_is_good_one_step_either_side_and_no_further() {
        let secret = rfc_secret();
        let now = 1_234_567_890;
        let code = secret.code_at(now);
        assert_eq!(secret.matching_step(&code, now - STEP), Some(now / STEP));
        assert_eq!(secret.matching_step(&code, now + STEP), Some(now / STEP));
        assert_eq!(secret.matching_step(&code, now + 2 * STEP), None);
        assert_eq!(secret.matching_step("12345a", now), None);
        assert_eq!(secret.matching_step("", now), None);
    }

    #[test]
    fn the_otpauth_uri_names_issuer_account_and_secret() -> TestResult {
        let secret = rfc_secret();
        let uri = secret.otpauth_uri("gantry", "ada@example.com")?;
        assert!(
            uri.starts_with("otpauth://totp/gantry:ada%40example.com?"),
            "{uri}"
        );
        assert!(
            uri.contains(&format!("secret={}", secret.base32())),
            "{uri}"
        );
        assert_eq!(secret.base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        Ok(())
    }

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_for_its_owner() -> TestResult {
        let key = SealingKey::from_base64(&SealingKey::generate_base64()).ok_or("key")?;
        let other = SealingKey::from_base64(&SealingKey::generate_base64()).ok_or("key")?;
        let owner = Uuid::now_v7();
        let secret = TotpSecret::generate();
        let sealed = key.seal(&secret, owner)?;
        assert!(
            !sealed
                .windows(8)
                .any(|w| secret.0.expose_secret().windows(8).any(|s| s == w))
        );
        assert_eq!(key.open(&sealed, owner)?.base32(), secret.base32());
        assert!(
            key.open(&sealed, Uuid::now_v7()).is_err(),
            "another account"
        );
        assert!(other.open(&sealed, owner).is_err(), "another key");
        let mut altered = sealed.clone();
        if let Some(last) = altered.last_mut() {
            *last ^= 1;
        }
        assert!(key.open(&altered, owner).is_err(), "altered");
        assert!(key.open(&sealed[..5], owner).is_err(), "truncated");
        assert!(
            SealingKey::from_base64("c2hvcnQ=").is_none(),
            "16 bytes is too short"
        );
        Ok(())
    }
}
