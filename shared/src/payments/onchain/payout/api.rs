//! The `payouts` function: `POST /payouts` (ADMIN), over the payout core in [`super`].

use super::{Payout, Transfer};
use crate::endpoint;
use crate::error::{AppError, AppResult};
use crate::extract::{AdminOnly, AuthUser, Authorized, Json};
use crate::function::needs::{CHAIN_RPC, DATABASE, PUBLIC_KEYS};
use crate::function::{FunctionSpec, Http, Trigger};
use crate::payments::dto::PayoutInput;
use crate::payments::state::PaymentsState;
use alloy::primitives::Address;
use axum::extract::State;
use axum::http::StatusCode;

/// `payouts`: on-chain payouts (ADMIN).
pub static PAYOUTS: FunctionSpec = FunctionSpec {
    name: "payouts",
    trigger: Trigger::Http(&Http::new(
        PaymentsState::with_payouts,
        &[endpoint!(create_payout)],
    )),
    needs: &[
        &DATABASE,
        &PUBLIC_KEYS,
        &CHAIN_RPC,
        &crate::payments::onchain::NEED,
        &super::NEED,
    ],
};

#[utoipa::path(post, path = "/payouts", tag = "payments", security(("bearer" = [])),
    request_body = PayoutInput,
    responses(
        (status = 202, description = "The payout, signed, stored and broadcast, PENDING until the chain monitor finds it final; the same payout for the same idempotency_key", body = Payout),
        (status = 401, description = "No valid token, or no second factor (amr otp or rec) in the last 5 minutes: `WWW-Authenticate: Bearer error=\"insufficient_user_authentication\"` (RFC 9470), problem type urn:gantry:problem:step-up-required; sign in again through POST /login/mfa"),
        (status = 403, description = "Not ADMIN (the role is read from the database, not only the token), or the second factor was turned on less than PAYOUT_MFA_MIN_AGE_HOURS ago (type urn:gantry:problem:second-factor-too-new)"),
        (status = 409, description = "It would exceed the currency's daily payout limit"),
        (status = 422, description = "No payouts on chain_id or in currency, or the idempotency_key was used for another payout"),
    ))]
pub async fn create_payout(
    State(state): State<PaymentsState>,
    Authorized(caller, _): Authorized<AdminOnly>,
    Json(body): Json<PayoutInput>,
) -> AppResult<(StatusCode, Json<Payout>)> {
    let payout = send(&state, &caller, body).await?;
    Ok((StatusCode::ACCEPTED, Json(payout)))
}

/// Sends the payout (see the module's comment): 202 with the payout, the same one for the same
/// key.
#[tracing::instrument(name = "payments.payout", skip_all)]
pub async fn send(
    state: &PaymentsState,
    caller: &AuthUser,
    input: PayoutInput,
) -> AppResult<Payout> {
    let pool = state.db()?;
    let payouts = state.payouts()?;
    // ADMIN now (not only in the token), and a second factor used minutes ago and turned on
    // long enough ago: 403 or 401.
    payouts.admit(pool, caller).await?;
    let (amount, currency) =
        crate::payments::money::positive(Some(&input.amount.0), Some(&input.currency))?;
    let (Some(amount), Some(currency)) = (amount, currency) else {
        return Err(AppError::internal(anyhow::anyhow!(
            "positive() gave nothing"
        )));
    };
    let to: Address = input
        .to
        .parse()
        .ok()
        .filter(|_| input.to.len() == 42 && input.to.starts_with("0x"))
        .ok_or_else(|| AppError::invalid("to", "must be an address: 0x and 40 hex digits"))?;
    let key = input.idempotency_key.as_str();
    if key.is_empty() || key.chars().count() > 255 || key.chars().any(char::is_control) {
        return Err(AppError::invalid(
            "idempotency_key",
            "must be 1 to 255 characters, none a control character",
        ));
    }
    let signer = payouts
        .signer(state.chains(), state.rpc(), input.chain_id, currency)
        .await?;
    let mut tx = pool.begin().await?;
    let signed = signer
        .sign_and_store(
            &mut tx,
            caller,
            &Transfer {
                to,
                amount,
                key,
                refund_id: None,
            },
        )
        .await?;
    tx.commit().await?;
    signer.broadcast(&signed).await;
    Ok(signed.payout)
}
