//! Access tokens: EdDSA-signed JWTs (RFC 9068 profile: `typ: at+jwt`, `kid`).

use super::keys::{Jwks, KeyError, SigningKey};
use crate::domain::Role;
use crate::error::{AppError, AppResult};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

pub const ACCESS_TOKEN_TYPE: &str = "at+jwt";

/// Authentication method reference (RFC 8176 style), as carried in `amr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Amr {
    Pwd,
    Siwe,
    /// A TOTP code (the second factor).
    Otp,
    /// A one-time recovery code, in place of a TOTP code.
    Rec,
}

impl Amr {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pwd => "pwd",
            Self::Siwe => "siwe",
            Self::Otp => "otp",
            Self::Rec => "rec",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pwd" => Some(Self::Pwd),
            "siwe" => Some(Self::Siwe),
            "otp" => Some(Self::Otp),
            "rec" => Some(Self::Rec),
            _ => None,
        }
    }
}

/// How a session was opened: the first factor, and the second when MFA finished the sign-in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Methods {
    pub first: Amr,
    pub second: Option<Amr>,
}

impl From<Amr> for Methods {
    fn from(first: Amr) -> Self {
        Self {
            first,
            second: None,
        }
    }
}

impl Methods {
    /// Every method, in order, as `amr` lists them.
    pub fn to_vec(self) -> Vec<Amr> {
        std::iter::once(self.first).chain(self.second).collect()
    }

    /// Their names, as stored with a session.
    pub fn names(self) -> Vec<String> {
        self.to_vec()
            .iter()
            .map(|m| m.as_str().to_owned())
            .collect()
    }

    /// One word for them: `pwd`, or `pwd+otp`.
    pub fn label(self) -> String {
        self.names().join("+")
    }

    /// From stored names; `None` unless one or two known methods.
    pub fn parse(names: &[String]) -> Option<Self> {
        match names {
            [first] => Some(Amr::parse(first)?.into()),
            [first, second] => Some(Self {
                first: Amr::parse(first)?,
                second: Some(Amr::parse(second)?),
            }),
            _ => None,
        }
    }
}

/// The claims of an access token. Every one is required when verifying, but `auth_time`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: Uuid,
    pub role: Role,
    /// How the session was signed in (RFC 8176 names): `pwd` or `siwe`, then `otp` or `rec`
    /// when a second factor finished the sign-in.
    pub amr: Vec<Amr>,
    /// When the session was signed in (unix seconds; OIDC's `auth_time`): the moment the last
    /// factor of `amr` passed. A refresh keeps it. A token without it (issued before it existed)
    /// reads 0: never a recent sign-in.
    #[serde(default)]
    pub auth_time: i64,
    /// The identity used to log in.
    pub idp: Uuid,
    /// The session (refresh-token family) the token was issued in.
    pub sid: Uuid,
    /// Whether the account's email address is proven (always false without one).
    pub email_verified: bool,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
}

/// Who a token is issued to.
#[derive(Debug, Clone, Copy)]
pub struct Subject {
    pub user_id: Uuid,
    pub role: Role,
    pub identity_id: Uuid,
    pub amr: Methods,
    pub email_verified: bool,
}

