//! The payments area's HTTP handlers and their OpenAPI paths. Thin: extract, call the rule,
//! choose the status.

use super::dto::{
    BlockchainPaymentInput, BtcpayInvoiceCreated, InvoiceInput, InvoiceQuery, InvoiceUpdate,
    PaymentIntentCreated, PayoutInput, Received,
};
use super::model::{Invoice, Payment, Payments};
use super::state::PaymentsState;
use super::{btcpay, invoices, onchain, stripe};
use crate::domain::Page;
use crate::error::{AppResult, Problem};
use crate::extract::{AdminOnly, AuthUser, Authorized, Json, Path, Query, RawBody, StaffOrAdmin};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use uuid::Uuid;

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
        (status = 403, description = "Not STAFF or ADMIN", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "project_id names no project, or the currency is unknown", body = Problem, content_type = "application/problem+json"),
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
        (status = 404, description = NOT_VISIBLE, body = Problem, content_type = "application/problem+json"),
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
        (status = 403, description = "A CLIENT", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = NOT_VISIBLE, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The status cannot move that way, or the amount is fixed once SENT", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The currency is unknown", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn update_invoice(
    State(state): State<PaymentsState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<InvoiceUpdate>,
) -> AppResult<Json<Invoice>> {
    let invoice = invoices::update(state.db()?, &caller, id, body).await?;
    Ok(Json(
        state.chains().with_payment_uri(state.rpc(), invoice).await,
    ))
}

#[utoipa::path(get, path = "/invoices/{id}/payments", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 200, description = "Every payment of the invoice, oldest first", body = Payments),
        (status = 404, description = NOT_VISIBLE, body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_payments(
    State(state): State<PaymentsState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<Payments>> {
    Ok(Json(invoices::payments(state.db()?, &caller, id).await?))
}

#[utoipa::path(post, path = "/invoices/{id}/create-payment-intent", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 201, description = "The invoice's open PaymentIntent for what is left to pay (the same one on every call while it is open)", body = PaymentIntentCreated),
        (status = 404, description = NOT_VISIBLE, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The invoice is not SENT, is paid, is not in a card currency, or a card payment of it succeeded and is being recorded", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Stripe cannot charge what is left to pay exactly in its units (123.45 MGA, 5.124 KWD): `amount` is named, and nothing is rounded", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Stripe refused the request or answered with something else", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_payment_intent(
    State(state): State<PaymentsState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<(StatusCode, Json<PaymentIntentCreated>)> {
    let created = stripe::create_payment_intent(state.db()?, state.stripe()?, &caller, id).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(post, path = "/invoices/{id}/create-btcpay-invoice", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 201, description = "The open BTCPay invoice for what is left to pay (the same one on every call while it is open)", body = BtcpayInvoiceCreated),
        (status = 404, description = NOT_VISIBLE, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The invoice is not SENT, is paid, or a bitcoin payment of it is being confirmed", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "BTCPay Server refused the request or answered with something else", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_btcpay_invoice(
    State(state): State<PaymentsState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<(StatusCode, Json<BtcpayInvoiceCreated>)> {
    let created = btcpay::create_invoice(state.db()?, state.btcpay()?, &caller, id).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[utoipa::path(post, path = "/stripe-webhook", tag = "payments",
    params(("Stripe-Signature" = String, Header, description = "Stripe's signature: t=<unix time>,v1=<hex HMAC-SHA256>")),
    request_body(content = String, content_type = "application/json", description = "A Stripe event, exactly as Stripe sent it"),
    responses(
        (status = 200, description = "Verified; applied, or a no-op (a redelivery, or a type this API does not act on)", body = Received),
        (status = 400, description = "No valid signature within 300 seconds, or not a Stripe event", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn stripe_webhook(
    State(state): State<PaymentsState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> AppResult<Json<Received>> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let outcome = stripe::webhook(
        state.db()?,
        state.stripe()?,
        header(&headers, "stripe-signature"),
        &body,
        now,
    )
    .await?;
    Ok(Json(Received {
        outcome: outcome.as_str(),
    }))
}

#[utoipa::path(post, path = "/btcpay-webhook", tag = "payments",
    params(("BTCPay-Sig" = String, Header, description = "sha256=<hex HMAC-SHA256 of the body>")),
    request_body(content = String, content_type = "application/json", description = "A BTCPay Server webhook delivery, exactly as sent"),
    responses(
        (status = 200, description = "Verified; applied, or a no-op (a redelivery, or an event this API does not act on)", body = Received),
        (status = 400, description = "No valid signature, or not a BTCPay delivery", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "BTCPay Server's invoice could not be read back", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn btcpay_webhook(
    State(state): State<PaymentsState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> AppResult<Json<Received>> {
    let outcome = btcpay::webhook(
        state.db()?,
        state.btcpay()?,
        header(&headers, "btcpay-sig"),
        &body,
    )
    .await?;
    Ok(Json(Received {
        outcome: outcome.as_str(),
    }))
}

const NOT_VISIBLE: &str = "No such invoice, or not the caller's to see";

/// The payments area's tag in the OpenAPI document; its paths come from its functions' endpoints.
#[derive(utoipa::OpenApi)]
#[openapi(
    tags((name = "payments", description = "Invoices and their payments: cards (Stripe) and bitcoin (BTCPay Server)")),
)]
pub struct PaymentsApi;

/// How a new invoice feeds its other operations (OpenAPI links).
pub fn add_links(doc: &mut utoipa::openapi::OpenApi) {
    use crate::openapi::add_link;
    use utoipa::openapi::link::LinkBuilder;
    let invoice = |operation: &str| {
        LinkBuilder::new()
            .operation_id(operation)
            .parameter("path.id", "$response.body#/id")
            .description("The invoice's id")
    };
    for operation in ["get_invoice", "update_invoice", "list_payments"] {
        add_link(
            doc,
            "post",
            "/invoices",
            "201",
            operation,
            invoice(operation).build(),
        );
    }
    // Sending it makes it payable; a changed invoice feeds the payment routes.
    let send = invoice("update_invoice")
        .request_body(Some(serde_json::json!({"status": "SENT"})))
        .build();
    add_link(doc, "post", "/invoices", "201", "send_invoice", send);
    for operation in [
        "create_payment_intent",
        "create_btcpay_invoice",
        "list_payments",
    ] {
        add_link(
            doc,
            "put",
            "/invoices/{id}",
            "200",
            operation,
            invoice(operation).build(),
        );
    }
    // A new project can be billed.
    let bill = LinkBuilder::new()
        .operation_id("create_invoice")
        .request_body(Some(serde_json::json!({
            "project_id": "$response.body#/id",
            "amount": "1500",
            "currency": "USD",
        })))
        .description("An invoice for the new project")
        .build();
    add_link(doc, "post", "/projects", "201", "create_invoice", bill);
}

#[utoipa::path(post, path = "/invoices/{id}/blockchain-payment", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    request_body = BlockchainPaymentInput,
    responses(
        (status = 202, description = "The payment, PENDING until the chain monitor finds the transaction final (the same payment if this transaction was submitted for this invoice before). It credits the invoice only if it was paid from a wallet linked (SIWE) to the invoice's client account, in a block no older than the invoice's issue; otherwise it ends FAILED", body = Payment),
        (status = 404, description = NOT_VISIBLE, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The invoice is not SENT or is paid, its currency is not taken on that chain, 3 of its on-chain payments are still being checked, or the transaction is another invoice's payment (waiting or paid)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No payments are taken on chain_id", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "On-chain payments are not configured, or the currency's token cannot be taken: its decimals() could not be read, or differ from the currency's (the detail names PAYMENT_CHAINS)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn blockchain_payment(
    State(state): State<PaymentsState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<BlockchainPaymentInput>,
) -> AppResult<(StatusCode, Json<Payment>)> {
    let payment =
        onchain::submit::submit(state.db()?, state.chains(), state.rpc(), &caller, id, body)
            .await?;
    Ok((StatusCode::ACCEPTED, Json(payment)))
}

#[utoipa::path(post, path = "/payouts", tag = "payments", security(("bearer" = [])),
    request_body = PayoutInput,
    responses(
        (status = 202, description = "The payout, signed, stored and broadcast, PENDING until the chain monitor finds it final; the same payout for the same idempotency_key", body = onchain::payout::Payout),
        (status = 401, description = "No valid token, or no second factor (amr otp or rec) in the last 5 minutes: `WWW-Authenticate: Bearer error=\"insufficient_user_authentication\"` (RFC 9470), problem type urn:gantry:problem:step-up-required; sign in again through POST /login/mfa", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Not ADMIN (the role is read from the database, not only the token), or the second factor was turned on less than PAYOUT_MFA_MIN_AGE_HOURS ago (type urn:gantry:problem:second-factor-too-new)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It would exceed the currency's daily payout limit", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "No payouts on chain_id or in currency, or the idempotency_key was used for another payout", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn create_payout(
    State(state): State<PaymentsState>,
    Authorized(caller, _): Authorized<AdminOnly>,
    Json(body): Json<PayoutInput>,
) -> AppResult<(StatusCode, Json<onchain::payout::Payout>)> {
    let (payouts, rpc) = state.payouts()?;
    let payout =
        onchain::payout::send(state.db()?, payouts, state.chains(), rpc, &caller, body).await?;
    Ok((StatusCode::ACCEPTED, Json(payout)))
}
