//! The `chain-monitor` worker: watches one submitted transaction per job until it is final, then
//! reports it to the books ([`settle`]). Every answer of the chain is one of:
//! - unseen (no receipt yet): come back later ([`JobError::Later`], no attempt spent), until the
//!   payment's `watch_until`, after which it fails; a transaction the node does not know at all
//!   fails sooner, at `unknown_until`;
//! - seen but not final (too few confirmations, the `safe`/`finalized` tag not there yet, or its
//!   block no longer canonical after a reorg): come back later;
//! - final: reverted, or pays nothing to our receiver in our asset → FAILED; paid by a wallet
//!   that the invoice's client has not proven (Sign-In with Ethereum), or mined before the
//!   invoice was issued → FAILED, whoever submitted it; else CONFIRMED with the amount it really
//!   paid (under- and over-payment recorded as such). The payer is a native transfer's `from`,
//!   or a token `Transfer`'s `from` (so a contract wallet proven by EIP-1271 pays in tokens);
//!   only transfers from the client's wallets count.
//!
//! A FAILED payment lets go of its transaction (the unique index `payments_provider_ref`): when
//! a stranger submits somebody's transaction for their own invoice, the real payer can still
//! submit it for theirs.
//!
//! An RPC failure is a retry: nothing is credited, the job comes back. A redelivered job finds
//! the payment no longer PENDING, or its ledger event already recorded: one credit, ever.
//!
//! A payout is watched the same way: while unseen, its stored signed bytes are broadcast again
//! (the same transaction, never a second one); once final it is CONFIRMED, or FAILED if it
//! reverted. It also fails, without a deadline, once its nonce is spent by another transaction
//! of the payout account at the chain's finality (dropped and replaced): it can never be mined
//! then, and a payout is never failed while it still could be. A payout that pays a refund back
//! settles it in the same transaction: SUCCEEDED when CONFIRMED, FAILED when FAILED.
//!
//! A CONFIRMED payment records its payer (`chain_payments.payer`): the wallet a refund goes back
//! to.

use super::PayoutStatus;
use super::{Chain, Chains, Finality, Watch, provider, transferred};
use crate::chain::AlloyRpc;
use crate::db::Db;
use crate::function::needs::{CHAIN_RPC, DATABASE};
use crate::function::{FunctionSpec, Trigger};
use crate::payments::lifecycle::{PaymentEvent, PaymentStatus};
use crate::payments::money::{MAX_DIGITS, Minor};
use crate::payments::settle::{self, Report};
use crate::queue::{Job, JobError, JobHandler, signing};
use alloy::consensus::Transaction as _;
use alloy::network::TransactionResponse as _;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{BlockNumberOrTag, TransactionReceipt};
use async_trait::async_trait;
use std::sync::Arc;
use time::OffsetDateTime;

/// Watches submitted on-chain payments until they are final (one job per payment).
pub static CHAIN_MONITOR: FunctionSpec = FunctionSpec {
    name: super::QUEUE,
    trigger: Trigger::Queue {
        build: |platform| {
            Ok(Arc::new(ChainMonitor::new(
                platform.db.clone(),
                Arc::new(Chains::from_env(&platform.env)?),
                Arc::new(AlloyRpc::new(platform.config.chain_rpc_urls.clone())),
            )))
        },
        schedule: None,
    },
    needs: &[&DATABASE, &CHAIN_RPC, &super::NEED, &signing::NEED],
};

/// What the chain says about a transaction, now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// No receipt.
    Unseen,
    /// Included, not final yet (or its block was reorganised away): look again.
    NotFinal,
    /// Final: it paid us this much.
    Paid(U256),
    /// Final: it reverted.
    Reverted,
    /// Final: it pays our receiver nothing in the expected asset.
    PaysUsNothing,
    /// Final: it pays our receiver, but from no wallet of the invoice's client.
    NotTheClientsPayer,
    /// Final: in a block older than the invoice's issue.
    BeforeTheInvoice,
    /// The node has never heard of it (not even pending).
    Unknown,
}

/// One watched payment, as submitted.
struct Watched {
    chain_id: u64,
    hash: B256,
    token: Option<Address>,
    receiver: Address,
    watch_until: OffsetDateTime,
    unknown_until: OffsetDateTime,
    not_before: OffsetDateTime,
    status: PaymentStatus,
    /// The wallets the invoice's client has proven: the only payers that count.
    payers: Vec<Address>,
}

