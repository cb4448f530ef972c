//! Session issuance and refresh-token rotation, shared by every login method.

pub mod api;
pub mod history;

use crate::audit::{self, Entry};
use crate::auth::jwt::Subject;
use crate::auth::{Amr, Methods, TokenSigner};
use crate::domain::Role;
use crate::error::{AppError, AppResult};
use crate::extract::{AuthUser, ClientInfo};
use crate::identity::audit::IdentityAction as Action;
use crate::identity::dto::{Session, Sessions, TokenPair};
use crate::identity::refresh;
use crate::identity::state::IdentityState;
use serde_json::json;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

const INVALID_REFRESH: AppError =
    AppError::Unauthorized("the refresh token is invalid, expired or revoked");

/// Where a new refresh token sits in its family.
struct Link {
    family_id: Uuid,
    parent_id: Option<Uuid>,
    /// The family's absolute expiry: rotation never extends it.
    expires_at: OffsetDateTime,
    /// When the family was signed in: rotation copies it (a refresh is not a sign-in).
    auth_time: OffsetDateTime,
}

/// What an audit row of a sign-in says: the method, the identity when known, where the client
/// was, and `extra`. The login history reads these rows.
pub(crate) fn sign_in_details(
    amr: Methods,
    identity_id: Option<Uuid>,
    client: &ClientInfo,
    extra: serde_json::Value,
) -> serde_json::Value {
    let mut details = json!({
        "method": amr.label(),
        "ip": client.ip.0,
        "user_agent": client.user_agent,
    });
    if let Some(details) = details.as_object_mut() {
        if let Some(identity_id) = identity_id {
            details.insert("identity_id".into(), json!(identity_id));
        }
        if let serde_json::Value::Object(extra) = extra {
            details.extend(extra);
        }
    }
    details
}

/// Signs `subject` in: opens a session and records how (`action`, the method, the identity and
/// `extra` details) in the audit log, both inside the caller's transaction.
#[tracing::instrument(name = "identity.sign_in", skip_all)]
pub async fn sign_in(
    conn: &mut PgConnection,
    state: &IdentityState,
    client: &ClientInfo,
    subject: Subject,
    action: Action,
    extra: serde_json::Value,
) -> AppResult<TokenPair> {
    let entry = Entry {
        action,
        actor_id: Some(subject.user_id),
        subject_id: Some(subject.user_id),
        details: sign_in_details(subject.amr, Some(subject.identity_id), client, extra),
    };
    let minted = Minted::fresh(state, subject.amr, client);
    issue(conn, state.signer()?, minted, subject, entry).await
}

/// Signs a just-registered `user` in through `identity_id`: the session and the `Registered` audit
/// row (with `extra`), in the caller's transaction.
pub async fn sign_in_new(
    conn: &mut PgConnection,
    state: &IdentityState,
    client: &ClientInfo,
    user: &crate::identity::model::User,
    (identity_id, amr): (Uuid, Amr),
    extra: serde_json::Value,
) -> AppResult<TokenPair> {
    let subject = Subject {
        user_id: user.id,
        role: user.role,
        identity_id,
        amr: amr.into(),
        email_verified: user.email_verified,
    };
    sign_in(conn, state, client, subject, Action::Registered, extra).await
}

impl Link {
    /// A new family, expiring after the refresh lifetime.
    fn fresh(state: &IdentityState) -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            family_id: Uuid::now_v7(),
            parent_id: None,
            expires_at: now + state.config().refresh_ttl,
            auth_time: now,
        }
    }
}

/// A refresh token minted for a new session, before its row is written: what the
/// `refresh_tokens` row holds, and the token handed out once the row commits.
pub(crate) struct Minted {
    pub id: Uuid,
    pub token_hash: Vec<u8>,
    pub family_id: Uuid,
    pub parent_id: Option<Uuid>,
    pub amr: Vec<String>,
    pub expires_at: OffsetDateTime,
    /// When the session was signed in (the access token's `auth_time`).
    pub auth_time: OffsetDateTime,
    /// Where the client was when the token was issued.
    pub ip: String,
    pub user_agent: Option<String>,
    token: String,
}

