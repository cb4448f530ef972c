//! The `create-payment-intent` function: a Stripe PaymentIntent for what is left to pay of an
//! invoice, its handler, and the rule behind it.

use super::client::{Intent, Stripe};
use super::{API_NEED, PROVIDER, units};
use crate::endpoint;
use crate::error::{AppError, AppResult};
use crate::extract::{AuthUser, Json, Path};
use crate::function::needs::{DATABASE, PUBLIC_KEYS};
use crate::function::{FunctionSpec, Http, Trigger};
use crate::payments::dto::PaymentIntentCreated;
use crate::payments::error::PaymentsError;
use crate::payments::invoices;
use crate::payments::state::PaymentsState;
use axum::extract::State;
use axum::http::StatusCode;
use sqlx::PgPool;
use uuid::Uuid;

/// `create-payment-intent`: a Stripe PaymentIntent for an invoice.
pub static CREATE_PAYMENT_INTENT: FunctionSpec = FunctionSpec {
    name: "create-payment-intent",
    trigger: Trigger::Http(&Http::new(
        PaymentsState::with_stripe,
        &[endpoint!(create_payment_intent)],
    )),
    needs: &[&DATABASE, &PUBLIC_KEYS, &API_NEED],
};

#[utoipa::path(post, path = "/invoices/{id}/create-payment-intent", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 201, description = "The invoice's open PaymentIntent for what is left to pay (the same one on every call while it is open)", body = PaymentIntentCreated),
        (status = 404, description = crate::payments::NOT_VISIBLE),
        (status = 409, description = "The invoice is not SENT, is paid, is not in a card currency, or a card payment of it succeeded and is being recorded"),
        (status = 422, description = "Stripe cannot charge what is left to pay exactly in its units (123.45 MGA, 5.124 KWD): `amount` is named, and nothing is rounded"),
        (status = 502, description = "Stripe refused the request or answered with something else"),
    ))]
pub async fn create_payment_intent(
    State(state): State<PaymentsState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<(StatusCode, Json<PaymentIntentCreated>)> {
    let created = start(state.db()?, state.stripe()?, &caller, id).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// The invoice's open PaymentIntent for what is
/// left to pay, made once. Under the invoice's lock: an open intent of ours for the same amount
/// is returned again; otherwise one is created with an `Idempotency-Key` derived from the
/// invoice, the amount and the attempt, so a retry after a lost answer gets the same intent.
/// Stripe is asked in its own units; an amount it cannot charge exactly (123.45 MGA) is a 422.
#[tracing::instrument(name = "payments.create_payment_intent", skip_all)]
pub async fn start(
    pool: &PgPool,
    stripe: &Stripe,
    caller: &AuthUser,
    invoice_id: Uuid,
) -> AppResult<crate::payments::dto::PaymentIntentCreated> {
    stripe.secret_key()?;
    let mut tx = pool.begin().await?;
    let payable = invoices::lock_payable(caller, invoice_id, &mut tx).await?;
    if !payable.currency.is_fiat() {
        return Err(PaymentsError::NotACardCurrency(payable.currency.clone()).into());
    }
    let in_stripe = units::to_stripe(payable.outstanding, &payable.currency)
        .map_err(|e| AppError::Validation(vec![e.field("amount", &payable.currency)]))?;
    let open = sqlx::query!(
        r#"SELECT provider_ref, amount::text AS "amount!" FROM payments
           WHERE invoice_id = $1 AND provider = $2 AND status = 'PENDING'
           ORDER BY created_at DESC LIMIT 1"#,
        invoice_id,
        PROVIDER
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(open) = open {
        let intent = stripe.retrieve_intent(&open.provider_ref).await?;
        if intent.status == "succeeded" {
            // Paid, and its webhook not yet here: a new intent would let the payer pay twice.
            return Err(PaymentsError::CardPaymentBeingRecorded.into());
        }
        // An intent made for another amount (or, before Stripe's units were used, in ISO
        // units) is not reused; its success would not match our payment and never credits.
        if intent.open()
            && open.amount == payable.outstanding.to_string()
            && intent.amount == in_stripe
        {
            return answer(intent, in_stripe, &payable);
        }
    }
    let attempt = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM payments WHERE invoice_id = $1 AND provider = $2"#,
        invoice_id,
        PROVIDER
    )
    .fetch_one(&mut *tx)
    .await?;
    let key = format!(
        "gantry-{invoice_id}-{}-{}-{attempt}",
        payable.outstanding, payable.currency
    );
    let intent = stripe
        .create_intent(invoice_id, in_stripe, payable.currency.code(), &key)
        .await?;
    let created = answer(intent, in_stripe, &payable)?;
    let started = invoices::Started {
        provider: PROVIDER,
        provider_ref: &created.payment_intent_id,
        method: crate::payments::model::PaymentMethod::CreditCard,
    };
    invoices::record_started(&mut tx, caller, &payable, &started)
        .await?
        .made_by_provider(&started)?;
    tx.commit().await?;
    Ok(created)
}

/// The intent as the API answers it, once it is checked to be what we asked for (`in_stripe`:
/// the outstanding amount in Stripe's units).
fn answer(
    intent: Intent,
    in_stripe: u64,
    payable: &invoices::Payable,
) -> AppResult<crate::payments::dto::PaymentIntentCreated> {
    let same = intent.amount == in_stripe
        && intent
            .currency
            .eq_ignore_ascii_case(payable.currency.code());
    let Some(client_secret) = intent.client_secret.filter(|_| same) else {
        tracing::error!(intent = %intent.id, "Stripe's PaymentIntent is not the one asked for");
        return Err(AppError::BadGateway(
            "Stripe answered with another PaymentIntent".into(),
        ));
    };
    Ok(crate::payments::dto::PaymentIntentCreated {
        payment_intent_id: intent.id,
        client_secret,
        amount: payable.outstanding,
        currency: payable.currency.code().to_owned(),
    })
}
