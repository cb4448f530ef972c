//! Line items and the totals they make, by the contract's rounding rule: each line's total is
//! round_half_even(quantity × unit_price) in minor units; each tax rate's tax is
//! round_half_even(sum of that rate's line totals × rate / 100); the total is the sum of the
//! line totals plus the sum of the taxes.
//!
//! Hand-written on u128 fixed point: amounts reach 38 digits (wei), beyond what decimal crates
//! such as rust_decimal (28 digits) hold, and the arithmetic is two multiplications and one
//! rounded division. Every step is checked: an overflow is a 422 on the line, never a wrap.

use super::document::{Line, TaxRow};
use crate::error::FieldError;
use crate::payments::money::{AmountText, Minor};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The most decimals a quantity may have.
const QUANTITY_DECIMALS: usize = 6;
/// The most decimals a tax rate may have (`7.7`, `8.125`).
const RATE_DECIMALS: usize = 4;
/// The most items one document may have.
pub const MAX_ITEMS: usize = 200;
/// The longest description, in characters.
const MAX_DESCRIPTION: usize = 500;

/// A line as the API takes and shows it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct LineItem {
    /// What is billed: one line of 1 to 500 characters, not blank, no control characters.
    #[schema(schema_with = description_schema, example = "Design workshop")]
    pub description: String,
    /// A positive decimal with up to 6 decimals.
    #[schema(pattern = r"^[0-9]{1,12}(\.[0-9]{1,6})?$", example = "1.5")]
    pub quantity: String,
    /// Minor units of the invoice's currency per unit, as an integer string.
    #[schema(value_type = String, pattern = "^[0-9]{1,38}$", example = "12000")]
    pub unit_price: AmountText,
    /// A VAT rate in percent (`19`, `7.7`; 0 to 100, up to 4 decimals), or null for none.
    #[serde(default)]
    #[schema(pattern = r"^[0-9]{1,3}(\.[0-9]{1,4})?$", example = "19")]
    pub tax_rate: Option<String>,
}

fn description_schema() -> utoipa::openapi::schema::Object {
    crate::domain::line_schema(MAX_DESCRIPTION).build()
}

/// A document's lines with their totals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    pub lines: Vec<Line>,
    pub subtotal: Minor,
    pub taxes: Vec<TaxRow>,
    pub total: Minor,
}

impl Totals {
    pub fn tax(&self) -> Minor {
        self.taxes
            .iter()
            .fold(Minor::ZERO, |sum, row| sum.saturating_add(row.amount))
    }

    /// The tax rows as stored (`invoices.taxes`): amounts as integer strings.
    pub fn taxes_json(&self) -> serde_json::Value {
        self.taxes
            .iter()
            .map(|row| {
                serde_json::json!({
                    "rate": row.rate,
                    "base": row.base.to_string(),
                    "amount": row.amount.to_string(),
                })
            })
            .collect()
    }

    /// The items as the API shows them.
    pub fn items(&self) -> Vec<LineItem> {
        self.lines
            .iter()
            .map(|line| LineItem {
                description: line.description.clone(),
                quantity: line.quantity.clone(),
                unit_price: AmountText(line.unit_price.to_string()),
                tax_rate: line.tax_rate.clone(),
            })
            .collect()
    }
}

/// A non-negative decimal as (digits without the point, number of decimals), normalised: no
/// trailing zeros after the point, no leading zeros before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fixed {
    units: u128,
    scale: u32,
}

impl Fixed {
    fn parse(text: &str, max_whole: usize, max_decimals: usize) -> Option<Self> {
        let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || whole.len() > max_whole
            || !digits(whole)
            || !digits(fraction)
            || fraction.len() > max_decimals
            || (text.contains('.') && fraction.is_empty())
        {
            return None;
        }
        let fraction = fraction.trim_end_matches('0');
        let units = format!("{whole}{fraction}").parse().ok()?;
        let scale = u32::try_from(fraction.len()).ok()?;
        Some(Self { units, scale })
    }

    /// The canonical text: `1.50` → `1.5`, `007` → `7`.
    fn text(self) -> String {
        let digits = self.units.to_string();
        let scale = self.scale as usize;
        if scale == 0 {
            return digits;
        }
        let padded = format!("{digits:0>width$}", width = scale + 1);
        let (whole, fraction) = padded.split_at(padded.len() - scale);
        format!("{whole}.{fraction}")
    }
}

/// `numerator / 10^scale`, rounded half to even; `None` on overflow.
fn round_half_even(numerator: u128, scale: u32) -> Option<u128> {
    let divisor = 10u128.checked_pow(scale)?;
    let quotient = numerator / divisor;
    let remainder = numerator % divisor;
    let twice = remainder.checked_mul(2)?;
    let up = twice > divisor || (twice == divisor && quotient % 2 == 1);
    quotient.checked_add(u128::from(up))
}

