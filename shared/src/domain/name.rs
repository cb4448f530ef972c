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
        parse_line("name", raw, MAX_CHARS).map(Self)
    }

    /// The request schema: what [`DisplayName::parse`] accepts (`null` means "the default").
    pub fn schema() -> utoipa::openapi::schema::Object {
        super::schema::or_null(
            line_schema(MAX_CHARS)
                .description(Some("A display name; omitted or null for the default")),
        )
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A one-line text field (a name, a title): at most `max` characters as sent, not blank, no
/// control characters; returned trimmed. [`PATTERN`] says the same as a schema.
pub fn parse_line(field: &str, raw: &str, max: usize) -> Result<String, FieldError> {
    if raw.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    let line = raw.trim();
    if line.is_empty() {
        return Err(FieldError::new(field, "must not be empty"));
    }
    if raw.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(line.to_owned())
}

/// The schema of a [`parse_line`] field.
pub fn line_schema(max: usize) -> utoipa::openapi::schema::ObjectBuilder {
    super::schema::string(Some(1), Some(max)).pattern(Some(PATTERN))
}

/// Free text (a description): at most `max` characters, any but NUL (which Postgres text cannot
/// hold); kept as sent.
pub fn parse_text(field: &str, raw: &str, max: usize) -> Result<String, FieldError> {
    if raw.chars().count() > max {
        return Err(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        ));
    }
    if raw.contains('\0') {
        return Err(FieldError::new(field, "must not contain NUL"));
    }
    Ok(raw.to_owned())
}

/// What [`parse_text`] accepts, as a pattern.
pub const TEXT_PATTERN: &str = "^[^\\x00]*$";

/// The schema of a [`parse_text`] field.
pub fn text_schema(max: usize) -> utoipa::openapi::schema::ObjectBuilder {
    super::schema::string(None, Some(max)).pattern(Some(TEXT_PATTERN))
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

    #[test]
    fn the_text_pattern_says_what_parse_text_does() -> crate::TestResult {
        let pattern = regex::Regex::new(TEXT_PATTERN)?;
        for sample in ["", "line\nbreak\ttab", "a\0b", "\0"] {
            assert_eq!(
                pattern.is_match(sample),
                parse_text("d", sample, 100).is_ok(),
                "{sample:?}"
            );
        }
        Ok(())
    }
}
