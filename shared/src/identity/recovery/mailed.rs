//! Single-use tokens mailed to an address: password reset and email verification. A token is
//! 256 random bits (the same opaque shape as a refresh token), stored only as its SHA-256, bound
//! to the account and to the address it was sent to, and spent by one conditional UPDATE, so of
//! concurrent uses exactly one finds it unspent. Issuing one voids the older ones of the same
//! purpose. The mail that carries it goes into the outbox in the caller's transaction.

use crate::error::{AppError, AppResult};
use crate::identity::refresh;
use crate::identity::state::IdentityState;
use crate::mail::{self, Mail};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

/// What a token is for. Stored as the Postgres enum `account_token_purpose`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "account_token_purpose", rename_all = "snake_case")]
pub enum Purpose {
    PasswordReset,
    EmailVerification,
}

impl Purpose {
    /// The application page the link opens.
    fn page(self) -> &'static str {
        match self {
            Self::PasswordReset => "/reset-password",
            Self::EmailVerification => "/verify-email",
        }
    }
}

/// One answer for a token that is unknown, malformed, expired, spent or for another purpose.
pub fn invalid_link() -> AppError {
    AppError::BadRequest("the link is invalid, has expired or was already used".to_owned())
}

/// `PUBLIC_BASE_URL`, or a 503 naming it: checked before any work, so that whether an account
/// exists never changes the answer.
pub fn base_url(state: &IdentityState) -> AppResult<&str> {
    state.config().mail.base_url.as_deref().ok_or_else(|| {
        AppError::Unavailable("account mail is not configured (PUBLIC_BASE_URL)".into())
    })
}

/// The account and address a spent token was issued for.
pub struct Spent {
    pub user_id: Uuid,
    pub email: String,
}

/// Issues a token for `user_id` at `email` and puts the mail that carries its link in the
/// outbox, both in the caller's transaction. Older unspent tokens of `purpose` are voided.
pub async fn send(
    conn: &mut PgConnection,
    state: &IdentityState,
    purpose: Purpose,
    user_id: Uuid,
    email: &str,
) -> AppResult<()> {
    let base = base_url(state)?;
    let ttl = match purpose {
        Purpose::PasswordReset => state.config().mail.reset_ttl,
        Purpose::EmailVerification => state.config().mail.verification_ttl,
    };
    void(conn, purpose, user_id).await?;
    let (token, token_hash) = refresh::generate();
    sqlx::query!(
        "INSERT INTO account_tokens (token_hash, purpose, user_id, email, expires_at)
         VALUES ($1, $2, $3, $4, $5)",
        token_hash,
        purpose as Purpose,
        user_id,
        email,
        OffsetDateTime::now_utc() + ttl,
    )
    .execute(&mut *conn)
    .await?;
    // The token is base64url and the base URL has no quote, space or angle bracket (checked
    // when configured), so the link needs no escaping in either body.
    let link = format!("{base}{}?token={token}", purpose.page());
    let within = lifetime(ttl);
    // Linked to an account that signs in some other way: say which, so that the owner of the
    // address sees a stranger's account for what it is before confirming.
    let others = match purpose {
        Purpose::EmailVerification => other_sign_ins(conn, user_id, email).await?,
        Purpose::PasswordReset => Vec::new(),
    };
    let (also_text, also_html) = if others.is_empty() {
        (String::new(), String::new())
    } else {
        (
            format!(
                "This address was added to an account that also signs in with: {}. If you did not add it, do not open the link.\n\n",
                others.join(", ")
            ),
            format!(
                "<p>This address was added to an account that also signs in with: {}. If you did not add it, do not open the link.</p>",
                crate::mail::escape_html(&others.join(", "))
            ),
        )
    };
    let (subject, text, html) = match purpose {
        Purpose::PasswordReset => (
            "Reset your password",
            format!(
                "Someone asked to reset the password of your account. If it was you, open this link within {within} to choose a new one:\n\n{link}\n\nIf it was not you, ignore this mail: your password stays as it is.\n"
            ),
            format!(
                "<p>Someone asked to reset the password of your account. If it was you, <a href=\"{link}\">choose a new password</a> within {within}.</p><p>If it was not you, ignore this mail: your password stays as it is.</p>"
            ),
        ),
        Purpose::EmailVerification => (
            "Confirm your email address",
            format!(
                "{also_text}Open this link within {within} to confirm that this address is yours:\n\n{link}\n"
            ),
            format!(
                "{also_html}<p><a href=\"{link}\">Confirm that this address is yours</a> (the link works for {within}).</p>"
            ),
        ),
    };
    mail::send(
        conn,
        &Mail {
            to: email,
            subject,
            text: &text,
            html: &html,
        },
    )
    .await?;
    Ok(())
}

/// The account's sign-in methods other than the address `email`, as a person reads them.
async fn other_sign_ins(
    conn: &mut PgConnection,
    user_id: Uuid,
    email: &str,
) -> AppResult<Vec<String>> {
    let rows = sqlx::query!(
        r#"SELECT type::text AS "kind!", identifier FROM identities
           WHERE user_id = $1 AND NOT (type = 'email_password' AND lower(identifier) = lower($2))
           ORDER BY created_at"#,
        user_id,
        email,
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| sign_in_method(&format!("{}:{}", row.kind, row.identifier)))
        .collect())
}

