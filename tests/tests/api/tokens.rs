use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use gantry_tests::{AUDIENCE, ISSUER, TestApp, claims_of};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sqlx::PgPool;

pub(crate) async fn refresh(app: &TestApp, token: &str) -> gantry_tests::TestResponse {
    app.post("/token/refresh")
        .json(&json!({"refresh_token": token}))
        .send()
        .await
}

fn str_of(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap().to_owned()
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn refreshing_rotates_the_refresh_token(pool: PgPool) {
    let app = TestApp::new(pool);
    let first = app.register("ada@example.com").await;
    let res = refresh(&app, &str_of(&first, "refresh_token")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_ne!(res.str("refresh_token"), str_of(&first, "refresh_token"));
    assert_eq!(res.body["token_type"], "Bearer");
    let profile = app
        .get("/profile")
        .bearer(&res.str("access_token"))
        .send()
        .await;
    assert_eq!(profile.status, StatusCode::OK);
    // The new token rotates again.
    let again = refresh(&app, &res.str("refresh_token")).await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(app.audit_count("token.refreshed").await, 2);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn reusing_a_rotated_token_revokes_the_whole_family(pool: PgPool) {
    let app = TestApp::new(pool);
    let first = app.register("ada@example.com").await;
    let original = str_of(&first, "refresh_token");
    let rotated = refresh(&app, &original).await;
    assert_eq!(rotated.status, StatusCode::OK);
    // The thief replays the spent token...
    refresh(&app, &original).await.problem(401);
    // ...and the legitimate holder's new token is dead too.
    refresh(&app, &rotated.str("refresh_token"))
        .await
        .problem(401);
    assert_eq!(app.audit_count("token.reuse_detected").await, 1);
    let live: i64 =
        sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE revoked_at IS NULL")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(live, 0);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn reuse_does_not_touch_the_users_other_sessions(pool: PgPool) {
    let app = TestApp::new(pool);
    let first = app.register("ada@example.com").await;
    let other = app
        .post("/login-email-password")
        .json(&json!({"email": "ada@example.com", "password": gantry_tests::PASSWORD}))
        .send()
        .await;
    let original = str_of(&first, "refresh_token");
    refresh(&app, &original).await;
    refresh(&app, &original).await.problem(401);
    let res = refresh(&app, &other.str("refresh_token")).await;
    assert_eq!(
        res.status,
        StatusCode::OK,
        "another device's session survives"
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn twenty_concurrent_refreshes_of_one_token_yield_exactly_one_pair(pool: PgPool) {
    let app = TestApp::new(pool);
    let first = app.register("ada@example.com").await;
    let token = str_of(&first, "refresh_token");
    let calls = (0..20).map(|_| refresh(&app, &token));
    let results = futures::future::join_all(calls).await;
    let winners: Vec<_> = results
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .collect();
    assert_eq!(winners.len(), 1, "exactly one succeeds");
    for loser in results.iter().filter(|r| r.status != StatusCode::OK) {
        loser.problem(401);
    }
    // The losers presented a spent token: the family, winner's pair included, is revoked.
    refresh(&app, &winners[0].str("refresh_token"))
        .await
        .problem(401);
    assert!(app.audit_count("token.reuse_detected").await >= 1);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_family_past_its_absolute_lifetime_cannot_refresh(pool: PgPool) {
    let app = TestApp::new(pool);
    let first = app.register("ada@example.com").await;
    sqlx::query("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    refresh(&app, &str_of(&first, "refresh_token"))
        .await
        .problem(401);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn rotation_keeps_the_family_expiry(pool: PgPool) {
    let app = TestApp::new(pool);
    let first = app.register("ada@example.com").await;
    refresh(&app, &str_of(&first, "refresh_token")).await;
    let expiries: i64 = sqlx::query_scalar("SELECT count(DISTINCT expires_at) FROM refresh_tokens")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(expiries, 1);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn refreshed_access_tokens_carry_the_current_role(pool: PgPool) {
    let app = TestApp::new(pool);
    let first = app.register("ada@example.com").await;
    sqlx::query("UPDATE users SET role = 'STAFF'")
        .execute(&app.pool)
        .await
        .unwrap();
    let res = refresh(&app, &str_of(&first, "refresh_token")).await;
    let claims = app
        .state
        .verifier()
        .verify(&res.str("access_token"))
        .unwrap();
    assert_eq!(claims.role, gantry::domain::Role::Staff);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn refresh_tokens_are_stored_only_as_hashes(pool: PgPool) {
    let app = TestApp::new(pool);
    let first = app.register("ada@example.com").await;
    let token = str_of(&first, "refresh_token");
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM refresh_tokens")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 32);
    assert_ne!(stored, URL_SAFE_NO_PAD.decode(&token).unwrap());
    let dump: String = sqlx::query_scalar("SELECT string_agg(t::text, ' ') FROM refresh_tokens t")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!dump.contains(&token));
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn logout_revokes_the_family(pool: PgPool) {
    let app = TestApp::new(pool);
    let first = app.register("ada@example.com").await;
    let rotated = refresh(&app, &str_of(&first, "refresh_token")).await;
    let res = app
        .post("/logout")
        .json(&json!({"refresh_token": str_of(&first, "refresh_token")}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    refresh(&app, &rotated.str("refresh_token"))
        .await
        .problem(401);
    assert_eq!(app.audit_count("token.logged_out").await, 1);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn logout_answers_alike_for_unknown_tokens(pool: PgPool) {
    let app = TestApp::new(pool);
    for token in ["", "nonsense", &"A".repeat(43)] {
        let res = app
            .post("/logout")
            .json(&json!({"refresh_token": token}))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::NO_CONTENT);
    }
    app.post("/logout")
        .json(&json!({}))
        .send()
        .await
        .problem(400);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn tokens_are_not_interchangeable(pool: PgPool) {
    let app = TestApp::new(pool);
    let first = app.register("ada@example.com").await;
    // A refresh token is not an access token...
    app.get("/profile")
        .bearer(&str_of(&first, "refresh_token"))
        .send()
        .await
        .problem(401);
    // ...and an access token is not a refresh token.
    refresh(&app, &str_of(&first, "access_token"))
        .await
        .problem(401);
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn forged_access_tokens_are_rejected_at_the_door(pool: PgPool) {
    let app = TestApp::new(pool);
    let first = app.register("ada@example.com").await;
    let genuine = str_of(&first, "access_token");
    let claims = claims_of(&genuine);
    let kid = app.key.public_jwk().kid;
    let ours = app.key.encoding_key().unwrap();
    let sign = |header: Header, claims: &Value, key: &EncodingKey| {
        jsonwebtoken::encode(&header, claims, key).unwrap()
    };
    let header = |alg: Algorithm, typ: Option<&str>, kid: &str| {
        let mut h = Header::new(alg);
        h.typ = typ.map(str::to_owned);
        h.kid = Some(kid.to_owned());
        h
    };
    let with = |key: &str, value: Value| {
        let mut c = claims.clone();
        c[key] = value;
        c
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let public_bytes = URL_SAFE_NO_PAD.decode(app.key.public_jwk().x).unwrap();
    let mut admin = claims.clone();
    admin["role"] = "ADMIN".into();
    let parts: Vec<&str> = genuine.split('.').collect();

    let forgeries = [
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg":"none","typ":"at+jwt","kid":kid})),
                b64(&claims)
            ),
        ),
        (
            "HS256 keyed with the public key",
            sign(
                header(Algorithm::HS256, Some("at+jwt"), &kid),
                &claims,
                &EncodingKey::from_secret(&public_bytes),
            ),
        ),
        (
            "unknown kid",
            sign(
                header(Algorithm::EdDSA, Some("at+jwt"), "not-a-key"),
                &claims,
                &ours,
            ),
        ),
        (
            "expired",
            sign(
                header(Algorithm::EdDSA, Some("at+jwt"), &kid),
                &with("exp", (now - 120).into()),
                &ours,
            ),
        ),
        (
            "wrong audience",
            sign(
                header(Algorithm::EdDSA, Some("at+jwt"), &kid),
                &with("aud", "other-api".into()),
                &ours,
            ),
        ),
        (
            "wrong issuer",
            sign(
                header(Algorithm::EdDSA, Some("at+jwt"), &kid),
                &with("iss", "evil".into()),
                &ours,
            ),
        ),
        (
            "typ JWT",
            sign(header(Algorithm::EdDSA, Some("JWT"), &kid), &claims, &ours),
        ),
        (
            "tampered payload",
            format!("{}.{}.{}", parts[0], b64(&admin), parts[2]),
        ),
        (
            "foreign key",
            sign(
                header(Algorithm::EdDSA, Some("at+jwt"), &kid),
                &claims,
                &gantry::auth::SigningKey::generate().encoding_key().unwrap(),
            ),
        ),
        ("refresh token", str_of(&first, "refresh_token")),
    ];
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["aud"], AUDIENCE);
    for (name, token) in forgeries {
        let res = app.get("/profile").bearer(&token).send().await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{name} was accepted");
        res.problem(401);
    }
    // The genuine article still works, so the 401s above are about the forgeries.
    let ok = app.get("/profile").bearer(&genuine).send().await;
    assert_eq!(ok.status, StatusCode::OK);
}
