//! The Postgres pool pings only connections that sat idle (see `gantry::db::pool_options`).

use gantry::db;
use sqlx::PgPool;
use std::time::Duration;

async fn backend_pid(pool: &PgPool) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(pool)
        .await
}

/// Polls `holds` every 10 ms for up to 2 s; panics with `what` if it never does.
async fn until(what: &str, holds: impl AsyncFn() -> bool) {
    for _ in 0..200 {
        if holds().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}");
}

/// Waits until the pool's one connection is back and idle. sqlx returns a connection from a
/// spawned task that pings it first; ending the backend during that ping would make sqlx replace
/// the connection on release, before the acquire this file tests.
async fn idle(pool: &PgPool) {
    until("the connection did not come back to the pool", async || {
        pool.num_idle() == 1
    })
    .await;
}

/// Ends backend `pid` from `admin` and waits until it is gone.
async fn terminate(admin: &PgPool, pid: i32) {
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(admin)
        .await
        .unwrap();
    until(&format!("backend {pid} did not end"), async || {
        !sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)",
        )
        .bind(pid)
        .fetch_one(admin)
        .await
        .unwrap()
    })
    .await;
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_connection_that_died_while_idle_is_replaced_before_use(admin: PgPool) {
    let options = (*admin.connect_options()).clone();
    let pool = db::pool_options(1, Duration::ZERO).connect_lazy_with(options);
    let first = backend_pid(&pool).await.unwrap();
    idle(&pool).await;
    terminate(&admin, first).await;
    let second = backend_pid(&pool)
        .await
        .expect("the idle connection is pinged, found dead and replaced");
    assert_ne!(first, second);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_connection_in_steady_use_is_not_pinged_and_a_dead_one_fails_once(admin: PgPool) {
    let options = (*admin.connect_options()).clone();
    let pool = db::pool_options(1, Duration::from_secs(3600)).connect_lazy_with(options);
    let first = backend_pid(&pool).await.unwrap();
    idle(&pool).await;
    terminate(&admin, first).await;
    // Not pinged: the one request that meets the dead connection fails (a 503 at the edge) ...
    assert!(backend_pid(&pool).await.is_err());
    // ... and the pool does not hand it out again.
    let second = backend_pid(&pool).await.unwrap();
    assert_ne!(first, second);
}
