//! The `create-btcpay-invoice` function: a BTCPay Server invoice (checkout) for what is left to
//! pay of an invoice, its handler, and the rule behind it.

use super::client::{Btcpay, Invoice};
use super::{API_NEED, PROVIDER};
use crate::endpoint;
use crate::error::{AppError, AppResult};
use crate::extract::{AuthUser, Json, Path};
use crate::function::needs::{DATABASE, PUBLIC_KEYS};
use crate::function::{FunctionSpec, Http, Trigger};
use crate::payments::dto::BtcpayInvoiceCreated;
use crate::payments::error::PaymentsError;
use crate::payments::invoices;
use crate::payments::model::PaymentMethod;
use crate::payments::state::PaymentsState;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

/// `create-btcpay-invoice`: a BTCPay Server invoice (checkout) for an invoice.
pub static CREATE_BTCPAY_INVOICE: FunctionSpec = FunctionSpec {
    name: "create-btcpay-invoice",
    trigger: Trigger::Http(&Http::new(
        PaymentsState::with_btcpay,
        &[endpoint!(create_btcpay_invoice)],
    )),
    needs: &[&DATABASE, &PUBLIC_KEYS, &API_NEED],
};

#[utoipa::path(post, path = "/invoices/{id}/create-btcpay-invoice", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 201, description = "The open BTCPay invoice for what is left to pay (the same one on every call while it is open)", body = BtcpayInvoiceCreated),
        (status = 404, description = crate::payments::NOT_VISIBLE),
        (status = 409, description = "The invoice is not SENT, is paid, or a bitcoin payment of it is being confirmed"),
        (status = 502, description = "BTCPay Server refused the request or answered with something else"),
    ))]
pub async fn create_btcpay_invoice(
    State(state): State<PaymentsState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<(StatusCode, Json<BtcpayInvoiceCreated>)> {
    let created = create_invoice(state.db()?, state.btcpay()?, &caller, id).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The open BTCPay invoice for what is left to
/// pay, made once. Under our invoice's lock: the open one we recorded is returned again, then
/// an open one BTCPay holds for our `orderId` (made before an answer was lost), and only then
/// a new one.
#[tracing::instrument(name = "payments.create_btcpay_invoice", skip_all)]
pub async fn create_invoice(
    pool: &PgPool,
    btcpay: &Btcpay,
    caller: &AuthUser,
    invoice_id: Uuid,
) -> AppResult<crate::payments::dto::BtcpayInvoiceCreated> {
    btcpay.store()?;
    let mut tx = pool.begin().await?;
    let payable = invoices::lock_payable(caller, invoice_id, &mut tx).await?;
    let (amount, currency) = (payable.outstanding, &payable.currency);
    let recorded = sqlx::query_scalar!(
        r#"SELECT provider_ref FROM payments
           WHERE invoice_id = $1 AND provider = $2 AND status = 'PENDING'
           ORDER BY created_at DESC"#,
        invoice_id,
        PROVIDER
    )
    .fetch_all(&mut *tx)
    .await?;
    for id in recorded {
        let open = btcpay.fetch(&id).await?;
        if matches!(open.status.as_str(), "Processing" | "Settled") {
            // Paid, and its settlement not yet recorded: a new invoice would let the payer pay
            // twice.
            return Err(PaymentsError::BitcoinPaymentBeingConfirmed.into());
        }
        if open.reusable_for(invoice_id, amount, currency) {
            return answer(open);
        }
    }
    let order = invoice_id.to_string();
    let made_before: Vec<Invoice> = btcpay
        .call(|http, endpoint| {
            http.get(endpoint)
                .query(&[("orderId", order.as_str()), ("status", "New")])
        })
        .await?;
    let invoice = match made_before
        .into_iter()
        .find(|i| i.reusable_for(invoice_id, amount, currency))
    {
        Some(invoice) => invoice,
        None => {
            let body = json!({
                "amount": amount.to_decimal(currency.exponent()),
                "currency": currency.code(),
                "metadata": {"orderId": order, "itemDesc": format!("Invoice {order}")},
            });
            let made: Invoice = btcpay
                .call(|http, endpoint| http.post(endpoint).json(&body))
                .await?;
            if !made.reusable_for(invoice_id, amount, currency) {
                tracing::error!(btcpay_invoice = %made.id, "BTCPay made another invoice than asked for");
                return Err(AppError::BadGateway(
                    "BTCPay Server answered with another invoice".into(),
                ));
            }
            made
        }
    };
    let started = invoices::Started {
        provider: PROVIDER,
        provider_ref: &invoice.id,
        method: PaymentMethod::Crypto,
    };
    invoices::record_started(&mut tx, caller, &payable, &started)
        .await?
        .made_by_provider(&started)?;
    tx.commit().await?;
    answer(invoice)
}

fn answer(invoice: Invoice) -> AppResult<crate::payments::dto::BtcpayInvoiceCreated> {
    let checkout_link = invoice
        .checkout_link
        .ok_or_else(|| AppError::BadGateway("BTCPay Server gave no checkout link".into()))?;
    Ok(crate::payments::dto::BtcpayInvoiceCreated {
        btcpay_invoice_id: invoice.id,
        checkout_link,
    })
}
