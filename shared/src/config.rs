//! Typed configuration, read once at cold start from the environment.
//!
//! [`Env`] is the one way anything reads a variable: the core reads its own section
//! ([`CoreConfig`]) here, and each area reads its section through the same [`Env`] (for example
//! `identity::IdentityConfig`). Every variable is documented in the README. Secrets are wrapped
//! in [`SecretString`] so they never reach a log through `Debug`.

use alloy::transports::http::reqwest::Url;
use secrecy::SecretString;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Configuration that could not be read. Reported at start-up, never to a client.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl ConfigError {
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Self::Invalid {
            name,
            reason: reason.into(),
        }
    }
}

type Lookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Where configuration comes from: the process environment, or a map in tests. Any variable may
/// instead name a file in `<NAME>_FILE` (how OpenFaaS and Docker mount secrets); the variable
/// itself wins when both are set. Blank values count as unset.
#[derive(Clone)]
pub struct Env {
    lookup: Arc<Lookup>,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Env")
    }
}

impl Env {
    pub fn process() -> Self {
        Self::from_fn(|name| {
            env_or_file(
                name,
                |n| std::env::var(n).ok(),
                |path| std::fs::read_to_string(path).ok(),
            )
        })
    }

    pub fn from_fn(lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        Self {
            lookup: Arc::new(lookup),
        }
    }

    /// A fixed set of variables (tests, tools).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let map: HashMap<String, String> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        Self::from_fn(move |name| map.get(name).cloned())
    }

    /// The value of `name`, unless unset or blank.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// `name` parsed, or `default` when unset; a value that does not parse names the variable.
    pub fn parse_or<T: std::str::FromStr>(
        &self,
        name: &'static str,
        default: T,
    ) -> Result<T, ConfigError> {
        match self.get(name) {
            None => Ok(default),
            Some(raw) => raw
                .trim()
                .parse()
                .map_err(|_| ConfigError::invalid(name, format!("`{raw}` is not a valid value"))),
        }
    }

    /// `name` as whole seconds within `range`, or `default` seconds when unset.
    pub fn seconds_in(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        let secs: u64 = self.parse_or(name, default)?;
        if !range.contains(&secs) {
            return Err(ConfigError::invalid(
                name,
                format!("must be between {} and {}", range.start(), range.end()),
            ));
        }
        Ok(Duration::from_secs(secs))
    }
}

/// Longest access-token lifetime the contract allows.
pub const MAX_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);

/// What the core reads: the database, token keys, the transport, the chain RPC endpoints and
/// the queue. Areas read their own sections from the same [`Env`].
#[derive(Debug, Clone)]
pub struct CoreConfig {
    /// `DATABASE_URL`. Without it, routes that need the database answer 503.
    pub database_url: Option<SecretString>,
    /// `DB_MAX_CONNECTIONS`: default 2 for a function (one Lambda instance serves one request
    /// at a time); for the local gateway's requests, twice the cores plus two (see
    /// [`PoolDefault::Gateway`]).
    pub db_max_connections: u32,
    pub jwt: JwtConfig,
    /// `PORT` for the plain-HTTP transport (default 8080, as of-watchdog expects).
    pub port: u16,
    /// `CHAIN_RPC_URLS`: `chain_id=url` pairs, comma-separated.
    pub chain_rpc_urls: HashMap<u64, Url>,
    /// `TRUST_FORWARDED_FOR` (default false): take the client address from the last
    /// `X-Forwarded-For` hop (set it behind a proxy such as the OpenFaaS gateway).
    pub trust_forwarded_for: bool,
}

#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// `JWT_ISSUER` (default `gantry`).
    pub issuer: String,
    /// `JWT_AUDIENCE` (default `gantry-api`).
    pub audience: String,
    /// `ACCESS_TOKEN_TTL_SECONDS` (default and maximum 900).
    pub access_ttl: Duration,
    /// `JWT_PRIVATE_KEY`: PKCS#8 PEM Ed25519 key. Only functions that issue tokens get it.
    pub private_key: Option<SecretString>,
    /// `JWT_PUBLIC_KEYS`: a JWKS document (`{"keys":[...]}`) of every key that may verify.
    pub public_keys: Option<String>,
}

/// Pool size when `DB_MAX_CONNECTIONS` is unset, per kind of process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolDefault {
    /// A function instance: one request at a time.
    Function,
    /// The local gateway's routes, many requests at once (its queue workers have a pool of
    /// their own). PostgreSQL's rule of thumb, twice the cores plus a little, sized on this
    /// machine's cores, as the gateway usually runs beside its database: more connections than
    /// the server has cores to run them only make the queries contend. On 2 cores GET /profile
    /// served 11.4k requests a second with 6 connections and 8.8k with 16 (measured).
    Gateway,
}

impl PoolDefault {
    fn size(self) -> u32 {
        match self {
            Self::Function => 2,
            Self::Gateway => {
                let cores = std::thread::available_parallelism().map_or(1, usize::from);
                u32::try_from(cores).map_or(u32::MAX, |c| c.saturating_mul(2).saturating_add(2))
            }
        }
    }
}

