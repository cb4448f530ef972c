//! Wallet identities: nonces, and registration and login with Sign-In with Ethereum.

pub mod api;
pub mod nonce;
pub mod siwe;

use crate::audit::{self, Entry};
use crate::auth::Amr;
use crate::auth::jwt::Subject;
use crate::domain::{DisplayName, Role};
use crate::error::{AppError, AppResult};
use crate::extract::{ClientInfo, ClientIp};
use crate::identity::abuse::{self, Endpoint};
use crate::identity::audit::IdentityAction as Action;
use crate::identity::dto::{
    LoginBlockchain, MfaRequired, NonceIssued, NonceRequest, RegisterBlockchain, Registered,
    SignedIn,
};
use crate::identity::error;
use crate::identity::mfa::mint_challenge;
use crate::identity::model::User;
use crate::identity::sessions as session;
use crate::identity::state::IdentityState;
use crate::identity::wallet::siwe::{Proof, REJECTED, SiweError, SiweMessage};
use serde_json::json;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// Issues a nonce. Pure computation: no database write, so the endpoint is cheap and cannot be
/// used to fill a table. Its rate limit is per instance for the same reason.
#[tracing::instrument(name = "identity.issue_nonce", skip_all)]
pub async fn issue_nonce(
    state: &IdentityState,
    ip: &ClientIp,
    input: NonceRequest,
) -> AppResult<NonceIssued> {
    let address = input
        .address
        .as_deref()
        .map(|a| {
            siwe::parse_address(a)
                .ok_or_else(|| AppError::invalid("address", "is not an Ethereum address"))
        })
        .transpose()?;
    let checksummed = address.map(|a| a.to_checksum(None));
    abuse::throttle_locally(state, ip, Endpoint::Nonce, checksummed.as_deref()).await?;
    let issued =
        state
            .nonce_key()?
            .issue(address, state.config().nonce_ttl, OffsetDateTime::now_utc());
    Ok(NonceIssued {
        nonce: issued.nonce,
        expires_at: issued.expires_at,
    })
}

/// Verifies a SIWE proof (everything but spending the nonce): the message's claims, the nonce's
/// MAC, expiry and binding, and the signature. Returns the proof and the nonce's expiry. A rejected proof is audited, but it does not
/// count towards a lockout: a signature cannot be guessed, so locking a (public) address would
/// only let anyone deny its owner sign-in. Per-address rate limits still apply.
pub(crate) async fn prove(
    state: &IdentityState,
    message: &SiweMessage,
    signature: &str,
) -> AppResult<(Proof, OffsetDateTime)> {
    let policy = state.siwe()?;
    let key = state.nonce_key()?;
    let now = OffsetDateTime::now_utc();
    let checked = match key.check(message.nonce(), message.address(), now) {
        Ok(expires_at) => message
            .verify(signature, policy, state.chain(), now)
            .await
            .map(|proof| (proof, expires_at)),
        Err(invalid) => {
            tracing::info!(reason = %invalid, "SIWE nonce rejected");
            Err(SiweError::Rejected("nonce"))
        }
    };
    match checked {
        Ok(proof) => Ok(proof),
        Err(SiweError::Rejected(_)) => {
            let mut conn = state.db()?.acquire().await?;
            let details = json!({
                "identifier": message.address().to_checksum(None),
                "chain_id": message.chain_id(),
            });
            audit::record(
                &mut conn,
                Entry {
                    action: Action::ProofRejected,
                    actor_id: None,
                    subject_id: None,
                    details,
                },
            )
            .await?;
            Err(REJECTED)
        }
        Err(other) => Err(other.into()),
    }
}

/// Spends the proof's nonce (checked by [`prove`], which gave its expiry: the spent row is kept
/// until then) inside `conn`'s transaction; a nonce spent before is the same 401 as any other
/// failed proof.
pub(crate) async fn spend_nonce(
    conn: &mut PgConnection,
    proof: &Proof,
    expires_at: OffsetDateTime,
) -> AppResult<()> {
    if nonce::spend(conn, &proof.nonce, expires_at).await? {
        Ok(())
    } else {
        tracing::info!("SIWE nonce already spent");
        Err(REJECTED)
    }
}