/// The worker's handler.
pub struct ChainMonitor {
    db: Db,
    chains: Arc<Chains>,
    rpc: Arc<AlloyRpc>,
}

impl ChainMonitor {
    pub fn new(db: Db, chains: Arc<Chains>, rpc: Arc<AlloyRpc>) -> Self {
        Self { db, chains, rpc }
    }

    /// The chain's settings and RPC. Either missing is an operator's mistake: retry, so the job
    /// is dead-lettered (and can be redriven) rather than lost.
    fn chain(&self, chain_id: u64) -> Result<(&Chain, &DynProvider), JobError> {
        let chain = self.chains.find(chain_id).ok_or_else(|| {
            JobError::Retry(anyhow::anyhow!("chain {chain_id} is not in PAYMENT_CHAINS"))
        })?;
        let rpc = self.rpc.provider(chain_id).ok_or_else(|| {
            JobError::Retry(anyhow::anyhow!(
                "chain {chain_id} has no RPC URL (CHAIN_RPC_URLS)"
            ))
        })?;
        Ok((chain, rpc))
    }

    /// Watches a payout (see the module's comment).
    async fn payout(&self, payout_id: uuid::Uuid) -> Result<(), JobError> {
        let pool = self.db.pool().map_err(|e| JobError::Retry(e.into()))?;
        let Some(row) = sqlx::query!(
            r#"SELECT chain_id, tx_hash, raw_tx, sender, nonce, status AS "status: PayoutStatus"
               FROM payouts WHERE id = $1"#,
            payout_id
        )
        .fetch_optional(pool)
        .await?
        else {
            return Err(JobError::drop(format!("no payout {payout_id}")));
        };
        if row.status != PayoutStatus::Pending {
            return Ok(());
        }
        let chain_id = u64::try_from(row.chain_id)
            .map_err(|_| JobError::Retry(anyhow::anyhow!("a stored chain id is malformed")))?;
        let (chain, rpc) = self.chain(chain_id)?;
        let hash: B256 = row
            .tx_hash
            .parse()
            .map_err(|_| JobError::Retry(anyhow::anyhow!("a stored hash is malformed")))?;
        let retry = |e: alloy::transports::TransportError| {
            JobError::Retry(anyhow::anyhow!(
                "chain {chain_id}: {}",
                crate::redact::Redacted(&e)
            ))
        };
        let mut seen = inclusion(rpc, chain, hash).await.map_err(retry)?;
        if matches!(seen, Inclusion::Unseen)
            && nonce_spent(rpc, chain, &row.sender, row.nonce)
                .await
                .map_err(retry)?
        {
            // The nonce is spent at finality, but ours may have been mined between the two
            // reads: only a receipt still absent now means another transaction took it.
            seen = inclusion(rpc, chain, hash).await.map_err(retry)?;
            if matches!(seen, Inclusion::Unseen) {
                tracing::warn!(payout = %payout_id, "payout replaced: its nonce went to another transaction");
                return self
                    .payout_final(pool, payout_id, PayoutStatus::Failed)
                    .await;
            }
        }
        let status = match seen {
            Inclusion::Unseen => {
                // Never sent, or dropped: the same signed bytes again (an error such as
                // "already known" changes nothing).
                if let Err(err) = rpc.send_raw_transaction(&row.raw_tx).await {
                    tracing::info!(payout = %payout_id, error = %crate::redact::Redacted(&err), "payout re-broadcast refused");
                }
                return Err(JobError::Later(chain.poll));
            }
            Inclusion::NotFinal => return Err(JobError::Later(chain.poll)),
            Inclusion::Final(receipt, _) if receipt.status() => PayoutStatus::Confirmed,
            Inclusion::Final(..) => PayoutStatus::Failed,
        };
        self.payout_final(pool, payout_id, status).await
    }

