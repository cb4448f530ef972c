//! On-chain payments on a real chain (anvil): native and ERC-20 transfers submitted over HTTP,
//! watched by the chain-monitor worker until final; reverted, misdirected, under-paid, unseen
//! and reorganised transactions; one transaction for two invoices; the RPC down; redelivered
//! and concurrent jobs.

use axum::http::StatusCode;
use gantry::function::Trigger;
use gantry::queue::{Job, JobError, JobHandler};
use gantry_tests::anvil::Anvil;
use gantry_tests::{Cast, TestApp};
use serde_json::{Value, json};
use sqlx::PgPool;
use std::sync::Arc;

const TEST_TOKEN: &str = include_str!("../../contracts/TestToken.bin");
const ETH: u128 = 1_000_000_000_000_000_000;
const CHAIN: u64 = 31337;
/// anvil's well-known account 3: the payout account.
const PAYOUT_KEY: &str = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
const PAYOUT_ACCOUNT: &str = "0x90f79bf6eb2c4f870365e785982e1f101e93b906";
const PAYEE: &str = "0x000000000000000000000000000000000000beef";

struct Chain {
    app: TestApp,
    cast: Cast,
    anvil: Anvil,
    /// anvil's accounts: 0 pays, 1 receives (our receiver), 2 is someone else.
    accounts: Vec<String>,
    token: String,
    monitor: Arc<dyn JobHandler>,
}

impl Chain {
    /// anvil with a token deployed, and the app taking ETH and USDC (the token) on it, final
    /// after 3 blocks. `None` where anvil is missing on a developer's machine (CI fails).
    async fn start(pool: PgPool) -> Option<Self> {
        Self::start_with(pool, &[]).await
    }

    /// [`Self::start`] with more variables (they win).
    async fn start_with(pool: PgPool, extra: &[(&str, &str)]) -> Option<Self> {
        let anvil = Anvil::start_or_skip().await?;
        let supply = format!("{:064x}", 1_000_000_000_000u128);
        let token = anvil.deploy(TEST_TOKEN, &supply).await.unwrap();
        let rpc = anvil.url.clone();
        Some(Self::on(pool, anvil, &token, &rpc, extra).await)
    }

    async fn on(
        pool: PgPool,
        anvil: Anvil,
        token: &str,
        rpc: &str,
        extra: &[(&str, &str)],
    ) -> Self {
        let accounts = anvil.accounts().await.unwrap();
        let chains = json!({CHAIN.to_string(): {
            "receiver": accounts[1], "confirmations": 3,
            "assets": {"ETH": "native", "USDC": token},
        }})
        .to_string();
        let urls = format!("{CHAIN}={rpc}");
        let limits = json!({"ETH": (5 * ETH).to_string(), "USDC": "100000000"}).to_string();
        let mut env = vec![
            ("CHAIN_RPC_URLS", urls.as_str()),
            ("PAYMENT_CHAINS", chains.as_str()),
            ("PAYOUT_PRIVATE_KEY", PAYOUT_KEY),
            ("PAYOUT_DAILY_LIMITS", limits.as_str()),
        ];
        env.extend_from_slice(extra);
        let app = TestApp::with(pool, &env);
        let cast = Cast::on(&app).await;
        let Trigger::Queue { build, .. } = gantry::app::CHAIN_MONITOR.trigger else {
            panic!("chain-monitor is a queue worker");
        };
        let monitor = build(&app.platform).unwrap();
        Self {
            app,
            cast,
            anvil,
            accounts,
            token: token.to_owned(),
            monitor,
        }
    }

    /// A SENT invoice of `amount` minor units of `currency` on a project of the owner client's.
    async fn invoice(&self, amount: u128, currency: &str) -> String {
        let project = self
            .app
            .post("/projects")
            .bearer(&self.cast.staff)
            .json(&json!({"name": "Paid on chain", "client_id": self.cast.owner_id}))
            .send()
            .await;
        assert_eq!(project.status, StatusCode::CREATED, "{}", project.body);
        let res = self
            .app
            .post("/invoices")
            .bearer(&self.cast.staff)
            .json(&json!({"project_id": project.str("id"), "amount": amount.to_string(), "currency": currency}))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        let id = res.str("id");
        let sent = self
            .app
            .put(&format!("/invoices/{id}"))
            .bearer(&self.cast.staff)
            .json(&json!({"status": "SENT"}))
            .send()
            .await;
        assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
        id
    }

