//! The access-token keys every function shares: the verifier always, the signer where the
//! function issues tokens.

use crate::auth::keys::{Jwks, KeyError, SigningKey};
use crate::auth::{TokenSigner, TokenVerifier};
use crate::config::JwtConfig;
use crate::error::{AppError, AppResult};
use secrecy::{ExposeSecret, SecretString};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Access-token keys: the verifier always, the signer only where `JWT_PRIVATE_KEY` is given.
///
/// A private key is read when first needed, not at cold start: deriving its public half (for
/// the `kid`, and so the verifier trusts tokens this function signs) is an Ed25519 scalar
/// multiplication, which requests that never sign or verify (health checks, logout, bad input)
/// should not pay for. `from_env` checks the key's PEM shape up front; a key that then fails to
/// parse is logged and answered with a 503 that names `JWT_PRIVATE_KEY`.
#[derive(Clone)]
pub struct Tokens {
    inner: Arc<TokenKeys>,
}

struct TokenKeys {
    private_key: Option<SecretString>,
    published: Jwks,
    issuer: String,
    audience: String,
    access_ttl: Duration,
    built: OnceLock<Built>,
}

struct Built {
    signer: Option<TokenSigner>,
    verifier: TokenVerifier,
}

const PEM_LABEL: &str = "-----BEGIN PRIVATE KEY-----";

impl Tokens {
    /// Keys from configuration; the private key is parsed on first use.
    pub fn from_config(jwt: &JwtConfig, published: Jwks) -> Result<Self, KeyError> {
        if let Some(pem) = &jwt.private_key
            && !pem.expose_secret().trim_start().starts_with(PEM_LABEL)
        {
            return Err(KeyError::BadPrivateKey);
        }
        // Fail fast on a JWKS that cannot verify anything.
        TokenVerifier::new(published.clone(), &jwt.issuer, &jwt.audience)?;
        Ok(Self::lazy(jwt, published, jwt.private_key.clone()))
    }

    /// Keys already parsed (tests, tools): the verifier trusts `published` plus the signing
    /// key's own public half.
    pub fn new(
        signing_key: Option<&SigningKey>,
        published: Jwks,
        jwt: &JwtConfig,
    ) -> Result<Self, KeyError> {
        let tokens = Self::lazy(jwt, published.clone(), None);
        let built = Built::from(signing_key, published, jwt)?;
        let _ = tokens.inner.built.set(built);
        Ok(tokens)
    }

    fn lazy(jwt: &JwtConfig, published: Jwks, private_key: Option<SecretString>) -> Self {
        Self {
            inner: Arc::new(TokenKeys {
                private_key,
                published,
                issuer: jwt.issuer.clone(),
                audience: jwt.audience.clone(),
                access_ttl: jwt.access_ttl,
                built: OnceLock::new(),
            }),
        }
    }

    fn built(&self) -> &Built {
        let keys = &self.inner;
        keys.built.get_or_init(|| {
            let jwt = JwtConfig {
                issuer: keys.issuer.clone(),
                audience: keys.audience.clone(),
                access_ttl: keys.access_ttl,
                private_key: None,
                public_keys: None,
            };
            let key = keys.private_key.as_ref().map(SigningKey::from_pem);
            let outcome = match key {
                Some(Err(err)) => Err(err),
                Some(Ok(key)) => Built::from(Some(&key), keys.published.clone(), &jwt),
                None => Built::from(None, keys.published.clone(), &jwt),
            };
            outcome.unwrap_or_else(|err| {
                tracing::error!(error = %err, "the token keys are unusable; signing is off");
                Built {
                    signer: None,
                    verifier: TokenVerifier::empty(&jwt.issuer, &jwt.audience),
                }
            })
        })
    }

    pub fn signer(&self) -> AppResult<&TokenSigner> {
        self.built().signer.as_ref().ok_or_else(|| {
            let reason = if self.inner.private_key.is_some() {
                "token signing is misconfigured (JWT_PRIVATE_KEY)"
            } else {
                "token signing is not configured (JWT_PRIVATE_KEY)"
            };
            AppError::Unavailable(reason.into())
        })
    }

    pub fn verifier(&self) -> &TokenVerifier {
        &self.built().verifier
    }
}

impl Built {
    fn from(
        signing_key: Option<&SigningKey>,
        mut published: Jwks,
        jwt: &JwtConfig,
    ) -> Result<Self, KeyError> {
        let signer = signing_key
            .map(|key| TokenSigner::new(key, &jwt.issuer, &jwt.audience, jwt.access_ttl))
            .transpose()?;
        if let Some(key) = signing_key {
            let own = key.public_jwk();
            if !published.keys.iter().any(|k| k.kid == own.kid) {
                published.keys.insert(0, own);
            }
        }
        Ok(Self {
            signer,
            verifier: TokenVerifier::new(published, &jwt.issuer, &jwt.audience)?,
        })
    }
}
