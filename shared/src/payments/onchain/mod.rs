//! On-chain payments: a client pays an invoice with a transfer on an EVM chain (the native coin,
//! or an ERC-20 token), tells us its transaction ([`submit`]), and the `chain-monitor` worker
//! ([`monitor`]) watches it until it is final, then reports it to the books through
//! [`super::settle`] like every other provider. Chains are read through alloy, over the core's
//! per-chain RPC endpoints (`CHAIN_RPC_URLS`).
//!
//! What may be paid where is `PAYMENT_CHAINS`, a JSON object keyed by chain id:
//!
//! ```json
//! {"1": {"receiver": "0x…", "confirmations": 12,
//!        "assets": {"ETH": "native", "USDC": "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48"}}}
//! ```
//!
//! - `receiver`: the address payments must go to.
//! - `confirmations`: blocks (the transaction's included) before a payment counts, or `"safe"`
//!   / `"finalized"` to wait for that block tag (default 12).
//! - `assets`: invoice currency → `"native"` or the token contract. `"native"` is only the
//!   chain's own coin, `native_currency` (default `"ETH"`, 18 decimals as every EVM coin); a
//!   token's `decimals()` must be the currency's exponent (USDC 6, DAI 18), read from the chain
//!   on the chain's first use ([`Chain::check_decimals`]): amounts are then minor units on both
//!   sides by construction.
//! - `watch_minutes`: a transaction still unseen this long after it was submitted fails
//!   (default 60); `unknown_minutes`: one the node has never heard of fails sooner (default 5).
//!   `poll_seconds`: how soon the worker looks again (default 15).
//! - `block_time_slack_seconds`: how much older than the invoice's issue a payment's block may
//!   look and still pay it (default 60, at most 3600). A block's time is its slot's start, not
//!   when a transaction got into it (up to 12 s later on Ethereum), and neither clock is ours:
//!   a payer who pays the moment the invoice arrives must not be refused for it. Reuse is not
//!   at stake (a transaction pays one payment, ever); the rule keeps old deposits out.
//!
//! A transfer pays an invoice only when its payer (a native transfer's `from`, a token
//! `Transfer`'s `from`) is a wallet the invoice's client has proven with Sign-In with Ethereum,
//! and its block is no older than the invoice's issue (SENT), give or take
//! `block_time_slack_seconds`. See [`monitor`].

pub mod monitor;
pub mod payout;
pub mod submit;

use super::model::Invoice;
use super::money::{Currency, Minor};
use crate::chain::AlloyRpc;
use crate::config::{ConfigError, Env};
use crate::error::{AppError, AppResult, FieldError};
use crate::function::{FaasValue, Need, Var, optional};
use alloy::consensus::Transaction as _;
use alloy::network::TransactionResponse as _;
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionReceipt;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
use alloy::sol_types::SolEvent;
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The worker's queue, and its function's name.
pub const QUEUE: &str = "chain-monitor";

/// The worker's message: watch this payment, or this payout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(untagged)]
pub enum Watch {
    Payment { payment_id: uuid::Uuid },
    Payout { payout_id: uuid::Uuid },
}

/// What the functions that take and watch on-chain payments need from their deployment.
pub const NEED: Need = Need {
    name: "payment-chains",
    can_be_unavailable: true,
    vars: &[Var {
        name: "PAYMENT_CHAINS",
        sam: optional(
            "PaymentChains",
            false,
            "JSON object keyed by chain id, each with receiver, confirmations and assets (see the README); empty turns on-chain payments off (503)",
        ),
        openfaas: FaasValue::Value { value: "" },
    }],
    aws: &[],
};

/// The wallets that may pay invoices of project `project_id`: those its client account has
/// proven with Sign-In with Ethereum (none without a client). Asked through the work and
/// identity areas' facades.
pub async fn payers_of(pool: &sqlx::PgPool, project_id: uuid::Uuid) -> AppResult<Vec<Address>> {
    match crate::work::facade::project_client(pool, project_id).await? {
        Some(client) => crate::identity::facade::proven_wallets(pool, client).await,
        None => Ok(Vec::new()),
    }
}

