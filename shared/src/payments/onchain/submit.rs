//! `POST /invoices/{id}/blockchain-payment`: a client says which transaction pays an invoice.
//! Nothing is believed yet: the payment is recorded as PENDING for the outstanding amount, and a
//! watch job for the `chain-monitor` worker is enqueued in the same transaction, so the payment
//! exists if and only if it is watched.

use super::{Asset, Chains, QUEUE, provider};
use crate::error::{AppError, AppResult};
use crate::extract::AuthUser;
use crate::payments::dto::BlockchainPaymentInput;
use crate::payments::invoices::{self, Recorded, Started};
use crate::payments::model::{Payment, PaymentMethod};
use alloy::primitives::B256;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

/// The worker's message: watch this payment, or this payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Watch {
    Payment { payment_id: Uuid },
    Payout { payout_id: Uuid },
}

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
    caller: &AuthUser,
    invoice_id: Uuid,
    input: BlockchainPaymentInput,
) -> AppResult<Payment> {
    let hash = tx_hash(&input.tx_hash)?;
    let chain = chains.get(input.chain_id)?;
    let mut tx = pool.begin().await?;
    let payable = invoices::lock_payable(caller, invoice_id, &mut tx).await?;
    let Some(asset) = chain.asset(payable.currency.code()) else {
        return Err(AppError::Conflict(format!(
            "this invoice's currency ({}) is not taken on chain {}",
            payable.currency.code(),
            chain.id
        )));
    };
    let provider = provider(chain.id);
    let hash = format!("{hash:#x}");
    let started = Started {
        provider: &provider,
        provider_ref: &hash,
        method: PaymentMethod::BlockchainToken,
    };
    let payment_id = match invoices::record_started(&mut tx, caller, &payable, &started).await? {
        Recorded::Payment(id) => id,
        Recorded::OfAnotherInvoice => {
            return Err(AppError::Conflict(
                "this transaction is already another invoice's payment".into(),
            ));
        }
    };
    let token = match asset {
        Asset::Native => None,
        Asset::Token(address) => Some(format!("{address:#x}")),
    };
    let watch_until = OffsetDateTime::now_utc() + chain.watch_for;
    let new = sqlx::query!(
        r#"INSERT INTO chain_payments (payment_id, chain_id, tx_hash, token, receiver, watch_until)
           VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING"#,
        payment_id,
        i64::try_from(chain.id).map_err(AppError::internal)?,
        hash,
        token,
        format!("{:#x}", chain.receiver),
        watch_until,
    )
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if new {
        sqlx::query!(
            "UPDATE invoices SET blockchain_tx_hash = $2, updated_at = now() WHERE id = $1",
            invoice_id,
            hash
        )
        .execute(&mut *tx)
        .await?;
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
