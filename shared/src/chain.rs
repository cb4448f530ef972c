//! The chain RPC seam: one alloy HTTP provider per chain (`CHAIN_RPC_URLS`), built on first use,
//! and the core's one use of it, EIP-1271 signature checks for contract wallets. The payments
//! area reads payments from chains through [`AlloyRpc::provider`]; none of that lives here.
//! An RPC URL often holds an API key (`https://…/v3/<key>`), and alloy's errors quote it: log
//! or wrap them through [`crate::redact::Redacted`], which keeps only the host.

use crate::error::AppError;
use crate::redact::Redacted;
use alloy::primitives::{Address, B256, Bytes, FixedBytes};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::sol;
use alloy::sol_types::SolCall;
use alloy::transports::http::reqwest::Url;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::OnceLock;

sol! {
    /// EIP-1271: standard signature validation for contracts.
    interface IERC1271 {
        function isValidSignature(bytes32 hash, bytes signature) external view returns (bytes4 magicValue);
    }
}

/// `isValidSignature`'s success value: `bytes4(keccak256("isValidSignature(bytes32,bytes)"))`.
pub const EIP1271_MAGIC: [u8; 4] = [0x16, 0x26, 0xba, 0x7e];

/// A chain could not be asked. Transient: a worker retries, an HTTP caller gets a 503.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("the RPC endpoint for chain {chain_id} is unavailable")]
    Unavailable { chain_id: u64 },
}

impl From<ChainError> for AppError {
    fn from(err: ChainError) -> Self {
        AppError::Unavailable(err.to_string())
    }
}

#[async_trait]
pub trait ChainRpc: Send + Sync {
    /// Whether `chain_id` has an RPC endpoint configured.
    fn supports(&self, chain_id: u64) -> bool;

    /// Asks the contract at `address` whether `signature` over `hash` is valid (EIP-1271).
    /// `Ok(false)` for a contract that says no, an account with no code, or a revert.
    async fn is_valid_signature(
        &self,
        chain_id: u64,
        address: Address,
        hash: B256,
        signature: &[u8],
    ) -> Result<bool, ChainError>;
}

/// No chain at all: EIP-1271 is never tried.
pub struct NoChain;

#[async_trait]
impl ChainRpc for NoChain {
    fn supports(&self, _: u64) -> bool {
        false
    }

    async fn is_valid_signature(
        &self,
        _: u64,
        _: Address,
        _: B256,
        _: &[u8],
    ) -> Result<bool, ChainError> {
        Ok(false)
    }
}

/// JSON-RPC over HTTP(S) with alloy. One provider per chain, built on first use (not at cold
/// start: most functions never call a chain) and reused, so its connection pool is too.
pub struct AlloyRpc {
    providers: HashMap<u64, (Url, OnceLock<DynProvider>)>,
}

impl AlloyRpc {
    pub fn new(urls: HashMap<u64, Url>) -> Self {
        Self {
            providers: urls
                .into_iter()
                .map(|(chain, url)| (chain, (url, OnceLock::new())))
                .collect(),
        }
    }

    /// The provider of `chain_id`, if it has an RPC URL.
    pub fn provider(&self, chain_id: u64) -> Option<&DynProvider> {
        let (url, cell) = self.providers.get(&chain_id)?;
        Some(cell.get_or_init(|| {
            crate::tls::install_provider();
            ProviderBuilder::new().connect_http(url.clone()).erased()
        }))
    }
}

#[async_trait]
impl ChainRpc for AlloyRpc {
    fn supports(&self, chain_id: u64) -> bool {
        self.providers.contains_key(&chain_id)
    }

    async fn is_valid_signature(
        &self,
        chain_id: u64,
        address: Address,
        hash: B256,
        signature: &[u8],
    ) -> Result<bool, ChainError> {
        let Some(provider) = self.provider(chain_id) else {
            return Ok(false);
        };
        let call = IERC1271::isValidSignatureCall {
            hash,
            signature: Bytes::copy_from_slice(signature),
        };
        let request = TransactionRequest::default()
            .to(address)
            .input(call.abi_encode().into());
        match provider.call(request).await {
            Ok(output) => Ok(output.len() >= 32
                && IERC1271::isValidSignatureCall::abi_decode_returns(&output)
                    .is_ok_and(|magic: FixedBytes<4>| magic.0 == EIP1271_MAGIC)),
            // A revert is the contract's "no"; anything else means the RPC is unreachable.
            Err(alloy::transports::RpcError::ErrorResp(_)) => Ok(false),
            Err(err) => {
                tracing::error!(chain_id, error = %Redacted(&err), "chain RPC failed");
                Err(ChainError::Unavailable { chain_id })
            }
        }
    }
}
