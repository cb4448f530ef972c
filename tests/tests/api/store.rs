//! The Postgres ephemeral store, through its traits.

use gantry::store::{
    Idempotency, IdempotencyStore, PgEphemeral, RateDecision, RateLimiter, conformance,
};
use sqlx::PgPool;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(86_400);

/// The conformance suite every ephemeral-store implementation passes (the in-memory one runs it
/// in unit tests): replay, mismatch, scopes, 10 concurrent first uses, rate windows, lockouts.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn the_postgres_store_meets_the_conformance_suite(pool: PgPool) {
    let store = PgEphemeral::new(pool);
    conformance::idempotency_runs_once_then_replays(&store)
        .await
        .unwrap();
    conformance::concurrent_first_uses_start_once(&store)
        .await
        .unwrap();
    conformance::a_rate_window_limits_then_tells_when(&store)
        .await
        .unwrap();
    conformance::lockouts_lock_then_clear(&store).await.unwrap();
    conformance::any_string_is_a_key(&store).await.unwrap();
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
async fn a_new_rate_window_starts_the_count_again(pool: PgPool) {
    let store = PgEphemeral::new(pool.clone());
    let window = Duration::from_secs(3600);
    for _ in 0..3 {
        store.hit("k", 3, window).await.unwrap();
    }
    assert!(matches!(
        store.hit("k", 3, window).await.unwrap(),
        RateDecision::Limited { .. }
    ));
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
