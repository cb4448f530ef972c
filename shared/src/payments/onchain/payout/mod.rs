//! The `payouts` function (ADMIN): an on-chain transfer of a configured asset, sent at most once per
//! idempotency key.
//!
//! Under one lock (a transaction-scoped advisory lock: payouts are few, and one at a time keeps
//! nonces, the daily limit and the key check exact), the request is matched against an earlier
//! payout with the same key; otherwise the daily limit is checked, the transaction is built and
//! signed, and stored with its signed bytes, an audit row and a watch job, in one commit. Only
//! then is it broadcast. A broadcast that fails is repeated by the `chain-monitor` worker with
//! the same bytes, so a crash or a retry can never make a second transfer: there is one signed
//! transaction per key, and a chain accepts one transaction per nonce.
//!
//! The same core ([`Signer::sign_and_store`]) pays refunds of on-chain payments back
//! (`POST /invoices/{id}/refunds`, [`RefundPayout`]): to the wallet that paid, in the payment's
//! currency on its chain, under the idempotency key `refund:<refund id>`, counted against the
//! same daily limits, with the same step-up, and inside the refund's own transaction.
//!
//! The signer is an AWS KMS secp256k1 key (`PAYOUT_KMS_KEY_ID`, through alloy's AWS signer, so
//! the key never leaves KMS; built with the `kms` feature, which `functions/payouts` and
//! `functions/refunds` have), or a local key from `PAYOUT_PRIVATE_KEY` (a secret; never
//! logged).

use super::{Asset, Chain, Chains, PayoutStatus, QUEUE, Watch};
use crate::chain::AlloyRpc;
use crate::config::{ConfigError, Env};
use crate::error::{AppError, AppResult, FieldError};
use crate::extract::AuthUser;
use crate::function::{FaasValue, Need, Var, optional, secret};
use crate::payments::audit::{self, PaymentsAction};
use crate::payments::error::PaymentsError;
use crate::payments::lifecycle::PaymentStatus;
use crate::payments::model::stored;
use crate::payments::money::{Currency, Minor};
use alloy::eips::eip2718::Encodable2718;
use alloy::network::{EthereumWallet, NetworkTransactionBuilder, TransactionBuilder};
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use std::collections::HashMap;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

alloy::sol! {
    /// ERC-20's transfer.
    function transfer(address to, uint256 value) external returns (bool);
}

/// How long a second factor must have been on before it approves a payout: a password thief who
/// turns one on for an ADMIN without it waits that long, while the account's owner has the
/// mail that says it was turned on.
const MFA_MIN_AGE: &str = "PAYOUT_MFA_MIN_AGE_HOURS";

/// What the payouts function needs beyond the chains.
pub const NEED: Need = Need {
    name: "payouts",
    can_be_unavailable: true,
    vars: &[
        Var {
            name: "PAYOUT_PRIVATE_KEY",
            sam: optional(
                "PayoutPrivateKey",
                true,
                "Hex secp256k1 key of the payout account; empty turns payouts off (503)",
            ),
            openfaas: secret("gantry-payout-private-key"),
        },
        Var {
            name: "PAYOUT_KMS_KEY_ID",
            sam: optional(
                "PayoutKmsKeyId",
                false,
                "Id of an AWS KMS key (ECC_SECG_P256K1, SIGN_VERIFY) that signs payouts, or `create` for a key the stack creates; it wins over PayoutPrivateKey",
            ),
            openfaas: FaasValue::Unset,
        },
        Var {
            name: "PAYOUT_DAILY_LIMITS",
            sam: optional(
                "PayoutDailyLimits",
                false,
                "JSON object: currency -> most minor units paid out in any 24 hours; a currency not listed is never paid out",
            ),
            openfaas: FaasValue::Value { value: "{}" },
        },
        Var {
            name: MFA_MIN_AGE,
            sam: crate::need::SamValue::Parameter {
                name: "PayoutMfaMinAgeHours",
                secret: false,
                default: Some("24"),
                description: "Hours an ADMIN's authenticator must have been on before it may approve a payout (0 to 720)",
            },
            openfaas: FaasValue::Value { value: "24" },
        },
    ],
    aws: &[crate::need::AwsAccess::KmsSign {
        key_parameter: "PayoutKmsKeyId",
    }],
};