/// Inserts a wallet identity for `user_id`; a wallet owned by anyone is a 409.
pub(crate) async fn insert_wallet(
    conn: &mut PgConnection,
    user_id: Uuid,
    proof: &Proof,
    primary: bool,
) -> AppResult<Uuid> {
    sqlx::query_scalar!(
        "INSERT INTO identities (id, user_id, type, identifier, chain_id, is_primary_login)
         VALUES ($1, $2, 'blockchain_address', $3, $4, $5) RETURNING id",
        Uuid::now_v7(),
        user_id,
        proof.checksummed(),
        i64::try_from(proof.chain_id)
            .map_err(|_| AppError::invalid("message", "chain id is too large"))?,
        primary,
    )
    .fetch_one(conn)
    .await
    .map_err(error::db)
}

#[tracing::instrument(name = "identity.register_wallet", skip_all)]
pub async fn register(
    state: &IdentityState,
    client: &ClientInfo,
    input: RegisterBlockchain,
) -> AppResult<Registered> {
    let message = SiweMessage::parse(&input.message)?;
    let address = message.address().to_checksum(None);
    abuse::throttle(state, &client.ip, Endpoint::Register, Some(&address)).await?;
    let name = match input.name.as_deref() {
        Some(raw) => DisplayName::parse(raw).map_err(|e| AppError::Validation(vec![e]))?,
        None => DisplayName::parse(&address).map_err(|e| AppError::Validation(vec![e]))?,
    };
    state.signer()?; // 503 before any work when this function cannot issue tokens
    let (proof, nonce_expires) = prove(state, &message, &input.signature).await?;
    let mut tx = state.db()?.begin().await?;
    spend_nonce(&mut tx, &proof, nonce_expires).await?;
    let user = sqlx::query_as!(
        User,
        r#"INSERT INTO users (id, name, email, role) VALUES ($1, $2, NULL, $3)
           RETURNING id, name, email, role AS "role: Role", email_verified, created_at"#,
        Uuid::now_v7(),
        name.as_str(),
        Role::Client as Role,
    )
    .fetch_one(&mut *tx)
    .await?;
    let identity_id = insert_wallet(&mut tx, user.id, &proof, true).await?;
    let tokens = session::sign_in_new(
        &mut tx,
        state,
        client,
        &user,
        (identity_id, Amr::Siwe),
        json!({ "chain_id": proof.chain_id }),
    )
    .await?;
    tx.commit().await?;
    Ok(Registered { user, tokens })
}

