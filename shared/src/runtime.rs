//! One handler, two transports: Lambda when `AWS_LAMBDA_RUNTIME_API` is set, else plain HTTP
//! on `$PORT` (OpenFaaS of-watchdog http mode, local runs). An HTTP function serves its router;
//! a queue worker serves its [`JobHandler`] (an SQS event under Lambda, `POST /` per message over
//! HTTP). The local gateway serves every HTTP function on one port and runs every queue worker
//! in-process against the Postgres queue.

use crate::config::{Env, PoolDefault};
use crate::edge::{self, EdgeConfig, Metrics};
use crate::error::AppError;
use crate::function::{FunctionSpec, Schedule, Trigger};
use crate::platform::Platform;
use crate::queue::signing::{self, JobGuard, JobKey};
use crate::queue::{Deferring, Job, JobHandler, PgQueue, Worker, WorkerPolicy};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use std::any::Any;
use std::process::ExitCode;
use std::sync::Arc;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
}

#[utoipa::path(get, path = "/health", tag = "meta",
    responses((status = 200, description = "The function is up", body = Health)))]
pub async fn health() -> axum::Json<Health> {
    axum::Json(Health { status: "ok" })
}

async fn not_found() -> AppError {
    AppError::NotFound
}

async fn method_not_allowed() -> AppError {
    AppError::MethodNotAllowed
}

fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response {
    AppError::internal(anyhow::anyhow!("handler panicked")).into_response()
}

/// One HTTP function's router, ready to merge: a 405 problem (with `Allow`) for methods its
/// routes do not take, and CORS for exactly the methods they do. The 405 fallback is set here,
/// before the CORS layer wraps it, so a preflight is answered by CORS instead.
pub fn function_router(
    spec: &FunctionSpec,
    platform: &Platform,
) -> Result<Option<Router>, crate::platform::StartupError> {
    let Trigger::Http(function) = spec.trigger else {
        return Ok(None);
    };
    let router = function
        .build(platform)?
        .method_not_allowed_fallback(method_not_allowed);
    let routes = function.routes();
    let methods: Vec<_> = routes.iter().map(|route| route.method.http()).collect();
    Ok(Some(match edge::cors(&platform.edge_config, &methods) {
        Some(cors) => router.layer(cors),
        None => router,
    }))
}

/// The stack every function shares: `/health` (and `/metrics` off Lambda), problem+json for
/// unknown routes and methods, a body limit, tracing, panics turned into 500s, one metric per
/// request, and the security headers on every response, errors included.
pub fn finish(router: Router, edge_config: &EdgeConfig, metrics: &Metrics) -> Router {
    let router = router
        .route("/health", get(health))
        .merge(edge::metrics_route(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // One INFO line per request: method, path, status, latency. Never headers or bodies.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO))
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(axum::middleware::from_fn(run_to_completion));
    edge::security_headers(edge::measured(router, metrics), edge_config)
}

/// Runs each request to the end on a task of its own, even when the client goes away first.
/// axum drops a handler's future when its connection closes; dropped during sqlx's `BEGIN`
/// round trip, a Postgres connection goes back to the pool inside a transaction that nothing
/// ends, and the next request that borrows it runs in it (transact-rs/sqlx#4393: sqlx 0.9.0,
/// fixed upstream but not released). Finishing the request also means a change that started
/// commits with its audit row, or rolls back, whatever the client does.
async fn run_to_completion(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::spawn(next.run(request)).await {
        Ok(response) => response,
        // Panics are caught inside (CatchPanicLayer); only a runtime shutting down lands here.
        Err(err) => crate::error::AppError::internal(err).into_response(),
    }
}

/// JSON logs; `RUST_LOG` filters by target and level (`info`, `gantry=debug,sqlx=warn`; default
/// `info`, and an unreadable value falls back to it). Each line lists its spans, so an error names
/// the request and the operation (rules are `#[instrument]`ed) it happened in. Every line
/// passes through [`crate::redact::RedactingWriter`]: a URL in it keeps only its host.
///
/// The filter is `Targets`, not `EnvFilter`: `EnvFilter`'s span and field matchers bring a regex
/// engine, about 270 KiB of code in every function, for filters a function's logs never need.
pub fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref());
    let json = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_span_list(true)
        .without_time()
        .with_writer(|| crate::redact::RedactingWriter(std::io::stdout()));
    let _ = tracing_subscriber::registry()
        .with(json)
        .with(filter)
        .try_init();
}

/// The filter `RUST_LOG`'s directives ask for; `info` when unset or unreadable.
fn log_filter(directives: Option<&str>) -> tracing_subscriber::filter::Targets {
    use tracing_subscriber::filter::Targets;
    directives
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

/// Whether this process runs under the Lambda runtime (`AWS_LAMBDA_RUNTIME_API` is set).
pub fn under_lambda() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
}

