//! Clients built once at cold start and shared by every request.

use crate::auth::keys::{Jwks, KeyError, SigningKey, parse_public_keys};
use crate::auth::{PasswordHasher, TokenSigner, TokenVerifier};
use crate::config::{Config, ConfigError};
use crate::db;
use crate::error::{AppError, AppResult};
use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    db: Option<PgPool>,
    signer: Option<TokenSigner>,
    verifier: TokenVerifier,
    hasher: PasswordHasher,
    refresh_ttl: Duration,
}

/// Token settings shared by the signer and the verifier.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl TokenSettings {
    pub fn from_config(cfg: &Config) -> Self {
        Self {
            issuer: cfg.jwt.issuer.clone(),
            audience: cfg.jwt.audience.clone(),
            access_ttl: cfg.jwt.access_ttl,
            refresh_ttl: cfg.refresh_ttl,
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
            TokenSettings::from_config(cfg),
        )?)
    }

    /// The state from its parts: the verifier trusts `published` plus the signing key's own
    /// public half.
    pub fn new(
        db: Option<PgPool>,
        signing_key: Option<&SigningKey>,
        mut published: Jwks,
        settings: TokenSettings,
    ) -> Result<Self, KeyError> {
        let signer = signing_key
            .map(|key| {
                TokenSigner::new(
                    key,
                    &settings.issuer,
                    &settings.audience,
                    settings.access_ttl,
                )
            })
            .transpose()?;
        if let Some(key) = signing_key {
            let own = key.public_jwk();
            if !published.keys.iter().any(|k| k.kid == own.kid) {
                published.keys.insert(0, own);
            }
        }
        let verifier = TokenVerifier::new(published, &settings.issuer, &settings.audience)?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                signer,
                verifier,
                hasher: PasswordHasher::owasp(),
                refresh_ttl: settings.refresh_ttl,
            }),
        })
    }

    pub fn db(&self) -> AppResult<&PgPool> {
        self.inner.db.as_ref().ok_or_else(|| {
            AppError::Unavailable("the database is not configured (DATABASE_URL)".into())
        })
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

    pub fn refresh_ttl(&self) -> Duration {
        self.inner.refresh_ttl
    }
}