    /// Pays `value` wei from account 0 to `to`.
    async fn pay_eth(&self, to: &str, value: u128) -> String {
        self.anvil
            .send(&self.accounts[0], to, value, "0x")
            .await
            .unwrap()
    }

    /// Transfers `value` token units from `from` to `to` (reverts if `from` has too few).
    async fn pay_token(&self, from: &str, to: &str, value: u128) -> String {
        let data = format!("0xa9059cbb{:0>64}{value:064x}", &to[2..].to_lowercase());
        self.anvil.send(from, &self.token, 0, &data).await.unwrap()
    }

    async fn submit(&self, invoice: &str, tx_hash: &str) -> gantry_tests::TestResponse {
        self.app
            .post(&format!("/invoices/{invoice}/blockchain-payment"))
            .bearer(&self.cast.owner)
            .json(&json!({"chain_id": CHAIN, "tx_hash": tx_hash}))
            .send()
            .await
    }

    async fn payout(&self, who: &str, body: &Value) -> gantry_tests::TestResponse {
        self.app
            .post("/payouts")
            .bearer(who)
            .json(body)
            .send()
            .await
    }

    async fn eth_balance(&self, address: &str) -> u128 {
        let hex = self
            .anvil
            .rpc("eth_getBalance", json!([address, "latest"]))
            .await
            .unwrap();
        u128::from_str_radix(hex.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    }

    async fn token_balance(&self, address: &str) -> u128 {
        let data = format!("0x70a08231{:0>64}", &address[2..]);
        let hex = self
            .anvil
            .rpc(
                "eth_call",
                json!([{"to": self.token, "data": data}, "latest"]),
            )
            .await
            .unwrap();
        u128::from_str_radix(hex.as_str().unwrap().trim_start_matches("0x"), 16).unwrap()
    }

    async fn payout_status(&self, id: &str) -> String {
        sqlx::query_scalar("SELECT status::text FROM payouts WHERE id = $1::uuid")
            .bind(id)
            .fetch_one(&self.app.pool)
            .await
            .unwrap()
    }

    /// The watch job the submission of `payment` (or the payout) enqueued.
    async fn job(&self, payment: &str) -> Job {
        let (id, body): (uuid::Uuid, String) = sqlx::query_as(
            "SELECT id, body FROM queue_messages WHERE queue = 'chain-monitor' AND body LIKE '%' || $1 || '%'",
        )
        .bind(payment)
        .fetch_one(&self.app.pool)
        .await
        .unwrap();
        Job {
            id: id.to_string(),
            body,
            attempt: 1,
        }
    }

    async fn watch(&self, payment: &str) -> Result<(), JobError> {
        self.monitor.handle(&self.job(payment).await).await
    }

    async fn invoice_state(&self, id: &str) -> Value {
        let res = self
            .app
            .get(&format!("/invoices/{id}"))
            .bearer(&self.cast.staff)
            .send()
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        res.body
    }

    async fn payment(&self, invoice: &str) -> Value {
        let res = self
            .app
            .get(&format!("/invoices/{invoice}/payments"))
            .bearer(&self.cast.staff)
            .send()
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        res.body["items"][0].clone()
    }

    /// The ledger's event types, in order.
    async fn ledger(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT event_type FROM payment_events ORDER BY seq")
            .fetch_all(&self.app.pool)
            .await
            .unwrap()
    }
}

fn later(result: Result<(), JobError>) {
    assert!(
        matches!(result, Err(JobError::Later(_))),
        "expected later, got {result:?}"
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_native_payment_is_credited_once_after_its_confirmations(pool: PgPool) {
    let Some(chain) = Chain::start(pool).await else {
        return;
    };
    let invoice = chain.invoice(ETH, "ETH").await;
    let hash = chain.pay_eth(&chain.accounts[1], ETH).await;
    let res = chain.submit(&invoice, &hash).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    assert_eq!(res.body["status"], "PENDING");
    assert_eq!(res.body["transaction_id"], hash.to_lowercase());
    assert_eq!(res.body["provider"], "evm:31337");
    assert_eq!(res.body["payment_method"], "BLOCKCHAIN_TOKEN");
    let payment = res.str("id");
    assert_eq!(
        chain.invoice_state(&invoice).await["blockchain_tx_hash"],
        hash.to_lowercase()
    );

    // Included: 1 confirmation of 3.
    later(chain.watch(&payment).await);
    chain.anvil.mine(1).await.unwrap();
    later(chain.watch(&payment).await);
    assert_eq!(chain.payment(&invoice).await["status"], "PENDING");
    assert_eq!(chain.invoice_state(&invoice).await["status"], "SENT");

    chain.anvil.mine(1).await.unwrap();
    chain.watch(&payment).await.unwrap();
    let paid = chain.payment(&invoice).await;
    assert_eq!(paid["status"], "CONFIRMED");
    assert_eq!(paid["amount"], ETH.to_string());
    let state = chain.invoice_state(&invoice).await;
    assert_eq!(state["status"], "PAID");
    assert_eq!(state["amount_paid"], ETH.to_string());

    // The same job delivered three more times, twice at once: still one credit.
    chain.watch(&payment).await.unwrap();
    let (a, b) = tokio::join!(chain.watch(&payment), chain.watch(&payment));
    a.unwrap();
    b.unwrap();
    assert_eq!(chain.ledger().await, ["chain.confirmed"]);
    let mut conn = chain.app.pool.acquire().await.unwrap();
    assert_eq!(
        gantry::payments::ledger::verify(&mut conn).await.unwrap(),
        gantry::payments::ledger::Verdict::Intact { rows: 1 }
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn an_erc20_payment_is_credited_from_its_transfer_log(pool: PgPool) {
    let Some(chain) = Chain::start(pool).await else {
        return;
    };
    let invoice = chain.invoice(25_000_000, "USDC").await;
    let hash = chain
        .pay_token(&chain.accounts[0], &chain.accounts[1], 25_000_000)
        .await;
    let payment = chain.submit(&invoice, &hash).await.str("id");
    chain.anvil.mine(2).await.unwrap();
    chain.watch(&payment).await.unwrap();
    assert_eq!(chain.payment(&invoice).await["status"], "CONFIRMED");
    assert_eq!(chain.invoice_state(&invoice).await["status"], "PAID");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn an_underpayment_is_recorded_as_paid_and_the_rest_is_still_due(pool: PgPool) {
    let Some(chain) = Chain::start(pool).await else {
        return;
    };
    let invoice = chain.invoice(ETH, "ETH").await;
    let first = chain.pay_eth(&chain.accounts[1], ETH / 4).await;
    let payment = chain.submit(&invoice, &first).await.str("id");
    chain.anvil.mine(2).await.unwrap();
    chain.watch(&payment).await.unwrap();
    let state = chain.invoice_state(&invoice).await;
    assert_eq!(state["status"], "SENT");
    assert_eq!(state["amount_paid"], (ETH / 4).to_string());
    assert_eq!(
        chain.payment(&invoice).await["amount"],
        (ETH / 4).to_string()
    );

    // The rest, over-paid a little: PAID, and what was paid is what the chain says.
    let second = chain.pay_eth(&chain.accounts[1], ETH).await;
    let res = chain.submit(&invoice, &second).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    chain.anvil.mine(2).await.unwrap();
    chain.watch(&res.str("id")).await.unwrap();
    let state = chain.invoice_state(&invoice).await;
    assert_eq!(state["status"], "PAID");
    assert_eq!(state["amount_paid"], (ETH + ETH / 4).to_string());
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn reverted_misdirected_and_wrong_asset_transactions_fail_and_credit_nothing(pool: PgPool) {
    let Some(chain) = Chain::start(pool).await else {
        return;
    };
    // To someone else.
    let elsewhere = chain.invoice(ETH, "ETH").await;
    let hash = chain.pay_eth(&chain.accounts[2], ETH).await;
    let misdirected = chain.submit(&elsewhere, &hash).await.str("id");
    // A token transfer from an account that holds none: mined, reverted.
    let reverted_invoice = chain.invoice(5_000_000, "USDC").await;
    let hash = chain
        .pay_token(&chain.accounts[2], &chain.accounts[1], 5_000_000)
        .await;
    let reverted = chain.submit(&reverted_invoice, &hash).await.str("id");
    // ETH sent to our receiver for a USDC invoice: no token moved.
    let wrong_asset_invoice = chain.invoice(5_000_000, "USDC").await;
    let hash = chain.pay_eth(&chain.accounts[1], 5_000_000).await;
    let wrong_asset = chain.submit(&wrong_asset_invoice, &hash).await.str("id");

    chain.anvil.mine(3).await.unwrap();
    for payment in [&misdirected, &reverted, &wrong_asset] {
        chain.watch(payment).await.unwrap();
    }
    for invoice in [&elsewhere, &reverted_invoice, &wrong_asset_invoice] {
        assert_eq!(chain.payment(invoice).await["status"], "FAILED");
        let state = chain.invoice_state(invoice).await;
        assert_eq!(state["status"], "SENT");
        assert_eq!(state["amount_paid"], "0");
    }
    assert_eq!(
        chain.ledger().await,
        ["chain.pays_nothing", "chain.reverted", "chain.pays_nothing"]
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_reorganised_transaction_is_never_credited_from_its_old_block(pool: PgPool) {
    let Some(chain) = Chain::start(pool).await else {
        return;
    };
    let invoice = chain.invoice(ETH, "ETH").await;
    let fork = chain.anvil.snapshot().await.unwrap();
    let hash = chain.pay_eth(&chain.accounts[1], ETH).await;
    let payment = chain.submit(&invoice, &hash).await.str("id");
    chain.anvil.mine(1).await.unwrap();
    later(chain.watch(&payment).await);

    // The blocks holding it are replaced by a longer chain without it.
    chain.anvil.revert(&fork).await.unwrap();
    chain.anvil.mine(5).await.unwrap();
    later(chain.watch(&payment).await);
    assert_eq!(chain.payment(&invoice).await["status"], "PENDING");
    assert_eq!(chain.invoice_state(&invoice).await["status"], "SENT");
    assert!(chain.ledger().await.is_empty());
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_transaction_never_seen_fails_once_its_watch_ends(pool: PgPool) {
    let Some(chain) = Chain::start(pool).await else {
        return;
    };
    let invoice = chain.invoice(ETH, "ETH").await;
    let nowhere = format!("0x{}", "ab".repeat(32));
    let payment = chain.submit(&invoice, &nowhere).await.str("id");
    later(chain.watch(&payment).await);
    assert_eq!(chain.payment(&invoice).await["status"], "PENDING");

    sqlx::query("UPDATE chain_payments SET watch_until = now() - interval '1 second'")
        .execute(&chain.app.pool)
        .await
        .unwrap();
    chain.watch(&payment).await.unwrap();
    assert_eq!(chain.payment(&invoice).await["status"], "FAILED");
    assert_eq!(chain.ledger().await, ["chain.unseen"]);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn with_the_rpc_down_the_job_comes_back_and_nothing_is_credited(pool: PgPool) {
    let Some(anvil) = Anvil::start_or_skip().await else {
        return;
    };
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let token = format!("0x{}", "11".repeat(20));
    let chain = Chain::on(pool, anvil, &token, &dead, &[]).await;
    let invoice = chain.invoice(ETH, "ETH").await;
    let hash = chain.pay_eth(&chain.accounts[1], ETH).await;
    let payment = chain.submit(&invoice, &hash).await.str("id");
    let result = chain.watch(&payment).await;
    assert!(matches!(result, Err(JobError::Retry(_))), "{result:?}");
    assert_eq!(chain.payment(&invoice).await["status"], "PENDING");
    assert!(chain.ledger().await.is_empty());
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn one_transaction_pays_one_invoice_ever(pool: PgPool) {
    let Some(chain) = Chain::start(pool).await else {
        return;
    };
    let first = chain.invoice(ETH, "ETH").await;
    let second = chain.invoice(ETH, "ETH").await;
    let hash = chain.pay_eth(&chain.accounts[1], ETH).await;

    // Ten submissions at once for the first invoice: one payment, one watch job.
    let answers = futures::future::join_all((0..10).map(|_| chain.submit(&first, &hash))).await;
    let ids: std::collections::HashSet<String> = answers
        .iter()
        .map(|res| {
            assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
            res.str("id")
        })
        .collect();
    assert_eq!(ids.len(), 1);
    let jobs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM queue_messages WHERE queue = 'chain-monitor'")
            .fetch_one(&chain.app.pool)
            .await
            .unwrap();
    assert_eq!(jobs, 1);

    // Upper case is the same hash; another invoice may not claim it.
    let res = chain
        .submit(&second, &hash.to_uppercase().replacen("0X", "0x", 1))
        .await;
    res.problem(409);
    assert!(chain.payment(&second).await.is_null());
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_submission_is_checked_before_anything_is_recorded(pool: PgPool) {
    let Some(chain) = Chain::start(pool).await else {
        return;
    };
    let invoice = chain.invoice(ETH, "ETH").await;
    let euros = chain.invoice(100, "EUR").await;
    let hash = format!("0x{}", "cd".repeat(32));
    let post = |invoice: String, body: Value| {
        let app = &chain.app;
        let owner = chain.cast.owner.clone();
        async move {
            app.post(&format!("/invoices/{invoice}/blockchain-payment"))
                .bearer(&owner)
                .json(&body)
                .send()
                .await
        }
    };
    let res = post(
        invoice.clone(),
        json!({"chain_id": CHAIN, "tx_hash": "0x1234"}),
    )
    .await;
    assert_eq!(res.problem(400)["errors"][0]["field"], "tx_hash");
    let res = post(invoice.clone(), json!({"chain_id": 1, "tx_hash": hash})).await;
    assert_eq!(res.problem(422)["errors"][0]["field"], "chain_id");
    post(euros, json!({"chain_id": CHAIN, "tx_hash": hash}))
        .await
        .problem(409);
    post(
        invoice.clone(),
        json!({"chain_id": CHAIN, "tx_hash": hash, "amount": "1"}),
    )
    .await
    .problem(400);
    let none: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
        .fetch_one(&chain.app.pool)
        .await
        .unwrap();
    assert_eq!(none, 0);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn ten_concurrent_payouts_with_one_key_send_one_transaction(pool: PgPool) {
    let Some(chain) = Chain::start(pool).await else {
        return;
    };
    let before = chain.eth_balance(PAYEE).await;
    let body = json!({"chain_id": CHAIN, "to": PAYEE, "amount": ETH.to_string(),
                      "currency": "ETH", "idempotency_key": "payout-2026-12-03-1"});
    let answers =
        futures::future::join_all((0..10).map(|_| chain.payout(&chain.cast.admin, &body))).await;
    let hashes: std::collections::HashSet<String> = answers
        .iter()
        .map(|res| {
            assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
            res.str("tx_hash")
        })
        .collect();
    assert_eq!(hashes.len(), 1, "{hashes:?}");
    let payout = answers[0].str("id");
    assert_eq!(answers[0].body["status"], "PENDING");
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM payouts")
        .fetch_one(&chain.app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
    assert_eq!(chain.app.audit_count("payout.sent").await, 1);

    // The same key once more, later: the same payout, nothing sent.
    let again = chain.payout(&chain.cast.admin, &body).await;
    assert_eq!(again.str("tx_hash"), answers[0].str("tx_hash"));
    chain.anvil.mine(2).await.unwrap();
    assert_eq!(chain.eth_balance(PAYEE).await - before, ETH);
    let nonce = chain
        .anvil
        .rpc("eth_getTransactionCount", json!([PAYOUT_ACCOUNT, "latest"]))
        .await
        .unwrap();
    assert_eq!(nonce, "0x1", "one transaction from the payout account");

    // Watched like a payment.
    chain.watch(&payout).await.unwrap();
    assert_eq!(chain.payout_status(&payout).await, "CONFIRMED");
}

/// A payout dropped from the pool is sent again while it can still be mined; once another
/// transaction of the payout account takes its nonce, and that is final, it is FAILED (it can
/// never be mined), and never before.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_payout_whose_nonce_another_transaction_took_fails(pool: PgPool) {
    let Some(chain) = Chain::start(pool).await else {
        return;
    };
    let anvil = &chain.anvil;
    let before = chain.eth_balance(PAYEE).await;
    anvil.rpc("evm_setAutomine", json!([false])).await.unwrap();
    let body = json!({"chain_id": CHAIN, "to": PAYEE, "amount": ETH.to_string(),
                      "currency": "ETH", "idempotency_key": "dropped"});
    let sent = chain.payout(&chain.cast.admin, &body).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    let (payout, hash) = (sent.str("id"), sent.str("tx_hash"));

    // Dropped from the pool: the monitor sends the same bytes again.
    anvil
        .rpc("anvil_dropTransaction", json!([hash]))
        .await
        .unwrap();
    later(chain.watch(&payout).await);
    let pooled = anvil
        .rpc("eth_getTransactionByHash", json!([hash]))
        .await
        .unwrap();
    assert!(!pooled.is_null(), "re-broadcast");

    // Dropped again, and the payout account's nonce 0 goes to another transaction.
    anvil
        .rpc("anvil_dropTransaction", json!([hash]))
        .await
        .unwrap();
    anvil
        .rpc(
            "eth_sendTransaction",
            json!([{"from": PAYOUT_ACCOUNT, "to": chain.accounts[0], "value": "0x1", "nonce": "0x0"}]),
        )
        .await
        .unwrap();
    anvil.mine(1).await.unwrap();
    later(chain.watch(&payout).await);
    assert_eq!(
        chain.payout_status(&payout).await,
        "PENDING",
        "the replacement is not final yet (3 confirmations)"
    );
    anvil.mine(2).await.unwrap();
    chain.watch(&payout).await.unwrap();
    assert_eq!(chain.payout_status(&payout).await, "FAILED");
    assert_eq!(
        chain.eth_balance(PAYEE).await,
        before,
        "nothing was paid out"
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_token_payout_moves_the_token_and_limits_and_keys_are_enforced(pool: PgPool) {
    let Some(chain) = Chain::start(pool).await else {
        return;
    };
    chain
        .pay_token(&chain.accounts[0], PAYOUT_ACCOUNT, 500_000_000)
        .await;
    let usdc = |amount: &str, key: &str| json!({"chain_id": CHAIN, "to": PAYEE, "amount": amount, "currency": "USDC", "idempotency_key": key});
    let res = chain
        .payout(&chain.cast.admin, &usdc("60000000", "a"))
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    let payout = res.str("id");
    chain.anvil.mine(2).await.unwrap();
    assert_eq!(chain.token_balance(PAYEE).await, 60_000_000);
    chain.watch(&payout).await.unwrap();
    assert_eq!(chain.payout_status(&payout).await, "CONFIRMED");

    // The daily limit is 100 USDC: 60 + 50 is refused, and nothing is sent.
    chain
        .payout(&chain.cast.admin, &usdc("50000000", "b"))
        .await
        .problem(409);
    // A key is one payout: another amount under it is refused.
    chain
        .payout(&chain.cast.admin, &usdc("1", "a"))
        .await
        .problem(422);
    // Only configured currencies, only ADMIN.
    let dai = json!({"chain_id": CHAIN, "to": PAYEE, "amount": "1", "currency": "DAI", "idempotency_key": "c"});
    assert_eq!(
        chain.payout(&chain.cast.admin, &dai).await.problem(422)["errors"][0]["field"],
        "currency"
    );
    for who in [&chain.cast.staff, &chain.cast.owner] {
        chain.payout(who, &usdc("1", "d")).await.problem(403);
    }
    let anonymous = chain
        .app
        .post("/payouts")
        .json(&usdc("1", "e"))
        .send()
        .await;
    anonymous.problem(401);
    assert_eq!(chain.token_balance(PAYEE).await, 60_000_000);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM payouts")
        .fetch_one(&chain.app.pool)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

/// An SQS batch for the deployed chain-monitor (behind [`gantry::queue::Deferring`], as the
/// runtime serves it): its failed message ids.
async fn sqs_batch(chain: &Chain, bodies: &[String]) -> Vec<String> {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(n, body)| {
            json!({"messageId": format!("m-{n}"), "body": body,
                   "attributes": {"ApproximateReceiveCount": "1"}})
        })
        .collect();
    let event = serde_json::from_value(json!({"Records": records})).unwrap();
    let deferring = gantry::queue::Deferring::new(
        chain.monitor.clone(),
        chain.app.platform.db.clone(),
        gantry::payments::onchain::QUEUE,
    );
    gantry::runtime::handle_sqs(&deferring, event)
        .await
        .batch_item_failures
        .into_iter()
        .map(|f| f.item_identifier)
        .collect()
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn over_sqs_a_batch_reports_only_its_poisoned_messages_and_credits_once(pool: PgPool) {
    let Some(chain) = Chain::start(pool).await else {
        return;
    };
    // Eight real watch jobs: one payment delivered three times, one not yet final, and six
    // others, final; then two poisoned messages.
    let mut bodies = Vec::new();
    let invoice = chain.invoice(ETH, "ETH").await;
    let hash = chain.pay_eth(&chain.accounts[1], ETH).await;
    let paid = chain.submit(&invoice, &hash).await.str("id");
    let paid_job = chain.job(&paid).await.body;
    bodies.extend([paid_job.clone(), paid_job.clone(), paid_job]);
    for _ in 0..4 {
        let other = chain.invoice(ETH / 10, "ETH").await;
        let hash = chain.pay_eth(&chain.accounts[1], ETH / 10).await;
        let id = chain.submit(&other, &hash).await.str("id");
        bodies.push(chain.job(&id).await.body);
    }
    chain.anvil.mine(2).await.unwrap();
    let waiting_invoice = chain.invoice(ETH, "ETH").await;
    let waiting_hash = chain.pay_eth(&chain.accounts[1], ETH).await;
    let waiting = chain
        .submit(&waiting_invoice, &waiting_hash)
        .await
        .str("id");
    bodies.push(chain.job(&waiting).await.body);
    bodies.push("not json".to_owned());
    bodies.push(json!({"payment_id": uuid::Uuid::now_v7()}).to_string());
    assert_eq!(bodies.len(), 10);

    let failed = sqs_batch(&chain, &bodies).await;
    assert_eq!(failed, ["m-8", "m-9"], "only the poisoned ones");
    assert_eq!(chain.payment(&invoice).await["status"], "CONFIRMED");
    let credits = chain
        .ledger()
        .await
        .iter()
        .filter(|t| *t == "chain.confirmed")
        .count();
    assert_eq!(
        credits, 5,
        "the payment delivered three times is credited once"
    );
    // The one not yet final is not a failure: it is sent again, delayed, through the outbox.
    assert_eq!(chain.payment(&waiting_invoice).await["status"], "PENDING");
    let again: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM queue_messages WHERE queue = 'chain-monitor' AND body LIKE '%' || $1 || '%' AND visible_at > now()",
    )
    .bind(&waiting)
    .fetch_one(&chain.app.pool)
    .await
    .unwrap();
    assert_eq!(again, 1);
}

/// AWS KMS, as far as alloy's AWS signer uses it (JSON 1.1, `X-Amz-Target`): `GetPublicKey`
/// answers the key's DER SubjectPublicKeyInfo, and `Sign` with `MessageType: DIGEST` a DER
/// ECDSA signature of the digest itself, as AWS documents. Hand-written because moto's KMS
/// (5.2.5, the newest) does not implement `DIGEST`: it hashes the digest again, and no
/// signature recovers. Counts the signatures it makes.
async fn kms_stub(key: k256::ecdsa::SigningKey) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::http::HeaderMap;
    use base64::Engine;
    use k256::ecdsa::signature::hazmat::PrehashSigner;
    use k256::pkcs8::EncodePublicKey;
    let b64 = base64::engine::general_purpose::STANDARD;
    let signed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = signed.clone();
    let public = key.verifying_key().to_public_key_der().unwrap().into_vec();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let key = key.clone();
            let public = public.clone();
            let count = count.clone();
            async move {
                let request: Value = serde_json::from_slice(&body).unwrap_or_default();
                let target = headers
                    .get("x-amz-target")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                let answer = match target {
                    "TrentService.GetPublicKey" => json!({
                        "KeyId": request["KeyId"], "PublicKey": b64.encode(&public),
                        "KeySpec": "ECC_SECG_P256K1", "CustomerMasterKeySpec": "ECC_SECG_P256K1",
                        "KeyUsage": "SIGN_VERIFY", "SigningAlgorithms": ["ECDSA_SHA_256"],
                    }),
                    "TrentService.Sign" if request["MessageType"] == "DIGEST" => {
                        let digest = b64
                            .decode(request["Message"].as_str().unwrap_or_default())
                            .unwrap();
                        let signature: k256::ecdsa::Signature = key.sign_prehash(&digest).unwrap();
                        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        json!({"KeyId": request["KeyId"], "SigningAlgorithm": "ECDSA_SHA_256",
                               "Signature": b64.encode(signature.to_der().as_bytes())})
                    }
                    _ => {
                        return (
                            StatusCode::BAD_REQUEST,
                            [("content-type", "application/x-amz-json-1.1")],
                            json!({"__type": "ValidationException", "message": target}).to_string(),
                        );
                    }
                };
                (
                    StatusCode::OK,
                    [("content-type", "application/x-amz-json-1.1")],
                    answer.to_string(),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, signed)
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_kms_key_signs_payouts_and_never_leaves_kms(pool: PgPool) {
    let key = k256::ecdsa::SigningKey::from_slice(&[0x42; 32]).unwrap();
    let kms_account = format!(
        "{:#x}",
        alloy::signers::local::PrivateKeySigner::from_signing_key(key.clone()).address()
    );
    let (kms, signed) = kms_stub(key).await;
    let extra = [
        ("PAYOUT_KMS_KEY_ID", "1234abcd-12ab-34cd-56ef-1234567890ab"),
        ("AWS_ENDPOINT_URL_KMS", kms.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ];
    let Some(chain) = Chain::start_with(pool, &extra).await else {
        return;
    };
    chain
        .anvil
        .rpc(
            "anvil_setBalance",
            json!([kms_account, format!("0x{:x}", 10 * ETH)]),
        )
        .await
        .unwrap();
    let before = chain.eth_balance(PAYEE).await;
    let body = json!({"chain_id": CHAIN, "to": PAYEE, "amount": (ETH / 2).to_string(),
                      "currency": "ETH", "idempotency_key": "kms-1"});
    let res = chain.payout(&chain.cast.admin, &body).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    // The same key again: the stored transaction, no second signature.
    let again = chain.payout(&chain.cast.admin, &body).await;
    assert_eq!(again.str("tx_hash"), res.str("tx_hash"));
    assert_eq!(signed.load(std::sync::atomic::Ordering::SeqCst), 1);
    chain.anvil.mine(2).await.unwrap();
    assert_eq!(chain.eth_balance(PAYEE).await - before, ETH / 2);
    // Sent from the KMS key's account; the local key (also configured) sent nothing.
    let tx = chain
        .anvil
        .rpc("eth_getTransactionByHash", json!([res.str("tx_hash")]))
        .await
        .unwrap();
    assert_eq!(tx["from"].as_str().unwrap().to_lowercase(), kms_account);
    let local = chain
        .anvil
        .rpc("eth_getTransactionCount", json!([PAYOUT_ACCOUNT, "latest"]))
        .await
        .unwrap();
    assert_eq!(local, "0x0");
    chain.watch(&res.str("id")).await.unwrap();
    assert_eq!(chain.payout_status(&res.str("id")).await, "CONFIRMED");
}