/// `type:identifier` in words: `wallet 0x…`, `email a@b.c`, `DID did:…`.
fn sign_in_method(typed: &str) -> String {
    match typed.split_once(':') {
        Some(("blockchain_address", address)) => format!("wallet {address}"),
        Some(("email_password", address)) => format!("email {address}"),
        Some(("did", did)) => format!("DID {did}"),
        _ => typed.to_owned(),
    }
}

/// What a reset of an address nobody had proven took off the account.
#[derive(Debug, Default)]
pub struct Removed {
    /// Each removed identity as `type:identifier` (`blockchain_address:0x…`).
    pub identities: Vec<String>,
    /// Whether a TOTP enrolment made after the address was linked (and its recovery codes) went
    /// too.
    pub second_factor: bool,
}

/// Puts the mail that confirms a password reset in the outbox, in the reset's transaction. It
/// names what the reset removed (an address nobody had proven before: see
/// [`super::password::reset`]) and says that the owner can link it again.
pub async fn confirm_reset(
    conn: &mut PgConnection,
    email: &str,
    removed: &Removed,
) -> AppResult<()> {
    let mut gone: Vec<String> = removed
        .identities
        .iter()
        .map(|i| sign_in_method(i))
        .collect();
    if removed.second_factor {
        gone.push("an authenticator app (two-factor sign-in) and its recovery codes".into());
    }
    let note = if gone.is_empty() {
        String::new()
    } else {
        format!(
            "Nobody had confirmed this address before, so the sign-in methods that were added to the account before now were removed: {}. If they were yours, sign in and link them again.",
            gone.join("; ")
        )
    };
    let text = format!(
        "The password of your account was reset, and every session was signed out.\n\n{note}{}If you did not reset it, reset it again now.\n",
        if note.is_empty() { "" } else { "\n\n" }
    );
    let html = format!(
        "<p>The password of your account was reset, and every session was signed out.</p>{}<p>If you did not reset it, reset it again now.</p>",
        if note.is_empty() {
            String::new()
        } else {
            format!("<p>{}</p>", crate::mail::escape_html(&note))
        }
    );
    mail::send(
        conn,
        &Mail {
            to: email,
            subject: "Your password was reset",
            text: &text,
            html: &html,
        },
    )
    .await?;
    Ok(())
}

/// A link's lifetime in words: whole hours as hours, anything else as minutes.
fn lifetime(ttl: std::time::Duration) -> String {
    let minutes = ttl.as_secs() / 60;
    match minutes {
        60 => "an hour".to_owned(),
        m if m % 60 == 0 => format!("{} hours", m / 60),
        1 => "a minute".to_owned(),
        m => format!("{m} minutes"),
    }
}

/// Voids every unspent token of `purpose` that `user_id` holds.
pub async fn void(conn: &mut PgConnection, purpose: Purpose, user_id: Uuid) -> AppResult<()> {
    sqlx::query!(
        "UPDATE account_tokens SET used_at = now()
         WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL",
        user_id,
        purpose as Purpose,
    )
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether `presented` is a live token of `purpose`, without spending it: lets a rule refuse
/// a bad link before it does expensive work (hashing a new password).
pub async fn check(db: &PgPool, purpose: Purpose, presented: &str) -> AppResult<()> {
    let hash = refresh::parse(presented).ok_or_else(invalid_link)?;
    let live = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM account_tokens WHERE token_hash = $1 AND purpose = $2
                            AND used_at IS NULL AND expires_at > now()) AS "live!""#,
        hash,
        purpose as Purpose,
    )
    .fetch_one(db)
    .await?;
    if live { Ok(()) } else { Err(invalid_link()) }
}

/// Spends `presented` in the caller's transaction. Concurrent spends of one token queue on its
/// row; only the first finds it unspent.
pub async fn spend(conn: &mut PgConnection, purpose: Purpose, presented: &str) -> AppResult<Spent> {
    let hash = refresh::parse(presented).ok_or_else(invalid_link)?;
    sqlx::query_as!(
        Spent,
        "UPDATE account_tokens SET used_at = now()
         WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > now()
         RETURNING user_id, email",
        hash,
        purpose as Purpose,
    )
    .fetch_optional(conn)
    .await?
    .ok_or_else(invalid_link)
}

#[cfg(test)]
mod tests {
    use super::lifetime;
    use std::time::Duration;

    #[test]
    fn sign_in_methods_read_as_words_and_html_is_escaped() {
        assert_eq!(
            super::sign_in_method("blockchain_address:0xAb"),
            "wallet 0xAb"
        );
        assert_eq!(super::sign_in_method("did:did:key:z6M"), "DID did:key:z6M");
        assert_eq!(
            crate::mail::escape_html("<a href=\"x\">&</a>"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&lt;/a&gt;"
        );
    }

    #[test]
    fn lifetimes_read_as_people_say_them() {
        assert_eq!(lifetime(Duration::from_secs(1800)), "30 minutes");
        assert_eq!(lifetime(Duration::from_secs(3600)), "an hour");
        assert_eq!(lifetime(Duration::from_secs(86_400)), "24 hours");
        assert_eq!(lifetime(Duration::from_secs(60)), "a minute");
        assert_eq!(lifetime(Duration::from_secs(90)), "a minute");
    }
}