    /// Records a payout's final status (once: only a PENDING one changes), and, in the same
    /// transaction, settles the refund it pays back: SUCCEEDED when CONFIRMED, FAILED when
    /// FAILED (its amount released).
    async fn payout_final(
        &self,
        pool: &sqlx::PgPool,
        payout_id: uuid::Uuid,
        status: PayoutStatus,
    ) -> Result<(), JobError> {
        let mut tx = pool.begin().await?;
        let moved = sqlx::query!(
            "UPDATE payouts SET status = $2, updated_at = now() WHERE id = $1 AND status = 'PENDING'
             RETURNING chain_id, tx_hash, refund_id",
            payout_id,
            status as PayoutStatus,
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(refund_id) = moved.as_ref().and_then(|m| m.refund_id.map(|r| (m, r))) {
            let (row, refund_id) = refund_id;
            let chain_id = u64::try_from(row.chain_id)
                .map_err(|_| JobError::Retry(anyhow::anyhow!("a stored chain id is malformed")))?;
            crate::payments::billing::refunds::settled_in(
                &mut tx,
                &provider(chain_id),
                &row.tx_hash,
                Some(refund_id),
                status == PayoutStatus::Confirmed,
            )
            .await
            .map_err(|e| JobError::Retry(anyhow::anyhow!("settling the refund: {e}")))?;
        }
        tx.commit().await?;
        tracing::info!(payout = %payout_id, ?status, "payout final");
        Ok(())
    }

    async fn watched(&self, payment_id: uuid::Uuid) -> Result<Option<Watched>, JobError> {
        let pool = self.db.pool().map_err(|e| JobError::Retry(e.into()))?;
        let Some(row) = sqlx::query!(
            r#"SELECT c.chain_id, c.tx_hash, c.token, c.receiver, c.watch_until, c.unknown_until,
                      c.not_before, p.status AS "status: PaymentStatus", i.project_id
               FROM chain_payments c JOIN payments p ON p.id = c.payment_id
                    JOIN invoices i ON i.id = p.invoice_id
               WHERE c.payment_id = $1"#,
            payment_id
        )
        .fetch_optional(pool)
        .await?
        else {
            return Ok(None);
        };
        let payers = super::payers_of(pool, row.project_id)
            .await
            .map_err(|e| JobError::Retry(anyhow::anyhow!("reading the invoice's payers: {e}")))?;
        let stored = |what: &str| JobError::Retry(anyhow::anyhow!("a stored {what} is malformed"));
        Ok(Some(Watched {
            chain_id: u64::try_from(row.chain_id).map_err(|_| stored("chain id"))?,
            hash: row.tx_hash.parse().map_err(|_| stored("hash"))?,
            token: row
                .token
                .map(|t| t.parse().map_err(|_| stored("token")))
                .transpose()?,
            receiver: row.receiver.parse().map_err(|_| stored("receiver"))?,
            watch_until: row.watch_until,
            unknown_until: row.unknown_until,
            not_before: row.not_before,
            status: row.status,
            payers,
        }))
    }
}

#[async_trait]
impl JobHandler for ChainMonitor {
    #[tracing::instrument(name = "chain_monitor", skip_all, fields(job = %job.id))]
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        let watch: Watch = serde_json::from_str(&job.body)
            .map_err(|e| JobError::drop(format!("not a watch job: {e}")))?;
        let payment_id = match watch {
            Watch::Payment { payment_id } => payment_id,
            Watch::Payout { payout_id } => return self.payout(payout_id).await,
        };
        let Some(watched) = self.watched(payment_id).await? else {
            return Err(JobError::drop(format!("no on-chain payment {payment_id}")));
        };
        if watched.status != PaymentStatus::Pending {
            return Ok(()); // settled by an earlier delivery
        }
        let (chain, rpc) = self.chain(watched.chain_id)?;
        if let Some(token) = watched.token {
            chain
                .check_decimals(rpc, token)
                .await
                .map_err(|e| JobError::Retry(anyhow::anyhow!("{e}")))?;
        }
        let (seen, payer) = observe(rpc, chain, &watched).await.map_err(|e| {
            JobError::Retry(anyhow::anyhow!(
                "chain {}: {}",
                chain.id,
                crate::redact::Redacted(&e)
            ))
        })?;
        tracing::info!(?seen, tx = %watched.hash, "observed");
        let now = OffsetDateTime::now_utc();
        let (event, kind, amount) = match seen {
            Seen::Unknown if now > watched.unknown_until => {
                (PaymentEvent::Failed, "chain.unknown", None)
            }
            Seen::Unseen | Seen::Unknown if now > watched.watch_until => {
                (PaymentEvent::Failed, "chain.unseen", None)
            }
            Seen::Unseen | Seen::Unknown | Seen::NotFinal => {
                return Err(JobError::Later(chain.poll));
            }
            Seen::Reverted => (PaymentEvent::Failed, "chain.reverted", None),
            Seen::PaysUsNothing => (PaymentEvent::Failed, "chain.pays_nothing", None),
            Seen::NotTheClientsPayer => (PaymentEvent::Failed, "chain.not_the_clients_payer", None),
            Seen::BeforeTheInvoice => (PaymentEvent::Failed, "chain.before_the_invoice", None),
            Seen::Paid(value) => match recordable(value) {
                Some(amount) => (PaymentEvent::Succeeded, "chain.confirmed", Some(amount)),
                None => (PaymentEvent::Failed, "chain.unrecordable_amount", None),
            },
        };
        let report = Report {
            provider: provider(chain.id).into(),
            // One final word per payment of a transaction: a redelivery finds it in the ledger,
            // and a payment that follows a FAILED one of the same transaction has its own.
            event_id: format!("{:#x}/{payment_id}", watched.hash),
            event_type: kind.into(),
            provider_ref: format!("{:#x}", watched.hash),
            event,
            amount,
            records_amount: true,
            currency: None,
            invoice_id: None,
        };
        let pool = self.db.pool().map_err(|e| JobError::Retry(e.into()))?;
        if let (Some(payer), Some(_)) = (payer, amount) {
            // The wallet a refund goes back to: a fact of the chain, written before the credit
            // (a redelivery writes the same).
            sqlx::query!(
                "UPDATE chain_payments SET payer = $2 WHERE payment_id = $1",
                payment_id,
                format!("{payer:#x}"),
            )
            .execute(pool)
            .await?;
        }
        settle::apply(pool, &report)
            .await
            .map_err(|e| JobError::Retry(anyhow::anyhow!("settling: {e}")))?;
        Ok(())
    }
}

