//! Reconciliation: the `reconcile` worker (daily when deployed, every `BILLING_SCHEDULE_SECONDS`
//! in the local gateway) and `gantry ledger reconcile`, which runs it once and prints what it
//! found.
//!
//! - **Stripe**: lists the events of the types this API handles since the last run (`GET
//!   /v1/events`, from a cursor kept in `reconcile_cursors`) and replays each through the same
//!   path as its webhook delivery, whose ledger dedup makes a known event a no-op. An event
//!   that changed something never arrived: a `missing` finding; one whose amount does not match
//!   our payment: an `amount` finding. Then each card payment we count as paid that changed in
//!   the same window is read back (`GET /v1/payment_intents/{id}`): one Stripe does not count
//!   as succeeded is an `extra` finding (we credit money Stripe never collected), one that
//!   collected another amount an `amount` finding. So is each card refund of ours: one whose
//!   status Stripe does not share is a `status` finding (a refund we count as returned that
//!   failed there, say), one of another amount an `amount` finding. Neither is changed: a
//!   person looks.
//! - **BTCPay**: re-reads each of our bitcoin payments still PENDING (made in the last 30 days)
//!   from BTCPay's API and applies what changed as its webhook would have: a settled or ended
//!   invoice whose delivery never came is a `missing` finding. The recently closed ones (paid,
//!   changed in the last two days) are read too: one BTCPay no longer counts as Settled (marked
//!   invalid there, say) is a `status` finding.
//! - **Chains**: every PENDING on-chain payment and payout is handed to the `chain-monitor`
//!   again, which re-reads it from its chain.
//! - **The ledger head** is anchored outside the database: a small JSON document of its
//!   sequence number and hash, stored through the IPFS store; its CID goes to
//!   `ledger_anchors` and the log. `gantry ledger verify --anchor <CID>` fails when the chain no
//!   longer leads to it.
//!
//! Every finding is written to `reconciliation_findings` with its audit row, in one
//! transaction, and listed at `GET /reconciliation` (ADMIN); one already on record (the same
//! provider, object and kind) is not written again, so a difference read on every run is one
//! finding. Nothing is "fixed" but by
//! replaying the provider's own event.

use super::billing::refunds::RefundStatus;
use super::btcpay::{self, Btcpay};
use super::ledger::{self, Verdict};
use super::onchain::Watch;
use super::settle::Outcome;
use super::stripe::{self, Stripe};
use crate::audit::{self, Entry};
use crate::db::Db;
use crate::domain::{Page, page_limit};
use crate::endpoint;
use crate::error::{AppError, AppResult};
use crate::extract::{Authorized, Json, Query};
use crate::function::needs::{DATABASE, PUBLIC_KEYS};
use crate::function::{FunctionSpec, Http, Schedule, Trigger};
use crate::ipfs::{self, IpfsConfig, IpfsStore};
use crate::payments::audit::PaymentsAction;
use crate::payments::money::Currency;
use crate::payments::state::PaymentsState;
use crate::queue::{Job, JobError, JobHandler, signing};
use async_trait::async_trait;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use std::sync::Arc;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// The queue (and function) name.
pub const QUEUE: &str = "reconcile";
/// The message a schedule sends.
pub const RUN: &str = r#"{"task":"reconcile"}"#;
/// How far back the first run lists Stripe's events (Stripe keeps 30 days).
const FIRST_LOOKBACK_SECS: i64 = 30 * 24 * 3600;
/// How far before the cursor each later run starts again: an event created while the previous
/// run was listing is listed now (its dedup makes the overlap free).
const OVERLAP_SECS: i64 = 3600;

/// `reconcile`: daily, on a schedule.
pub static RECONCILE: FunctionSpec = FunctionSpec {
    name: QUEUE,
    trigger: Trigger::Queue {
        build: |platform| Ok(Arc::new(Reconciler::from_platform(platform)?)),
        schedule: Some(Schedule {
            minutes: 24 * 60,
            body: RUN,
            local_every: Some("BILLING_SCHEDULE_SECONDS"),
            // One read-back per object changed since the last run, a request each.
            timeout_secs: Some(300),
        }),
    },
    needs: &[
        &DATABASE,
        &signing::NEED,
        &stripe::API_NEED,
        &btcpay::API_NEED,
        &crate::ipfs::config::NEED,
        // The ledger anchors it stores.
        &crate::ipfs::config::STORES,
    ],
};

