//! Signed jobs, where a queue worker is reachable over HTTP (OpenFaaS: `POST /` on the function).
//! Anyone who can reach the function could otherwise post any job body: start polling chains
//! for a payment, re-broadcast a payout. The outbox relay signs each job it sends with
//! `JOB_SIGNING_KEY` (a secret of the stack), and the worker refuses one that is unsigned,
//! wrongly signed, too old, or a delivery it has taken before (401), and logs it.
//!
//! `X-Gantry-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(key, "<t>.<X-Call-Id>.<body>")>`,
//! the scheme Stripe signs webhooks with, plus the call id: a signature is good for one delivery
//! of one body. Under SQS (IAM decides who may send) and in the local gateway (in-process)
//! nothing is signed.

use crate::config::{ConfigError, Env};
use crate::error::AppError;
use crate::need::{Need, SamValue, Var, secret};
use crate::signature;
use secrecy::{ExposeSecret, SecretString};

/// The header that carries a job's signature.
pub const HEADER: &str = "x-gantry-signature";

/// How far a signature's time may be from the worker's clock. Generous: the relay signs when
/// it hands a job to OpenFaaS, whose queue may deliver it hours later under a backlog, and a
/// job refused as stale would be lost. Replays within it are refused by the receipts (kept 2
/// days), not by the clock.
pub const TOLERANCE_SECS: u64 = 12 * 3600;

/// The key the relay signs with and the workers check with (OpenFaaS only).
pub const NEED: Need = Need {
    name: "job-signing",
    can_be_unavailable: false,
    vars: &[Var {
        name: "JOB_SIGNING_KEY",
        sam: SamValue::Unset,
        openfaas: secret("gantry-job-signing-key"),
    }],
    aws: &[],
};

const VAR: &str = "JOB_SIGNING_KEY";

/// The signing key: at least 32 bytes of text.
#[derive(Clone)]
pub struct JobKey(SecretString);

impl std::fmt::Debug for JobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("JobKey(..)")
    }
}

/// Why a job was refused; logged, never told to the caller beyond "not signed".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unsigned,
    Malformed,
    Stale,
    WrongSignature,
}

impl JobKey {
    /// `JOB_SIGNING_KEY`, if set; a key shorter than 32 characters is a start-up error.
    pub fn from_env(env: &Env) -> Result<Option<Self>, ConfigError> {
        let Some(key) = env.get(VAR) else {
            return Ok(None);
        };
        if key.trim().len() < 32 {
            return Err(ConfigError::invalid(
                VAR,
                "must be at least 32 characters (for example 32 random bytes, hex)",
            ));
        }
        Ok(Some(Self(SecretString::from(key.trim().to_owned()))))
    }

    /// The header value for delivering `body` as call `call_id` at unix time `now`.
    pub fn sign(&self, call_id: &str, body: &[u8], now: u64) -> String {
        let t = now.to_string();
        let v1 = signature::sign(self.bytes(), &parts(&t, call_id, body));
        format!("t={t},v1={v1}")
    }

    /// Whether `header` signs `body` as call `call_id`, within [`TOLERANCE_SECS`] of `now`.
    pub fn verify(
        &self,
        header: Option<&str>,
        call_id: &str,
        body: &[u8],
        now: u64,
    ) -> Result<(), Refusal> {
        let header = header.ok_or(Refusal::Unsigned)?;
        let mut t = None;
        let mut candidates = Vec::new();
        for part in header.split(',') {
            match part.trim().split_once('=') {
                Some(("t", value)) => t = Some(value),
                Some(("v1", value)) => candidates.push(value),
                _ => {}
            }
        }
        let t = t.ok_or(Refusal::Malformed)?;
        let at: u64 = t.parse().map_err(|_| Refusal::Malformed)?;
        if at.abs_diff(now) > TOLERANCE_SECS {
            return Err(Refusal::Stale);
        }
        let expected = signature::mac(self.bytes(), &parts(t, call_id, body));
        if candidates
            .iter()
            .any(|candidate| signature::hex_eq(&expected, candidate))
        {
            Ok(())
        } else {
            Err(Refusal::WrongSignature)
        }
    }

    fn bytes(&self) -> &[u8] {
        self.0.expose_secret().as_bytes()
    }
}

fn parts<'a>(t: &'a str, call_id: &'a str, body: &'a [u8]) -> [&'a [u8]; 5] {
    [t.as_bytes(), b".", call_id.as_bytes(), b".", body]
}

/// What a worker over HTTP checks each job with: the key, and the database that remembers
/// which deliveries it has taken.
#[derive(Clone)]
pub struct JobGuard {
    key: JobKey,
    db: crate::db::Db,
    queue: &'static str,
}

