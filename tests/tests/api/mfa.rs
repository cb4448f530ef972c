//! TOTP MFA over HTTP on real Postgres, with codes from pyotp (an independent RFC 6238
//! implementation): enrolment, activation, the two-step sign-in for passwords and wallets,
//! recovery codes, replay protection (also at once), lockout, and removal.

use axum::http::{Method, StatusCode};
use gantry_tests::wallet::Wallet;
use gantry_tests::{PASSWORD, TestApp, TestResponse, claims_of, early_in_a_totp_step, pyotp_code};
use serde_json::{Value, json};
use sqlx::PgPool;

fn address() -> String {
    format!("m{}@example.com", uuid::Uuid::new_v4().simple())
}

fn access(body: &Value) -> String {
    body["access_token"].as_str().unwrap().to_owned()
}

async fn login(app: &TestApp, email: &str) -> TestResponse {
    app.post("/login-email-password")
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
}

async fn finish(app: &TestApp, mfa_token: &Value, second: Value) -> TestResponse {
    let mut body = second;
    body["mfa_token"] = mfa_token.clone();
    app.post("/login/mfa").json(&body).send().await
}

/// The whole path: enrol (the secret is sealed at rest), a wrong code does not activate, a
/// pyotp code does; then a password login answers an mfa_token, a used code is refused, the
/// current code finishes with amr [pwd, otp], the token works once; a recovery code works once
/// (amr [pwd, rec]); removing TOTP needs a fresh code, and then login gives tokens directly.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn totp_turns_a_login_into_two_steps_with_codes_pyotp_agrees_with(pool: PgPool) {
    let app = TestApp::new(pool);
    let email = address();
    let registered = app.register(&email).await;
    let token = access(&registered);
    let enrolled = app
        .post("/mfa/totp/enroll")
        .bearer(&token)
        .json(&json!({}))
        .send()
        .await;
    assert_eq!(enrolled.status, StatusCode::CREATED, "{}", enrolled.body);
    let uri = enrolled.str("otpauth_uri");
    let secret = enrolled.str("secret");
    assert!(uri.starts_with("otpauth://totp/gantry:"), "{uri}");
    assert!(uri.contains(&format!("secret={secret}")), "{uri}");
    let sealed: Vec<u8> = sqlx::query_scalar("SELECT secret_sealed FROM mfa_totp")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&sealed).contains(&secret));
    assert_eq!(
        login(&app, &email).await.status,
        StatusCode::OK,
        "not active yet"
    );

    early_in_a_totp_step().await;
    let Some(previous) = pyotp_code(&secret, -30) else {
        return;
    };
    let wrong = if previous == "000000" {
        "111111"
    } else {
        "000000"
    };
    let refused = app
        .post("/mfa/totp/activate")
        .bearer(&token)
        .json(&json!({"code": wrong}))
        .send()
        .await;
    assert_eq!(refused.problem(422)["errors"][0]["field"], "code");
    let activated = app
        .post("/mfa/totp/activate")
        .bearer(&token)
        .json(&json!({"code": previous}))
        .send()
        .await;
    assert_eq!(activated.status, StatusCode::OK, "{}", activated.body);
    let recovery: Vec<String> =
        serde_json::from_value(activated.body["recovery_codes"].clone()).unwrap();
    assert_eq!(recovery.len(), 10);

    let first = login(&app, &email).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.body["mfa_required"], true);
    assert!(first.body.get("access_token").is_none(), "{}", first.body);
    let mfa_token = first.body["mfa_token"].clone();
    finish(&app, &mfa_token, json!({"code": previous}))
        .await
        .problem(401);
    let current = pyotp_code(&secret, 0).unwrap();
    let done = finish(&app, &mfa_token, json!({"code": current})).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(claims_of(&access(&done.body))["amr"], json!(["pwd", "otp"]));
    finish(
        &app,
        &mfa_token,
        json!({"code": pyotp_code(&secret, 30).unwrap()}),
    )
    .await
    .problem(401);
    let sessions = app
        .get("/sessions")
        .bearer(&access(&done.body))
        .send()
        .await;
    assert_eq!(sessions.body["items"][0]["method"], "pwd+otp");

    let second = login(&app, &email).await.body["mfa_token"].clone();
    let with_recovery = finish(
        &app,
        &second,
        json!({"recovery_code": recovery[3].to_uppercase()}),
    )
    .await;
    assert_eq!(
        with_recovery.status,
        StatusCode::OK,
        "{}",
        with_recovery.body
    );
    assert_eq!(
        claims_of(&access(&with_recovery.body))["amr"],
        json!(["pwd", "rec"])
    );
    let third = login(&app, &email).await.body["mfa_token"].clone();
    finish(&app, &third, json!({"recovery_code": recovery[3]}))
        .await
        .problem(401);
    finish(&app, &third, json!({})).await.problem(400);
    finish(
        &app,
        &third,
        json!({"code": "123456", "recovery_code": recovery[4]}),
    )
    .await
    .problem(400);

    let remove = |code: String| {
        let app = &app;
        let token = token.clone();
        async move {
            app.request(Method::DELETE, "/mfa/totp")
                .bearer(&token)
                .json(&json!({"code": code}))
                .send()
                .await
        }
    };
    remove(current).await.problem(422);
    assert_eq!(
        remove(pyotp_code(&secret, 30).unwrap()).await.status,
        StatusCode::NO_CONTENT
    );
    let plain = login(&app, &email).await;
    assert!(plain.body["access_token"].is_string(), "{}", plain.body);
    assert_eq!(app.audit_count("mfa.activated").await, 1);
    assert_eq!(app.audit_count("mfa.removed").await, 1);
}

