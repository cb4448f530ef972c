//! The IPFS backends behind the API, each against a stand-in that answers as the real service
//! documents: Kubo RPC and a Pinning Service API (local stubs), and the S3 blockstore (the
//! moto server, started by scripts/test). Whatever a backend says, a wrong CID is a 502, an
//! unreachable backend a 503, and neither records anything.

use axum::http::StatusCode;
use gantry_tests::TestApp;
use serde_json::{Value, json};
use sqlx::PgPool;
use std::sync::{Arc, Mutex};

/// A port nothing listens on.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{address}")
}

/// A Kubo RPC stub: `/api/v0/add` answers `{"Name","Hash","Size"}` with the configured CID (as
/// Kubo's documentation shows it), `/api/v0/cat` the configured bytes.
async fn kubo_stub(hash: String, cat: Vec<u8>) -> String {
    use axum::routing::post;
    let app = axum::Router::new()
        .route(
            "/api/v0/add",
            post(move || {
                let hash = hash.clone();
                async move { axum::Json(json!({"Name": "file", "Hash": hash, "Size": "42"})) }
            }),
        )
        .route(
            "/api/v0/cat",
            post(move || {
                let cat = cat.clone();
                async move { cat }
            }),
        );
    serve(app).await
}

async fn objects(app: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM ipfs_objects")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// Posts a document that the backend must refuse: the status is `want`, and nothing is recorded.
async fn refused(app: &TestApp, token: &str, want: u16) {
    let before = objects(app).await;
    let res = app
        .post("/ipfs")
        .bearer(token)
        .raw(Some("text/plain"), "must not be recorded")
        .send()
        .await;
    res.problem(want);
    assert_eq!(objects(app).await, before, "nothing is recorded");
}

/// An app on the given IPFS settings, and a STAFF user's token.
async fn world(pool: PgPool, env: &[(&str, &str)]) -> (TestApp, String) {
    let app = TestApp::with(pool, env);
    let email = format!("staff-{}@example.com", uuid::Uuid::new_v4());
    let (_, staff) = app.user_with_role(&email, "STAFF").await;
    (app, staff)
}

async fn kubo_world(pool: PgPool, url: &str) -> (TestApp, String) {
    world(pool, &[("IPFS_BACKEND", "kubo"), ("IPFS_KUBO_URL", url)]).await
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn kubo_stores_documents_and_what_it_serves_is_verified(pool: PgPool) {
    let bytes = b"a document kept by Kubo".to_vec();
    let cid = gantry::ipfs::import(&bytes).root.to_string();
    let url = kubo_stub(cid.clone(), b"altered on the way".to_vec()).await;
    let (app, staff) = kubo_world(pool, &url).await;
    let res = app
        .post("/ipfs")
        .bearer(&staff)
        .raw(Some("text/plain"), bytes)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    assert_eq!(res.body["cid"], cid.as_str());
    // Kubo serves other bytes for it: a 502, never the altered bytes.
    let read = app.get(&format!("/ipfs/{cid}")).bearer(&staff).send().await;
    read.problem(502);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_kubo_that_reports_another_cid_records_nothing(pool: PgPool) {
    let wrong = gantry::ipfs::import(b"something else").root.to_string();
    let url = kubo_stub(wrong, Vec::new()).await;
    let (app, staff) = kubo_world(pool, &url).await;
    let before = objects(&app).await;
    let res = app
        .post("/ipfs")
        .bearer(&staff)
        .raw(Some("text/plain"), "the real content")
        .send()
        .await;
    res.problem(502);
    let created = app
        .post("/projects")
        .bearer(&staff)
        .json(&json!({"name": "Needs its metadata stored"}))
        .send()
        .await;
    created.problem(502);
    assert_eq!(objects(&app).await, before, "nothing is recorded");
    let projects: i64 = sqlx::query_scalar("SELECT count(*) FROM projects")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(projects, 0);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_kubo_that_is_down_is_a_503_and_records_nothing(pool: PgPool) {
    let (app, staff) = kubo_world(pool, &format!("http://127.0.0.1:{}", dead_port())).await;
    refused(&app, &staff, 503).await;
}

/// How the pinning stub behaves: the statuses it reports in turn (the first from `POST /pins`,
/// the rest from `GET /pins/{requestid}`, the last repeated), the CID it names (`None`: the
/// one asked for), and the requests it saw.
#[derive(Default)]
struct Pins {
    statuses: Vec<&'static str>,
    names: Option<String>,
    seen: Mutex<Vec<(String, Value)>>,
}

const TOKEN: &str = "pinning-secret";

/// A Pinning Service API stub: PinStatus objects as the specification shows them, 401 without
/// the bearer token.
async fn pinning_stub(pins: Arc<Pins>) -> String {
    use axum::extract::{Path, State};
    use axum::http::HeaderMap;
    use axum::routing::{get, post};
    fn status(pins: &Pins, n: usize, cid: &str) -> Value {
        let status = pins.statuses[n.min(pins.statuses.len() - 1)];
        json!({
            "requestid": "req-1/α", "status": status, "created": "2026-12-02T10:00:00Z",
            "pin": {"cid": pins.names.clone().unwrap_or_else(|| cid.to_owned())},
            "delegates": ["/dns4/pins.example/tcp/4001/p2p/12D3KooWExample"], "info": {}
        })
    }
    fn authorized(headers: &HeaderMap) -> bool {
        headers.get("authorization").and_then(|v| v.to_str().ok())
            == Some(&format!("Bearer {TOKEN}"))
    }
    let app = axum::Router::new()
        .route(
            "/api/pins",
            post(
                |State(pins): State<Arc<Pins>>, headers: HeaderMap, body: axum::Json<Value>| async move {
                    if !authorized(&headers) {
                        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": {"reason": "UNAUTHORIZED"}})));
                    }
                    let cid = body["cid"].as_str().unwrap_or_default().to_owned();
                    pins.seen.lock().unwrap().push(("POST".into(), body.0));
                    (StatusCode::ACCEPTED, axum::Json(status(&pins, 0, &cid)))
                },
            ),
        )
        .route(
            "/api/pins/{id}",
            get(
                |State(pins): State<Arc<Pins>>, headers: HeaderMap, Path(id): Path<String>| async move {
                    if !authorized(&headers) {
                        return (StatusCode::UNAUTHORIZED, axum::Json(json!({})));
                    }
                    let mut seen = pins.seen.lock().unwrap();
                    let cid = seen[0].1["cid"].as_str().unwrap_or_default().to_owned();
                    seen.push(("GET".into(), json!(id)));
                    let n = seen.len() - 1;
                    (StatusCode::OK, axum::Json(status(&pins, n, &cid)))
                },
            ),
        )
        .with_state(pins);
    serve(app).await
}

async fn pinning_world(pool: PgPool, url: &str, token: &str, wait: &str) -> (TestApp, String) {
    let dir = std::env::temp_dir().join(format!("gantry-pins-{}", uuid::Uuid::new_v4()));
    let dir = dir.to_string_lossy().into_owned();
    world(
        pool,
        &[
            ("IPFS_BLOCKSTORE_DIR", dir.as_str()),
            ("IPFS_PINNING_URL", url),
            ("IPFS_PINNING_TOKEN", token),
            (
                "IPFS_PINNING_ORIGINS",
                "/ip4/10.0.0.5/tcp/4001/p2p/12D3KooWOrigin",
            ),
            ("IPFS_PINNING_WAIT_SECS", wait),
        ],
    )
    .await
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_pinning_service_pins_what_the_backend_holds(pool: PgPool) {
    let pins = Arc::new(Pins {
        statuses: vec!["queued", "pinning", "pinned"],
        ..Pins::default()
    });
    let url = pinning_stub(pins.clone()).await;
    let (app, staff) = pinning_world(pool, &format!("{url}/api/"), TOKEN, "5").await;
    let bytes = b"pinned for good".to_vec();
    let cid = gantry::ipfs::import(&bytes).root.to_string();
    let res = app
        .post("/ipfs")
        .bearer(&staff)
        .raw(Some("text/plain"), bytes.clone())
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    assert_eq!(res.body["cid"], cid.as_str());
    assert_eq!(res.body["pinned"], true);
    let seen = pins.seen.lock().unwrap().clone();
    assert_eq!(seen[0].0, "POST");
    assert_eq!(seen[0].1["cid"], cid.as_str());
    assert_eq!(
        seen[0].1["origins"],
        json!(["/ip4/10.0.0.5/tcp/4001/p2p/12D3KooWOrigin"])
    );
    // Followed until pinned, the request id escaped as one path segment.
    assert_eq!(
        seen[1..],
        [
            ("GET".to_owned(), json!("req-1/α")),
            ("GET".to_owned(), json!("req-1/α"))
        ]
    );
    // The bytes are read from the backend that holds them.
    let read = app.get(&format!("/ipfs/{cid}")).bearer(&staff).send().await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.raw, bytes);
}

/// The pin-follow-up worker, as deployed from the function table, on `app`'s settings.
fn follow_up(app: &TestApp) -> Arc<dyn gantry::queue::JobHandler> {
    let gantry::function::Trigger::Queue { build, .. } = gantry::work::pins::PIN_FOLLOW_UP.trigger
    else {
        panic!("pin-follow-up is a queue worker");
    };
    build(&app.platform).unwrap()
}

/// Runs the follow-up job the upload enqueued.
async fn follow(app: &TestApp) -> Result<(), gantry::queue::JobError> {
    let body: String =
        sqlx::query_scalar("SELECT body FROM queue_messages WHERE queue = 'pin-follow-up'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let job = gantry::queue::Job {
        id: "follow".into(),
        body,
        attempt: 1,
    };
    follow_up(app).handle(&job).await
}

async fn pin_state(app: &TestApp) -> (String, Option<String>) {
    sqlx::query_as("SELECT state::text, detail FROM ipfs_pin_requests")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_pin_still_queued_after_the_wait_is_followed_by_a_job_until_pinned(pool: PgPool) {
    let pins = Arc::new(Pins {
        statuses: vec!["queued", "queued", "pinned"],
        ..Pins::default()
    });
    let url = pinning_stub(pins.clone()).await;
    let (app, staff) = pinning_world(pool, &format!("{url}/api"), TOKEN, "0").await;
    let res = app
        .post("/ipfs")
        .bearer(&staff)
        .raw(Some("text/plain"), "on its way")
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    assert_eq!(res.body["pinned"], false);
    assert_eq!(objects(&app).await, 1, "stored, and recorded");
    assert_eq!(pin_state(&app).await.0, "QUEUED");

    // Still queued: the job comes back later, spending no attempt.
    let result = follow(&app).await;
    assert!(
        matches!(result, Err(gantry::queue::JobError::Later(_))),
        "{result:?}"
    );
    follow(&app).await.unwrap();
    assert_eq!(pin_state(&app).await, ("PINNED".to_owned(), None));
    // Redelivered: nothing more is asked.
    let asked = pins.seen.lock().unwrap().len();
    follow(&app).await.unwrap();
    assert_eq!(pins.seen.lock().unwrap().len(), asked);
    assert_eq!(
        pins.seen.lock().unwrap()[1],
        ("GET".to_owned(), json!("req-1/α"))
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_followed_pin_that_fails_is_recorded_as_failed(pool: PgPool) {
    let pins = Arc::new(Pins {
        statuses: vec!["queued", "failed"],
        ..Pins::default()
    });
    let url = pinning_stub(pins).await;
    let (app, staff) = pinning_world(pool, &format!("{url}/api"), TOKEN, "0").await;
    let res = app
        .post("/ipfs")
        .bearer(&staff)
        .raw(Some("text/plain"), "will fail")
        .send()
        .await;
    assert_eq!(res.body["pinned"], false, "{}", res.body);
    follow(&app).await.unwrap();
    let (state, detail) = pin_state(&app).await;
    assert_eq!(state, "FAILED");
    assert!(detail.unwrap().contains("failed"));
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_pinning_service_that_fails_names_another_cid_or_is_down_records_nothing(pool: PgPool) {
    let other = gantry::ipfs::import(b"something else").root.to_string();
    let cases = [
        (vec!["queued", "failed"], None, TOKEN, 502),
        (vec!["pinned"], Some(other), TOKEN, 502),
        (vec!["pinned"], Some("not a cid".to_owned()), TOKEN, 502),
        (vec!["pinned"], None, "a wrong token", 502),
    ];
    for (statuses, names, token, want) in cases {
        let pins = Arc::new(Pins {
            statuses,
            names,
            ..Pins::default()
        });
        let url = pinning_stub(pins).await;
        let (app, staff) = pinning_world(pool.clone(), &format!("{url}/api"), token, "5").await;
        refused(&app, &staff, want).await;
    }
    let down = format!("http://127.0.0.1:{}/api", dead_port());
    let (app, staff) = pinning_world(pool, &down, TOKEN, "5").await;
    refused(&app, &staff, 503).await;
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn the_s3_blockstore_keeps_blocks_by_cid_and_reads_them_back_verified(pool: PgPool) {
    let Some((bucket, env)) = gantry_tests::moto_bucket().await else {
        return;
    };
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (app, staff) = world(pool, &env).await;
    // Three leaves and their root: a multi-block DAG.
    let bytes: Vec<u8> = (0..700_000u32).map(|i| (i % 251) as u8).collect();
    let file = gantry::ipfs::import(&bytes);
    let res = app
        .post("/ipfs")
        .bearer(&staff)
        .raw(Some("application/pdf"), bytes.clone())
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    assert_eq!(res.body["cid"], file.root.to_string().as_str());
    for (cid, block) in &file.blocks {
        let kept = bucket.get(&format!("blocks/{cid}")).await.unwrap();
        assert_eq!(
            kept.as_ref(),
            Some(block),
            "one object per block, keyed by CID"
        );
    }

    let read = app
        .get(&format!("/ipfs/{}", file.root))
        .bearer(&staff)
        .send()
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.raw, bytes);
    let unknown = gantry::ipfs::import(b"never stored").root;
    assert_eq!(
        bucket.get(&format!("blocks/{unknown}")).await.unwrap(),
        None
    );

    // A block altered in the bucket: the read fails rather than serve other bytes.
    let (leaf, _) = &file.blocks[1];
    bucket
        .put(&format!("blocks/{leaf}"), b"tampered".to_vec())
        .await
        .unwrap();
    let read = app
        .get(&format!("/ipfs/{}", file.root))
        .bearer(&staff)
        .send()
        .await;
    read.problem(502);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_missing_bucket_is_a_503_and_records_nothing(pool: PgPool) {
    let Some((_, env)) = gantry_tests::moto_bucket().await else {
        return;
    };
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("IPFS_S3_BUCKET", "gantry-no-such-bucket"));
    let (app, staff) = world(pool, &env).await;
    refused(&app, &staff, 503).await;
}
