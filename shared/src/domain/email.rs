use crate::error::FieldError;
use std::fmt;
use std::str::FromStr;

/// An email address: trimmed, syntax-checked (RFC 5322 addr-spec via `email_address`), with a
/// lower-cased domain. Uniqueness is case-insensitive (a unique index on `lower(identifier)`),
/// while the local part keeps the case the user typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

const MAX_LEN: usize = 254;

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let err = |m: &str| FieldError::new("email", m);
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(err("is required"));
        }
        if trimmed.len() > MAX_LEN {
            return Err(err("must be at most 254 characters"));
        }
        let parsed = email_address::EmailAddress::from_str(trimmed)
            .map_err(|_| err("is not a valid email address"))?;
        let domain = parsed.domain();
        // Reject quoted/IP-literal forms and single-label hosts: nobody signs up from them.
        if domain.starts_with('[') || !domain.contains('.') || parsed.local_part().starts_with('"')
        {
            return Err(err("is not a valid email address"));
        }
        Ok(Self(format!(
            "{}@{}",
            parsed.local_part(),
            domain.to_ascii_lowercase()
        )))
    }

    /// The request schema: what [`Email::parse`] accepts.
    pub fn schema() -> utoipa::openapi::schema::Object {
        use super::schema::{string, with_format};
        use utoipa::openapi::schema::KnownFormat;
        with_format(string(None, Some(MAX_LEN)), KnownFormat::Email)
            .description(Some(
                "An email address (RFC 5322 addr-spec with a dotted domain)",
            ))
            .build()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before `@`, used as a default display name.
    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_lowercases_the_domain_only() -> crate::TestResult {
        let e = Email::parse("  Ada.Lovelace@Example.COM ")?;
        assert_eq!(e.as_str(), "Ada.Lovelace@example.com");
        assert_eq!(e.local_part(), "Ada.Lovelace");
        Ok(())
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "   ",
            "plain",
            "@example.com",
            "a@",
            "a@@b.com",
            "a b@c.com",
            "a@localhost",
            "a@[127.0.0.1]",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn rejects_overlong_addresses() {
        let long = format!("{}@example.com", "a".repeat(250));
        let err = Email::parse(&long).err().map(|e| e.message);
        assert_eq!(err.as_deref(), Some("must be at most 254 characters"));
    }
}