fn line(index: usize, item: &LineItem, errors: &mut Vec<FieldError>) -> Option<Line> {
    let field = |name: &str| format!("items[{index}].{name}");
    let before = errors.len();
    let description =
        crate::domain::parse_line(&field("description"), &item.description, MAX_DESCRIPTION)
            .map_err(|e| errors.push(e))
            .unwrap_or_default();
    let quantity = Fixed::parse(&item.quantity, 12, QUANTITY_DECIMALS);
    match quantity {
        Some(q) if q.units > 0 => {}
        Some(_) => errors.push(FieldError::semantic(
            field("quantity"),
            "must be greater than zero",
        )),
        None => errors.push(FieldError::new(
            field("quantity"),
            "must be a decimal string such as 2 or 1.5 (up to 12 digits and 6 decimals)",
        )),
    }
    let unit_price = Minor::parse(&field("unit_price"), &item.unit_price.0)
        .map_err(|e| errors.push(e))
        .ok();
    let rate = match item.tax_rate.as_deref() {
        None => None,
        Some(text) => match Fixed::parse(text, 3, RATE_DECIMALS) {
            Some(rate) if rate.units <= 100 * 10u128.pow(rate.scale) => Some(rate),
            // Well-formed, but no rate: a 422.
            Some(_) => {
                errors.push(FieldError::semantic(
                    field("tax_rate"),
                    "must be a percent from 0 to 100",
                ));
                None
            }
            None => {
                errors.push(FieldError::new(
                    field("tax_rate"),
                    "must be a percent from 0 to 100 with up to 4 decimals, or null",
                ));
                None
            }
        },
    };
    if errors.len() > before {
        return None;
    }
    let (quantity, unit_price) = (quantity?, unit_price?);
    let Some(total) = quantity
        .units
        .checked_mul(unit_price.get())
        .and_then(|product| round_half_even(product, quantity.scale))
        .filter(|total| total.to_string().len() <= crate::payments::money::MAX_DIGITS)
    else {
        errors.push(FieldError::semantic(
            field("quantity"),
            "quantity × unit_price is too large",
        ));
        return None;
    };
    Some(Line {
        description,
        quantity: quantity.text(),
        unit_price,
        tax_rate: rate.map(Fixed::text),
        total: Minor::new(total),
    })
}

/// Validates the items (every bad field in one answer, named `items[i].field`) and computes
/// the totals. At least one item; at most [`MAX_ITEMS`].
pub fn compute(items: &[LineItem]) -> Result<Totals, Vec<FieldError>> {
    if items.is_empty() || items.len() > MAX_ITEMS {
        return Err(vec![FieldError::new(
            "items",
            format!("must hold 1 to {MAX_ITEMS} items"),
        )]);
    }
    let mut errors = Vec::new();
    let lines: Vec<Line> = items
        .iter()
        .enumerate()
        .filter_map(|(i, item)| line(i, item, &mut errors))
        .collect();
    if !errors.is_empty() {
        return Err(errors);
    }
    totals(lines).ok_or_else(|| vec![FieldError::semantic("items", "the total is too large")])
}

/// The totals of lines whose own totals are known (rates in order of first appearance).
fn totals(lines: Vec<Line>) -> Option<Totals> {
    let mut subtotal: u128 = 0;
    let mut bases: Vec<(Option<String>, u128)> = Vec::new();
    for line in &lines {
        subtotal = subtotal.checked_add(line.total.get())?;
        match bases.iter_mut().find(|(rate, _)| *rate == line.tax_rate) {
            Some((_, base)) => *base = base.checked_add(line.total.get())?,
            None => bases.push((line.tax_rate.clone(), line.total.get())),
        }
    }
    let mut taxes = Vec::with_capacity(bases.len());
    let mut total = subtotal;
    for (rate, base) in bases {
        let amount = match rate
            .as_deref()
            .and_then(|r| Fixed::parse(r, 3, RATE_DECIMALS))
        {
            // percent with `scale` decimals: base × units / (100 × 10^scale)
            Some(r) => round_half_even(base.checked_mul(r.units)?, r.scale + 2)?,
            None => 0,
        };
        total = total.checked_add(amount)?;
        taxes.push(TaxRow {
            rate,
            base: Minor::new(base),
            amount: Minor::new(amount),
        });
    }
    if total.to_string().len() > crate::payments::money::MAX_DIGITS {
        return None;
    }
    Some(Totals {
        lines,
        subtotal: Minor::new(subtotal),
        taxes,
        total: Minor::new(total),
    })
}

