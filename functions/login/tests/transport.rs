//! The real `login` binary, driven both ways it is deployed: as a Lambda function (through a
//! Runtime API emulator, with an API Gateway HTTP API v2 event) and as a plain HTTP server
//! (OpenFaaS of-watchdog http mode, local runs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gantry::auth::SigningKey;
use gantry_tests::lambda::{RuntimeApi, http_api_event, runtime_env, spawn_capturing, spawn_http};
use gantry_tests::{PASSWORD, TestApp};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::path::Path;
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_login");

fn login_body(password: &str) -> String {
    json!({"email": "ada@example.com", "password": password}).to_string()
}

fn function_env(pool: &PgPool) -> Vec<(&'static str, String)> {
    let pem = SigningKey::generate().to_pem().unwrap();
    vec![
        ("DATABASE_URL", gantry_tests::database_url(pool)),
        ("JWT_PRIVATE_KEY", pem.expose_secret().to_owned()),
        ("JWT_ISSUER", gantry_tests::ISSUER.to_owned()),
        ("JWT_AUDIENCE", gantry_tests::AUDIENCE.to_owned()),
    ]
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn login_runs_under_the_lambda_runtime_api(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    app.register("ada@example.com").await;
    let api = RuntimeApi::start().await.unwrap();
    let mut env = function_env(&pool);
    env.extend(runtime_env(&api, "login"));
    env.push(("RATE_LIMIT_PER_IP", "2".to_owned()));
    let mut child = spawn_capturing(Path::new(BINARY), &env).unwrap();
    let headers = [("content-type", "application/json")];

    let ok = api
        .invoke(
            http_api_event(
                "POST",
                "/login-email-password",
                &headers,
                Some(&login_body(PASSWORD)),
            ),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(ok["statusCode"], 200, "{ok}");
    let body: Value = serde_json::from_str(ok["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["refresh_token"].as_str().unwrap().len(), 43);

    let denied = api
        .invoke(
            http_api_event(
                "POST",
                "/login-email-password",
                &headers,
                Some(&login_body("wrong password")),
            ),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(denied["statusCode"], 401, "{denied}");
    assert_eq!(
        denied["headers"]["content-type"],
        "application/problem+json"
    );

    // The client address is API Gateway's sourceIp: a third login from it is limited, whatever
    // X-Forwarded-For claims, while another address still gets through.
    let spoofed = [
        ("content-type", "application/json"),
        ("x-forwarded-for", "203.0.113.77"),
    ];
    let limited = api
        .invoke(
            http_api_event(
                "POST",
                "/login-email-password",
                &spoofed,
                Some(&login_body(PASSWORD)),
            ),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(limited["statusCode"], 429, "{limited}");
    let mut elsewhere = http_api_event(
        "POST",
        "/login-email-password",
        &headers,
        Some(&login_body(PASSWORD)),
    );
    elsewhere["requestContext"]["http"]["sourceIp"] = "198.51.100.20".into();
    let other = api
        .invoke(elsewhere, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(other["statusCode"], 200, "{other}");

    let health = api
        .invoke(
            http_api_event("GET", "/health", &[], None),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(health["statusCode"], 200);
    assert_eq!(
        health["headers"]["x-content-type-options"], "nosniff",
        "{health}"
    );
    assert!(api.init_error().await.is_none());

    // Under Lambda, each request is one CloudWatch EMF line on stdout.
    child.start_kill().unwrap();
    let output = child.wait_with_output().await.unwrap();
    let emf: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|doc| doc.get("_aws").is_some())
        .collect();
    let statuses: Vec<&str> = emf
        .iter()
        .filter(|doc| doc["route"] == "/login-email-password")
        .filter_map(|doc| doc["status"].as_str())
        .collect();
    assert_eq!(statuses, ["200", "401", "429", "200"], "{emf:?}");
    let first = &emf[0];
    assert_eq!(first["_aws"]["CloudWatchMetrics"][0]["Namespace"], "gantry");
    assert_eq!(first["service"], "login");
    assert_eq!(first["method"], "POST");
    assert!(first["latency"].as_f64().unwrap() > 0.0);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn login_serves_plain_http_on_port(pool: PgPool) {
    let app = TestApp::new(pool.clone());
    app.register("ada@example.com").await;
    let (_child, base) = spawn_http(Path::new(BINARY), &function_env(&pool))
        .await
        .unwrap();
    let client = gantry_tests::http_client();
    let res = client
        .post(format!("{base}/login-email-password"))
        .header("content-type", "application/json")
        .body(login_body(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["expires_in"], 900);
    let missing = client.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    // Off Lambda, the function serves its own Prometheus text.
    let metrics = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(
        text.contains(r#"http_request_duration_seconds_count{route="/login-email-password",method="POST",status="200"} 1"#),
        "{text}"
    );
}
