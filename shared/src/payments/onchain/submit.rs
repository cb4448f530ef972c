//! The `blockchain-payment` function: a client says which transaction pays an invoice.
//! Nothing is believed yet: the payment is recorded as PENDING for the outstanding amount, and a
//! watch job for the `chain-monitor` worker is enqueued in the same transaction, so the payment
//! exists if and only if it is watched. At most [`MAX_WAITING`] may wait per invoice. Whether the
//! transaction pays this invoice (its payer, its time, its amount) is the monitor's judgement, on
//! the chain's final word: nothing the client says is believed.

use super::{Asset, Chains, QUEUE, Watch, provider};
use crate::chain::AlloyRpc;
use crate::endpoint;
use crate::error::{AppError, AppResult, FieldError};
use crate::extract::AuthUser;
use crate::extract::{Json, Path};
use crate::function::needs::{CHAIN_RPC, DATABASE, PUBLIC_KEYS};
use crate::function::{FunctionSpec, Http, Trigger};
use crate::payments::dto::BlockchainPaymentInput;
use crate::payments::error::PaymentsError;
use crate::payments::invoices::{self, Recorded, Started};
use crate::payments::model::{Payment, PaymentMethod};
use crate::payments::state::PaymentsState;
use alloy::consensus::Transaction as _;
use alloy::network::TransactionResponse as _;
use alloy::primitives::B256;
use alloy::providers::{DynProvider, Provider};
use axum::extract::State;
use axum::http::StatusCode;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

/// `blockchain-payment`: a transaction that pays an invoice on a chain, to be watched.
pub static BLOCKCHAIN_PAYMENT: FunctionSpec = FunctionSpec {
    name: "blockchain-payment",
    trigger: Trigger::Http(&Http::new(
        PaymentsState::with_chains,
        &[endpoint!(blockchain_payment)],
    )),
    needs: &[&DATABASE, &PUBLIC_KEYS, &CHAIN_RPC, &super::NEED],
};

#[utoipa::path(post, path = "/invoices/{id}/blockchain-payment", tag = "payments", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    request_body = BlockchainPaymentInput,
    responses(
        (status = 202, description = "The payment, PENDING until the chain monitor finds the transaction final (the same payment if this transaction was submitted for this invoice before). It credits the invoice only if it was paid from a wallet linked (SIWE) to the invoice's client account, in a block no older than the invoice's issue; otherwise it ends FAILED", body = Payment),
        (status = 404, description = crate::payments::NOT_VISIBLE),
        (status = 409, description = "The invoice is not SENT or is paid, its currency is not taken on that chain, 3 of its on-chain payments are still being checked, or the transaction is another invoice's payment (waiting or paid)"),
        (status = 422, description = "No payments are taken on chain_id"),
        (status = 503, description = "On-chain payments are not configured, or the currency's token cannot be taken: its decimals() could not be read, or differ from the currency's (the detail names PAYMENT_CHAINS)"),
    ))]
pub async fn blockchain_payment(
    State(state): State<PaymentsState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<BlockchainPaymentInput>,
) -> AppResult<(StatusCode, Json<Payment>)> {
    let payment = submit(state.db()?, state.chains(), state.rpc(), &caller, id, body).await?;
    Ok((StatusCode::ACCEPTED, Json(payment)))
}

/// How many on-chain payments of one invoice may wait for the chain at once: a client cannot
/// flood an invoice (and the RPC) with made-up hashes.
pub const MAX_WAITING: i64 = 3;

/// A transaction hash as the API takes it: `0x` and 64 hex digits, any case.
fn tx_hash(text: &str) -> AppResult<B256> {
    let shaped = text.len() == 66
        && text.starts_with("0x")
        && text[2..].bytes().all(|b| b.is_ascii_hexdigit());
    shaped
        .then(|| text.parse().ok())
        .flatten()
        .ok_or_else(|| AppError::invalid("tx_hash", "must be 0x and 64 hex digits"))
}

