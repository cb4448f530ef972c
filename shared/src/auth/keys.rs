//! Ed25519 signing keys and the JWKS that publishes their public halves.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A public key as published in the JWKS (RFC 8037 OKP / Ed25519).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PublicJwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub kid: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
}

/// A JSON Web Key Set (RFC 7517): the public keys that verify access tokens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Jwks {
    pub keys: Vec<PublicJwk>,
}

impl PublicJwk {
    pub fn ed25519(public: &[u8; 32]) -> Self {
        let x = URL_SAFE_NO_PAD.encode(public);
        Self {
            kid: thumbprint(&x),
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x,
            alg: "EdDSA".into(),
            use_: "sig".into(),
        }
    }

    pub fn to_jwk(&self) -> Result<Jwk, serde_json::Error> {
        serde_json::from_value(serde_json::to_value(self)?)
    }
}

/// RFC 7638 JWK thumbprint of an Ed25519 key: the key id, so no separate `kid` setting exists.
fn thumbprint(x: &str) -> String {
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The private signing key. Only functions that issue tokens hold one.
pub struct SigningKey {
    key: ed25519_dalek::SigningKey,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("JWT_PRIVATE_KEY is not a PKCS#8 PEM Ed25519 private key")]
    BadPrivateKey,
    #[error("JWT_PUBLIC_KEYS is not a JWKS of Ed25519 keys: {0}")]
    BadPublicKeys(String),
}

impl SigningKey {
    pub fn generate() -> Self {
        Self {
            key: ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng),
        }
    }

    pub fn from_pem(pem: &SecretString) -> Result<Self, KeyError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem.expose_secret())
            .map(|key| Self { key })
            .map_err(|_| KeyError::BadPrivateKey)
    }

    pub fn to_pem(&self) -> Result<SecretString, KeyError> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| SecretString::from(pem.as_str().to_owned()))
            .map_err(|_| KeyError::BadPrivateKey)
    }

    pub fn public_jwk(&self) -> PublicJwk {
        PublicJwk::ed25519(self.key.verifying_key().as_bytes())
    }

    pub fn encoding_key(&self) -> Result<jsonwebtoken::EncodingKey, KeyError> {
        let der = self
            .key
            .to_pkcs8_der()
            .map_err(|_| KeyError::BadPrivateKey)?;
        Ok(jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()))
    }
}

/// Parses `JWT_PUBLIC_KEYS`: every key must be Ed25519 with a `kid`.
pub fn parse_public_keys(raw: &str) -> Result<Jwks, KeyError> {
    let set: JwkSet =
        serde_json::from_str(raw).map_err(|e| KeyError::BadPublicKeys(e.to_string()))?;
    let mut jwks = Jwks::default();
    for jwk in set.keys {
        let value =
            serde_json::to_value(&jwk).map_err(|e| KeyError::BadPublicKeys(e.to_string()))?;
        let key: PublicJwk = serde_json::from_value(value).map_err(|e| {
            KeyError::BadPublicKeys(format!("each key needs kty, crv, x, kid: {e}"))
        })?;
        if key.kty != "OKP" || key.crv != "Ed25519" {
            return Err(KeyError::BadPublicKeys(format!(
                "key {} is not an Ed25519 key",
                key.kid
            )));
        }
        jwks.keys.push(key);
    }
    Ok(jwks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trips_and_kid_is_stable() -> crate::TestResult {
        let key = SigningKey::generate();
        let again = SigningKey::from_pem(&key.to_pem()?)?;
        assert_eq!(key.public_jwk(), again.public_jwk());
        assert_eq!(key.public_jwk().kid.len(), 43); // base64url SHA-256
        Ok(())
    }

    #[test]
    fn rfc8037_thumbprint_vector() {
        // RFC 8037 appendix A.3.
        assert_eq!(
            thumbprint("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn garbage_keys_are_refused() {
        assert!(SigningKey::from_pem(&SecretString::from("nope".to_owned())).is_err());
        assert!(parse_public_keys("{}").is_err());
        assert!(
            parse_public_keys(r#"{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","kid":"k"}]}"#)
                .is_err()
        );
    }

    #[test]
    fn published_keys_parse_back() -> crate::TestResult {
        let jwk = SigningKey::generate().public_jwk();
        let doc = serde_json::to_string(&Jwks {
            keys: vec![jwk.clone()],
        })?;
        assert_eq!(parse_public_keys(&doc)?.keys, vec![jwk]);
        Ok(())
    }
}
