//! The local queue (what SQS is under Lambda) and its worker: success, retries with back-off,
//! dead letters, expired leases and concurrent workers; and the built-in housekeeping job.

use async_trait::async_trait;
use gantry::queue::{Job, JobError, JobHandler, PgQueue, Worker, WorkerPolicy};
use gantry::store::housekeeping::{self, Housekeeping, PURGE_EXPIRED};
use sqlx::PgPool;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Fails every message whose body is `poison` (as a transient failure, so it is retried);
/// records every delivery.
#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<(String, u32)>>,
}

#[async_trait]
impl JobHandler for Recorder {
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        self.seen
            .lock()
            .unwrap()
            .push((job.body.clone(), job.attempt));
        if job.body == "poison" {
            return Err(JobError::Retry(anyhow::anyhow!("the dependency is down")));
        }
        Ok(())
    }
}

fn immediate() -> WorkerPolicy {
    WorkerPolicy {
        backoff_base: Duration::ZERO,
        ..WorkerPolicy::default()
    }
}

async fn state_of(pool: &PgPool, id: uuid::Uuid) -> (i32, bool, Option<String>) {
    sqlx::query_as(
        "SELECT attempts, dead_at IS NOT NULL, last_error FROM queue_messages WHERE id = $1",
    )
    .bind(id)
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_handled_message_is_deleted(pool: PgPool) {
    let queue = PgQueue::new(pool.clone());
    let recorder = Arc::new(Recorder::default());
    let worker = Worker::new(queue.clone(), "jobs", recorder.clone(), immediate());
    queue.send_with("jobs", "hello", 3).await.unwrap();
    queue.send_with("other", "not mine", 3).await.unwrap();
    let settled = worker.poll().await.unwrap();
    assert_eq!((settled.done, settled.retried, settled.dead), (1, 0, 0));
    assert_eq!(*recorder.seen.lock().unwrap(), [("hello".to_owned(), 1)]);
    let left: Vec<String> = sqlx::query_scalar("SELECT queue FROM queue_messages")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(left, ["other"], "only the other queue's message remains");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_poisoned_message_is_retried_then_dead_lettered(pool: PgPool) {
    let queue = PgQueue::new(pool.clone());
    let recorder = Arc::new(Recorder::default());
    let worker = Worker::new(queue.clone(), "jobs", recorder.clone(), immediate());
    let id = queue.send_with("jobs", "poison", 3).await.unwrap();
    for attempt in 1..=2 {
        let settled = worker.poll().await.unwrap();
        assert_eq!(settled.retried, 1, "attempt {attempt} is retried");
        let (attempts, dead, error) = state_of(&pool, id).await;
        assert_eq!((attempts, dead), (attempt, false));
        assert!(error.unwrap().contains("the dependency is down"));
    }
    let settled = worker.poll().await.unwrap();
    assert_eq!(settled.dead, 1, "the last attempt dead-letters it");
    let (attempts, dead, _) = state_of(&pool, id).await;
    assert_eq!((attempts, dead), (3, true));
    assert_eq!(
        worker.poll().await.unwrap().total(),
        0,
        "a dead letter is not delivered"
    );
    let attempts: Vec<u32> = recorder.seen.lock().unwrap().iter().map(|s| s.1).collect();
    assert_eq!(attempts, [1, 2, 3]);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_retry_waits_out_its_back_off(pool: PgPool) {
    let queue = PgQueue::new(pool.clone());
    let policy = WorkerPolicy {
        backoff_base: Duration::from_secs(3600),
        backoff_max: Duration::from_secs(7200),
        ..WorkerPolicy::default()
    };
    let worker = Worker::new(queue.clone(), "jobs", Arc::new(Recorder::default()), policy);
    let id = queue.send_with("jobs", "poison", 3).await.unwrap();
    assert_eq!(worker.poll().await.unwrap().retried, 1);
    assert_eq!(
        worker.poll().await.unwrap().total(),
        0,
        "not visible during back-off"
    );
    let wait: f64 = sqlx::query_scalar(
        "SELECT extract(epoch FROM visible_at - now())::float8 FROM queue_messages WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!((3500.0..=3600.0).contains(&wait), "back-off {wait}s");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_message_that_can_never_succeed_is_dead_lettered_at_once(pool: PgPool) {
    let queue = PgQueue::new(pool.clone());
    let handler = Arc::new(Housekeeping::new(
        gantry::db::Db::new(Some(pool.clone())),
        gantry::app::purges(),
    ));
    let worker = Worker::new(queue.clone(), housekeeping::QUEUE, handler, immediate());
    let id = queue
        .send_with(housekeeping::QUEUE, "not json", 5)
        .await
        .unwrap();
    assert_eq!(worker.poll().await.unwrap().dead, 1);
    let (attempts, dead, error) = state_of(&pool, id).await;
    assert_eq!((attempts, dead), (1, true));
    assert!(error.unwrap().contains("not a housekeeping task"));
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_lease_that_runs_out_on_the_last_attempt_dead_letters(pool: PgPool) {
    let queue = PgQueue::new(pool.clone());
    let id = queue.send_with("jobs", "crash", 1).await.unwrap();
    // A worker leases it and dies without settling it.
    let leased = queue.receive("jobs", 10, Duration::ZERO).await.unwrap();
    assert_eq!(leased.len(), 1);
    let again = queue.receive("jobs", 10, Duration::ZERO).await.unwrap();
    assert!(again.is_empty(), "not delivered past its attempts");
    let (attempts, dead, error) = state_of(&pool, id).await;
    assert_eq!((attempts, dead), (1, true));
    assert_eq!(error.as_deref(), Some("the last attempt timed out"));
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn concurrent_workers_never_handle_a_message_twice(pool: PgPool) {
    let queue = PgQueue::new(pool.clone());
    for i in 0..40 {
        queue.send_with("jobs", &format!("m{i}"), 3).await.unwrap();
    }
    let recorder = Arc::new(Recorder::default());
    let policy = WorkerPolicy {
        batch: 3,
        ..immediate()
    };
    let workers: Vec<Worker> = (0..4)
        .map(|_| Worker::new(queue.clone(), "jobs", recorder.clone(), policy))
        .collect();
    loop {
        let rounds = futures::future::join_all(workers.iter().map(Worker::poll)).await;
        if rounds
            .iter()
            .map(|r| r.as_ref().unwrap().total())
            .sum::<usize>()
            == 0
        {
            break;
        }
    }
    let mut counts: HashMap<String, usize> = HashMap::new();
    for (body, _) in recorder.seen.lock().unwrap().iter() {
        *counts.entry(body.clone()).or_default() += 1;
    }
    assert_eq!(counts.len(), 40);
    assert!(counts.values().all(|n| *n == 1), "{counts:?}");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn housekeeping_purges_what_has_expired_and_keeps_the_rest(pool: PgPool) {
    gantry_tests::seed_expired_rows(&pool).await;
    let queue = PgQueue::new(pool.clone());
    let handler = Arc::new(Housekeeping::new(
        gantry::db::Db::new(Some(pool.clone())),
        gantry::app::purges(),
    ));
    let worker = Worker::new(queue.clone(), housekeeping::QUEUE, handler, immediate());
    queue
        .send_with(housekeeping::QUEUE, PURGE_EXPIRED, 5)
        .await
        .unwrap();
    assert_eq!(worker.poll().await.unwrap().done, 1);
    gantry_tests::assert_only_live_rows_remain(&pool).await;
}
