//! The HTTP edge: CORS from the allow-list, security headers on every response, metrics.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use gantry::edge::{EdgeConfig, Metrics};
use gantry_tests::TestApp;
use http_body_util::BodyExt;
use sqlx::PgPool;
use tower::ServiceExt;

const APP: &str = "https://app.example.com";

fn cors_app(pool: PgPool) -> TestApp {
    TestApp::with(
        pool,
        &[(
            "CORS_ALLOWED_ORIGINS",
            "https://app.example.com, http://localhost:5173",
        )],
    )
}

fn assert_security_headers(headers: &HeaderMap, hsts: &str) {
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
    assert_eq!(headers[header::STRICT_TRANSPORT_SECURITY], hsts);
}

const TWO_YEARS: &str = "max-age=63072000; includeSubDomains";

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn an_allowed_origin_gets_cors_headers(pool: PgPool) {
    let app = cors_app(pool);
    let res = app
        .post("/auth/nonce")
        .header("origin", APP)
        .json(&serde_json::json!({}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert_eq!(res.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], APP);
    assert!(
        !res.headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_CREDENTIALS),
        "tokens travel in headers, never cookies"
    );
    let exposed = res.headers[header::ACCESS_CONTROL_EXPOSE_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("retry-after"), "{exposed}");
    let vary = res.headers.get_all(header::VARY).iter().count();
    assert!(vary > 0, "responses vary by Origin");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_refused_origin_gets_no_cors_headers(pool: PgPool) {
    let app = cors_app(pool);
    let res = app
        .post("/auth/nonce")
        .header("origin", "https://evil.example")
        .json(&serde_json::json!({}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    assert!(
        !res.headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );

    let preflight = app
        .request(Method::OPTIONS, "/login-blockchain")
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await;
    assert!(
        !preflight
            .headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_preflight_names_the_methods_and_headers_the_route_takes(pool: PgPool) {
    let app = cors_app(pool);
    let preflight = |path: &'static str, method: &'static str| {
        app.request(Method::OPTIONS, path)
            .header("origin", "http://localhost:5173")
            .header("access-control-request-method", method)
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let res = preflight("/login-blockchain", "POST").await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "http://localhost:5173"
    );
    assert_eq!(res.headers[header::ACCESS_CONTROL_ALLOW_METHODS], "POST");
    let allowed = res.headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));
    assert_eq!(res.headers[header::ACCESS_CONTROL_MAX_AGE], "600");
    assert_security_headers(&res.headers, TWO_YEARS);

    // The users function takes GET (/users) and PUT (/users/{id}/role).
    let res = preflight("/users", "GET").await;
    assert_eq!(res.headers[header::ACCESS_CONTROL_ALLOW_METHODS], "GET,PUT");
    // A method the route does not take is still answered 405 outside a preflight.
    app.request(Method::DELETE, "/users")
        .header("origin", APP)
        .send()
        .await
        .problem(405);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn without_an_allow_list_there_is_no_cors(pool: PgPool) {
    let app = TestApp::new(pool);
    let res = app
        .request(Method::OPTIONS, "/login-blockchain")
        .header("origin", APP)
        .header("access-control-request-method", "POST")
        .send()
        .await;
    assert!(
        !res.headers
            .contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
    );
    res.problem(405);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn security_headers_are_on_successes_and_client_errors(pool: PgPool) {
    let app = TestApp::new(pool);
    let ok = app.register("headers@example.com").await;
    assert!(ok["access_token"].is_string());
    let res = app.get("/profile").send().await;
    res.problem(401);
    assert_security_headers(&res.headers, TWO_YEARS);
    assert_eq!(res.headers[header::CACHE_CONTROL], "no-store");
    let res = app
        .post("/login-email-password")
        .json(&serde_json::json!({"email": "headers@example.com", "password": gantry_tests::PASSWORD}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_security_headers(&res.headers, TWO_YEARS);
    assert_eq!(res.headers[header::CACHE_CONTROL], "no-store");
    // The public key set may be cached; it keeps its own Cache-Control.
    let res = app.get("/.well-known/jwks.json").send().await;
    assert_eq!(res.headers[header::CACHE_CONTROL], "public, max-age=300");
    assert_security_headers(&res.headers, TWO_YEARS);
}

async fn call(router: &Router, method: Method, path: &str) -> (StatusCode, HeaderMap, String) {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

#[tokio::test]
async fn server_errors_carry_the_headers_and_are_measured() {
    let config = EdgeConfig {
        cors_allowed_origins: Vec::new(),
        hsts_max_age: 300,
    };
    let metrics = Metrics::prometheus();
    let routes = Router::new().route(
        "/boom/{id}",
        axum::routing::get(|| async {
            if true {
                panic!("a handler bug");
            }
        }),
    );
    let router = gantry::runtime::finish(routes, &config, &metrics);
    let (status, headers, _) = call(&router, Method::GET, "/boom/7").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(headers[header::CONTENT_TYPE], "application/problem+json");
    assert_security_headers(&headers, "max-age=300; includeSubDomains");
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    let (status, headers, _) = call(&router, Method::GET, "/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_security_headers(&headers, "max-age=300; includeSubDomains");

    let (status, headers, text) = call(&router, Method::GET, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    // Labelled by the route template, never the raw path; unknown paths share one label.
    assert!(
        text.contains(
            r#"http_request_duration_seconds_count{route="/boom/{id}",method="GET",status="500"} 1"#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"http_request_duration_seconds_count{route="unmatched",method="GET",status="404"} 1"#
        ),
        "{text}"
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn hsts_can_be_turned_off_for_plain_http(pool: PgPool) {
    let app = TestApp::with(pool, &[("HSTS_MAX_AGE", "0")]);
    let res = app.get("/health").send().await;
    assert!(!res.headers.contains_key(header::STRICT_TRANSPORT_SECURITY));
    assert_eq!(res.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn the_gateway_counts_requests_by_route(pool: PgPool) {
    let app = TestApp::new(pool);
    let metrics = Metrics::prometheus();
    let router = gantry_tests::gateway_with(&app.platform, &metrics);
    for _ in 0..2 {
        let (status, _, _) = call(&router, Method::GET, "/profile").await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let text = metrics.render().unwrap();
    assert!(
        text.contains(
            r#"http_request_duration_seconds_count{route="/profile",method="GET",status="401"} 2"#
        ),
        "{text}"
    );
}

/// A client that goes away mid-request must not leave a pooled connection inside a transaction
/// (sqlx 0.9.0 does when a future is dropped during its `BEGIN`: transact-rs/sqlx#4393). The
/// edge runs every request to the end on its own task. Requests are dropped at many points of
/// a transactional update; afterwards no connection of the test database is idle in a
/// transaction, and every dropped update still committed with its audit row.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_request_dropped_mid_transaction_leaves_no_connection_in_it(pool: PgPool) {
    use std::time::{Duration, Instant};
    let app = TestApp::new(pool.clone());
    let (_, staff) = app.user_with_role("staff@example.com", "STAFF").await;
    let project = app
        .post("/projects")
        .bearer(&staff)
        .json(&serde_json::json!({"name": "Cancelled"}))
        .send()
        .await
        .str("id");
    let task = app
        .post(&format!("/projects/{project}/tasks"))
        .bearer(&staff)
        .json(&serde_json::json!({"title": "t"}))
        .send()
        .await
        .str("id");
    let update = |n: u32| {
        app.put(&format!("/tasks/{task}"))
            .bearer(&staff)
            .json(&serde_json::json!({"title": format!("t{n}")}))
            .send()
    };
    let started = Instant::now();
    assert_eq!(update(0).await.status, StatusCode::OK);
    let whole = started.elapsed();
    let tries = 150u32;
    for n in 1..=tries {
        let after = whole * n / tries;
        let _ = tokio::time::timeout(after, update(n)).await;
    }
    let stuck = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
               AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
    };
    // The detached requests finish on their own; give them a moment.
    let mut left = stuck().await;
    for _ in 0..50 {
        if left == 0 && app.audit_count("task.updated").await == i64::from(tries) + 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        left = stuck().await;
    }
    assert_eq!(left, 0, "connections left inside a transaction");
    assert_eq!(app.audit_count("task.updated").await, i64::from(tries) + 1);
}
