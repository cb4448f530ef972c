//! TOTP MFA's functions (`mfa`, `login-mfa`) and their handlers: enrolment, activation, removal
//! and the second login step. Thin: extract, call the rule, choose the status.

use super::{self as mfa};
use crate::endpoint;
use crate::error::AppResult;
use crate::extract::{AuthUser, ClientInfo, Json};
use crate::function::needs::{DATABASE, EPHEMERAL_TABLE, PRIVATE_KEY, PUBLIC_KEYS};
use crate::function::{FunctionSpec, Http, Trigger};
use crate::identity::config::MFA_NEED;
use crate::identity::dto::*;
use crate::identity::state::IdentityState;
use axum::extract::State;
use axum::http::StatusCode;

#[utoipa::path(post, path = "/login/mfa", tag = "account",
    request_body = LoginMfa,
    responses(
        (status = 200, description = "Signed in; `amr` lists both methods, e.g. [\"pwd\",\"otp\"]", body = TokenPair),
        (status = 400, description = "Not one of the two shapes (a code, or a recovery code)"),
        (status = 401, description = "The mfa_token is invalid, expired or used, or the code is wrong or was already used"),
        (status = 429, description = "Locked out after wrong codes; see Retry-After"),
        (status = 503, description = "TOTP MFA is not configured (MFA_ENCRYPTION_KEY)"),
    ))]
pub async fn login_mfa(
    State(state): State<IdentityState>,
    client: ClientInfo,
    Json(body): Json<LoginMfa>,
) -> AppResult<Json<TokenPair>> {
    Ok(Json(mfa::finish(&state, &client, body).await?))
}

#[utoipa::path(post, path = "/mfa/totp/enroll", tag = "account", security(("bearer" = [])),
    request_body = Empty,
    responses(
        (status = 201, description = "A pending authenticator (not active until activated)", body = TotpEnrolment),
        (status = 409, description = "TOTP is already active"),
        (status = 503, description = "TOTP MFA is not configured (MFA_ENCRYPTION_KEY)"),
    ))]
pub async fn mfa_enroll(
    State(state): State<IdentityState>,
    caller: AuthUser,
    Json(_): Json<Empty>,
) -> AppResult<(StatusCode, Json<TotpEnrolment>)> {
    Ok((
        StatusCode::CREATED,
        Json(mfa::enroll(&state, &caller).await?),
    ))
}

#[utoipa::path(post, path = "/mfa/totp/activate", tag = "account", security(("bearer" = [])),
    request_body = TotpCode,
    responses(
        (status = 200, description = "TOTP is on; ten recovery codes, shown this once", body = RecoveryCodes),
        (status = 409, description = "No pending enrolment"),
        (status = 422, description = "The code is wrong"),
        (status = 429, description = "Locked out after wrong codes; see Retry-After"),
        (status = 503, description = "TOTP MFA is not configured (MFA_ENCRYPTION_KEY)"),
    ))]
pub async fn mfa_activate(
    State(state): State<IdentityState>,
    caller: AuthUser,
    Json(body): Json<TotpCode>,
) -> AppResult<Json<RecoveryCodes>> {
    Ok(Json(mfa::activate(&state, &caller, body).await?))
}

#[utoipa::path(delete, path = "/mfa/totp", tag = "account", security(("bearer" = [])),
    request_body = TotpCode,
    responses(
        (status = 204, description = "TOTP and the recovery codes are removed"),
        (status = 404, description = "TOTP is not active"),
        (status = 422, description = "The code is wrong or was already used"),
        (status = 429, description = "Locked out after wrong codes; see Retry-After"),
        (status = 503, description = "TOTP MFA is not configured (MFA_ENCRYPTION_KEY)"),
    ))]
pub async fn mfa_remove(
    State(state): State<IdentityState>,
    caller: AuthUser,
    Json(body): Json<TotpCode>,
) -> AppResult<StatusCode> {
    mfa::remove(&state, &caller, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `mfa`: TOTP enrolment, activation and removal.
pub static MFA: FunctionSpec = FunctionSpec {
    name: "mfa",
    trigger: Trigger::Http(&Http::new(
        IdentityState::new,
        &[
            endpoint!(mfa_enroll),
            endpoint!(mfa_activate),
            endpoint!(mfa_remove),
        ],
    )),
    needs: &[&DATABASE, &PUBLIC_KEYS, &EPHEMERAL_TABLE, &MFA_NEED],
};

/// `login-mfa`: the second step of a sign-in with TOTP on.
pub static LOGIN_MFA: FunctionSpec = FunctionSpec {
    name: "login-mfa",
    trigger: Trigger::Http(&Http::new(IdentityState::new, &[endpoint!(login_mfa)])),
    needs: &[&DATABASE, &PRIVATE_KEY, &EPHEMERAL_TABLE, &MFA_NEED],
};
