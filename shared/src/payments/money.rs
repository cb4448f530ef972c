//! Money: a whole number of minor units of a known currency. Parsed at the boundary; after that
//! no code checks it again. There is no float anywhere near money.

use crate::error::FieldError;
use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// The most digits an amount may have (the database column is numeric(38,0)).
pub const MAX_DIGITS: usize = 38;

/// An amount in minor units (cents, satoshi, wei): never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct Minor(u128);

impl Minor {
    pub const ZERO: Self = Self(0);

    pub const fn new(units: u128) -> Self {
        Self(units)
    }

    pub const fn get(self) -> u128 {
        self.0
    }

    /// `text` as the contract writes amounts: an integer string of 1 to 38 digits.
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        if text.is_empty() || text.len() > MAX_DIGITS || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(FieldError::new(
                field,
                "must be an integer string of minor units (1 to 38 digits)",
            ));
        }
        text.parse()
            .map(Self)
            .map_err(|_| FieldError::new(field, "is too large"))
    }

    pub fn saturating_sub(self, other: Self) -> Self {
        Self(self.0.saturating_sub(other.0))
    }

    pub fn saturating_add(self, other: Self) -> Self {
        Self(self.0.saturating_add(other.0))
    }

    /// The amount in major units as a decimal string with `exponent` decimals (`1500`, 2 →
    /// `15.00`): what BTCPay's Greenfield API takes.
    pub fn to_decimal(self, exponent: u8) -> String {
        let digits = self.0.to_string();
        let exponent = usize::from(exponent);
        if exponent == 0 {
            return digits;
        }
        let padded = format!("{digits:0>width$}", width = exponent + 1);
        let (whole, fraction) = padded.split_at(padded.len() - exponent);
        format!("{whole}.{fraction}")
    }

    /// A decimal string in major units back to minor units, exactly: `None` when it is not a
    /// plain non-negative decimal or has more significant decimals than `exponent`.
    pub fn from_decimal(text: &str, exponent: u8) -> Option<Self> {
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(fraction) {
            return None;
        }
        let exponent = usize::from(exponent);
        let significant = fraction.trim_end_matches('0');
        if significant.len() > exponent {
            return None;
        }
        let scaled = format!("{whole}{significant:0<exponent$}");
        scaled.parse().ok().map(Self)
    }
}

impl fmt::Display for Minor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for Minor {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse("amount", s)
    }
}

/// Serialized as the contract's integer string.
impl Serialize for Minor {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// Crypto assets that invoices may be priced in, with their decimals. ISO 4217 has no code for
/// them; an on-chain asset's own decimals are checked against these by the chain provider.
const CRYPTO: &[(&str, u8)] = &[
    ("BTC", 8),
    ("ETH", 18),
    ("USDC", 6),
    ("USDT", 6),
    ("DAI", 18),
];

/// A currency code with a known number of decimals: an ISO 4217 currency, or one of the crypto
/// assets above.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Currency {
    code: String,
    exponent: u8,
}

impl Currency {
    pub fn parse(field: &str, text: &str) -> Result<Self, FieldError> {
        let shaped = (3..=10).contains(&text.len())
            && text.starts_with(|c: char| c.is_ascii_uppercase())
            && text
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        if !shaped {
            return Err(FieldError::new(
                field,
                "must be an upper-case currency code such as USD or BTC",
            ));
        }
        let exponent = CRYPTO
            .iter()
            .find(|(code, _)| *code == text)
            .map(|(_, e)| *e)
            .or_else(|| {
                iso_currency::Currency::from_code(text)
                    .and_then(|c| c.exponent())
                    .and_then(|e| u8::try_from(e).ok())
            });
        match exponent {
            Some(exponent) => Ok(Self {
                code: text.to_owned(),
                exponent,
            }),
            None => Err(FieldError::semantic(
                field,
                "is not a currency this API knows (ISO 4217, or BTC, ETH, USDC, USDT, DAI)",
            )),
        }
    }

