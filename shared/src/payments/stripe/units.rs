//! Stripe's minor units, which are not always ISO 4217's. Our API speaks ISO 4217 minor units
//! ([`Minor`] of a [`Currency`]); Stripe's `amount` fields count in its own unit per currency,
//! as <https://docs.stripe.com/currencies> documents:
//!
//! - **Zero-decimal**: BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF. An
//!   `amount` of 500 is 500 of the major unit. MGA has two decimals in ISO 4217, so 1.50 MGA
//!   (ISO "150") cannot be charged; 500 MGA is ISO "50000" and Stripe `500`.
//! - **Three-decimal**: BHD JOD KWD OMR TND, as in ISO 4217, but the last digit must be 0 (Stripe
//!   asks integrations to round to the nearest ten; we refuse instead of rounding).
//! - **Special cases**: ISK is zero-decimal in ISO 4217 but stays two-decimal in Stripe's API for
//!   backwards compatibility, and Stripe only takes multiples of 100 (whole krónur): 5 ISK is
//!   ISO "5" and Stripe `500`. HUF and TWD are two-decimal for charges (as in ISO 4217); Stripe
//!   treats them as zero-decimal only for payouts, which this API does not make through Stripe.
//!   UGX is in Stripe's zero-decimal list for charges, as in ISO 4217; its special case
//!   concerns payouts too.
//! - **Everything else**: two decimals.
//!
//! [`to_stripe`] and [`from_stripe`] convert exactly, or not at all: an amount one side cannot
//! represent is refused, never rounded.

use crate::error::FieldError;
use crate::payments::money::{Currency, Minor};

/// How Stripe counts one currency's amounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unit {
    /// Decimals of one major unit in Stripe's `amount` fields.
    pub exponent: u8,
    /// Stripe only takes multiples of this (in its own units).
    pub step: u64,
}

const fn unit(exponent: u8, step: u64) -> Unit {
    Unit { exponent, step }
}

/// The one table: every currency Stripe does not count with two decimals and no constraint.
const TABLE: &[(&str, Unit)] = &[
    // Zero-decimal.
    ("BIF", unit(0, 1)),
    ("CLP", unit(0, 1)),
    ("DJF", unit(0, 1)),
    ("GNF", unit(0, 1)),
    ("JPY", unit(0, 1)),
    ("KMF", unit(0, 1)),
    ("KRW", unit(0, 1)),
    ("MGA", unit(0, 1)),
    ("PYG", unit(0, 1)),
    ("RWF", unit(0, 1)),
    ("UGX", unit(0, 1)),
    ("VND", unit(0, 1)),
    ("VUV", unit(0, 1)),
    ("XAF", unit(0, 1)),
    ("XOF", unit(0, 1)),
    ("XPF", unit(0, 1)),
    // Three-decimal, the last digit 0.
    ("BHD", unit(3, 10)),
    ("JOD", unit(3, 10)),
    ("KWD", unit(3, 10)),
    ("OMR", unit(3, 10)),
    ("TND", unit(3, 10)),
    // Two-decimal in the API, whole units only.
    ("ISK", unit(2, 100)),
    // Two-decimal for charges (zero-decimal for payouts only).
    ("HUF", unit(2, 1)),
    ("TWD", unit(2, 1)),
];

/// Stripe's unit for `code` (upper or lower case, as Stripe writes it).
pub fn unit_of(code: &str) -> Unit {
    TABLE
        .iter()
        .find(|(c, _)| c.eq_ignore_ascii_case(code))
        .map_or(unit(2, 1), |(_, u)| *u)
}

/// Why an amount cannot cross the boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unrepresentable {
    #[error("has a fraction that Stripe cannot charge in this currency")]
    Fraction,
    #[error("is too large for Stripe")]
    TooLarge,
    #[error("is not a whole number of this currency's ISO 4217 minor units")]
    NotIso,
}

impl Unrepresentable {
    /// As a refusal of `field`: a well-formed amount a rule refuses (422).
    pub fn field(self, field: &str, currency: &Currency) -> FieldError {
        let message = match self {
            Self::Fraction => {
                let step = step_in_iso(currency, unit_of(currency.code()));
                format!(
                    "cannot be paid by card: Stripe charges {currency} in steps of {} (in minor \
                     units: multiples of {step}), and amounts are never rounded",
                    Minor::new(step).to_decimal(currency.exponent()),
                )
            }
            other => format!("cannot be paid by card: it {other}"),
        };
        FieldError::semantic(field, message)
    }
}

/// The smallest chargeable step in ISO minor units (for messages).
fn step_in_iso(currency: &Currency, unit: Unit) -> u128 {
    let (iso, stripe) = (currency.exponent(), unit.exponent);
    let step = u128::from(unit.step);
    if iso >= stripe {
        step.saturating_mul(10u128.saturating_pow(u32::from(iso - stripe)))
    } else {
        // Stripe's step is a multiple of the scale for every currency in the table.
        (step / 10u128.saturating_pow(u32::from(stripe - iso))).max(1)
    }
}

/// `amount` (ISO 4217 minor units of `currency`) in Stripe's units, exactly.
pub fn to_stripe(amount: Minor, currency: &Currency) -> Result<u64, Unrepresentable> {
    let unit = unit_of(currency.code());
    let scaled = rescale(amount.get(), currency.exponent(), unit.exponent).ok_or(
        // Scaling up only fails by overflowing; scaling down, by dropping a digit.
        if unit.exponent > currency.exponent() {
            Unrepresentable::TooLarge
        } else {
            Unrepresentable::Fraction
        },
    )?;
    if !scaled.is_multiple_of(u128::from(unit.step)) {
        return Err(Unrepresentable::Fraction);
    }
    u64::try_from(scaled).map_err(|_| Unrepresentable::TooLarge)
}