alloy::sol! {
    /// ERC-20's transfer event.
    event Transfer(address indexed from, address indexed to, uint256 value);
}

/// The sum of `token`'s Transfer events to `receiver` in the receipt, from one of `payers` if
/// given.
pub(crate) fn transferred(
    receipt: &TransactionReceipt,
    token: Address,
    receiver: Address,
    payers: Option<&[Address]>,
) -> U256 {
    receipt
        .logs()
        .iter()
        .filter(|log| log.address() == token)
        .filter_map(|log| Transfer::decode_log(&log.inner).ok())
        .filter(|event| event.to == receiver)
        .filter(|event| payers.is_none_or(|payers| payers.contains(&event.from)))
        .fold(U256::ZERO, |sum, event| sum.saturating_add(event.value))
}

/// The payments' `provider` for a chain: `evm:<chain_id>`.
pub fn provider(chain_id: u64) -> String {
    format!("evm:{chain_id}")
}

/// How a chain says a block is final enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finality {
    /// This many blocks, counting the transaction's own.
    Confirmations(u64),
    /// The node's `safe` block has reached it.
    Safe,
    /// The node's `finalized` block has reached it.
    Finalized,
}

/// What an invoice currency is paid in on a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    Native,
    Token(Address),
}

/// One chain's payment settings.
#[derive(Debug, Clone)]
pub struct Chain {
    pub id: u64,
    pub receiver: Address,
    pub finality: Finality,
    pub watch_for: Duration,
    pub unknown_for: Duration,
    pub poll: Duration,
    /// `block_time_slack_seconds`.
    pub block_time_slack: u64,
    assets: HashMap<String, Asset>,
    /// Each token's currency and that currency's exponent, and whether the token's own
    /// `decimals()` has been found equal to it.
    tokens: HashMap<Address, Token>,
}

#[derive(Debug, Clone)]
struct Token {
    currency: String,
    exponent: u8,
    checked: std::sync::OnceLock<()>,
}

impl Chain {
    /// What `currency` is paid in here, if it may be.
    pub fn asset(&self, currency: &str) -> Option<Asset> {
        self.assets.get(currency).copied()
    }

    /// Reads `token`'s `decimals()` from the chain, once per process, and refuses it (503
    /// naming `PAYMENT_CHAINS`) while it differs from its currency's exponent: a USD invoice of
    /// "100" (one dollar) must never be paid by 100 base units of a 6-decimal token. An RPC
    /// failure is a 503 too, and is asked again next time. The native coin needs no check (its
    /// currency was checked at start).
    pub async fn check_decimals(&self, rpc: &DynProvider, token: Address) -> AppResult<()> {
        let Some(Token {
            currency,
            exponent,
            checked,
        }) = self.tokens.get(&token)
        else {
            return Err(AppError::internal(anyhow::anyhow!(
                "{token} is not a token of chain {}",
                self.id
            )));
        };
        if checked.get().is_some() {
            return Ok(());
        }
        {
            let call = IERC20Decimals::decimalsCall {};
            let request = TransactionRequest::default()
                .to(token)
                .input(call.abi_encode().into());
            let answer = rpc.call(request).await.map_err(|e| {
                tracing::warn!(chain = self.id, error = %e, "decimals() could not be read");
                AppError::Unavailable(format!(
                    "chain {}: the decimals of {currency}'s token could not be read",
                    self.id
                ))
            })?;
            let decimals = IERC20Decimals::decimalsCall::abi_decode_returns(&answer).ok();
            if decimals != Some(*exponent) {
                tracing::error!(chain = self.id, %currency, ?decimals, exponent, "PAYMENT_CHAINS names a token whose decimals are not its currency's");
                return Err(AppError::Unavailable(format!(
                    "{VAR}: on chain {}, {currency}'s token has {} decimals, {currency} has {exponent}",
                    self.id,
                    decimals.map_or_else(|| "no".to_owned(), |d| d.to_string()),
                )));
            }
        }
        let _ = checked.set(());
        Ok(())
    }
}

