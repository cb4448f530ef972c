//! The billing reports, computed in SQL from the invoices, the credit notes, the payments and
//! the ledger (`payment_events`): revenue per period and currency, and the receivables' aging.
//! Their function is in [`api`].
//!
//! Revenue, per (period, currency), over `from`..=`to` (UTC days), each period the bucket that
//! `date_trunc(interval)` starts (the first and last are clipped to the range):
//! - `invoiced`: invoices issued (`sent_at`) in the period, not VOID, less the credit notes made
//!   in the period (of invoices that are not VOID); `tax` the same by rate, from the invoices'
//!   and the notes' `taxes` rows, rates whose sum is 0 left out.
//! - `paid`: the gross amount of payments whose success the ledger first applied in the
//!   period, by method. What happens to a payment later (a refund, a dispute) does not move it.
//! - `refunded`: what refunds reported in the period added to their payment's refunded total
//!   (the providers report the cumulative figure; the increase over the payment's previous
//!   report is this period's). A chargeback is not a refund: a dispute is not counted here.
//! - `outstanding`: of the invoices issued in the period that are still SENT or OVERDUE, what is
//!   still due now (amount less credit notes less confirmed payments net of refunds).
//!
//! Aging at `at`: the invoices issued by the end of `at` that are SENT or OVERDUE now, what is
//! still due on each now, by days past its due date at `at` (no due date: current).

pub mod api;

use crate::error::{AppError, AppResult, FieldError};
use crate::payments::lifecycle::PaymentStatus;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use sqlx::types::Json;
use time::{Date, Duration};
use utoipa::{IntoParams, ToSchema};

/// The longest revenue range, in days between `from` and `to`.
pub const MAX_RANGE_DAYS: i64 = 3660;

/// The days a revenue report covers when `from` is not given: 30, `to` included.
pub const DEFAULT_DAYS: i64 = 30;

/// The ledger's event types that report a payment's cumulative refunded amount in `amount`
/// (what [`crate::payments::lifecycle::PaymentEvent::Refunded`] is made from). A provider that
/// reports refunds adds its type here. Refunds started here through a provider that reports no
/// cumulative figure (BTCPay, a chain) count by their own `refund.succeeded` rows.
pub const REFUND_EVENT_TYPES: &[&str] = &["charge.refunded"];

/// A revenue report's bucket size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Day,
    /// ISO weeks, from Monday.
    Week,
    Month,
}

impl Interval {
    /// Postgres' `date_trunc` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
        }
    }

    fn parse(raw: &str) -> Option<Self> {
        [Self::Day, Self::Week, Self::Month]
            .into_iter()
            .find(|i| i.as_str() == raw)
    }
}

/// `GET /reports/revenue`'s query. Every field is read as text and checked here, so that a bad
/// one is named in the problem.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RevenueQuery {
    /// The first day (UTC) counted; default: 29 days before `to` (30 days in all).
    #[param(value_type = Option<Date>, example = "2027-01-01")]
    pub from: Option<String>,
    /// The last day (UTC) counted, included; default: today. At most 3660 days after `from`.
    #[param(value_type = Option<Date>, example = "2027-12-31")]
    pub to: Option<String>,
    /// The size of each period (default `month`).
    #[param(value_type = Option<Interval>)]
    pub interval: Option<String>,
}

/// `GET /reports/aging`'s query.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AgingQuery {
    /// The day (UTC) the receivables are aged at; default: today.
    #[param(value_type = Option<Date>, example = "2027-03-31")]
    pub at: Option<String>,
}

/// A revenue report's checked parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    pub from: Date,
    pub to: Date,
    pub interval: Interval,
}

/// `raw` as a `YYYY-MM-DD` date (four-digit year, no sign), or a field error naming `field`.
fn date(field: &str, raw: Option<&str>) -> Result<Option<Date>, FieldError> {
    let Some(raw) = raw else { return Ok(None) };
    let shaped = raw.len() == 10
        && raw.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    let format = time::macros::format_description!("[year]-[month]-[day]");
    shaped
        .then(|| Date::parse(raw, format).ok())
        .flatten()
        .map(Some)
        .ok_or_else(|| FieldError::new(field, "must be a date, YYYY-MM-DD"))
}