/// One code sent for two pending sign-ins at the same moment: one succeeds, one is refused.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn one_code_used_twice_at_once_signs_in_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let email = address();
    let token = access(&app.register(&email).await);
    early_in_a_totp_step().await;
    let Some((secret, _)) = app.turn_on_totp(&token).await else {
        return;
    };
    let a = login(&app, &email).await.body["mfa_token"].clone();
    let b = login(&app, &email).await.body["mfa_token"].clone();
    let code = pyotp_code(&secret, 0).unwrap();
    let (x, y) = tokio::join!(
        finish(&app, &a, json!({"code": code})),
        finish(&app, &b, json!({"code": code}))
    );
    let mut statuses = [x.status.as_u16(), y.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401], "{} / {}", x.body, y.body);
}

/// Wrong codes count toward the account's lockout: then even the right code waits.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn wrong_codes_lock_the_second_step(pool: PgPool) {
    let app = TestApp::with(pool, &[("LOCKOUT_THRESHOLD", "3")]);
    let email = address();
    let token = access(&app.register(&email).await);
    early_in_a_totp_step().await;
    let Some((secret, _)) = app.turn_on_totp(&token).await else {
        return;
    };
    let pending = login(&app, &email).await.body["mfa_token"].clone();
    let right = pyotp_code(&secret, 0).unwrap();
    let wrong = if right == "123456" {
        "654321"
    } else {
        "123456"
    };
    for _ in 0..3 {
        finish(&app, &pending, json!({"code": wrong}))
            .await
            .problem(401);
    }
    finish(&app, &pending, json!({"code": right}))
        .await
        .problem(429);
}

/// A wallet sign-in with TOTP on also needs the second step; amr is [siwe, otp].
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_wallet_sign_in_with_totp_needs_the_second_step(pool: PgPool) {
    let app = TestApp::new(pool);
    let wallet = Wallet::random();
    let token = access(&app.register_wallet(&wallet).await);
    early_in_a_totp_step().await;
    let Some((secret, _)) = app.turn_on_totp(&token).await else {
        return;
    };
    let body = app.siwe(&wallet).await;
    let first = app.post("/login-blockchain").json(&body).send().await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["mfa_required"], true);
    let done = finish(
        &app,
        &first.body["mfa_token"],
        json!({"code": pyotp_code(&secret, 0).unwrap()}),
    )
    .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert_eq!(
        claims_of(&access(&done.body))["amr"],
        json!(["siwe", "otp"])
    );
    assert_eq!(app.audit_count("login.mfa_required").await, 1);
}

/// Without MFA_ENCRYPTION_KEY there is nothing to seal secrets with: 503; and nobody can
/// enrol twice or activate what was never enrolled.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn enrolment_needs_a_key_and_follows_its_order(pool: PgPool) {
    let off = TestApp::with(pool.clone(), &[("MFA_ENCRYPTION_KEY", "")]);
    let unkeyed = access(&off.register(&address()).await);
    off.post("/mfa/totp/enroll")
        .bearer(&unkeyed)
        .json(&json!({}))
        .send()
        .await
        .problem(503);
    let app = TestApp::new(pool);
    let token = access(&app.register(&address()).await);
    app.post("/mfa/totp/activate")
        .bearer(&token)
        .json(&json!({"code": "123456"}))
        .send()
        .await
        .problem(409);
    early_in_a_totp_step().await;
    if app.turn_on_totp(&token).await.is_none() {
        return;
    }
    app.post("/mfa/totp/enroll")
        .bearer(&token)
        .json(&json!({}))
        .send()
        .await
        .problem(409);
}

/// The user id behind an access token.
fn user_of(token: &str) -> uuid::Uuid {
    claims_of(token)["sub"].as_str().unwrap().parse().unwrap()
}

