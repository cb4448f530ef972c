//! The Postgres ephemeral store, through its traits.

use gantry::store::{Idempotency, IdempotencyStore, PgEphemeral, RateDecision, RateLimiter};
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(86_400);

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn an_idempotency_key_runs_once_then_replays(pool: PgPool) {
    let store = PgEphemeral::new(pool);
    assert_eq!(
        store.begin("payouts", "k1", b"req-a", DAY).await.unwrap(),
        Idempotency::Started
    );
    assert_eq!(
        store.begin("payouts", "k1", b"req-a", DAY).await.unwrap(),
        Idempotency::InProgress
    );
    store
        .complete("payouts", "k1", 202, &json!({"tx_hash": "0xabc"}))
        .await
        .unwrap();
    assert_eq!(
        store.begin("payouts", "k1", b"req-a", DAY).await.unwrap(),
        Idempotency::Completed {
            status: 202,
            response: json!({"tx_hash": "0xabc"})
        }
    );
    // The same key for a different request is refused; other scopes are independent.
    assert_eq!(
        store.begin("payouts", "k1", b"req-b", DAY).await.unwrap(),
        Idempotency::Mismatch
    );
    assert_eq!(
        store.begin("refunds", "k1", b"req-b", DAY).await.unwrap(),
        Idempotency::Started
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn concurrent_first_uses_of_a_key_start_once(pool: PgPool) {
    let store = PgEphemeral::new(pool);
    let outcomes =
        futures::future::join_all((0..10).map(|_| store.begin("payouts", "race", b"req", DAY)))
            .await;
    let started = outcomes
        .iter()
        .filter(|o| matches!(o, Ok(Idempotency::Started)))
        .count();
    assert_eq!(started, 1, "{outcomes:?}");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn an_expired_key_starts_afresh(pool: PgPool) {
    let store = PgEphemeral::new(pool.clone());
    store.begin("payouts", "old", b"req", DAY).await.unwrap();
    sqlx::query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        store.begin("payouts", "old", b"other", DAY).await.unwrap(),
        Idempotency::Started
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_rate_limit_counts_within_its_window(pool: PgPool) {
    let store = PgEphemeral::new(pool.clone());
    let window = Duration::from_secs(3600);
    for _ in 0..3 {
        assert_eq!(
            store.hit("k", 3, window).await.unwrap(),
            RateDecision::Allowed
        );
    }
    let RateDecision::Limited { retry_after } = store.hit("k", 3, window).await.unwrap() else {
        panic!("the fourth hit should be limited");
    };
    assert!(retry_after >= Duration::from_secs(1) && retry_after <= window);
    assert_eq!(
        store.hit("other", 3, window).await.unwrap(),
        RateDecision::Allowed
    );
    // A new window starts the count again.
    sqlx::query("UPDATE rate_limits SET window_start = window_start - interval '2 hours'")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        store.hit("k", 3, window).await.unwrap(),
        RateDecision::Allowed
    );
}