/// Runs one function; what `functions/<name>/src/main.rs` calls. Under Lambda an instance
/// handles one event at a time, so it gets the current-thread runtime (less to start); a plain
/// HTTP server gets the multi-thread one, to serve requests in parallel.
pub fn start(spec: &'static FunctionSpec) -> ExitCode {
    block_on(serve(spec), under_lambda())
}

/// Runs the local gateway (see [`serve_gateway`]).
pub fn start_gateway(
    functions: &'static [&'static FunctionSpec],
    extra: fn() -> Router,
) -> ExitCode {
    block_on(serve_gateway(functions, extra), false)
}

fn block_on(main: impl std::future::Future<Output = ExitCode>, current_thread: bool) -> ExitCode {
    let mut builder = if current_thread {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    match builder.enable_all().build() {
        Ok(runtime) => runtime.block_on(main),
        Err(err) => {
            eprintln!("cannot start the async runtime: {err}");
            ExitCode::FAILURE
        }
    }
}

fn failed(what: &str, err: impl std::fmt::Display) -> ExitCode {
    tracing::error!(error = %err, "{what}");
    ExitCode::FAILURE
}

async fn serve(spec: &'static FunctionSpec) -> ExitCode {
    init_tracing();
    let platform = match Platform::load(Env::process(), PoolDefault::Function).await {
        Ok(platform) => platform,
        Err(err) => return failed("start-up error", err),
    };
    let port = platform.config.port;
    let metrics = Metrics::for_transport(&platform.env, under_lambda(), spec.name);
    let edge_config = &platform.edge_config;
    let outcome = match spec.trigger {
        Trigger::Http(_) => match function_router(spec, &platform) {
            Ok(Some(router)) if under_lambda() => {
                lambda_http::run(finish(router, edge_config, &metrics))
                    .await
                    .map_err(|e| e.to_string())
            }
            Ok(Some(router)) => serve_http(finish(router, edge_config, &metrics), port).await,
            Ok(None) => Ok(()),
            Err(err) => return failed("start-up error", err),
        },
        Trigger::Queue { build, .. } => match build(&platform) {
            Ok(handler) => {
                let handler: Arc<dyn JobHandler> =
                    Arc::new(Deferring::new(handler, platform.db.clone(), spec.name));
                if under_lambda() {
                    serve_sqs(handler).await
                } else {
                    // Over HTTP anyone who reaches the function could post a job: every one
                    // must be signed by the relay (crate::queue::signing).
                    let guard = match JobKey::from_env(&platform.env) {
                        Ok(Some(key)) => JobGuard::new(key, platform.db.clone(), spec.name),
                        Ok(None) => {
                            return failed(
                                "start-up error",
                                "JOB_SIGNING_KEY must be set to take jobs over HTTP",
                            );
                        }
                        Err(err) => return failed("start-up error", err),
                    };
                    let router = job_router(handler, spec.schedule(), guard);
                    serve_http(finish(router, edge_config, &metrics), port).await
                }
            }
            Err(err) => return failed("start-up error", err),
        },
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => failed("server stopped", err),
    }
}

/// Every HTTP function's routes on one port (plus `extra`), and every queue worker in-process:
/// a [`Worker`] per queue on the Postgres queue, and a timer for each scheduled queue.
async fn serve_gateway(
    functions: &'static [&'static FunctionSpec],
    extra: fn() -> Router,
) -> ExitCode {
    init_tracing();
    let platform = match Platform::load(Env::process(), PoolDefault::Gateway).await {
        Ok(platform) => platform,
        Err(err) => return failed("start-up error", err),
    };
    let router = match gateway_router(&platform, functions) {
        Ok(router) => router.merge(extra()),
        Err(err) => return failed("start-up error", err),
    };
    let jobs = match platform.on_own_pool(jobs_pool_size(functions)) {
        Ok(jobs) => jobs,
        Err(err) => return failed("start-up error", err),
    };
    match jobs.db.get() {
        Some(pool) => {
            for spec in functions {
                if let Err(err) = spawn_worker(spec, &jobs, PgQueue::new(pool.clone())) {
                    return failed("start-up error", err);
                }
            }
        }
        None => tracing::warn!("no DATABASE_URL: the queue workers are not running"),
    }
    let metrics = Metrics::prometheus();
    let app = finish(router, &platform.edge_config, &metrics);
    match serve_http(app, platform.config.port).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => failed("server stopped", err),
    }
}

/// The queue workers' own pool: one connection per worker (each handles one job at a time),
/// plus one for the timers' sends.
fn jobs_pool_size(functions: &[&FunctionSpec]) -> u32 {
    let workers = functions
        .iter()
        .filter(|spec| matches!(spec.trigger, Trigger::Queue { .. }))
        .count();
    u32::try_from(workers).map_or(u32::MAX, |n| n.saturating_add(1))
}

/// Every HTTP function's router, merged (not yet [`finish`]ed).
pub fn gateway_router(
    platform: &Platform,
    functions: &[&FunctionSpec],
) -> Result<Router, crate::platform::StartupError> {
    functions.iter().try_fold(Router::new(), |app, spec| {
        Ok(match function_router(spec, platform)? {
            Some(router) => app.merge(router),
            None => app,
        })
    })
}

