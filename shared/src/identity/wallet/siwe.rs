//! Sign-In with Ethereum (EIP-4361) verification. Every check, once:
//! - the message parses (the maintained `siwe` crate's parser);
//! - `domain` is allowed and `uri` is on it; version 1; `chain-id` is allowed;
//! - issued-at is not in the future (beyond the skew), expiration has not passed, not-before has;
//! - the signature: EIP-191 over the exact message bytes, 65 bytes, v ∈ {27, 28, 0, 1}, low s
//!   (EIP-2), recovering the message's address; or, where an RPC is configured for the chain,
//!   EIP-1271 `isValidSignature` on the address (contract wallets).
//!
//! The nonce is checked by the caller, which spends it in the transaction that opens the session.

use crate::chain::{ChainError, ChainRpc};
use crate::error::AppError;
use alloy::primitives::{Address, Signature, eip191_hash_message};
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;

/// Where SIWE messages may come from.
#[derive(Debug, Clone)]
pub struct SiwePolicy {
    /// `SIWE_DOMAINS`: allowed `host[:port]` authorities, lower-case.
    pub domains: Vec<String>,
    /// `SIWE_CHAIN_IDS`.
    pub chain_ids: Vec<u64>,
    /// `SIWE_CLOCK_SKEW_SECONDS`: tolerance for clocks ahead of ours.
    pub skew: Duration,
}

/// A parsed message with the exact text that was signed.
pub struct SiweMessage {
    raw: String,
    parsed: siwe::Message,
}

/// What a successful verification proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub address: Address,
    pub chain_id: u64,
    pub nonce: String,
}

impl Proof {
    /// The EIP-55 form, as stored and shown.
    pub fn checksummed(&self) -> String {
        self.address.to_checksum(None)
    }
}

/// One 401 for every way a proof can fail, so a caller cannot tell which check tripped.
pub const REJECTED: AppError =
    AppError::Unauthorized("the signed message or its signature is not valid");