/// Issues access tokens. Holds the private key.
pub struct TokenSigner {
    kid: String,
    key: EncodingKey,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl TokenSigner {
    pub fn new(
        key: &SigningKey,
        issuer: &str,
        audience: &str,
        ttl: Duration,
    ) -> Result<Self, KeyError> {
        Ok(Self {
            kid: key.public_jwk().kid,
            key: key.encoding_key()?,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl,
        })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The claims of a token for `subject` in session `sid`, signed in now.
    pub fn claims_for(&self, subject: Subject, sid: Uuid) -> AccessClaims {
        self.claims_since(subject, sid, OffsetDateTime::now_utc().unix_timestamp())
    }

    /// The claims of a token for `subject` in session `sid`, signed in at `auth_time` (unix
    /// seconds).
    pub fn claims_since(&self, subject: Subject, sid: Uuid, auth_time: i64) -> AccessClaims {
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(900);
        AccessClaims {
            sub: subject.user_id,
            role: subject.role,
            amr: subject.amr.to_vec(),
            auth_time,
            idp: subject.identity_id,
            sid,
            email_verified: subject.email_verified,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + ttl,
            jti: Uuid::new_v4(),
        }
    }

    pub fn sign(&self, claims: &AccessClaims) -> AppResult<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = Some(ACCESS_TOKEN_TYPE.to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key)
            .map_err(|e| AppError::internal(anyhow::anyhow!("signing access token: {e}")))
    }

    /// A token for a sign-in that happens now.
    pub fn issue(&self, subject: Subject, sid: Uuid) -> AppResult<String> {
        self.sign(&self.claims_for(subject, sid))
    }

    /// A token for a session signed in at `auth_time` (a refresh keeps the sign-in's time).
    pub fn issue_since(&self, subject: Subject, sid: Uuid, auth_time: i64) -> AppResult<String> {
        self.sign(&self.claims_since(subject, sid, auth_time))
    }
}

/// Verifies access tokens against every published public key. Holds no private key.
pub struct TokenVerifier {
    keys: HashMap<String, DecodingKey>,
    jwks: Jwks,
    validation: Validation,
    /// Tokens this instance has verified, by their exact text, with their claims: a client
    /// sends the same token for up to 15 minutes, and the signature of the same bytes under the
    /// same keys verifies the same way every time. Only the expiry is checked again. Bounded:
    /// emptied when full.
    verified: Mutex<HashMap<String, AccessClaims>>,
}

/// Seconds of clock skew allowed on `exp`.
const LEEWAY_SECS: i64 = 30;
/// The most verified tokens remembered.
const VERIFIED_ENTRIES: usize = 4096;

const INVALID: AppError = AppError::Unauthorized("the access token is missing, invalid or expired");

impl TokenVerifier {
    pub fn new(jwks: Jwks, issuer: &str, audience: &str) -> Result<Self, KeyError> {
        let mut keys = HashMap::new();
        for key in &jwks.keys {
            let jwk = key
                .to_jwk()
                .map_err(|e| KeyError::BadPublicKeys(e.to_string()))?;
            let decoding =
                DecodingKey::from_jwk(&jwk).map_err(|e| KeyError::BadPublicKeys(e.to_string()))?;
            keys.insert(key.kid.clone(), decoding);
        }
        Ok(Self::with_keys(keys, jwks, issuer, audience))
    }

    /// A verifier that trusts no key: every token is refused.
    pub fn empty(issuer: &str, audience: &str) -> Self {
        Self::with_keys(HashMap::new(), Jwks::default(), issuer, audience)
    }

    fn with_keys(
        keys: HashMap<String, DecodingKey>,
        jwks: Jwks,
        issuer: &str,
        audience: &str,
    ) -> Self {
        // Pin the algorithm: a token naming any other `alg` (none, HS256, ...) is refused.
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS.unsigned_abs();
        validation.validate_exp = true;
        Self {
            keys,
            jwks,
            validation,
            verified: Mutex::new(HashMap::new()),
        }
    }

    pub fn jwks(&self) -> &Jwks {
        &self.jwks
    }

    pub fn verify(&self, token: &str) -> AppResult<AccessClaims> {
        self.verify_at(token, OffsetDateTime::now_utc().unix_timestamp())
    }

    /// [`Self::verify`] at `now` (unix seconds) for the remembered tokens; a token seen for the
    /// first time is checked in full against the clock.
    fn verify_at(&self, token: &str, now: i64) -> AppResult<AccessClaims> {
        let remembered = self
            .verified
            .lock()
            .ok()
            .and_then(|verified| verified.get(token).cloned());
        if let Some(claims) = remembered {
            return if claims.exp + LEEWAY_SECS > now {
                Ok(claims)
            } else {
                Err(INVALID)
            };
        }
        let claims = self.verify_fully(token)?;
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= VERIFIED_ENTRIES {
                verified.clear();
            }
            verified.insert(token.to_owned(), claims.clone());
        }
        Ok(claims)
    }

    fn verify_fully(&self, token: &str) -> AppResult<AccessClaims> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| INVALID)?;
        let typ_ok = header.typ.as_deref().is_some_and(|t| {
            t.eq_ignore_ascii_case(ACCESS_TOKEN_TYPE)
                || t.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok || header.alg != Algorithm::EdDSA {
            return Err(INVALID);
        }
        let key = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.get(kid))
            .ok_or(INVALID)?;
        let data = jsonwebtoken::decode::<AccessClaims>(token, key, &self.validation)
            .map_err(|_| INVALID)?;
        Ok(data.claims)
    }
}

#[cfg(test)]
mod verified_tests {
    use super::*;
    use crate::TestResult;