impl RevenueQuery {
    /// The range and interval asked for, with the defaults; malformed fields are a 400, a
    /// range that is backwards or too long a 422.
    pub fn range(&self, today: Date) -> Result<Range, AppError> {
        let mut errors = Vec::new();
        let from = date("from", self.from.as_deref()).unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        let to = date("to", self.to.as_deref()).unwrap_or_else(|e| {
            errors.push(e);
            None
        });
        let interval = match self.interval.as_deref() {
            None => Some(Interval::Month),
            Some(raw) => Interval::parse(raw),
        };
        if interval.is_none() {
            errors.push(FieldError::new(
                "interval",
                "must be one of `day`, `week`, `month`",
            ));
        }
        let Some(interval) = interval.filter(|_| errors.is_empty()) else {
            return Err(AppError::Validation(errors));
        };
        let to = to.unwrap_or(today);
        let from = from.unwrap_or_else(|| {
            to.checked_sub(Duration::days(DEFAULT_DAYS - 1))
                .unwrap_or(Date::MIN)
        });
        if from > to {
            return Err(AppError::Validation(vec![FieldError::semantic(
                "from",
                "must not be after `to`",
            )]));
        }
        if (to - from).whole_days() > MAX_RANGE_DAYS {
            return Err(AppError::Validation(vec![FieldError::semantic(
                "from",
                format!("must be at most {MAX_RANGE_DAYS} days before `to`"),
            )]));
        }
        Ok(Range { from, to, interval })
    }
}

impl AgingQuery {
    /// The day asked for (default: `today`); a malformed one is a 400.
    pub fn at(&self, today: Date) -> Result<Date, AppError> {
        date("at", self.at.as_deref())
            .map(|at| at.unwrap_or(today))
            .map_err(|e| AppError::Validation(vec![e]))
    }
}

/// What one tax rate amounted to in a period, net of credit notes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TaxAmount {
    /// The VAT rate in percent, as the invoices carry it (`19`, `7.7`); null for lines without.
    #[schema(example = "19")]
    pub rate: Option<String>,
    #[schema(pattern = "^-?[0-9]{1,39}$", example = "190")]
    pub amount: String,
}

/// Payments confirmed in a period, by how they were paid (gross, in minor units).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct PaidByMethod {
    /// CREDIT_CARD (Stripe).
    #[schema(pattern = "^[0-9]{1,39}$", example = "3344")]
    pub card: String,
    /// CRYPTO (BTCPay Server).
    #[schema(pattern = "^[0-9]{1,39}$", example = "0")]
    pub bitcoin: String,
    /// BLOCKCHAIN_TOKEN (on-chain transfers).
    #[schema(pattern = "^[0-9]{1,39}$", example = "0")]
    pub chain: String,
}

/// One period and currency of the revenue report. Every amount is in minor units of
/// `currency`, as an integer string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RevenueRow {
    /// The period's first day (`date_trunc` in UTC; a week starts on Monday).
    #[serde(with = "crate::payments::model::date_format")]
    #[schema(value_type = Date)]
    pub period: Date,
    #[schema(example = "EUR")]
    pub currency: String,
    /// Issued invoices (not VOID) less the credit notes made in the period.
    #[schema(pattern = "^-?[0-9]{1,39}$", example = "3344")]
    pub invoiced: String,
    pub paid: PaidByMethod,
    /// Refunds reported in the period.
    #[schema(pattern = "^[0-9]{1,39}$", example = "0")]
    pub refunded: String,
    /// What is still due now on the invoices issued in the period.
    #[schema(pattern = "^-?[0-9]{1,39}$", example = "0")]
    pub outstanding: String,
    /// The tax in `invoiced`, by rate (rates that sum to 0 left out).
    pub tax: Vec<TaxAmount>,
}

/// `GET /reports/revenue`: rows by period, then currency; periods with nothing in them are left
/// out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct RevenueReport {
    pub rows: Vec<RevenueRow>,
}

