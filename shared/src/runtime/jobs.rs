//! A queue worker's two adapters: `POST /` per message over plain HTTP (OpenFaaS), and SQS
//! events under Lambda.

use crate::error::AppError;
use crate::function::Schedule;
use crate::queue::signing::{self, JobGuard};
use crate::queue::{Job, JobHandler};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use std::sync::Arc;

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

pub(super) async fn serve_sqs(handler: Arc<dyn JobHandler>) -> Result<(), String> {
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
