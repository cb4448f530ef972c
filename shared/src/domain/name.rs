use crate::error::FieldError;

/// A user's display name: trimmed, 1..=100 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let name = raw.trim();
        let len = name.chars().count();
        if len == 0 {
            return Err(FieldError::new("name", "must not be empty"));
        }
        if len > 100 {
            return Err(FieldError::new("name", "must be at most 100 characters"));
        }
        if name.chars().any(char::is_control) {
            return Err(FieldError::new(
                "name",
                "must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_trimmed_unicode_names() -> crate::TestResult {
        assert_eq!(DisplayName::parse("  Zoë  ")?.as_str(), "Zoë");
        Ok(())
    }

    #[test]
    fn rejects_empty_long_and_control_names() {
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"x".repeat(101)).is_err());
        assert!(DisplayName::parse("a\u{0}b").is_err());
        assert!(DisplayName::parse(&"é".repeat(100)).is_ok());
    }
}