/// One currency of the aging report: what is due, by days past the due date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AgingRow {
    #[schema(example = "EUR")]
    pub currency: String,
    /// Not yet due, or no due date.
    #[schema(pattern = "^-?[0-9]{1,39}$", example = "1000")]
    pub current: String,
    #[schema(pattern = "^-?[0-9]{1,39}$", example = "0")]
    pub d1_30: String,
    #[schema(pattern = "^-?[0-9]{1,39}$", example = "0")]
    pub d31_60: String,
    #[schema(pattern = "^-?[0-9]{1,39}$", example = "0")]
    pub d61_90: String,
    #[schema(pattern = "^-?[0-9]{1,39}$", example = "0")]
    pub d90_plus: String,
}

/// `GET /reports/aging`: one row per currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct AgingReport {
    pub rows: Vec<AgingRow>,
}

/// `LIKE` patterns of the ledger outcome that first applies a payment's success (see
/// `settle::change`): from PENDING or FAILED to a status whose success was checked.
fn confirmation_patterns() -> Vec<String> {
    use PaymentStatus::*;
    let mut patterns = Vec::new();
    for from in [Pending, Failed] {
        for to in [Confirmed, Refunded, Disputed] {
            patterns.push(format!("applied: payment {from:?} -> {to:?},%"));
        }
    }
    patterns
}

/// A transaction for one report, without JIT compilation: a report's plan is costed
/// far above `jit_above_cost` (Postgres guesses 100 elements for every `jsonb_array_elements`),
/// and compiling it took 3 s on the benchmark's data for a query that runs in 80 ms.
async fn report_transaction(
    pool: &PgPool,
) -> AppResult<sqlx::Transaction<'static, sqlx::Postgres>> {
    let mut tx = pool.begin().await?;
    sqlx::query!(r#"SELECT set_config('jit', 'off', true) AS "jit!""#)
        .fetch_one(&mut *tx)
        .await?;
    Ok(tx)
}

