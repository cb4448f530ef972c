//! Identity's configuration section, read from the same [`Env`] as the core's.

use crate::config::{ConfigError, Env};
use crate::identity::mfa::totp::SealingKey;
use crate::identity::wallet::nonce::{MIN_SECRET_BYTES, NonceKey};
use crate::identity::wallet::siwe::SiwePolicy;
use crate::store::LockoutPolicy;
use secrecy::SecretString;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// `REFRESH_TOKEN_TTL_DAYS` (default 30): absolute lifetime of a refresh-token family.
    pub refresh_ttl: Duration,
    /// Sign-In with Ethereum; `None` (no `SIWE_DOMAINS`) turns wallet routes into 503s.
    pub siwe: Option<SiwePolicy>,
    /// `SIWE_NONCE_SECRET`: the key nonces are authenticated with (at least 32 bytes). `None`
    /// turns wallet routes into 503s.
    pub nonce_key: Option<NonceKey>,
    /// `SIWE_NONCE_TTL_SECONDS` (default and maximum 600).
    pub nonce_ttl: Duration,
    pub abuse: AbusePolicy,
    /// Links in account mail (password reset, email verification).
    pub mail: AccountMail,
    /// `REQUIRE_VERIFIED_EMAIL` (default false): password login refuses an unverified address.
    pub require_verified_email: bool,
    pub mfa: MfaConfig,
}

/// TOTP MFA settings.
#[derive(Debug, Clone)]
pub struct MfaConfig {
    /// `MFA_ENCRYPTION_KEY`: base64 of 32 bytes, the AES-256-GCM key TOTP secrets are sealed
    /// with. `None` turns enrolment and the second login step into 503s.
    pub key: Option<std::sync::Arc<SealingKey>>,
    /// `MFA_ISSUER` (default `gantry`): the name authenticator apps show.
    pub issuer: String,
    /// How long an `mfa_token` waits for its code (5 minutes).
    pub challenge_ttl: Duration,
}

/// How account mail links back to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountMail {
    /// `PUBLIC_BASE_URL`: where the application's pages live, e.g. `https://app.example.com`.
    /// Links are `<base>/reset-password?token=…` and `<base>/verify-email?token=…`, never built
    /// from a request's Host header. `None` turns the routes that mail links into 503s.
    pub base_url: Option<String>,
    /// `PASSWORD_RESET_TTL_SECONDS` (default 1800, at most a day).
    pub reset_ttl: Duration,
    /// `EMAIL_VERIFICATION_TTL_SECONDS` (default a day, at most a week).
    pub verification_ttl: Duration,
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

impl IdentityConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let refresh_days: u64 = env.parse_or("REFRESH_TOKEN_TTL_DAYS", 30)?;
        if !(1..=365).contains(&refresh_days) {
            return Err(ConfigError::invalid(
                "REFRESH_TOKEN_TTL_DAYS",
                "must be between 1 and 365",
            ));
        }
        let defaults = AbusePolicy::default();
        let abuse = AbusePolicy {
            per_ip: env.parse_or("RATE_LIMIT_PER_IP", defaults.per_ip)?,
            per_identifier: env.parse_or("RATE_LIMIT_PER_IDENTIFIER", defaults.per_identifier)?,
            lockout: LockoutPolicy {
                threshold: env.parse_or("LOCKOUT_THRESHOLD", defaults.lockout.threshold)?,
                base: Duration::from_secs(env.parse_or("LOCKOUT_BASE_SECONDS", 30)?),
                max: Duration::from_secs(env.parse_or("LOCKOUT_MAX_SECONDS", 3600)?),
            },
        };
        let nonce_key = env
            .get("SIWE_NONCE_SECRET")
            .map(|secret| {
                NonceKey::new(SecretString::from(secret)).ok_or_else(|| {
                    ConfigError::invalid(
                        "SIWE_NONCE_SECRET",
                        format!("must be at least {MIN_SECRET_BYTES} bytes"),
                    )
                })
            })
            .transpose()?;
        Ok(Self {
            refresh_ttl: Duration::from_secs(refresh_days * 24 * 60 * 60),
            siwe: siwe_policy(env)?,
            nonce_key,
            nonce_ttl: env.seconds_in("SIWE_NONCE_TTL_SECONDS", 600, 1..=600)?,
            abuse,
            mail: AccountMail {
                base_url: public_base_url(env)?,
                reset_ttl: env.seconds_in("PASSWORD_RESET_TTL_SECONDS", 1800, 60..=86_400)?,
                verification_ttl: env.seconds_in(
                    "EMAIL_VERIFICATION_TTL_SECONDS",
                    86_400,
                    60..=604_800,
                )?,
            },
            require_verified_email: env.parse_or("REQUIRE_VERIFIED_EMAIL", false)?,
            mfa: MfaConfig {
                key: env
                    .get("MFA_ENCRYPTION_KEY")
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| {
                        SealingKey::from_base64(&v).map(std::sync::Arc::new).ok_or_else(|| {
                            ConfigError::invalid(
                                "MFA_ENCRYPTION_KEY",
                                "must be base64 of exactly 32 bytes (`gantry keygen` prints one)",
                            )
                        })
                    })
                    .transpose()?,
                issuer: env
                    .get("MFA_ISSUER")
                    .filter(|v| !v.trim().is_empty())
                    .unwrap_or_else(|| "gantry".to_owned()),
                challenge_ttl: Duration::from_secs(300),
            },
        })
    }
}