/// Records the payment and its watch job (see the module's comment). The same transaction
/// submitted again for the same invoice answers the same payment; for another invoice, 409.
#[tracing::instrument(name = "payments.blockchain_payment", skip_all)]
pub async fn submit(
    pool: &PgPool,
    chains: &Chains,
    rpc: &AlloyRpc,
    caller: &AuthUser,
    invoice_id: Uuid,
    input: BlockchainPaymentInput,
) -> AppResult<Payment> {
    let hash = tx_hash(&input.tx_hash)?;
    let chain = chains.get(input.chain_id)?;
    // Before any lock is held, as both may ask the chain: a token is taken only in its
    // currency's units (checked once per process), and a transaction the node already knows to
    // be somebody else's is refused.
    let invoice = invoices::visible(pool, caller, invoice_id).await?;
    if let Some(asset) = chain.asset(&invoice.currency) {
        if let Asset::Token(address) = asset {
            let node = rpc.provider(chain.id).ok_or_else(|| {
                AppError::Unavailable(format!(
                    "chain {} has no RPC endpoint (CHAIN_RPC_URLS)",
                    chain.id
                ))
            })?;
            chain.check_decimals(node, address).await?;
        }
        if let Some(node) = rpc.provider(chain.id) {
            refuse_a_known_strangers(pool, node, chain, asset, invoice.project_id, hash).await?;
        }
    }
    let mut tx = pool.begin().await?;
    let payable = invoices::lock_payable(caller, invoice_id, &mut tx).await?;
    let Some(asset) = chain.asset(payable.currency.code()) else {
        return Err(PaymentsError::NotTakenOnChain {
            currency: payable.currency.clone(),
            chain_id: chain.id,
        }
        .into());
    };
    let provider = provider(chain.id);
    let hash = format!("{hash:#x}");
    let waiting = sqlx::query!(
        r#"SELECT count(*) AS "waiting!", (SELECT sent_at FROM invoices WHERE id = $1) AS sent_at
           FROM payments WHERE invoice_id = $1 AND status = 'PENDING' AND provider LIKE 'evm:%'
             AND provider_ref <> $2"#,
        invoice_id,
        hash
    )
    .fetch_one(&mut *tx)
    .await?;
    if waiting.waiting >= MAX_WAITING {
        return Err(PaymentsError::TooManyWaiting(MAX_WAITING).into());
    }
    // An invoice that is payable has been SENT; one from before sent_at was kept is as old as
    // its last change (the migration's choice).
    let not_before = waiting.sent_at.unwrap_or(payable.invoice.updated_at);
    let started = Started {
        provider: &provider,
        provider_ref: &hash,
        method: PaymentMethod::BlockchainToken,
    };
    let payment_id = match invoices::record_started(&mut tx, caller, &payable, &started).await? {
        Recorded::Payment(id) => id,
        Recorded::OfAnotherInvoice => {
            return Err(PaymentsError::AnotherInvoicesTransaction.into());
        }
    };
    let token = match asset {
        Asset::Native => None,
        Asset::Token(address) => Some(format!("{address:#x}")),
    };
    let watch_until = OffsetDateTime::now_utc() + chain.watch_for;
    let new = sqlx::query!(
        r#"INSERT INTO chain_payments (payment_id, chain_id, tx_hash, token, receiver, watch_until,
                                          unknown_until, not_before)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING"#,
        payment_id,
        i64::try_from(chain.id).map_err(AppError::internal)?,
        hash,
        token,
        format!("{:#x}", chain.receiver),
        watch_until,
        OffsetDateTime::now_utc() + chain.unknown_for,
        not_before,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if new {
        let watch =
            serde_json::to_string(&Watch::Payment { payment_id }).map_err(AppError::internal)?;
        crate::queue::enqueue(&mut tx, QUEUE, &watch, std::time::Duration::ZERO).await?;
    }
    let payment = invoices::payment_rows(&mut tx, invoice_id, Some(payment_id))
        .await?
        .pop()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("a recorded payment is gone")))?;
    tx.commit().await?;
    Ok(payment)
}

/// Refuses at once (422) a transaction the node already knows to pay us from none of the
/// client's wallets, so that a stranger who saw it in the pool cannot hold it while it is
/// judged: a native transfer's sender is known while it is pending, a token's `Transfer` once it
/// is mined. One the node does not know yet, or cannot be asked about, is recorded, and the
/// monitor judges it by the same rule when it is final.
async fn refuse_a_known_strangers(
    pool: &PgPool,
    node: &DynProvider,
    chain: &super::Chain,
    asset: Asset,
    project_id: Uuid,
    hash: B256,
) -> AppResult<()> {
    // Only one that pays us and is another's is refused here; the rest the monitor judges.
    let paid_by_client = match asset {
        Asset::Native => match node.get_transaction_by_hash(hash).await {
            Ok(Some(found)) if found.to() == Some(chain.receiver) => {
                super::payers_of(pool, project_id)
                    .await?
                    .contains(&found.from())
            }
            _ => return Ok(()),
        },
        Asset::Token(token) => match node.get_transaction_receipt(hash).await {
            Ok(Some(receipt))
                if receipt.status()
                    && !super::transferred(&receipt, token, chain.receiver, None).is_zero() =>
            {
                let payers = super::payers_of(pool, project_id).await?;
                !super::transferred(&receipt, token, chain.receiver, Some(&payers)).is_zero()
            }
            _ => return Ok(()),
        },
    };
    if paid_by_client {
        Ok(())
    } else {
        Err(AppError::Validation(vec![FieldError::semantic(
            "tx_hash",
            "was not paid from a wallet linked to this invoice's client (link the wallet with \
             Sign-In with Ethereum, then pay from it)",
        )]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_is_0x_and_64_hex_digits() -> crate::TestResult {
        let good = format!("0x{}", "aB".repeat(32));
        assert_eq!(format!("{:#x}", tx_hash(&good)?), good.to_lowercase());
        for bad in [
            String::new(),
            "0x".into(),
            "ab".repeat(33),
            format!("0x{}", "ab".repeat(31)),
            format!("0x{}g", "ab".repeat(31) + "a"),
            format!("0X{}", "ab".repeat(32)),
            format!("0x{}", "ab".repeat(33)),
        ] {
            assert!(tx_hash(&bad).is_err_and(|e| e.status() == 400), "{bad}");
        }
        Ok(())
    }
}
