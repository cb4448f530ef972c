use axum::http::StatusCode;
use gantry_tests::TestApp;
use sqlx::PgPool;

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn health_answers_ok(pool: PgPool) {
    let app = TestApp::new(pool);
    let res = app.get("/health").send().await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body, serde_json::json!({"status": "ok"}));
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn unknown_routes_and_methods_are_problems(pool: PgPool) {
    let app = TestApp::new(pool);
    app.get("/nope").send().await.problem(404);
    app.get("/login-email-password").send().await.problem(405);
    app.request(axum::http::Method::DELETE, "/profile")
        .send()
        .await
        .problem(405);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn oversized_bodies_are_refused(pool: PgPool) {
    let app = TestApp::new(pool);
    let huge = format!(r#"{{"email":"{}"}}"#, "a".repeat(2 * 1024 * 1024));
    app.post("/register-email-password")
        .raw(Some("application/json"), huge)
        .send()
        .await
        .problem(413);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn missing_dependencies_are_503_with_a_reason(pool: PgPool) {
    drop(pool);
    let platform = gantry_tests::platform(
        gantry_tests::test_env(&[]),
        None,
        None,
        gantry::auth::keys::Jwks::default(),
    );
    let router = gantry_tests::gateway(&platform);
    let req = axum::http::Request::post("/login-email-password")
        .header("content-type", "application/json")
        .body(axum::body::Body::from(
            r#"{"email":"a@example.com","password":"whatever1"}"#,
        ))
        .unwrap();
    let res = tower::ServiceExt::oneshot(router, req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let problem: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(problem["type"], "urn:gantry:problem:unavailable");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("DATABASE_URL"),
        "the reason names what is missing: {detail}"
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn the_gateway_serves_the_openapi_document(pool: PgPool) {
    let app = TestApp::new(pool);
    let res = app.get("/openapi.json").send().await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.body["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/register-email-password",
        "/login-email-password",
        "/profile",
        "/token/refresh",
        "/logout",
        "/.well-known/jwks.json",
        "/users",
        "/users/{id}/role",
        "/health",
    ] {
        assert!(
            res.body["paths"].get(path).is_some(),
            "{path} missing from the spec"
        );
    }
}

#[test]
fn the_committed_openapi_document_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../openapi.json");
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == gantry::app::spec_json(),
        "openapi.json is stale: run `cargo run -q -p gantry-cli -- openapi > openapi.json`"
    );
}
