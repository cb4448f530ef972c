//! A Lambda Runtime API emulator (the HTTP API a Lambda function polls for events), enough to
//! drive a real function binary as Lambda would, and API Gateway HTTP API (v2) events.
//!
//! Hand-written because the only ready-made emulator, `cargo lambda watch`, also compiles and
//! supervises the function; tests and the cold-start benchmark need to spawn a prebuilt binary
//! and time it.

use anyhow::{Context, Result, anyhow};
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, mpsc, oneshot};

type Outcome = std::result::Result<Value, Value>;

#[derive(Clone)]
struct Shared {
    queue: Arc<Mutex<mpsc::UnboundedReceiver<(String, Value)>>>,
    pending: Arc<Mutex<HashMap<String, oneshot::Sender<Outcome>>>>,
    init_error: Arc<Mutex<Option<Value>>>,
}

pub struct RuntimeApi {
    addr: SocketAddr,
    sender: mpsc::UnboundedSender<(String, Value)>,
    shared: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RuntimeApi {
    pub async fn start() -> Result<Self> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let shared = Shared {
            queue: Arc::new(Mutex::new(receiver)),
            pending: Arc::new(Mutex::new(HashMap::new())),
            init_error: Arc::new(Mutex::new(None)),
        };
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            addr,
            sender,
            shared,
            server,
        })
    }

    /// The value for `AWS_LAMBDA_RUNTIME_API`.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Queues `event`, waits for the function's answer (or its error) up to `timeout`.
    pub async fn invoke(&self, event: Value, timeout: Duration) -> Result<Value> {
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.shared.pending.lock().await.insert(id.clone(), tx);
        self.sender
            .send((id, event))
            .map_err(|_| anyhow!("emulator stopped"))?;
        let outcome = tokio::time::timeout(timeout, rx)
            .await
            .map_err(|_| anyhow!("no answer within {timeout:?}"))?
            .context("answer channel closed")?;
        outcome.map_err(|err| anyhow!("function reported an error: {err}"))
    }

    pub async fn init_error(&self) -> Option<Value> {
        self.shared.init_error.lock().await.clone()
    }
}

async fn next(State(shared): State<Shared>) -> impl IntoResponse {
    let Some((id, event)) = shared.queue.lock().await.recv().await else {
        return (StatusCode::GONE, HeaderMap::new(), String::new());
    };
    let mut headers = HeaderMap::new();
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() + 30_000)
        .unwrap_or_default();
    let pairs = [
        ("lambda-runtime-aws-request-id", id.clone()),
        ("lambda-runtime-deadline-ms", deadline.to_string()),
        (
            "lambda-runtime-invoked-function-arn",
            "arn:aws:lambda:us-east-1:123456789012:function:gantry-test".to_owned(),
        ),
        (
            "lambda-runtime-trace-id",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1".to_owned(),
        ),
    ];
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    (StatusCode::OK, headers, event.to_string())
}

async fn settle(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    match shared.pending.lock().await.remove(id) {
        Some(tx) => {
            let _ = tx.send(outcome);
            StatusCode::ACCEPTED
        }
        None => StatusCode::BAD_REQUEST,
    }
}

async fn respond(State(shared): State<Shared>, Path(id): Path<String>, body: String) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    settle(&shared, &id, Ok(value)).await
}

async fn fail(State(shared): State<Shared>, Path(id): Path<String>, body: String) -> StatusCode {
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    settle(&shared, &id, Err(value)).await
}

async fn init_error(State(shared): State<Shared>, body: String) -> StatusCode {
    *shared.init_error.lock().await = Some(Value::String(body));
    StatusCode::ACCEPTED
}

/// An API Gateway HTTP API (payload format 2.0) event, as AWS documents it.
pub fn http_api_event(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Value {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::String((*v).to_owned())))
        .collect();
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api-id",
            "domainName": "id.execute-api.us-east-1.amazonaws.com",
            "domainPrefix": "id",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "gantry-tests"
            },
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef",
            "routeKey": "$default",
            "stage": "$default",
            "time": "22/Nov/2026:00:00:00 +0000",
            "timeEpoch": 1_795_305_600_000_u64
        },
        "isBase64Encoded": false
    });
    if let Some(body) = body {
        event["body"] = Value::String(body.to_owned());
    }
    event
}

/// An SQS event (as Lambda's event source mapping delivers it) with one record per
/// `(message id, body)`.
pub fn sqs_event(messages: &[(&str, &str)]) -> Value {
    let records: Vec<Value> = messages
        .iter()
        .map(|(id, body)| {
            json!({
                "messageId": id,
                "receiptHandle": format!("handle-{id}"),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": "1795305600000",
                    "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                    "ApproximateFirstReceiveTimestamp": "1795305600001"
                },
                "messageAttributes": {},
                "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:housekeeping",
                "awsRegion": "us-east-1"
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The environment Lambda gives a function, pointing it at `api` for its events.
pub fn runtime_env(api: &RuntimeApi, function: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_LAMBDA_RUNTIME_API", api.address()),
        ("AWS_LAMBDA_FUNCTION_NAME", function.to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function}"),
        ),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "local".to_owned()),
        ("AWS_REGION", "us-east-1".to_owned()),
    ]
}

/// Spawns a prebuilt function binary with `env` (plus a quiet log level), killed on drop.
pub fn spawn(binary: &std::path::Path, env: &[(&str, String)]) -> Result<tokio::process::Child> {
    command(binary, env)
        .spawn()
        .with_context(|| format!("spawning {}", binary.display()))
}

/// [`spawn`], with its standard output captured (read it after killing the child).
pub fn spawn_capturing(
    binary: &std::path::Path,
    env: &[(&str, String)],
) -> Result<tokio::process::Child> {
    command(binary, env)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {}", binary.display()))
}

fn command(binary: &std::path::Path, env: &[(&str, String)]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(binary);
    command
        .env_clear()
        .env(
            "RUST_LOG",
            std::env::var("TEST_LOG").map(|_| "debug").unwrap_or("warn"),
        )
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    command
}

/// Spawns a prebuilt function binary as a plain HTTP server on a free port (as of-watchdog runs
/// it) and waits until its `/health` answers. Returns the child and the base URL.
pub async fn spawn_http(
    binary: &std::path::Path,
    env: &[(&str, String)],
) -> Result<(tokio::process::Child, String)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut env = env.to_vec();
    env.push(("PORT", port.to_string()));
    let child = spawn(binary, &env)?;
    let base = format!("http://127.0.0.1:{port}");
    let client = crate::http_client();
    for _ in 0..100 {
        if client.get(format!("{base}/health")).send().await.is_ok() {
            return Ok((child, base));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(anyhow!("the function never listened on {port}"))
}