impl CoreConfig {
    pub fn from_env(env: &Env, pool: PoolDefault) -> Result<Self, ConfigError> {
        let access_ttl = env.seconds_in("ACCESS_TOKEN_TTL_SECONDS", 900, 1..=900)?;
        let db_max_connections: u32 = env.parse_or("DB_MAX_CONNECTIONS", pool.size())?;
        if db_max_connections == 0 {
            return Err(ConfigError::invalid(
                "DB_MAX_CONNECTIONS",
                "must be at least 1",
            ));
        }
        Ok(Self {
            chain_rpc_urls: rpc_urls(env.get("CHAIN_RPC_URLS").as_deref())?,
            trust_forwarded_for: env.parse_or("TRUST_FORWARDED_FOR", false)?,
            database_url: env.get("DATABASE_URL").map(SecretString::from),
            db_max_connections,
            jwt: JwtConfig {
                issuer: env.get("JWT_ISSUER").unwrap_or_else(|| "gantry".into()),
                audience: env
                    .get("JWT_AUDIENCE")
                    .unwrap_or_else(|| "gantry-api".into()),
                access_ttl,
                // Environment files often carry PEM with literal "\n" escapes.
                private_key: env
                    .get("JWT_PRIVATE_KEY")
                    .map(|pem| SecretString::from(pem.replace("\\n", "\n"))),
                public_keys: env.get("JWT_PUBLIC_KEYS"),
            },
            port: env.parse_or("PORT", 8080)?,
        })
    }
}

/// `1=https://rpc.example,31337=http://127.0.0.1:8545`.
fn rpc_urls(raw: Option<&str>) -> Result<HashMap<u64, Url>, ConfigError> {
    let invalid = || {
        ConfigError::invalid(
            "CHAIN_RPC_URLS",
            "must be chain_id=url pairs, comma-separated",
        )
    };
    raw.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (chain, url) = pair.split_once('=').ok_or_else(invalid)?;
            let chain = chain.trim().parse::<u64>().map_err(|_| invalid())?;
            let url = Url::parse(url.trim()).map_err(|_| invalid())?;
            Ok((chain, url))
        })
        .collect()
}

/// `name` from `env`, else the contents of the file named by `<name>_FILE` (trailing newline
/// trimmed).
pub fn env_or_file(
    name: &str,
    env: impl Fn(&str) -> Option<String>,
    read: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    env(name).or_else(|| {
        env(&format!("{name}_FILE"))
            .and_then(|path| read(&path))
            .map(|text| text.trim_end_matches(['\r', '\n']).to_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<CoreConfig, ConfigError> {
        CoreConfig::from_env(
            &Env::from_pairs(pairs.iter().copied()),
            PoolDefault::Function,
        )
    }

    #[test]
    fn defaults_apply_when_unset() -> crate::TestResult {
        let cfg = load(&[])?;
        assert_eq!(cfg.jwt.access_ttl, MAX_ACCESS_TTL);
        assert_eq!(cfg.port, 8080);
        assert_eq!(cfg.jwt.issuer, "gantry");
        assert_eq!(cfg.db_max_connections, 2);
        assert!(cfg.database_url.is_none());
        Ok(())
    }

    #[test]
    fn the_gateway_pool_is_sized_for_concurrency() -> crate::TestResult {
        let env = Env::from_pairs([("X", "y")]);
        let default = CoreConfig::from_env(&env, PoolDefault::Gateway)?.db_max_connections;
        let cores = u32::try_from(usize::from(std::thread::available_parallelism()?))?;
        assert_eq!(default, 2 * cores + 2);
        let env = Env::from_pairs([("DB_MAX_CONNECTIONS", "3")]);
        assert_eq!(
            CoreConfig::from_env(&env, PoolDefault::Gateway)?.db_max_connections,
            3
        );
        Ok(())
    }

    #[test]
    fn access_ttl_over_fifteen_minutes_is_refused() {
        let err = load(&[("ACCESS_TOKEN_TTL_SECONDS", "901")]).err();
        assert!(err.is_some_and(|e| e.to_string().contains("ACCESS_TOKEN_TTL_SECONDS")));
    }

    #[test]
    fn secrets_may_come_from_files() {
        let env = |n: &str| (n == "DATABASE_URL_FILE").then(|| "/run/secrets/db".to_owned());
        let read = |p: &str| (p == "/run/secrets/db").then(|| "postgres://x\n".to_owned());
        assert_eq!(
            env_or_file("DATABASE_URL", env, read).as_deref(),
            Some("postgres://x")
        );
        let direct = |n: &str| (n == "DATABASE_URL").then(|| "postgres://direct".to_owned());
        assert_eq!(
            env_or_file("DATABASE_URL", direct, read).as_deref(),
            Some("postgres://direct")
        );
    }

    #[test]
    fn rpc_settings_parse() -> crate::TestResult {
        let cfg = load(&[("CHAIN_RPC_URLS", "31337=http://127.0.0.1:8545")])?;
        assert!(cfg.chain_rpc_urls.contains_key(&31337));
        assert!(load(&[("CHAIN_RPC_URLS", "x=y")]).is_err());
        Ok(())
    }

    #[test]
    fn a_non_boolean_flag_is_refused_by_name() {
        let err = load(&[("TRUST_FORWARDED_FOR", "yes")]).err();
        assert!(err.is_some_and(|e| e.to_string().contains("TRUST_FORWARDED_FOR")));
    }

    #[test]
    fn non_numeric_port_is_refused() {
        assert!(load(&[("PORT", "eighty")]).is_err());
    }

    #[test]
    fn escaped_newlines_in_private_key_are_restored() -> crate::TestResult {
        use secrecy::ExposeSecret;
        let cfg = load(&[("JWT_PRIVATE_KEY", "a\\nb")])?;
        let key = cfg.jwt.private_key.ok_or("no key")?;
        assert_eq!(key.expose_secret(), "a\nb");
        Ok(())
    }
}