/// `reconciliation`: the findings (ADMIN).
pub static RECONCILIATION: FunctionSpec = FunctionSpec {
    name: "reconciliation",
    trigger: Trigger::Http(&Http::new(
        |platform| Ok(PaymentsState::rows(platform)),
        &[endpoint!(list_findings)],
    )),
    needs: &[&DATABASE, &PUBLIC_KEYS],
};

/// A difference between our books and a provider's.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct Finding {
    pub id: Uuid,
    /// `stripe`, `btcpay`, a chain (`evm:<id>`), or `ledger`.
    pub provider: String,
    /// The provider's object or event.
    pub provider_ref: String,
    /// `missing` (the provider has it, we did not), `extra` (we have it, the provider does
    /// not), `amount` or `status` (both have it, differently).
    #[schema(example = "missing")]
    pub kind: String,
    pub detail: String,
    #[serde(with = "time::serde::rfc3339")]
    pub found_at: OffsetDateTime,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FindingQuery {
    /// 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

#[utoipa::path(get, path = "/reconciliation", tag = "billing", security(("bearer" = [])),
    params(FindingQuery),
    responses(
        (status = 200, description = "What reconciliation runs found, oldest first", body = Page<Finding>),
        (status = 403, description = "Not an ADMIN"),
    ))]
pub async fn list_findings(
    State(state): State<PaymentsState>,
    Authorized(_, _): Authorized<crate::extract::AdminOnly>,
    Query(query): Query<FindingQuery>,
) -> AppResult<Json<Page<Finding>>> {
    let limit = page_limit(query.limit).map_err(|e| AppError::Validation(vec![e]))?;
    let rows = sqlx::query_as!(
        Finding,
        "SELECT id, provider, provider_ref, kind, detail, found_at FROM reconciliation_findings
         WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2",
        query.cursor,
        i64::from(limit) + 1,
    )
    .fetch_all(state.db()?)
    .await?;
    Ok(Json(Page::of(rows, limit, |f| f.id)))
}

/// What one run did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Ran {
    /// Provider events read.
    pub events: usize,
    /// Objects re-read from their provider (BTCPay invoices) or handed to the chain monitor.
    pub rechecked: usize,
    /// Objects their provider could not be asked about this time (logged).
    pub unread: usize,
    /// Issued documents still without a PDF long after their issue, queued again.
    pub requeued: u64,
    pub findings: Vec<Finding>,
    /// The ledger head's anchor, when an IPFS store is configured.
    pub anchor: Option<String>,
}

pub struct Reconciler {
    db: Db,
    stripe: Option<Arc<Stripe>>,
    btcpay: Option<Arc<Btcpay>>,
    ipfs: Arc<dyn IpfsStore>,
}

fn retry(err: impl std::fmt::Display) -> JobError {
    JobError::Retry(anyhow::anyhow!("{err}"))
}

impl Reconciler {
    /// Each provider that is `None` (not configured) is skipped.
    pub fn new(
        db: Db,
        stripe: Option<Arc<Stripe>>,
        btcpay: Option<Arc<Btcpay>>,
        ipfs: Arc<dyn IpfsStore>,
    ) -> Self {
        Self {
            db,
            stripe,
            btcpay,
            ipfs,
        }
    }

    /// From the platform's environment (what the worker and the CLI use).
    pub fn from_platform(
        platform: &crate::platform::Platform,
    ) -> Result<Self, crate::platform::StartupError> {
        let stripe = Stripe::from_env(&platform.env)?;
        let btcpay = Btcpay::from_env(&platform.env)?;
        let ipfs = IpfsConfig::from_env(&platform.env, crate::runtime::under_lambda())?;
        Ok(Self::new(
            platform.db.clone(),
            stripe.secret_key().is_ok().then(|| Arc::new(stripe)),
            btcpay.configured().then(|| Arc::new(btcpay)),
            ipfs.build(&platform.env),
        ))
    }

    /// One run: every provider, then the anchor.
    pub async fn run(&self) -> AppResult<Ran> {
        let pool = self.db.pool()?;
        let run_id = Uuid::now_v7();
        let mut ran = Ran::default();
        if let Some(stripe) = &self.stripe {
            self.stripe_events(pool, stripe, run_id, &mut ran).await?;
        }
        if let Some(btcpay) = &self.btcpay {
            bitcoin(pool, btcpay, run_id, &mut ran).await?;
        }
        chains(pool, &mut ran).await?;
        ran.requeued = super::billing::render::requeue_unrendered(pool).await?;
        ran.anchor = Some(anchor(pool, &*self.ipfs).await?);
        Ok(ran)
    }

