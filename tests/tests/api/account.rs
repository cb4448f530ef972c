//! The account lifecycle over HTTP on real Postgres, with mail delivered by the real mailer
//! worker over SMTP to the catcher: password reset and change, email verification, sessions and
//! the login history. Links are followed from the received mail, never read from the database.

use axum::http::StatusCode;
use gantry_tests::wallet::Wallet;
use gantry_tests::{PASSWORD, PUBLIC_BASE_URL, TestApp, TestResponse, claims_of};
use serde_json::{Value, json};
use sqlx::PgPool;

const NEW_PASSWORD: &str = "another fine passphrase";

/// An address no other test (sharing the catcher) uses.
fn address() -> String {
    format!("u{}@example.com", uuid::Uuid::new_v4().simple())
}

async fn login(app: &TestApp, email: &str, password: &str) -> TestResponse {
    login_as(app, email, password, "gantry-tests").await
}

async fn login_as(app: &TestApp, email: &str, password: &str, agent: &str) -> TestResponse {
    app.post("/login-email-password")
        .header("user-agent", agent)
        .header("x-forwarded-for", "203.0.113.7")
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
}

async fn refresh(app: &TestApp, token: &Value) -> TestResponse {
    app.post("/token/refresh")
        .json(&json!({"refresh_token": token}))
        .send()
        .await
}

async fn forgot(app: &TestApp, email: &str) -> TestResponse {
    app.post("/password/forgot")
        .json(&json!({"email": email}))
        .send()
        .await
}

async fn reset(app: &TestApp, token: &str, password: &str) -> TestResponse {
    app.post("/password/reset")
        .json(&json!({"token": token, "password": password}))
        .send()
        .await
}

async fn verify(app: &TestApp, token: &str) -> TestResponse {
    app.post("/email/verify")
        .json(&json!({"token": token}))
        .send()
        .await
}

fn access(body: &Value) -> String {
    body["access_token"].as_str().unwrap().to_owned()
}