/// The revenue report over `range`.
pub async fn revenue(pool: &PgPool, range: &Range) -> AppResult<RevenueReport> {
    let mut tx = report_transaction(pool).await?;
    let refunds: Vec<String> = REFUND_EVENT_TYPES.iter().map(|&t| t.to_owned()).collect();
    let rows = sqlx::query!(
        r#"WITH bounds AS (
               SELECT ($1::date)::timestamp AT TIME ZONE 'UTC' AS lo,
                      ($2::date + 1)::timestamp AT TIME ZONE 'UTC' AS hi
           ),
           issued AS (
               SELECT i.id, i.currency, i.amount, i.credited, i.status, i.taxes,
                      date_trunc($3::text, i.sent_at AT TIME ZONE 'UTC')::date AS period
               FROM invoices i, bounds b
               WHERE i.sent_at >= b.lo AND i.sent_at < b.hi
                 AND i.status NOT IN ('DRAFT', 'VOID')
           ),
           credits AS (
               SELECT i.currency, c.total, c.taxes,
                      date_trunc($3::text, c.created_at AT TIME ZONE 'UTC')::date AS period
               FROM credit_notes c JOIN invoices i ON i.id = c.invoice_id, bounds b
               WHERE c.created_at >= b.lo AND c.created_at < b.hi AND i.status <> 'VOID'
           ),
           confirmed AS (
               SELECT p.currency, p.method, p.amount,
                      date_trunc($3::text, e.received_at AT TIME ZONE 'UTC')::date AS period
               FROM payment_events e JOIN payments p ON p.id = e.payment_id, bounds b
               WHERE e.received_at >= b.lo AND e.received_at < b.hi
                 AND e.outcome LIKE ANY ($4::text[])
                 AND NOT EXISTS (
                     SELECT 1 FROM payment_events f
                     WHERE f.payment_id = e.payment_id AND f.seq < e.seq
                       AND f.outcome LIKE ANY ($4::text[]))
           ),
           refunds AS (
               SELECT p.currency,
                      date_trunc($3::text, e.received_at AT TIME ZONE 'UTC')::date AS period,
                      GREATEST(LEAST(e.amount, p.amount) - COALESCE((
                          SELECT max(LEAST(f.amount, p.amount)) FROM payment_events f
                          WHERE f.payment_id = e.payment_id AND f.seq < e.seq
                            AND f.event_type = ANY ($5::text[]) AND f.outcome LIKE 'applied%'
                            AND f.amount IS NOT NULL), 0), 0) AS amount
               FROM payment_events e JOIN payments p ON p.id = e.payment_id, bounds b
               WHERE e.received_at >= b.lo AND e.received_at < b.hi
                 AND e.event_type = ANY ($5::text[]) AND e.outcome LIKE 'applied%'
                 AND e.amount IS NOT NULL
               UNION ALL
               SELECT p.currency,
                      date_trunc($3::text, e.received_at AT TIME ZONE 'UTC')::date,
                      e.amount
               FROM payment_events e JOIN payments p ON p.id = e.payment_id, bounds b
               WHERE e.received_at >= b.lo AND e.received_at < b.hi
                 AND e.event_type = 'refund.succeeded' AND e.provider <> 'stripe'
                 AND e.amount IS NOT NULL
           ),
           flows AS (
               SELECT period, currency, 'invoiced' AS kind, amount FROM issued
               UNION ALL
               SELECT period, currency, 'invoiced', -total FROM credits
               UNION ALL
               SELECT s.period, s.currency, 'outstanding',
                      s.amount - s.credited - COALESCE((
                          SELECT sum(p.amount - p.refunded) FROM payments p
                          WHERE p.invoice_id = s.id AND p.status IN ('CONFIRMED', 'REFUNDED')), 0)
               FROM issued s WHERE s.status IN ('SENT', 'OVERDUE')
               UNION ALL
               SELECT period, currency, method::text, amount FROM confirmed
               UNION ALL
               SELECT period, currency, 'refunded', amount FROM refunds
           ),
           tax_rates AS (
               SELECT period, currency, rate, sum(amount) AS amount FROM (
                   SELECT s.period, s.currency, t->>'rate' AS rate,
                          (t->>'amount')::numeric AS amount
                   FROM issued s, jsonb_array_elements(s.taxes) t
                   UNION ALL
                   SELECT c.period, c.currency, t->>'rate', -(t->>'amount')::numeric
                   FROM credits c, jsonb_array_elements(c.taxes) t
               ) r
               GROUP BY period, currency, rate
               HAVING sum(amount) <> 0
           ),
           taxes AS (
               SELECT period, currency,
                      jsonb_agg(jsonb_build_object('rate', rate, 'amount', amount::text)
                                ORDER BY rate::numeric NULLS LAST) AS tax
               FROM tax_rates
               GROUP BY period, currency
           ),
           totals AS (
               SELECT period, currency,
                      sum(amount) FILTER (WHERE kind = 'invoiced') AS invoiced,
                      sum(amount) FILTER (WHERE kind = 'CREDIT_CARD') AS card,
                      sum(amount) FILTER (WHERE kind = 'CRYPTO') AS bitcoin,
                      sum(amount) FILTER (WHERE kind = 'BLOCKCHAIN_TOKEN') AS chain,
                      sum(amount) FILTER (WHERE kind = 'refunded') AS refunded,
                      sum(amount) FILTER (WHERE kind = 'outstanding') AS outstanding
               FROM flows
               GROUP BY period, currency
           )
           SELECT o.period AS "period!", o.currency AS "currency!",
                  COALESCE(o.invoiced, 0)::text AS "invoiced!",
                  COALESCE(o.card, 0)::text AS "card!",
                  COALESCE(o.bitcoin, 0)::text AS "bitcoin!",
                  COALESCE(o.chain, 0)::text AS "chain!",
                  COALESCE(o.refunded, 0)::text AS "refunded!",
                  COALESCE(o.outstanding, 0)::text AS "outstanding!",
                  COALESCE(x.tax, '[]'::jsonb) AS "tax!: Json<Vec<TaxAmount>>"
           FROM totals o
           LEFT JOIN taxes x ON x.period = o.period AND x.currency = o.currency
           ORDER BY o.period, o.currency"#,
        range.from,
        range.to,
        range.interval.as_str(),
        &confirmation_patterns(),
        &refunds,
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(RevenueReport {
        rows: rows
            .into_iter()
            .map(|row| RevenueRow {
                period: row.period,
                currency: row.currency,
                invoiced: row.invoiced,
                paid: PaidByMethod {
                    card: row.card,
                    bitcoin: row.bitcoin,
                    chain: row.chain,
                },
                refunded: row.refunded,
                outstanding: row.outstanding,
                tax: row.tax.0,
            })
            .collect(),
    })
}