/// Every chain that takes payments (`PAYMENT_CHAINS`).
#[derive(Debug, Clone, Default)]
pub struct Chains {
    chains: HashMap<u64, Chain>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChainText {
    receiver: Address,
    #[serde(default)]
    confirmations: Option<FinalityText>,
    assets: BTreeMap<String, String>,
    #[serde(default)]
    watch_minutes: Option<u64>,
    #[serde(default)]
    unknown_minutes: Option<u64>,
    #[serde(default)]
    poll_seconds: Option<u64>,
    #[serde(default)]
    native_currency: Option<String>,
    #[serde(default)]
    block_time_slack_seconds: Option<u64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FinalityText {
    Blocks(u64),
    Tag(String),
}

const VAR: &str = "PAYMENT_CHAINS";

/// Every EVM chain's own coin has 18 decimals (wei).
const NATIVE_DECIMALS: u8 = 18;

alloy::sol! {
    /// ERC-20's optional `decimals()`.
    interface IERC20Decimals {
        function decimals() external view returns (uint8);
    }
}

impl Chains {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        env.get(VAR)
            .map_or(Ok(Self::default()), |text| Self::parse(&text))
    }

    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: String| ConfigError::invalid(VAR, reason);
        let raw: BTreeMap<String, ChainText> =
            serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let mut chains = HashMap::new();
        for (id, chain) in raw {
            let id: u64 = id
                .parse()
                .ok()
                .filter(|id| (1..=crate::payments::dto::MAX_CHAIN_ID).contains(id))
                .ok_or_else(|| invalid(format!("{id:?} is not a chain id")))?;
            let at = |what: &str| invalid(format!("chain {id}: {what}"));
            if chain.receiver == Address::ZERO {
                return Err(at("receiver is the zero address"));
            }
            let finality = match chain.confirmations {
                None => Finality::Confirmations(12),
                Some(FinalityText::Blocks(n @ 1..=10_000)) => Finality::Confirmations(n),
                Some(FinalityText::Tag(tag)) if tag == "safe" => Finality::Safe,
                Some(FinalityText::Tag(tag)) if tag == "finalized" => Finality::Finalized,
                Some(_) => {
                    return Err(at(
                        "confirmations must be 1 to 10000, \"safe\" or \"finalized\"",
                    ));
                }
            };
            let native = chain.native_currency.as_deref().unwrap_or("ETH");
            let mut assets = HashMap::new();
            let mut tokens = HashMap::new();
            for (currency, asset) in chain.assets {
                let parsed = Currency::parse("currency", &currency)
                    .map_err(|e| at(&format!("asset {currency:?}: {e}")))?;
                let asset = match asset.as_str() {
                    "native" if currency != native => {
                        return Err(at(&format!(
                            "asset {currency}: \"native\" is the chain's own coin ({native}), \
                             not {currency}"
                        )));
                    }
                    "native" if parsed.exponent() != NATIVE_DECIMALS => {
                        return Err(at(&format!(
                            "asset {currency}: the chain's coin has {NATIVE_DECIMALS} decimals, \
                             {currency} {}",
                            parsed.exponent()
                        )));
                    }
                    "native" => Asset::Native,
                    token => {
                        let address = token.parse().map_err(|_| {
                            at(&format!(
                                "asset {currency}: {token:?} is neither \"native\" nor an address"
                            ))
                        })?;
                        let token = Token {
                            currency: currency.clone(),
                            exponent: parsed.exponent(),
                            checked: std::sync::OnceLock::new(),
                        };
                        if tokens.insert(address, token).is_some() {
                            return Err(at(&format!(
                                "asset {currency}: {address:#x} is another currency's token too"
                            )));
                        }
                        Asset::Token(address)
                    }
                };
                assets.insert(currency, asset);
            }
            if assets.is_empty() {
                return Err(at("assets is empty"));
            }
            let minutes = chain.watch_minutes.unwrap_or(60);
            let unknown = chain.unknown_minutes.unwrap_or(5).min(minutes);
            let seconds = chain.poll_seconds.unwrap_or(15);
            let slack = chain.block_time_slack_seconds.unwrap_or(60);
            if !(1..=10_080).contains(&minutes)
                || unknown == 0
                || !(1..=900).contains(&seconds)
                || slack > 3600
            {
                return Err(at(
                    "watch_minutes must be 1 to 10080, unknown_minutes at least 1, poll_seconds 1 to 900, block_time_slack_seconds at most 3600",
                ));
            }
            chains.insert(
                id,
                Chain {
                    id,
                    receiver: chain.receiver,
                    finality,
                    watch_for: Duration::from_secs(minutes * 60),
                    unknown_for: Duration::from_secs(unknown * 60),
                    poll: Duration::from_secs(seconds),
                    block_time_slack: slack,
                    assets,
                    tokens,
                },
            );
        }
        Ok(Self { chains })
    }

