//! What a cold start builds once and every area shares: the database pool, token keys, the
//! password hasher, the ephemeral store, the queue. Each is a narrow, cheaply cloned sub-state,
//! so an area's state holds only the parts it uses and axum extractors reach them through
//! `FromRef`. This is also the one place where the implementations behind the seams (ephemeral
//! store, queue) are chosen.
//!
//! Construction is async ([`Platform::load`]), so clients that need asynchronous set-up (the AWS
//! SDK's `aws_config`) are built here once, before the first request, without blocking. Nothing
//! here connects: the pool is lazy, so a cold start does no network I/O.

use crate::auth::keys::{Jwks, KeyError, SigningKey, parse_public_keys};
use crate::auth::{PasswordHasher, TokenSigner, TokenVerifier};
use crate::config::{ConfigError, CoreConfig, Env, PoolDefault};
use crate::db;
use crate::error::{AppError, AppResult};
use crate::queue::{PgQueue, Queue};
use crate::store::{IdempotencyStore, Lockouts, PgEphemeral, RateLimiter};
use sqlx::PgPool;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// The database, when configured.
#[derive(Clone, Default)]
pub struct Db(Option<PgPool>);

impl Db {
    pub fn new(pool: Option<PgPool>) -> Self {
        Self(pool)
    }

    /// The pool, or a 503 that names `DATABASE_URL`.
    pub fn pool(&self) -> AppResult<&PgPool> {
        self.0.as_ref().ok_or_else(|| {
            AppError::Unavailable("the database is not configured (DATABASE_URL)".into())
        })
    }

    pub fn get(&self) -> Option<&PgPool> {
        self.0.as_ref()
    }
}

/// Access-token keys: the verifier always, the signer only where `JWT_PRIVATE_KEY` is given.
#[derive(Clone)]
pub struct Tokens {
    signer: Option<Arc<TokenSigner>>,
    verifier: Arc<TokenVerifier>,
}

impl Tokens {
    /// The verifier trusts `published` plus the signing key's own public half.
    pub fn new(
        signing_key: Option<&SigningKey>,
        mut published: Jwks,
        issuer: &str,
        audience: &str,
        access_ttl: std::time::Duration,
    ) -> Result<Self, KeyError> {
        let signer = signing_key
            .map(|key| TokenSigner::new(key, issuer, audience, access_ttl))
            .transpose()?;
        if let Some(key) = signing_key {
            let own = key.public_jwk();
            if !published.keys.iter().any(|k| k.kid == own.kid) {
                published.keys.insert(0, own);
            }
        }
        Ok(Self {
            signer: signer.map(Arc::new),
            verifier: Arc::new(TokenVerifier::new(published, issuer, audience)?),
        })
    }

    pub fn signer(&self) -> AppResult<&TokenSigner> {
        self.signer.as_deref().ok_or_else(|| {
            AppError::Unavailable("token signing is not configured (JWT_PRIVATE_KEY)".into())
        })
    }

    pub fn verifier(&self) -> &TokenVerifier {
        &self.verifier
    }
}

/// How the HTTP edge sees clients.
#[derive(Debug, Clone, Copy, Default)]
pub struct Edge {
    pub trust_forwarded_for: bool,
}

/// The shared ephemeral store, one object per trait.
#[derive(Clone, Default)]
pub struct Stores {
    parts: Option<StoreParts>,
}

#[derive(Clone)]
struct StoreParts {
    rate: Arc<dyn RateLimiter>,
    lockouts: Arc<dyn Lockouts>,
    idempotency: Arc<dyn IdempotencyStore>,
}

impl Stores {
    /// Every trait served by one implementation.
    pub fn of<T: RateLimiter + Lockouts + IdempotencyStore + 'static>(store: Arc<T>) -> Self {
        Self {
            parts: Some(StoreParts {
                rate: store.clone(),
                lockouts: store.clone(),
                idempotency: store,
            }),
        }
    }

    fn parts(&self) -> AppResult<&StoreParts> {
        self.parts.as_ref().ok_or_else(|| {
            AppError::Unavailable("the ephemeral store is not configured (DATABASE_URL)".into())
        })
    }

    pub fn rate_limiter(&self) -> AppResult<&dyn RateLimiter> {
        Ok(self.parts()?.rate.as_ref())
    }

    pub fn lockouts(&self) -> AppResult<&dyn Lockouts> {
        Ok(self.parts()?.lockouts.as_ref())
    }

    pub fn idempotency(&self) -> AppResult<&dyn IdempotencyStore> {
        Ok(self.parts()?.idempotency.as_ref())
    }
}

/// The queue producers send to, when configured.
#[derive(Clone, Default)]
pub struct Queues(Option<Arc<dyn Queue>>);

impl Queues {
    pub fn get(&self) -> AppResult<&dyn Queue> {
        self.0.as_deref().ok_or_else(|| {
            AppError::Unavailable("the queue is not configured (DATABASE_URL)".into())
        })
    }
}

/// Everything built once per process.
#[derive(Clone)]
pub struct Platform {
    /// Where every area reads its own configuration section.
    pub env: Env,
    pub config: Arc<CoreConfig>,
    pub db: Db,
    pub tokens: Tokens,
    pub hasher: PasswordHasher,
    pub stores: Stores,
    pub queues: Queues,
    pub edge: Edge,
}

impl Platform {
    /// Reads the core configuration from `env` and builds the clients.
    pub async fn load(env: Env, pool: PoolDefault) -> Result<Self, StartupError> {
        let config = CoreConfig::from_env(&env, pool)?;
        let db = config
            .database_url
            .as_ref()
            .map(|url| db::lazy_pool(url, config.db_max_connections))
            .transpose()?;
        let signing_key = config
            .jwt
            .private_key
            .as_ref()
            .map(SigningKey::from_pem)
            .transpose()?;
        let published = config
            .jwt
            .public_keys
            .as_deref()
            .map(parse_public_keys)
            .transpose()?
            .unwrap_or_default();
        Self::assemble(env, config, db, signing_key.as_ref(), published)
    }

    /// The platform from parts already built (tests, tools): `db` instead of `DATABASE_URL`,
    /// `signing_key` and `published` instead of the key variables.
    pub fn assemble(
        env: Env,
        config: CoreConfig,
        db: Option<PgPool>,
        signing_key: Option<&SigningKey>,
        published: Jwks,
    ) -> Result<Self, StartupError> {
        let jwt = &config.jwt;
        let tokens = Tokens::new(
            signing_key,
            published,
            &jwt.issuer,
            &jwt.audience,
            jwt.access_ttl,
        )?;
        // The one place the implementations are chosen: Postgres today; DynamoDB (ephemeral)
        // and SQS (queue) join here, from configuration.
        let stores = db
            .clone()
            .map(|pool| Stores::of(Arc::new(PgEphemeral::new(pool))))
            .unwrap_or_default();
        let queues = Queues(
            db.clone()
                .map(|pool| Arc::new(PgQueue::new(pool)) as Arc<dyn Queue>),
        );
        Ok(Self {
            edge: Edge {
                trust_forwarded_for: config.trust_forwarded_for,
            },
            env,
            config: Arc::new(config),
            db: Db::new(db),
            tokens,
            hasher: PasswordHasher::owasp(),
            stores,
            queues,
        })
    }
}
