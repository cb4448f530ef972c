//! What identity's rules may use: the platform parts it needs, its own configuration, the chain
//! (for contract-wallet proofs) and a per-instance limiter. Built once per router from the
//! [`Platform`]; nothing mutates it afterwards.

use super::config::IdentityConfig;
use crate::auth::PasswordHasher;
use crate::auth::{TokenSigner, TokenVerifier};
use crate::chain::{ChainRpc, NoChain};
use crate::db::Db;
use crate::error::{AppError, AppResult};
use crate::identity::wallet::nonce::NonceKey;
use crate::identity::wallet::siwe::SiwePolicy;
use crate::platform::{Edge, Platform, StartupError, Stores, Tokens};
use crate::store::MemoryEphemeral;
use axum::extract::FromRef;
use sqlx::PgPool;
use std::sync::Arc;

#[derive(Clone)]
pub struct IdentityState {
    db: Db,
    tokens: Tokens,
    hasher: PasswordHasher,
    stores: Stores,
    /// Limits meant per instance (issuing a nonce writes nothing; its limit guards CPU only).
    local: Arc<MemoryEphemeral>,
    chain: Arc<dyn ChainRpc>,
    config: Arc<IdentityConfig>,
    edge: Edge,
}

impl FromRef<IdentityState> for Tokens {
    fn from_ref(state: &IdentityState) -> Self {
        state.tokens.clone()
    }
}

impl FromRef<IdentityState> for Edge {
    fn from_ref(state: &IdentityState) -> Self {
        state.edge
    }
}

impl IdentityState {
    /// The state for routes that never check a contract wallet.
    pub fn new(platform: &Platform) -> Result<Self, StartupError> {
        Self::with_chain(platform, Arc::new(NoChain))
    }

    /// The state for routers that verify wallet proofs: with the chain RPC client
    /// (`CHAIN_RPC_URLS`) for EIP-1271 contract wallets. Only those routers name a real client,
    /// so other functions do not link it.
    pub(crate) fn with_rpc(platform: &Platform) -> Result<Self, StartupError> {
        let rpc = crate::chain::AlloyRpc::new(platform.config.chain_rpc_urls.clone());
        Self::with_chain(platform, Arc::new(rpc))
    }

    fn with_chain(platform: &Platform, chain: Arc<dyn ChainRpc>) -> Result<Self, StartupError> {
        Ok(Self {
            db: platform.db.clone(),
            tokens: platform.tokens.clone(),
            hasher: platform.hasher.clone(),
            stores: platform.stores.clone(),
            local: Arc::new(MemoryEphemeral::new()),
            chain,
            config: Arc::new(IdentityConfig::from_env(&platform.env)?),
            edge: platform.edge,
        })
    }

    pub fn db(&self) -> AppResult<&PgPool> {
        self.db.pool()
    }

    pub fn signer(&self) -> AppResult<&TokenSigner> {
        self.tokens.signer()
    }

    pub fn verifier(&self) -> &TokenVerifier {
        self.tokens.verifier()
    }

    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    pub fn local_limits(&self) -> &MemoryEphemeral {
        &self.local
    }

    pub fn chain(&self) -> &dyn ChainRpc {
        self.chain.as_ref()
    }

    pub fn config(&self) -> &IdentityConfig {
        &self.config
    }

    pub fn siwe(&self) -> AppResult<&SiwePolicy> {
        self.config.siwe.as_ref().ok_or_else(|| {
            AppError::Unavailable("Sign-In with Ethereum is not configured (SIWE_DOMAINS)".into())
        })
    }

    pub fn mfa_key(&self) -> AppResult<&crate::identity::mfa::totp::SealingKey> {
        self.config.mfa.key.as_deref().ok_or_else(|| {
            AppError::Unavailable("TOTP MFA is not configured (MFA_ENCRYPTION_KEY)".into())
        })
    }

    pub fn nonce_key(&self) -> AppResult<&NonceKey> {
        self.config.nonce_key.as_ref().ok_or_else(|| {
            AppError::Unavailable(
                "Sign-In with Ethereum is not configured (SIWE_NONCE_SECRET)".into(),
            )
        })
    }
}
