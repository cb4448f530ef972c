//! The outbox relay: what a committed change enqueued reaches the deployment's transport (SQS on
//! the moto server, OpenFaaS's async gateway on a stub) exactly as due, each row once, and
//! nothing is lost when the transport is down or refuses part of a batch.

use async_trait::async_trait;
use gantry::config::Env;
use gantry::db::Db;
use gantry::queue::{JobError, enqueue};
use gantry::queue::{Outgoing, Sender};
use gantry::relay::Relay;
use sqlx::PgPool;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// Records what it is given; accepts all, none (down), or all but bodies named `refused`.
#[derive(Default)]
struct Recording {
    sent: Mutex<Vec<Outgoing>>,
    down: bool,
    horizon: Duration,
}

#[async_trait]
impl Sender for Recording {
    fn horizon(&self) -> Duration {
        self.horizon
    }

    async fn send(&self, batch: &[Outgoing]) -> anyhow::Result<Vec<Uuid>> {
        if self.down {
            anyhow::bail!("the transport is down");
        }
        let accepted = batch.iter().filter(|m| m.body != "refused");
        let ids = accepted.clone().map(|m| m.id).collect();
        self.sent.lock().unwrap().extend(accepted.cloned());
        Ok(ids)
    }
}

async fn outbox(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar("SELECT body FROM queue_messages ORDER BY body")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn put(pool: &PgPool, queue: &str, body: &str, delay: Duration) {
    let mut tx = pool.begin().await.unwrap();
    enqueue(&mut tx, queue, body, delay).await.unwrap();
    tx.commit().await.unwrap();
}

fn relay(pool: &PgPool, sender: Arc<Recording>) -> Relay {
    Relay::new(Db::new(Some(pool.clone())), Some(sender))
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn locally_the_outbox_is_the_queue_and_nothing_is_relayed(pool: PgPool) {
    put(&pool, "jobs", "a", Duration::ZERO).await;
    let local = Relay::from_env(
        Db::new(Some(pool.clone())),
        &Env::from_pairs::<&str, &str>([]),
    )
    .unwrap();
    assert_eq!(local.relay().await.unwrap(), 0);
    assert_eq!(outbox(&pool).await, ["a"], "left for the local worker");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn due_rows_are_sent_with_their_delay_and_later_ones_wait(pool: PgPool) {
    put(&pool, "jobs", "now", Duration::ZERO).await;
    put(&pool, "jobs", "in a minute", Duration::from_secs(60)).await;
    put(&pool, "watch", "in an hour", Duration::from_secs(3600)).await;
    let sender = Arc::new(Recording {
        horizon: Duration::from_secs(900),
        ..Recording::default()
    });
    assert_eq!(relay(&pool, sender.clone()).relay().await.unwrap(), 2);
    let sent = sender.sent.lock().unwrap().clone();
    let delays: Vec<(String, u64)> = sent
        .iter()
        .map(|m| (m.body.clone(), m.delay.as_secs_f64().round() as u64))
        .collect();
    assert_eq!(delays[0], ("now".into(), 0));
    assert_eq!(delays[1].0, "in a minute");
    assert!((58..=60).contains(&delays[1].1), "{delays:?}");
    assert!(sent.iter().all(|m| m.queue == "jobs"));
    assert_eq!(outbox(&pool).await, ["in an hour"], "beyond the horizon");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_transport_that_is_down_loses_nothing(pool: PgPool) {
    put(&pool, "jobs", "a", Duration::ZERO).await;
    put(&pool, "jobs", "b", Duration::ZERO).await;
    let down = Arc::new(Recording {
        down: true,
        ..Recording::default()
    });
    assert!(matches!(
        relay(&pool, down).relay().await,
        Err(JobError::Retry(_))
    ));
    assert_eq!(outbox(&pool).await, ["a", "b"]);
    let up = Arc::new(Recording::default());
    assert_eq!(relay(&pool, up.clone()).relay().await.unwrap(), 2);
    assert!(outbox(&pool).await.is_empty());
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_refused_message_stays_and_the_rest_go(pool: PgPool) {
    for body in ["a", "refused", "c"] {
        put(&pool, "jobs", body, Duration::ZERO).await;
    }
    let sender = Arc::new(Recording::default());
    assert!(matches!(
        relay(&pool, sender.clone()).relay().await,
        Err(JobError::Retry(_))
    ));
    assert_eq!(outbox(&pool).await, ["refused"]);
    assert_eq!(sender.sent.lock().unwrap().len(), 2);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn concurrent_relays_send_each_row_once(pool: PgPool) {
    for n in 0..45 {
        put(&pool, "jobs", &format!("job {n:02}"), Duration::ZERO).await;
    }
    let sender = Arc::new(Recording::default());
    let runs = (0..4).map(|_| {
        let relay = relay(&pool, sender.clone());
        tokio::spawn(async move { relay.relay().await.map_err(|e| e.to_string()) })
    });
    let mut total = 0;
    for run in futures::future::join_all(runs).await {
        total += run.unwrap().unwrap();
    }
    assert_eq!(total, 45);
    let sent = sender.sent.lock().unwrap().clone();
    let distinct: BTreeSet<&str> = sent.iter().map(|m| m.body.as_str()).collect();
    assert_eq!((sent.len(), distinct.len()), (45, 45), "each row sent once");
    assert!(outbox(&pool).await.is_empty());
}

const JOB_KEY: &str = "a job signing key of at least 32 characters";

/// Counts the jobs it is given; fails the ones whose body is `fail`.
#[derive(Default)]
struct Counting {
    bodies: Mutex<Vec<String>>,
}

#[async_trait]
impl gantry::queue::JobHandler for Counting {
    async fn handle(&self, job: &gantry::queue::Job) -> Result<(), JobError> {
        self.bodies.lock().unwrap().push(job.body.clone());
        if job.body == "fail" {
            return Err(JobError::Retry(anyhow::anyhow!("down for now")));
        }
        Ok(())
    }
}

/// A worker over HTTP, as OpenFaaS runs it (`POST /`), with `JOB_SIGNING_KEY` = `key`.
fn worker(pool: &PgPool, handler: Arc<Counting>, key: &str, scheduled: bool) -> axum::Router {
    let env = Env::from_pairs([("JOB_SIGNING_KEY", key.to_owned())]);
    let key = gantry::queue::signing::JobKey::from_env(&env)
        .unwrap()
        .unwrap();
    let guard = gantry::queue::signing::JobGuard::new(key, Db::new(Some(pool.clone())), "jobs");
    let schedule = scheduled.then_some(gantry::function::Schedule {
        minutes: 1,
        body: "scheduled",
        local_every: None,
        timeout_secs: None,
    });
    gantry::runtime::job_router(handler, schedule, guard)
}

/// Posts a job to `worker` with these headers; the status.
async fn deliver(worker: &axum::Router, headers: &[(&str, &str)], body: &str) -> u16 {
    use tower::ServiceExt;
    let mut request = axum::http::Request::post("/");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(axum::body::Body::from(body.to_owned()))
        .unwrap();
    worker
        .clone()
        .oneshot(request)
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// OpenFaaS gets one async invocation per due row, signed; the worker takes each signed delivery
/// once and refuses a forged, altered or replayed one (401), and a failed delivery may come
/// again. The cron connector's empty tick needs no signature.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn openfaas_jobs_are_signed_and_a_worker_takes_each_delivery_once(pool: PgPool) {
    use wiremock::matchers::{body_string, header_exists, method, path};
    let gateway = wiremock::MockServer::start().await;
    wiremock::Mock::given(method("POST"))
        .and(path("/async-function/housekeeping"))
        .and(body_string(r#"{"task":"purge-expired"}"#))
        .and(header_exists("x-call-id"))
        .and(header_exists("x-gantry-signature"))
        .respond_with(wiremock::ResponseTemplate::new(202))
        .expect(1)
        .mount(&gateway)
        .await;
    put(
        &pool,
        "housekeeping",
        r#"{"task":"purge-expired"}"#,
        Duration::ZERO,
    )
    .await;
    put(&pool, "housekeeping", "not yet", Duration::from_secs(30)).await;
    let unsigned = Env::from_pairs([("OPENFAAS_GATEWAY_URL", gateway.uri())]);
    let refused = Relay::from_env(Db::new(Some(pool.clone())), &unsigned).err();
    assert!(
        refused.is_some_and(|e| e.to_string().contains("JOB_SIGNING_KEY")),
        "the relay never sends unsigned jobs to OpenFaaS"
    );
    let env = Env::from_pairs([
        ("OPENFAAS_GATEWAY_URL", gateway.uri()),
        ("JOB_SIGNING_KEY", JOB_KEY.to_owned()),
    ]);
    let relay = Relay::from_env(Db::new(Some(pool.clone())), &env).unwrap();
    assert_eq!(relay.relay().await.unwrap(), 1);
    assert_eq!(outbox(&pool).await, ["not yet"], "OpenFaaS takes no delay");

    // What the relay sent, delivered to the worker as OpenFaaS would.
    let sent = gateway.received_requests().await.unwrap();
    let header = |name: &str| {
        sent[0]
            .headers
            .get(name)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned()
    };
    let (call, signature) = (header("x-call-id"), header("x-gantry-signature"));
    let body = String::from_utf8(sent[0].body.clone()).unwrap();
    let handler = Arc::new(Counting::default());
    let worker = worker(&pool, handler.clone(), JOB_KEY, true);
    let signed = [
        ("x-call-id", call.as_str()),
        ("x-gantry-signature", signature.as_str()),
    ];
    assert_eq!(deliver(&worker, &signed, &body).await, 204);
    assert_eq!(deliver(&worker, &signed, &body).await, 401, "a replay");

    // Forged: unsigned, signed with another key, or another body under its signature.
    let other = gantry::queue::signing::JobKey::from_env(&Env::from_pairs([(
        "JOB_SIGNING_KEY",
        "another key, also 32 characters or more".to_owned(),
    )]))
    .unwrap()
    .unwrap();
    let now = gantry::queue::signing::now();
    let forged = other.sign("call-2", br#"{"payout_id":"x"}"#, now);
    let forgeries: [(&[(&str, &str)], &str); 4] = [
        (&[("x-call-id", "call-2")], r#"{"payout_id":"x"}"#),
        (
            &[
                ("x-call-id", "call-2"),
                ("x-gantry-signature", forged.as_str()),
            ],
            r#"{"payout_id":"x"}"#,
        ),
        (
            &[
                ("x-call-id", "call-3"),
                ("x-gantry-signature", signature.as_str()),
            ],
            &body,
        ),
        (&signed, r#"{"payout_id":"x"}"#),
    ];
    for (headers, body) in forgeries {
        assert_eq!(
            deliver(&worker, headers, body).await,
            401,
            "{headers:?} {body}"
        );
    }
    let stale = worker_key().sign(
        "call-4",
        b"old",
        now - gantry::queue::signing::TOLERANCE_SECS - 1,
    );
    assert_eq!(
        deliver(
            &worker,
            &[
                ("x-call-id", "call-4"),
                ("x-gantry-signature", stale.as_str())
            ],
            "old"
        )
        .await,
        401
    );
    assert_eq!(
        *handler.bodies.lock().unwrap(),
        [body],
        "only the signed job ran"
    );

    // A delivery that failed may be delivered again; the scheduled tick needs no signature.
    let failing = worker_key().sign("call-5", b"fail", now);
    let call5 = [
        ("x-call-id", "call-5"),
        ("x-gantry-signature", failing.as_str()),
    ];
    assert_eq!(deliver(&worker, &call5, "fail").await, 503);
    assert_eq!(
        deliver(&worker, &call5, "fail").await,
        503,
        "redelivered after a failure"
    );
    assert_eq!(deliver(&worker, &[], "").await, 204);
    assert_eq!(
        handler.bodies.lock().unwrap().last().map(String::as_str),
        Some("scheduled")
    );
}

fn worker_key() -> gantry::queue::signing::JobKey {
    gantry::queue::signing::JobKey::from_env(&Env::from_pairs([(
        "JOB_SIGNING_KEY",
        JOB_KEY.to_owned(),
    )]))
    .unwrap()
    .unwrap()
}

/// Deployed, "not yet" becomes a new delayed message: a job delivered twice (at once, or one
/// after the other) defers once, so no second polling chain starts.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_job_delivered_twice_is_deferred_once(pool: PgPool) {
    struct NotYet;
    #[async_trait]
    impl gantry::queue::JobHandler for NotYet {
        async fn handle(&self, _: &gantry::queue::Job) -> Result<(), JobError> {
            Err(JobError::Later(Duration::from_secs(15)))
        }
    }
    let deferring = Arc::new(gantry::queue::Deferring::new(
        Arc::new(NotYet),
        Db::new(Some(pool.clone())),
        "chain-monitor",
    ));
    let job = |id: &str| gantry::queue::Job {
        id: id.to_owned(),
        body: r#"{"payment_id":"01a24240-0000-7000-8000-000000000001"}"#.to_owned(),
        attempt: 1,
    };
    use gantry::queue::JobHandler;
    let (first, second) = (job("a"), job("b"));
    let (a, b) = tokio::join!(deferring.handle(&first), deferring.handle(&second));
    a.unwrap();
    b.unwrap();
    deferring.handle(&job("c")).await.unwrap();
    assert_eq!(
        outbox(&pool).await.len(),
        1,
        "one waiting message for the payment"
    );
}

/// A client for the moto server, to make the queues and read what arrived.
fn sqs_client(endpoint: &str) -> aws_sdk_sqs::Client {
    gantry::tls::install_provider();
    let http = smithy_transport_reqwest::ReqwestHttpClient::new();
    let config = aws_sdk_sqs::Config::builder()
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .endpoint_url(endpoint)
        .http_client(http)
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn sqs_receives_what_the_outbox_held(pool: PgPool) {
    let Some(endpoint) = gantry_tests::moto() else {
        return;
    };
    let sqs = sqs_client(&endpoint);
    let stack = format!("t{}-", Uuid::new_v4().simple());
    let url = sqs
        .create_queue()
        .queue_name(format!("{stack}jobs"))
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let prefix = url.strip_suffix("jobs").unwrap().to_owned();
    for n in 0..12 {
        put(&pool, "jobs", &format!("job {n:02}"), Duration::ZERO).await;
    }
    put(&pool, "jobs", "delayed", Duration::from_secs(120)).await;
    let mut env = gantry_tests::aws_env(&endpoint);
    env.push(("SQS_QUEUE_URL_PREFIX", prefix));
    let relay = Relay::from_env(Db::new(Some(pool.clone())), &Env::from_pairs(env)).unwrap();
    assert_eq!(relay.relay().await.unwrap(), 13, "two batches");
    assert!(outbox(&pool).await.is_empty());

    let mut received = BTreeSet::new();
    for _ in 0..10 {
        let out = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        received.extend(messages.into_iter().filter_map(|m| m.body));
    }
    let expected: BTreeSet<String> = (0..12).map(|n| format!("job {n:02}")).collect();
    assert_eq!(received, expected, "the delayed one is not visible yet");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn sqs_down_loses_nothing(pool: PgPool) {
    put(&pool, "jobs", "a", Duration::ZERO).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = Env::from_pairs([
        (
            "SQS_QUEUE_URL_PREFIX",
            format!("http://127.0.0.1:{closed}/000000000000/t-"),
        ),
        ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{closed}")),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
    ]);
    let relay = Relay::from_env(Db::new(Some(pool.clone())), &env).unwrap();
    assert!(matches!(relay.relay().await, Err(JobError::Retry(_))));
    assert_eq!(outbox(&pool).await, ["a"]);
}