/// `amount` in Stripe's units of `currency` as ISO 4217 minor units, exactly.
pub fn from_stripe(amount: u64, currency: &Currency) -> Result<Minor, Unrepresentable> {
    let unit = unit_of(currency.code());
    rescale(u128::from(amount), unit.exponent, currency.exponent())
        .map(Minor::new)
        .ok_or(Unrepresentable::NotIso)
}

/// `units` with `from` decimals as units with `to` decimals: `None` when that would drop a
/// non-zero digit or overflow.
fn rescale(units: u128, from: u8, to: u8) -> Option<u128> {
    if to >= from {
        10u128
            .checked_pow(u32::from(to - from))
            .and_then(|f| units.checked_mul(f))
    } else {
        let factor = 10u128.checked_pow(u32::from(from - to))?;
        units.is_multiple_of(factor).then(|| units / factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn currency(code: &str) -> Currency {
        match Currency::parse("currency", code) {
            Ok(c) => c,
            Err(e) => panic!("{code}: {e}"),
        }
    }

    /// ISO minor units, Stripe's units, per currency: the documented examples.
    #[test]
    fn amounts_cross_in_stripes_units_both_ways() {
        let cases: &[(&str, u128, u64)] = &[
            ("USD", 1000, 1000),          // 10 USD
            ("EUR", 1, 1),                // 0.01 EUR
            ("JPY", 500, 500),            // ¥500
            ("ISK", 100_000, 10_000_000), // 100,000 kr
            ("ISK", 5, 500),              // 5 kr
            ("MGA", 50_000, 500),         // 500 Ar
            ("KWD", 5_120, 5_120),        // 5.120 KWD
            ("BHD", 10, 10),              // 0.010 BHD
            ("HUF", 1_045, 1_045),        // 10.45 Ft
            ("TWD", 199, 199),            // NT$1.99
            ("UGX", 5_000, 5_000),        // USh 5,000
            ("CLP", 1, 1),
        ];
        for &(code, iso, stripe) in cases {
            let c = currency(code);
            assert_eq!(to_stripe(Minor::new(iso), &c), Ok(stripe), "{code} {iso}");
            assert_eq!(
                from_stripe(stripe, &c),
                Ok(Minor::new(iso)),
                "{code} {stripe}"
            );
        }
    }

    /// What Stripe cannot charge is refused, not rounded.
    #[test]
    fn amounts_stripe_cannot_charge_are_refused() {
        let refused = [
            ("MGA", 12_345), // 123.45 Ar
            ("MGA", 1),      // 0.01 Ar
            ("KWD", 5_124),  // 5.124 KWD: the last digit must be 0
            ("OMR", 1),
            ("TND", 99_999),
        ];
        for (code, iso) in refused {
            assert_eq!(
                to_stripe(Minor::new(iso), &currency(code)),
                Err(Unrepresentable::Fraction),
                "{code} {iso}"
            );
        }
        let huge = Minor::new(u128::from(u64::MAX) + 1);
        assert_eq!(
            to_stripe(huge, &currency("USD")),
            Err(Unrepresentable::TooLarge)
        );
        assert_eq!(
            to_stripe(Minor::new(u128::MAX), &currency("ISK")),
            Err(Unrepresentable::TooLarge),
            "overflow while scaling is refused too"
        );
    }

    /// A Stripe amount with a fraction of a króna is no ISO amount: it never credits rounded.
    #[test]
    fn stripe_amounts_that_are_not_iso_are_refused() {
        assert_eq!(
            from_stripe(1_050, &currency("ISK")),
            Err(Unrepresentable::NotIso)
        );
        assert_eq!(from_stripe(1_000, &currency("ISK")), Ok(Minor::new(10)));
    }

    /// The table holds Stripe's documented lists, each currency once, and the case of a code
    /// does not matter (Stripe writes `isk`).
    #[test]
    fn the_table_is_stripes_lists() {
        let zero = "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF";
        for code in zero.split(' ') {
            assert_eq!(unit_of(code), unit(0, 1), "{code}");
        }
        for code in ["BHD", "JOD", "KWD", "OMR", "TND"] {
            assert_eq!(unit_of(code), unit(3, 10), "{code}");
        }
        assert_eq!(unit_of("isk"), unit(2, 100));
        assert_eq!(unit_of("HUF"), unit(2, 1));
        assert_eq!(unit_of("usd"), unit(2, 1));
        for (i, (code, _)) in TABLE.iter().enumerate() {
            assert!(
                TABLE[i + 1..].iter().all(|(other, _)| other != code),
                "{code} twice"
            );
            // Every currency in the table is one this API knows.
            currency(code);
        }
    }

    #[test]
    fn a_refusal_names_the_smallest_step() {
        let mga = currency("MGA");
        let err = Unrepresentable::Fraction.field("amount", &mga);
        assert!(err.semantic);
        assert_eq!(err.field, "amount");
        assert!(err.message.contains("steps of 1.00"), "{}", err.message);
        assert!(err.message.contains("multiples of 100"), "{}", err.message);
        let kwd = Unrepresentable::Fraction.field("amount", &currency("KWD"));
        assert!(kwd.message.contains("steps of 0.010"), "{}", kwd.message);
    }
}
