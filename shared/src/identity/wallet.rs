//! Wallet identities: nonces, and registration and login with Sign-In with Ethereum.

use super::abuse::{self, Endpoint};
use super::dto::{
    LoginBlockchain, NonceIssued, NonceRequest, RegisterBlockchain, Registered, TokenPair,
};
use super::session;
use super::siwe::{Proof, REJECTED, SiweMessage};
use crate::audit::{self, Action, Entry};
use crate::auth::Amr;
use crate::auth::jwt::Subject;
use crate::domain::{DisplayName, Role, User};
use crate::error::{AppError, AppResult};
use crate::extract::ClientIp;
use crate::state::AppState;
use crate::store::IssuedNonce;
use alloy::primitives::Address;
use rand::Rng;
use rand::distributions::Alphanumeric;
use serde_json::json;
use sqlx::PgConnection;
use std::str::FromStr;
use time::OffsetDateTime;
use uuid::Uuid;

/// 24 alphanumeric characters: about 143 bits.
const NONCE_LEN: usize = 24;

pub async fn issue_nonce(
    state: &AppState,
    ip: &ClientIp,
    input: NonceRequest,
) -> AppResult<NonceIssued> {
    let address = input
        .address
        .as_deref()
        .map(|a| {
            Address::from_str(a.trim())
                .map(|addr| addr.to_checksum(None))
                .map_err(|_| AppError::invalid("address", "is not an Ethereum address"))
        })
        .transpose()?;
    abuse::throttle(state, ip, Endpoint::Nonce, address.as_deref()).await?;
    let nonce: String = rand::rngs::OsRng
        .sample_iter(&Alphanumeric)
        .take(NONCE_LEN)
        .map(char::from)
        .collect();
    let issued = IssuedNonce {
        nonce,
        address,
        expires_at: OffsetDateTime::now_utc() + state.settings().nonce_ttl,
    };
    state.nonces()?.issue(&issued).await?;
    Ok(NonceIssued {
        nonce: issued.nonce,
        expires_at: issued.expires_at,
    })
}

/// Verifies a SIWE proof (everything but the nonce). A rejected proof is audited, but it does not
/// count towards a lockout: a signature cannot be guessed, so locking a (public) address would
/// only let anyone deny its owner sign-in. Per-address rate limits still apply.
pub(crate) async fn prove(
    state: &AppState,
    message: &SiweMessage,
    signature: &str,
) -> AppResult<Proof> {
    let policy = state.siwe()?;
    match message
        .verify(signature, policy, state.chain(), OffsetDateTime::now_utc())
        .await
    {
        Err(AppError::Unauthorized(reason)) => {
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
            Err(AppError::Unauthorized(reason))
        }
        other => other,
    }
}

/// Spends the proof's nonce inside `conn`'s transaction: it must exist, be unexpired, unspent,
/// and (if bound) bound to the proof's address.
pub(crate) async fn spend_nonce(
    state: &AppState,
    conn: &mut PgConnection,
    proof: &Proof,
) -> AppResult<()> {
    let issued = state.nonces()?.consume(conn, &proof.nonce).await?;
    match issued {
        Some(n)
            if n.address
                .as_deref()
                .is_none_or(|a| a == proof.checksummed()) =>
        {
            Ok(())
        }
        _ => {
            tracing::info!("SIWE nonce unknown, expired, spent or bound to another address");
            Err(REJECTED)
        }
    }
}

/// Inserts a wallet identity for `user_id`; a wallet owned by anyone is a 409.
pub(crate) async fn insert_wallet(
    conn: &mut PgConnection,
    user_id: Uuid,
    proof: &Proof,
    primary: bool,
) -> AppResult<Uuid> {
    Ok(sqlx::query_scalar!(
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
    .await?)
}

pub async fn register(
    state: &AppState,
    ip: &ClientIp,
    input: RegisterBlockchain,
) -> AppResult<Registered> {
    let message = SiweMessage::parse(&input.message)?;
    let address = message.address().to_checksum(None);
    abuse::throttle(state, ip, Endpoint::Register, Some(&address)).await?;
    let name = match input.name.as_deref() {
        Some(raw) => DisplayName::parse(raw).map_err(|e| AppError::Validation(vec![e]))?,
        None => DisplayName::parse(&address).map_err(|e| AppError::Validation(vec![e]))?,
    };
    state.signer()?; // 503 before any work when this function cannot issue tokens
    let proof = prove(state, &message, &input.signature).await?;
    let mut tx = state.db()?.begin().await?;
    spend_nonce(state, &mut tx, &proof).await?;
    let user = sqlx::query_as!(
        User,
        r#"INSERT INTO users (id, name, email, role) VALUES ($1, $2, NULL, $3)
           RETURNING id, name, email, role AS "role: Role", created_at"#,
        Uuid::now_v7(),
        name.as_str(),
        Role::Client as Role,
    )
    .fetch_one(&mut *tx)
    .await?;
    let identity_id = insert_wallet(&mut tx, user.id, &proof, true).await?;
    let subject = Subject {
        user_id: user.id,
        role: user.role,
        identity_id,
        amr: Amr::Siwe,
    };
    let tokens = session::sign_in(
        &mut tx,
        state,
        subject,
        Action::Registered,
        json!({ "chain_id": proof.chain_id }),
    )
    .await?;
    tx.commit().await?;
    Ok(Registered { user, tokens })
}

pub async fn login(
    state: &AppState,
    ip: &ClientIp,
    input: LoginBlockchain,
) -> AppResult<TokenPair> {
    let message = SiweMessage::parse(&input.message)?;
    let address = message.address().to_checksum(None);
    abuse::throttle(state, ip, Endpoint::Login, Some(&address)).await?;
    state.signer()?; // 503 before any work when this function cannot issue tokens
    let proof = prove(state, &message, &input.signature).await?;
    let mut tx = state.db()?.begin().await?;
    spend_nonce(state, &mut tx, &proof).await?;
    let found = sqlx::query!(
        r#"SELECT i.id, i.user_id, u.role AS "role: Role"
           FROM identities i JOIN users u ON u.id = i.user_id
           WHERE i.type = 'blockchain_address' AND i.identifier = $1"#,
        proof.checksummed(),
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = found else {
        // The nonce stays spent and the failure is recorded: one answer for every failure.
        audit::record(
            &mut tx,
            Entry {
                action: Action::LoginFailed,
                actor_id: None,
                subject_id: None,
                details: json!({ "method": "siwe", "identifier": address }),
            },
        )
        .await?;
        tx.commit().await?;
        return Err(REJECTED);
    };
    let subject = Subject {
        user_id: row.user_id,
        role: row.role,
        identity_id: row.id,
        amr: Amr::Siwe,
    };
    let tokens = session::sign_in(
        &mut tx,
        state,
        subject,
        Action::LoginSucceeded,
        json!({ "chain_id": proof.chain_id }),
    )
    .await?;
    tx.commit().await?;
    Ok(tokens)
}