fn spawn_worker(
    spec: &FunctionSpec,
    platform: &Platform,
    queue: PgQueue,
) -> Result<(), crate::platform::StartupError> {
    let Trigger::Queue { build, schedule } = spec.trigger else {
        return Ok(());
    };
    let name = spec.name;
    let worker = Worker::new(
        queue.clone(),
        name,
        build(platform)?,
        WorkerPolicy::default(),
    );
    tokio::spawn(worker.run());
    if let Some(schedule) = schedule {
        let every = std::time::Duration::from_secs(u64::from(schedule.minutes.max(1)) * 60);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            loop {
                ticks.tick().await;
                if let Err(err) = queue.send_with(name, schedule.body, 1).await {
                    tracing::error!(queue = name, error = %err, "scheduled send failed");
                }
            }
        });
    }
    Ok(())
}

/// A queue worker over plain HTTP: `POST /` with one message as the body (what OpenFaaS's queue
/// worker sends for an async invocation; `X-Call-Id` names it). An empty body is the function's
/// scheduled message, if it has one (the cron connector's tick, which cannot sign and needs
/// not: it can only start the scheduled run). Any other message must be signed by the outbox
/// relay, once ([`JobGuard`]): 401 otherwise. 204 when done; a 503 problem to retry later; a
/// 422 problem when the message can never succeed.
pub fn job_router(
    handler: Arc<dyn JobHandler>,
    schedule: Option<Schedule>,
    guard: JobGuard,
) -> Router {
    Router::new()
        .route("/", post(run_job))
        .with_state(JobState {
            handler,
            schedule,
            guard,
        })
}

#[derive(Clone)]
struct JobState {
    handler: Arc<dyn JobHandler>,
    schedule: Option<Schedule>,
    guard: JobGuard,
}

async fn run_job(
    State(JobState {
        handler,
        schedule,
        guard,
    }): State<JobState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, AppError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let call_id = header("x-call-id");
    let (body, taken) = match schedule {
        Some(schedule) if body.is_empty() => (schedule.body.to_owned(), None),
        _ => {
            let taken = guard.admit(call_id, header(signing::HEADER), &body).await?;
            let text = String::from_utf8(body.to_vec())
                .map_err(|_| AppError::Unprocessable("the message is not UTF-8 text".into()))?;
            (text, Some(taken))
        }
    };
    let job = Job {
        id: call_id.map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned),
        body,
        attempt: 1,
    };
    let done = handler.handle(&job).await;
    if let (Err(_), Some(taken)) = (&done, taken) {
        guard.release(taken).await;
    }
    done?;
    Ok(StatusCode::NO_CONTENT)
}

/// Handles one SQS batch: every message that fails is reported by id, so SQS redelivers only
/// those (and, after the queue's `maxReceiveCount`, moves them to its dead-letter queue). A
/// message that can never succeed is reported too: the redrive policy dead-letters it. (A job
/// that is not done yet never fails here: [`crate::queue::Deferring`] sends it again, delayed.)
pub async fn handle_sqs(handler: &dyn JobHandler, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let attempt = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1);
        let job = Job {
            id: id.clone(),
            body: record.body.unwrap_or_default(),
            attempt,
        };
        if let Err(err) = handler.handle(&job).await {
            tracing::warn!(message_id = %id, error = %err, "SQS message failed");
            response.add_failure(id);
        }
    }
    response
}

async fn serve_sqs(handler: Arc<dyn JobHandler>) -> Result<(), String> {
    let service =
        lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<SqsEvent>| {
            let handler = handler.clone();
            async move {
                Ok::<_, lambda_runtime::Error>(handle_sqs(handler.as_ref(), event.payload).await)
            }
        });
    lambda_runtime::run(service)
        .await
        .map_err(|e| e.to_string())
}

async fn serve_http(app: Router, port: u16) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", port))
        .await
        .map_err(|e| format!("cannot listen on port {port}: {e}"))?;
    tracing::info!(port, "listening");
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::log_filter;
    use tracing::Level;

    #[test]
    fn rust_log_filters_by_target_and_level_and_falls_back_to_info() {
        for unset_or_unreadable in [None, Some("gantry=loud,,=")] {
            let filter = log_filter(unset_or_unreadable);
            assert!(filter.would_enable("gantry::identity", &Level::INFO));
            assert!(!filter.would_enable("gantry::identity", &Level::DEBUG));
        }
        let filter = log_filter(Some("warn,gantry=debug,sqlx=error"));
        assert!(filter.would_enable("gantry::store", &Level::DEBUG));
        assert!(!filter.would_enable("sqlx::query", &Level::WARN));
        assert!(filter.would_enable("hyper", &Level::WARN));
        assert!(!filter.would_enable("hyper", &Level::INFO));
    }
}