/// Sixty wrong codes at once against one mfa_token: the attempt is counted before the code is
/// checked, in one statement, so only five codes are checked at all (five failures counted,
/// five "wrong code" answers, the rest 401 for a burnt challenge or 429); the challenge stays
/// burnt even with the right code once the lock has passed; and the account's lockout holds
/// for a fresh challenge until then.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn sixty_parallel_wrong_codes_check_five_and_burn_the_challenge(pool: PgPool) {
    let app = TestApp::new(pool);
    let email = address();
    let token = access(&app.register(&email).await);
    let user_id = user_of(&token);
    early_in_a_totp_step().await;
    let Some((secret, _)) = app.turn_on_totp(&token).await else {
        return;
    };
    let pending = login(&app, &email).await.body["mfa_token"].clone();
    let right = pyotp_code(&secret, 0).unwrap();
    let wrong = if right == "123456" {
        "654321"
    } else {
        "123456"
    };
    let burst =
        futures::future::join_all((0..60).map(|_| finish(&app, &pending, json!({"code": wrong}))))
            .await;
    let mut checked = 0;
    for res in &burst {
        let status = res.status.as_u16();
        assert!(status == 401 || status == 429, "{status} {}", res.body);
        if res.body["detail"] == "the code is wrong or was already used" {
            checked += 1;
        }
    }
    assert!(checked <= 5, "{checked} wrong codes were checked");
    let failures: i32 =
        sqlx::query_scalar("SELECT failures FROM login_lockouts WHERE identifier = $1")
            .bind(format!("mfa:{user_id}"))
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(
        failures, 5,
        "each checked code counts once, and only five were"
    );
    assert_eq!(app.audit_count("login.locked_out").await, 1);

    // The lockout holds: a new challenge with the right code waits.
    let fresh = login(&app, &email).await.body["mfa_token"].clone();
    finish(&app, &fresh, json!({"code": right}))
        .await
        .problem(429);
    // Once the lock has passed, the burnt challenge is still refused with the right code ...
    sqlx::query("UPDATE login_lockouts SET locked_until = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    finish(&app, &pending, json!({"code": right}))
        .await
        .problem(401);
    // ... and a new sign-in gets in.
    let again = login(&app, &email).await.body["mfa_token"].clone();
    let done = finish(&app, &again, json!({"code": right})).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
}

/// A few wrong codes burn a challenge even below the account's lockout threshold.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_challenge_is_burnt_after_five_wrong_codes(pool: PgPool) {
    let app = TestApp::with(pool, &[("LOCKOUT_THRESHOLD", "0")]);
    let email = address();
    let token = access(&app.register(&email).await);
    early_in_a_totp_step().await;
    let Some((secret, _)) = app.turn_on_totp(&token).await else {
        return;
    };
    let pending = login(&app, &email).await.body["mfa_token"].clone();
    let right = pyotp_code(&secret, 0).unwrap();
    let wrong = if right == "123456" {
        "654321"
    } else {
        "123456"
    };
    for _ in 0..5 {
        let res = finish(&app, &pending, json!({"code": wrong})).await;
        assert_eq!(
            res.problem(401)["detail"],
            "the code is wrong or was already used"
        );
    }
    let burnt = finish(&app, &pending, json!({"code": right})).await;
    assert!(
        burnt.problem(401)["detail"]
            .as_str()
            .unwrap()
            .contains("out of attempts"),
        "{}",
        burnt.body
    );
}

/// POST /login/mfa has a per-IP limit, like the first step.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn the_second_step_is_limited_per_ip(pool: PgPool) {
    let app = TestApp::with(pool, &[("RATE_LIMIT_PER_IP", "3")]);
    let from = |ip: &'static str| {
        let app = &app;
        async move {
            app.post("/login/mfa")
                .header("x-forwarded-for", ip)
                .json(&json!({"mfa_token": "A".repeat(43), "code": "123456"}))
                .send()
                .await
        }
    };
    for _ in 0..3 {
        from("203.0.113.7").await.problem(401);
    }
    let limited = from("203.0.113.7").await;
    limited.problem(429);
    assert!(limited.headers.contains_key("retry-after"));
    from("198.51.100.4").await.problem(401);
}

/// Turning TOTP on ends the account's other sessions (opened without the second factor): their
/// refresh tokens are refused; the session that turned it on goes on.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn turning_totp_on_ends_the_accounts_other_sessions(pool: PgPool) {
    let app = TestApp::new(pool);
    let email = address();
    let other = app.register(&email).await;
    let current = login(&app, &email).await.body;
    early_in_a_totp_step().await;
    if app.turn_on_totp(&access(&current)).await.is_none() {
        return;
    }
    let refresh = |token: Value| {
        let app = &app;
        async move {
            app.post("/token/refresh")
                .json(&json!({"refresh_token": token}))
                .send()
                .await
        }
    };
    refresh(other["refresh_token"].clone()).await.problem(401);
    let kept = refresh(current["refresh_token"].clone()).await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.body);
    let sessions = app
        .get("/sessions")
        .bearer(&access(&kept.body))
        .send()
        .await;
    assert_eq!(sessions.body["items"].as_array().unwrap().len(), 1);
    let revoked: Value = sqlx::query_scalar(
        "SELECT details->'sessions_revoked' FROM audit_log WHERE action = 'mfa.activated'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(revoked, json!(1));
}
