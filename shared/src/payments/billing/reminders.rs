//! The `billing-reminders` worker: marks SENT invoices past their due date OVERDUE and mails
//! the client one reminder per stage (`BILLING_REMINDER_DAYS`, by default 0, 7 and 14 days
//! after the due date). Only the latest stage due is sent: one already passed when the invoice
//! became OVERDUE is not sent late. A stage is recorded in `invoice_reminders` in the
//! transaction that puts its mail in the outbox, and its primary key makes a second run, or a
//! concurrent worker, send nothing. It runs daily when deployed and every
//! `BILLING_SCHEDULE_SECONDS` in the local gateway; [`Reminders::run`] takes the time, so tests
//! move the clock instead of sleeping.

use super::config::BillingConfig;
use crate::audit::{self, Entry};
use crate::db::Db;
use crate::function::needs::DATABASE;
use crate::function::{FunctionSpec, Schedule, Trigger};
use crate::mail::{self, Mail};
use crate::payments::audit::PaymentsAction;
use crate::payments::model::stored;
use crate::payments::money::Currency;
use crate::queue::{Job, JobError, JobHandler, signing};
use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// The queue (and function) name.
pub const QUEUE: &str = "billing-reminders";
/// The message a schedule sends.
pub const RUN: &str = r#"{"task":"remind"}"#;

/// `billing-reminders`: daily, on a schedule.
pub static BILLING_REMINDERS: FunctionSpec = FunctionSpec {
    name: QUEUE,
    trigger: Trigger::Queue {
        build: |platform| {
            Ok(Arc::new(Reminders::new(
                platform.db.clone(),
                BillingConfig::from_env(&platform.env)?,
            )))
        },
        schedule: Some(Schedule {
            minutes: 24 * 60,
            body: RUN,
            local_every: Some("BILLING_SCHEDULE_SECONDS"),
            timeout_secs: None,
        }),
    },
    needs: &[&DATABASE, &signing::NEED, &super::config::NEED],
};

#[derive(Debug, Deserialize)]
#[serde(tag = "task", rename_all = "kebab-case", deny_unknown_fields)]
enum Task {
    Remind,
}

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ran {
    /// Invoices it marked OVERDUE.
    pub overdue: u64,
    /// Reminders it put in the outbox.
    pub reminded: u64,
}

pub struct Reminders {
    db: Db,
    config: BillingConfig,
}

fn retry(err: impl Into<anyhow::Error>) -> JobError {
    JobError::Retry(err.into())
}

impl Reminders {
    pub fn new(db: Db, config: BillingConfig) -> Self {
        Self { db, config }
    }

    /// One pass at time `now`.
    pub async fn run(&self, now: OffsetDateTime) -> Result<Ran, JobError> {
        let pool = self.db.pool().map_err(|e| retry(anyhow::anyhow!("{e}")))?;
        let today = now.date();
        let mut ran = Ran::default();
        // 1. SENT and past due: OVERDUE, each with its audit row.
        let mut tx = pool.begin().await?;
        let late = sqlx::query_scalar!(
            "UPDATE invoices SET status = 'OVERDUE', updated_at = now()
             WHERE status = 'SENT' AND due_date < $1 RETURNING id",
            today
        )
        .fetch_all(&mut *tx)
        .await?;
        for id in &late {
            audit::record(
                &mut tx,
                Entry {
                    action: PaymentsAction::InvoiceOverdue,
                    actor_id: None,
                    subject_id: Some(*id),
                    details: json!({"from": "SENT", "to": "OVERDUE", "on": today.to_string()}),
                },
            )
            .await?;
        }
        tx.commit().await?;
        ran.overdue = late.len() as u64;
        // 2. The latest stage due of each OVERDUE invoice, once.
        let overdue = sqlx::query!(
            r#"SELECT id, due_date AS "due_date!" FROM invoices
               WHERE status = 'OVERDUE' AND due_date IS NOT NULL AND due_date <= $1"#,
            today
        )
        .fetch_all(pool)
        .await?;
        for invoice in overdue {
            let stage = self
                .config
                .reminder_days
                .iter()
                .copied()
                .filter(|days| invoice.due_date + Duration::days(i64::from(*days)) <= today)
                .max();
            if let Some(stage) = stage
                && self.remind(pool, invoice.id, stage).await?
            {
                ran.reminded += 1;
            }
        }
        Ok(ran)
    }

