use crate::error::FieldError;
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashSet;
use std::sync::LazyLock;

/// Django's list of 20,000 common passwords (BSD-3-Clause; see `shared/data/README.md`).
const COMMON: &str = include_str!("../../data/common-passwords.txt");

static COMMON_SET: LazyLock<HashSet<&'static str>> =
    LazyLock::new(|| COMMON.lines().map(str::trim).collect());

pub const MIN_CHARS: usize = 8;
pub const MAX_CHARS: usize = 128;

/// A new password that meets the policy: 8..=128 characters (counted as Unicode scalar
/// values, never silently truncated) and not on the common-password list.
pub struct Password(SecretString);

impl Password {
    pub fn parse(raw: String) -> Result<Self, FieldError> {
        let err = |m: &str| FieldError::new("password", m);
        let chars = raw.chars().count();
        if chars < MIN_CHARS {
            return Err(err("must be at least 8 characters"));
        }
        if chars > MAX_CHARS {
            return Err(err("must be at most 128 characters"));
        }
        if is_common(&raw) {
            return Err(FieldError::semantic(
                "password",
                "is too common; choose a less guessable password",
            ));
        }
        Ok(Self(SecretString::from(raw)))
    }

    /// The request schema: the length rule. The common-password rule cannot be written as a
    /// schema; a well-formed but common password is a 422.
    pub fn schema() -> utoipa::openapi::schema::Object {
        super::schema::string(Some(MIN_CHARS), Some(MAX_CHARS))
            .description(Some(
                "8 to 128 characters, not on the common-password list (else 422)",
            ))
            .build()
    }

    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

fn is_common(password: &str) -> bool {
    COMMON_SET.contains(password.trim().to_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_list_has_at_least_ten_thousand_entries() {
        assert!(COMMON_SET.len() >= 10_000, "{}", COMMON_SET.len());
    }

    #[test]
    fn length_is_counted_in_characters() {
        assert!(Password::parse("ééééééé".into()).is_err()); // 7 chars, 14 bytes
        assert!(Password::parse("ééééééé9".into()).is_ok());
        assert!(Password::parse("x".repeat(129)).is_err());
        assert!(Password::parse("xQ".repeat(64)).is_ok());
    }

    #[test]
    fn common_passwords_are_rejected_case_insensitively() {
        for pw in ["password", "Password1", "QWERTYUIOP", "iloveyou"] {
            let err = Password::parse(pw.into()).err();
            assert!(err.is_some(), "{pw} should be rejected");
        }
        assert!(Password::parse("correct horse battery staple".into()).is_ok());
    }

    #[test]
    fn debug_never_prints_the_secret() -> crate::TestResult {
        let p = Password::parse("a-very-private-one".into())?;
        assert!(!format!("{p:?}").contains("private"));
        Ok(())
    }
}
