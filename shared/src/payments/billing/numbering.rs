//! Document numbers: gap-free per series. A format such as `INV-{YYYY}-{SEQ:4}` names its series
//! by everything but the counter (`INV-2027-{SEQ}`), so each year starts again at 1. The counter
//! is a row of `number_series`, incremented under its lock in the issuing transaction: a
//! rolled-back issue takes its number back, and a concurrent one waits, so numbers never skip or
//! repeat (a Postgres sequence skips on rollback, which is why this is not one).

use crate::error::AppResult;
use sqlx::PgConnection;
use time::Date;

/// The longest number a format may make.
const MAX_LEN: usize = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Text(String),
    Year4,
    Year2,
    Month,
    Seq { width: usize },
}

/// A parsed number format: literal text (letters, digits, `-_/.`), `{YYYY}`, `{YY}`, `{MM}`,
/// and exactly one `{SEQ}` or `{SEQ:n}` (zero-padded to n digits, 1 to 12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberFormat(Vec<Token>);

impl NumberFormat {
    pub fn parse(format: &str) -> Result<Self, String> {
        let mut tokens = Vec::new();
        let mut rest = format;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('{') {
                let (name, tail) = after
                    .split_once('}')
                    .ok_or_else(|| format!("an unclosed `{{` in `{format}`"))?;
                tokens.push(match name {
                    "YYYY" => Token::Year4,
                    "YY" => Token::Year2,
                    "MM" => Token::Month,
                    "SEQ" => Token::Seq { width: 1 },
                    other => match other.strip_prefix("SEQ:").and_then(|w| w.parse().ok()) {
                        Some(width @ 1..=12) => Token::Seq { width },
                        _ => return Err(format!("`{{{other}}}` is not {{YYYY}}, {{YY}}, {{MM}}, {{SEQ}} or {{SEQ:n}} (n 1 to 12)")),
                    },
                });
                rest = tail;
            } else {
                let end = rest.find('{').unwrap_or(rest.len());
                let (text, tail) = rest.split_at(end);
                if !text
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_/.".contains(c))
                {
                    return Err(format!(
                        "`{text}`: only letters, digits and -_/. may surround the fields"
                    ));
                }
                tokens.push(Token::Text(text.to_owned()));
                rest = tail;
            }
        }
        if tokens
            .iter()
            .filter(|t| matches!(t, Token::Seq { .. }))
            .count()
            != 1
        {
            return Err(format!(
                "`{format}` must hold exactly one {{SEQ}} or {{SEQ:n}}"
            ));
        }
        Ok(Self(tokens))
    }

    fn render(&self, date: Date, seq: Option<i64>) -> String {
        self.0
            .iter()
            .map(|token| match token {
                Token::Text(text) => text.clone(),
                Token::Year4 => format!("{:04}", date.year()),
                Token::Year2 => format!("{:02}", date.year().rem_euclid(100)),
                Token::Month => format!("{:02}", u8::from(date.month())),
                Token::Seq { width } => match seq {
                    Some(n) => format!("{n:0width$}"),
                    None => "{SEQ}".to_owned(),
                },
            })
            .collect()
    }

    /// The series a document dated `date` is numbered in.
    pub fn series(&self, date: Date) -> String {
        self.render(date, None)
    }

    /// Takes the next number of the series for `date`, in `tx` (its counter row stays locked
    /// until `tx` ends).
    pub async fn next(&self, tx: &mut PgConnection, date: Date) -> AppResult<String> {
        let seq = sqlx::query_scalar!(
            "INSERT INTO number_series (series, last) VALUES ($1, 1)
             ON CONFLICT (series) DO UPDATE SET last = number_series.last + 1
             RETURNING last",
            self.series(date)
        )
        .fetch_one(&mut *tx)
        .await?;
        let number = self.render(date, Some(seq));
        if number.len() > MAX_LEN {
            return Err(crate::error::AppError::internal(anyhow::anyhow!(
                "a document number longer than {MAX_LEN} characters"
            )));
        }
        Ok(number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn formats_render_and_name_their_series() -> crate::TestResult {
        let f = NumberFormat::parse("INV-{YYYY}-{SEQ:4}")?;
        assert_eq!(f.render(date!(2027 - 01 - 05), Some(1)), "INV-2027-0001");
        assert_eq!(
            f.render(date!(2027 - 01 - 05), Some(12345)),
            "INV-2027-12345"
        );
        assert_eq!(f.series(date!(2027 - 12 - 31)), "INV-2027-{SEQ}");
        let f = NumberFormat::parse("{YY}{MM}/{SEQ}")?;
        assert_eq!(f.render(date!(2009 - 03 - 01), Some(7)), "0903/7");
        assert_eq!(f.series(date!(2009 - 03 - 01)), "0903/{SEQ}");
        for bad in [
            "INV",
            "{SEQ}{SEQ}",
            "{SEQ:0}",
            "{SEQ:13}",
            "{YEAR}-{SEQ}",
            "IN V-{SEQ}",
            "{SEQ",
            "ä{SEQ}",
        ] {
            assert!(NumberFormat::parse(bad).is_err(), "{bad}");
        }
        Ok(())
    }
}