    async fn stripe_events(
        &self,
        pool: &PgPool,
        stripe: &Stripe,
        run_id: Uuid,
        ran: &mut Ran,
    ) -> AppResult<()> {
        let cursor =
            sqlx::query_scalar!("SELECT position FROM reconcile_cursors WHERE provider = 'stripe'")
                .fetch_optional(pool)
                .await?;
        let since = match cursor {
            Some(position) => position - OVERLAP_SECS,
            None => OffsetDateTime::now_utc().unix_timestamp() - FIRST_LOOKBACK_SECS,
        };
        let mut newest = cursor.unwrap_or(since);
        let mut after: Option<String> = None;
        loop {
            let page = stripe
                .list_events(stripe::webhook::HANDLED, since, after.as_deref())
                .await?;
            for event in &page.data {
                ran.events += 1;
                let id = event["id"].as_str().unwrap_or("?").to_owned();
                let kind = event["type"].as_str().unwrap_or("?").to_owned();
                newest = newest.max(event["created"].as_i64().unwrap_or(newest));
                let body = serde_json::to_vec(event).map_err(AppError::internal)?;
                let finding = match stripe::webhook::replay(pool, &body).await {
                    Ok(Outcome::Applied) => Some((
                        "missing",
                        format!("{kind} never arrived as a webhook; replayed from Stripe's events"),
                    )),
                    Ok(Outcome::Rejected) => Some((
                        "amount",
                        format!("{kind} does not match our payment (amount, currency or invoice)"),
                    )),
                    Ok(Outcome::Duplicate | Outcome::Ignored) => None,
                    Err(err) => Some(("status", format!("{kind} could not be applied: {err}"))),
                };
                if let Some((kind, detail)) = finding {
                    ran.findings
                        .extend(record(pool, run_id, "stripe", &id, kind, &detail).await?);
                }
                after = Some(id);
            }
            if !page.has_more || page.data.is_empty() {
                break;
            }
        }
        // The events are applied: the cursor moves now, whatever the read-backs meet.
        move_cursor(pool, "stripe", newest).await?;
        self.stripe_payments(pool, stripe, run_id, since, ran)
            .await?;
        stripe_refunds(pool, stripe, run_id, since, ran).await
    }

    /// Each card payment we count as paid that changed since `since` (unix seconds), as
    /// Stripe has it now: one it does not count as succeeded is `extra`.
    async fn stripe_payments(
        &self,
        pool: &PgPool,
        stripe: &Stripe,
        run_id: Uuid,
        since: i64,
        ran: &mut Ran,
    ) -> AppResult<()> {
        let paid = sqlx::query!(
            r#"SELECT provider_ref, amount::text AS "amount!", currency FROM payments
               WHERE provider = 'stripe' AND status IN ('CONFIRMED', 'REFUNDED')
                 AND updated_at >= to_timestamp($1::bigint::float8) ORDER BY id"#,
            since
        )
        .fetch_all(pool)
        .await?;
        for payment in paid {
            let answer = stripe
                .retrieve_intent(&payment.provider_ref)
                .await
                .map(|intent| Theirs {
                    same_status: intent.status == "succeeded",
                    status: intent.status,
                    amount: intent.amount_received,
                    currency: intent.currency,
                });
            let ours = Ours {
                provider_ref: &payment.provider_ref,
                amount: &payment.amount,
                currency: &payment.currency,
                what: "payment",
                status: "paid",
                other_status: "extra",
            };
            compare(pool, run_id, ran, &ours, answer).await?;
        }
        Ok(())
    }
}

/// One object of ours, for [`compare`]: what we recorded, and the kind of finding another
/// status at the provider is.
struct Ours<'a> {
    provider_ref: &'a str,
    amount: &'a str,
    currency: &'a str,
    what: &'a str,
    status: &'a str,
    other_status: &'static str,
}

/// The same object as Stripe has it.
struct Theirs {
    status: String,
    same_status: bool,
    /// In Stripe's units of `currency`.
    amount: u64,
    currency: String,
}