/// The one item an invoice made with a bare `amount` stands for.
pub fn single(amount: Minor) -> Totals {
    let line = Line {
        description: "Services".to_owned(),
        quantity: "1".to_owned(),
        unit_price: amount,
        tax_rate: None,
        total: amount,
    };
    Totals {
        taxes: vec![TaxRow {
            rate: None,
            base: amount,
            amount: Minor::ZERO,
        }],
        subtotal: amount,
        total: amount,
        lines: vec![line],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(quantity: &str, unit_price: &str, rate: Option<&str>) -> LineItem {
        LineItem {
            description: "x".into(),
            quantity: quantity.into(),
            unit_price: AmountText(unit_price.into()),
            tax_rate: rate.map(Into::into),
        }
    }

    #[test]
    fn half_even_rounding() {
        assert_eq!(round_half_even(25, 1), Some(2));
        assert_eq!(round_half_even(35, 1), Some(4));
        assert_eq!(round_half_even(26, 1), Some(3));
        assert_eq!(round_half_even(24, 1), Some(2));
        assert_eq!(round_half_even(1250, 3), Some(1), "1.250 → 1");
        assert_eq!(round_half_even(1251, 3), Some(1));
        assert_eq!(round_half_even(1500, 3), Some(2));
        assert_eq!(round_half_even(7, 0), Some(7));
    }

    #[test]
    fn three_lines_two_rates() -> crate::TestResult {
        let totals = compute(&[
            item("1.5", "333", Some("19")),    // 499.5 → 500 (half to even)
            item("2", "1000", Some("7.7")),    // 2000
            item("0.5", "1001", Some("19.0")), // 500.5 → 500
        ])
        .map_err(|e| format!("{e:?}"))?;
        let totals_of: Vec<u128> = totals.lines.iter().map(|l| l.total.get()).collect();
        assert_eq!(totals_of, [500, 2000, 500]);
        assert_eq!(totals.subtotal, Minor::new(3000));
        assert_eq!(totals.taxes.len(), 2, "19 and 19.0 are one rate");
        assert_eq!(totals.taxes[0].rate.as_deref(), Some("19"));
        assert_eq!(totals.taxes[0].base, Minor::new(1000));
        assert_eq!(totals.taxes[0].amount, Minor::new(190));
        // 2000 × 7.7% = 154
        assert_eq!(totals.taxes[1].amount, Minor::new(154));
        assert_eq!(totals.total, Minor::new(3344));
        assert_eq!(totals.tax(), Minor::new(344));
        Ok(())
    }

    #[test]
    fn tax_is_rounded_once_per_rate_on_the_sum() -> crate::TestResult {
        // Each line's tax would be 0.5 → 0 (even); on the sum, 1.5 → 2.
        let totals = compute(&[
            item("1", "5", Some("10")),
            item("1", "5", Some("10")),
            item("1", "5", Some("10")),
        ])
        .map_err(|e| format!("{e:?}"))?;
        assert_eq!(totals.taxes[0].amount, Minor::new(2));
        assert_eq!(totals.total, Minor::new(17));
        // 25 × 10% = 2.5 → 2 (even), 35 × 10% = 3.5 → 4.
        let t = compute(&[item("1", "25", Some("10"))]).map_err(|e| format!("{e:?}"))?;
        assert_eq!(t.taxes[0].amount, Minor::new(2));
        let t = compute(&[item("1", "35", Some("10"))]).map_err(|e| format!("{e:?}"))?;
        assert_eq!(t.taxes[0].amount, Minor::new(4));
        Ok(())
    }

    #[test]
    fn no_rate_is_its_own_row_with_no_tax() -> crate::TestResult {
        let t = compute(&[item("3", "100", None), item("1", "100", Some("0"))])
            .map_err(|e| format!("{e:?}"))?;
        assert_eq!(t.taxes.len(), 2);
        assert_eq!(t.taxes[0].amount, Minor::ZERO);
        assert_eq!(t.total, Minor::new(400));
        Ok(())
    }

    #[test]
    fn every_bad_field_is_named() {
        let errors = compute(&[
            item("0", "100", None),
            item("1.2345678", "x", Some("101")),
            LineItem {
                description: " ".into(),
                ..item("1", "1", Some("-1"))
            },
        ])
        .err()
        .unwrap_or_default();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "items[0].quantity",
                "items[1].quantity",
                "items[1].unit_price",
                "items[1].tax_rate",
                "items[2].description",
                "items[2].tax_rate",
            ]
        );
        assert!(compute(&[]).is_err());
        for bad in ["1.", ".5", "1e3", "-1", "1,5", "1234567890123"] {
            assert!(compute(&[item(bad, "1", None)]).is_err(), "{bad}");
        }
    }

    #[test]
    fn overflow_is_refused_not_wrapped() {
        let huge = "9".repeat(38);
        let errors = compute(&[item("999999999999", &huge, None)])
            .err()
            .unwrap_or_default();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].semantic);
        let errors = compute(&[item("1", &huge, None), item("1", &huge, None)])
            .err()
            .unwrap_or_default();
        assert_eq!(errors.len(), 1, "the sum overflows 38 digits");
    }

    #[test]
    fn quantities_and_rates_are_canonical() -> crate::TestResult {
        let t = compute(&[item("01.500", "2", Some("07.70"))]).map_err(|e| format!("{e:?}"))?;
        assert_eq!(t.lines[0].quantity, "1.5");
        assert_eq!(t.lines[0].tax_rate.as_deref(), Some("7.7"));
        assert_eq!(t.lines[0].total, Minor::new(3));
        Ok(())
    }
}
