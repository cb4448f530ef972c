//! One handler, two transports: Lambda when `AWS_LAMBDA_RUNTIME_API` is set, else plain HTTP
//! on `$PORT` (OpenFaaS of-watchdog http mode, local runs). An HTTP function serves its router;
//! a queue worker serves its [`JobHandler`] (an SQS event under Lambda, `POST /` per message over
//! HTTP). The local gateway serves every HTTP function on one port and runs every queue worker
//! in-process against the Postgres queue ([`gateway`]). A queue worker's adapters, HTTP and
//! SQS, are [`jobs`].

pub mod gateway;
pub mod jobs;

pub use jobs::{handle_sqs, job_router};

use crate::config::{Env, PoolDefault};
use crate::edge::{self, EdgeConfig, Metrics};
use crate::error::AppError;
use crate::function::{FunctionSpec, Trigger};
use crate::platform::Platform;
use crate::queue::signing::{JobGuard, JobKey};
use crate::queue::{Deferring, JobHandler};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
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

pub(super) fn block_on(
    main: impl std::future::Future<Output = ExitCode>,
    current_thread: bool,
) -> ExitCode {
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

pub(super) fn failed(what: &str, err: impl std::fmt::Display) -> ExitCode {
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
                    jobs::serve_sqs(handler).await
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

pub(super) async fn serve_http(app: Router, port: u16) -> Result<(), String> {
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
