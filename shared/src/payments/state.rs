//! What the payments area's rules use: the database, token verification, and the providers a
//! function talks to (each read from its own variables; a function built without one answers
//! 503 if asked).

use super::billing::config::BillingConfig;
use super::btcpay::Btcpay;
use super::onchain::Chains;
use super::onchain::payout::Payouts;
use super::stripe::Stripe;
use crate::chain::AlloyRpc;
use crate::db::Db;
use crate::error::{AppError, AppResult};
use crate::ipfs::{IpfsConfig, IpfsStore};
use crate::platform::{Platform, StartupError, Tokens};
use axum::extract::FromRef;
use sqlx::PgPool;
use std::sync::Arc;

#[derive(Clone)]
pub struct PaymentsState {
    db: Db,
    tokens: Tokens,
    stripe: Option<Arc<Stripe>>,
    btcpay: Option<Arc<Btcpay>>,
    chains: Arc<Chains>,
    /// The chains' RPC endpoints (`CHAIN_RPC_URLS`), each built on first use.
    rpc: Arc<AlloyRpc>,
    /// The payout signer and its limits (`PAYOUT_*`).
    payouts: Option<Arc<Payouts>>,
    /// The seller and the number series (`SELLER_*`, `*_NUMBER_FORMAT`): issuing.
    books: Option<Arc<BillingConfig>>,
    /// The IPFS store the rendered documents are kept in: serving them.
    documents: Option<Arc<dyn IpfsStore>>,
}

impl FromRef<PaymentsState> for Tokens {
    fn from_ref(state: &PaymentsState) -> Self {
        state.tokens.clone()
    }
}

impl PaymentsState {
    /// For the functions that read and write only rows.
    pub fn rows(platform: &Platform) -> Self {
        Self {
            db: platform.db.clone(),
            tokens: platform.tokens.clone(),
            stripe: None,
            btcpay: None,
            chains: Arc::default(),
            rpc: Arc::new(AlloyRpc::new(Default::default())),
            payouts: None,
            books: None,
            documents: None,
        }
    }

    /// With the books (`SELLER_*`, the number formats): what issuing invoices and credit notes
    /// needs (their PDFs are the `billing-documents` worker's).
    pub fn with_books(platform: &Platform) -> Result<Self, StartupError> {
        Ok(Self {
            books: Some(Arc::new(BillingConfig::from_env(&platform.env)?)),
            ..Self::rows(platform)
        })
    }

    /// With the IPFS store the rendered documents are kept in (the `invoice-documents`
    /// function).
    pub fn with_documents(platform: &Platform) -> Result<Self, StartupError> {
        let ipfs = IpfsConfig::from_env(&platform.env, crate::runtime::under_lambda())?;
        Ok(Self {
            documents: Some(ipfs.build(&platform.env)),
            ..Self::rows(platform)
        })
    }

    /// With the books and every provider a refund may go back through (the `refunds` function):
    /// Stripe, BTCPay Server, and the chains with the payout signer.
    pub fn for_refunds(platform: &Platform) -> Result<Self, StartupError> {
        Ok(Self {
            stripe: Some(Arc::new(Stripe::from_env(&platform.env)?)),
            btcpay: Some(Arc::new(Btcpay::from_env(&platform.env)?)),
            books: Self::with_books(platform)?.books,
            ..Self::with_payouts(platform)?
        })
    }

    /// With the chains and the payout signer and limits (the `payouts` function).
    pub fn with_payouts(platform: &Platform) -> Result<Self, StartupError> {
        Ok(Self {
            payouts: Some(Arc::new(Payouts::from_env(&platform.env)?)),
            ..Self::with_chains(platform)?
        })
    }

    /// With the books and the chains (the `invoices` function: issuing, and payment URIs).
    pub fn with_books_and_chains(platform: &Platform) -> Result<Self, StartupError> {
        Ok(Self {
            books: Self::with_books(platform)?.books,
            ..Self::with_chains(platform)?
        })
    }

    /// With Stripe, from `STRIPE_*`.
    pub fn with_stripe(platform: &Platform) -> Result<Self, StartupError> {
        Ok(Self {
            stripe: Some(Arc::new(Stripe::from_env(&platform.env)?)),
            ..Self::rows(platform)
        })
    }

    /// With BTCPay Server, from `BTCPAY_*`.
    pub fn with_btcpay(platform: &Platform) -> Result<Self, StartupError> {
        Ok(Self {
            btcpay: Some(Arc::new(Btcpay::from_env(&platform.env)?)),
            ..Self::rows(platform)
        })
    }

    /// With the chains that take payments, from `PAYMENT_CHAINS`, and their RPC endpoints.
    pub fn with_chains(platform: &Platform) -> Result<Self, StartupError> {
        Ok(Self {
            chains: Arc::new(Chains::from_env(&platform.env)?),
            rpc: Arc::new(AlloyRpc::new(platform.config.chain_rpc_urls.clone())),
            ..Self::rows(platform)
        })
    }

    /// The chains that take payments (none unless built [`Self::with_chains`]: a 503).
    pub fn chains(&self) -> &Chains {
        &self.chains
    }

    /// The chains' RPC endpoints (none unless built [`Self::with_chains`]).
    pub fn rpc(&self) -> &AlloyRpc {
        &self.rpc
    }

    pub fn db(&self) -> AppResult<&PgPool> {
        self.db.pool()
    }

    fn built_without(what: &str) -> AppError {
        AppError::internal(anyhow::anyhow!("this function was built without {what}"))
    }

    pub fn stripe(&self) -> AppResult<&Stripe> {
        self.stripe
            .as_deref()
            .ok_or_else(|| Self::built_without("Stripe"))
    }

    pub fn books(&self) -> AppResult<&BillingConfig> {
        self.books
            .as_deref()
            .ok_or_else(|| Self::built_without("the books"))
    }

    pub fn documents(&self) -> AppResult<&dyn IpfsStore> {
        self.documents
            .as_deref()
            .ok_or_else(|| Self::built_without("the documents' IPFS store"))
    }

    pub fn payouts(&self) -> AppResult<&Payouts> {
        self.payouts
            .as_deref()
            .ok_or_else(|| Self::built_without("the payout signer"))
    }

    pub fn btcpay(&self) -> AppResult<&Btcpay> {
        self.btcpay
            .as_deref()
            .ok_or_else(|| Self::built_without("BTCPay"))
    }
}
