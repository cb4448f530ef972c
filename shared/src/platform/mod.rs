//! What a cold start builds once and every area shares: the database pool, token keys, the
//! password hasher, the ephemeral store, the queue. Each is a narrow, cheaply cloned sub-state,
//! so an area's state holds only the parts it uses and axum extractors reach them through
//! `FromRef`. The token keys are [`tokens`]; the ephemeral store, and the choice of its
//! implementation, [`stores`].
//!
//! Construction is async ([`Platform::load`]), so clients that need asynchronous set-up (the AWS
//! SDK's `aws_config`) are built here once, before the first request, without blocking. Nothing
//! here connects: the pool is lazy, so a cold start does no network I/O.

mod stores;
mod tokens;

pub use stores::Stores;
pub use tokens::Tokens;

use crate::auth::PasswordHasher;
use crate::auth::keys::{Jwks, KeyError, SigningKey, parse_public_keys};
use crate::config::{ConfigError, CoreConfig, Env, PoolDefault};
use crate::db::Db;
use crate::edge::EdgeConfig;
use crate::error::{AppError, AppResult};
use crate::queue::{PgQueue, Queue};
use sqlx::PgPool;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// How the HTTP edge sees clients.
#[derive(Debug, Clone, Copy, Default)]
pub struct Edge {
    pub trust_forwarded_for: bool,
}

/// The queue producers send to, when configured: the Postgres queue (`queue_messages`). Under
/// SQS and OpenFaaS too: the outbox relay moves what it holds onto the deployment's transport.
#[derive(Clone, Default)]
pub struct Queues(Option<Db>);

impl Queues {
    pub fn get(&self) -> AppResult<Arc<dyn Queue>> {
        let db = self.0.as_ref().ok_or_else(|| {
            AppError::Unavailable("the queue is not configured (DATABASE_URL)".into())
        })?;
        Ok(Arc::new(PgQueue::new(db.pool()?.clone())))
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
    /// CORS and security headers (`CORS_ALLOWED_ORIGINS`, `HSTS_MAX_AGE`).
    pub edge_config: Arc<EdgeConfig>,
}

impl Platform {
    /// Reads the core configuration from `env` and builds the clients.
    pub async fn load(env: Env, pool: PoolDefault) -> Result<Self, StartupError> {
        let config = CoreConfig::from_env(&env, pool)?;
        let db = Db::of(&config)?;
        let published = config
            .jwt
            .public_keys
            .as_deref()
            .map(parse_public_keys)
            .transpose()?
            .unwrap_or_default();
        let tokens = Tokens::from_config(&config.jwt, published)?;
        Self::with_tokens(env, config, db, tokens)
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
        let tokens = Tokens::new(signing_key, published, &config.jwt)?;
        Self::with_tokens(env, config, Db::new(db), tokens)
    }

    /// The same platform on a database pool of its own, of `max_connections`: the gateway's
    /// queue workers get one, so that jobs holding connections (a mail is locked while SMTP
    /// takes it) never keep requests waiting for one, nor requests the jobs.
    pub fn on_own_pool(&self, max_connections: u32) -> Result<Self, StartupError> {
        let mut config = (*self.config).clone();
        config.db_max_connections = max_connections;
        let db = Db::of(&config)?;
        Self::with_tokens(self.env.clone(), config, db, self.tokens.clone())
    }