    pub fn code(&self) -> &str {
        &self.code
    }

    /// Decimals of one major unit.
    pub fn exponent(&self) -> u8 {
        self.exponent
    }

    /// Whether ISO 4217 names it (a fiat currency a card can be charged in).
    pub fn is_fiat(&self) -> bool {
        !CRYPTO.iter().any(|(code, _)| *code == self.code)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.code)
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.code)
    }
}

/// Amounts as they arrive: strings of minor units greater than zero, checked by
/// [`Minor::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(value_type = String, pattern = "^0*[1-9][0-9]*$", max_length = 38, example = "12345")]
#[serde(transparent)]
pub struct AmountText(pub String);

/// A positive amount and a known currency, validated together so that one answer lists every
/// bad field.
pub(crate) fn positive(
    amount: Option<&str>,
    currency: Option<&str>,
) -> crate::error::AppResult<(Option<Minor>, Option<Currency>)> {
    let mut errors: Vec<FieldError> = Vec::new();
    let amount = amount.and_then(|text| match Minor::parse("amount", text) {
        Ok(a) if a > Minor::ZERO => Some(a),
        Ok(_) => {
            errors.push(FieldError::new("amount", "must be greater than zero"));
            None
        }
        Err(e) => {
            errors.push(e);
            None
        }
    });
    let currency = currency.and_then(|text| {
        Currency::parse("currency", text)
            .map_err(|e| errors.push(e))
            .ok()
    });
    if errors.is_empty() {
        Ok((amount, currency))
    } else {
        Err(crate::error::AppError::Validation(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_integer_strings() {
        assert_eq!(
            Minor::parse("amount", "12345").ok(),
            Some(Minor::new(12345))
        );
        for bad in ["", "-1", "1.5", "1e3", " 1", "+1", &"9".repeat(39)] {
            assert!(Minor::parse("amount", bad).is_err(), "{bad:?}");
        }
        assert!(Minor::parse("amount", &"9".repeat(38)).is_ok());
    }

    #[test]
    fn decimals_round_trip_exactly() {
        let cases = [
            (12345, 2, "123.45"),
            (5, 2, "0.05"),
            (1500, 0, "1500"),
            (1, 8, "0.00000001"),
            (1_500_000, 6, "1.500000"),
        ];
        for (units, exponent, text) in cases {
            assert_eq!(Minor::new(units).to_decimal(exponent), text);
            assert_eq!(Minor::from_decimal(text, exponent), Some(Minor::new(units)));
        }
        assert_eq!(Minor::from_decimal("15", 2), Some(Minor::new(1500)));
        assert_eq!(Minor::from_decimal("15.5000", 2), Some(Minor::new(1550)));
        assert_eq!(Minor::from_decimal("0.001", 2), None, "a third decimal");
        assert_eq!(Minor::from_decimal("-1", 2), None);
        assert_eq!(Minor::from_decimal(".5", 2), None);
        assert_eq!(Minor::from_decimal("1e2", 2), None);
    }

    #[test]
    fn currencies_carry_their_decimals() -> crate::TestResult {
        assert_eq!(Currency::parse("currency", "USD")?.exponent(), 2);
        assert_eq!(Currency::parse("currency", "JPY")?.exponent(), 0);
        assert_eq!(Currency::parse("currency", "KWD")?.exponent(), 3);
        assert_eq!(Currency::parse("currency", "USDC")?.exponent(), 6);
        assert!(Currency::parse("currency", "USD")?.is_fiat());
        assert!(!Currency::parse("currency", "BTC")?.is_fiat());
        let unknown = Currency::parse("currency", "ZZZ").err().ok_or("ZZZ")?;
        assert!(unknown.semantic, "a well-formed unknown code is a 422");
        for bad in ["usd", "US", "U$D", "", "TOOLONGCODE1"] {
            let err = Currency::parse("currency", bad).err().ok_or(bad)?;
            assert!(!err.semantic, "{bad}");
        }
        Ok(())
    }
}
