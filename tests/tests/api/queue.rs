//! The local queue (what SQS is under Lambda) and its worker: success, retries with back-off,
//! dead letters, expired leases, concurrent workers, jobs sent inside a transaction and jobs that
//! come back later; and the built-in housekeeping job.

use async_trait::async_trait;
use gantry::queue::housekeeping::{self, Housekeeping, PURGE_EXPIRED};
use gantry::queue::{Job, JobError, JobHandler, PgQueue, Worker, WorkerPolicy, enqueue};
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

async fn seconds_until_visible(pool: &PgPool, id: uuid::Uuid) -> f64 {
    sqlx::query_scalar(
        "SELECT extract(epoch FROM visible_at - now())::float8 FROM queue_messages WHERE id = $1",
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
    let wait = seconds_until_visible(&pool, id).await;
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

/// Says "not yet" to each message `waits` times, then handles it.
struct Patient {
    waits: u32,
    seen: Mutex<u32>,
}

#[async_trait]
impl JobHandler for Patient {
    async fn handle(&self, _job: &Job) -> Result<(), JobError> {
        let mut seen = self.seen.lock().unwrap();
        *seen += 1;
        if *seen <= self.waits {
            return Err(JobError::Later(Duration::ZERO));
        }
        Ok(())
    }
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_job_that_comes_back_later_spends_no_attempt(pool: PgPool) {
    let queue = PgQueue::new(pool.clone());
    let handler = Arc::new(Patient {
        waits: 7,
        seen: Mutex::new(0),
    });
    let worker = Worker::new(queue.clone(), "watch", handler.clone(), immediate());
    // Three attempts, seven waits: were a wait an attempt, it would be dead-lettered.
    let id = queue.send_with("watch", "tx", 3).await.unwrap();
    for wait in 1..=7 {
        let settled = worker.poll().await.unwrap();
        assert_eq!(settled.later, 1, "wait {wait}");
        let (attempts, dead, _) = state_of(&pool, id).await;
        assert_eq!((attempts, dead), (0, false), "wait {wait}");
    }
    assert_eq!(worker.poll().await.unwrap().done, 1);
    assert_eq!(*handler.seen.lock().unwrap(), 8);
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM queue_messages")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "handled at last, and deleted");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_later_job_waits_out_its_delay(pool: PgPool) {
    struct NotYet;
    #[async_trait]
    impl JobHandler for NotYet {
        async fn handle(&self, _job: &Job) -> Result<(), JobError> {
            Err(JobError::Later(Duration::from_secs(600)))
        }
    }
    let queue = PgQueue::new(pool.clone());
    let worker = Worker::new(queue.clone(), "watch", Arc::new(NotYet), immediate());
    let id = queue.send_with("watch", "tx", 3).await.unwrap();
    assert_eq!(worker.poll().await.unwrap().later, 1);
    assert_eq!(worker.poll().await.unwrap().total(), 0, "not visible yet");
    let wait = seconds_until_visible(&pool, id).await;
    assert!((590.0..=600.0).contains(&wait), "delay {wait}s");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_job_sent_in_a_transaction_exists_only_if_it_commits(pool: PgPool) {
    let queue = PgQueue::new(pool.clone());
    let recorder = Arc::new(Recorder::default());
    let worker = Worker::new(queue.clone(), "jobs", recorder.clone(), immediate());

    let mut tx = pool.begin().await.unwrap();
    enqueue(&mut tx, "jobs", "rolled back", Duration::ZERO)
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    let mut tx = pool.begin().await.unwrap();
    enqueue(&mut tx, "jobs", "committed", Duration::ZERO)
        .await
        .unwrap();
    // Not visible to a worker until the change commits.
    assert_eq!(worker.poll().await.unwrap().total(), 0);
    tx.commit().await.unwrap();

    assert_eq!(worker.poll().await.unwrap().done, 1);
    let bodies: Vec<String> = recorder
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.0.clone())
        .collect();
    assert_eq!(bodies, ["committed"]);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_delayed_job_is_not_delivered_before_its_delay(pool: PgPool) {
    let queue = PgQueue::new(pool.clone());
    let worker = Worker::new(
        queue.clone(),
        "jobs",
        Arc::new(Recorder::default()),
        immediate(),
    );
    let mut conn = pool.acquire().await.unwrap();
    enqueue(&mut conn, "jobs", "soon", Duration::from_secs(300))
        .await
        .unwrap();
    enqueue(&mut conn, "jobs", "now", Duration::ZERO)
        .await
        .unwrap();
    let settled = worker.poll().await.unwrap();
    assert_eq!(settled.done, 1, "only the undelayed job");
    let waiting: Vec<String> = sqlx::query_scalar("SELECT body FROM queue_messages")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(waiting, ["soon"]);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn deployed_a_later_job_is_sent_again_delayed_and_its_delivery_succeeds(pool: PgPool) {
    struct NotYet;
    #[async_trait]
    impl JobHandler for NotYet {
        async fn handle(&self, job: &Job) -> Result<(), JobError> {
            match job.body.as_str() {
                "poison" => Err(JobError::Retry(anyhow::anyhow!("down"))),
                _ => Err(JobError::Later(Duration::from_secs(300))),
            }
        }
    }
    let deferring = gantry::queue::Deferring::new(
        Arc::new(NotYet),
        gantry::db::Db::new(Some(pool.clone())),
        "watch",
    );
    // An SQS batch: the waiting job is not a failure (no receive spent, never dead-lettered);
    // the failing one still is.
    let event: aws_lambda_events::event::sqs::SqsEvent = serde_json::from_value(serde_json::json!({
        "Records": [
            {"messageId": "m-1", "body": "{\"payment_id\":1}", "attributes": {"ApproximateReceiveCount": "1"}},
            {"messageId": "m-2", "body": "poison", "attributes": {"ApproximateReceiveCount": "1"}},
        ]
    }))
    .unwrap();
    let response = gantry::runtime::handle_sqs(&deferring, event).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["m-2"]);
    let (id, body): (uuid::Uuid, String) =
        sqlx::query_as("SELECT id, body FROM queue_messages WHERE queue = 'watch'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(body, "{\"payment_id\":1}");
    let wait = seconds_until_visible(&pool, id).await;
    assert!((290.0..=300.0).contains(&wait), "delay {wait}s");
}
