//! The invoice functions (`invoices`, `invoice-payments`): their handlers and OpenAPI paths.
//! Thin: extract, call the rule ([`super`]), choose the status.

use super as invoices;
use crate::domain::Page;
use crate::endpoint;
use crate::error::AppResult;
use crate::extract::{AuthUser, Authorized, Json, Path, Query, StaffOrAdmin};
use crate::function::needs::{CHAIN_RPC, DATABASE, PUBLIC_KEYS};
use crate::function::{FunctionSpec, Http, Trigger};
use crate::payments::dto::{InvoiceInput, InvoiceQuery, InvoiceUpdate};
use crate::payments::model::{Invoice, Payments};
use crate::payments::state::PaymentsState;
use crate::payments::{billing, onchain};
use axum::extract::State;
use axum::http::StatusCode;
use uuid::Uuid;

/// `invoices`: the invoices themselves (with the chains, for each invoice's payment URI).
pub static INVOICES: FunctionSpec = FunctionSpec {
    name: "invoices",
    trigger: Trigger::Http(&Http::new(
        PaymentsState::with_books_and_chains,
        &[
            endpoint!(list_invoices),
            endpoint!(create_invoice),
            endpoint!(get_invoice),
            endpoint!(update_invoice),
        ],
    )),
    needs: &[
        &DATABASE,
        &PUBLIC_KEYS,
        &CHAIN_RPC,
        &onchain::NEED,
        &billing::config::NEED,
    ],
};

/// `invoice-payments`: the payments made against an invoice.
pub static INVOICE_PAYMENTS: FunctionSpec = FunctionSpec {
    name: "invoice-payments",
    trigger: Trigger::Http(&Http::new(
        |platform| Ok(PaymentsState::rows(platform)),
        &[endpoint!(list_payments)],
    )),
    needs: &[&DATABASE, &PUBLIC_KEYS],
};

#[utoipa::path(get, path = "/invoices", tag = "payments", security(("bearer" = [])),
    params(InvoiceQuery),
    responses(
        (status = 200, description = "A page of the invoices the caller can see (a CLIENT: their projects')", body = Page<Invoice>),
    ))]
pub async fn list_invoices(
    State(state): State<PaymentsState>,
    caller: AuthUser,
    Query(query): Query<InvoiceQuery>,
) -> AppResult<Json<Page<Invoice>>> {
    let mut page = invoices::list(state.db()?, &caller, query).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for invoice in page.items {
        items.push(state.chains().with_payment_uri(state.rpc(), invoice).await);
    }
    page.items = items;
    Ok(Json(page))
}

#[utoipa::path(post, path = "/invoices", tag = "payments", security(("bearer" = [])),
    request_body = InvoiceInput,
    responses(
        (status = 201, description = "The invoice, as DRAFT", body = Invoice),
        (status = 403, description = "Not STAFF or ADMIN"),
        (status = 422, description = "project_id names no project, or the currency is unknown"),
    ))]
pub async fn create_invoice(
    State(state): State<PaymentsState>,
    Authorized(caller, _): Authorized<StaffOrAdmin>,
    Json(body): Json<InvoiceInput>,
) -> AppResult<(StatusCode, Json<Invoice>)> {
    Ok((
        StatusCode::CREATED,
        Json(invoices::create(state.db()?, &caller, body).await?),
    ))
}

#[utoipa::path(get, path = "/invoices/{id}", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 200, description = "The invoice", body = Invoice),
        (status = 404, description = crate::payments::NOT_VISIBLE),
    ))]
pub async fn get_invoice(
    State(state): State<PaymentsState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<Invoice>> {
    let invoice = invoices::visible(state.db()?, &caller, id).await?;
    Ok(Json(
        state.chains().with_payment_uri(state.rpc(), invoice).await,
    ))
}

#[utoipa::path(put, path = "/invoices/{id}", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    request_body = InvoiceUpdate,
    responses(
        (status = 200, description = "The invoice, changed", body = Invoice),
        (status = 403, description = "A CLIENT"),
        (status = 404, description = crate::payments::NOT_VISIBLE),
        (status = 409, description = "The status cannot move that way, or the amount is fixed once SENT"),
        (status = 422, description = "The currency is unknown"),
    ))]
pub async fn update_invoice(
    State(state): State<PaymentsState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<InvoiceUpdate>,
) -> AppResult<Json<Invoice>> {
    let invoice = invoices::update(&state, &caller, id, body).await?;
    Ok(Json(
        state.chains().with_payment_uri(state.rpc(), invoice).await,
    ))
}

#[utoipa::path(get, path = "/invoices/{id}/payments", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 200, description = "Every payment of the invoice, oldest first", body = Payments),
        (status = 404, description = crate::payments::NOT_VISIBLE),
    ))]
pub async fn list_payments(
    State(state): State<PaymentsState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<Payments>> {
    Ok(Json(invoices::payments(state.db()?, &caller, id).await?))
}