/// The whole reset path, as a person takes it: the mail arrives over SMTP with a link at
/// PUBLIC_BASE_URL (not the request's Host), the link sets a new password, every session of the
/// account ends, the old password stops working and the link cannot be used again.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_mailed_reset_link_sets_the_password_and_ends_every_session(pool: PgPool) {
    let app = TestApp::new(pool);
    let email = address();
    let registered = app.register(&email).await;
    let second = login(&app, &email, PASSWORD).await;
    assert_eq!(second.status, StatusCode::OK);

    let res = app
        .post("/password/forgot")
        .header("host", "evil.example")
        .json(&json!({"email": email.to_uppercase()}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    assert_eq!(res.body, json!({"status": "sent"}));
    let Some(token) = app.mailed_token(&email, "/reset-password").await else {
        return;
    };
    assert!(PUBLIC_BASE_URL.starts_with("https://app."));

    assert_eq!(
        reset(&app, &token, NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
    for session in [&registered, &second.body] {
        refresh(&app, &session["refresh_token"]).await.problem(401);
    }
    login(&app, &email, PASSWORD).await.problem(401);
    assert_eq!(
        login(&app, &email, NEW_PASSWORD).await.status,
        StatusCode::OK
    );
    let again = reset(&app, &token, "yet another passphrase").await;
    let unknown = reset(&app, &"A".repeat(43), "yet another passphrase").await;
    again.problem(400);
    assert_eq!(
        again.body, unknown.body,
        "a used link and an unknown one look alike"
    );
    assert_eq!(app.audit_count("password.reset").await, 1);
    // Following the link proved the address.
    let profile = app
        .get("/profile")
        .bearer(&access(&login(&app, &email, NEW_PASSWORD).await.body))
        .send()
        .await;
    assert_eq!(profile.body["user"]["email_verified"], true);
}

/// An unknown address gets the same answer and no mail; a known one gets exactly one.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn forgot_answers_alike_for_unknown_addresses_and_mails_only_real_ones(pool: PgPool) {
    let app = TestApp::new(pool);
    let known = address();
    app.register(&known).await;
    let before = app.outbox_count(&known).await;
    let unknown = address();
    // The documented floor is a rule, not a speed: neither answer may come before 100 ms (a
    // lower bound only), so the time does not tell the two apart.
    let floor = std::time::Duration::from_millis(100);
    let started = std::time::Instant::now();
    let a = forgot(&app, &known).await;
    assert!(started.elapsed() >= floor, "{:?}", started.elapsed());
    let started = std::time::Instant::now();
    let b = forgot(&app, &unknown).await;
    assert!(started.elapsed() >= floor, "{:?}", started.elapsed());
    assert_eq!((a.status, &a.body), (b.status, &b.body));
    assert_eq!(a.headers.get("content-type"), b.headers.get("content-type"));
    assert_eq!(app.outbox_count(&known).await, before + 1);
    assert_eq!(app.outbox_count(&unknown).await, 0);
    assert_eq!(app.audit_count("password.reset_requested").await, 2);
    forgot(&app, "not an address").await.problem(400);
}

/// A second request voids the first link; an expired link is refused like an unknown one.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn only_the_newest_unexpired_reset_link_works(pool: PgPool) {
    let app = TestApp::new(pool);
    let email = address();
    app.register(&email).await;
    forgot(&app, &email).await;
    let Some(first) = app.mailed_token(&email, "/reset-password").await else {
        return;
    };
    forgot(&app, &email).await;
    let second = app.mailed_token(&email, "/reset-password").await.unwrap();
    assert_ne!(first, second);
    let unknown = reset(&app, &"B".repeat(43), NEW_PASSWORD).await;
    let voided = reset(&app, &first, NEW_PASSWORD).await;
    voided.problem(400);
    assert_eq!(voided.body, unknown.body);

    sqlx::query("UPDATE account_tokens SET expires_at = now() - interval '1 second'")
        .execute(&app.pool)
        .await
        .unwrap();
    let expired = reset(&app, &second, NEW_PASSWORD).await;
    expired.problem(400);
    assert_eq!(expired.body, unknown.body);
    assert_eq!(login(&app, &email, PASSWORD).await.status, StatusCode::OK);
    // A weak new password is refused before the link is spent.
    forgot(&app, &email).await;
    let third = app.mailed_token(&email, "/reset-password").await.unwrap();
    reset(&app, &third, "password").await.problem(422);
    assert_eq!(
        reset(&app, &third, NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
}

/// Two uses of one link at once: one sets the password, the other gets the link's 400.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn one_reset_link_used_twice_at_once_succeeds_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let email = address();
    app.register(&email).await;
    forgot(&app, &email).await;
    let Some(token) = app.mailed_token(&email, "/reset-password").await else {
        return;
    };
    let (a, b) = tokio::join!(
        reset(&app, &token, "first racer passphrase"),
        reset(&app, &token, "second racer passphrase")
    );
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [204, 400], "{} / {}", a.body, b.body);
    let winner = if a.status == StatusCode::NO_CONTENT {
        "first racer passphrase"
    } else {
        "second racer passphrase"
    };
    assert_eq!(login(&app, &email, winner).await.status, StatusCode::OK);
    assert_eq!(app.audit_count("password.reset").await, 1);
}

/// Reset requests are limited per address (and per client).
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn reset_requests_are_rate_limited_per_address(pool: PgPool) {
    let app = TestApp::with(pool, &[("RATE_LIMIT_PER_IDENTIFIER", "2")]);
    let email = address();
    for _ in 0..2 {
        assert_eq!(forgot(&app, &email).await.status, StatusCode::ACCEPTED);
    }
    let limited = forgot(&app, &email).await;
    limited.problem(429);
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(forgot(&app, &address()).await.status, StatusCode::ACCEPTED);
}

/// Without PUBLIC_BASE_URL no link can be built: a 503 for every address alike.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn without_a_public_base_url_reset_is_unavailable_for_everyone(pool: PgPool) {
    let app = TestApp::with(pool, &[("PUBLIC_BASE_URL", "")]);
    let email = address();
    app.register(&email).await;
    let known = forgot(&app, &email).await;
    let unknown = forgot(&app, &address()).await;
    known.problem(503);
    assert_eq!(known.body, unknown.body);
    assert_eq!(
        app.outbox_count(&email).await,
        0,
        "no verification mail either"
    );
}