    /// The chain a request names: 503 when none is configured at all, 422 when it is not one.
    pub fn get(&self, chain_id: u64) -> AppResult<&Chain> {
        if self.chains.is_empty() {
            return Err(AppError::Unavailable(format!(
                "on-chain payments are not configured ({VAR})"
            )));
        }
        self.chains.get(&chain_id).ok_or_else(|| {
            AppError::Validation(vec![FieldError::semantic(
                "chain_id",
                "no payments are taken on this chain",
            )])
        })
    }

    /// `invoice` with its EIP-681 payment URI, where one applies (see
    /// [`crate::payments::model::Invoice::payment_uri`]). A token's URI is given only once its
    /// `decimals()` is known to be its currency's (read from the chain once per process): never
    /// an amount in the wrong units. Without an answer from the chain, no URI.
    pub async fn with_payment_uri(&self, rpc: &AlloyRpc, mut invoice: Invoice) -> Invoice {
        let left = invoice.outstanding();
        invoice.payment_uri = None;
        if !invoice.status.payable() || left == Minor::ZERO {
            return invoice;
        }
        let mut ids: Vec<_> = self.chains.keys().copied().collect();
        ids.sort_unstable();
        let Some((chain, asset)) = ids.into_iter().find_map(|id| {
            let chain = &self.chains[&id];
            chain.asset(&invoice.currency).map(|asset| (chain, asset))
        }) else {
            return invoice;
        };
        let (id, receiver) = (chain.id, chain.receiver.to_checksum(None));
        invoice.payment_uri = match asset {
            Asset::Native => Some(format!("ethereum:{receiver}@{id}?value={left}")),
            Asset::Token(token) => {
                let checked = match rpc.provider(id) {
                    Some(node) => chain.check_decimals(node, token).await.is_ok(),
                    None => false,
                };
                checked.then(|| {
                    format!(
                        "ethereum:{}@{id}/transfer?address={receiver}&uint256={left}",
                        token.to_checksum(None)
                    )
                })
            }
        };
        invoice
    }