/// Records how Stripe's `answer` differs from `ours`, if it does (see [`read_back`]).
async fn compare(
    pool: &PgPool,
    run_id: Uuid,
    ran: &mut Ran,
    ours: &Ours<'_>,
    answer: AppResult<Theirs>,
) -> AppResult<()> {
    let what = ours.what;
    let (kind, detail) = match read_back(answer, ran) {
        ReadBack::Unread => return Ok(()),
        ReadBack::Unknown => ("extra", format!("Stripe has no such {what} of ours")),
        ReadBack::Read(theirs) => {
            let currency = Currency::parse("currency", ours.currency)
                .map_err(|e| AppError::internal(anyhow::anyhow!("{e}")))?;
            let amount = crate::payments::model::stored(ours.amount)?;
            let same_amount = stripe::units::from_stripe(theirs.amount, &currency).ok()
                == Some(amount)
                && theirs.currency.eq_ignore_ascii_case(currency.code());
            if !theirs.same_status {
                (
                    ours.other_status,
                    format!(
                        "our {what} is {}; Stripe's is {}",
                        ours.status, theirs.status
                    ),
                )
            } else if !same_amount {
                (
                    "amount",
                    format!(
                        "Stripe's {what} is {} (its units) of {}; ours {amount} minor units of {}",
                        theirs.amount,
                        theirs.currency,
                        currency.code()
                    ),
                )
            } else {
                return Ok(());
            }
        }
    };
    ran.findings
        .extend(record(pool, run_id, "stripe", ours.provider_ref, kind, &detail).await?);
    Ok(())
}

/// Each card refund of ours that changed since `since` (unix seconds), as Stripe has it now:
/// another status there is a `status` finding.
async fn stripe_refunds(
    pool: &PgPool,
    stripe: &Stripe,
    run_id: Uuid,
    since: i64,
    ran: &mut Ran,
) -> AppResult<()> {
    let refunds = sqlx::query!(
        r#"SELECT provider_ref AS "provider_ref!", amount::text AS "amount!", currency,
                  status AS "status: RefundStatus" FROM refunds
           WHERE provider = 'stripe' AND provider_ref IS NOT NULL
             AND updated_at >= to_timestamp($1::bigint::float8) ORDER BY id"#,
        since
    )
    .fetch_all(pool)
    .await?;
    for refund in refunds {
        let answer = stripe
            .retrieve_refund(&refund.provider_ref)
            .await
            .map(|theirs| Theirs {
                same_status: match refund.status {
                    RefundStatus::Succeeded => theirs.status == "succeeded",
                    RefundStatus::Failed => {
                        matches!(theirs.status.as_str(), "failed" | "canceled")
                    }
                    RefundStatus::Pending => {
                        matches!(theirs.status.as_str(), "pending" | "requires_action")
                    }
                },
                status: theirs.status,
                amount: theirs.amount,
                currency: theirs.currency,
            });
        let status = format!("{:?}", refund.status).to_uppercase();
        let ours = Ours {
            provider_ref: &refund.provider_ref,
            amount: &refund.amount,
            currency: &refund.currency,
            what: "refund",
            status: &status,
            other_status: "status",
        };
        compare(pool, run_id, ran, &ours, answer).await?;
    }
    Ok(())
}

/// Each bitcoin payment still PENDING, as BTCPay's API has it now.
async fn bitcoin(pool: &PgPool, btcpay: &Btcpay, run_id: Uuid, ran: &mut Ran) -> AppResult<()> {
    let open = sqlx::query_scalar!(
        "SELECT provider_ref FROM payments WHERE provider = 'btcpay' AND status = 'PENDING'
           AND created_at > now() - interval '30 days' ORDER BY id"
    )
    .fetch_all(pool)
    .await?;
    for invoice in open {
        ran.rechecked += 1;
        let finding = match btcpay::webhook::replay(pool, btcpay, &invoice).await? {
            Some(Outcome::Applied) => Some((
                "missing",
                "BTCPay's invoice ended (settled, expired or invalid) without a delivery; applied",
            )),
            Some(Outcome::Rejected) => {
                Some(("amount", "BTCPay's invoice does not match our payment"))
            }
            _ => None,
        };
        if let Some((kind, detail)) = finding {
            ran.findings
                .extend(record(pool, run_id, "btcpay", &invoice, kind, detail).await?);
        }
    }
    // Recently closed: the paid ones that changed since the last run (an hour's overlap).
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let since =
        sqlx::query_scalar!("SELECT position FROM reconcile_cursors WHERE provider = 'btcpay'")
            .fetch_optional(pool)
            .await?
            .map_or(now - FIRST_LOOKBACK_SECS, |position| {
                position - OVERLAP_SECS
            });
    let paid = sqlx::query_scalar!(
        "SELECT provider_ref FROM payments WHERE provider = 'btcpay'
           AND status IN ('CONFIRMED', 'REFUNDED') AND updated_at >= to_timestamp($1::bigint::float8)
         ORDER BY id",
        since
    )
    .fetch_all(pool)
    .await?;
    for invoice in paid {
        let detail = match read_back(btcpay.standing(&invoice).await, ran) {
            ReadBack::Read((status, additional)) => {
                if btcpay::webhook::counts_as_paid(&status, additional.as_deref()) {
                    continue;
                }
                format!(
                    "we count this payment as paid; BTCPay's invoice is {status} ({})",
                    additional.as_deref().unwrap_or("None")
                )
            }
            ReadBack::Unknown => "we count this payment as paid; BTCPay has no such invoice".into(),
            ReadBack::Unread => continue,
        };
        ran.findings
            .extend(record(pool, run_id, "btcpay", &invoice, "status", &detail).await?);
    }
    move_cursor(pool, "btcpay", now).await
}

