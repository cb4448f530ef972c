use axum::http::StatusCode;
use gantry_tests::wallet::{Siwe, Wallet};
use gantry_tests::{SIWE_CHAIN, TestApp};
use serde_json::{Value, json};
use sqlx::PgPool;

async fn login(app: &TestApp, body: &Value) -> gantry_tests::TestResponse {
    app.post("/login-blockchain").json(body).send().await
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn nonces_are_long_alphanumeric_and_short_lived(pool: PgPool) {
    let app = TestApp::new(pool);
    let res = app.post("/auth/nonce").json(&json!({})).send().await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    let nonce = res.str("nonce");
    assert!(
        nonce.len() >= 17 && nonce.chars().all(|c| c.is_ascii_alphanumeric()),
        "{nonce}"
    );
    let expires = time::OffsetDateTime::parse(
        &res.str("expires_at"),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(left <= time::Duration::minutes(10) && left > time::Duration::minutes(9));
    assert_ne!(app.nonce().await, nonce);
    // An address in any case is accepted; garbage is a 400.
    let lower = Wallet::random().address().to_lowercase();
    let res = app
        .post("/auth/nonce")
        .json(&json!({"address": lower}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    app.post("/auth/nonce")
        .json(&json!({"address": "0x123"}))
        .send()
        .await
        .problem(400);
    app.post("/auth/nonce")
        .json(&json!({"other": 1}))
        .send()
        .await
        .problem(400);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_wallet_registers_and_shows_as_an_eip55_identity_with_a_did(pool: PgPool) {
    let app = TestApp::new(pool);
    let wallet = Wallet::random();
    let body = app.register_wallet(&wallet).await;
    assert_eq!(body["user"]["email"], Value::Null);
    assert_eq!(body["user"]["role"], "CLIENT");
    assert_eq!(body["user"]["name"], wallet.address());
    let claims = app
        .state
        .verifier()
        .verify(body["access_token"].as_str().unwrap())
        .unwrap();
    assert_eq!(claims.amr, vec![gantry::auth::Amr::Siwe]);
    let profile = app
        .get("/profile")
        .bearer(body["access_token"].as_str().unwrap())
        .send()
        .await;
    let identity = &profile.body["identities"][0];
    assert_eq!(identity["type"], "blockchain_address");
    assert_eq!(identity["identifier"], wallet.address());
    assert_eq!(
        identity["did"],
        format!("did:pkh:eip155:{SIWE_CHAIN}:{}", wallet.address())
    );
    assert_eq!(
        identity["id"].as_str(),
        Some(claims.idp.to_string().as_str())
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_registered_wallet_logs_in_with_a_fresh_nonce(pool: PgPool) {
    let app = TestApp::new(pool);
    let wallet = Wallet::random();
    let registered = app.register_wallet(&wallet).await;
    let res = login(&app, &app.siwe(&wallet).await).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let claims = app
        .state
        .verifier()
        .verify(&res.str("access_token"))
        .unwrap();
    assert_eq!(
        claims.sub.to_string(),
        registered["user"]["id"].as_str().unwrap()
    );
    assert_eq!(app.audit_count("login.succeeded").await, 1);
}

/// The login statement's effects, row by row: a success writes one refresh token and one audit
/// row naming the identity; an unknown wallet spends its nonce and writes only `login.failed`;
/// a replay writes nothing.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_wallet_login_writes_its_session_and_audit_row_and_nothing_else(pool: PgPool) {
    let app = TestApp::new(pool);
    let (wallet, stranger) = (Wallet::random(), Wallet::random());
    let registered = app.register_wallet(&wallet).await;
    let user_id = registered["user"]["id"].as_str().unwrap().to_owned();
    let counts = || async {
        sqlx::query_as::<_, (i64, i64, i64)>(
            "SELECT (SELECT count(*) FROM refresh_tokens), (SELECT count(*) FROM audit_log),
                    (SELECT count(*) FROM spent_nonces)",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };
    let before = counts().await;

    let body = app.siwe(&wallet).await;
    let res = login(&app, &body).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(counts().await, (before.0 + 1, before.1 + 1, before.2 + 1));
    let (actor, details): (Option<uuid::Uuid>, Value) =
        sqlx::query_as("SELECT actor_id, details FROM audit_log WHERE action = 'login.succeeded'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let identity: uuid::Uuid = sqlx::query_scalar(
        "SELECT id FROM identities WHERE type = 'blockchain_address' AND identifier = $1",
    )
    .bind(wallet.address())
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(actor.map(|a| a.to_string()), Some(user_id.clone()));
    assert_eq!(
        details,
        json!({"method": "siwe", "identity_id": identity, "chain_id": SIWE_CHAIN,
               "ip": "unknown", "user_agent": null})
    );
    let (family_user, amr): (uuid::Uuid, Vec<String>) =
        sqlx::query_as("SELECT user_id, amr FROM refresh_tokens ORDER BY id DESC LIMIT 1")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        (family_user.to_string(), amr),
        (user_id, vec!["siwe".to_owned()])
    );
    // The refresh token handed out is the one stored: it rotates.
    let refreshed = app
        .post("/token/refresh")
        .json(&json!({"refresh_token": res.str("refresh_token")}))
        .send()
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);

    let after_success = counts().await;
    login(&app, &body).await.problem(401);
    assert_eq!(counts().await, after_success, "a replay writes nothing");

    let unknown = login(&app, &app.siwe(&stranger).await).await;
    unknown.problem(401);
    let after_unknown = counts().await;
    assert_eq!(
        after_unknown,
        (after_success.0, after_success.1 + 1, after_success.2 + 1),
        "an unknown wallet spends its nonce and is audited, with no session"
    );
    let failed: Value =
        sqlx::query_scalar("SELECT details FROM audit_log WHERE action = 'login.failed'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        failed,
        json!({"method": "siwe", "identifier": stranger.address(), "ip": "unknown", "user_agent": null})
    );
}

/// A message whose nonce was spent (here by registering) is refused because of the nonce: the
/// log says it was spent, and no `siwe.rejected` or `login.failed` row is written, which a bad
/// signature, an expired or foreign nonce, or an unknown wallet would leave. The same wallet
/// signs in with a fresh nonce.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_reused_nonce_is_rejected(pool: PgPool) {
    let app = TestApp::new(pool);
    let wallet = Wallet::random();
    let body = app.siwe(&wallet).await;
    let first = app.post("/register-blockchain").json(&body).send().await;
    assert_eq!(first.status, StatusCode::CREATED);
    let (logs, guard) = crate::secrets::Logs::capture();
    login(&app, &body).await.problem(401);
    drop(guard);
    let logged = logs.text();
    assert!(logged.contains("SIWE nonce already spent"), "{logged}");
    assert_eq!(app.audit_count("siwe.rejected").await, 0);
    assert_eq!(app.audit_count("login.failed").await, 0);
    let fresh = login(&app, &app.siwe(&wallet).await).await;
    assert_eq!(fresh.status, StatusCode::OK, "{}", fresh.body);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn unknown_expired_and_foreign_bound_nonces_are_rejected(pool: PgPool) {
    let app = TestApp::new(pool);
    let wallet = Wallet::random();
    app.register_wallet(&wallet).await;
    // Never issued.
    let message = wallet.message("neverIssuedNonce12345678");
    login(
        &app,
        &json!({"message": message, "signature": wallet.sign(&message)}),
    )
    .await
    .problem(401);
    // Issued by our key, then expired.
    let nonce = gantry_tests::expired_nonce();
    let message = wallet.message(&nonce);
    login(
        &app,
        &json!({"message": message, "signature": wallet.sign(&message)}),
    )
    .await
    .problem(401);
    // Bound to another address.
    let other = Wallet::random();
    let res = app
        .post("/auth/nonce")
        .json(&json!({"address": other.address()}))
        .send()
        .await;
    let message = wallet.message(&res.str("nonce"));
    login(
        &app,
        &json!({"message": message, "signature": wallet.sign(&message)}),
    )
    .await
    .problem(401);
    // Bound to this address: fine.
    let res = app
        .post("/auth/nonce")
        .json(&json!({"address": wallet.address().to_lowercase()}))
        .send()
        .await;
    let message = wallet.message(&res.str("nonce"));
    let ok = login(
        &app,
        &json!({"message": message, "signature": wallet.sign(&message)}),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn fifty_concurrent_submissions_of_one_signed_message_open_one_session(pool: PgPool) {
    let app = TestApp::new(pool);
    let wallet = Wallet::random();
    app.register_wallet(&wallet).await;
    let body = app.siwe(&wallet).await;
    let results = futures::future::join_all((0..50).map(|_| login(&app, &body))).await;
    let ok = results
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(ok, 1);
    for r in results.iter().filter(|r| r.status != StatusCode::OK) {
        r.problem(401);
    }
    let sessions: i64 = sqlx::query_scalar("SELECT count(DISTINCT family_id) FROM refresh_tokens")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(
        sessions, 2,
        "the registration's session and exactly one login"
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_wallet_registers_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let wallet = Wallet::random();
    app.register_wallet(&wallet).await;
    let again = app
        .post("/register-blockchain")
        .json(&app.siwe(&wallet).await)
        .send()
        .await;
    again.problem(409);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn every_proof_failure_gets_the_same_401(pool: PgPool) {
    let app = TestApp::new(pool);
    let (wallet, stranger) = (Wallet::random(), Wallet::random());
    app.register_wallet(&wallet).await;
    let unknown_account = login(&app, &app.siwe(&stranger).await).await;
    let message = wallet.message(&app.nonce().await);
    let bad_signature = login(
        &app,
        &json!({"message": message, "signature": stranger.sign(&message)}),
    )
    .await;
    let nonce = app.nonce().await;
    let wrong_domain = wallet.message_with(&Siwe {
        domain: "evil.example.com",
        uri: "https://evil.example.com/".into(),
        ..Siwe::new(&nonce)
    });
    let wrong_domain = login(
        &app,
        &json!({"message": wrong_domain, "signature": wallet.sign(&wrong_domain)}),
    )
    .await;
    let wrong_chain = wallet.message_with(&Siwe {
        chain_id: 5,
        ..Siwe::new(&nonce)
    });
    let wrong_chain = login(
        &app,
        &json!({"message": wrong_chain, "signature": wallet.sign(&wrong_chain)}),
    )
    .await;
    let past = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let expired = wallet.message_with(&Siwe {
        expiration: Some(past),
        ..Siwe::new(&nonce)
    });
    let expired = login(
        &app,
        &json!({"message": expired, "signature": wallet.sign(&expired)}),
    )
    .await;
    for res in [
        &unknown_account,
        &bad_signature,
        &wrong_domain,
        &wrong_chain,
        &expired,
    ] {
        res.problem(401);
        assert_eq!(res.raw, unknown_account.raw);
    }
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn malformed_messages_are_400s(pool: PgPool) {
    let app = TestApp::new(pool);
    for body in [
        json!({"message": "hello", "signature": "0x00"}),
        json!({"message": "", "signature": ""}),
        json!({"message": "x"}),
        json!({"message": "x", "signature": "0x00", "extra": true}),
    ] {
        login(&app, &body).await.problem(400);
        app.post("/register-blockchain")
            .json(&body)
            .send()
            .await
            .problem(400);
    }
}

/// `identity_did` must stay inlinable (every volatility in its body IMMUTABLE): run as a
/// function call per identity, it halved GET /profile's query throughput.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn the_did_function_is_inlined_into_the_queries_that_use_it(pool: PgPool) {
    let plan: Vec<String> = sqlx::query_scalar(
        "EXPLAIN (VERBOSE, COSTS OFF)
         SELECT identity_did(type, chain_id, identifier) FROM identities",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("did:pkh:eip155:"), "{plan}");
    assert!(!plan.contains("identity_did("), "{plan}");
}
