use axum::http::StatusCode;
use gantry_tests::{PASSWORD, TestApp};
use serde_json::json;
use sqlx::PgPool;

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn registering_returns_the_user_and_a_token_pair(pool: PgPool) {
    let app = TestApp::new(pool);
    let res = app
        .post("/register-email-password")
        .json(
            &json!({"email": "  Ada@Example.COM ", "password": PASSWORD, "name": " Ada Lovelace "}),
        )
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    let user = &res.body["user"];
    assert_eq!(user["email"], "Ada@example.com");
    assert_eq!(user["name"], "Ada Lovelace");
    assert_eq!(user["role"], "CLIENT");
    assert!(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).is_ok());
    assert!(user["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(res.body["token_type"], "Bearer");
    assert_eq!(res.body["expires_in"], 900);
    assert_eq!(res.str("refresh_token").len(), 43);
    assert_eq!(res.headers["cache-control"], "no-store");
    assert_eq!(app.audit_count("user.registered").await, 1);

    // The access token is one: signed by the app's key, for this user, for 15 minutes, and it
    // opens an authenticated route as them.
    let access = res.str("access_token");
    let claims = app.state.verifier().verify(&access).unwrap();
    assert_eq!(claims.sub.to_string(), user["id"].as_str().unwrap());
    assert_eq!(claims.role, gantry::domain::Role::Client);
    assert_eq!(claims.amr, vec![gantry::auth::Amr::Pwd]);
    assert_eq!(claims.exp - claims.iat, 900);
    let profile = app.get("/profile").bearer(&access).send().await;
    assert_eq!(profile.status, StatusCode::OK, "{}", profile.body);
    assert_eq!(&profile.body["user"], user);
    // So is the refresh token: it buys a new pair for the same user and session.
    let refreshed = crate::tokens::refresh(&app, &res.str("refresh_token")).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let again = app
        .state
        .verifier()
        .verify(&refreshed.str("access_token"))
        .unwrap();
    assert_eq!((again.sub, again.sid), (claims.sub, claims.sid));
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn the_name_defaults_to_the_local_part(pool: PgPool) {
    let app = TestApp::new(pool);
    let body = app.register("grace.hopper@example.com").await;
    assert_eq!(body["user"]["name"], "grace.hopper");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn duplicate_email_conflicts_whatever_its_case(pool: PgPool) {
    let app = TestApp::new(pool);
    app.register("ada@example.com").await;
    for email in ["ada@example.com", "ADA@EXAMPLE.COM", " ada@Example.com"] {
        let res = app
            .post("/register-email-password")
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await;
        res.problem(409);
    }
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(users, 1, "a refused registration leaves nothing behind");
    assert_eq!(app.audit_count("user.registered").await, 1);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn concurrent_registrations_of_one_email_create_one_account(pool: PgPool) {
    let app = TestApp::new(pool);
    let calls = (0..8).map(|_| {
        app.post("/register-email-password")
            .json(&json!({"email": "race@example.com", "password": PASSWORD}))
            .send()
    });
    let results = futures::future::join_all(calls).await;
    let created = results
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    let conflicts = results
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 7));
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn invalid_registrations_name_every_bad_field(pool: PgPool) {
    let app = TestApp::new(pool);
    let cases = [
        (
            json!({"email": "not-an-email", "password": PASSWORD}),
            vec!["email"],
        ),
        (
            json!({"email": "a@example.com", "password": "short"}),
            vec!["password"],
        ),
        (
            json!({"email": "not-an-email", "password": "Password1"}),
            vec!["email", "password"],
        ),
        (
            json!({"email": "a@example.com", "password": "x".repeat(129)}),
            vec!["password"],
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "name": ""}),
            vec!["name"],
        ),
        (
            json!({"email": "", "password": "1234567"}),
            vec!["email", "password"],
        ),
        (json!({"password": PASSWORD}), vec!["email"]),
        (
            json!({"email": "a@example.com", "password": PASSWORD, "role": "ADMIN"}),
            vec!["role"],
        ),
        (json!({"email": 5, "password": PASSWORD}), vec!["email"]),
    ];
    for (body, fields) in cases {
        let res = app
            .post("/register-email-password")
            .json(&body)
            .send()
            .await;
        assert_eq!(res.fields(), fields, "for {body}");
    }
    // A well-formed password that is on the common list is a 422: the schema allows it, a
    // rule refuses it. Mixed with a malformed field, the request is a 400 naming both.
    let res = app
        .post("/register-email-password")
        .json(&json!({"email": "a@example.com", "password": "Password1"}))
        .send()
        .await;
    let problem = res.problem(422);
    assert_eq!(problem["errors"][0]["field"], "password");
    assert_eq!(problem["type"], "urn:gantry:problem:refused");
    let users: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(users, 0);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn malformed_bodies_are_problems_not_crashes(pool: PgPool) {
    let app = TestApp::new(pool);
    let res = app
        .post("/register-email-password")
        .raw(Some("application/json"), "{not json")
        .send()
        .await;
    res.problem(400);
    let res = app
        .post("/register-email-password")
        .raw(Some("text/plain"), r#"{"email":"a@example.com"}"#)
        .send()
        .await;
    res.problem(415);
    let res = app
        .post("/register-email-password")
        .raw(Some("application/json"), "[]")
        .send()
        .await;
    res.problem(400);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn login_returns_a_token_pair_for_the_right_password(pool: PgPool) {
    let app = TestApp::new(pool);
    let registered = app.register("Ada@Example.com").await;
    let res = app
        .post("/login-email-password")
        .json(&json!({"email": "ada@EXAMPLE.com", "password": PASSWORD}))
        .send()
        .await;
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
    assert_eq!(claims.amr, vec![gantry::auth::Amr::Pwd]);
    let identity: uuid::Uuid = sqlx::query_scalar("SELECT id FROM identities WHERE user_id = $1")
        .bind(claims.sub)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(claims.idp, identity);
    assert_eq!(app.audit_count("login.succeeded").await, 1);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn wrong_password_and_unknown_email_are_indistinguishable(pool: PgPool) {
    let app = TestApp::new(pool);
    app.register("ada@example.com").await;
    let wrong = app
        .post("/login-email-password")
        .json(&json!({"email": "ada@example.com", "password": "not the password"}))
        .send()
        .await;
    let unknown = app
        .post("/login-email-password")
        .json(&json!({"email": "nobody@example.com", "password": "not the password"}))
        .send()
        .await;
    wrong.problem(401);
    assert_eq!(wrong.status, unknown.status);
    assert_eq!(wrong.raw, unknown.raw, "same body, byte for byte");
    let mut a = wrong.headers.clone();
    let mut b = unknown.headers.clone();
    a.remove("date");
    b.remove("date");
    assert_eq!(a, b, "same headers");
    assert_eq!(app.audit_count("login.failed").await, 2);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn profile_lists_identities_and_never_a_credential(pool: PgPool) {
    let app = TestApp::new(pool);
    let registered = app.register("ada@example.com").await;
    let token = registered["access_token"].as_str().unwrap();
    let res = app.get("/profile").bearer(token).send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body["user"], registered["user"]);
    let identities = res.body["identities"].as_array().unwrap();
    assert_eq!(identities.len(), 1);
    assert_eq!(identities[0]["type"], "email_password");
    assert_eq!(identities[0]["identifier"], "ada@example.com");
    assert_eq!(identities[0]["is_primary_login"], true);
    let text = res.body.to_string();
    assert!(
        !text.contains("argon2") && !text.contains("credential"),
        "{text}"
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn profile_requires_a_bearer_token(pool: PgPool) {
    let app = TestApp::new(pool);
    let res = app.get("/profile").send().await;
    res.problem(401);
    assert_eq!(res.headers["www-authenticate"], "Bearer");
    let res = app
        .get("/profile")
        .header("authorization", "Basic YTpi")
        .send()
        .await;
    res.problem(401);
    let res = app.get("/profile").bearer("garbage").send().await;
    res.problem(401);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn jwks_publishes_the_key_that_signs_access_tokens(pool: PgPool) {
    let app = TestApp::new(pool);
    let registered = app.register("ada@example.com").await;
    let res = app.get("/.well-known/jwks.json").send().await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.headers["cache-control"], "public, max-age=300");
    let key = &res.body["keys"][0];
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    let header = jsonwebtoken::decode_header(registered["access_token"].as_str().unwrap()).unwrap();
    assert_eq!(header.kid.as_deref(), key["kid"].as_str());
    assert!(key.get("d").is_none(), "never the private part");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn verify_only_functions_accept_tokens_but_cannot_issue_them(pool: PgPool) {
    let app = TestApp::new(pool);
    let registered = app.register("ada@example.com").await;
    let verify_only = app.verify_only();
    let call = |req: axum::http::Request<axum::body::Body>| {
        let router = verify_only.clone();
        async move { tower::ServiceExt::oneshot(router, req).await.unwrap() }
    };
    let profile = call(
        axum::http::Request::get("/profile")
            .header(
                "authorization",
                format!("Bearer {}", registered["access_token"].as_str().unwrap()),
            )
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(profile.status(), StatusCode::OK);
    let login = call(
        axum::http::Request::post("/login-email-password")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(
                json!({"email": "ada@example.com", "password": PASSWORD}).to_string(),
            ))
            .unwrap(),
    )
    .await;
    assert_eq!(login.status(), StatusCode::SERVICE_UNAVAILABLE);
}

/// A password hash made at other parameters (older, cheaper costs) is replaced on the next
/// successful login by one at today's, and the password still works; a wrong password changes
/// nothing.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_hash_at_old_parameters_is_rehashed_on_login(pool: PgPool) {
    use argon2::password_hash::PasswordHasher as _;
    let app = TestApp::new(pool);
    app.register("old@example.com").await;
    let old = argon2::Argon2::new(
        argon2::Algorithm::Argon2i,
        argon2::Version::V0x13,
        argon2::Params::new(8_192, 1, 1, None).unwrap(),
    )
    .hash_password(PASSWORD.as_bytes())
    .unwrap()
    .to_string();
    let credential = || {
        sqlx::query_scalar::<_, String>(
            "SELECT credential FROM identities WHERE identifier = 'old@example.com'",
        )
        .fetch_one(&app.pool)
    };
    sqlx::query("UPDATE identities SET credential = $1 WHERE identifier = 'old@example.com'")
        .bind(&old)
        .execute(&app.pool)
        .await
        .unwrap();
    let login = |password: &'static str| {
        app.post("/login-email-password")
            .json(&json!({"email": "old@example.com", "password": password}))
            .send()
    };
    login("wrong password").await.problem(401);
    assert_eq!(
        credential().await.unwrap(),
        old,
        "a failed login rehashes nothing"
    );

    assert_eq!(login(PASSWORD).await.status, StatusCode::OK);
    let upgraded = credential().await.unwrap();
    assert!(
        upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{upgraded}"
    );
    assert_eq!(login(PASSWORD).await.status, StatusCode::OK);
    assert_eq!(
        credential().await.unwrap(),
        upgraded,
        "a current hash is kept"
    );
}
