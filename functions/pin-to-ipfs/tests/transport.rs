//! The real `pin-to-ipfs` binary under a Lambda Runtime API emulator: API Gateway's base64
//! bodies arrive byte for byte in the S3 blockstore (the moto server), and a disk blockstore,
//! which would not outlive the instance, is refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use base64::Engine;
use gantry::ipfs::s3::S3Blocks;
use gantry::ipfs::store::{Blockstore, read};
use gantry_tests::TestApp;
use gantry_tests::lambda::{RuntimeApi, http_api_event, runtime_env, spawn, spawn_capturing};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::path::Path;
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_pin-to-ipfs");

/// What the function gets besides Lambda's own variables: the database, the keys that verify
/// `app`'s tokens, and `extra`.
fn function_env(app: &TestApp, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("DATABASE_URL", gantry_tests::database_url(&app.pool)),
        (
            "JWT_PUBLIC_KEYS",
            json!({"keys": [app.key.public_jwk()]}).to_string(),
        ),
        ("JWT_ISSUER", gantry_tests::ISSUER.to_owned()),
        ("JWT_AUDIENCE", gantry_tests::AUDIENCE.to_owned()),
    ];
    env.extend_from_slice(extra);
    env
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_base64_body_from_api_gateway_is_stored_byte_for_byte(pool: PgPool) {
    let Some((bucket, s3_env)) = gantry_tests::moto_bucket().await else {
        return;
    };
    let app = TestApp::new(pool);
    let (_, token) = app.user_with_role("staff@example.com", "STAFF").await;
    let api = RuntimeApi::start().await.unwrap();
    let mut env = function_env(&app, &s3_env);
    env.extend(runtime_env(&api, "pin-to-ipfs"));
    let _child = spawn(Path::new(BINARY), &env).unwrap();

    // Not UTF-8, and two chunks: API Gateway sends such a body base64-encoded.
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let bearer = format!("Bearer {token}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/octet-stream"),
    ];
    let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let mut event = http_api_event("POST", "/ipfs", &headers, Some(&encoded));
    event["isBase64Encoded"] = json!(true);
    let response = api.invoke(event, Duration::from_secs(30)).await.unwrap();
    assert_eq!(response["statusCode"], 201, "{response}");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    let file = gantry::ipfs::import(&bytes);
    assert_eq!(body["cid"], file.root.to_string().as_str());
    assert_eq!(body["size"], 300_000);

    // What the bucket holds reads back, verified, as the bytes that were sent.
    let store = Blockstore(S3Blocks::new(bucket, "blocks/".into()));
    assert_eq!(read(&store, &file.root).await.unwrap(), Some(bytes));
    assert!(api.init_error().await.is_none());
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_disk_blockstore_is_refused_under_lambda(pool: PgPool) {
    let app = TestApp::new(pool);
    let api = RuntimeApi::start().await.unwrap();
    let mut env = function_env(&app, &[]);
    env.extend(runtime_env(&api, "pin-to-ipfs"));
    // IPFS_BACKEND is unset: the default, disk, is refused, and the process stops at start-up
    // (Lambda reports an init failure) naming the variable.
    let child = spawn_capturing(Path::new(BINARY), &env).unwrap();
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(!output.status.success());
    let logs = String::from_utf8_lossy(&output.stdout);
    assert!(
        logs.contains("IPFS_BACKEND") && logs.contains("refused under Lambda"),
        "{logs}"
    );
}
