//! Identity's HTTP handlers and their OpenAPI paths. Thin: extract, call the rule, choose the
//! status. Nothing else.

use super::dto::{
    ChangePassword, Empty, ForgotPassword, HistoryQuery, Identities, LinkIdentity, LoginBlockchain,
    LoginEmailPassword, LoginHistory, MailSent, NonceIssued, NonceRequest, PageQuery, Profile,
    RefreshRequest, RegisterBlockchain, RegisterEmailPassword, Registered, ResetPassword, Sessions,
    SetRole, TokenPair, UnlinkIdentity, UserPage, VerifyEmail,
};
use super::dto::{LoginMfa, RecoveryCodes, SignedIn, TotpCode, TotpEnrolment};
use super::model::{Identity, User};
use super::state::IdentityState;
use super::{history, links, mfa, password, service, session, verification, wallet};
use crate::auth::keys::Jwks;
use crate::error::{AppResult, Problem};
use crate::extract::{AdminOnly, AuthUser, Authorized, ClientInfo, ClientIp, Json, Path, Query};
use crate::platform::Tokens;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

#[utoipa::path(post, path = "/register-email-password", tag = "identity",
    request_body = RegisterEmailPassword,
    responses(
        (status = 201, description = "Account created and signed in", body = Registered),
        (status = 409, description = "The email is already registered", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Well-formed but refused: the password is too common", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate-limited; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn register_email_password(
    State(state): State<IdentityState>,
    client: ClientInfo,
    Json(body): Json<RegisterEmailPassword>,
) -> AppResult<(StatusCode, Json<Registered>)> {
    let registered = service::register_email(&state, &client, body).await?;
    Ok((StatusCode::CREATED, Json(registered)))
}

#[utoipa::path(post, path = "/login-email-password", tag = "identity",
    request_body = LoginEmailPassword,
    responses(
        (status = 200, description = "Signed in (a TokenPair), or, with TOTP on, `{\"mfa_required\":true,\"mfa_token\"}` for POST /login/mfa", body = SignedIn),
        (status = 401, description = "Wrong email or password (one answer for both)", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "REQUIRE_VERIFIED_EMAIL is on and the address is not verified yet (type urn:gantry:problem:email-not-verified; only after a right password)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate-limited, or the account is locked out after failures; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn login_email_password(
    State(state): State<IdentityState>,
    client: ClientInfo,
    Json(body): Json<LoginEmailPassword>,
) -> AppResult<Json<SignedIn>> {
    Ok(Json(service::login_email(&state, &client, body).await?))
}

#[utoipa::path(get, path = "/profile", tag = "identity", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller and every identity they hold", body = Profile),
    ))]
pub async fn profile(
    State(state): State<IdentityState>,
    caller: AuthUser,
) -> AppResult<Json<Profile>> {
    Ok(Json(service::profile(&state, &caller).await?))
}

#[utoipa::path(post, path = "/token/refresh", tag = "tokens",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new pair; the presented refresh token is spent", body = TokenPair),
        (status = 401, description = "Invalid, expired, revoked or reused token (reuse revokes the family)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn refresh(
    State(state): State<IdentityState>,
    client: ClientInfo,
    Json(body): Json<RefreshRequest>,
) -> AppResult<Json<TokenPair>> {
    Ok(Json(
        session::rotate(&state, &client, &body.refresh_token).await?,
    ))
}

#[utoipa::path(post, path = "/logout", tag = "tokens",
    request_body = RefreshRequest,
    responses((status = 204, description = "The token's family is revoked (also answered for unknown tokens)")))]
pub async fn logout(
    State(state): State<IdentityState>,
    Json(body): Json<RefreshRequest>,
) -> AppResult<StatusCode> {
    session::logout(&state, &body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "tokens",
    responses((status = 200, description = "Public keys that verify access tokens", body = Jwks)))]