async fn move_cursor(pool: &PgPool, provider: &str, position: i64) -> AppResult<()> {
    sqlx::query!(
        "INSERT INTO reconcile_cursors (provider, position) VALUES ($1, $2)
         ON CONFLICT (provider) DO UPDATE SET position = $2, updated_at = now()",
        provider,
        position
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// One object read back from its provider.
enum ReadBack<T> {
    Read(T),
    /// The provider does not know it (a 404): a finding.
    Unknown,
    /// The provider could not be asked now (down, throttled, refusing): logged and counted;
    /// the run goes on, and the object is read on a later run while its window covers it.
    Unread,
}

/// Sorts a read-back's answer, counting the object as rechecked (or unread).
fn read_back<T>(answer: AppResult<T>, ran: &mut Ran) -> ReadBack<T> {
    match answer {
        Ok(read) => {
            ran.rechecked += 1;
            ReadBack::Read(read)
        }
        // The providers' refusals name Stripe's code or BTCPay's status (`upstream::call`).
        Err(AppError::BadGateway(detail))
            if detail.contains("(resource_missing)") || detail.contains("(404") =>
        {
            ran.rechecked += 1;
            ReadBack::Unknown
        }
        Err(err) => {
            tracing::warn!(error = %err, "an object could not be read back; the next run tries again");
            ran.unread += 1;
            ReadBack::Unread
        }
    }
}

/// Every PENDING on-chain payment and payout, handed to the chain monitor again.
async fn chains(pool: &PgPool, ran: &mut Ran) -> AppResult<()> {
    let mut tx = pool.begin().await?;
    let payments = sqlx::query_scalar!(
        "SELECT id FROM payments WHERE provider LIKE 'evm:%' AND status = 'PENDING'"
    )
    .fetch_all(&mut *tx)
    .await?;
    let payouts = sqlx::query_scalar!("SELECT id FROM payouts WHERE status = 'PENDING'")
        .fetch_all(&mut *tx)
        .await?;
    let watches = payments
        .into_iter()
        .map(|payment_id| Watch::Payment { payment_id })
        .chain(
            payouts
                .into_iter()
                .map(|payout_id| Watch::Payout { payout_id }),
        );
    for watch in watches {
        ran.rechecked += 1;
        let body = serde_json::to_string(&watch).map_err(AppError::internal)?;
        crate::queue::enqueue(
            &mut tx,
            super::onchain::QUEUE,
            &body,
            std::time::Duration::ZERO,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Writes a finding and its audit row, in one transaction; `None` when the same difference
/// (provider, object, kind) is already on record (its unique index: two runs at once record it
/// once).
async fn record(
    pool: &PgPool,
    run_id: Uuid,
    provider: &str,
    provider_ref: &str,
    kind: &str,
    detail: &str,
) -> AppResult<Option<Finding>> {
    let mut tx = pool.begin().await?;
    let finding = sqlx::query_as!(
        Finding,
        "INSERT INTO reconciliation_findings (id, run_id, provider, provider_ref, kind, detail)
         VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (provider, provider_ref, kind) DO NOTHING
         RETURNING id, provider, provider_ref, kind, detail, found_at",
        Uuid::now_v7(),
        run_id,
        provider,
        provider_ref,
        kind,
        detail,
    )
    .fetch_optional(&mut *tx)
    .await?;
    let Some(finding) = finding else {
        return Ok(None);
    };
    audit::record(
        &mut tx,
        Entry {
            action: PaymentsAction::ReconciliationFinding,
            actor_id: None,
            subject_id: Some(finding.id),
            details: json!({"provider": provider, "provider_ref": provider_ref, "kind": kind}),
        },
    )
    .await?;
    tx.commit().await?;
    tracing::warn!(
        provider,
        provider_ref,
        kind,
        detail,
        "reconciliation finding"
    );
    Ok(Some(finding))
}

/// The anchor document of a ledger head.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct AnchorDoc {
    ledger: String,
    seq: i64,
    /// Hex of the head row's hash.
    hash: String,
}

/// Stores the ledger head as a document through the IPFS store and records its CID; a head
/// anchored before is not stored again (its CID is returned).
pub async fn anchor(pool: &PgPool, store: &dyn IpfsStore) -> AppResult<String> {
    let head = sqlx::query!("SELECT seq, hash FROM ledger_head")
        .fetch_one(pool)
        .await?;
    if let Some(cid) = sqlx::query_scalar!(
        "SELECT cid FROM ledger_anchors WHERE seq = $1 AND hash = $2 ORDER BY id DESC LIMIT 1",
        head.seq,
        head.hash,
    )
    .fetch_optional(pool)
    .await?
    {
        return Ok(cid);
    }
    let doc = AnchorDoc {
        ledger: "gantry payment_events".into(),
        seq: head.seq,
        hash: hex(&head.hash),
    };
    let bytes = serde_json::to_vec(&doc).map_err(AppError::internal)?;
    let stored = ipfs::store::store(store, &bytes).await?;
    let cid = ipfs::to_text(&stored.file.root);
    sqlx::query!(
        "INSERT INTO ledger_anchors (id, seq, hash, cid) VALUES ($1, $2, $3, $4)",
        Uuid::now_v7(),
        head.seq,
        head.hash,
        cid,
    )
    .execute(pool)
    .await?;
    tracing::info!(seq = head.seq, cid = %cid, "ledger head anchored");
    Ok(cid)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The chain checked end to end, and then against the anchor `cid`: its row must still carry
/// the anchored hash. A chain rewritten consistently after the anchor passes the first check
/// and fails this one.
pub async fn verify_anchor(
    conn: &mut PgConnection,
    store: &dyn IpfsStore,
    cid: &str,
) -> AppResult<Verdict> {
    let verdict = ledger::verify(&mut *conn).await?;
    if matches!(verdict, Verdict::Broken { .. }) {
        return Ok(verdict);
    }
    let parsed = ipfs::parse_cid(cid).ok_or_else(|| AppError::invalid("anchor", "is not a CID"))?;
    let bytes = ipfs::store::read(store, &parsed)
        .await?
        .ok_or_else(|| AppError::invalid("anchor", "is not in the IPFS store"))?;
    let doc: AnchorDoc = serde_json::from_slice(&bytes)
        .map_err(|_| AppError::invalid("anchor", "is not a ledger anchor"))?;
    if doc.seq == 0 {
        return Ok(verdict);
    }
    let row = sqlx::query_scalar!("SELECT hash FROM payment_events WHERE seq = $1", doc.seq)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(match row {
        Some(hash) if hex(&hash) == doc.hash => verdict,
        Some(_) => Verdict::Broken {
            seq: doc.seq,
            reason: "the row's hash is not the anchored one (history was rewritten)".into(),
        },
        None => Verdict::Broken {
            seq: doc.seq,
            reason: "the anchored row is gone".into(),
        },
    })
}

#[derive(Debug, Deserialize)]
#[serde(tag = "task", rename_all = "kebab-case", deny_unknown_fields)]
enum Task {
    Reconcile,
}

#[async_trait]
impl JobHandler for Reconciler {
    #[tracing::instrument(name = "reconcile", skip_all, fields(job = %job.id))]
    async fn handle(&self, job: &Job) -> Result<(), JobError> {
        let Task::Reconcile = serde_json::from_str(&job.body)
            .map_err(|e| JobError::drop(format!("not a reconcile task: {e}")))?;
        let ran = self.run().await.map_err(retry)?;
        tracing::info!(events = ran.events, findings = ran.findings.len(), anchor = ?ran.anchor, "reconciled");
        Ok(())
    }
}