/// `PUBLIC_BASE_URL`, an absolute http(s) URL without query or fragment; its trailing `/` is
/// dropped so a link is `base + path`.
fn public_base_url(env: &Env) -> Result<Option<String>, ConfigError> {
    let Some(raw) = env.get("PUBLIC_BASE_URL").filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let raw = raw.trim();
    let rest = raw
        .strip_prefix("https://")
        .or_else(|| raw.strip_prefix("http://"));
    let well_formed = rest.is_some_and(|rest| {
        let host = rest.split('/').next().unwrap_or_default();
        // Links go into HTML attributes unescaped: no character that would need escaping.
        !host.is_empty()
            && !rest.contains(['?', '#', '"', '\'', '<', '>', '&', '\\'])
            && !rest.chars().any(|c| c.is_whitespace() || c.is_control())
    });
    if !well_formed {
        return Err(ConfigError::invalid(
            "PUBLIC_BASE_URL",
            "must be an absolute http(s) URL without query or fragment",
        ));
    }
    Ok(Some(raw.trim_end_matches('/').to_owned()))
}

fn siwe_policy(env: &Env) -> Result<Option<SiwePolicy>, ConfigError> {
    let Some(domains) = env.get("SIWE_DOMAINS") else {
        return Ok(None);
    };
    let domains: Vec<String> = domains
        .split(',')
        .map(|d| d.trim().to_ascii_lowercase())
        .filter(|d| !d.is_empty())
        .collect();
    let chain_ids = env
        .get("SIWE_CHAIN_IDS")
        .unwrap_or_else(|| "1".to_owned())
        .split(',')
        .map(|c| c.trim().parse::<u64>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ConfigError::invalid("SIWE_CHAIN_IDS", "must be comma-separated chain ids"))?;
    Ok(Some(SiwePolicy {
        domains,
        chain_ids,
        skew: Duration::from_secs(env.parse_or("SIWE_CLOCK_SKEW_SECONDS", 60)?),
    }))
}

/// What a function that mails account links (password reset, email verification) needs.
pub const ACCOUNT_MAIL_NEED: crate::function::Need = {
    use crate::function::{FaasValue, Need, SamValue, Var, optional};
    Need {
        name: "account-mail",
        can_be_unavailable: false,
        vars: &[
            Var {
                name: "PUBLIC_BASE_URL",
                sam: optional(
                    "PublicBaseUrl",
                    false,
                    "Where the application's pages live, e.g. https://app.example.com; mail links to <base>/reset-password?token= and <base>/verify-email?token=. Empty: those routes answer 503",
                ),
                openfaas: FaasValue::Value {
                    value: "https://app.example.com",
                },
            },
            Var {
                name: "REQUIRE_VERIFIED_EMAIL",
                sam: SamValue::Parameter {
                    name: "RequireVerifiedEmail",
                    secret: false,
                    default: Some("false"),
                    description: "true: password login refuses an account whose email is not verified yet",
                },
                openfaas: FaasValue::Value { value: "false" },
            },
        ],
        aws: &[],
    }
};

