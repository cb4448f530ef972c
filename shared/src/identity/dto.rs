//! Request and response bodies, exactly as the contract names them.

use super::model::{Identity, User};
use crate::domain::Role;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterEmailPassword {
    #[schema(schema_with = crate::domain::Email::schema)]
    pub email: String,
    #[schema(schema_with = crate::domain::Password::schema)]
    pub password: String,
    #[serde(default)]
    #[schema(schema_with = crate::domain::DisplayName::schema)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginEmailPassword {
    #[schema(schema_with = crate::domain::Email::schema)]
    pub email: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRole {
    pub role: Role,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Registered {
    pub user: User,
    #[serde(flatten)]
    pub tokens: TokenPair,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Profile {
    pub user: User,
    pub identities: Vec<Identity>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    pub items: Vec<User>,
    /// Pass as `cursor` to get the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(format = Uuid)]
    pub cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NonceRequest {
    /// Optionally binds the nonce to this wallet address (any case).
    #[serde(default)]
    #[schema(schema_with = crate::identity::wallet::siwe::schema::address)]
    pub address: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NonceIssued {
    /// Put this in the SIWE message's `Nonce:` line. Single-use.
    pub nonce: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: time::OffsetDateTime,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBlockchain {
    #[schema(schema_with = crate::identity::wallet::siwe::schema::message)]
    pub message: String,
    #[schema(schema_with = crate::identity::wallet::siwe::schema::signature)]
    pub signature: String,
    #[serde(default)]
    #[schema(schema_with = crate::domain::DisplayName::schema)]
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBlockchain {
    #[schema(schema_with = crate::identity::wallet::siwe::schema::message)]
    pub message: String,
    #[schema(schema_with = crate::identity::wallet::siwe::schema::signature)]
    pub signature: String,
}

/// The new identity and its fresh proof.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LinkIdentity {
    EmailPassword {
        #[schema(schema_with = crate::domain::Email::schema)]
        email: String,
        #[schema(schema_with = crate::domain::Password::schema)]
        password: String,
    },
    BlockchainAddress {
        #[schema(schema_with = crate::identity::wallet::siwe::schema::message)]
        message: String,
        #[schema(schema_with = crate::identity::wallet::siwe::schema::signature)]
        signature: String,
    },
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnlinkIdentity {
    pub identity_id: uuid::Uuid,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Identities {
    pub identities: Vec<Identity>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPassword {
    #[schema(schema_with = crate::domain::Email::schema)]
    pub email: String,
}

/// The answer to a reset request, the same whether or not an account has the address.
#[derive(Debug, Serialize, ToSchema)]
pub struct MailSent {
    /// Always `sent`.
    pub status: &'static str,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPassword {
    /// The `token` of the reset link.
    #[schema(schema_with = crate::identity::refresh::schema)]
    pub token: String,
    #[schema(schema_with = crate::domain::Password::schema)]
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePassword {
    pub current_password: String,
    #[schema(schema_with = crate::domain::Password::schema)]
    pub new_password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmail {
    /// The `token` of the verification link.
    #[schema(schema_with = crate::identity::refresh::schema)]
    pub token: String,
}

/// An empty JSON object (the body of requests that need none).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// A live session: one refresh-token family.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    pub id: uuid::Uuid,
    /// When the session was opened (the sign-in).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: time::OffsetDateTime,
    /// When its refresh token was last rotated (or the sign-in, if never).
    #[serde(with = "time::serde::rfc3339")]
    pub last_used_at: time::OffsetDateTime,
    /// The client's address at the last use; `null` if not recorded.
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// How the session was opened: `pwd` or `siwe`.
    pub method: String,
    /// Whether the access token of this request belongs to it.
    pub current: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Sessions {
    pub items: Vec<Session>,
}

/// One sign-in attempt on the account.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginEvent {
    #[serde(with = "time::serde::rfc3339")]
    pub at: time::OffsetDateTime,
    /// `pwd` or `siwe`.
    pub method: String,
    pub success: bool,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginHistory {
    pub items: Vec<LoginEvent>,
    /// Pass as `cursor` to get the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = "^[0-9]{1,18}$")]
    pub cursor: Option<String>,
    /// Another account's history (ADMIN only); the caller's own by default.
    pub user_id: Option<uuid::Uuid>,
}

/// A first factor passed and TOTP is on: finish with POST /login/mfa.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaRequired {
    /// Always `true`.
    pub mfa_required: bool,
    /// Single use, for 5 minutes, bound to this sign-in.
    pub mfa_token: String,
}

/// What a login answers: the tokens, or the second step it still needs.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum SignedIn {
    Tokens(TokenPair),
    Mfa(MfaRequired),
}

/// The second step of a sign-in: the `mfa_token` with a TOTP code, or with one recovery code.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged, deny_unknown_fields)]
pub enum LoginMfa {
    Code {
        #[schema(schema_with = crate::identity::refresh::schema)]
        mfa_token: String,
        /// The authenticator's current 6-digit code.
        #[schema(pattern = "^[0-9]{6}$")]
        code: String,
    },
    RecoveryCode {
        #[schema(schema_with = crate::identity::refresh::schema)]
        mfa_token: String,
        /// One of the recovery codes shown at activation.
        recovery_code: String,
    },
}

/// A pending TOTP enrolment: add it to an authenticator app, then activate it with a code.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// The secret, base32 (RFC 4648, no padding).
    pub secret: String,
    /// The same as an `otpauth://totp/...` URI (for a QR code).
    pub otpauth_uri: String,
}

/// A TOTP code, to activate or remove the authenticator.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    #[schema(pattern = "^[0-9]{6}$")]
    pub code: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Ten single-use codes, shown this once; each replaces a TOTP code at sign-in.
    pub recovery_codes: Vec<String>,
}