    /// A remembered token is still refused once it expires, and the memory stays bounded.
    #[test]
    fn remembered_tokens_still_expire_and_the_memory_is_bounded() -> TestResult {
        let key = SigningKey::generate();
        let signer = TokenSigner::new(&key, "gantry", "gantry-api", Duration::from_secs(900))?;
        let jwks = Jwks {
            keys: vec![key.public_jwk()],
        };
        let verifier = TokenVerifier::new(jwks, "gantry", "gantry-api")?;
        let subject = Subject {
            user_id: Uuid::now_v7(),
            role: Role::Client,
            identity_id: Uuid::now_v7(),
            amr: Amr::Pwd.into(),
            email_verified: false,
        };
        let token = signer.issue(subject, Uuid::now_v7())?;
        let now = OffsetDateTime::now_utc().unix_timestamp();
        assert_eq!(verifier.verify_at(&token, now)?.sub, subject.user_id);
        assert_eq!(
            verifier.verify_at(&token, now + 900)?.sub,
            subject.user_id,
            "within leeway"
        );
        assert!(
            verifier
                .verify_at(&token, now + 900 + LEEWAY_SECS + 1)
                .is_err()
        );
        assert!(
            verifier.verify(&format!("{token}x")).is_err(),
            "other bytes are checked in full"
        );
        for _ in 0..VERIFIED_ENTRIES + 5 {
            verifier.verify(&signer.issue(subject, Uuid::now_v7())?)?;
        }
        assert!(
            verifier
                .verified
                .lock()
                .map(|v| v.len())
                .unwrap_or(usize::MAX)
                <= VERIFIED_ENTRIES
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestResult;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const ISS: &str = "gantry";
    const AUD: &str = "gantry-api";

    struct Fixture {
        key: SigningKey,
        signer: TokenSigner,
        verifier: TokenVerifier,
    }

    fn fixture() -> Result<Fixture, KeyError> {
        let key = SigningKey::generate();
        let signer = TokenSigner::new(&key, ISS, AUD, Duration::from_secs(900))?;
        let jwks = Jwks {
            keys: vec![key.public_jwk()],
        };
        let verifier = TokenVerifier::new(jwks, ISS, AUD)?;
        Ok(Fixture {
            key,
            signer,
            verifier,
        })
    }

    fn subject() -> Subject {
        Subject {
            user_id: Uuid::now_v7(),
            role: Role::Client,
            identity_id: Uuid::now_v7(),
            amr: Amr::Pwd.into(),
            email_verified: false,
        }
    }

    fn b64(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    /// Signs `claims` with our key under a header of the caller's choosing.
    fn sign_with(
        f: &Fixture,
        typ: Option<&str>,
        kid: &str,
        claims: &impl Serialize,
    ) -> Result<String, Box<dyn std::error::Error>> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.typ = typ.map(str::to_owned);
        header.kid = Some(kid.to_owned());
        Ok(jsonwebtoken::encode(
            &header,
            claims,
            &f.key.encoding_key()?,
        )?)
    }

    #[test]
    fn a_signed_token_verifies_with_all_claims() -> TestResult {
        let f = fixture()?;
        let s = subject();
        let token = f.signer.issue(s, Uuid::now_v7())?;
        let header = jsonwebtoken::decode_header(&token)?;
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid, Some(f.key.public_jwk().kid));
        let claims = f.verifier.verify(&token)?;
        assert_eq!(claims.sub, s.user_id);
        assert_eq!(claims.idp, s.identity_id);
        assert_eq!(claims.amr, vec![Amr::Pwd]);
        assert_eq!(claims.exp - claims.iat, 900);
        assert!((claims.auth_time - claims.iat).abs() <= 1, "a sign-in now");
        Ok(())
    }

    #[test]
    fn a_refreshed_token_keeps_the_sign_in_time_and_an_old_token_reads_zero() -> TestResult {
        let f = fixture()?;
        let signed_in = OffsetDateTime::now_utc().unix_timestamp() - 3600;
        let token = f.signer.issue_since(subject(), Uuid::now_v7(), signed_in)?;
        let claims = f.verifier.verify(&token)?;
        assert_eq!(claims.auth_time, signed_in);
        assert!(claims.iat > signed_in);
        let mut old = serde_json::to_value(f.signer.claims_for(subject(), Uuid::now_v7()))?;
        if let Some(map) = old.as_object_mut() {
            map.remove("auth_time");
        }
        let token = sign_with(&f, Some("at+jwt"), &f.key.public_jwk().kid, &old)?;
        assert_eq!(f.verifier.verify(&token)?.auth_time, 0);
        Ok(())
    }

    #[test]
    fn alg_none_is_rejected() -> TestResult {
        let f = fixture()?;
        let claims = serde_json::to_value(f.signer.claims_for(subject(), Uuid::now_v7()))?;
        let header = serde_json::json!({"alg":"none","typ":"at+jwt","kid": f.key.public_jwk().kid});
        let token = format!("{}.{}.", b64(&header), b64(&claims));
        assert!(f.verifier.verify(&token).is_err());
        Ok(())
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_rejected() -> TestResult {
        let f = fixture()?;
        let claims = f.signer.claims_for(subject(), Uuid::now_v7());
        let mut header = Header::new(Algorithm::HS256);
        header.typ = Some("at+jwt".into());
        header.kid = Some(f.key.public_jwk().kid);
        let x = f.key.public_jwk().x;
        // Keyed with the raw public key, and with its base64 text.
        for secret in [URL_SAFE_NO_PAD.decode(&x)?, x.into_bytes()] {
            let forged =
                jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(&secret))?;
            assert!(f.verifier.verify(&forged).is_err());
        }
        Ok(())
    }

    #[test]
    fn a_foreign_key_is_rejected() -> TestResult {
        let (ours, theirs) = (fixture()?, fixture()?);
        assert!(
            ours.verifier
                .verify(&theirs.signer.issue(subject(), Uuid::now_v7())?)
                .is_err()
        );
        Ok(())
    }

    #[test]
    fn wrong_kid_with_our_key_is_rejected() -> TestResult {
        let f = fixture()?;
        let claims = f.signer.claims_for(subject(), Uuid::now_v7());
        let token = sign_with(&f, Some("at+jwt"), "someone-else", &claims)?;
        assert!(f.verifier.verify(&token).is_err());
        Ok(())
    }

    #[test]
    fn expired_tokens_are_rejected() -> TestResult {
        let f = fixture()?;
        let mut claims = f.signer.claims_for(subject(), Uuid::now_v7());
        claims.iat -= 3600;
        claims.exp = claims.iat + 900;
        assert!(f.verifier.verify(&f.signer.sign(&claims)?).is_err());
        Ok(())
    }

    #[test]
    fn wrong_audience_issuer_or_typ_is_rejected() -> TestResult {
        let f = fixture()?;
        let mut claims = f.signer.claims_for(subject(), Uuid::now_v7());
        claims.aud = "another-api".into();
        assert!(f.verifier.verify(&f.signer.sign(&claims)?).is_err());

        let mut claims = f.signer.claims_for(subject(), Uuid::now_v7());
        claims.iss = "evil".into();
        assert!(f.verifier.verify(&f.signer.sign(&claims)?).is_err());

        let claims = f.signer.claims_for(subject(), Uuid::now_v7());
        let kid = f.key.public_jwk().kid;
        for typ in [Some("JWT"), None] {
            let token = sign_with(&f, typ, &kid, &claims)?;
            assert!(f.verifier.verify(&token).is_err(), "typ {typ:?} accepted");
        }
        // The control: the same construction with the right typ verifies.
        assert!(
            f.verifier
                .verify(&sign_with(&f, Some("at+jwt"), &kid, &claims)?)
                .is_ok()
        );
        Ok(())
    }

    #[test]
    fn tampered_payload_is_rejected() -> TestResult {
        let f = fixture()?;
        let token = f.signer.issue(subject(), Uuid::now_v7())?;
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1])?)?;
        claims["role"] = "ADMIN".into();
        let forged = format!("{}.{}.{}", parts[0], b64(&claims), parts[2]);
        assert!(f.verifier.verify(&forged).is_err());
        Ok(())
    }

    #[test]
    fn missing_claims_are_rejected() -> TestResult {
        let f = fixture()?;
        let kid = f.key.public_jwk().kid;
        for claim in ["jti", "sub", "exp", "iat", "amr", "idp", "role"] {
            let mut claims = serde_json::to_value(f.signer.claims_for(subject(), Uuid::now_v7()))?;
            if let Some(map) = claims.as_object_mut() {
                map.remove(claim);
            }
            let token = sign_with(&f, Some("at+jwt"), &kid, &claims)?;
            assert!(
                f.verifier.verify(&token).is_err(),
                "token without {claim} accepted"
            );
        }
        Ok(())
    }

    #[test]
    fn opaque_refresh_tokens_are_not_access_tokens() -> TestResult {
        let f = fixture()?;
        // The shape of an opaque refresh token: 32 bytes in unpadded base64url.
        let refresh = URL_SAFE_NO_PAD.encode([0x5a_u8; 32]);
        assert!(f.verifier.verify(&refresh).is_err());
        Ok(())
    }
}