/// A payout as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Payout {
    pub id: Uuid,
    pub chain_id: u64,
    /// The recipient (lower case).
    pub to: String,
    #[schema(value_type = String, pattern = "^[0-9]{1,38}$", example = "12345")]
    pub amount: Minor,
    pub currency: String,
    pub tx_hash: String,
    /// PENDING until the chain monitor finds the transaction final.
    pub status: PayoutStatus,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The payout signer and limits (`PAYOUT_KMS_KEY_ID` or `PAYOUT_PRIVATE_KEY`,
/// `PAYOUT_DAILY_LIMITS`).
pub struct Payouts {
    key: Option<SecretString>,
    #[cfg_attr(not(feature = "kms"), allow(dead_code))]
    kms_key: Option<String>,
    #[cfg(feature = "kms")]
    kms: kms::Kms,
    limits: HashMap<String, Minor>,
    mfa_min_age: std::time::Duration,
}

impl Payouts {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        const LIMITS: &str = "PAYOUT_DAILY_LIMITS";
        let limits: HashMap<String, String> = match env.get(LIMITS) {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| ConfigError::invalid(LIMITS, e.to_string()))?,
            None => HashMap::new(),
        };
        let limits = limits
            .into_iter()
            .map(|(currency, limit)| {
                Currency::parse("currency", &currency)
                    .map_err(|e| ConfigError::invalid(LIMITS, e.to_string()))?;
                let limit = Minor::parse(&currency, &limit)
                    .map_err(|e| ConfigError::invalid(LIMITS, e.to_string()))?;
                Ok((currency, limit))
            })
            .collect::<Result<_, ConfigError>>()?;
        let key = env.get("PAYOUT_PRIVATE_KEY").map(SecretString::from);
        if let Some(key) = &key {
            // Checked at start, so a bad key is a start-up error, not a 500 later. The error
            // never quotes the key.
            signer(key).map_err(|_| {
                ConfigError::invalid("PAYOUT_PRIVATE_KEY", "is not a hex secp256k1 key")
            })?;
        }
        let hours: u64 = match env.get(MFA_MIN_AGE) {
            Some(text) => text
                .trim()
                .parse()
                .ok()
                .filter(|h| *h <= 720)
                .ok_or_else(|| ConfigError::invalid(MFA_MIN_AGE, "must be 0 to 720 hours"))?,
            None => 24,
        };
        Ok(Self {
            mfa_min_age: std::time::Duration::from_secs(hours * 3600),
            key,
            kms_key: env.get("PAYOUT_KMS_KEY_ID"),
            #[cfg(feature = "kms")]
            kms: kms::Kms::from_env(env),
            limits,
        })
    }

    /// The wallet that signs payouts, and its address: the KMS key when one is configured
    /// (its public key is read once, on first use), else the local key; 503 when neither is.
    async fn wallet(&self) -> AppResult<(EthereumWallet, Address)> {
        if let Some(key_id) = &self.kms_key {
            #[cfg(feature = "kms")]
            // Boxed: the KMS client's future is deep enough to overflow the compiler's layout
            // limit inside the handler's future.
            return Box::pin(self.kms.wallet(key_id)).await;
            #[cfg(not(feature = "kms"))]
            return Err(AppError::Unavailable(format!(
                "PAYOUT_KMS_KEY_ID is {key_id:?}, but this binary is built without KMS (the `kms` feature)"
            )));
        }
        let key = self.key.as_ref().ok_or_else(|| {
            AppError::Unavailable(
                "payouts are not configured (PAYOUT_KMS_KEY_ID or PAYOUT_PRIVATE_KEY)".into(),
            )
        })?;
        let signer = signer(key)
            .map_err(|_| AppError::internal(anyhow::anyhow!("the payout key is invalid")))?;
        let address = signer.address();
        Ok((EthereumWallet::from(signer), address))
    }
}

