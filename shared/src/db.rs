//! The Postgres pool: lazy and small, so a Lambda cold start does no I/O until a request needs it.

use crate::config::ConfigError;
use crate::error::{AppError, AppResult};
use secrecy::{ExposeSecret, SecretString};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The schema, embedded. Run by the CLI (`gantry migrate`) and the scripts, never at cold start.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// A pooled connection idle for longer than this is pinged before it is handed out.
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(10);

/// The database, when configured. The pool is built on first use: parsing the URL and setting
/// up the pool is work a request that never touches the database (a health check, a bad input)
/// should not pay for at cold start. It connects lazily too, so a cold start does no I/O.
#[derive(Clone, Default)]
pub struct Db {
    inner: Arc<DbInner>,
}

#[derive(Default)]
struct DbInner {
    url: Option<(SecretString, u32)>,
    pool: OnceLock<Option<PgPool>>,
}

impl Db {
    /// A database that is already connected (tests, tools), or none.
    pub fn new(pool: Option<PgPool>) -> Self {
        let inner = DbInner {
            url: None,
            pool: OnceLock::from(pool),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    /// The database at `url` (checked for a postgres scheme now, parsed on first use).
    pub fn at(url: SecretString, max_connections: u32) -> Result<Self, ConfigError> {
        let scheme = url.expose_secret().split_once("://").map(|(s, _)| s);
        if !matches!(scheme, Some("postgres" | "postgresql")) {
            return Err(ConfigError::invalid(
                "DATABASE_URL",
                "is not a postgres:// URL",
            ));
        }
        let inner = DbInner {
            url: Some((url, max_connections)),
            pool: OnceLock::new(),
        };
        Ok(Self {
            inner: Arc::new(inner),
        })
    }

    /// Whether a database was configured (valid or not).
    pub fn configured(&self) -> bool {
        self.inner.url.is_some() || self.inner.pool.get().is_some_and(Option::is_some)
    }

    /// The pool, when configured and valid.
    pub fn get(&self) -> Option<&PgPool> {
        let inner = &self.inner;
        inner
            .pool
            .get_or_init(|| {
                let (url, size) = inner.url.as_ref()?;
                lazy_pool(url, *size)
                    .map_err(|err| tracing::error!(error = %err, "the database is unusable"))
                    .ok()
            })
            .as_ref()
    }

    /// The pool, or a 503 that names `DATABASE_URL`.
    pub fn pool(&self) -> AppResult<&PgPool> {
        self.get().ok_or_else(|| {
            let reason = if self.inner.url.is_some() {
                "the database is misconfigured (DATABASE_URL)"
            } else {
                "the database is not configured (DATABASE_URL)"
            };
            AppError::Unavailable(reason.into())
        })
    }
}

pub fn lazy_pool(url: &SecretString, max_connections: u32) -> Result<PgPool, ConfigError> {
    let options = PgConnectOptions::from_str(url.expose_secret())
        .map_err(|_| ConfigError::invalid("DATABASE_URL", "is not a valid postgres URL"))?;
    Ok(pool_options(max_connections, PING_AFTER_IDLE).connect_lazy_with(options))
}

/// The pool's settings; `ping_after_idle` is [`PING_AFTER_IDLE`] outside tests.
pub fn pool_options(max_connections: u32, ping_after_idle: Duration) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(Some(Duration::from_secs(60)))
        // sqlx pings every connection it hands out by default: one more round trip per request.
        // A connection in steady use is alive; only one that sat idle (a Lambda instance thawed
        // after a pause, a quiet gateway) may have been closed by the server or a proxy, so only
        // that one is pinged, and replaced when the ping fails.
        .test_before_acquire(false)
        .before_acquire(move |conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= ping_after_idle {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}