/// An on-chain amount the books can hold (38 digits).
fn recordable(value: U256) -> Option<Minor> {
    let units = u128::try_from(value).ok()?;
    (units.to_string().len() <= MAX_DIGITS).then(|| Minor::new(units))
}

/// Where a transaction stands on the chain.
enum Inclusion {
    Unseen,
    /// Included, but not final yet, or its block was reorganised away.
    NotFinal,
    /// Final, in a block of this timestamp (unix seconds).
    Final(Box<TransactionReceipt>, u64),
}

/// Whether `hash` is included, and final by the chain's rule in a block that is still the
/// chain's (a receipt may predate a reorg).
async fn inclusion(
    rpc: &DynProvider,
    chain: &Chain,
    hash: B256,
) -> Result<Inclusion, alloy::transports::TransportError> {
    let Some(receipt) = rpc.get_transaction_receipt(hash).await? else {
        return Ok(Inclusion::Unseen);
    };
    let (Some(number), Some(block_hash)) = (receipt.block_number, receipt.block_hash) else {
        return Ok(Inclusion::Unseen);
    };
    let final_enough = match chain.finality {
        Finality::Confirmations(n) => rpc.get_block_number().await? + 1 >= number + n,
        Finality::Safe | Finality::Finalized => {
            let tag = if chain.finality == Finality::Safe {
                BlockNumberOrTag::Safe
            } else {
                BlockNumberOrTag::Finalized
            };
            rpc.get_block_by_number(tag)
                .await?
                .is_some_and(|block| block.header.number >= number)
        }
    };
    if !final_enough {
        return Ok(Inclusion::NotFinal);
    }
    let block = rpc
        .get_block_by_number(BlockNumberOrTag::Number(number))
        .await?
        .filter(|block| block.header.hash == block_hash);
    Ok(match block {
        Some(block) => Inclusion::Final(Box::new(receipt), block.header.timestamp),
        None => Inclusion::NotFinal,
    })
}

/// Whether `sender`'s transaction number `nonce` is spent, at the chain's finality: the account
/// has sent more than `nonce` transactions by the last final block.
async fn nonce_spent(
    rpc: &DynProvider,
    chain: &Chain,
    sender: &str,
    nonce: i64,
) -> Result<bool, alloy::transports::TransportError> {
    let Ok(sender) = sender.parse::<Address>() else {
        return Ok(false);
    };
    let at = match chain.finality {
        Finality::Confirmations(n) => {
            let latest = rpc.get_block_number().await?;
            match (latest + 1).checked_sub(n) {
                Some(number) => BlockNumberOrTag::Number(number),
                None => return Ok(false),
            }
        }
        Finality::Safe => BlockNumberOrTag::Safe,
        Finality::Finalized => BlockNumberOrTag::Finalized,
    };
    let sent = rpc
        .get_transaction_count(sender)
        .block_id(at.into())
        .await?;
    Ok(u64::try_from(nonce).is_ok_and(|nonce| sent > nonce))
}