    /// A chain by id, as the worker looks it up.
    pub fn find(&self, chain_id: u64) -> Option<&Chain> {
        self.chains.get(&chain_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECEIVER: &str = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8";

    #[test]
    fn a_full_setting_parses() -> crate::TestResult {
        let chains = Chains::parse(&format!(
            r#"{{"31337": {{"receiver": "{RECEIVER}", "confirmations": 3, "watch_minutes": 5,
                "assets": {{"ETH": "native", "USDC": "0x5FbDB2315678afecb367f032d93F642f64180aa3"}}}},
                "1": {{"receiver": "{RECEIVER}", "confirmations": "finalized", "assets": {{"ETH": "native"}}}}}}"#
        ))?;
        let local = chains.get(31337)?;
        assert_eq!(local.finality, Finality::Confirmations(3));
        assert_eq!(local.watch_for, Duration::from_secs(300));
        assert_eq!(local.poll, Duration::from_secs(15));
        assert_eq!(local.asset("ETH"), Some(Asset::Native));
        assert!(matches!(local.asset("USDC"), Some(Asset::Token(_))));
        assert_eq!(local.asset("DAI"), None);
        assert_eq!(chains.get(1)?.finality, Finality::Finalized);
        assert!(chains.get(5).is_err_and(|e| e.status() == 422));
        Ok(())
    }

    #[test]
    fn unset_means_off_and_every_bad_setting_names_the_variable() {
        let off = Chains::default();
        assert_eq!(off.get(1).unwrap_err().status(), 503);
        for bad in [
            "[]",
            r#"{"x": {"receiver": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "assets": {"ETH": "native"}}}"#,
            r#"{"1": {"receiver": "0x0000000000000000000000000000000000000000", "assets": {"ETH": "native"}}}"#,
            r#"{"1": {"receiver": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "assets": {}}}"#,
            r#"{"1": {"receiver": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "assets": {"eth": "native"}}}"#,
            r#"{"1": {"receiver": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "assets": {"ETH": "0x12"}}}"#,
            r#"{"1": {"receiver": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "assets": {"ETH": "native"}, "confirmations": 0}}"#,
            r#"{"1": {"receiver": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "assets": {"ETH": "native"}, "confirmations": "latest"}}"#,
            r#"{"1": {"receiver": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "assets": {"ETH": "native"}, "poll_seconds": 0}}"#,
            r#"{"1": {"receiver": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "assets": {"ETH": "native"}, "block_time_slack_seconds": 3601}}"#,
            r#"{"1": {"receiver": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "assets": {"ETH": "native"}, "extra": 1}}"#,
            // "native" is the chain's own coin only, at its 18 decimals.
            r#"{"1": {"receiver": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "assets": {"EUR": "native"}}}"#,
            r#"{"1": {"receiver": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "assets": {"DAI": "native"}}}"#,
            r#"{"1": {"receiver": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "assets": {"USDC": "native"}, "native_currency": "USDC"}}"#,
            // One token is one currency.
            r#"{"1": {"receiver": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "assets": {"USDC": "0x5FbDB2315678afecb367f032d93F642f64180aa3", "USDT": "0x5FbDB2315678afecb367f032d93F642f64180aa3"}}}"#,
        ] {
            let err = Chains::parse(bad).unwrap_err();
            assert!(err.to_string().contains(VAR), "{bad}: {err}");
        }
    }
}

/// Where a payout stands.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, Deserialize, sqlx::Type, utoipa::ToSchema,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[sqlx(type_name = "payout_status", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PayoutStatus {
    Pending,
    Confirmed,
    Failed,
}

/// The first of `payers` whose `token` Transfer to `receiver` is in the receipt: the wallet a
/// token payment is refunded to (a transaction paid by two of the client's wallets at once, a
/// batch, goes back to the first).
pub(crate) fn token_payer(
    receipt: &TransactionReceipt,
    token: Address,
    receiver: Address,
    payers: &[Address],
) -> Option<Address> {
    receipt
        .logs()
        .iter()
        .filter(|log| log.address() == token)
        .filter_map(|log| Transfer::decode_log(&log.inner).ok())
        .find(|event| {
            event.to == receiver && payers.contains(&event.from) && !event.value.is_zero()
        })
        .map(|event| event.from)
}

/// The client's wallet (one of `payers`) that paid `receiver` in the mined transaction `hash`,
/// read from the chain by the monitor's rule (a native transfer's sender, a token Transfer's
/// sender): for a payment confirmed before the monitor recorded its payer. `None` when the
/// transaction is gone, failed, or paid from none of them.
pub(crate) async fn payer_on_chain(
    rpc: &DynProvider,
    hash: alloy::primitives::B256,
    token: Option<Address>,
    receiver: Address,
    payers: &[Address],
) -> Result<Option<Address>, alloy::transports::TransportError> {
    Ok(match token {
        None => rpc
            .get_transaction_by_hash(hash)
            .await?
            .filter(|tx| tx.to() == Some(receiver) && payers.contains(&tx.from()))
            .map(|tx| tx.from()),
        Some(token) => rpc
            .get_transaction_receipt(hash)
            .await?
            .filter(TransactionReceipt::status)
            .and_then(|receipt| token_payer(&receipt, token, receiver, payers)),
    })
}