#[cfg(feature = "kms")]
mod kms {
    //! The KMS signer: aws-sdk-kms configured from the environment (`crate::aws`), without
    //! aws-config, over rustls with ring, built without I/O.
    use crate::config::Env;
    use crate::error::{AppError, AppResult};
    use alloy::network::EthereumWallet;
    use alloy::primitives::Address;
    use alloy::signers::Signer;
    use alloy_signer_aws::AwsSigner;
    use tokio::sync::OnceCell;

    /// Holds the environment only: the client and the signer are built on the first payout,
    /// so a start (and every request that is no payout) pays nothing for them.
    pub struct Kms {
        env: Env,
        signer: OnceCell<AwsSigner>,
    }

    impl Kms {
        pub fn from_env(env: &Env) -> Self {
            Self {
                env: env.clone(),
                signer: OnceCell::new(),
            }
        }

        pub async fn wallet(&self, key_id: &str) -> AppResult<(EthereumWallet, Address)> {
            let signer = self
                .signer
                .get_or_try_init(|| {
                    let client = crate::aws::sdk_client!(aws_sdk_kms, &self.env, "KMS");
                    AwsSigner::new(client, key_id.to_owned(), None)
                })
                .await
                .map_err(|err| {
                    tracing::warn!(error = %err, "AWS KMS: the payout key could not be read");
                    AppError::Unavailable("AWS KMS is unavailable (PAYOUT_KMS_KEY_ID)".into())
                })?;
            Ok((EthereumWallet::from(signer.clone()), signer.address()))
        }
    }
}

fn signer(key: &SecretString) -> Result<PrivateKeySigner, ()> {
    key.expose_secret()
        .trim()
        .trim_start_matches("0x")
        .parse()
        .map_err(|_| ())
}

impl Payouts {
    /// Admits `caller` to moving money out of the payout account: ADMIN now (not only in the
    /// token), with a second factor used minutes ago and turned on long enough ago; else 403
    /// or 401 (RFC 9470).
    pub(crate) async fn admit(&self, pool: &PgPool, caller: &AuthUser) -> AppResult<()> {
        crate::identity::facade::for_money(
            pool,
            caller,
            &[crate::domain::Role::Admin],
            self.mfa_min_age,
        )
        .await
    }

    /// What signing a transfer of `currency` on `chain_id` needs, gathered before any lock:
    /// 422 when the chain does not take the currency or the currency has no daily limit, 503
    /// when the chain, its RPC or the signer is not there.
    pub(crate) async fn signer<'a>(
        &self,
        chains: &'a Chains,
        rpc: &'a AlloyRpc,
        chain_id: u64,
        currency: Currency,
    ) -> AppResult<Signer<'a>> {
        let chain = chains.get(chain_id)?;
        let asset = chain.asset(currency.code()).ok_or_else(|| {
            AppError::Validation(vec![FieldError::semantic(
                "currency",
                "is not an asset of this chain",
            )])
        })?;
        let limit = self.limits.get(currency.code()).copied().ok_or_else(|| {
            AppError::Validation(vec![FieldError::semantic(
                "currency",
                "has no daily payout limit (PAYOUT_DAILY_LIMITS), so it is never paid out",
            )])
        })?;
        let (wallet, sender) = self.wallet().await?;
        let node = rpc.provider(chain.id).ok_or_else(|| {
            AppError::Unavailable(format!(
                "chain {} has no RPC endpoint (CHAIN_RPC_URLS)",
                chain.id
            ))
        })?;
        // Amounts paid out are in the token's units only once its decimals are the currency's.
        let token = match asset {
            Asset::Native => None,
            Asset::Token(address) => {
                chain.check_decimals(node, address).await?;
                Some(address)
            }
        };
        Ok(Signer {
            chain,
            token,
            currency,
            limit,
            wallet,
            sender,
            node,
        })
    }
}

/// The payout account ready to sign in one currency on one chain ([`Payouts::signer`]).
pub(crate) struct Signer<'a> {
    chain: &'a Chain,
    /// The ERC-20 contract paid in; `None` for the chain's coin.
    token: Option<Address>,
    currency: Currency,
    limit: Minor,
    wallet: EthereumWallet,
    sender: Address,
    node: &'a DynProvider,
}

/// One transfer out of the payout account.
pub(crate) struct Transfer<'k> {
    pub to: Address,
    pub amount: Minor,
    /// One transfer per key, ever.
    pub key: &'k str,
    /// The refund this pays back, if it does.
    pub refund_id: Option<Uuid>,
}

