use axum::http::StatusCode;
use gantry_tests::wallet::Wallet;
use gantry_tests::{PASSWORD, TestApp};
use serde_json::json;
use sqlx::PgPool;
use std::time::Duration;

fn login_body(email: &str, password: &str) -> serde_json::Value {
    json!({"email": email, "password": password})
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn the_per_ip_limit_answers_429_with_retry_after(pool: PgPool) {
    let app = TestApp::with(pool, &[("RATE_LIMIT_PER_IP", "3")]);
    for i in 0..3 {
        let res = app
            .post("/login-email-password")
            .header("x-forwarded-for", "203.0.113.9, 198.51.100.7")
            .json(&login_body(&format!("u{i}@example.com"), "wrong password"))
            .send()
            .await;
        res.problem(401);
    }
    let limited = app
        .post("/login-email-password")
        .header("x-forwarded-for", "203.0.113.9, 198.51.100.7")
        .json(&login_body("u9@example.com", "wrong password"))
        .send()
        .await;
    limited.problem(429);
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    // Another client is unaffected (the last hop is the address that counts).
    let other = app
        .post("/login-email-password")
        .header("x-forwarded-for", "198.51.100.8")
        .json(&login_body("u9@example.com", "wrong password"))
        .send()
        .await;
    other.problem(401);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn the_per_identifier_limit_holds_across_addresses(pool: PgPool) {
    let app = TestApp::with(pool, &[("RATE_LIMIT_PER_IDENTIFIER", "2")]);
    for ip in ["198.51.100.1", "198.51.100.2"] {
        app.post("/auth/nonce")
            .header("x-forwarded-for", ip)
            .json(&json!({"address": "0x0000000000000000000000000000000000000001"}))
            .send()
            .await;
    }
    app.post("/auth/nonce")
        .header("x-forwarded-for", "198.51.100.3")
        .json(&json!({"address": "0x0000000000000000000000000000000000000001"}))
        .send()
        .await
        .problem(429);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn repeated_failures_lock_an_identifier_until_the_window_passes(pool: PgPool) {
    let app = TestApp::with(
        pool,
        &[("LOCKOUT_THRESHOLD", "3"), ("LOCKOUT_BASE_SECONDS", "60")],
    );
    app.register("ada@example.com").await;
    for _ in 0..3 {
        app.post("/login-email-password")
            .json(&login_body("ada@example.com", "wrong password"))
            .send()
            .await
            .problem(401);
    }
    // Now even the right password waits.
    let locked = app
        .post("/login-email-password")
        .json(&login_body("ada@example.com", PASSWORD))
        .send()
        .await;
    locked.problem(429);
    let retry: u64 = locked.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((55..=60).contains(&retry), "{retry}");
    assert_eq!(app.audit_count("login.locked_out").await, 1);
    // Unknown emails lock the same way: nothing to learn from a lock.
    for _ in 0..3 {
        app.post("/login-email-password")
            .json(&login_body("nobody@example.com", "wrong password"))
            .send()
            .await;
    }
    app.post("/login-email-password")
        .json(&login_body("nobody@example.com", "x"))
        .send()
        .await
        .problem(429);
    // Once the window has passed, the owner gets in, and the count starts again.
    sqlx::query("UPDATE login_lockouts SET locked_until = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    let ok = app
        .post("/login-email-password")
        .json(&login_body("ada@example.com", PASSWORD))
        .send()
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let failures: Option<i32> = sqlx::query_scalar(
        "SELECT failures FROM login_lockouts WHERE identifier = 'ada@example.com'",
    )
    .fetch_optional(&app.pool)
    .await
    .unwrap();
    assert_eq!(failures, None);
}

/// Addresses are public and signatures cannot be guessed: forged proofs are audited but must not
/// let anyone lock a wallet's owner out.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn forged_wallet_proofs_cannot_lock_the_owner_out(pool: PgPool) {
    let app = TestApp::with(pool, &[("LOCKOUT_THRESHOLD", "2")]);
    let (wallet, thief) = (Wallet::random(), Wallet::random());
    app.register_wallet(&wallet).await;
    for _ in 0..4 {
        let message = wallet.message(&app.nonce().await);
        app.post("/login-blockchain")
            .json(&json!({"message": message, "signature": thief.sign(&message)}))
            .send()
            .await
            .problem(401);
    }
    let owner = app
        .post("/login-blockchain")
        .json(&app.siwe(&wallet).await)
        .send()
        .await;
    assert_eq!(owner.status, StatusCode::OK, "{}", owner.body);
    assert_eq!(app.audit_count("siwe.rejected").await, 4);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_zero_limit_turns_the_per_ip_limit_off(pool: PgPool) {
    let app = TestApp::with(
        pool,
        &[
            ("RATE_LIMIT_PER_IP", "0"),
            ("RATE_LIMIT_PER_IDENTIFIER", "0"),
        ],
    );
    for _ in 0..20 {
        let res = app.post("/auth/nonce").json(&json!({})).send().await;
        assert_eq!(res.status, StatusCode::CREATED);
    }
}

/// `DB_MAX_CONNECTIONS=1` is a valid setting: no rule may need a second connection while a
/// transaction holds the only one (it would wait out the acquire timeout and answer 503).
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn sign_in_works_on_a_single_connection_pool(pool: PgPool) {
    let single = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(2))
        .connect_with((*pool.connect_options()).clone())
        .await
        .unwrap();
    let app = TestApp::with(single, &[("LOCKOUT_THRESHOLD", "2")]);
    app.register("ada@example.com").await;
    for expected in [401, 401, 429] {
        app.post("/login-email-password")
            .json(&login_body("ada@example.com", "wrong password"))
            .send()
            .await
            .problem(expected);
    }
    sqlx::query("UPDATE login_lockouts SET locked_until = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    let ok = app
        .post("/login-email-password")
        .json(&login_body("ada@example.com", PASSWORD))
        .send()
        .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let wallet = Wallet::random();
    app.register_wallet(&wallet).await;
    let res = app
        .post("/login-blockchain")
        .json(&app.siwe(&wallet).await)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
}

/// Unless a trusted proxy sets it (`TRUST_FORWARDED_FOR`), `X-Forwarded-For` is the client's own
/// claim: changing it must not buy a fresh per-IP allowance.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn an_untrusted_forwarded_for_header_cannot_dodge_the_ip_limit(pool: PgPool) {
    let app = TestApp::with(
        pool,
        &[("RATE_LIMIT_PER_IP", "2"), ("TRUST_FORWARDED_FOR", "false")],
    );
    for (i, expected) in [201, 201, 429].into_iter().enumerate() {
        let res = app
            .post("/auth/nonce")
            .header("x-forwarded-for", &format!("198.51.100.{i}"))
            .json(&json!({}))
            .send()
            .await;
        assert_eq!(res.status.as_u16(), expected, "{}", res.body);
    }
}