/// Why a SIWE proof failed. Only [`From<SiweError> for AppError`] decides what a client sees.
#[derive(Debug, thiserror::Error)]
pub enum SiweError {
    /// The input does not have the documented shape of a SIWE message or signature (400).
    #[error("{field} {message}")]
    Malformed {
        field: &'static str,
        message: String,
    },
    /// The message has the documented preamble but is not valid EIP-4361 (422).
    #[error("{field} {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    /// A check failed (401, one answer for all). The reason is logged, never shown.
    #[error("SIWE proof rejected: {0}")]
    Rejected(&'static str),
    /// The chain could not be asked (503).
    #[error(transparent)]
    Chain(#[from] ChainError),
}

impl From<SiweError> for AppError {
    fn from(err: SiweError) -> Self {
        match err {
            SiweError::Malformed { field, message } => AppError::invalid(field, message),
            SiweError::Invalid { field, message } => {
                AppError::Validation(vec![crate::error::FieldError::semantic(field, message)])
            }
            SiweError::Rejected(_) => REJECTED,
            SiweError::Chain(err) => err.into(),
        }
    }
}

fn malformed(field: &'static str, message: impl Into<String>) -> SiweError {
    SiweError::Malformed {
        field,
        message: message.into(),
    }
}

type SiweResult<T> = Result<T, SiweError>;

/// Largest signature accepted (EIP-1271 signatures may be longer than 65 bytes).
const MAX_SIGNATURE_BYTES: usize = 4096;
/// Longest message accepted, in characters.
pub const MAX_MESSAGE_CHARS: usize = 8192;

/// The shape [`SiweMessage::parse`] checks before the full EIP-4361 grammar: the preamble line
/// and the address line. Anything else is a 400; past it, an invalid message is a 422.
pub const MESSAGE_PATTERN: &str =
    "^[^\\n]+ wants you to sign in with your Ethereum account:\\n0x[0-9a-fA-F]{40}\\n";
const PREAMBLE_SUFFIX: &str = " wants you to sign in with your Ethereum account:";

/// What [`decode_signature`] accepts: 1 to 4096 bytes of hex, optionally `0x`-prefixed.
pub const SIGNATURE_PATTERN: &str = "^(0x)?([0-9a-fA-F]{2}){1,4096}$";

/// An Ethereum address as requests carry it: `0x` and 40 hex digits, any case.
pub const ADDRESS_PATTERN: &str = "^0x[0-9a-fA-F]{40}$";

fn is_hex(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `0x` and 40 hex digits: what [`ADDRESS_PATTERN`] says.
pub fn parse_address(text: &str) -> Option<Address> {
    let digits = text.strip_prefix("0x")?;
    if digits.len() != 40 || !is_hex(digits) {
        return None;
    }
    Address::from_str(digits).ok()
}

/// The preamble and address lines, as [`MESSAGE_PATTERN`] says.
fn has_preamble(raw: &str) -> bool {
    let mut lines = raw.splitn(3, '\n');
    let domain_line = lines.next().unwrap_or_default();
    let address_line = lines.next().unwrap_or_default();
    domain_line
        .strip_suffix(PREAMBLE_SUFFIX)
        .is_some_and(|domain| !domain.is_empty())
        && parse_address(address_line).is_some()
        && lines.next().is_some()
}

/// The request schemas of a SIWE message, a signature and an address.
pub mod schema {
    use crate::domain::schema::string;
    use utoipa::openapi::schema::Object;

    pub fn message() -> Object {
        string(None, Some(super::MAX_MESSAGE_CHARS))
            .pattern(Some(super::MESSAGE_PATTERN))
            .description(Some(
                "An EIP-4361 message carrying a nonce from POST /auth/nonce. Text without the preamble and address lines is a 400; a message that has them but breaks the rest of the grammar is a 422.",
            ))
            .build()
    }

    pub fn signature() -> Object {
        string(None, None)
            .pattern(Some(super::SIGNATURE_PATTERN))
            .description(Some(
                "EIP-191 personal_sign signature (65 bytes), or an EIP-1271 one for contract wallets; hex, 0x optional",
            ))
            .build()
    }

    pub fn address() -> Object {
        crate::domain::schema::or_null(
            string(None, None)
                .pattern(Some(super::ADDRESS_PATTERN))
                .description(Some("A wallet address, any case")),
        )
    }
}

fn rejected(reason: &'static str) -> SiweError {
    tracing::info!(reason, "SIWE proof rejected");
    SiweError::Rejected(reason)
}

impl SiweMessage {
    /// Parses an EIP-4361 message; anything else is a 400.
    pub fn parse(raw: &str) -> SiweResult<Self> {
        if raw.chars().count() > MAX_MESSAGE_CHARS {
            return Err(malformed("message", "is too long"));
        }
        if !has_preamble(raw) {
            return Err(malformed(
                "message",
                "is not an EIP-4361 message: it must start with the preamble and address lines",
            ));
        }
        let parsed = siwe::Message::from_str(raw).map_err(|e| SiweError::Invalid {
            field: "message",
            message: format!("is not an EIP-4361 message: {e}"),
        })?;
        Ok(Self {
            raw: raw.to_owned(),
            parsed,
        })
    }

    pub fn address(&self) -> Address {
        Address::from(self.parsed.address)
    }

    pub fn chain_id(&self) -> u64 {
        self.parsed.chain_id
    }

    pub fn nonce(&self) -> &str {
        &self.parsed.nonce
    }

    /// Every claim in the message, against `policy` at time `now`.
    pub fn check_claims(&self, policy: &SiwePolicy, now: OffsetDateTime) -> SiweResult<()> {
        let m = &self.parsed;
        let domain = m.domain.as_str().to_ascii_lowercase();
        if !policy.domains.contains(&domain) {
            return Err(rejected("domain not allowed"));
        }
        let uri_authority = m.uri.authority_str().map(str::to_ascii_lowercase);
        if uri_authority.as_deref() != Some(domain.as_str()) {
            return Err(rejected("uri is not on the domain"));
        }
        if !matches!(m.version, siwe::Version::V1) {
            return Err(rejected("version"));
        }
        if !policy.chain_ids.contains(&m.chain_id) {
            return Err(rejected("chain not allowed"));
        }
        let skew = time::Duration::try_from(policy.skew).unwrap_or(time::Duration::MINUTE);
        if *m.issued_at.as_ref() > now + skew {
            return Err(rejected("issued in the future"));
        }
        if m.expiration_time
            .as_ref()
            .is_some_and(|t| *t.as_ref() <= now)
        {
            return Err(rejected("expired"));
        }
        if m.not_before
            .as_ref()
            .is_some_and(|t| *t.as_ref() > now + skew)
        {
            return Err(rejected("not yet valid"));
        }
        Ok(())
    }

    fn proof(&self) -> Proof {
        Proof {
            address: self.address(),
            chain_id: self.chain_id(),
            nonce: self.nonce().to_owned(),
        }
    }

    /// Claims, then the signature bytes and whether they recover the message's address.
    fn claims_and_ecdsa(
        &self,
        signature_hex: &str,
        policy: &SiwePolicy,
        now: OffsetDateTime,
    ) -> SiweResult<(Vec<u8>, bool)> {
        self.check_claims(policy, now)?;
        let bytes = decode_signature(signature_hex)?;
        let recovered = recovers_to(&self.raw, &bytes, self.address());
        Ok((bytes, recovered))
    }

    /// Claims and an externally-owned account's signature: everything but the nonce, without
    /// the network.
    pub fn verify_eoa(
        &self,
        signature_hex: &str,
        policy: &SiwePolicy,
        now: OffsetDateTime,
    ) -> SiweResult<Proof> {
        match self.claims_and_ecdsa(signature_hex, policy, now)? {
            (_, true) => Ok(self.proof()),
            (_, false) => Err(rejected("signature")),
        }
    }

    /// Claims and signature: everything but the nonce. A signature that does not recover the
    /// address is put to the address as a contract wallet (EIP-1271) where the chain has an RPC.
    pub async fn verify(
        &self,
        signature_hex: &str,
        policy: &SiwePolicy,
        rpc: &dyn ChainRpc,
        now: OffsetDateTime,
    ) -> SiweResult<Proof> {
        let (bytes, recovered) = self.claims_and_ecdsa(signature_hex, policy, now)?;
        if recovered {
            return Ok(self.proof());
        }
        if rpc.supports(self.chain_id()) {
            let hash = eip191_hash_message(self.raw.as_bytes());
            if rpc
                .is_valid_signature(self.chain_id(), self.address(), hash, &bytes)
                .await?
            {
                return Ok(self.proof());
            }
        }
        Err(rejected("signature"))
    }
}

/// `0x`-prefixed (or bare) hex, at most 4 KiB. Malformed hex is a 400.
fn decode_signature(signature_hex: &str) -> SiweResult<Vec<u8>> {
    let hex_digits = signature_hex.strip_prefix("0x").unwrap_or(signature_hex);
    if hex_digits.is_empty() || hex_digits.len() > MAX_SIGNATURE_BYTES * 2 {
        return Err(malformed("signature", "must be 1 to 4096 bytes of hex"));
    }
    if !is_hex(hex_digits) {
        return Err(malformed("signature", "is not hex"));
    }
    alloy::primitives::hex::decode(hex_digits).map_err(|_| malformed("signature", "is not hex"))
}

/// Strict EOA check: exactly 65 bytes, v ∈ {27, 28, 0, 1}, low s, recovers `expected`.
fn recovers_to(message: &str, bytes: &[u8], expected: Address) -> bool {
    let Ok(raw) = <[u8; 65]>::try_from(bytes) else {
        return false;
    };
    if !matches!(raw[64], 0 | 1 | 27 | 28) {
        return false;
    }
    let Ok(signature) = Signature::from_raw_array(&raw) else {
        return false;
    };
    if signature.normalize_s().is_some() {
        return false; // high s: the malleable twin of a valid signature (EIP-2)
    }
    signature
        .recover_address_from_msg(message.as_bytes())
        .is_ok_and(|recovered| recovered == expected)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestResult;
    use crate::chain::NoChain;
    use alloy::primitives::U256;
    use alloy::signers::SignerSync;
    use alloy::signers::local::PrivateKeySigner;

    fn policy() -> SiwePolicy {
        SiwePolicy {
            domains: vec!["app.example.com".into()],
            chain_ids: vec![1, 31337],
            skew: Duration::from_secs(60),
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }

    fn rfc3339(t: OffsetDateTime) -> String {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    }

    struct Fields {
        domain: &'static str,
        uri: &'static str,
        chain: u64,
        issued: OffsetDateTime,
        expires: Option<OffsetDateTime>,
        not_before: Option<OffsetDateTime>,
    }

    impl Default for Fields {
        fn default() -> Self {
            Self {
                domain: "app.example.com",
                uri: "https://app.example.com/login",
                chain: 1,
                issued: now(),
                expires: Some(now() + time::Duration::minutes(5)),
                not_before: None,
            }
        }
    }

    fn message(address: Address, f: &Fields) -> String {
        let mut text = format!(
            "{} wants you to sign in with your Ethereum account:\n{}\n\nSign in to gantry.\n\nURI: {}\nVersion: 1\nChain ID: {}\nNonce: abcdefgh12345678\nIssued At: {}",
            f.domain,
            address.to_checksum(None),
            f.uri,
            f.chain,
            rfc3339(f.issued)
        );
        if let Some(t) = f.expires {
            text.push_str(&format!("\nExpiration Time: {}", rfc3339(t)));
        }
        if let Some(t) = f.not_before {
            text.push_str(&format!("\nNot Before: {}", rfc3339(t)));
        }
        text
    }

    fn sign(signer: &PrivateKeySigner, text: &str) -> Result<Vec<u8>, alloy::signers::Error> {
        Ok(signer
            .sign_message_sync(text.as_bytes())?
            .as_bytes()
            .to_vec())
    }

    async fn verify(text: &str, sig: &[u8]) -> SiweResult<Proof> {
        let m = SiweMessage::parse(text)?;
        let hex = format!("0x{}", alloy::primitives::hex::encode(sig));
        m.verify(&hex, &policy(), &NoChain, now()).await
    }

    #[tokio::test]
    async fn a_well_formed_signed_message_verifies() -> TestResult {
        let signer = PrivateKeySigner::random();
        let text = message(signer.address(), &Fields::default());
        let proof = verify(&text, &sign(&signer, &text)?).await?;
        assert_eq!(proof.address, signer.address());
        assert_eq!(proof.chain_id, 1);
        assert_eq!(proof.nonce, "abcdefgh12345678");
        Ok(())
    }

    #[tokio::test]
    async fn every_claim_is_checked() -> TestResult {
        let signer = PrivateKeySigner::random();
        let cases = [
            (
                "wrong domain",
                Fields {
                    domain: "evil.example.com",
                    uri: "https://evil.example.com/",
                    ..Fields::default()
                },
            ),
            (
                "uri off the domain",
                Fields {
                    uri: "https://evil.example.com/login",
                    ..Fields::default()
                },
            ),
            (
                "wrong chain",
                Fields {
                    chain: 5,
                    ..Fields::default()
                },
            ),
            (
                "expired",
                Fields {
                    expires: Some(now() - time::Duration::seconds(1)),
                    ..Fields::default()
                },
            ),
            (
                "not yet valid",
                Fields {
                    not_before: Some(now() + time::Duration::minutes(10)),
                    ..Fields::default()
                },
            ),
            (
                "issued in the future",
                Fields {
                    issued: now() + time::Duration::minutes(10),
                    ..Fields::default()
                },
            ),
        ];
        for (name, fields) in cases {
            let text = message(signer.address(), &fields);
            let outcome = verify(&text, &sign(&signer, &text)?).await;
            assert!(
                matches!(outcome, Err(SiweError::Rejected(_))),
                "{name}: {outcome:?}"
            );
        }
        // Within the skew is fine.
        let ok = Fields {
            issued: now() + time::Duration::seconds(30),
            ..Fields::default()
        };
        let text = message(signer.address(), &ok);
        verify(&text, &sign(&signer, &text)?).await?;
        Ok(())
    }

    #[tokio::test]
    async fn a_signature_by_another_key_is_rejected() -> TestResult {
        let (owner, other) = (PrivateKeySigner::random(), PrivateKeySigner::random());
        let text = message(owner.address(), &Fields::default());
        assert!(verify(&text, &sign(&other, &text)?).await.is_err());
        Ok(())
    }

    #[test]
    fn recovery_runs_on_libsecp256k1_and_agrees_with_k256() -> TestResult {
        // `recovers_to` goes through alloy's libsecp256k1 backend (the `secp256k1` feature; this
        // test does not compile without it); k256, which signs, must recover the same keys.
        for _ in 0..64 {
            let signer = PrivateKeySigner::random();
            let text = message(signer.address(), &Fields::default());
            let sig = signer.sign_message_sync(text.as_bytes())?;
            let secp = sig.recover_from_msg_secp256k1(text.as_bytes())?;
            let k256 = sig.recover_from_msg(text.as_bytes())?;
            assert_eq!(
                secp.serialize_uncompressed(),
                *k256.to_encoded_point(false).as_bytes()
            );
            assert!(recovers_to(&text, &sig.as_bytes(), signer.address()));
        }
        Ok(())
    }

    #[tokio::test]
    async fn the_high_s_twin_is_rejected() -> TestResult {
        let signer = PrivateKeySigner::random();
        let text = message(signer.address(), &Fields::default());
        let sig = signer.sign_message_sync(text.as_bytes())?;
        // (r, n - s, !parity) recovers the same key: valid ECDSA, refused by EIP-2.
        let n = U256::from_str_radix(
            "fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141",
            16,
        )?;
        let twin = Signature::new(sig.r(), n - sig.s(), !sig.v());
        assert_eq!(
            twin.recover_address_from_msg(text.as_bytes())?,
            signer.address()
        );
        assert!(verify(&text, &twin.as_bytes()).await.is_err());
        Ok(())
    }

    #[tokio::test]
    async fn v_may_be_27_28_0_or_1_and_nothing_else() -> TestResult {
        let signer = PrivateKeySigner::random();
        let text = message(signer.address(), &Fields::default());
        let mut sig = sign(&signer, &text)?;
        let parity = sig[64] - 27;
        for (v, ok) in [
            (27 + parity, true),
            (parity, true),
            (37 + parity, false),
            (2, false),
        ] {
            sig[64] = v;
            assert_eq!(verify(&text, &sig).await.is_ok(), ok, "v = {v}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn truncated_and_malformed_signatures_are_rejected() -> TestResult {
        let signer = PrivateKeySigner::random();
        let text = message(signer.address(), &Fields::default());
        let sig = sign(&signer, &text)?;
        assert!(matches!(
            verify(&text, &sig[..64]).await,
            Err(SiweError::Rejected(_))
        ));
        assert!(matches!(
            verify(&text, &[]).await,
            Err(SiweError::Malformed { .. })
        ));
        let m = SiweMessage::parse(&text)?;
        let bad = m.verify("0xnothex", &policy(), &NoChain, now()).await;
        assert!(matches!(bad, Err(SiweError::Malformed { .. })));
        Ok(())
    }

    #[tokio::test]
    async fn a_message_naming_another_address_is_rejected() -> TestResult {
        let (signer, victim) = (PrivateKeySigner::random(), PrivateKeySigner::random());
        let text = message(victim.address(), &Fields::default());
        assert!(verify(&text, &sign(&signer, &text)?).await.is_err());
        Ok(())
    }

    /// The hand-written shape checks and the documented patterns agree.
    #[test]
    fn the_schema_patterns_say_what_the_checks_do() -> TestResult {
        let message = regex::Regex::new(MESSAGE_PATTERN)?;
        let address = "0x52908400098527886E0F7030069857D2E4169EE7";
        for text in [
            format!("example.com wants you to sign in with your Ethereum account:\n{address}\n"),
            format!(
                "https://a.example:8443 wants you to sign in with your Ethereum account:\n{address}\n\nURI"
            ),
            format!(" wants you to sign in with your Ethereum account:\n{address}\n"),
            format!("example.com wants you to sign in with your Ethereum account:\n{address}"),
            format!("example.com wants you to sign in with your Ethereum account:\n{address}0\n"),
            format!(
                "example.com wants you to sign in with your Ethereum account:\n0x{}\n",
                "g".repeat(40)
            ),
            format!("a\nexample.com wants you to sign in with your Ethereum account:\n{address}\n"),
            "hello".to_owned(),
        ] {
            assert_eq!(message.is_match(&text), has_preamble(&text), "{text:?}");
        }
        let signature = regex::Regex::new(SIGNATURE_PATTERN)?;
        for text in [
            "0xab",
            "AB",
            "0x",
            "",
            "0xa",
            "0x0xab",
            "zz",
            &"ab".repeat(4096),
            &"ab".repeat(4097),
        ] {
            assert_eq!(
                signature.is_match(text),
                decode_signature(text).is_ok(),
                "{text:?}"
            );
        }
        let pattern = regex::Regex::new(ADDRESS_PATTERN)?;
        for text in [
            address,
            &address.to_lowercase(),
            &address[2..],
            " 0x52908400098527886E0F7030069857D2E4169EE7",
            "0x1",
        ] {
            assert_eq!(
                pattern.is_match(text),
                parse_address(text).is_some(),
                "{text:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn non_siwe_text_is_a_400() {
        for text in [
            "",
            "hello",
            "example.com wants you to sign in with your Ethereum account:\n0xnot",
        ] {
            assert!(
                matches!(SiweMessage::parse(text), Err(SiweError::Malformed { .. })),
                "{text:?}"
            );
        }
    }
}
