//! The Postgres pool: lazy and small, so a Lambda cold start does no I/O until a request needs it.

use crate::config::ConfigError;
use secrecy::{ExposeSecret, SecretString};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgPool};
use std::str::FromStr;
use std::time::Duration;

/// The schema, embedded. Run by the CLI (`gantry migrate`) and the scripts, never at cold start.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// A pooled connection idle for longer than this is pinged before it is handed out.
pub const PING_AFTER_IDLE: Duration = Duration::from_secs(10);

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
