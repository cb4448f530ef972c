//! Pins still on their way. A pinning service may keep a pin queued longer than an upload waits
//! for it; the upload then answers `pinned: false` and records the request
//! ([`follow`], in the upload's transaction) with a `pin-follow-up` job. The job asks the service
//! until the pin is pinned or failed, coming back later in between. A pin still queued a day
//! after the upload is given up as failed. A failed pin is logged as an error; the bytes stay in
//! the backend that holds them.

use crate::db::Db;
use crate::error::AppResult;
use crate::function::needs::DATABASE;
use crate::function::{FunctionSpec, Trigger};
use crate::ipfs::store::IpfsError;
use crate::ipfs::{Cid, IpfsConfig, IpfsStore};
use crate::queue::signing;
use crate::queue::{Job, JobError, JobHandler, enqueue};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// The worker's queue, and its function's name.
pub const QUEUE: &str = "pin-follow-up";
/// Follows pins that a pinning service still had queued when their upload answered.
pub static PIN_FOLLOW_UP: FunctionSpec = FunctionSpec {
    name: QUEUE,
    trigger: Trigger::Queue {
        build: |platform| {
            let config = IpfsConfig::from_env(&platform.env, crate::runtime::under_lambda())?;
            Ok(Arc::new(PinFollowUp::new(
                platform.db.clone(),
                config.build(&platform.env),
            )))
        },
        schedule: None,
    },
    needs: &[&DATABASE, &crate::ipfs::config::NEED, &signing::NEED],
};

/// How soon a queued pin is asked about again.
const AGAIN: Duration = Duration::from_secs(30);
/// How long a pin may stay queued before it is given up.
const GIVE_UP: time::Duration = time::Duration::days(1);

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FollowUp {
    cid: String,
    request_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "pin_state", rename_all = "SCREAMING_SNAKE_CASE")]
enum PinState {
    Queued,
    Pinned,
    Failed,
}

/// Records the queued pin request and its follow-up job, in the caller's transaction.
pub(crate) async fn follow(conn: &mut PgConnection, cid: &str, request: &str) -> AppResult<()> {
    let new = sqlx::query!(
        "INSERT INTO ipfs_pin_requests (cid, request_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        cid,
        request
    )
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if new {
        let job = serde_json::to_string(&FollowUp {
            cid: cid.to_owned(),
            request_id: request.to_owned(),
        })
        .map_err(crate::error::AppError::internal)?;
        enqueue(conn, QUEUE, &job, AGAIN).await?;
    }
    Ok(())
}

/// The `pin-follow-up` worker's handler.
pub struct PinFollowUp {
    db: Db,
    ipfs: Arc<dyn IpfsStore>,
}

impl PinFollowUp {
    pub fn new(db: Db, ipfs: Arc<dyn IpfsStore>) -> Self {
        Self { db, ipfs }
    }
}

#[async_trait]
impl JobHandler for PinFollowUp {
    #[tracing::instrument(name = "pin_follow_up", skip_all, fields(job = %job.id))]
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        let FollowUp { cid, request_id } = serde_json::from_str(&job.body)
            .map_err(|e| JobError::drop(format!("not a pin follow-up: {e}")))?;
        let parsed = Cid::try_from(cid.as_str())
            .map_err(|_| JobError::drop(format!("{cid:?} is not a CID")))?;
        let pool = self.db.pool().map_err(|e| JobError::Retry(e.into()))?;
        let Some(row) = sqlx::query!(
            r#"SELECT state AS "state: PinState", created_at FROM ipfs_pin_requests
               WHERE cid = $1 AND request_id = $2"#,
            cid,
            request_id
        )
        .fetch_optional(pool)
        .await?
        else {
            return Err(JobError::drop("no such pin request"));
        };
        if row.state != PinState::Queued {
            return Ok(());
        }
        let (state, detail) = match self.ipfs.follow_pin(&parsed, &request_id).await {
            Ok(true) => (PinState::Pinned, None),
            Ok(false) if OffsetDateTime::now_utc() - row.created_at > GIVE_UP => (
                PinState::Failed,
                Some("still queued a day after the upload".to_owned()),
            ),
            Ok(false) => return Err(JobError::Later(AGAIN)),
            Err(err @ IpfsError::Unavailable(_)) => return Err(JobError::Retry(err.into())),
            Err(err) => (PinState::Failed, Some(err.to_string())),
        };
        if state == PinState::Failed {
            tracing::error!(%cid, request = %request_id, ?detail, "a pin failed; the bytes stay in the backend");
        }
        sqlx::query!(
            "UPDATE ipfs_pin_requests SET state = $3, detail = $4, updated_at = now()
             WHERE cid = $1 AND request_id = $2 AND state = 'QUEUED'",
            cid,
            request_id,
            state as PinState,
            detail
        )
        .execute(pool)
        .await?;
        Ok(())
    }
}
