//! What every ephemeral-store implementation must do, as functions any test can run against
//! an implementation: the Postgres one in the integration tests, the in-memory one in unit
//! tests, DynamoDB later. Each returns an error instead of panicking, naming what went wrong.

use super::{Idempotency, IdempotencyStore, LockoutPolicy, Lockouts, RateDecision, RateLimiter};
use serde_json::json;
use std::time::Duration;

type Outcome = anyhow::Result<()>;

const DAY: Duration = Duration::from_secs(86_400);

fn expect<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Outcome {
    if got == want {
        Ok(())
    } else {
        Err(anyhow::anyhow!("{what}: got {got:?}, want {want:?}"))
    }
}

/// Every check but the timed one ([`entries_end_on_time`]): replay, mismatch, scopes, 10
/// concurrent first uses, rate windows, any string as a key, lockouts.
pub async fn the_whole_contract<S>(store: &S) -> Outcome
where
    S: IdempotencyStore + Lockouts + RateLimiter,
{
    idempotency_runs_once_then_replays(store).await?;
    concurrent_first_uses_start_once(store).await?;
    a_rate_window_limits_then_tells_when(store).await?;
    lockouts_lock_then_clear(store).await?;
    any_string_is_a_key(store).await
}

pub async fn idempotency_runs_once_then_replays(store: &dyn IdempotencyStore) -> Outcome {
    let first = store.begin("payouts", "k1", b"req-a", DAY).await?;
    expect("first use", first, Idempotency::Started)?;
    let again = store.begin("payouts", "k1", b"req-a", DAY).await?;
    expect("while in progress", again, Idempotency::InProgress)?;
    store
        .complete("payouts", "k1", 202, &json!({"tx_hash": "0xabc"}))
        .await?;
    let done = store.begin("payouts", "k1", b"req-a", DAY).await?;
    let want = Idempotency::Completed {
        status: 202,
        response: json!({"tx_hash": "0xabc"}),
    };
    expect("after completion", done, want)?;
    // The same key for a different request is refused; other scopes are independent.
    let other = store.begin("payouts", "k1", b"req-b", DAY).await?;
    expect("another request", other, Idempotency::Mismatch)?;
    let scope = store.begin("refunds", "k1", b"req-b", DAY).await?;
    expect("another scope", scope, Idempotency::Started)
}

pub async fn concurrent_first_uses_start_once(store: &dyn IdempotencyStore) -> Outcome {
    let attempts = (0..10).map(|_| store.begin("payouts", "race", b"req", DAY));
    let outcomes = futures_util::future::join_all(attempts).await;
    let started = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Idempotency::Started)))
        .count();
    expect("concurrent first uses that started", started, 1)
}

pub async fn a_rate_window_limits_then_tells_when(limiter: &dyn RateLimiter) -> Outcome {
    let window = Duration::from_secs(3600);
    for n in 1..=3 {
        let decision = limiter.hit("ip:login:192.0.2.7", 3, window).await?;
        expect(&format!("hit {n} of 3"), decision, RateDecision::Allowed)?;
    }
    match limiter.hit("ip:login:192.0.2.7", 3, window).await? {
        RateDecision::Limited { retry_after } if retry_after <= window => {}
        other => anyhow::bail!("the 4th hit: {other:?}"),
    }
    let other_key = limiter.hit("ip:login:192.0.2.8", 3, window).await?;
    expect("another key", other_key, RateDecision::Allowed)
}

/// Keys are whatever a client sent: NUL bytes and very long keys are kept apart and counted
/// like any other, never an error.
pub async fn any_string_is_a_key(limiter: &dyn RateLimiter) -> Outcome {
    let window = Duration::from_secs(3600);
    let long = "k".repeat(10_000);
    let longer = format!("{long}k");
    for key in ["a\0b", "a\0c", long.as_str(), longer.as_str()] {
        expect(
            key,
            limiter.hit(key, 1, window).await?,
            RateDecision::Allowed,
        )?;
    }
    match limiter.hit("a\0b", 1, window).await? {
        RateDecision::Limited { .. } => Ok(()),
        other => anyhow::bail!("the second hit on a key with NUL: {other:?}"),
    }
}

pub async fn lockouts_lock_then_clear(lockouts: &dyn Lockouts) -> Outcome {
    let policy = LockoutPolicy {
        threshold: 2,
        base: Duration::from_secs(30),
        max: Duration::from_secs(60),
    };
    expect(
        "first failure",
        lockouts.record_failure("a@x.io", policy).await?,
        None,
    )?;
    let locked = lockouts.record_failure("a@x.io", policy).await?;
    expect("second failure", locked, Some(Duration::from_secs(30)))?;
    match lockouts.locked_for("a@x.io").await? {
        Some(left) if left <= Duration::from_secs(30) => {}
        other => anyhow::bail!("locked_for after the lock: {other:?}"),
    }
    expect(
        "another identifier",
        lockouts.locked_for("b@x.io").await?,
        None,
    )?;
    lockouts.clear("a@x.io").await?;
    expect("after clear", lockouts.locked_for("a@x.io").await?, None)
}

/// Entries end on time, whatever the store does with them afterwards (DynamoDB deletes expired
/// items only eventually): an expired idempotency key starts again, a lock ends, and a new rate
/// window counts from zero. Sleeps about three seconds in all.
pub async fn entries_end_on_time<S>(store: &S) -> Outcome
where
    S: IdempotencyStore + Lockouts + RateLimiter,
{
    let second = Duration::from_secs(1);
    let past = Duration::from_millis(1_100);
    expect(
        "a key for one second",
        store.begin("ttl", "brief", b"req-a", second).await?,
        Idempotency::Started,
    )?;
    store.complete("ttl", "brief", 200, &json!({})).await?;
    tokio::time::sleep(past).await;
    expect(
        "the same key, expired, for another request",
        store.begin("ttl", "brief", b"req-b", DAY).await?,
        Idempotency::Started,
    )?;

    let policy = LockoutPolicy {
        threshold: 1,
        base: second,
        max: second,
    };
    expect(
        "a one-second lock",
        store.record_failure("brief@x.io", policy).await?,
        Some(second),
    )?;
    if store.locked_for("brief@x.io").await?.is_none() {
        anyhow::bail!("the lock did not hold");
    }
    tokio::time::sleep(past).await;
    expect(
        "the lock after its second",
        store.locked_for("brief@x.io").await?,
        None,
    )?;

    store.hit("ttl:window", 1, second).await?;
    let retry_after = match store.hit("ttl:window", 1, second).await? {
        RateDecision::Limited { retry_after } => retry_after,
        RateDecision::Allowed => {
            // The first hit was the last moment of a window; this one opened the next.
            match store.hit("ttl:window", 1, second).await? {
                RateDecision::Limited { retry_after } => retry_after,
                other => anyhow::bail!("a one-second window of one hit, hit again: {other:?}"),
            }
        }
    };
    tokio::time::sleep(retry_after).await;
    expect(
        "the next window",
        store.hit("ttl:window", 1, second).await?,
        RateDecision::Allowed,
    )
}
