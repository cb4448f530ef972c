//! The ledger: one append-only row per payment event, whatever the provider, chained by hash.
//!
//! Each row's `hash` is SHA-256 over the previous row's hash and this row's fields (each
//! length-prefixed, so no two different rows encode alike). Appends take the one `ledger_head`
//! row's lock, so the chain is a line even under concurrent webhooks, and the unique
//! (provider, event_id) makes a redelivered event a no-op. [`verify`] walks the chain.

use super::money::Minor;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

/// One event as the ledger records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub provider: String,
    pub event_id: String,
    pub event_type: String,
    pub invoice_id: Option<Uuid>,
    pub payment_id: Option<Uuid>,
    pub amount: Option<Minor>,
    pub currency: Option<String>,
    /// What the event did: `applied`, or why it changed nothing (`duplicate` is never written).
    pub outcome: String,
}

/// The chain's head as of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub seq: i64,
    pub hash: [u8; 32],
}

fn digest(prev: &[u8; 32], seq: i64, entry: &Entry, received_at: OffsetDateTime) -> [u8; 32] {
    fn field(hasher: &mut Sha256, bytes: &[u8]) {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    }
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(seq.to_be_bytes());
    field(&mut hasher, entry.provider.as_bytes());
    field(&mut hasher, entry.event_id.as_bytes());
    field(&mut hasher, entry.event_type.as_bytes());
    let id = |id: Option<Uuid>| id.map(|u| u.to_string()).unwrap_or_default();
    field(&mut hasher, id(entry.invoice_id).as_bytes());
    field(&mut hasher, id(entry.payment_id).as_bytes());
    let amount = entry.amount.map(|a| a.to_string()).unwrap_or_default();
    field(&mut hasher, amount.as_bytes());
    field(
        &mut hasher,
        entry.currency.as_deref().unwrap_or_default().as_bytes(),
    );
    field(&mut hasher, entry.outcome.as_bytes());
    // Postgres keeps microseconds: hash what it keeps.
    let micros = received_at.unix_timestamp_nanos() / 1000;
    hasher.update(micros.to_be_bytes());
    hasher.finalize().into()
}

/// Whether `(provider, event_id)` is in the ledger already. Call it after [`lock_head`], so a
/// concurrent delivery of the same event has either committed or not started.
pub async fn seen(conn: &mut PgConnection, provider: &str, event_id: &str) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (SELECT 1 FROM payment_events WHERE provider = $1 AND event_id = $2) AS "seen!""#,
        provider,
        event_id
    )
    .fetch_one(conn)
    .await
}

/// Locks the chain's head until the transaction ends: appends happen one at a time.
pub async fn lock_head(conn: &mut PgConnection) -> sqlx::Result<Head> {
    let row = sqlx::query!("SELECT seq, hash FROM ledger_head FOR UPDATE")
        .fetch_one(conn)
        .await?;
    Ok(Head {
        seq: row.seq,
        hash: row.hash.try_into().unwrap_or([0; 32]),
    })
}

/// Appends `entry` after `head` (from [`lock_head`], in the same transaction); returns the new
/// head.
pub async fn append(conn: &mut PgConnection, head: Head, entry: &Entry) -> sqlx::Result<Head> {
    let seq = head.seq + 1;
    let now = OffsetDateTime::now_utc();
    let received_at = now
        .replace_nanosecond(now.nanosecond() / 1000 * 1000)
        .unwrap_or(now);
    let hash = digest(&head.hash, seq, entry, received_at);
    sqlx::query!(
        r#"INSERT INTO payment_events (seq, provider, event_id, event_type, invoice_id, payment_id,
                                       amount, currency, outcome, received_at, prev_hash, hash)
           VALUES ($1, $2, $3, $4, $5, $6, $7::text::numeric, $8, $9, $10, $11, $12)"#,
        seq,
        entry.provider,
        entry.event_id,
        entry.event_type,
        entry.invoice_id,
        entry.payment_id,
        entry.amount.map(|a| a.to_string()),
        entry.currency,
        entry.outcome,
        received_at,
        &head.hash[..],
        &hash[..],
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!("UPDATE ledger_head SET seq = $1, hash = $2", seq, &hash[..])
        .execute(&mut *conn)
        .await?;
    Ok(Head { seq, hash })
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every row's hash matches its content and its predecessor, and the head is the last row.
    Intact { rows: i64 },
    /// The first row (by `seq`) whose hash or link is wrong, or a gap.
    Broken { seq: i64, reason: String },
}

/// Recomputes the whole chain from the first row.
pub async fn verify(conn: &mut PgConnection) -> sqlx::Result<Verdict> {
    let rows = sqlx::query!(
        r#"SELECT seq, provider, event_id, event_type, invoice_id, payment_id,
                  amount::text AS amount, currency, outcome, received_at, prev_hash, hash
           FROM payment_events ORDER BY seq"#
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut prev = [0u8; 32];
    let mut expected_seq = 1;
    for row in &rows {
        let broken = |reason: &str| {
            Ok(Verdict::Broken {
                seq: row.seq,
                reason: reason.to_owned(),
            })
        };
        if row.seq != expected_seq {
            return broken("a row is missing before this one");
        }
        if row.prev_hash.as_slice() != prev {
            return broken("prev_hash is not the previous row's hash");
        }
        let entry = Entry {
            provider: row.provider.clone(),
            event_id: row.event_id.clone(),
            event_type: row.event_type.clone(),
            invoice_id: row.invoice_id,
            payment_id: row.payment_id,
            amount: row.amount.as_deref().and_then(|a| a.parse().ok()),
            currency: row.currency.clone(),
            outcome: row.outcome.clone(),
        };
        let hash = digest(&prev, row.seq, &entry, row.received_at);
        if row.hash.as_slice() != hash {
            return broken("the row's content does not match its hash");
        }
        prev = hash;
        expected_seq += 1;
    }
    let head = sqlx::query!("SELECT seq, hash FROM ledger_head")
        .fetch_one(&mut *conn)
        .await?;
    if head.seq != expected_seq - 1 || head.hash.as_slice() != prev {
        return Ok(Verdict::Broken {
            seq: head.seq,
            reason: "the head does not point at the last row (rows were removed)".into(),
        });
    }
    Ok(Verdict::Intact {
        rows: expected_seq - 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(outcome: &str) -> Entry {
        Entry {
            provider: "stripe".into(),
            event_id: "evt_1".into(),
            event_type: "payment_intent.succeeded".into(),
            invoice_id: None,
            payment_id: None,
            amount: Some(Minor::new(100)),
            currency: Some("USD".into()),
            outcome: outcome.into(),
        }
    }

    #[test]
    fn every_field_and_the_link_change_the_hash() {
        let at = OffsetDateTime::UNIX_EPOCH;
        let base = digest(&[0; 32], 1, &entry("applied"), at);
        assert_ne!(base, digest(&[1; 32], 1, &entry("applied"), at));
        assert_ne!(base, digest(&[0; 32], 2, &entry("applied"), at));
        assert_ne!(base, digest(&[0; 32], 1, &entry("ignored"), at));
        let mut other = entry("applied");
        other.amount = Some(Minor::new(1000));
        assert_ne!(base, digest(&[0; 32], 1, &other, at));
        // Length prefixes: moving a character between fields is a different row.
        let mut shifted = entry("applied");
        shifted.provider = "stripee".into();
        shifted.event_id = "vt_1".into();
        assert_ne!(base, digest(&[0; 32], 1, &shifted, at));
    }
}