    fn with_tokens(
        env: Env,
        config: CoreConfig,
        db: Db,
        tokens: Tokens,
    ) -> Result<Self, StartupError> {
        let edge_config = Arc::new(EdgeConfig::from_env(&env)?);
        // Jobs always enter through the Postgres queue or outbox.
        let stores = Stores::choose(&env, &db)?;
        let queues = Queues(db.configured().then(|| db.clone()));
        Ok(Self {
            edge: Edge {
                trust_forwarded_for: config.trust_forwarded_for,
            },
            edge_config,
            env,
            config: Arc::new(config),
            db,
            tokens,
            hasher: PasswordHasher::owasp(),
            stores,
            queues,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Amr;
    use crate::auth::jwt::Subject;
    use crate::domain::Role;
    use secrecy::ExposeSecret;
    use uuid::Uuid;

    async fn load(pairs: &[(&str, &str)]) -> Result<Platform, StartupError> {
        Platform::load(
            Env::from_pairs(pairs.iter().copied()),
            PoolDefault::Function,
        )
        .await
    }

    /// A table asks for the DynamoDB store: built lazily (no database needed, no I/O at start)
    /// where the feature is in, refused at start where it is not.
    #[tokio::test]
    async fn a_table_chooses_the_dynamodb_store_or_refuses_to_start() -> crate::TestResult {
        let outcome = load(&[("EPHEMERAL_STORE_TABLE", "gantry-ephemeral")]).await;
        #[cfg(feature = "dynamodb")]
        {
            let platform = outcome?;
            assert!(platform.stores.rate_limiter().is_ok());
            assert!(platform.stores.lockouts().is_ok());
        }
        #[cfg(not(feature = "dynamodb"))]
        assert!(
            outcome.is_err_and(|e| e.to_string().contains("EPHEMERAL_STORE_TABLE")),
            "a function without the feature refuses the table"
        );
        // Without a table or a database there is no shared store: 503, not a local stand-in.
        let bare = load(&[]).await?;
        assert!(bare.stores.rate_limiter().is_err());
        Ok(())
    }

    /// The gateway's queue workers run on a pool of their own: its size, not the requests'.
    #[tokio::test]
    async fn a_platform_on_its_own_pool_shares_no_connections() -> crate::TestResult {
        let requests = load(&[("DATABASE_URL", "postgres://u@127.0.0.1/db")]).await?;
        let jobs = requests.on_own_pool(7)?;
        let size = |p: &Platform| p.db.get().map(|pool| pool.options().get_max_connections());
        assert_eq!(size(&jobs), Some(7));
        assert_eq!(size(&requests), Some(2));
        assert!(!std::ptr::eq(requests.db.pool()?, jobs.db.pool()?));
        // Without a database, neither has one.
        assert!(load(&[]).await?.on_own_pool(7)?.db.get().is_none());
        Ok(())
    }

    #[tokio::test]
    async fn malformed_secrets_are_refused_at_start() {
        for (name, value) in [
            ("DATABASE_URL", "mysql://db.example/app"),
            ("JWT_PRIVATE_KEY", "not a pem"),
            ("JWT_PUBLIC_KEYS", "{\"keys\":[{\"kty\":\"RSA\"}]}"),
        ] {
            let outcome = load(&[(name, value)]).await;
            assert!(
                outcome.is_err_and(|e| e.to_string().contains(name)),
                "{name}"
            );
        }
    }

    #[tokio::test]
    async fn a_private_key_is_parsed_on_first_use_and_its_tokens_verify() -> crate::TestResult {
        let pem = SigningKey::generate().to_pem()?;
        let platform = load(&[("JWT_PRIVATE_KEY", pem.expose_secret())]).await?;
        let subject = Subject {
            user_id: Uuid::now_v7(),
            role: Role::Client,
            identity_id: Uuid::now_v7(),
            amr: Amr::Pwd.into(),
            email_verified: false,
        };
        let token = platform.tokens.signer()?.issue(subject, Uuid::now_v7())?;
        let claims = platform.tokens.verifier().verify(&token)?;
        assert_eq!(claims.sub, subject.user_id);
        Ok(())
    }

    #[tokio::test]
    async fn a_key_that_fails_to_parse_later_is_a_503_naming_it() -> crate::TestResult {
        let broken = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----";
        let platform = load(&[("JWT_PRIVATE_KEY", broken)]).await?;
        let err = platform
            .tokens
            .signer()
            .err()
            .ok_or("signed with a broken key")?;
        assert_eq!(err.status(), axum::http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(err.to_string().contains("JWT_PRIVATE_KEY"));
        Ok(())
    }

    #[tokio::test]
    async fn the_database_is_set_up_on_first_use() -> crate::TestResult {
        let platform = load(&[("DATABASE_URL", "postgres://u@127.0.0.1:1/db")]).await?;
        assert!(platform.db.configured());
        assert!(platform.db.pool().is_ok(), "a lazy pool, not yet connected");
        let none = load(&[]).await?;
        assert!(!none.db.configured());
        let err = none.db.pool().err().ok_or("a pool without DATABASE_URL")?;
        assert!(err.to_string().contains("DATABASE_URL"));
        Ok(())
    }
}
