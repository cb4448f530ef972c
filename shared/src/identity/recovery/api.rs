//! Recovery's functions (`password`, `email-verification`) and their handlers: password
//! forgot/reset/change and email verification. Thin: extract, call the rule, choose the status.

use super::{password, verification};
use crate::endpoint;
use crate::error::AppResult;
use crate::extract::{AuthUser, ClientIp, Json};
use crate::function::needs::{DATABASE, EPHEMERAL_TABLE, PUBLIC_KEYS};
use crate::function::{FunctionSpec, Http, Trigger};
use crate::identity::config::ACCOUNT_MAIL_NEED;
use crate::identity::dto::*;
use crate::identity::state::IdentityState;
use axum::extract::State;
use axum::http::StatusCode;

const INVALID_LINK: &str =
    "The link's token is unknown, malformed, expired or used (one answer for all)";

#[utoipa::path(post, path = "/password/forgot", tag = "account",
    request_body = ForgotPassword,
    responses(
        (status = 202, description = "The same answer, no sooner than 100 ms after the request, whether or not an account has the address; if one has, a reset link is mailed to it", body = MailSent),
        (status = 400, description = "Not an email address"),
        (status = 429, description = "Rate-limited (per address and per client); see Retry-After"),
        (status = 503, description = "Account mail is not configured (PUBLIC_BASE_URL)"),
    ))]
pub async fn password_forgot(
    State(state): State<IdentityState>,
    ip: ClientIp,
    Json(body): Json<ForgotPassword>,
) -> AppResult<(StatusCode, Json<MailSent>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(password::forgot(&state, &ip, body).await?),
    ))
}

#[utoipa::path(post, path = "/password/reset", tag = "account",
    request_body = ResetPassword,
    responses(
        (status = 204, description = "The password is set; every session of the account is revoked"),
        (status = 400, description = INVALID_LINK),
        (status = 422, description = "The new password is too common"),
        (status = 429, description = "Rate-limited; see Retry-After"),
    ))]
pub async fn password_reset(
    State(state): State<IdentityState>,
    ip: ClientIp,
    Json(body): Json<ResetPassword>,
) -> AppResult<StatusCode> {
    password::reset(&state, &ip, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/password/change", tag = "account", security(("bearer" = [])),
    request_body = ChangePassword,
    responses(
        (status = 204, description = "The password is changed; every other session is revoked"),
        (status = 409, description = "The account has no password (a wallet-only account), or it changed meanwhile"),
        (status = 422, description = "The current password is wrong, or the new one too common"),
        (status = 429, description = "Locked out after wrong passwords; see Retry-After"),
    ))]
pub async fn password_change(
    State(state): State<IdentityState>,
    caller: AuthUser,
    Json(body): Json<ChangePassword>,
) -> AppResult<StatusCode> {
    password::change(&state, &caller, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/email/verify", tag = "account",
    request_body = VerifyEmail,
    responses(
        (status = 204, description = "The address is verified"),
        (status = 400, description = INVALID_LINK),
        (status = 429, description = "Rate-limited; see Retry-After"),
    ))]
pub async fn verify_email(
    State(state): State<IdentityState>,
    ip: ClientIp,
    Json(body): Json<VerifyEmail>,
) -> AppResult<StatusCode> {
    verification::verify(&state, &ip, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/email/verify/resend", tag = "account", security(("bearer" = [])),
    request_body = Empty,
    responses(
        (status = 202, description = "A new verification link is mailed; older ones no longer work", body = MailSent),
        (status = 409, description = "The account has no email address, or it is verified already"),
        (status = 429, description = "Rate-limited; see Retry-After"),
        (status = 503, description = "Account mail is not configured (PUBLIC_BASE_URL)"),
    ))]
pub async fn resend_verification(
    State(state): State<IdentityState>,
    ip: ClientIp,
    caller: AuthUser,
    Json(_): Json<Empty>,
) -> AppResult<(StatusCode, Json<MailSent>)> {
    verification::resend(&state, &ip, &caller).await?;
    Ok((StatusCode::ACCEPTED, Json(MailSent { status: "sent" })))
}

/// `password`: forgot (a mailed reset link), reset, and change.
pub static PASSWORD: FunctionSpec = FunctionSpec {
    name: "password",
    trigger: Trigger::Http(&Http::new(
        IdentityState::new,
        &[
            endpoint!(password_forgot),
            endpoint!(password_reset),
            endpoint!(password_change),
        ],
    )),
    needs: &[
        &DATABASE,
        &PUBLIC_KEYS,
        &EPHEMERAL_TABLE,
        &ACCOUNT_MAIL_NEED,
    ],
};

/// `email-verification`: the mailed link's check, and a new link.
pub static EMAIL_VERIFICATION: FunctionSpec = FunctionSpec {
    name: "email-verification",
    trigger: Trigger::Http(&Http::new(
        IdentityState::new,
        &[endpoint!(verify_email), endpoint!(resend_verification)],
    )),
    needs: &[
        &DATABASE,
        &PUBLIC_KEYS,
        &EPHEMERAL_TABLE,
        &ACCOUNT_MAIL_NEED,
    ],
};
