//! The local gateway: every HTTP function's routes on one port, and every queue worker
//! in-process on the Postgres queue (what `scripts/dev` and the tests run).

use super::{block_on, failed, finish, function_router, init_tracing, serve_http};
use crate::config::{Env, PoolDefault};
use crate::edge::Metrics;
use crate::function::{FunctionSpec, Trigger};
use crate::platform::Platform;
use crate::queue::{PgQueue, Worker, WorkerPolicy};
use axum::Router;
use std::process::ExitCode;

/// Runs the local gateway (see [`serve`]).
pub fn start(functions: &'static [&'static FunctionSpec], extra: fn() -> Router) -> ExitCode {
    block_on(serve(functions, extra), false)
}

/// Every HTTP function's routes on one port (plus `extra`), and every queue worker in-process:
/// a [`Worker`] per queue on the Postgres queue, and a timer for each scheduled queue.
async fn serve(functions: &'static [&'static FunctionSpec], extra: fn() -> Router) -> ExitCode {
    init_tracing();
    let platform = match Platform::load(Env::process(), PoolDefault::Gateway).await {
        Ok(platform) => platform,
        Err(err) => return failed("start-up error", err),
    };
    let router = match router(&platform, functions) {
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
pub fn router(
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
        let minutes = u64::from(schedule.minutes.max(1)) * 60;
        let every = match schedule.local_every {
            Some(var) => platform.env.seconds_in(var, minutes, 1..=31_536_000)?,
            None => std::time::Duration::from_secs(minutes),
        };
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