/// A stored payout, and its signed bytes when this call signed it (to broadcast once its
/// transaction committed).
pub(crate) struct Signed {
    pub payout: Payout,
    raw: Option<Vec<u8>>,
}

impl Signer<'_> {
    /// The chain's RPC endpoint.
    pub(crate) fn node(&self) -> &DynProvider {
        self.node
    }

    /// The chain.
    pub(crate) fn chain(&self) -> &Chain {
        self.chain
    }

    /// Inside the caller's transaction, under the payouts lock (held to its end): answers the
    /// payout stored under the transfer's key (422 if it was another transfer), or checks the
    /// daily limit (409), signs the transfer with the next nonce, and stores it with its signed
    /// bytes, an audit row and a watch job. Nothing is broadcast before the caller commits
    /// ([`Self::broadcast`]).
    pub(crate) async fn sign_and_store(
        &self,
        tx: &mut PgConnection,
        caller: &AuthUser,
        transfer: &Transfer<'_>,
    ) -> AppResult<Signed> {
        let (chain, token, currency, limit, sender, node) = (
            self.chain,
            self.token,
            &self.currency,
            self.limit,
            self.sender,
            self.node,
        );
        let Transfer {
            to,
            amount,
            key,
            refund_id,
        } = *transfer;
        let chain_id = i64::try_from(chain.id).map_err(AppError::internal)?;
        let recipient = format!("{to:#x}");
        sqlx::query!("SELECT pg_advisory_xact_lock(hashtext('gantry.payouts'))")
            .execute(&mut *tx)
            .await?;
        if let Some(row) = sqlx::query!(
            r#"SELECT id, chain_id, recipient, amount::text AS "amount!", currency, tx_hash,
                      status AS "status: PayoutStatus", refund_id, created_at
               FROM payouts WHERE idempotency_key = $1"#,
            key
        )
        .fetch_optional(&mut *tx)
        .await?
        {
            let earlier = Payout {
                id: row.id,
                chain_id: u64::try_from(row.chain_id).map_err(AppError::internal)?,
                to: row.recipient,
                amount: stored(&row.amount)?,
                currency: row.currency,
                tx_hash: row.tx_hash,
                status: row.status,
                created_at: row.created_at,
            };
            let same = earlier.chain_id == chain.id
                && earlier.to == recipient
                && earlier.amount == amount
                && earlier.currency == currency.code()
                && row.refund_id == refund_id;
            return if same {
                Ok(Signed {
                    payout: earlier,
                    raw: None,
                })
            } else {
                Err(AppError::Unprocessable(
                    "this idempotency_key was used for another payout".into(),
                ))
            };
        }
        let spent = sqlx::query_scalar!(
            r#"SELECT COALESCE(sum(amount), 0)::text AS "spent!" FROM payouts
               WHERE currency = $1 AND status <> 'FAILED' AND created_at > now() - interval '1 day'"#,
            currency.code()
        )
        .fetch_one(&mut *tx)
        .await?;
        let spent = stored(&spent)?;
        if spent.saturating_add(amount) > limit {
            return Err(PaymentsError::DailyLimit {
                currency: currency.clone(),
                spent,
                limit,
            }
            .into());
        }
        let last_nonce = sqlx::query_scalar!(
            "SELECT max(nonce) FROM payouts WHERE chain_id = $1 AND sender = $2",
            chain_id,
            format!("{sender:#x}")
        )
        .fetch_one(&mut *tx)
        .await?;
        let unreachable = |e: alloy::transports::TransportError| {
            tracing::warn!(chain = chain.id, error = %crate::redact::Redacted(&e), "payout: the chain RPC failed");
            AppError::Unavailable(format!("chain {}'s RPC endpoint is unavailable", chain.id))
        };
        let chain_nonce = node
            .get_transaction_count(sender)
            .pending()
            .await
            .map_err(unreachable)?;
        let ours = last_nonce
            .and_then(|n| u64::try_from(n).ok())
            .map(|n| n + 1);
        let nonce = ours.map_or(chain_nonce, |n| n.max(chain_nonce));
        let fees = node.estimate_eip1559_fees().await.map_err(unreachable)?;
        let value = U256::from(amount.get());
        let request = match token {
            None => TransactionRequest::default()
                .with_to(to)
                .with_value(value)
                .with_gas_limit(21_000),
            Some(token) => TransactionRequest::default()
                .with_to(token)
                .with_input(transferCall { to, value }.abi_encode())
                .with_gas_limit(100_000),
        }
        .with_from(sender)
        .with_chain_id(chain.id)
        .with_nonce(nonce)
        .with_max_fee_per_gas(fees.max_fee_per_gas)
        .with_max_priority_fee_per_gas(fees.max_priority_fee_per_gas);
        let signed = request
            .build(&self.wallet)
            .await
            .map_err(|e| AppError::internal(anyhow::anyhow!("signing a payout: {e}")))?;
        let raw = signed.encoded_2718();
        let tx_hash = format!("{:#x}", signed.tx_hash());
        let id = Uuid::now_v7();
        let created_at = sqlx::query_scalar!(
            r#"INSERT INTO payouts (id, idempotency_key, chain_id, sender, recipient, amount,
                                    currency, token, nonce, tx_hash, raw_tx, created_by, refund_id)
               VALUES ($1, $2, $3, $4, $5, $6::text::numeric, $7, $8, $9, $10, $11, $12, $13)
               RETURNING created_at"#,
            id,
            key,
            chain_id,
            format!("{sender:#x}"),
            recipient,
            amount.to_string(),
            currency.code(),
            token.map(|t| format!("{t:#x}")),
            i64::try_from(nonce).map_err(AppError::internal)?,
            tx_hash,
            raw,
            caller.user_id,
            refund_id,
        )
        .fetch_one(&mut *tx)
        .await?;
        audit::record(
            &mut *tx,
            PaymentsAction::PayoutSent,
            caller,
            id,
            json!({"chain_id": chain.id, "to": recipient, "amount": amount, "currency": currency.code(), "tx_hash": tx_hash, "refund_id": refund_id}),
        )
        .await?;
        let watch =
            serde_json::to_string(&Watch::Payout { payout_id: id }).map_err(AppError::internal)?;
        crate::queue::enqueue(&mut *tx, QUEUE, &watch, std::time::Duration::ZERO).await?;
        Ok(Signed {
            payout: Payout {
                id,
                chain_id: chain.id,
                to: recipient,
                amount,
                currency: currency.code().to_owned(),
                tx_hash,
                status: PayoutStatus::Pending,
                created_at,
            },
            raw: Some(raw),
        })
    }

    /// Broadcasts a payout this call signed, once its transaction has committed. A failure is
    /// only logged: the payout is stored and watched, and the monitor broadcasts the same bytes
    /// again.
    pub(crate) async fn broadcast(&self, signed: &Signed) {
        let Some(raw) = &signed.raw else { return };
        if let Err(err) = self.node.send_raw_transaction(raw).await {
            tracing::warn!(payout = %signed.payout.id, error = %crate::redact::Redacted(&err), "payout broadcast failed; the monitor retries it");
        }
    }
}