pub async fn jwks(State(tokens): State<Tokens>) -> Response {
    let mut response = Json(tokens.verifier().jwks().clone()).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

#[utoipa::path(get, path = "/users", tag = "users", security(("bearer" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of users", body = UserPage),
        (status = 403, description = "Not an ADMIN", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn list_users(
    State(state): State<IdentityState>,
    _admin: Authorized<AdminOnly>,
    Query(query): Query<PageQuery>,
) -> AppResult<Json<UserPage>> {
    Ok(Json(service::list_users(&state, query).await?))
}

#[utoipa::path(put, path = "/users/{id}/role", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    request_body = SetRole,
    responses(
        (status = 200, description = "The updated user", body = User),
        (status = 403, description = "Not an ADMIN", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No such user", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "Would leave no ADMIN", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn set_role(
    State(state): State<IdentityState>,
    Authorized(admin, _): Authorized<AdminOnly>,
    Path(id): Path<Uuid>,
    Json(body): Json<SetRole>,
) -> AppResult<Json<User>> {
    Ok(Json(
        service::change_role(&state, &admin, id, body.role).await?,
    ))
}

#[utoipa::path(post, path = "/auth/nonce", tag = "identity",
    request_body = NonceRequest,
    responses(
        (status = 201, description = "A single-use nonce for a SIWE message", body = NonceIssued),
        (status = 400, description = "Invalid address", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate-limited; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn auth_nonce(
    State(state): State<IdentityState>,
    ip: ClientIp,
    Json(body): Json<NonceRequest>,
) -> AppResult<(StatusCode, Json<NonceIssued>)> {
    Ok((
        StatusCode::CREATED,
        Json(wallet::issue_nonce(&state, &ip, body).await?),
    ))
}

#[utoipa::path(post, path = "/register-blockchain", tag = "identity",
    request_body = RegisterBlockchain,
    responses(
        (status = 201, description = "Account created with a wallet identity, and signed in", body = Registered),
        (status = 400, description = "Not an EIP-4361 message, or bad input", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A check, the nonce or the signature failed (one answer for all)", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The wallet is already registered", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The message has the EIP-4361 preamble but breaks the rest of its grammar", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate-limited; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn register_blockchain(
    State(state): State<IdentityState>,
    client: ClientInfo,
    Json(body): Json<RegisterBlockchain>,
) -> AppResult<(StatusCode, Json<Registered>)> {
    Ok((
        StatusCode::CREATED,
        Json(wallet::register(&state, &client, body).await?),
    ))
}

#[utoipa::path(post, path = "/login-blockchain", tag = "identity",
    request_body = LoginBlockchain,
    responses(
        (status = 200, description = "Signed in (a TokenPair), or, with TOTP on, `{\"mfa_required\":true,\"mfa_token\"}` for POST /login/mfa", body = SignedIn),
        (status = 400, description = "Not an EIP-4361 message, or bad input", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "A check, the nonce, the signature or the account failed (one answer for all)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The message has the EIP-4361 preamble but breaks the rest of its grammar", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate-limited or locked out; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn login_blockchain(
    State(state): State<IdentityState>,
    client: ClientInfo,
    Json(body): Json<LoginBlockchain>,
) -> AppResult<Json<SignedIn>> {
    Ok(Json(wallet::login(&state, &client, body).await?))
}

#[utoipa::path(post, path = "/link-identity", tag = "identity", security(("bearer" = [])),
    request_body = LinkIdentity,
    responses(
        (status = 201, description = "The identity, now linked", body = Identity),
        (status = 401, description = "No valid access token, or the proof failed", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The identity belongs to an account already", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Well-formed but refused: a common password, or a SIWE message that breaks the EIP-4361 grammar", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate-limited; see Retry-After", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn link_identity(
    State(state): State<IdentityState>,
    ip: ClientIp,
    caller: AuthUser,
    Json(body): Json<LinkIdentity>,
) -> AppResult<(StatusCode, Json<Identity>)> {
    Ok((
        StatusCode::CREATED,
        Json(links::link(&state, &ip, &caller, body).await?),
    ))
}

#[utoipa::path(post, path = "/unlink-identity", tag = "identity", security(("bearer" = [])),
    request_body = UnlinkIdentity,
    responses(
        (status = 200, description = "The identities that remain", body = Identities),
        (status = 404, description = "Not one of the caller's identities", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "It is the last identity", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn unlink_identity(
    State(state): State<IdentityState>,
    caller: AuthUser,
    Json(body): Json<UnlinkIdentity>,
) -> AppResult<Json<Identities>> {
    Ok(Json(
        links::unlink(&state, &caller, body.identity_id).await?,
    ))
}

const INVALID_LINK: &str =
    "The link's token is unknown, malformed, expired or used (one answer for all)";

#[utoipa::path(post, path = "/password/forgot", tag = "account",
    request_body = ForgotPassword,
    responses(
        (status = 202, description = "The same answer whether or not an account has the address; if one has, a reset link is mailed to it", body = MailSent),
        (status = 400, description = "Not an email address", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate-limited (per address and per client); see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Account mail is not configured (PUBLIC_BASE_URL)", body = Problem, content_type = "application/problem+json"),
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
        (status = 400, description = INVALID_LINK, body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The new password is too common", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate-limited; see Retry-After", body = Problem, content_type = "application/problem+json"),
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
        (status = 409, description = "The account has no password (a wallet-only account), or it changed meanwhile", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The current password is wrong, or the new one too common", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Locked out after wrong passwords; see Retry-After", body = Problem, content_type = "application/problem+json"),
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
        (status = 400, description = INVALID_LINK, body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate-limited; see Retry-After", body = Problem, content_type = "application/problem+json"),
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
        (status = 409, description = "The account has no email address, or it is verified already", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Rate-limited; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Account mail is not configured (PUBLIC_BASE_URL)", body = Problem, content_type = "application/problem+json"),
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

#[utoipa::path(get, path = "/sessions", tag = "account", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's live sessions, most recently used first", body = Sessions),
    ))]
pub async fn sessions(
    State(state): State<IdentityState>,
    caller: AuthUser,
) -> AppResult<Json<Sessions>> {
    Ok(Json(session::list(&state, &caller).await?))
}

#[utoipa::path(delete, path = "/sessions/{id}", tag = "account", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "The session is ended: its refresh token no longer works"),
        (status = 404, description = "Not one of the caller's live sessions", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn end_session(
    State(state): State<IdentityState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<StatusCode> {
    session::end(&state, &caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/profile/login-history", tag = "account", security(("bearer" = [])),
    params(HistoryQuery),
    responses(
        (status = 200, description = "Sign-in attempts, newest first", body = LoginHistory),
        (status = 400, description = "A bad limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`user_id` names another account and the caller is not an ADMIN", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "An ADMIN named an account that does not exist", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn login_history(
    State(state): State<IdentityState>,
    caller: AuthUser,
    Query(query): Query<HistoryQuery>,
) -> AppResult<Json<LoginHistory>> {
    Ok(Json(history::page(&state, &caller, query).await?))
}

#[utoipa::path(post, path = "/login/mfa", tag = "account",
    request_body = LoginMfa,
    responses(
        (status = 200, description = "Signed in; `amr` lists both methods, e.g. [\"pwd\",\"otp\"]", body = TokenPair),
        (status = 400, description = "Not one of the two shapes (a code, or a recovery code)", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "The mfa_token is invalid, expired or used, or the code is wrong or was already used", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Locked out after wrong codes; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "TOTP MFA is not configured (MFA_ENCRYPTION_KEY)", body = Problem, content_type = "application/problem+json"),
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
        (status = 409, description = "TOTP is already active", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "TOTP MFA is not configured (MFA_ENCRYPTION_KEY)", body = Problem, content_type = "application/problem+json"),
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
        (status = 409, description = "No pending enrolment", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The code is wrong", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Locked out after wrong codes; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "TOTP MFA is not configured (MFA_ENCRYPTION_KEY)", body = Problem, content_type = "application/problem+json"),
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
        (status = 404, description = "TOTP is not active", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The code is wrong or was already used", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "Locked out after wrong codes; see Retry-After", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "TOTP MFA is not configured (MFA_ENCRYPTION_KEY)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn mfa_remove(
    State(state): State<IdentityState>,
    caller: AuthUser,
    Json(body): Json<TotpCode>,
) -> AppResult<StatusCode> {
    mfa::remove(&state, &caller, body).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Identity's tags in the OpenAPI document; its paths come from its functions' endpoints.
#[derive(utoipa::OpenApi)]
#[openapi(
    tags(
        (name = "identity", description = "Accounts and sign-in"),
        (name = "tokens", description = "Sessions and signing keys"),
        (name = "users", description = "User administration (ADMIN)"),
        (name = "account", description = "Password recovery, email verification, sessions and login history"),
    )
)]
pub struct IdentityApi;

/// How identity's responses feed its other operations (OpenAPI links): a session's tokens feed
/// /profile, /token/refresh and /logout; ids feed the operations that take them.
pub fn add_links(doc: &mut utoipa::openapi::OpenApi) {
    closed_variants(doc, "LinkIdentity");
    closed_variants(doc, "LoginMfa");
    use crate::openapi::add_link;
    use serde_json::json;
    use utoipa::openapi::link::LinkBuilder;
    let profile = || {
        LinkBuilder::new()
            .operation_id("profile")
            .parameter(
                "header.Authorization",
                "Bearer {$response.body#/access_token}",
            )
            .description("The access token reads the caller's profile")
            .build()
    };
    let with_refresh = |operation: &str| {
        LinkBuilder::new()
            .operation_id(operation)
            .request_body(Some(
                json!({"refresh_token": "$response.body#/refresh_token"}),
            ))
            .description("The refresh token rotates the session, or ends it")
            .build()
    };
    let sessions = [
        ("post", "/register-email-password", "201"),
        ("post", "/register-blockchain", "201"),
        ("post", "/login-email-password", "200"),
        ("post", "/login-blockchain", "200"),
        ("post", "/token/refresh", "200"),
    ];
    for (method, path, status) in sessions {
        add_link(doc, method, path, status, "profile", profile());
        add_link(
            doc,
            method,
            path,
            status,
            "refresh",
            with_refresh("refresh"),
        );
        add_link(doc, method, path, status, "logout", with_refresh("logout"));
    }
    for (path, pointer) in [
        ("/register-email-password", "/user/id"),
        ("/register-blockchain", "/user/id"),
    ] {
        let link = LinkBuilder::new()
            .operation_id("set_role")
            .parameter("path.id", format!("$response.body#{pointer}"))
            .description("An ADMIN sets the new user's role")
            .build();
        add_link(doc, "post", path, "201", "set_role", link);
    }
    let first_user = LinkBuilder::new()
        .operation_id("set_role")
        .parameter("path.id", "$response.body#/items/0/id")
        .description("An ADMIN sets a listed user's role")
        .build();
    add_link(doc, "get", "/users", "200", "set_role", first_user);
    let unlink = |pointer: &str| {
        LinkBuilder::new()
            .operation_id("unlink_identity")
            .request_body(Some(
                json!({"identity_id": format!("$response.body#{pointer}")}),
            ))
            .description("The identity can be unlinked again")
            .build()
    };
    add_link(
        doc,
        "post",
        "/link-identity",
        "201",
        "unlink",
        unlink("/id"),
    );
    add_link(
        doc,
        "get",
        "/profile",
        "200",
        "unlink",
        unlink("/identities/0/id"),
    );
}

/// utoipa marks a `deny_unknown_fields` struct `additionalProperties: false` but not the variants
/// of a tagged enum; the code refuses unknown fields there too, so the document says so.
fn closed_variants(doc: &mut utoipa::openapi::OpenApi, name: &str) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{AdditionalProperties, Schema};
    let found = doc
        .components
        .as_mut()
        .and_then(|components| components.schemas.get_mut(name));
    if let Some(RefOr::T(Schema::OneOf(one_of))) = found {
        for item in &mut one_of.items {
            if let RefOr::T(Schema::Object(object)) = item {
                object.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
}