/// A signed delivery taken; give it back with [`JobGuard::release`] if the job failed, so that
/// its redelivery is taken.
pub struct Taken(String);

impl JobGuard {
    pub fn new(key: JobKey, db: crate::db::Db, queue: &'static str) -> Self {
        Self { key, db, queue }
    }

    /// Admits a delivery whose signature verifies and whose call id was not taken before; a
    /// 401 (logged with the reason) otherwise.
    pub async fn admit(
        &self,
        call_id: Option<&str>,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<Taken, AppError> {
        const REFUSED: AppError =
            AppError::Unauthorized("the job is not signed by this deployment's outbox relay");
        let call_id = call_id.filter(|id| (1..=200).contains(&id.len()));
        let checked = match call_id {
            Some(id) => self.key.verify(signature, id, body, now()),
            None => Err(Refusal::Unsigned),
        };
        if let Err(refusal) = checked {
            tracing::warn!(queue = self.queue, ?refusal, call = ?call_id, "a job was refused");
            return Err(REFUSED);
        }
        let call_id = call_id.unwrap_or_default();
        let fresh = sqlx::query!(
            "INSERT INTO job_receipts (call_id, queue) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            call_id,
            self.queue,
        )
        .execute(self.db.pool()?)
        .await?
        .rows_affected()
            == 1;
        if !fresh {
            tracing::warn!(
                queue = self.queue,
                call = call_id,
                "a job delivery was replayed"
            );
            return Err(REFUSED);
        }
        Ok(Taken(call_id.to_owned()))
    }

    /// Gives a failed delivery's id back.
    pub async fn release(&self, taken: Taken) {
        let Ok(pool) = self.db.pool() else {
            return;
        };
        if let Err(err) = sqlx::query!("DELETE FROM job_receipts WHERE call_id = $1", taken.0)
            .execute(pool)
            .await
        {
            tracing::warn!(queue = self.queue, error = %err, "a failed job's receipt stays");
        }
    }
}

/// Unix time now, in seconds.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> JobKey {
        JobKey(SecretString::from("k".repeat(32)))
    }

    #[test]
    fn a_signed_job_verifies_once_for_its_own_call_body_and_time() {
        let key = key();
        let ok = |h: Option<&str>, call: &str, body: &[u8], now| key.verify(h, call, body, now);
        let (t, late) = (100_000, 100_000 + TOLERANCE_SECS);
        let header = key.sign("call-1", b"{\"payment_id\":1}", t);
        assert_eq!(
            ok(Some(&header), "call-1", b"{\"payment_id\":1}", t),
            Ok(())
        );
        assert_eq!(
            ok(Some(&header), "call-1", b"{\"payment_id\":1}", late),
            Ok(())
        );
        assert_eq!(
            ok(Some(&header), "call-1", b"{\"payment_id\":2}", t),
            Err(Refusal::WrongSignature)
        );
        assert_eq!(
            ok(Some(&header), "call-2", b"{\"payment_id\":1}", t),
            Err(Refusal::WrongSignature)
        );
        assert_eq!(
            ok(Some(&header), "call-1", b"{\"payment_id\":1}", late + 1),
            Err(Refusal::Stale)
        );
        assert_eq!(ok(None, "call-1", b"", 1_000), Err(Refusal::Unsigned));
        assert_eq!(
            ok(Some("v1=00"), "call-1", b"", 1_000),
            Err(Refusal::Malformed)
        );
        // The extreme time parses and is refused, without overflow.
        let min = format!("t=-9223372036854775808,v1={}", "0".repeat(64));
        assert_eq!(ok(Some(&min), "c", b"", 1_000), Err(Refusal::Malformed));
        let max = format!("t={},v1={}", u64::MAX, "0".repeat(64));
        assert_eq!(ok(Some(&max), "c", b"", 0), Err(Refusal::Stale));
        let other = JobKey(SecretString::from("x".repeat(32)));
        assert_eq!(
            other.verify(Some(&header), "call-1", b"{\"payment_id\":1}", t),
            Err(Refusal::WrongSignature)
        );
    }

    #[test]
    fn a_short_key_is_a_startup_error_naming_the_variable() {
        let short = Env::from_pairs([(VAR, "short".to_owned())]);
        assert!(JobKey::from_env(&short).is_err_and(|e| e.to_string().contains(VAR)));
        assert!(
            JobKey::from_env(&Env::from_pairs(Vec::<(&str, String)>::new()))
                .is_ok_and(|k| k.is_none())
        );
    }
}