/// What paying a refund back on chain uses: the database, the payout signer (an error when
/// this function has none: only an on-chain refund needs it), the chains and their nodes.
pub(crate) struct Onchain<'a> {
    pub pool: &'a PgPool,
    pub payouts: Option<&'a Payouts>,
    pub chains: &'a Chains,
    pub rpc: &'a AlloyRpc,
}

/// The refund of an on-chain payment, ready to pay back ([`RefundPayout::ready`]).
pub(crate) struct RefundPayout<'a> {
    signer: Signer<'a>,
    payer: Address,
}

impl<'a> RefundPayout<'a> {
    /// For payment `payment_id` of invoice `invoice_id`, if it was made on chain (`evm:`):
    /// admits the caller as for any payout (ADMIN with a fresh second factor: 403, 401), finds
    /// the wallet that paid, and readies the payout signer on its chain in its currency.
    /// `None` for any other payment, or none (the refund's own checks answer those).
    ///
    /// The payer is the one the chain monitor recorded when it confirmed the payment, or, for
    /// a payment confirmed before it did, read from the chain by the monitor's rule. It must
    /// still be a wallet of the invoice's client (the payer rule: money moves only between the
    /// invoice and a wallet bound to it): one they unlinked since gets nothing (409).
    pub(crate) async fn ready(
        on: &Onchain<'a>,
        caller: &AuthUser,
        invoice_id: Uuid,
        payment_id: Uuid,
    ) -> AppResult<Option<Self>> {
        let pool = on.pool;
        let Some(row) = sqlx::query!(
            r#"SELECT p.provider, p.currency, p.status AS "status: PaymentStatus", i.project_id,
                      c.chain_id AS "chain_id?", c.tx_hash AS "tx_hash?", c.token,
                      c.receiver AS "receiver?", c.payer
               FROM payments p JOIN invoices i ON i.id = p.invoice_id
                    LEFT JOIN chain_payments c ON c.payment_id = p.id
               WHERE p.id = $1 AND p.invoice_id = $2"#,
            payment_id,
            invoice_id
        )
        .fetch_optional(pool)
        .await?
        .filter(|row| row.provider.starts_with("evm:")) else {
            return Ok(None);
        };
        let payouts = on.payouts.ok_or_else(|| {
            AppError::internal(anyhow::anyhow!(
                "this function was built without the payout signer"
            ))
        })?;
        payouts.admit(pool, caller).await?;
        if !matches!(
            row.status,
            PaymentStatus::Confirmed | PaymentStatus::Refunded
        ) {
            return Err(PaymentsError::NotRefundable.into());
        }
        let malformed =
            |what: &str| AppError::internal(anyhow::anyhow!("a stored {what} is malformed"));
        let (Some(chain_id), Some(hash), Some(receiver)) =
            (row.chain_id, row.tx_hash, row.receiver)
        else {
            return Err(AppError::internal(anyhow::anyhow!(
                "the on-chain payment {payment_id} has no chain_payments row"
            )));
        };
        let chain_id = u64::try_from(chain_id).map_err(|_| malformed("chain id"))?;
        let currency =
            Currency::parse("currency", &row.currency).map_err(|_| malformed("currency"))?;
        let signer = payouts
            .signer(on.chains, on.rpc, chain_id, currency)
            .await?;
        let payers = super::payers_of(pool, row.project_id).await?;
        let payer = match row.payer {
            Some(payer) => Some(payer.parse::<Address>().map_err(|_| malformed("payer"))?),
            None => {
                let token = row
                    .token
                    .map(|t| t.parse::<Address>().map_err(|_| malformed("token")))
                    .transpose()?;
                let receiver = receiver.parse().map_err(|_| malformed("receiver"))?;
                let hash = hash.parse().map_err(|_| malformed("hash"))?;
                super::payer_on_chain(signer.node(), hash, token, receiver, &payers)
                    .await
                    .map_err(|e| {
                        tracing::warn!(chain = chain_id, error = %crate::redact::Redacted(&e), "refund: the chain RPC failed");
                        AppError::Unavailable(format!(
                            "chain {chain_id}'s RPC endpoint is unavailable"
                        ))
                    })?
            }
        };
        let payer = payer
            .filter(|payer| payers.contains(payer))
            .ok_or(PaymentsError::PayerNotLinked)?;
        debug_assert_eq!(signer.chain().id, chain_id);
        Ok(Some(Self { signer, payer }))
    }

    /// Inside the refund's transaction: signs and stores the payout of refund `refund_id`
    /// (see [`Signer::sign_and_store`]; the same payout for the same refund, ever).
    pub(crate) async fn pay(
        &self,
        tx: &mut PgConnection,
        caller: &AuthUser,
        refund_id: Uuid,
        amount: Minor,
    ) -> AppResult<Signed> {
        let key = format!("refund:{refund_id}");
        self.signer
            .sign_and_store(
                tx,
                caller,
                &Transfer {
                    to: self.payer,
                    amount,
                    key: &key,
                    refund_id: Some(refund_id),
                },
            )
            .await
    }

    /// Broadcasts it, once the refund's transaction has committed.
    pub(crate) async fn broadcast(&self, signed: &Signed) {
        self.signer.broadcast(signed).await;
    }
}

pub mod api;