/// Reads a payment's fate (see the module's comment), and the client's wallet that paid.
async fn observe(
    rpc: &DynProvider,
    chain: &Chain,
    watched: &Watched,
) -> Result<(Seen, Option<Address>), alloy::transports::TransportError> {
    let (receipt, mined_at) = match inclusion(rpc, chain, watched.hash).await? {
        Inclusion::Unseen => {
            // Pending in the node's pool, or unknown to it (made up, or not here yet).
            let known = rpc.get_transaction_by_hash(watched.hash).await?.is_some();
            return Ok((if known { Seen::Unseen } else { Seen::Unknown }, None));
        }
        Inclusion::NotFinal => return Ok((Seen::NotFinal, None)),
        Inclusion::Final(receipt, mined_at) => (receipt, mined_at),
    };
    if !receipt.status() {
        return Ok((Seen::Reverted, None));
    }
    let (to_us, from_payers, payer) = match watched.token {
        None => match rpc.get_transaction_by_hash(watched.hash).await? {
            Some(tx) if tx.to() == Some(watched.receiver) => {
                let ours = watched.payers.contains(&tx.from());
                let paid = if ours { tx.value() } else { U256::ZERO };
                (tx.value(), paid, ours.then(|| tx.from()))
            }
            Some(_) => (U256::ZERO, U256::ZERO, None),
            None => return Ok((Seen::Unseen, None)),
        },
        Some(token) => (
            transferred(&receipt, token, watched.receiver, None),
            transferred(&receipt, token, watched.receiver, Some(&watched.payers)),
            super::token_payer(&receipt, token, watched.receiver, &watched.payers),
        ),
    };
    Ok((
        judge(
            to_us,
            from_payers,
            mined_at.saturating_add(chain.block_time_slack),
            watched.not_before,
        ),
        payer,
    ))
}

/// The verdict on a final, successful transaction that sent `to_us` to our receiver, of which
/// `from_payers` came from the invoice client's wallets, in a block of time `mined_at` (plus
/// the chain's `block_time_slack`).
fn judge(to_us: U256, from_payers: U256, mined_at: u64, not_before: OffsetDateTime) -> Seen {
    // Block times are whole seconds: a block of the second the invoice was issued in counts.
    let issued = u64::try_from(not_before.unix_timestamp()).unwrap_or(0);
    if to_us.is_zero() {
        Seen::PaysUsNothing
    } else if from_payers.is_zero() {
        Seen::NotTheClientsPayer
    } else if mined_at < issued {
        Seen::BeforeTheInvoice
    } else {
        Seen::Paid(from_payers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_clients_transfers_after_the_invoice_pay_it() {
        let issued = OffsetDateTime::from_unix_timestamp(1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            + time::Duration::milliseconds(700);
        let five = U256::from(5u8);
        assert_eq!(judge(five, five, 1_000_000, issued), Seen::Paid(five));
        assert_eq!(judge(five, five, 1_000_001, issued), Seen::Paid(five));
        assert_eq!(
            judge(five, U256::from(2u8), 1_000_001, issued),
            Seen::Paid(U256::from(2u8))
        );
        assert_eq!(
            judge(five, U256::ZERO, 1_000_001, issued),
            Seen::NotTheClientsPayer
        );
        assert_eq!(judge(five, five, 999_999, issued), Seen::BeforeTheInvoice);
        // With the slack the caller adds: a block 30 s older than the issue, with 60 s of it.
        assert_eq!(judge(five, five, 999_970 + 60, issued), Seen::Paid(five));
        assert_eq!(
            judge(U256::ZERO, U256::ZERO, 1_000_001, issued),
            Seen::PaysUsNothing
        );
    }

    #[test]
    fn amounts_beyond_38_digits_are_not_recordable() {
        assert_eq!(recordable(U256::from(5u8)), Some(Minor::new(5)));
        let max = 10u128.pow(38) - 1;
        assert_eq!(recordable(U256::from(max)), Some(Minor::new(max)));
        assert_eq!(recordable(U256::from(max + 1)), None);
        assert_eq!(recordable(U256::MAX), None);
    }
}
