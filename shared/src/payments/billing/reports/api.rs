//! The `reports` function: the billing reports for STAFF and ADMIN, as JSON or, when the
//! `Accept` header names `text/csv`, as CSV. Thin: extract, call the rule ([`super`]), render.

use super::{self as reports, AgingQuery, AgingReport, Csv, RevenueQuery, RevenueReport};
use crate::endpoint;
use crate::error::AppResult;
use crate::extract::{Authorized, Json, Query, StaffOrAdmin};
use crate::function::needs::{DATABASE, PUBLIC_KEYS};
use crate::function::{FunctionSpec, Http, Trigger};
use crate::payments::state::PaymentsState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::OffsetDateTime;

/// `reports`: revenue and receivables' aging.
pub static REPORTS: FunctionSpec = FunctionSpec {
    name: "reports",
    trigger: Trigger::Http(&Http::new(
        |platform| Ok(PaymentsState::rows(platform)),
        &[endpoint!(revenue_report), endpoint!(aging_report)],
    )),
    needs: &[&DATABASE, &PUBLIC_KEYS],
};

/// Whether `Accept` names `text/csv` (with a non-zero quality); otherwise JSON.
fn wants_csv(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let csv = parts
                .next()
                .is_some_and(|t| t.eq_ignore_ascii_case("text/csv"));
            let refused = parts.any(|p| {
                p.split_once('=').is_some_and(|(k, v)| {
                    k.trim().eq_ignore_ascii_case("q") && v.trim().parse::<f32>() == Ok(0.0)
                })
            });
            csv && !refused
        })
}

fn render<R: Serialize + Csv>(headers: &HeaderMap, report: R) -> AppResult<Response> {
    if !wants_csv(headers) {
        return Ok(Json(report).into_response());
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (header::VARY, HeaderValue::from_static("accept")),
        ],
        report.csv()?,
    )
        .into_response())
}

#[utoipa::path(get, path = "/reports/revenue", tag = "reports", security(("bearer" = [])),
    params(RevenueQuery),
    responses(
        (status = 200, description = "Revenue by period and currency: invoiced (less credit notes) with its tax by rate, payments confirmed by method, refunds, and what is still due on the period's invoices. With `Accept: text/csv`, the same rows as CSV: `period,currency,invoiced,paid_card,paid_bitcoin,paid_chain,refunded,outstanding,tax`, where `tax` is `rate:amount;…` (rate `none` for lines without)",
            content(
                (RevenueReport = "application/json"),
                (String = "text/csv"),
            )),
        (status = 403, description = "A CLIENT"),
        (status = 422, description = "`from` is after `to`, or more than 3660 days before it"),
    ))]
pub async fn revenue_report(
    State(state): State<PaymentsState>,
    Authorized(_, _): Authorized<StaffOrAdmin>,
    headers: HeaderMap,
    Query(query): Query<RevenueQuery>,
) -> AppResult<Response> {
    let range = query.range(OffsetDateTime::now_utc().date())?;
    render(&headers, reports::revenue(state.db()?, &range).await?)
}

#[utoipa::path(get, path = "/reports/aging", tag = "reports", security(("bearer" = [])),
    params(AgingQuery),
    responses(
        (status = 200, description = "What is still due on SENT and OVERDUE invoices issued by `at`, per currency, by days past the due date at `at`. With `Accept: text/csv`, the same rows as CSV: `currency,current,d1_30,d31_60,d61_90,d90_plus`",
            content(
                (AgingReport = "application/json"),
                (String = "text/csv"),
            )),
        (status = 403, description = "A CLIENT"),
    ))]
pub async fn aging_report(
    State(state): State<PaymentsState>,
    Authorized(_, _): Authorized<StaffOrAdmin>,
    headers: HeaderMap,
    Query(query): Query<AgingQuery>,
) -> AppResult<Response> {
    let at = query.at(OffsetDateTime::now_utc().date())?;
    render(&headers, reports::aging(state.db()?, at).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_is_chosen_only_when_accept_names_it() {
        let with = |accept: &str| {
            let mut headers = HeaderMap::new();
            if let Ok(value) = HeaderValue::from_str(accept) {
                headers.insert(header::ACCEPT, value);
            }
            wants_csv(&headers)
        };
        assert!(with("text/csv"));
        assert!(with("application/json;q=0.5, Text/CSV; charset=utf-8"));
        assert!(!with("text/csv;q=0"));
        assert!(!with("application/json"));
        assert!(!with("*/*"));
        assert!(!wants_csv(&HeaderMap::new()));
    }
}