/// A change needs the current password, keeps the caller's session and ends the others; a
/// wrong current password counts toward the lockout; a wallet-only account has none to change.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_password_change_keeps_this_session_and_ends_the_others(pool: PgPool) {
    let app = TestApp::with(pool, &[("LOCKOUT_THRESHOLD", "2")]);
    let email = address();
    let here = app.register(&email).await;
    let elsewhere = login(&app, &email, PASSWORD).await.body;
    let change = |current: &str, new: &str| {
        app.post("/password/change")
            .bearer(&access(&here))
            .json(&json!({"current_password": current, "new_password": new}))
            .send()
    };
    forgot(&app, &email).await;
    let pending_reset = app.mailed_token(&email, "/reset-password").await;
    let weak = change(PASSWORD, "password").await;
    assert_eq!(weak.problem(422)["errors"][0]["field"], "new_password");
    let wrong = change("not the password", NEW_PASSWORD).await;
    assert_eq!(wrong.problem(422)["errors"][0]["field"], "current_password");
    assert_eq!(
        change(PASSWORD, NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        refresh(&app, &here["refresh_token"]).await.status,
        StatusCode::OK
    );
    refresh(&app, &elsewhere["refresh_token"])
        .await
        .problem(401);
    assert_eq!(
        login(&app, &email, NEW_PASSWORD).await.status,
        StatusCode::OK
    );
    assert_eq!(app.audit_count("password.changed").await, 1);
    if let Some(link) = pending_reset {
        // A change voids the reset links mailed before it.
        reset(&app, &link, "a reset after the change")
            .await
            .problem(400);
    }

    // Two wrong current passwords lock the address, as two wrong logins would.
    let again = change("wrong", "a third fine passphrase").await;
    again.problem(422);
    change("wrong", "a third fine passphrase")
        .await
        .problem(422);
    change(NEW_PASSWORD, "a third fine passphrase")
        .await
        .problem(429);

    let wallet = app.register_wallet(&Wallet::random()).await;
    let none = app
        .post("/password/change")
        .bearer(&access(&wallet))
        .json(&json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
        .send()
        .await;
    none.problem(409);
    app.post("/password/change")
        .json(&json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
        .send()
        .await
        .problem(401);
}

/// Registration mails a verification link; following it marks the address verified on the
/// profile and in tokens issued afterwards; the link works once; resend voids older links and
/// is refused once verified.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn registration_mails_a_link_that_verifies_the_address(pool: PgPool) {
    let app = TestApp::new(pool);
    let email = address();
    let registered = app.register(&email).await;
    assert_eq!(registered["user"]["email_verified"], false);
    assert_eq!(claims_of(&access(&registered))["email_verified"], false);
    let Some(first) = app.mailed_token(&email, "/verify-email").await else {
        return;
    };
    let resend = app
        .post("/email/verify/resend")
        .bearer(&access(&registered))
        .json(&json!({}))
        .send()
        .await;
    assert_eq!(resend.status, StatusCode::ACCEPTED, "{}", resend.body);
    let second = app.mailed_token(&email, "/verify-email").await.unwrap();
    verify(&app, &first).await.problem(400);
    assert_eq!(verify(&app, &second).await.status, StatusCode::NO_CONTENT);
    verify(&app, &second).await.problem(400);

    let profile = app
        .get("/profile")
        .bearer(&access(&registered))
        .send()
        .await;
    assert_eq!(profile.body["user"]["email_verified"], true);
    let refreshed = refresh(&app, &registered["refresh_token"]).await;
    assert_eq!(claims_of(&access(&refreshed.body))["email_verified"], true);
    app.post("/email/verify/resend")
        .bearer(&access(&registered))
        .json(&json!({}))
        .send()
        .await
        .problem(409);
    assert_eq!(app.audit_count("email.verified").await, 1);
}

/// A link for an address the account no longer has proves nothing; linking an address mails a
/// link for it; a wallet-only account has nothing to verify.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_link_for_an_address_the_account_lost_is_refused(pool: PgPool) {
    let app = TestApp::new(pool);
    let account = app.register_wallet(&Wallet::random()).await;
    let token = access(&account);
    app.post("/email/verify/resend")
        .bearer(&token)
        .json(&json!({}))
        .send()
        .await
        .problem(409);
    let email = address();
    let linked = app
        .post("/link-identity")
        .bearer(&token)
        .json(&json!({"type": "email_password", "email": email, "password": PASSWORD}))
        .send()
        .await;
    assert_eq!(linked.status, StatusCode::CREATED, "{}", linked.body);
    let Some(link) = app.mailed_token(&email, "/verify-email").await else {
        return;
    };
    let unlinked = app
        .post("/unlink-identity")
        .bearer(&token)
        .json(&json!({"identity_id": linked.body["id"]}))
        .send()
        .await;
    assert_eq!(unlinked.status, StatusCode::OK, "{}", unlinked.body);
    verify(&app, &link).await.problem(400);
    let profile = app.get("/profile").bearer(&token).send().await;
    assert_eq!(profile.body["user"]["email_verified"], false);
}

