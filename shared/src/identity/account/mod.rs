//! Account rules: registration, password login, profiles and roles.

pub mod api;
pub mod links;

use crate::audit::{self, Entry};
use crate::auth::Amr;
use crate::auth::jwt::Subject;
use crate::domain::{DisplayName, Email, Password, Role};
use crate::error::{AppError, AppResult, FieldError};
use crate::extract::{AuthUser, ClientInfo};
use crate::identity::abuse::{self, Endpoint};
use crate::identity::audit::IdentityAction as Action;
use crate::identity::dto::{
    LoginEmailPassword, PageQuery, Profile, RegisterEmailPassword, Registered, SignedIn, UserPage,
};
use crate::identity::error::{self, IdentityError};
use crate::identity::mfa::challenge as mfa_challenge;
use crate::identity::model::{Identity, IdentityType, User};
use crate::identity::state::IdentityState;
use crate::identity::{recovery::verification, sessions as session};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

const BAD_CREDENTIALS: AppError = AppError::Unauthorized("invalid email or password");

/// Validated registration input.
pub struct NewAccount {
    pub email: Email,
    pub password: Password,
    pub name: DisplayName,
}

impl NewAccount {
    /// Checks every field and reports all problems at once.
    pub fn parse(email: &str, password: String, name: Option<&str>) -> AppResult<Self> {
        let mut errors: Vec<FieldError> = Vec::new();
        let email = Email::parse(email).map_err(|e| errors.push(e)).ok();
        let password = Password::parse(password).map_err(|e| errors.push(e)).ok();
        let name = match (name, &email) {
            (Some(raw), _) => DisplayName::parse(raw).map_err(|e| errors.push(e)).ok(),
            (None, Some(email)) => DisplayName::parse(email.local_part())
                .map_err(|e| errors.push(e))
                .ok(),
            (None, None) => None,
        };
        match (email, password, name) {
            (Some(email), Some(password), Some(name)) if errors.is_empty() => Ok(Self {
                email,
                password,
                name,
            }),
            _ => Err(AppError::Validation(errors)),
        }
    }
}

