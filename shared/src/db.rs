//! The Postgres pool: lazy and small, so a Lambda cold start does no I/O until a request needs it.

use crate::config::{ConfigError, CoreConfig};
use crate::error::{AppError, AppResult};
use secrecy::{ExposeSecret, SecretString};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{Connection, PgPool};
use std::net::IpAddr;
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

    /// The database `config` names (`DATABASE_URL`, `DB_MAX_CONNECTIONS`), or none.
    pub fn of(config: &CoreConfig) -> Result<Self, ConfigError> {
        match &config.database_url {
            Some(url) => Self::at(url.clone(), config.db_max_connections),
            None => Ok(Self::default()),
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
    let chosen_by_env = std::env::var_os("PGSSLMODE").is_some();
    let options = connect_options(url.expose_secret(), chosen_by_env)?;
    Ok(pool_options(max_connections, PING_AFTER_IDLE).connect_lazy_with(options))
}

/// The connection settings in `url`, with one default of our own: a server on this machine is
/// reached without TLS unless the URL (`sslmode=`) or `PGSSLMODE` (`chosen_by_env`) asks for it.
/// libpq's default, `prefer`, encrypts whenever the server offers it (Debian's does), and on
/// loopback that protects nothing from anyone who could not already read both processes, while
/// it cost the server about a third of its throughput on GET /profile's query (pgbench here:
/// 25k/s with TLS, 37k/s without). Any other host keeps `prefer`; the README asks for
/// `sslmode=require` (or `verify-full`) there.
pub fn connect_options(url: &str, chosen_by_env: bool) -> Result<PgConnectOptions, ConfigError> {
    let invalid = || ConfigError::invalid("DATABASE_URL", "is not a valid postgres URL");
    let options = PgConnectOptions::from_str(url).map_err(|_| invalid())?;
    let chosen_in_url = reqwest::Url::parse(url)
        .map_err(|_| invalid())?
        .query_pairs()
        .any(|(key, _)| key == "sslmode" || key == "ssl-mode");
    if chosen_in_url || chosen_by_env || !is_loopback(options.get_host()) {
        return Ok(options);
    }
    Ok(options.ssl_mode(PgSslMode::Disable))
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestResult;

    fn mode(url: &str, chosen_by_env: bool) -> Result<PgSslMode, ConfigError> {
        Ok(connect_options(url, chosen_by_env)?.get_ssl_mode())
    }

    #[test]
    fn a_server_on_this_machine_is_reached_without_tls_by_default() -> TestResult {
        for url in [
            "postgres://postgres@127.0.0.1:5432/db",
            "postgres://postgres@localhost/db",
            "postgres://postgres@[::1]:5432/db",
            "postgres://u:p@127.0.0.2/db?application_name=x",
        ] {
            assert!(matches!(mode(url, false)?, PgSslMode::Disable), "{url}");
        }
        Ok(())
    }

    #[test]
    fn an_explicit_choice_and_other_hosts_keep_tls() -> TestResult {
        let require = "postgres://postgres@127.0.0.1:5432/db?sslmode=require";
        assert!(matches!(mode(require, false)?, PgSslMode::Require));
        let kebab = "postgres://postgres@localhost/db?ssl-mode=verify-full";
        assert!(matches!(mode(kebab, false)?, PgSslMode::VerifyFull));
        // PGSSLMODE set: sqlx's own reading of it stands, untouched.
        let by_env = "postgres://postgres@127.0.0.1/db";
        let untouched = PgConnectOptions::from_str(by_env)?.get_ssl_mode();
        assert_eq!(
            format!("{:?}", mode(by_env, true)?),
            format!("{untouched:?}")
        );
        for url in [
            "postgres://postgres@db.example.com/db",
            "postgres://postgres@10.0.0.5:5432/db",
        ] {
            assert!(!matches!(mode(url, false)?, PgSslMode::Disable), "{url}");
        }
        Ok(())
    }

    #[test]
    fn a_url_that_is_not_postgres_is_a_config_error() {
        assert!(connect_options("not a url", false).is_err());
    }
}