/// With REQUIRE_VERIFIED_EMAIL, a right password on an unverified address gets its own 403; a
/// wrong one still gets the 401 every wrong password gets; after verifying, login works.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_verified_address_can_be_required_for_password_login(pool: PgPool) {
    let app = TestApp::with(pool, &[("REQUIRE_VERIFIED_EMAIL", "true")]);
    let email = address();
    app.register(&email).await;
    let refused = login(&app, &email, PASSWORD).await;
    assert_eq!(
        refused.problem(403)["type"],
        "urn:gantry:problem:email-not-verified"
    );
    login(&app, &email, "not the password").await.problem(401);
    let Some(token) = app.mailed_token(&email, "/verify-email").await else {
        return;
    };
    assert_eq!(verify(&app, &token).await.status, StatusCode::NO_CONTENT);
    let signed_in = login(&app, &email, PASSWORD).await;
    assert_eq!(signed_in.status, StatusCode::OK, "{}", signed_in.body);
    assert_eq!(claims_of(&access(&signed_in.body))["email_verified"], true);
}

/// The caller sees their live sessions with where they were used, the current one marked; ending
/// one stops its refresh token; another user's session, an ended one or an unknown id is a 404.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn sessions_are_listed_and_ended_by_their_owner_only(pool: PgPool) {
    let app = TestApp::new(pool);
    let email = address();
    app.register(&email).await;
    let phone = login_as(&app, &email, PASSWORD, "Phone/1.0").await.body;
    let laptop = login_as(&app, &email, PASSWORD, "Laptop/2.0").await.body;
    let list = |token: String| {
        let app = &app;
        async move { app.get("/sessions").bearer(&token).send().await }
    };
    let sessions = list(access(&laptop)).await;
    assert_eq!(sessions.status, StatusCode::OK, "{}", sessions.body);
    let items = sessions.body["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(items[0]["user_agent"], "Laptop/2.0");
    assert_eq!(items[0]["current"], true);
    assert_eq!(items[0]["ip"], "203.0.113.7");
    assert_eq!(items[0]["method"], "pwd");
    assert_eq!(items[1]["user_agent"], "Phone/1.0");
    assert_eq!(items[1]["current"], false);
    assert_eq!(items.iter().filter(|s| s["current"] == true).count(), 1);
    let phone_id = claims_of(&access(&phone))["sid"].clone();
    assert_eq!(items[1]["id"], phone_id);

    // A rotation keeps the session and moves its last use.
    let rotated = refresh(&app, &phone["refresh_token"]).await.body;
    let again = list(access(&laptop)).await.body["items"].clone();
    assert_eq!(again.as_array().unwrap().len(), 3);
    assert_eq!(again[0]["id"], phone_id, "most recently used first");

    let other = app.register(&address()).await;
    let other_sid = claims_of(&access(&other))["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let phone_sid = phone_id.as_str().unwrap();
    let end = |token: String, id: String| {
        let app = &app;
        async move {
            app.request(axum::http::Method::DELETE, &format!("/sessions/{id}"))
                .bearer(&token)
                .send()
                .await
        }
    };
    end(access(&laptop), other_sid.clone()).await.problem(404);
    assert_eq!(
        refresh(&app, &other["refresh_token"]).await.status,
        StatusCode::OK
    );
    end(access(&laptop), uuid::Uuid::now_v7().to_string())
        .await
        .problem(404);
    assert_eq!(
        end(access(&laptop), phone_sid.to_owned()).await.status,
        StatusCode::NO_CONTENT
    );
    end(access(&laptop), phone_sid.to_owned())
        .await
        .problem(404);
    refresh(&app, &rotated["refresh_token"]).await.problem(401);
    assert_eq!(
        list(access(&laptop)).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    app.get("/sessions").send().await.problem(401);
    assert_eq!(app.audit_count("session.revoked").await, 1);
}

/// The history lists the account's own sign-ins, failed ones included, newest first, in keyset
/// pages; a CLIENT cannot read another account's (403); an ADMIN can.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn the_login_history_pages_through_the_callers_own_attempts(pool: PgPool) {
    let app = TestApp::new(pool);
    let email = address();
    let registered = app.register(&email).await;
    login_as(&app, &email, "wrong password", "Mallory/0.1")
        .await
        .problem(401);
    let signed_in = login_as(&app, &email, PASSWORD, "Ada/1.0").await.body;
    let someone = app.register(&address()).await;
    login(&app, "nobody@example.com", PASSWORD)
        .await
        .problem(401);
    let token = access(&signed_in);

    let history = |query: String, token: String| {
        let app = &app;
        async move {
            app.get(&format!("/profile/login-history{query}"))
                .bearer(&token)
                .send()
                .await
        }
    };
    let all = history(String::new(), token.clone()).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    let items = all.body["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 3, "{items:?}");
    assert_eq!(
        items
            .iter()
            .map(|e| (e["success"].clone(), e["user_agent"].clone()))
            .collect::<Vec<_>>(),
        vec![
            (json!(true), json!("Ada/1.0")),
            (json!(false), json!("Mallory/0.1")),
            (json!(true), Value::Null)
        ]
    );
    assert_eq!(items[0]["ip"], "203.0.113.7");
    assert_eq!(items[0]["method"], "pwd");
    assert!(all.body["next_cursor"].is_null());

    let mut seen = Vec::new();
    let mut query = "?limit=1".to_owned();
    loop {
        let page = history(query.clone(), token.clone()).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        seen.extend(page.body["items"].as_array().unwrap().clone());
        match page.body["next_cursor"].as_str() {
            Some(cursor) => query = format!("?limit=1&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, items);
    history("?cursor=abc".into(), token.clone())
        .await
        .problem(400);

    let someone_id = someone["user"]["id"].as_str().unwrap();
    history(format!("?user_id={someone_id}"), token.clone())
        .await
        .problem(403);
    let me = registered["user"]["id"].as_str().unwrap();
    assert_eq!(
        history(format!("?user_id={me}"), token).await.body["items"],
        json!(items)
    );
    let (_, admin) = app.user_with_role(&address(), "ADMIN").await;
    let theirs = history(format!("?user_id={someone_id}"), admin.clone()).await;
    assert_eq!(
        theirs.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        theirs.body
    );
    history(format!("?user_id={}", uuid::Uuid::now_v7()), admin)
        .await
        .problem(404);
}

/// A reset lifts the lockout that guessing put on the address: the owner gets in at once.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_reset_lifts_the_lockout_on_the_address(pool: PgPool) {
    let app = TestApp::with(pool, &[("LOCKOUT_THRESHOLD", "2")]);
    let email = address();
    app.register(&email).await;
    for _ in 0..2 {
        login(&app, &email, "a wrong guess").await.problem(401);
    }
    login(&app, &email, PASSWORD).await.problem(429);
    forgot(&app, &email).await;
    let Some(token) = app.mailed_token(&email, "/reset-password").await else {
        return;
    };
    assert_eq!(
        reset(&app, &token, NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        login(&app, &email, NEW_PASSWORD).await.status,
        StatusCode::OK
    );
}

/// The pre-linked address: a stranger signs up with a wallet, links somebody's address with a
/// password of theirs (unproven) and turns on TOTP. The verification mail names the wallet. The
/// owner cannot register (409), so they reset by mail: the reset removes the wallet and the
/// stranger's authenticator, audits it, names them in the mail that confirms the reset, and the
/// wallet no longer signs into that account.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_reset_that_proves_an_address_removes_what_was_linked_before_the_proof(pool: PgPool) {
    let app = TestApp::new(pool);
    let victim = address();
    let stranger = Wallet::random();
    let signed_up = app.register_wallet(&stranger).await;
    let account = signed_up["user"]["id"].as_str().unwrap().to_owned();
    let linked = app
        .post("/link-identity")
        .bearer(&access(&signed_up))
        .json(&json!({"type": "email_password", "email": victim, "password": PASSWORD}))
        .send()
        .await;
    assert_eq!(linked.status, StatusCode::CREATED, "{}", linked.body);
    let Some(verification) = app.mailed(&victim).await else {
        return;
    };
    let wallet = format!("wallet {}", stranger.address());
    for body in ["text", "html"] {
        assert!(
            verification[body].as_str().unwrap().contains(&wallet),
            "the verification mail names the other sign-in: {verification}"
        );
    }
    let Some(strangers_session) = app.sign_in_with_totp(&victim).await else {
        return;
    };

    // The owner of the address: taken, so they reset.
    app.post("/register-email-password")
        .json(&json!({"email": victim, "password": NEW_PASSWORD}))
        .send()
        .await
        .problem(409);
    forgot(&app, &victim).await;
    let token = app.mailed_token(&victim, "/reset-password").await.unwrap();
    assert_eq!(
        reset(&app, &token, NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );

    // The stranger's tokens, unexpired, no longer change how the account signs in.
    for token in [access(&signed_up), access(&strangers_session)] {
        app.link_wallet(&token, &Wallet::random())
            .await
            .problem(401);
        app.post("/mfa/totp/enroll")
            .bearer(&token)
            .json(&json!({}))
            .send()
            .await
            .problem(401);
    }

    // The stranger's wallet and authenticator are gone; the owner signs in with the password
    // alone, and sees only their address.
    let owner = login(&app, &victim, NEW_PASSWORD).await;
    assert_eq!(owner.status, StatusCode::OK, "{}", owner.body);
    assert!(owner.body.get("mfa_required").is_none(), "{}", owner.body);
    let profile = app
        .get("/profile")
        .bearer(&access(&owner.body))
        .send()
        .await;
    let identities = profile.body["identities"].as_array().unwrap();
    assert_eq!(identities.len(), 1, "{}", profile.body);
    assert_eq!(identities[0]["type"], "email_password");
    let back = app
        .post("/login-blockchain")
        .json(&app.siwe(&stranger).await)
        .send()
        .await;
    assert_ne!(
        claims_of_or_none(&back.body).as_deref(),
        Some(account.as_str()),
        "the wallet no longer signs into the account: {}",
        back.body
    );
    let removed: Value = sqlx::query_scalar(
        "SELECT details FROM audit_log WHERE action = 'password.reset' AND subject_id = $1::uuid",
    )
    .bind(&account)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        removed["identities_removed"],
        json!([format!("blockchain_address:{}", stranger.address())])
    );
    assert_eq!(removed["second_factor_removed"], true);
    let confirmation = app.mailed(&victim).await.unwrap();
    let text = confirmation["text"].as_str().unwrap();
    assert!(
        text.contains(&wallet)
            && text.contains("link them again")
            && text.contains("authenticator"),
        "{text}"
    );
}

/// The subject of a token pair's access token, if the body is one.
fn claims_of_or_none(body: &Value) -> Option<String> {
    let token = body["access_token"].as_str()?;
    claims_of(token)["sub"].as_str().map(str::to_owned)
}

/// A proven address: a reset leaves the account's other sign-in methods alone, and its
/// confirmation mail says only that the password was reset.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_reset_of_a_proven_address_keeps_the_accounts_wallets(pool: PgPool) {
    let app = TestApp::new(pool);
    let email = address();
    let registered = app.register(&email).await;
    let Some(link) = app.mailed_token(&email, "/verify-email").await else {
        return;
    };
    assert_eq!(verify(&app, &link).await.status, StatusCode::NO_CONTENT);
    let wallet = Wallet::random();
    let linked = app.link_wallet(&access(&registered), &wallet).await;
    assert_eq!(linked.status, StatusCode::CREATED, "{}", linked.body);
    forgot(&app, &email).await;
    let token = app.mailed_token(&email, "/reset-password").await.unwrap();
    assert_eq!(
        reset(&app, &token, NEW_PASSWORD).await.status,
        StatusCode::NO_CONTENT
    );
    let back = app
        .post("/login-blockchain")
        .json(&app.siwe(&wallet).await)
        .send()
        .await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    assert_eq!(
        claims_of_or_none(&back.body).as_deref(),
        registered["user"]["id"].as_str()
    );
    let confirmation = app.mailed(&email).await.unwrap();
    let text = confirmation["text"].as_str().unwrap();
    assert!(
        text.contains("was reset") && !text.contains("removed"),
        "{text}"
    );
}