/// Inserts a user and its email/password identity. Returns the user and the identity id.
pub(crate) async fn insert_account(
    conn: &mut PgConnection,
    account: &NewAccount,
    credential: &str,
    role: Role,
) -> AppResult<(User, Uuid)> {
    let user = sqlx::query_as!(
        User,
        r#"INSERT INTO users (id, name, email, role) VALUES ($1, $2, $3, $4)
           RETURNING id, name, email, role AS "role: Role", email_verified, created_at"#,
        Uuid::now_v7(),
        account.name.as_str(),
        account.email.as_str(),
        role as Role,
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(error::db)?;
    let identity_id = sqlx::query_scalar!(
        "INSERT INTO identities (id, user_id, type, identifier, credential, is_primary_login)
         VALUES ($1, $2, 'email_password', $3, $4, true) RETURNING id",
        Uuid::now_v7(),
        user.id,
        account.email.as_str(),
        credential,
    )
    .fetch_one(&mut *conn)
    .await
    .map_err(error::db)?;
    Ok((user, identity_id))
}

#[tracing::instrument(name = "identity.register_email", skip_all)]
pub async fn register_email(
    state: &IdentityState,
    client: &ClientInfo,
    input: RegisterEmailPassword,
) -> AppResult<Registered> {
    abuse::throttle(
        state,
        &client.ip,
        Endpoint::Register,
        Some(input.email.trim()),
    )
    .await?;
    let account = NewAccount::parse(&input.email, input.password, input.name.as_deref())?;
    state.signer()?; // 503 before any work when this function cannot issue tokens
    let db = state.db()?;
    let credential = state.hasher().hash(&account.password).await?;
    let mut tx = db.begin().await?;
    let (user, identity_id) = insert_account(&mut tx, &account, &credential, Role::Client).await?;
    let tokens = session::sign_in_new(
        &mut tx,
        state,
        client,
        &user,
        (identity_id, Amr::Pwd),
        json!({}),
    )
    .await?;
    verification::on_new_address(&mut tx, state, user.id, account.email.as_str()).await?;
    tx.commit().await?;
    Ok(Registered { user, tokens })
}

/// Password login. An unknown email and a wrong password take the same path: one lookup, one
/// Argon2id verification (against a dummy hash when there is no account), one audit row, and
/// the same 401. With `REQUIRE_VERIFIED_EMAIL`, a right password on an unverified address gets
/// its own 403 (it is no secret to whoever knows the password).
#[tracing::instrument(name = "identity.login_email", skip_all)]
pub async fn login_email(
    state: &IdentityState,
    client: &ClientInfo,
    input: LoginEmailPassword,
) -> AppResult<SignedIn> {
    let email = Email::parse(&input.email).map_err(|e| AppError::Validation(vec![e]))?;
    abuse::throttle(state, &client.ip, Endpoint::Login, Some(email.as_str())).await?;
    abuse::ensure_unlocked(state, email.as_str()).await?;
    state.signer()?; // 503 before any work when this function cannot issue tokens
    let db = state.db()?;
    let found = sqlx::query!(
        r#"SELECT i.id, i.user_id, i.credential, u.role AS "role: Role", u.email_verified,
                  EXISTS (SELECT 1 FROM mfa_totp m
                          WHERE m.user_id = u.id AND m.activated_at IS NOT NULL) AS "mfa!"
           FROM identities i JOIN users u ON u.id = i.user_id
           WHERE i.type = 'email_password' AND lower(i.identifier) = lower($1)"#,
        email.as_str(),
    )
    .fetch_optional(db)
    .await?;
    let stored = found.as_ref().and_then(|row| row.credential.clone());
    let (verified, upgraded) = state
        .hasher()
        .verify_and_upgrade(&input.password, stored.clone())
        .await?;

    let account = found.as_ref().map(|row| row.user_id);
    let mut tx = db.begin().await?;
    let outcome = match found.filter(|_| verified) {
        Some(row) if state.config().require_verified_email && !row.email_verified => {
            audit::record(
                &mut tx,
                Entry {
                    action: Action::LoginFailed,
                    actor_id: None,
                    subject_id: Some(row.user_id),
                    details: session::sign_in_details(
                        Amr::Pwd.into(),
                        Some(row.id),
                        client,
                        json!({ "reason": "email_not_verified" }),
                    ),
                },
            )
            .await?;
            Err(verification::NOT_VERIFIED)
        }
        Some(row) if row.mfa => {
            mfa_challenge(&mut tx, state, (row.user_id, row.id), Amr::Pwd, json!({}))
                .await
                .map(SignedIn::Mfa)
        }
        Some(row) => {
            if let Some(upgraded) = upgraded {
                // Only over the hash just checked: a password changed meanwhile stays changed.
                sqlx::query!(
                    "UPDATE identities SET credential = $2 WHERE id = $1 AND credential = $3",
                    row.id,
                    upgraded,
                    stored,
                )
                .execute(&mut *tx)
                .await?;
            }
            let subject = Subject {
                user_id: row.user_id,
                role: row.role,
                identity_id: row.id,
                amr: Amr::Pwd.into(),
                email_verified: row.email_verified,
            };
            let tokens = session::sign_in(
                &mut tx,
                state,
                client,
                subject,
                Action::LoginSucceeded,
                json!({}),
            )
            .await?;
            Ok(SignedIn::Tokens(tokens))
        }
        None => {
            audit::record(
                &mut tx,
                Entry {
                    action: Action::LoginFailed,
                    actor_id: None,
                    // The account's own history shows the failure; the caller learns nothing.
                    subject_id: account,
                    details: session::sign_in_details(
                        Amr::Pwd.into(),
                        None,
                        client,
                        json!({ "identifier": email.as_str() }),
                    ),
                },
            )
            .await?;
            Err(BAD_CREDENTIALS)
        }
    };
    tx.commit().await?;
    // The lockout bookkeeping runs after the commit: it uses its own connection, and must not
    // need a second one while the transaction holds the first.
    match &outcome {
        Ok(_) => abuse::clear_failures(state, email.as_str()).await?,
        Err(AppError::Unauthorized(_)) => abuse::record_failure(state, email.as_str()).await?,
        Err(_) => {}
    }
    outcome
}

#[tracing::instrument(name = "identity.profile", skip_all)]
pub async fn profile(state: &IdentityState, caller: &AuthUser) -> AppResult<Profile> {
    // One round trip: one row per identity (oldest first), the account's columns on each; an
    // account without identities is one row with the identity's columns NULL. Plain rows, not
    // one aggregated row: six ordered `array_agg`s sort six times and cost the server about 40%
    // more per call (pgbench, measured).
    let rows = sqlx::query!(
        r#"SELECT u.id, u.name, u.email, u.role AS "role: Role", u.email_verified, u.created_at,
                  i.id AS "identity_id?", i.type AS "kind?: IdentityType",
                  i.identifier AS "identifier?", i.is_primary_login AS "primary?",
                  i.created_at AS "since?", identity_did(i.type, i.chain_id, i.identifier) AS did
           FROM users u LEFT JOIN identities i ON i.user_id = u.id
           WHERE u.id = $1
           ORDER BY i.created_at, i.id"#,
        caller.user_id
    )
    .fetch_all(state.db()?)
    .await?;
    let mut identities = Vec::with_capacity(rows.len());
    let mut user = None;
    for row in rows {
        if let (Some(id), Some(kind), Some(identifier), Some(primary), Some(created_at)) = (
            row.identity_id,
            row.kind,
            row.identifier,
            row.primary,
            row.since,
        ) {
            identities.push(Identity {
                id,
                kind,
                identifier,
                is_primary_login: primary,
                created_at,
                did: row.did,
            });
        }
        if user.is_none() {
            user = Some(User {
                id: row.id,
                name: row.name,
                email: row.email,
                role: row.role,
                email_verified: row.email_verified,
                created_at: row.created_at,
            });
        }
    }
    let user = user.ok_or(AppError::Unauthorized("the account no longer exists"))?;
    Ok(Profile { user, identities })
}

/// Every identity of a user, oldest first, never with a credential.
pub(crate) async fn identities_of(
    conn: &mut PgConnection,
    user_id: Uuid,
) -> AppResult<Vec<Identity>> {
    Ok(sqlx::query_as!(
        Identity,
        r#"SELECT id, type AS "kind: _", identifier, is_primary_login, created_at,
                  identity_did(type, chain_id, identifier) AS did
           FROM identities WHERE user_id = $1 ORDER BY created_at, id"#,
        user_id
    )
    .fetch_all(conn)
    .await?)
}

/// Keyset pagination over user ids (UUIDv7, so creation order).
#[tracing::instrument(name = "identity.list_users", skip_all)]
pub async fn list_users(state: &IdentityState, query: PageQuery) -> AppResult<UserPage> {
    let limit =
        crate::domain::page_limit(query.limit).map_err(|e| AppError::Validation(vec![e]))?;
    let after = query
        .cursor
        .as_deref()
        .map(Uuid::parse_str)
        .transpose()
        .map_err(|_| AppError::invalid("cursor", "is not a cursor this API issued"))?;
    let mut items = sqlx::query_as!(
        User,
        r#"SELECT id, name, email, role AS "role: Role", email_verified, created_at FROM users
           WHERE $1::uuid IS NULL OR id > $1 ORDER BY id LIMIT $2"#,
        after,
        i64::from(limit) + 1,
    )
    .fetch_all(state.db()?)
    .await?;
    let page = usize::try_from(limit).unwrap_or(usize::MAX);
    let next_cursor = if items.len() > page {
        items.truncate(page);
        items.last().map(|u| u.id.to_string())
    } else {
        None
    };
    Ok(UserPage { items, next_cursor })
}

/// Changes a user's role. At least one ADMIN always remains: the admin rows are locked (in id
/// order, so concurrent changes queue instead of deadlocking) before the count is taken.
#[tracing::instrument(name = "identity.set_role", skip_all)]
pub async fn set_role(
    db: &PgPool,
    actor: Option<Uuid>,
    target: Uuid,
    role: Role,
) -> AppResult<User> {
    let mut tx = db.begin().await?;
    let admins =
        sqlx::query_scalar!("SELECT id FROM users WHERE role = 'ADMIN' ORDER BY id FOR UPDATE")
            .fetch_all(&mut *tx)
            .await?;
    let current = sqlx::query_scalar!(
        r#"SELECT role AS "role: Role" FROM users WHERE id = $1 FOR UPDATE"#,
        target
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(AppError::NotFound)?;
    if current == Role::Admin && role != Role::Admin && admins.len() <= 1 {
        return Err(IdentityError::LastAdmin.into());
    }
    let user = sqlx::query_as!(
        User,
        r#"UPDATE users SET role = $2, updated_at = now() WHERE id = $1
           RETURNING id, name, email, role AS "role: Role", email_verified, created_at"#,
        target,
        role as Role,
    )
    .fetch_one(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        Entry {
            action: Action::RoleChanged,
            actor_id: actor,
            subject_id: Some(target),
            details: json!({ "from": current, "to": role, "via": if actor.is_some() { "api" } else { "cli" } }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// An ADMIN changes an account's role (never the last ADMIN's).
#[tracing::instrument(name = "identity.change_role", skip_all)]
pub async fn change_role(
    state: &IdentityState,
    actor: &AuthUser,
    target: Uuid,
    role: Role,
) -> AppResult<User> {
    set_role(state.db()?, Some(actor.user_id), target, role).await
}

/// Operator bootstrap: creates an ADMIN with an email/password identity (CLI only).
#[tracing::instrument(name = "identity.create_admin", skip_all)]
pub async fn create_admin(state: &IdentityState, account: NewAccount) -> AppResult<User> {
    let credential = state.hasher().hash(&account.password).await?;
    let mut tx = state.db()?.begin().await?;
    let (user, identity_id) = insert_account(&mut tx, &account, &credential, Role::Admin).await?;
    audit::record(
        &mut tx,
        Entry {
            action: Action::AdminCreated,
            actor_id: None,
            subject_id: Some(user.id),
            details: json!({ "via": "cli", "identity_id": identity_id }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(user)
}

/// Operator bootstrap: promotes the account that owns `email` to ADMIN (CLI only).
#[tracing::instrument(name = "identity.promote_by_email", skip_all)]
pub async fn promote_by_email(state: &IdentityState, email: &Email) -> AppResult<User> {
    let db = state.db()?;
    let user_id = sqlx::query_scalar!(
        "SELECT user_id FROM identities WHERE type = 'email_password' AND lower(identifier) = lower($1)",
        email.as_str()
    )
    .fetch_optional(db)
    .await?
    .ok_or(AppError::NotFound)?;
    set_role(db, None, user_id, Role::Admin).await
}