/// What a function that enrols TOTP or checks codes needs.
pub const MFA_NEED: crate::function::Need = {
    use crate::function::{FaasValue, Need, SamValue, Var, optional, secret};
    Need {
        name: "mfa",
        can_be_unavailable: false,
        vars: &[
            Var {
                name: "MFA_ENCRYPTION_KEY",
                sam: optional(
                    "MfaEncryptionKey",
                    true,
                    "Base64 of 32 random bytes (MFA_ENCRYPTION_KEY from `gantry keygen`): the AES-256-GCM key TOTP secrets are sealed with. Empty: MFA routes answer 503",
                ),
                openfaas: secret("gantry-mfa-encryption-key"),
            },
            Var {
                name: "MFA_ISSUER",
                sam: SamValue::Parameter {
                    name: "MfaIssuer",
                    secret: false,
                    default: Some("gantry"),
                    description: "The name authenticator apps show next to the account",
                },
                openfaas: FaasValue::Value { value: "gantry" },
            },
        ],
        aws: &[],
    }
};

/// What a function that issues or checks SIWE nonces needs from its deployment.
pub const SIWE_NEED: crate::function::Need = {
    use crate::function::{FaasValue, Need, SamValue, Var, required, secret};
    Need {
        name: "siwe",
        can_be_unavailable: false,
        vars: &[
            Var {
                name: "SIWE_DOMAINS",
                sam: required(
                    "SiweDomains",
                    false,
                    "Comma-separated host[:port] a SIWE message may name, e.g. app.example.com",
                ),
                openfaas: FaasValue::Value {
                    value: "app.example.com",
                },
            },
            Var {
                name: "SIWE_CHAIN_IDS",
                sam: SamValue::Parameter {
                    name: "SiweChainIds",
                    secret: false,
                    default: Some("1"),
                    description: "Comma-separated EIP-155 chain ids accepted in SIWE messages",
                },
                openfaas: FaasValue::Value { value: "1" },
            },
            Var {
                name: "SIWE_NONCE_SECRET",
                sam: required(
                    "SiweNonceSecret",
                    true,
                    "At least 32 random bytes (SIWE_NONCE_SECRET from `gantry keygen`); the key SIWE nonces are authenticated with. Give every wallet function the same value.",
                ),
                openfaas: secret("gantry-siwe-nonce-secret"),
            },
        ],
        aws: &[],
    }
};

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<IdentityConfig, ConfigError> {
        IdentityConfig::from_env(&Env::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn siwe_settings_parse() -> crate::TestResult {
        let cfg = load(&[
            ("SIWE_DOMAINS", "App.Example.com, localhost:3000"),
            ("SIWE_CHAIN_IDS", "1,31337"),
        ])?;
        let siwe = cfg.siwe.ok_or("no siwe")?;
        assert_eq!(siwe.domains, vec!["app.example.com", "localhost:3000"]);
        assert_eq!(siwe.chain_ids, vec![1, 31337]);
        assert!(load(&[("SIWE_NONCE_TTL_SECONDS", "601")]).is_err());
        assert!(load(&[]).map(|c| c.siwe.is_none()).unwrap_or(false));
        Ok(())
    }

    #[test]
    fn a_short_nonce_secret_is_refused_by_name() {
        let err = load(&[("SIWE_NONCE_SECRET", "too short")]).err();
        assert!(err.is_some_and(|e| e.to_string().contains("SIWE_NONCE_SECRET")));
    }

    #[test]
    fn refresh_lifetime_is_bounded() {
        assert!(load(&[("REFRESH_TOKEN_TTL_DAYS", "0")]).is_err());
        assert!(load(&[("REFRESH_TOKEN_TTL_DAYS", "366")]).is_err());
    }

    #[test]
    fn the_public_base_url_is_absolute_and_loses_its_trailing_slash() -> crate::TestResult {
        let base = |v: &str| load(&[("PUBLIC_BASE_URL", v)]).map(|c| c.mail.base_url);
        assert_eq!(
            base("https://app.example.com/")?.as_deref(),
            Some("https://app.example.com")
        );
        assert_eq!(
            base("http://localhost:3000/app")?.as_deref(),
            Some("http://localhost:3000/app")
        );
        for bad in [
            "app.example.com",
            "ftp://x",
            "https://",
            "https://a/?x=1",
            "https://a b",
            "https://a/\"x",
        ] {
            assert!(base(bad).is_err(), "{bad}");
        }
        assert_eq!(load(&[])?.mail.reset_ttl, Duration::from_secs(1800));
        assert!(!load(&[])?.require_verified_email);
        assert!(load(&[("PASSWORD_RESET_TTL_SECONDS", "86401")]).is_err());
        Ok(())
    }

    #[test]
    fn abuse_defaults_apply_when_unset() -> crate::TestResult {
        assert_eq!(load(&[])?.abuse, AbusePolicy::default());
        assert_eq!(load(&[("RATE_LIMIT_PER_IP", "0")])?.abuse.per_ip, 0);
        Ok(())
    }
}