impl Minted {
    fn new(link: Link, amr: Methods, client: &ClientInfo) -> Self {
        let (token, token_hash) = refresh::generate();
        Self {
            id: Uuid::now_v7(),
            token_hash,
            family_id: link.family_id,
            parent_id: link.parent_id,
            amr: amr.names(),
            expires_at: link.expires_at,
            auth_time: link.auth_time,
            ip: client.ip.0.clone(),
            user_agent: client.user_agent.clone(),
            token,
        }
    }

    /// A token of a new family, for a sign-in by `amr` from `client`.
    pub(crate) fn fresh(state: &IdentityState, amr: Methods, client: &ClientInfo) -> Self {
        Self::new(Link::fresh(state), amr, client)
    }

    /// The pair handed out once the row has been written for `subject`.
    pub(crate) fn pair(self, signer: &TokenSigner, subject: Subject) -> AppResult<TokenPair> {
        Ok(TokenPair {
            access_token: signer.issue_since(
                subject,
                self.family_id,
                self.auth_time.unix_timestamp(),
            )?,
            refresh_token: self.token,
            token_type: "Bearer",
            expires_in: signer.ttl().as_secs(),
        })
    }
}

/// Stores a new refresh token and the audit row that records why, in one statement (one round
/// trip on the sign-in path), inside the caller's transaction.
async fn issue(
    conn: &mut PgConnection,
    signer: &TokenSigner,
    minted: Minted,
    subject: Subject,
    entry: Entry<Action>,
) -> AppResult<TokenPair> {
    sqlx::query!(
        "WITH token AS (
             INSERT INTO refresh_tokens (id, token_hash, family_id, parent_id, user_id,
                                         identity_id, amr, expires_at, ip, user_agent,
                                         auth_time)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $13, $14, $15))
         SELECT audit_record($9, $10, $11, $12)",
        minted.id,
        minted.token_hash,
        minted.family_id,
        minted.parent_id,
        subject.user_id,
        subject.identity_id,
        &minted.amr,
        minted.expires_at,
        audit::Action::name(entry.action),
        entry.actor_id,
        entry.subject_id,
        entry.details,
        minted.ip,
        minted.user_agent,
        minted.auth_time,
    )
    .fetch_one(&mut *conn)
    .await?;
    minted.pair(signer, subject)
}

