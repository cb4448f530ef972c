use axum::http::StatusCode;
use gantry_tests::wallet::Wallet;
use gantry_tests::{PASSWORD, TestApp};
use serde_json::{Value, json};
use sqlx::PgPool;

fn token(body: &Value) -> String {
    body["access_token"].as_str().unwrap().to_owned()
}

async fn identity_count(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM identities")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn an_email_account_links_a_wallet_and_logs_in_with_either(pool: PgPool) {
    let app = TestApp::new(pool);
    let account = app.register("ada@example.com").await;
    let wallet = Wallet::random();
    let res = app.link_wallet(&token(&account), &wallet).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    assert_eq!(res.body["type"], "blockchain_address");
    assert_eq!(res.body["identifier"], wallet.address());
    assert_eq!(res.body["is_primary_login"], false);
    let login = app
        .post("/login-blockchain")
        .json(&app.siwe(&wallet).await)
        .send()
        .await;
    let claims = app
        .state
        .verifier()
        .verify(&login.str("access_token"))
        .unwrap();
    assert_eq!(
        claims.sub.to_string(),
        account["user"]["id"].as_str().unwrap()
    );
    let profile = app.get("/profile").bearer(&token(&account)).send().await;
    assert_eq!(profile.body["identities"].as_array().unwrap().len(), 2);
    assert_eq!(app.audit_count("identity.linked").await, 1);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_wallet_account_links_an_email(pool: PgPool) {
    let app = TestApp::new(pool);
    let account = app.register_wallet(&Wallet::random()).await;
    let res = app
        .post("/link-identity")
        .bearer(&token(&account))
        .json(
            &json!({"type": "email_password", "email": "Grace@Example.com", "password": PASSWORD}),
        )
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    assert_eq!(res.body["identifier"], "Grace@example.com");
    let login = app
        .post("/login-email-password")
        .json(&json!({"email": "grace@example.com", "password": PASSWORD}))
        .send()
        .await;
    assert_eq!(login.status, StatusCode::OK);
    let profile = app
        .get("/profile")
        .bearer(&login.str("access_token"))
        .send()
        .await;
    assert_eq!(profile.body["user"]["email"], "Grace@example.com");
    // One email per account.
    app.post("/link-identity")
        .bearer(&token(&account))
        .json(
            &json!({"type": "email_password", "email": "other@example.com", "password": PASSWORD}),
        )
        .send()
        .await
        .problem(409);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn linking_an_identity_owned_by_someone_else_conflicts_and_changes_nothing(pool: PgPool) {
    let app = TestApp::new(pool);
    let owner_wallet = Wallet::random();
    app.register_wallet(&owner_wallet).await;
    app.register("taken@example.com").await;
    let intruder = app.register("intruder@example.com").await;
    let before = identity_count(&app).await;
    app.link_wallet(&token(&intruder), &owner_wallet)
        .await
        .problem(409);
    let other = app.register_wallet(&Wallet::random()).await;
    app.post("/link-identity")
        .bearer(&token(&other))
        .json(
            &json!({"type": "email_password", "email": "TAKEN@example.com", "password": PASSWORD}),
        )
        .send()
        .await
        .problem(409);
    assert_eq!(
        identity_count(&app).await,
        before + 1,
        "only the second wallet account was added"
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn linking_needs_a_token_and_a_valid_fresh_proof(pool: PgPool) {
    let app = TestApp::new(pool);
    let account = app.register("ada@example.com").await;
    let wallet = Wallet::random();
    let mut body = app.siwe(&wallet).await;
    body["type"] = "blockchain_address".into();
    app.post("/link-identity")
        .json(&body)
        .send()
        .await
        .problem(401);
    let mut forged = body.clone();
    forged["signature"] = Wallet::random()
        .sign(body["message"].as_str().unwrap())
        .into();
    app.post("/link-identity")
        .bearer(&token(&account))
        .json(&forged)
        .send()
        .await
        .problem(401);
    app.post("/link-identity")
        .bearer(&token(&account))
        .json(&json!({"type": "did", "identifier": "did:example:1"}))
        .send()
        .await
        .problem(400);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn the_last_identity_cannot_be_unlinked(pool: PgPool) {
    let app = TestApp::new(pool);
    let account = app.register("ada@example.com").await;
    let profile = app.get("/profile").bearer(&token(&account)).send().await;
    let id = profile.body["identities"][0]["id"].clone();
    app.post("/unlink-identity")
        .bearer(&token(&account))
        .json(&json!({"identity_id": id}))
        .send()
        .await
        .problem(409);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn another_users_identity_is_not_found(pool: PgPool) {
    let app = TestApp::new(pool);
    let victim = app.register("victim@example.com").await;
    let attacker = app.register("attacker@example.com").await;
    app.link_wallet(&token(&attacker), &Wallet::random()).await;
    let victim_profile = app.get("/profile").bearer(&token(&victim)).send().await;
    let victim_identity = victim_profile.body["identities"][0]["id"].clone();
    app.post("/unlink-identity")
        .bearer(&token(&attacker))
        .json(&json!({"identity_id": victim_identity}))
        .send()
        .await
        .problem(404);
    assert_eq!(identity_count(&app).await, 3);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn unlinking_revokes_the_sessions_opened_through_that_identity(pool: PgPool) {
    let app = TestApp::new(pool);
    let account = app.register("ada@example.com").await;
    let wallet = Wallet::random();
    let linked = app.link_wallet(&token(&account), &wallet).await;
    let wallet_session = app
        .post("/login-blockchain")
        .json(&app.siwe(&wallet).await)
        .send()
        .await;
    let res = app
        .post("/unlink-identity")
        .bearer(&token(&account))
        .json(&json!({"identity_id": linked.body["id"]}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body["identities"].as_array().unwrap().len(), 1);
    let refresh = |t: String| {
        app.post("/token/refresh")
            .json(&json!({"refresh_token": t}))
            .send()
    };
    refresh(wallet_session.str("refresh_token"))
        .await
        .problem(401);
    let email_session = refresh(account["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(
        email_session.status,
        StatusCode::OK,
        "the email session survives"
    );
    assert_eq!(app.audit_count("identity.unlinked").await, 1);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn unlinking_the_primary_identity_promotes_another(pool: PgPool) {
    let app = TestApp::new(pool);
    let account = app.register("ada@example.com").await;
    app.link_wallet(&token(&account), &Wallet::random()).await;
    let profile = app.get("/profile").bearer(&token(&account)).send().await;
    let email_id = profile.body["identities"][0]["id"].clone();
    let res = app
        .post("/unlink-identity")
        .bearer(&token(&account))
        .json(&json!({"identity_id": email_id}))
        .send()
        .await;
    assert_eq!(res.body["identities"][0]["is_primary_login"], true);
    let profile = app.get("/profile").bearer(&token(&account)).send().await;
    assert_eq!(profile.body["user"]["email"], Value::Null);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn concurrent_unlinks_of_the_last_two_identities_leave_one(pool: PgPool) {
    let app = TestApp::new(pool);
    for round in 0..5 {
        let account = app.register(&format!("ada{round}@example.com")).await;
        app.link_wallet(&token(&account), &Wallet::random()).await;
        let profile = app.get("/profile").bearer(&token(&account)).send().await;
        let ids: Vec<Value> = profile.body["identities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].clone())
            .collect();
        let unlink = |id: Value| {
            app.post("/unlink-identity")
                .bearer(&token(&account))
                .json(&json!({"identity_id": id}))
                .send()
        };
        let (a, b) = tokio::join!(unlink(ids[0].clone()), unlink(ids[1].clone()));
        let mut statuses = [a.status.as_u16(), b.status.as_u16()];
        statuses.sort_unstable();
        // The loser finds one identity left (409), or its session gone with the identity it
        // was opened with (401).
        assert!(
            statuses == [200, 409] || statuses == [200, 401],
            "round {round}: {statuses:?}"
        );
        let left = app.get("/profile").bearer(&token(&account)).send().await;
        assert_eq!(left.body["identities"].as_array().unwrap().len(), 1);
    }
}

/// Without the per-account lock and the unique index, one round races about one time in five;
/// ten rounds make a regression hard to miss.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn concurrent_email_links_leave_one_email_on_the_account(pool: PgPool) {
    let app = TestApp::new(pool);
    for round in 0..10 {
        let account = app.register_wallet(&Wallet::random()).await;
        let access = token(&account);
        let link = |n: usize| {
            app.post("/link-identity")
                .bearer(&access)
                .json(&json!({"type": "email_password", "email": format!("r{round}-{n}@x.com"), "password": PASSWORD}))
                .send()
        };
        let results = futures::future::join_all((0..6).map(link)).await;
        let created = results
            .iter()
            .filter(|r| r.status == StatusCode::CREATED)
            .count();
        assert_eq!(created, 1, "round {round}");
        for r in results.iter().filter(|r| r.status != StatusCode::CREATED) {
            r.problem(409);
        }
    }
    let emails: i64 =
        sqlx::query_scalar("SELECT count(*) FROM identities WHERE type = 'email_password'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(emails, 10);
}

/// The profile is one row per identity: each identity once, oldest first, the account once; an
/// account left with none (deleted under it) still reads, with an empty list.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn the_profile_lists_every_identity_once_oldest_first(pool: PgPool) {
    let app = TestApp::new(pool);
    let account = app.register("ada@example.com").await;
    let wallets = [Wallet::random(), Wallet::random()];
    for wallet in &wallets {
        let res = app.link_wallet(&token(&account), wallet).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    }
    let profile = app.get("/profile").bearer(&token(&account)).send().await;
    assert_eq!(profile.status, StatusCode::OK, "{}", profile.body);
    assert_eq!(profile.body["user"], account["user"]);
    let listed: Vec<&str> = profile.body["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["identifier"].as_str().unwrap())
        .collect();
    let wanted = [
        "ada@example.com".to_owned(),
        wallets[0].address(),
        wallets[1].address(),
    ];
    assert_eq!(listed, wanted);
    let dids: Vec<&Value> = profile.body["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["did"])
        .collect();
    assert_eq!(dids[0], &Value::Null);
    let did = format!(
        "did:pkh:eip155:{}:{}",
        gantry_tests::SIWE_CHAIN,
        wallets[1].address()
    );
    assert_eq!(dids[2], &json!(did));

    sqlx::query("DELETE FROM identities WHERE user_id = $1::uuid")
        .bind(account["user"]["id"].as_str().unwrap())
        .execute(&app.pool)
        .await
        .unwrap();
    let bare = app.get("/profile").bearer(&token(&account)).send().await;
    assert_eq!(bare.status, StatusCode::OK, "{}", bare.body);
    assert_eq!(bare.body["user"], account["user"]);
    assert_eq!(bare.body["identities"], json!([]));
}