/// Logs a wallet in. After the proof is checked (pure computation), everything the database
/// does is one statement, so one round trip and one atomic commit: spend the nonce (through
/// `spend_nonce`, [`nonce`]'s one writer of `spent_nonces`), find the wallet's account, store the
/// new refresh token and write the audit row. A nonce spent before finds nothing and writes
/// nothing; of concurrent submissions of one nonce, the later ones wait on its primary key and
/// then find it spent. An unknown wallet spends the nonce and records the failure, and gets the
/// same 401 as any other failure.
#[tracing::instrument(name = "identity.login_wallet", skip_all)]
pub async fn login(
    state: &IdentityState,
    client: &ClientInfo,
    input: LoginBlockchain,
) -> AppResult<SignedIn> {
    let message = SiweMessage::parse(&input.message)?;
    let address = message.address().to_checksum(None);
    abuse::throttle(state, &client.ip, Endpoint::Login, Some(&address)).await?;
    let signer = state.signer()?; // 503 before any work when this function cannot issue tokens
    let (proof, nonce_expires) = prove(state, &message, &input.signature).await?;
    let minted = session::Minted::fresh(state, Amr::Siwe.into(), client);
    // With TOTP on, the statement records this challenge instead of the session.
    let (mfa_token, mfa_hash) = mint_challenge();
    let mfa_expires = OffsetDateTime::now_utc() + state.config().mfa.challenge_ttl;
    let extra = json!({ "chain_id": proof.chain_id });
    // `spent` is a plain SELECT, which runs only if something reads it: the `spent!` column is
    // what spends the nonce, whatever else the statement finds. (A volatile CTE runs once,
    // however often it is read.)
    let row = sqlx::query!(
        r#"WITH spent AS (SELECT 1 WHERE spend_nonce($1, $2)),
           found AS (
               SELECT i.id, i.user_id, u.role, u.email_verified,
                      EXISTS (SELECT 1 FROM mfa_totp m
                              WHERE m.user_id = u.id AND m.activated_at IS NOT NULL) AS mfa
               FROM identities i JOIN users u ON u.id = i.user_id
               WHERE i.type = 'blockchain_address' AND i.identifier = $3
                 AND EXISTS (SELECT 1 FROM spent)),
           token AS (
               INSERT INTO refresh_tokens (id, token_hash, family_id, parent_id, user_id,
                                           identity_id, amr, expires_at, ip, user_agent,
                                           auth_time)
               SELECT $4, $5, $6, $7, user_id, id, $8, $9, $14, $15, $20
               FROM found WHERE NOT mfa),
           challenge AS (
               INSERT INTO mfa_challenges
                   (token_hash, user_id, identity_id, method, details, expires_at)
               SELECT $16, user_id, id, 'siwe', $17, $18 FROM found WHERE mfa),
           logged AS (
               SELECT audit_record(CASE WHEN mfa THEN $19 ELSE $10 END, user_id, user_id,
                                   $11::jsonb || jsonb_build_object('identity_id', id))
               FROM found
               UNION ALL
               SELECT audit_record($12, NULL, NULL, $13)
               FROM spent WHERE NOT EXISTS (SELECT 1 FROM found))
           -- `logged` is referenced so that it runs (a plain SELECT in WITH runs only if used).
           SELECT EXISTS (SELECT 1 FROM spent) AS "spent!",
                  f.id AS "identity_id?", f.user_id AS "user_id?", f.role AS "role?: Role",
                  f.email_verified AS "email_verified?", f.mfa AS "mfa?",
                  (SELECT count(*) FROM logged) AS "logged!"
           FROM (VALUES (1)) AS one (n) LEFT JOIN found f ON true"#,
        proof.nonce,
        nonce_expires,
        proof.checksummed(),
        minted.id,
        minted.token_hash,
        minted.family_id,
        minted.parent_id,
        &minted.amr,
        minted.expires_at,
        audit::Action::name(Action::LoginSucceeded),
        session::sign_in_details(Amr::Siwe.into(), None, client, extra.clone()),
        audit::Action::name(Action::LoginFailed),
        session::sign_in_details(
            Amr::Siwe.into(),
            None,
            client,
            json!({ "identifier": address })
        ),
        minted.ip,
        minted.user_agent,
        mfa_hash,
        extra,
        mfa_expires,
        audit::Action::name(Action::MfaChallenged),
        minted.auth_time,
    )
    .fetch_one(state.db()?)
    .await?;
    if !row.spent {
        tracing::info!("SIWE nonce already spent");
        return Err(REJECTED);
    }
    let (Some(identity_id), Some(user_id), Some(role), Some(email_verified)) =
        (row.identity_id, row.user_id, row.role, row.email_verified)
    else {
        // The nonce stays spent and the failure is recorded: one answer for every failure.
        return Err(REJECTED);
    };
    if row.mfa == Some(true) {
        return Ok(SignedIn::Mfa(MfaRequired {
            mfa_required: true,
            mfa_token,
        }));
    }
    let subject = Subject {
        user_id,
        role,
        identity_id,
        amr: Amr::Siwe.into(),
        email_verified,
    };
    minted.pair(signer, subject).map(SignedIn::Tokens)
}
