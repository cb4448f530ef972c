use axum::http::{Method, StatusCode};
use gantry_tests::TestApp;
use serde_json::json;
use sqlx::PgPool;
use std::collections::HashSet;

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn only_admins_may_use_the_user_routes(pool: PgPool) {
    let app = TestApp::new(pool);
    let (target, _) = app.user_with_role("target@example.com", "CLIENT").await;
    let (_, client) = app.user_with_role("client@example.com", "CLIENT").await;
    let (_, staff) = app.user_with_role("staff@example.com", "STAFF").await;
    let (_, admin) = app.user_with_role("admin@example.com", "ADMIN").await;
    let role_path = format!("/users/{target}/role");
    let routes = [(Method::GET, "/users"), (Method::PUT, role_path.as_str())];
    let callers = [
        (None, 401),
        (Some(client.as_str()), 403),
        (Some(staff.as_str()), 403),
        (Some(admin.as_str()), 200),
    ];
    for (method, path) in &routes {
        for (token, expected) in &callers {
            let mut call = app
                .request(method.clone(), path)
                .json(&json!({"role": "STAFF"}));
            if let Some(token) = token {
                call = call.bearer(token);
            }
            let res = call.send().await;
            assert_eq!(
                res.status.as_u16(),
                *expected,
                "{method} {path} with {token:?}: {}",
                res.body
            );
            if *expected != 200 {
                res.problem(*expected);
            }
        }
    }
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn listing_pages_through_every_user_once(pool: PgPool) {
    let app = TestApp::new(pool);
    let (_, admin) = app.user_with_role("admin@example.com", "ADMIN").await;
    for i in 0..6 {
        app.register(&format!("user{i}@example.com")).await;
    }
    let mut seen = HashSet::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/users?limit=3&cursor={c}"),
            None => "/users?limit=3".to_owned(),
        };
        let res = app.get(&path).bearer(&admin).send().await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        pages += 1;
        for user in res.body["items"].as_array().unwrap() {
            assert!(
                seen.insert(user["id"].as_str().unwrap().to_owned()),
                "duplicate"
            );
            assert!(user.get("credential").is_none());
        }
        match res.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(pages, 3);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn bad_paging_parameters_are_400s(pool: PgPool) {
    let app = TestApp::new(pool);
    let (_, admin) = app.user_with_role("admin@example.com", "ADMIN").await;
    for query in ["limit=0", "limit=101", "limit=abc", "cursor=not-a-cursor"] {
        let res = app
            .get(&format!("/users?{query}"))
            .bearer(&admin)
            .send()
            .await;
        res.problem(400);
    }
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn an_admin_changes_a_role_and_it_is_audited(pool: PgPool) {
    let app = TestApp::new(pool);
    let (admin_id, admin) = app.user_with_role("admin@example.com", "ADMIN").await;
    let (target, _) = app.user_with_role("client@example.com", "CLIENT").await;
    let res = app
        .put(&format!("/users/{target}/role"))
        .bearer(&admin)
        .json(&json!({"role": "STAFF"}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body["role"], "STAFF");
    assert_eq!(res.body["id"], target.as_str());
    let (actor, details): (uuid::Uuid, serde_json::Value) = sqlx::query_as(
        "SELECT actor_id, details FROM audit_log WHERE action = 'user.role_changed'",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(actor.to_string(), admin_id);
    assert_eq!(details["from"], "CLIENT");
    assert_eq!(details["to"], "STAFF");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn role_change_input_is_validated(pool: PgPool) {
    let app = TestApp::new(pool);
    let (_, admin) = app.user_with_role("admin@example.com", "ADMIN").await;
    let unknown = uuid::Uuid::now_v7();
    app.put(&format!("/users/{unknown}/role"))
        .bearer(&admin)
        .json(&json!({"role": "STAFF"}))
        .send()
        .await
        .problem(404);
    app.put("/users/not-a-uuid/role")
        .bearer(&admin)
        .json(&json!({"role": "STAFF"}))
        .send()
        .await
        .problem(400);
    let (target, _) = app.user_with_role("client@example.com", "CLIENT").await;
    for body in [
        json!({"role": "ROOT"}),
        json!({"role": "STAFF", "extra": 1}),
        json!({}),
    ] {
        app.put(&format!("/users/{target}/role"))
            .bearer(&admin)
            .json(&body)
            .send()
            .await
            .problem(400);
    }
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn the_last_admin_cannot_be_demoted(pool: PgPool) {
    let app = TestApp::new(pool);
    let (admin_id, admin) = app.user_with_role("admin@example.com", "ADMIN").await;
    app.put(&format!("/users/{admin_id}/role"))
        .bearer(&admin)
        .json(&json!({"role": "CLIENT"}))
        .send()
        .await
        .problem(409);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn two_admins_demoting_each_other_at_once_leave_one_admin(pool: PgPool) {
    let app = TestApp::new(pool);
    let (a_id, a) = app.user_with_role("a@example.com", "ADMIN").await;
    let (b_id, b) = app.user_with_role("b@example.com", "ADMIN").await;
    for _ in 0..5 {
        let demote_b = app
            .put(&format!("/users/{b_id}/role"))
            .bearer(&a)
            .json(&json!({"role": "CLIENT"}))
            .send();
        let demote_a = app
            .put(&format!("/users/{a_id}/role"))
            .bearer(&b)
            .json(&json!({"role": "CLIENT"}))
            .send();
        let (x, y) = tokio::join!(demote_b, demote_a);
        let mut statuses = [x.status.as_u16(), y.status.as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 409]);
        let admins: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE role = 'ADMIN'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
        assert_eq!(admins, 1);
        // Restore both for the next round.
        sqlx::query("UPDATE users SET role = 'ADMIN'")
            .execute(&app.pool)
            .await
            .unwrap();
    }
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn the_cli_bootstrap_creates_and_promotes_admins(pool: PgPool) {
    let app = TestApp::new(pool);
    let account = gantry::identity::account::NewAccount::parse(
        "root@example.com",
        gantry_tests::PASSWORD.to_owned(),
        Some("Root"),
    )
    .unwrap();
    let admin = gantry::identity::account::create_admin(&app.state, account)
        .await
        .unwrap();
    assert_eq!(admin.role, gantry::domain::Role::Admin);
    assert_eq!(app.audit_count("user.admin_created").await, 1);

    app.register("later@example.com").await;
    let email = gantry::domain::Email::parse("later@example.com").unwrap();
    let promoted = gantry::identity::account::promote_by_email(&app.state, &email)
        .await
        .unwrap();
    assert_eq!(promoted.role, gantry::domain::Role::Admin);
    // The promoted admin signs in with ADMIN in the token.
    let login = app
        .post("/login-email-password")
        .json(&json!({"email": "later@example.com", "password": gantry_tests::PASSWORD}))
        .send()
        .await;
    let claims = app
        .state
        .verifier()
        .verify(&login.str("access_token"))
        .unwrap();
    assert_eq!(claims.role, gantry::domain::Role::Admin);
}
