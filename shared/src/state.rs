//! Clients built once at cold start and shared by every request. Implementations behind the
//! seams (ephemeral store, chain RPC) are chosen here, in one place.

use crate::auth::keys::{Jwks, KeyError, SigningKey, parse_public_keys};
use crate::auth::{PasswordHasher, TokenSigner, TokenVerifier};
use crate::chain::{AlloyRpc, ChainRpc, NoChain};
use crate::config::{AbusePolicy, Config, ConfigError};
use crate::db;
use crate::error::{AppError, AppResult};
use crate::identity::siwe::SiwePolicy;
use crate::store::{IdempotencyStore, Lockouts, NonceStore, PgEphemeral, RateLimiter};
use alloy::transports::http::reqwest::Url;
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

/// The ephemeral store, one object per trait (Postgres implements them all today).
struct Ephemeral {
    nonces: Arc<dyn NonceStore>,
    rate: Arc<dyn RateLimiter>,
    lockouts: Arc<dyn Lockouts>,
    idempotency: Arc<dyn IdempotencyStore>,
}

struct Inner {
    db: Option<PgPool>,
    ephemeral: Option<Ephemeral>,
    signer: Option<TokenSigner>,
    verifier: TokenVerifier,
    hasher: PasswordHasher,
    /// Installed by the routers that verify wallet proofs ([`AppState::install_chain_rpc`]), so
    /// other functions do not link the RPC client at all.
    chain: OnceLock<Arc<dyn ChainRpc>>,
    settings: Settings,
}

/// Token settings shared by the signer and the verifier.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

/// Everything besides clients and keys that the rules read.
#[derive(Debug, Clone)]
pub struct Settings {
    pub tokens: TokenSettings,
    pub siwe: Option<SiwePolicy>,
    pub nonce_ttl: Duration,
    pub abuse: AbusePolicy,
    pub chain_rpc_urls: HashMap<u64, Url>,
    pub trust_forwarded_for: bool,
}

impl Settings {
    pub fn from_config(cfg: &Config) -> Self {
        Self {
            tokens: TokenSettings {
                issuer: cfg.jwt.issuer.clone(),
                audience: cfg.jwt.audience.clone(),
                access_ttl: cfg.jwt.access_ttl,
                refresh_ttl: cfg.refresh_ttl,
            },
            siwe: cfg.siwe.clone(),
            nonce_ttl: cfg.nonce_ttl,
            abuse: cfg.abuse,
            chain_rpc_urls: cfg.chain_rpc_urls.clone(),
            trust_forwarded_for: cfg.trust_forwarded_for,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

impl AppState {
    /// Builds the state from configuration. Nothing here connects: the pool is lazy.
    pub fn from_config(cfg: &Config) -> Result<Self, StartupError> {
        let db = cfg
            .database_url
            .as_ref()
            .map(|url| db::lazy_pool(url, cfg.db_max_connections))
            .transpose()?;
        let signing_key = cfg
            .jwt
            .private_key
            .as_ref()
            .map(SigningKey::from_pem)
            .transpose()?;
        let published = cfg
            .jwt
            .public_keys
            .as_deref()
            .map(parse_public_keys)
            .transpose()?
            .unwrap_or_default();
        Ok(Self::new(
            db,
            signing_key.as_ref(),
            published,
            Settings::from_config(cfg),
        )?)
    }

    /// The state from its parts: the verifier trusts `published` plus the signing key's own
    /// public half.
    pub fn new(
        db: Option<PgPool>,
        signing_key: Option<&SigningKey>,
        mut published: Jwks,
        settings: Settings,
    ) -> Result<Self, KeyError> {
        let tokens = &settings.tokens;
        let signer = signing_key
            .map(|key| TokenSigner::new(key, &tokens.issuer, &tokens.audience, tokens.access_ttl))
            .transpose()?;
        if let Some(key) = signing_key {
            let own = key.public_jwk();
            if !published.keys.iter().any(|k| k.kid == own.kid) {
                published.keys.insert(0, own);
            }
        }
        let verifier = TokenVerifier::new(published, &tokens.issuer, &tokens.audience)?;
        // The one place the ephemeral store is chosen (DynamoDB joins here later).
        let ephemeral = db.as_ref().map(|pool| {
            let pg = Arc::new(PgEphemeral::new(pool.clone()));
            Ephemeral {
                nonces: pg.clone(),
                rate: pg.clone(),
                lockouts: pg.clone(),
                idempotency: pg,
            }
        });
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                ephemeral,
                signer,
                verifier,
                hasher: PasswordHasher::owasp(),
                chain: OnceLock::new(),
                settings,
            }),
        })
    }

    pub fn db(&self) -> AppResult<&PgPool> {
        self.inner.db.as_ref().ok_or_else(|| {
            AppError::Unavailable("the database is not configured (DATABASE_URL)".into())
        })
    }

    fn ephemeral(&self) -> AppResult<&Ephemeral> {
        self.inner.ephemeral.as_ref().ok_or_else(|| {
            AppError::Unavailable("the ephemeral store is not configured (DATABASE_URL)".into())
        })
    }

    pub fn nonces(&self) -> AppResult<&dyn NonceStore> {
        Ok(self.ephemeral()?.nonces.as_ref())
    }

    pub fn rate_limiter(&self) -> AppResult<&dyn RateLimiter> {
        Ok(self.ephemeral()?.rate.as_ref())
    }

    pub fn lockouts(&self) -> AppResult<&dyn Lockouts> {
        Ok(self.ephemeral()?.lockouts.as_ref())
    }

    pub fn idempotency(&self) -> AppResult<&dyn IdempotencyStore> {
        Ok(self.ephemeral()?.idempotency.as_ref())
    }

    /// Gives this state the chain RPC client (`CHAIN_RPC_URLS`), once. Called by the routers
    /// whose rules may check EIP-1271 signatures.
    pub fn install_chain_rpc(&self) {
        self.inner
            .chain
            .get_or_init(|| Arc::new(AlloyRpc::new(self.inner.settings.chain_rpc_urls.clone())));
    }

    /// The chain RPC client; one that knows no chain when none was installed.
    pub fn chain(&self) -> &dyn ChainRpc {
        self.inner
            .chain
            .get()
            .map_or(&NoChain as &dyn ChainRpc, |chain| chain.as_ref())
    }

    pub fn signer(&self) -> AppResult<&TokenSigner> {
        self.inner.signer.as_ref().ok_or_else(|| {
            AppError::Unavailable("token signing is not configured (JWT_PRIVATE_KEY)".into())
        })
    }

    pub fn verifier(&self) -> &TokenVerifier {
        &self.inner.verifier
    }

    pub fn hasher(&self) -> &PasswordHasher {
        &self.inner.hasher
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn siwe(&self) -> AppResult<&SiwePolicy> {
        self.inner.settings.siwe.as_ref().ok_or_else(|| {
            AppError::Unavailable("Sign-In with Ethereum is not configured (SIWE_DOMAINS)".into())
        })
    }

    pub fn refresh_ttl(&self) -> Duration {
        self.inner.settings.tokens.refresh_ttl
    }
}