/// Exchanges a refresh token for a new pair. The old token is spent; spending it again
/// revokes its whole family.
#[tracing::instrument(name = "identity.rotate", skip_all)]
pub async fn rotate(
    state: &IdentityState,
    client: &ClientInfo,
    presented: &str,
) -> AppResult<TokenPair> {
    let signer = state.signer()?;
    let hash = refresh::parse(presented).ok_or(INVALID_REFRESH)?;
    let mut tx = state.db()?.begin().await?;
    // The row lock makes concurrent presentations of one token queue here; only the first
    // finds `rotated_at IS NULL`.
    let spent = sqlx::query!(
        r#"UPDATE refresh_tokens t SET rotated_at = now()
           FROM users u
           WHERE t.token_hash = $1 AND u.id = t.user_id
             AND t.rotated_at IS NULL AND t.revoked_at IS NULL AND t.expires_at > now()
           RETURNING t.id, t.family_id, t.user_id, t.identity_id, t.amr, t.expires_at,
                     t.auth_time, u.role AS "role: Role", u.email_verified"#,
        hash,
    )
    .fetch_optional(&mut *tx)
    .await?;

    if let Some(old) = spent {
        let amr = Methods::parse(&old.amr);
        let (Some(identity_id), Some(amr)) = (old.identity_id, amr) else {
            return Err(INVALID_REFRESH);
        };
        let subject = Subject {
            user_id: old.user_id,
            role: old.role,
            identity_id,
            amr,
            email_verified: old.email_verified,
        };
        let link = Link {
            family_id: old.family_id,
            parent_id: Some(old.id),
            expires_at: old.expires_at,
            auth_time: old.auth_time,
        };
        let entry = Entry {
            action: Action::TokenRefreshed,
            actor_id: Some(old.user_id),
            subject_id: Some(old.user_id),
            details: json!({ "family_id": old.family_id }),
        };
        let pair = issue(
            &mut tx,
            signer,
            Minted::new(link, amr, client),
            subject,
            entry,
        )
        .await?;
        tx.commit().await?;
        return Ok(pair);
    }

    let known = sqlx::query!(
        "SELECT family_id, user_id, rotated_at FROM refresh_tokens WHERE token_hash = $1",
        hash,
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(token) = known.filter(|t| t.rotated_at.is_some()) {
        let revoked = revoke_family(&mut tx, token.family_id).await?;
        audit::record(
            &mut tx,
            Entry {
                action: Action::RefreshReuseDetected,
                actor_id: None,
                subject_id: Some(token.user_id),
                details: json!({ "family_id": token.family_id, "tokens_revoked": revoked }),
            },
        )
        .await?;
        tx.commit().await?;
        tracing::warn!(family_id = %token.family_id, "refresh token reuse: family revoked");
    }
    Err(INVALID_REFRESH)
}

/// Revokes the family of the presented token. Unknown or malformed tokens are a no-op, as in
/// RFC 7009: the caller learns nothing about which tokens exist.
#[tracing::instrument(name = "identity.logout", skip_all)]
pub async fn logout(state: &IdentityState, presented: &str) -> AppResult<()> {
    let Some(hash) = refresh::parse(presented) else {
        return Ok(());
    };
    let mut tx = state.db()?.begin().await?;
    let found = sqlx::query!(
        "SELECT family_id, user_id FROM refresh_tokens WHERE token_hash = $1",
        hash
    )
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(token) = found {
        let revoked = revoke_family(&mut tx, token.family_id).await?;
        audit::record(
            &mut tx,
            Entry {
                action: Action::LoggedOut,
                actor_id: Some(token.user_id),
                subject_id: Some(token.user_id),
                details: json!({ "family_id": token.family_id, "tokens_revoked": revoked }),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn revoke_family(conn: &mut PgConnection, family_id: Uuid) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE refresh_tokens SET revoked_at = now() WHERE family_id = $1 AND revoked_at IS NULL",
        family_id
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// Revokes every session of `user_id` except `keep` (the caller's, on a password change).
pub(crate) async fn revoke_all(
    conn: &mut PgConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
) -> Result<u64, sqlx::Error> {
    let done = sqlx::query!(
        "UPDATE refresh_tokens SET revoked_at = now()
         WHERE user_id = $1 AND revoked_at IS NULL AND family_id IS DISTINCT FROM $2",
        user_id,
        keep,
    )
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The caller's live sessions, most recently used first. A session is a refresh-token family
/// whose newest token is neither rotated, revoked nor expired.
#[tracing::instrument(name = "identity.sessions", skip_all)]
pub async fn list(state: &IdentityState, caller: &AuthUser) -> AppResult<Sessions> {
    let rows = sqlx::query!(
        r#"SELECT t.family_id, t.issued_at, t.ip, t.user_agent, t.amr,
                  (SELECT min(f.issued_at) FROM refresh_tokens f
                   WHERE f.family_id = t.family_id) AS "created_at!"
           FROM refresh_tokens t
           WHERE t.user_id = $1 AND t.rotated_at IS NULL AND t.revoked_at IS NULL
             AND t.expires_at > now()
           ORDER BY t.issued_at DESC, t.id"#,
        caller.user_id,
    )
    .fetch_all(state.db()?)
    .await?;
    let items = rows
        .into_iter()
        .map(|row| Session {
            id: row.family_id,
            created_at: row.created_at,
            last_used_at: row.issued_at,
            ip: row.ip,
            user_agent: row.user_agent,
            method: row.amr.join("+"),
            current: row.family_id == caller.session_id,
        })
        .collect();
    Ok(Sessions { items })
}

/// Ends one of the caller's sessions (its whole family). Another user's, an ended one or an
/// unknown id are the same 404.
#[tracing::instrument(name = "identity.end_session", skip_all)]
pub async fn end(state: &IdentityState, caller: &AuthUser, id: Uuid) -> AppResult<()> {
    let mut tx = state.db()?.begin().await?;
    let live = sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE family_id = $1 AND user_id = $2
                            AND rotated_at IS NULL AND revoked_at IS NULL
                            AND expires_at > now()) AS "live!""#,
        id,
        caller.user_id,
    )
    .fetch_one(&mut *tx)
    .await?;
    if !live {
        return Err(AppError::NotFound);
    }
    let revoked = revoke_family(&mut tx, id).await?;
    audit::record(
        &mut tx,
        Entry {
            action: Action::SessionRevoked,
            actor_id: Some(caller.user_id),
            subject_id: Some(caller.user_id),
            details: json!({ "family_id": id, "tokens_revoked": revoked }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
