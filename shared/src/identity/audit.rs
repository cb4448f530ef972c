//! What the identity area writes to the audit log.

/// Identity's audited events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdentityAction {
    Registered,
    AdminCreated,
    LoginSucceeded,
    LoginFailed,
    TokenRefreshed,
    RefreshReuseDetected,
    LoggedOut,
    RoleChanged,
    LockedOut,
    IdentityLinked,
    IdentityUnlinked,
    ProofRejected,
    PasswordResetRequested,
    PasswordReset,
    PasswordChanged,
    EmailVerified,
    SessionRevoked,
    MfaChallenged,
    MfaActivated,
    MfaRemoved,
}

impl crate::audit::Action for IdentityAction {
    fn name(self) -> &'static str {
        match self {
            Self::Registered => "user.registered",
            Self::AdminCreated => "user.admin_created",
            Self::LoginSucceeded => "login.succeeded",
            Self::LoginFailed => "login.failed",
            Self::TokenRefreshed => "token.refreshed",
            Self::RefreshReuseDetected => "token.reuse_detected",
            Self::LoggedOut => "token.logged_out",
            Self::RoleChanged => "user.role_changed",
            Self::LockedOut => "login.locked_out",
            Self::IdentityLinked => "identity.linked",
            Self::IdentityUnlinked => "identity.unlinked",
            Self::ProofRejected => "siwe.rejected",
            Self::PasswordResetRequested => "password.reset_requested",
            Self::PasswordReset => "password.reset",
            Self::PasswordChanged => "password.changed",
            Self::EmailVerified => "email.verified",
            Self::SessionRevoked => "session.revoked",
            Self::MfaChallenged => "login.mfa_required",
            Self::MfaActivated => "mfa.activated",
            Self::MfaRemoved => "mfa.removed",
        }
    }
}