/// The aging report at `at`.
pub async fn aging(pool: &PgPool, at: Date) -> AppResult<AgingReport> {
    let mut tx = report_transaction(pool).await?;
    let rows = sqlx::query!(
        r#"WITH due AS (
               SELECT i.currency, $1::date - i.due_date AS late,
                      i.amount - i.credited - COALESCE((
                          SELECT sum(p.amount - p.refunded) FROM payments p
                          WHERE p.invoice_id = i.id AND p.status IN ('CONFIRMED', 'REFUNDED')), 0)
                          AS amount
               FROM invoices i
               WHERE i.status IN ('SENT', 'OVERDUE')
                 AND (i.sent_at IS NULL OR i.sent_at < ($1::date + 1)::timestamp AT TIME ZONE 'UTC')
           )
           SELECT currency AS "currency!",
                  COALESCE(sum(amount) FILTER (WHERE late IS NULL OR late <= 0), 0)::text
                      AS "current!",
                  COALESCE(sum(amount) FILTER (WHERE late BETWEEN 1 AND 30), 0)::text
                      AS "d1_30!",
                  COALESCE(sum(amount) FILTER (WHERE late BETWEEN 31 AND 60), 0)::text
                      AS "d31_60!",
                  COALESCE(sum(amount) FILTER (WHERE late BETWEEN 61 AND 90), 0)::text
                      AS "d61_90!",
                  COALESCE(sum(amount) FILTER (WHERE late > 90), 0)::text AS "d90_plus!"
           FROM due
           GROUP BY currency
           ORDER BY currency"#,
        at,
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(AgingReport {
        rows: rows
            .into_iter()
            .map(|row| AgingRow {
                currency: row.currency,
                current: row.current,
                d1_30: row.d1_30,
                d31_60: row.d31_60,
                d61_90: row.d61_90,
                d90_plus: row.d90_plus,
            })
            .collect(),
    })
}

/// A report's rows as CSV (RFC 4180: a header line, CRLF line ends, fields quoted when they
/// hold a comma, a quote or a line break).
pub trait Csv {
    fn header() -> &'static [&'static str];
    fn records(&self) -> Vec<Vec<String>>;

    fn csv(&self) -> AppResult<Vec<u8>> {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::new());
        writer
            .write_record(Self::header())
            .map_err(AppError::internal)?;
        for record in self.records() {
            writer.write_record(&record).map_err(AppError::internal)?;
        }
        writer
            .into_inner()
            .map_err(|e| AppError::internal(anyhow::anyhow!("writing CSV: {}", e.error())))
    }
}

/// `rate:amount;rate:amount`, `none` for the rows without a rate.
fn tax_cell(tax: &[TaxAmount]) -> String {
    tax.iter()
        .map(|t| format!("{}:{}", t.rate.as_deref().unwrap_or("none"), t.amount))
        .collect::<Vec<_>>()
        .join(";")
}

impl Csv for RevenueReport {
    fn header() -> &'static [&'static str] {
        &[
            "period",
            "currency",
            "invoiced",
            "paid_card",
            "paid_bitcoin",
            "paid_chain",
            "refunded",
            "outstanding",
            "tax",
        ]
    }

    fn records(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|r| {
                vec![
                    r.period.to_string(),
                    r.currency.clone(),
                    r.invoiced.clone(),
                    r.paid.card.clone(),
                    r.paid.bitcoin.clone(),
                    r.paid.chain.clone(),
                    r.refunded.clone(),
                    r.outstanding.clone(),
                    tax_cell(&r.tax),
                ]
            })
            .collect()
    }
}

