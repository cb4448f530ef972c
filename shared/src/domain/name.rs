use crate::error::FieldError;

/// A user's display name: at most 100 characters as sent, not blank, no control characters;
/// stored trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

pub const MAX_CHARS: usize = 100;

/// The same rule as [`DisplayName::parse`], as an ECMA-262 (and Python `re`) pattern: no control
/// character (Unicode Cc), and at least one character that is neither a control nor Unicode
/// White_Space (what `str::trim` removes). Spelled out instead of `\s`, whose meaning differs
/// between regex dialects.
pub const PATTERN: &str = concat!(
    "^[^\\x00-\\x1f\\x7f-\\x9f]*",
    "[^\\x00-\\x20\\x7f-\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]",
    "[^\\x00-\\x1f\\x7f-\\x9f]*$"
);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let name = raw.trim();
        if raw.chars().count() > MAX_CHARS {
            return Err(FieldError::new("name", "must be at most 100 characters"));
        }
        if name.is_empty() {
            return Err(FieldError::new("name", "must not be empty"));
        }
        if raw.chars().any(char::is_control) {
            return Err(FieldError::new(
                "name",
                "must not contain control characters",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The request schema: what [`DisplayName::parse`] accepts (`null` means "the default").
    pub fn schema() -> utoipa::openapi::schema::Object {
        use super::schema::{or_null, string};
        or_null(
            string(Some(1), Some(MAX_CHARS))
                .pattern(Some(PATTERN))
                .description(Some("A display name; omitted or null for the default")),
        )
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
        assert!(DisplayName::parse(&format!("{}a", " ".repeat(100))).is_err());
    }

    /// The pattern and the parser agree, on the edge cases of both.
    #[test]
    fn the_schema_pattern_says_what_parse_does() -> crate::TestResult {
        let pattern = regex::Regex::new(PATTERN)?;
        for sample in [
            "Zoë",
            " a ",
            "a\u{a0}",
            "\u{a0}",
            " ",
            "\t",
            "\u{3000}x",
            "\u{feff}",
            "a\u{85}",
            "\u{2028}",
            "x\u{7f}",
            "\u{200b}",
            "",
            "\u{1680}",
            "🙂",
        ] {
            assert_eq!(
                pattern.is_match(sample),
                DisplayName::parse(sample).is_ok(),
                "{sample:?}"
            );
        }
        Ok(())
    }
}
