//! Typed configuration, read once at cold start from the environment.
//!
//! Every variable is documented in the README. Secrets are wrapped in [`SecretString`] so they
//! never reach a log through `Debug`.

use crate::identity::siwe::SiwePolicy;
use crate::store::LockoutPolicy;
use alloy::transports::http::reqwest::Url;
use secrecy::SecretString;
use std::collections::HashMap;
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

/// Longest access-token lifetime the contract allows.
pub const MAX_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone)]
pub struct Config {
    /// `DATABASE_URL`. Without it, routes that need the database answer 503.
    pub database_url: Option<SecretString>,
    /// `DB_MAX_CONNECTIONS` (default 2: one Lambda instance serves one request at a time).
    pub db_max_connections: u32,
    pub jwt: JwtConfig,
    /// `REFRESH_TOKEN_TTL_DAYS` (default 30): absolute lifetime of a refresh-token family.
    pub refresh_ttl: Duration,
    /// `PORT` for the plain-HTTP transport (default 8080, as of-watchdog expects).
    pub port: u16,
    /// Sign-In with Ethereum; `None` (no `SIWE_DOMAINS`) turns wallet routes into 503s.
    pub siwe: Option<SiwePolicy>,
    /// `SIWE_NONCE_TTL_SECONDS` (default and maximum 600).
    pub nonce_ttl: Duration,
    /// `CHAIN_RPC_URLS`: `chain_id=url` pairs, comma-separated (EIP-1271 checks).
    pub chain_rpc_urls: HashMap<u64, Url>,
    pub abuse: AbusePolicy,
    /// `TRUST_FORWARDED_FOR` (default false): take the client address from the last
    /// `X-Forwarded-For` hop (set it behind a proxy such as the OpenFaaS gateway).
    pub trust_forwarded_for: bool,
}

/// Rate limits and lockout, all configurable so load tests from one address can raise the
/// per-IP limit; per-identifier lockout stays on unless explicitly set to 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbusePolicy {
    /// `RATE_LIMIT_PER_IP` per minute per endpoint (default 60; 0 turns it off).
    pub per_ip: u32,
    /// `RATE_LIMIT_PER_IDENTIFIER` per minute per endpoint (default 10; 0 turns it off).
    pub per_identifier: u32,
    /// `LOCKOUT_THRESHOLD` (default 5), `LOCKOUT_BASE_SECONDS` (30), `LOCKOUT_MAX_SECONDS` (3600).
    pub lockout: LockoutPolicy,
}

