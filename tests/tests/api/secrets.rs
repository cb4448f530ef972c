//! Secrets stay out of logs and error texts: an RPC URL holding an API key (in its path, its
//! query or its user information) that fails is named by its host only, both through the core's
//! EIP-1271 check and through the chain-monitor worker.

use axum::http::StatusCode;
use gantry::function::Trigger;
use gantry::queue::{Job, JobError};
use gantry_tests::wallet::{Siwe, Wallet};
use gantry_tests::{Cast, TestApp};
use serde_json::json;
use sqlx::PgPool;
use std::sync::{Arc, Mutex};

const CHAIN: u64 = gantry_tests::SIWE_CHAIN;
const SECRETS: [&str; 4] = ["SECRETKEY123", "SECRET456", "rpcuser", "rpcpass"];

/// An RPC URL on a loopback port nothing listens on, with a key in its path and its query, or
/// with user information; and its host, which the logs should still name.
fn dead_rpc(credentials: bool) -> (String, String) {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = closed.local_addr().unwrap().to_string();
    drop(closed);
    let userinfo = if credentials { "rpcuser:rpcpass@" } else { "" };
    (
        format!("http://{userinfo}{host}/v3/SECRETKEY123?apikey=SECRET456"),
        host,
    )
}

/// Every log line written while it is held (on this thread, which the test's runtime runs on),
/// at the production default level, as written: without the log writer's net.
#[derive(Clone, Default)]
pub(crate) struct Logs(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    pub(crate) fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let logs = Self::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || writer.clone())
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

fn assert_names_only_the_host(what: &str, text: &str, host: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows {secret}: {text}");
    }
    assert!(text.contains(host), "{what} does not name {host}: {text}");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_failing_eip1271_check_logs_the_rpc_host_and_never_its_key(pool: PgPool) {
    for credentials in [false, true] {
        let (url, host) = dead_rpc(credentials);
        let urls = format!("{CHAIN}={url}");
        let app = TestApp::with(pool.clone(), &[("CHAIN_RPC_URLS", &urls)]);
        let (logs, _guard) = Logs::capture();

        // Signed by a key that is not the address's: the contract-wallet check asks the chain.
        let (signer, contract) = (Wallet::random(), Wallet::random());
        let message = signer.message_as(&contract.address(), &Siwe::new(&app.nonce().await));
        let res = app
            .post("/register-blockchain")
            .json(&json!({"message": message, "signature": signer.sign(&message)}))
            .send()
            .await;

        assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.body);
        let answer = String::from_utf8_lossy(&res.raw).into_owned();
        for secret in SECRETS {
            assert!(!answer.contains(secret), "{answer}");
        }
        assert_names_only_the_host("the log", &logs.text(), &host);
    }
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_failing_chain_monitor_job_names_the_rpc_host_and_never_its_key(pool: PgPool) {
    failing_watch(pool, false).await;
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_failing_chain_monitor_job_never_shows_the_rpc_credentials(pool: PgPool) {
    failing_watch(pool, true).await;
}

/// Submits a payment with the chain's RPC down and runs its watch job: the job is retried, and
/// neither its error nor the logs show the URL's secrets.
async fn failing_watch(pool: PgPool, credentials: bool) {
    let (url, host) = dead_rpc(credentials);
    let urls = format!("{CHAIN}={url}");
    let receiver = format!("0x{}", "22".repeat(20));
    let chains = json!({CHAIN.to_string(): {
        "receiver": receiver, "confirmations": 1, "assets": {"ETH": "native"},
    }})
    .to_string();
    let app = TestApp::with(
        pool,
        &[("CHAIN_RPC_URLS", &urls), ("PAYMENT_CHAINS", &chains)],
    );
    let cast = Cast::on(&app).await;
    let invoice = sent_invoice(&app, &cast).await;
    let submitted = app
        .post(&format!("/invoices/{invoice}/blockchain-payment"))
        .bearer(&cast.owner)
        .json(&json!({"chain_id": CHAIN, "tx_hash": format!("0x{}", "ab".repeat(32))}))
        .send()
        .await;
    assert_eq!(submitted.status, StatusCode::ACCEPTED, "{}", submitted.body);
    let (id, body): (uuid::Uuid, String) = sqlx::query_as(
        "SELECT id, body FROM queue_messages WHERE queue = 'chain-monitor' AND body LIKE '%' || $1 || '%'",
    )
    .bind(submitted.str("id"))
    .fetch_one(&app.pool)
    .await
    .unwrap();
    let Trigger::Queue { build, .. } = gantry::payments::onchain::monitor::CHAIN_MONITOR.trigger
    else {
        panic!("chain-monitor is a queue worker");
    };
    let monitor = build(&app.platform).unwrap();
    let (logs, _guard) = Logs::capture();

    let job = Job {
        id: id.to_string(),
        body,
        attempt: 1,
    };
    let Err(JobError::Retry(err)) = monitor.handle(&job).await else {
        panic!("a dead RPC is retried");
    };

    assert_names_only_the_host("the job's error", &format!("{err:#}"), &host);
    let logged = logs.text();
    for secret in SECRETS {
        assert!(!logged.contains(secret), "the log shows {secret}: {logged}");
    }
}

/// A SENT invoice of 1 ETH on a project of the owner client's.
async fn sent_invoice(app: &TestApp, cast: &Cast) -> String {
    let project = app
        .post("/projects")
        .bearer(&cast.staff)
        .json(&json!({"name": "Paid on chain", "client_id": cast.owner_id}))
        .send()
        .await;
    assert_eq!(project.status, StatusCode::CREATED, "{}", project.body);
    let invoice = app
        .post("/invoices")
        .bearer(&cast.staff)
        .json(&json!({"project_id": project.str("id"), "amount": "1000000000000000000", "currency": "ETH"}))
        .send()
        .await;
    assert_eq!(invoice.status, StatusCode::CREATED, "{}", invoice.body);
    let id = invoice.str("id");
    let sent = app
        .put(&format!("/invoices/{id}"))
        .bearer(&cast.staff)
        .json(&json!({"status": "SENT"}))
        .send()
        .await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    id
}
