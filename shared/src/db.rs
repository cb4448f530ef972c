//! The Postgres pool: lazy and small, so a Lambda cold start does no I/O until a request needs it.

use crate::config::ConfigError;
use secrecy::{ExposeSecret, SecretString};
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// The schema, embedded. Run by the CLI (`gantry migrate`) and the scripts, never at cold start.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

pub fn lazy_pool(url: &SecretString, max_connections: u32) -> Result<PgPool, ConfigError> {
    let options = PgConnectOptions::from_str(url.expose_secret())
        .map_err(|_| ConfigError::invalid("DATABASE_URL", "is not a valid postgres URL"))?;
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .min_connections(0)
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(Some(Duration::from_secs(60)))
        .connect_lazy_with(options))
}
