//! The real `housekeeping` queue worker, driven by each trigger it is deployed with: an SQS
//! event through a Lambda Runtime API emulator (partial batch failures), and one message per
//! `POST /` over plain HTTP (OpenFaaS). The local gateway's trigger, the Postgres queue, is
//! tested in tests/tests/api/queue.rs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use gantry::queue::housekeeping::PURGE_EXPIRED;
use gantry_tests::lambda::{RuntimeApi, runtime_env, spawn, spawn_http, sqs_event};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::path::Path;
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_housekeeping");
const JOB_KEY: &str = "the stack's job signing key, 32+ characters";

fn function_env(pool: &PgPool) -> Vec<(&'static str, String)> {
    vec![
        ("DATABASE_URL", gantry_tests::database_url(pool)),
        ("JOB_SIGNING_KEY", JOB_KEY.to_owned()),
    ]
}

/// `X-Gantry-Signature` for delivering `body` as call `call`, as the outbox relay signs it.
fn signed(call: &str, body: &str) -> String {
    let env = gantry::config::Env::from_pairs([("JOB_SIGNING_KEY", JOB_KEY.to_owned())]);
    let key = gantry::queue::signing::JobKey::from_env(&env)
        .unwrap()
        .unwrap();
    key.sign(call, body.as_bytes(), gantry::queue::signing::now())
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn under_lambda_a_poisoned_message_is_a_batch_item_failure(pool: PgPool) {
    gantry_tests::seed_expired_rows(&pool).await;
    let api = RuntimeApi::start().await.unwrap();
    let mut env = function_env(&pool);
    env.extend(runtime_env(&api, "housekeeping"));
    let _child = spawn(Path::new(BINARY), &env).unwrap();

    let event = sqs_event(&[
        ("m-good", PURGE_EXPIRED),
        ("m-poison", "{\"task\":\"launch-missiles\"}"),
        ("m-garbage", "\u{0}"),
    ]);
    let response = api.invoke(event, Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        response,
        json!({"batchItemFailures": [
            {"itemIdentifier": "m-poison"},
            {"itemIdentifier": "m-garbage"}
        ]}),
        "only the failed messages are reported, so SQS redelivers only those"
    );
    gantry_tests::assert_only_live_rows_remain(&pool).await;

    // Redelivered (SQS retries it until maxReceiveCount, then dead-letters it): it fails again,
    // and a batch of good messages reports nothing.
    let again = api
        .invoke(sqs_event(&[("m-poison", "nope")]), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(again["batchItemFailures"][0]["itemIdentifier"], "m-poison");
    let clean = api
        .invoke(
            sqs_event(&[("m-2", PURGE_EXPIRED)]),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(clean, json!({"batchItemFailures": []}));
    assert!(api.init_error().await.is_none());
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn over_http_each_post_is_one_message(pool: PgPool) {
    gantry_tests::seed_expired_rows(&pool).await;
    let (_child, base) = spawn_http(Path::new(BINARY), &function_env(&pool))
        .await
        .unwrap();
    let client = gantry_tests::http_client();
    let post = |call: &'static str, body: &'static str| {
        client
            .post(format!("{base}/"))
            .header("x-call-id", call)
            .header("x-gantry-signature", signed(call, body))
            .body(body)
            .send()
    };

    // Unsigned, or another call's signature: 401, and nothing runs.
    let unsigned = client
        .post(format!("{base}/"))
        .header("x-call-id", "call-0")
        .body(PURGE_EXPIRED)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    let borrowed = client
        .post(format!("{base}/"))
        .header("x-call-id", "call-0")
        .header("x-gantry-signature", signed("call-1", PURGE_EXPIRED))
        .body(PURGE_EXPIRED)
        .send()
        .await
        .unwrap();
    assert_eq!(borrowed.status(), 401);

    let done = post("call-1", PURGE_EXPIRED).await.unwrap();
    assert_eq!(done.status(), 204);
    gantry_tests::assert_only_live_rows_remain(&pool).await;
    assert_eq!(
        post("call-1", PURGE_EXPIRED).await.unwrap().status(),
        401,
        "a replay"
    );

    // A message that can never succeed: 422, so the queue worker does not retry it.
    let dropped = post("call-2", "{\"task\":\"launch-missiles\"}")
        .await
        .unwrap();
    assert_eq!(dropped.status(), 422);
    assert_eq!(
        dropped.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = dropped.json().await.unwrap();
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not a housekeeping task")
    );

    // The cron connector's tick (an empty body, unsigned) runs the scheduled message.
    gantry_tests::seed_expired_rows_again(&pool).await;
    let tick = client.post(format!("{base}/")).send().await.unwrap();
    assert_eq!(tick.status(), 204);
    gantry_tests::assert_only_live_rows_remain(&pool).await;
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn over_http_a_database_outage_asks_for_a_retry(pool: PgPool) {
    // A server nobody listens on: the job fails transiently.
    let env = vec![
        (
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/nowhere".to_owned(),
        ),
        ("JOB_SIGNING_KEY", JOB_KEY.to_owned()),
    ];
    drop(pool);
    let (_child, base) = spawn_http(Path::new(BINARY), &env).await.unwrap();
    let res = gantry_tests::http_client()
        .post(format!("{base}/"))
        .header("x-call-id", "call-1")
        .header("x-gantry-signature", signed("call-1", PURGE_EXPIRED))
        .body(PURGE_EXPIRED)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503, "a transient failure is retried later");
}

/// Over HTTP a worker without JOB_SIGNING_KEY would take anybody's jobs: it does not start.
#[tokio::test]
async fn over_http_a_worker_without_a_signing_key_does_not_start() {
    let env = vec![(
        "DATABASE_URL",
        "postgres://postgres@127.0.0.1:1/nowhere".to_owned(),
    )];
    let mut child = gantry_tests::lambda::spawn(Path::new(BINARY), &env).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("it exits")
        .unwrap();
    assert!(!status.success());
}