    /// Records stage `stage` of invoice `id` and mails it, in one transaction; false when the
    /// stage was sent before (or is being sent by another worker, which this one waits for).
    async fn remind(&self, pool: &sqlx::PgPool, id: Uuid, stage: u32) -> Result<bool, JobError> {
        let mut tx = pool.begin().await?;
        let inserted = sqlx::query!(
            "INSERT INTO invoice_reminders (invoice_id, stage) VALUES ($1, $2)
             ON CONFLICT DO NOTHING",
            id,
            i32::try_from(stage).map_err(retry)?
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
        let row = sqlx::query!(
            r#"SELECT i.number AS "number!", i.project_id, i.currency, i.due_date AS "due_date!",
                      (i.amount - i.credited - COALESCE((SELECT sum(p.amount - p.refunded) FROM payments p
                          WHERE p.invoice_id = i.id AND p.status IN ('CONFIRMED', 'REFUNDED')), 0))::text
                          AS "outstanding!"
               FROM invoices i WHERE i.id = $1 AND i.status = 'OVERDUE'"#,
            id
        )
        .fetch_optional(&mut *tx)
        .await?;
        // Paid or voided since the list was read: nothing to remind of, and the stage stays
        // unsent (rolled back with the transaction).
        let Some(row) = row else { return Ok(false) };
        let email = super::parties::mail_to(&mut tx, row.project_id)
            .await
            .map_err(|e| retry(anyhow::anyhow!("{e}")))?;
        let currency = Currency::parse("currency", &row.currency)
            .map_err(|e| retry(anyhow::anyhow!("{e}")))?;
        let outstanding = stored(&row.outstanding)
            .map_err(|e| retry(anyhow::anyhow!("{e}")))?
            .to_decimal(currency.exponent());
        let mailed = email.is_some();
        if let Some(to) = email {
            let pay = self
                .config
                .pay_base_url
                .as_ref()
                .map(|base| format!("Pay it here: {base}/invoices/{id}\n"))
                .unwrap_or_default();
            let text = format!(
                "Invoice {number} was due on {due} and {outstanding} {code} is still open.\n{pay}\nIf you have paid in the meantime, please ignore this reminder.\n",
                number = row.number,
                due = row.due_date,
                code = currency.code(),
            );
            let subject = format!("Reminder: invoice {} is overdue", row.number);
            let html = format!("<p>{}</p>", mail::escape_html(&text).replace('\n', "<br>"));
            mail::send(
                &mut tx,
                &Mail {
                    to: &to,
                    subject: &subject,
                    text: &text,
                    html: &html,
                },
            )
            .await
            .map_err(|e| retry(anyhow::anyhow!("{e}")))?;
        }
        audit::record(
            &mut tx,
            Entry {
                action: PaymentsAction::ReminderSent,
                actor_id: None,
                subject_id: Some(id),
                details: json!({"stage": stage, "mailed": mailed}),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

#[async_trait]
impl JobHandler for Reminders {
    #[tracing::instrument(name = "billing_reminders", skip_all, fields(job = %job.id))]
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        let Task::Remind = serde_json::from_str(&job.body)
            .map_err(|e| JobError::drop(format!("not a billing-reminders task: {e}")))?;
        let ran = self.run(OffsetDateTime::now_utc()).await?;
        tracing::info!(
            overdue = ran.overdue,
            reminded = ran.reminded,
            "billing reminders"
        );
        Ok(())
    }
}