impl Default for AbusePolicy {
    fn default() -> Self {
        Self {
            per_ip: 60,
            per_identifier: 10,
            lockout: LockoutPolicy {
                threshold: 5,
                base: Duration::from_secs(30),
                max: Duration::from_secs(3600),
            },
        }
    }
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

impl Config {
    /// Reads the process environment. Any variable may instead name a file in `<NAME>_FILE`
    /// (how OpenFaaS and Docker mount secrets); the variable itself wins when both are set.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| {
            env_or_file(
                name,
                |n| std::env::var(n).ok(),
                |path| std::fs::read_to_string(path).ok(),
            )
        })
    }

    /// Reads configuration through `lookup`, so tests can supply a map instead of the process env.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let access_secs: u64 = parse_or(&get, "ACCESS_TOKEN_TTL_SECONDS", 900)?;
        let access_ttl = Duration::from_secs(access_secs);
        if access_secs == 0 || access_ttl > MAX_ACCESS_TTL {
            return Err(ConfigError::invalid(
                "ACCESS_TOKEN_TTL_SECONDS",
                "must be between 1 and 900",
            ));
        }
        let refresh_days: u64 = parse_or(&get, "REFRESH_TOKEN_TTL_DAYS", 30)?;
        if !(1..=365).contains(&refresh_days) {
            return Err(ConfigError::invalid(
                "REFRESH_TOKEN_TTL_DAYS",
                "must be between 1 and 365",
            ));
        }
        let db_max_connections: u32 = parse_or(&get, "DB_MAX_CONNECTIONS", 2)?;
        if db_max_connections == 0 {
            return Err(ConfigError::invalid(
                "DB_MAX_CONNECTIONS",
                "must be at least 1",
            ));
        }
        let nonce_secs: u64 = parse_or(&get, "SIWE_NONCE_TTL_SECONDS", 600)?;
        if !(1..=600).contains(&nonce_secs) {
            return Err(ConfigError::invalid(
                "SIWE_NONCE_TTL_SECONDS",
                "must be between 1 and 600",
            ));
        }
        let defaults = AbusePolicy::default();
        let abuse = AbusePolicy {
            per_ip: parse_or(&get, "RATE_LIMIT_PER_IP", defaults.per_ip)?,
            per_identifier: parse_or(&get, "RATE_LIMIT_PER_IDENTIFIER", defaults.per_identifier)?,
            lockout: LockoutPolicy {
                threshold: parse_or(&get, "LOCKOUT_THRESHOLD", defaults.lockout.threshold)?,
                base: Duration::from_secs(parse_or(&get, "LOCKOUT_BASE_SECONDS", 30)?),
                max: Duration::from_secs(parse_or(&get, "LOCKOUT_MAX_SECONDS", 3600)?),
            },
        };
        Ok(Self {
            siwe: siwe_policy(&get)?,
            nonce_ttl: Duration::from_secs(nonce_secs),
            chain_rpc_urls: rpc_urls(get("CHAIN_RPC_URLS").as_deref())?,
            abuse,
            trust_forwarded_for: parse_or(&get, "TRUST_FORWARDED_FOR", false)?,
            database_url: get("DATABASE_URL").map(SecretString::from),
            db_max_connections,
            jwt: JwtConfig {
                issuer: get("JWT_ISSUER").unwrap_or_else(|| "gantry".into()),
                audience: get("JWT_AUDIENCE").unwrap_or_else(|| "gantry-api".into()),
                access_ttl,
                // Environment files often carry PEM with literal "\n" escapes.
                private_key: get("JWT_PRIVATE_KEY")
                    .map(|pem| SecretString::from(pem.replace("\\n", "\n"))),
                public_keys: get("JWT_PUBLIC_KEYS"),
            },
            refresh_ttl: Duration::from_secs(refresh_days * 24 * 60 * 60),
            port: parse_or(&get, "PORT", 8080)?,
        })
    }
}

fn siwe_policy(get: &impl Fn(&str) -> Option<String>) -> Result<Option<SiwePolicy>, ConfigError> {
    let Some(domains) = get("SIWE_DOMAINS") else {
        return Ok(None);
    };
    let domains: Vec<String> = domains
        .split(',')
        .map(|d| d.trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .collect();
    let chain_ids = get("SIWE_CHAIN_IDS")
        .unwrap_or_else(|| "1".to_owned())
        .split(',')
        .map(|c| c.trim().parse::<u64>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ConfigError::invalid("SIWE_CHAIN_IDS", "must be comma-separated chain ids"))?;
    Ok(Some(SiwePolicy {
        domains,
        chain_ids,
        skew: Duration::from_secs(parse_or(get, "SIWE_CLOCK_SKEW_SECONDS", 60)?),
    }))
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

fn parse_or<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|_| ConfigError::invalid(name, format!("`{raw}` is not a valid value"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_apply_when_unset() -> crate::TestResult {
        let cfg = load(&[])?;
        assert_eq!(cfg.jwt.access_ttl, MAX_ACCESS_TTL);
        assert_eq!(cfg.port, 8080);
        assert_eq!(cfg.jwt.issuer, "gantry");
        assert!(cfg.database_url.is_none());
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
    fn siwe_and_rpc_settings_parse() -> crate::TestResult {
        let cfg = load(&[
            ("SIWE_DOMAINS", "App.Example.com, localhost:3000"),
            ("SIWE_CHAIN_IDS", "1,31337"),
            ("CHAIN_RPC_URLS", "31337=http://127.0.0.1:8545"),
        ])?;
        let siwe = cfg.siwe.ok_or("no siwe")?;
        assert_eq!(siwe.domains, vec!["app.example.com", "localhost:3000"]);
        assert_eq!(siwe.chain_ids, vec![1, 31337]);
        assert!(cfg.chain_rpc_urls.contains_key(&31337));
        assert!(load(&[("CHAIN_RPC_URLS", "x=y")]).is_err());
        assert!(load(&[("SIWE_NONCE_TTL_SECONDS", "601")]).is_err());
        assert!(load(&[]).map(|c| c.siwe.is_none()).unwrap_or(false));
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