impl Csv for AgingReport {
    fn header() -> &'static [&'static str] {
        &[
            "currency", "current", "d1_30", "d31_60", "d61_90", "d90_plus",
        ]
    }

    fn records(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|r| {
                vec![
                    r.currency.clone(),
                    r.current.clone(),
                    r.d1_30.clone(),
                    r.d31_60.clone(),
                    r.d61_90.clone(),
                    r.d90_plus.clone(),
                ]
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn query(from: Option<&str>, to: Option<&str>, interval: Option<&str>) -> RevenueQuery {
        RevenueQuery {
            from: from.map(Into::into),
            to: to.map(Into::into),
            interval: interval.map(Into::into),
        }
    }

    fn fields(err: AppError) -> Vec<(String, bool)> {
        match err {
            AppError::Validation(errors) => {
                errors.into_iter().map(|e| (e.field, e.semantic)).collect()
            }
            other => panic!("not a validation error: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_the_last_30_days_by_month() -> crate::TestResult {
        let today = date!(2027 - 03 - 15);
        let range = query(None, None, None).range(today)?;
        assert_eq!(
            range,
            Range {
                from: date!(2027 - 02 - 14),
                to: today,
                interval: Interval::Month
            }
        );
        let range = query(None, Some("2027-01-30"), Some("week")).range(today)?;
        assert_eq!(range.from, date!(2027 - 01 - 01));
        assert_eq!(range.interval, Interval::Week);
        Ok(())
    }

    #[test]
    fn bad_parameters_are_named() {
        let today = date!(2027 - 03 - 15);
        let bad = |q: RevenueQuery| fields(q.range(today).err().unwrap_or(AppError::NotFound));
        assert_eq!(
            bad(query(Some("2027-1-01"), Some("x"), Some("year"))),
            [
                ("from".to_owned(), false),
                ("to".to_owned(), false),
                ("interval".to_owned(), false)
            ]
        );
        assert_eq!(
            bad(query(Some("2027-02-30"), None, None)),
            [("from".to_owned(), false)]
        );
        assert_eq!(
            bad(query(Some("+207-02-03"), None, None)),
            [("from".to_owned(), false)]
        );
        assert_eq!(
            bad(query(Some("2027-03-16"), None, None)),
            [("from".to_owned(), true)],
            "after to"
        );
        assert_eq!(
            bad(query(Some("2017-01-01"), Some("2027-01-10"), None)),
            [("from".to_owned(), true)],
            "3661 days"
        );
        assert!(
            query(Some("2017-01-01"), Some("2027-01-09"), Some("day"))
                .range(today)
                .is_ok(),
            "3660 days"
        );
        let at = AgingQuery {
            at: Some("2027-13-01".into()),
        };
        assert_eq!(
            fields(at.at(today).err().unwrap_or(AppError::NotFound)),
            [("at".to_owned(), false)]
        );
    }

    #[test]
    fn csv_quotes_as_rfc_4180_says() -> crate::TestResult {
        let report = AgingReport {
            rows: vec![AgingRow {
                currency: "a,\"b\"".into(),
                current: "1".into(),
                d1_30: "2".into(),
                d31_60: "3".into(),
                d61_90: "4".into(),
                d90_plus: "5".into(),
            }],
        };
        assert_eq!(
            String::from_utf8(report.csv()?)?,
            "currency,current,d1_30,d31_60,d61_90,d90_plus\r\n\"a,\"\"b\"\"\",1,2,3,4,5\r\n"
        );
        let tax = [
            TaxAmount {
                rate: Some("7.7".into()),
                amount: "154".into(),
            },
            TaxAmount {
                rate: None,
                amount: "-3".into(),
            },
        ];
        assert_eq!(tax_cell(&tax), "7.7:154;none:-3");
        Ok(())
    }

    #[test]
    fn the_confirmation_patterns_name_the_statuses_as_settle_writes_them() {
        let patterns = confirmation_patterns();
        assert!(patterns.contains(&"applied: payment Pending -> Confirmed,%".to_owned()));
        assert_eq!(patterns.len(), 6);
    }
}
