//! The shared ephemeral store (rate windows, lockouts, idempotency keys), and the choice of
//! its implementation: DynamoDB or Postgres.

use crate::config::{ConfigError, Env};
use crate::db::Db;
use crate::error::{AppError, AppResult};
use crate::need::needs;
use crate::store::{IdempotencyStore, Lockouts, PgEphemeral, RateLimiter};
use std::sync::Arc;
#[cfg(feature = "dynamodb")]
use std::sync::OnceLock;

/// The shared ephemeral store, one object per trait.
///
/// The DynamoDB store is built on first use, inside [`Stores::parts`]: only the functions that
/// call the store's getters reach its code, so a build that enables the `dynamodb` feature for
/// several functions at once (features unify across one build) still leaves the SDK out of the
/// others.
#[derive(Clone, Default)]
pub struct Stores {
    source: Source,
}

#[derive(Clone, Default)]
enum Source {
    #[default]
    Unconfigured,
    Built(StoreParts),
    #[cfg(feature = "dynamodb")]
    Dynamo(Arc<LazyDynamo>),
}

#[cfg(feature = "dynamodb")]
struct LazyDynamo {
    env: Env,
    table: String,
    built: OnceLock<StoreParts>,
}

#[derive(Clone)]
struct StoreParts {
    rate: Arc<dyn RateLimiter>,
    lockouts: Arc<dyn Lockouts>,
    idempotency: Arc<dyn IdempotencyStore>,
}

impl StoreParts {
    fn of<T: RateLimiter + Lockouts + IdempotencyStore + 'static>(store: Arc<T>) -> Self {
        Self {
            rate: store.clone(),
            lockouts: store.clone(),
            idempotency: store,
        }
    }
}

impl Stores {
    /// Every trait served by one implementation.
    pub fn of<T: RateLimiter + Lockouts + IdempotencyStore + 'static>(store: Arc<T>) -> Self {
        Self {
            source: Source::Built(StoreParts::of(store)),
        }
    }

    /// The one place the ephemeral store is chosen: DynamoDB where a table is configured
    /// (`EPHEMERAL_STORE_TABLE`), else Postgres where there is a database, else none (its
    /// routes answer 503).
    pub(super) fn choose(env: &Env, db: &Db) -> Result<Self, ConfigError> {
        Ok(match env.get(needs::EPHEMERAL_TABLE_VAR) {
            Some(table) => Self::dynamo(env, table)?,
            None if db.configured() => Self::of(Arc::new(PgEphemeral::on(db.clone()))),
            None => Self::default(),
        })
    }

    /// The DynamoDB store on `table`, built on first use; a startup error in a function built
    /// without it, so a deployment that asks for it never counts somewhere else unnoticed.
    fn dynamo(env: &Env, table: String) -> Result<Self, ConfigError> {
        #[cfg(feature = "dynamodb")]
        return Ok(Self {
            source: Source::Dynamo(Arc::new(LazyDynamo {
                env: env.clone(),
                table,
                built: OnceLock::new(),
            })),
        });
        #[cfg(not(feature = "dynamodb"))]
        {
            let _ = (env, table);
            Err(ConfigError::invalid(
                needs::EPHEMERAL_TABLE_VAR,
                "this function was built without the `dynamodb` feature of gantry",
            ))
        }
    }

    fn parts(&self) -> AppResult<&StoreParts> {
        match &self.source {
            Source::Built(parts) => Ok(parts),
            #[cfg(feature = "dynamodb")]
            Source::Dynamo(lazy) => Ok(lazy.built.get_or_init(|| {
                StoreParts::of(Arc::new(crate::store::DynamoEphemeral::new(
                    &lazy.env,
                    lazy.table.clone(),
                )))
            })),
            Source::Unconfigured => Err(AppError::Unavailable(
                "the ephemeral store is not configured (DATABASE_URL)".into(),
            )),
        }
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
