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
/// anvil's well-known account 0, the owner client's wallet (linked with SIWE): it pays.
const PAYER_KEY: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
/// anvil's well-known account 3: the payout account.
const PAYOUT_KEY: &str = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
const PAYOUT_ACCOUNT: &str = "0x90f79bf6eb2c4f870365e785982e1f101e93b906";
const PAYEE: &str = "0x000000000000000000000000000000000000beef";

struct Chain {
    app: TestApp,
    cast: Cast,
    anvil: Anvil,
    /// anvil's accounts: 0 pays (a wallet of the owner client's), 1 receives (our receiver), 2
    /// is someone else.
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
        // TEST_BLOCK_TIME_SLACK: the chain's block_time_slack_seconds (default 60).
        let slack = extra
            .iter()
            .find(|(name, _)| *name == "TEST_BLOCK_TIME_SLACK")
            .map_or(60, |(_, v)| v.parse::<u64>().unwrap());
        let chains = json!({CHAIN.to_string(): {
            "receiver": accounts[1], "confirmations": 3,
            "assets": {"ETH": "native", "USDC": token},
            "block_time_slack_seconds": slack,
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
        let payer = gantry_tests::wallet::Wallet {
            signer: PAYER_KEY.parse().unwrap(),
        };
        assert_eq!(payer.address().to_lowercase(), accounts[0].to_lowercase());
        let linked = app.link_wallet(&cast.owner, &payer).await;
        assert_eq!(linked.status, StatusCode::CREATED, "{}", linked.body);
        let Trigger::Queue { build, .. } =
            gantry::payments::onchain::monitor::CHAIN_MONITOR.trigger
        else {
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
        self.invoice_of(&self.cast.owner_id, amount, currency).await
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
    assert!(
        chain.invoice_state(&invoice).await["blockchain_tx_hash"].is_null(),
        "a submission is no payment yet"
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
    assert_eq!(state["blockchain_tx_hash"], hash.to_lowercase());

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
    let Some(admin) = chain.cast.admin_with_second_factor(&chain.app).await else {
        return;
    };
    let before = chain.eth_balance(PAYEE).await;
    let body = json!({"chain_id": CHAIN, "to": PAYEE, "amount": ETH.to_string(),
                      "currency": "ETH", "idempotency_key": "payout-2026-12-03-1"});
    let answers = futures::future::join_all((0..10).map(|_| chain.payout(&admin, &body))).await;
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
    let again = chain.payout(&admin, &body).await;
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
    let Some(admin) = chain.cast.admin_with_second_factor(&chain.app).await else {
        return;
    };
    let anvil = &chain.anvil;
    let before = chain.eth_balance(PAYEE).await;
    anvil.rpc("evm_setAutomine", json!([false])).await.unwrap();
    let body = json!({"chain_id": CHAIN, "to": PAYEE, "amount": ETH.to_string(),
                      "currency": "ETH", "idempotency_key": "dropped"});
    let sent = chain.payout(&admin, &body).await;
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
    let Some(admin) = chain.cast.admin_with_second_factor(&chain.app).await else {
        return;
    };
    chain
        .pay_token(&chain.accounts[0], PAYOUT_ACCOUNT, 500_000_000)
        .await;
    let usdc = |amount: &str, key: &str| json!({"chain_id": CHAIN, "to": PAYEE, "amount": amount, "currency": "USDC", "idempotency_key": key});
    let res = chain.payout(&admin, &usdc("60000000", "a")).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    let payout = res.str("id");
    chain.anvil.mine(2).await.unwrap();
    assert_eq!(chain.token_balance(PAYEE).await, 60_000_000);
    chain.watch(&payout).await.unwrap();
    assert_eq!(chain.payout_status(&payout).await, "CONFIRMED");

    // The daily limit is 100 USDC: 60 + 50 is refused, and nothing is sent.
    chain
        .payout(&admin, &usdc("50000000", "b"))
        .await
        .problem(409);
    // A key is one payout: another amount under it is refused.
    chain.payout(&admin, &usdc("1", "a")).await.problem(422);
    // Only configured currencies, only ADMIN.
    let dai = json!({"chain_id": CHAIN, "to": PAYEE, "amount": "1", "currency": "DAI", "idempotency_key": "c"});
    assert_eq!(
        chain.payout(&admin, &dai).await.problem(422)["errors"][0]["field"],
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
    // The relay sent them to SQS: they left the outbox.
    sqlx::query("DELETE FROM queue_messages WHERE queue = 'chain-monitor'")
        .execute(&chain.app.pool)
        .await
        .unwrap();

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
    let Some(admin) = chain.cast.admin_with_second_factor(&chain.app).await else {
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
    let res = chain.payout(&admin, &body).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    // The same key again: the stored transaction, no second signature.
    let again = chain.payout(&admin, &body).await;
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

/// anvil's well-known account 2's key: the other client's wallet where a test links it.
const OTHER_KEY: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";

impl Chain {
    /// A SENT invoice of the other client's (`cast.other`), whose wallet is anvil's account 2.
    async fn others_invoice(&self, amount: u128, currency: &str) -> String {
        let wallet = gantry_tests::wallet::Wallet {
            signer: OTHER_KEY.parse().unwrap(),
        };
        let linked = self.app.link_wallet(&self.cast.other, &wallet).await;
        assert!(
            [StatusCode::CREATED, StatusCode::CONFLICT].contains(&linked.status),
            "{}",
            linked.body
        );
        let other = gantry_tests::claims_of(&self.cast.other)["sub"]
            .as_str()
            .unwrap()
            .to_owned();
        self.invoice_of(&other, amount, currency).await
    }

    /// A SENT invoice of `client`'s.
    async fn invoice_of(&self, client: &str, amount: u128, currency: &str) -> String {
        self.app
            .sent_invoice(&self.cast.staff, client, &amount.to_string(), currency)
            .await
    }

    async fn submit_as(
        &self,
        who: &str,
        invoice: &str,
        tx_hash: &str,
    ) -> gantry_tests::TestResponse {
        self.app
            .post(&format!("/invoices/{invoice}/blockchain-payment"))
            .bearer(who)
            .json(&json!({"chain_id": CHAIN, "tx_hash": tx_hash}))
            .send()
            .await
    }

    /// The outcome and type of the newest ledger row.
    async fn last_word(&self) -> (String, String) {
        sqlx::query_as("SELECT event_type, outcome FROM payment_events ORDER BY seq DESC LIMIT 1")
            .fetch_one(&self.app.pool)
            .await
            .unwrap()
    }
}

/// The attack: a client sees another customer's payment to the shared receiver and submits its
/// hash for their own invoice first. Known to the node, it is refused at once (nothing held);
/// not known yet, it is recorded, then FAILED by the monitor (not the client's payer), and it
/// lets go of the transaction: the real payer submits it for their invoice, which it pays.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_transfer_from_another_accounts_wallet_pays_only_that_accounts_invoice(pool: PgPool) {
    let Some(anvil) = Anvil::start_or_skip().await else {
        return;
    };
    let supply = format!("{:064x}", 1_000_000_000_000u128);
    let token = anvil.deploy(TEST_TOKEN, &supply).await.unwrap();
    let (rpc, hide) = hiding_rpc(anvil.url.clone(), "eth_getTransactionByHash").await;
    let chain = Chain::on(pool, anvil, &token, &rpc, &[]).await;
    let mine = chain.invoice(ETH, "ETH").await;
    let theirs = chain.others_invoice(ETH, "ETH").await;
    let hash = chain
        .anvil
        .send(&chain.accounts[2], &chain.accounts[1], ETH, "0x")
        .await
        .unwrap();

    let res = chain.submit(&mine, &hash).await;
    assert_eq!(res.problem(422)["errors"][0]["field"], "tx_hash");
    assert!(chain.payment(&mine).await.is_null(), "nothing recorded");

    // Submitted before the node knew it: recorded, then judged.
    hide.store(true, std::sync::atomic::Ordering::SeqCst);
    let res = chain.submit(&mine, &hash).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    let stolen = res.str("id");
    // Meanwhile the real payer cannot claim it: it waits.
    chain
        .submit_as(&chain.cast.other, &theirs, &hash)
        .await
        .problem(409);
    chain.anvil.mine(2).await.unwrap();
    chain.watch(&stolen).await.unwrap();
    assert_eq!(chain.payment(&mine).await["status"], "FAILED");
    assert_eq!(chain.invoice_state(&mine).await["status"], "SENT");
    assert_eq!(chain.invoice_state(&mine).await["amount_paid"], "0");
    let (kind, outcome) = chain.last_word().await;
    assert_eq!(kind, "chain.not_the_clients_payer", "{outcome}");

    // The real payer submits it for their invoice: not a 409, and it pays.
    let res = chain.submit_as(&chain.cast.other, &theirs, &hash).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    let paid = res.str("id");
    chain.watch(&paid).await.unwrap();
    let state = chain.invoice_state(&theirs).await;
    assert_eq!(state["status"], "PAID");
    assert_eq!(state["blockchain_tx_hash"], hash.to_lowercase());
    // Now that it has paid, nobody can claim it again.
    chain.submit(&mine, &hash).await.problem(422);
    let again = chain.others_invoice(ETH, "ETH").await;
    chain
        .submit_as(&chain.cast.other, &again, &hash)
        .await
        .problem(409);
    assert!(chain.invoice_state(&mine).await["blockchain_tx_hash"].is_null());
    let mut conn = chain.app.pool.acquire().await.unwrap();
    assert_eq!(
        gantry::payments::ledger::verify(&mut conn).await.unwrap(),
        gantry::payments::ledger::Verdict::Intact { rows: 2 }
    );
}

/// A wallet nobody linked (a stranger's), in ETH and in a token, submitted by the client or by
/// STAFF on their behalf: refused, never a credit. A token transfer's payer is its `Transfer`
/// log's sender, read from the receipt.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_strangers_transfer_never_pays_an_invoice(pool: PgPool) {
    let Some(chain) = Chain::start(pool).await else {
        return;
    };
    let stranger = &chain.accounts[4];
    let invoice = chain.invoice(ETH, "ETH").await;
    let hash = chain
        .anvil
        .send(stranger, &chain.accounts[1], ETH, "0x")
        .await
        .unwrap();
    chain
        .submit_as(&chain.cast.staff, &invoice, &hash)
        .await
        .problem(422);

    let tokens = chain.invoice(25_000_000, "USDC").await;
    chain
        .pay_token(&chain.accounts[0], stranger, 25_000_000)
        .await;
    let hash = chain
        .pay_token(stranger, &chain.accounts[1], 25_000_000)
        .await;
    chain.submit(&tokens, &hash).await.problem(422);
    let none: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
        .fetch_one(&chain.app.pool)
        .await
        .unwrap();
    assert_eq!(none, 0);
    let state = chain.invoice_state(&tokens).await;
    assert_eq!(
        (state["status"].as_str(), state["amount_paid"].as_str()),
        (Some("SENT"), Some("0"))
    );
}

/// A deposit the client's own wallet made before the invoice was issued (SENT) does not pay it.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_transfer_mined_before_the_invoice_was_sent_never_pays_it(pool: PgPool) {
    // Without slack, so that a second's difference tells (anvil's block times are whole
    // seconds, and lag the wall clock by up to one).
    let Some(chain) = Chain::start_with(pool, &[("TEST_BLOCK_TIME_SLACK", "0")]).await else {
        return;
    };
    let old = chain.pay_eth(&chain.accounts[1], ETH).await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let invoice = chain.invoice(ETH, "ETH").await;
    let payment = chain.submit(&invoice, &old).await.str("id");
    chain.anvil.mine(2).await.unwrap();
    chain.watch(&payment).await.unwrap();
    assert_eq!(chain.payment(&invoice).await["status"], "FAILED");
    assert_eq!(chain.last_word().await.0, "chain.before_the_invoice");
    assert_eq!(chain.invoice_state(&invoice).await["status"], "SENT");

    // A transfer after the issue pays it.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let new = chain.pay_eth(&chain.accounts[1], ETH).await;
    let payment = chain.submit(&invoice, &new).await.str("id");
    chain.anvil.mine(2).await.unwrap();
    chain.watch(&payment).await.unwrap();
    assert_eq!(chain.invoice_state(&invoice).await["status"], "PAID");
}

/// Thirty made-up hashes: three wait, the rest are refused, one job each; the invoice's
/// transaction is never one of them; a hash the node never heard of fails after the short
/// `unknown_minutes`, and then another may be submitted.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn thirty_submissions_leave_at_most_three_waiting(pool: PgPool) {
    let Some(chain) = Chain::start(pool).await else {
        return;
    };
    let invoice = chain.invoice(ETH, "ETH").await;
    let mut accepted = Vec::new();
    for i in 0..30u8 {
        let hash = format!("0x{}", format!("{i:02x}").repeat(32));
        let res = chain.submit(&invoice, &hash).await;
        if res.status == StatusCode::ACCEPTED {
            accepted.push(res.str("id"));
        } else {
            assert!(
                res.problem(409)["detail"]
                    .as_str()
                    .unwrap()
                    .contains("3 on-chain payments")
            );
        }
    }
    assert_eq!(accepted.len(), 3);
    let jobs: i64 =
        sqlx::query_scalar("SELECT count(*) FROM queue_messages WHERE queue = 'chain-monitor'")
            .fetch_one(&chain.app.pool)
            .await
            .unwrap();
    assert_eq!(jobs, 3);
    assert!(chain.invoice_state(&invoice).await["blockchain_tx_hash"].is_null());
    // The same hash again is the same payment, even at the limit.
    let again = chain
        .submit(&invoice, &format!("0x{}", "00".repeat(32)))
        .await;
    assert_eq!(again.str("id"), accepted[0]);

    // Unknown to the node: later, until unknown_until (5 minutes, not the hour's watch).
    later(chain.watch(&accepted[0]).await);
    let (unknown, watch): (f64, f64) = sqlx::query_as(
        "SELECT extract(epoch FROM unknown_until - p.created_at)::float8,
                extract(epoch FROM watch_until - p.created_at)::float8
         FROM chain_payments c JOIN payments p ON p.id = c.payment_id WHERE p.id = $1::uuid",
    )
    .bind(&accepted[0])
    .fetch_one(&chain.app.pool)
    .await
    .unwrap();
    assert!(
        (299.0..301.0).contains(&unknown) && (3599.0..3601.0).contains(&watch),
        "{unknown} {watch}"
    );
    sqlx::query("UPDATE chain_payments SET unknown_until = now() - interval '1 second' WHERE payment_id = $1::uuid")
        .bind(&accepted[0])
        .execute(&chain.app.pool)
        .await
        .unwrap();
    chain.watch(&accepted[0]).await.unwrap();
    assert_eq!(chain.last_word().await.0, "chain.unknown");
    let res = chain
        .submit(&invoice, &format!("0x{}", "1d".repeat(32)))
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
}

/// A token whose decimals are not its currency's: USD at 2 and DAI at 18 on a 6-decimal token.
/// The chain's routes answer 503 naming PAYMENT_CHAINS, nothing is recorded, and the monitor
/// never credits in the wrong units. ("native" for a currency other than the chain's coin is a
/// start-up error: the unit tests of `Chains::parse`.)
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_token_whose_decimals_are_not_its_currencys_takes_no_payment(pool: PgPool) {
    let Some(anvil) = Anvil::start_or_skip().await else {
        return;
    };
    let supply = format!("{:064x}", 1_000_000_000_000u128);
    let token = anvil.deploy(TEST_TOKEN, &supply).await.unwrap();
    let another = anvil.deploy(TEST_TOKEN, &supply).await.unwrap();
    let accounts = anvil.accounts().await.unwrap();
    let chains = json!({CHAIN.to_string(): {
        "receiver": accounts[1], "confirmations": 1,
        "assets": {"USD": token, "DAI": another},
    }})
    .to_string();
    let rpc = anvil.url.clone();
    let chain = Chain::on(pool, anvil, &token, &rpc, &[("PAYMENT_CHAINS", &chains)]).await;
    let invoice = chain.invoice(100, "USD").await;
    assert!(
        chain.invoice_state(&invoice).await["payment_uri"].is_null(),
        "no URI in the wrong units"
    );
    let hash = chain
        .pay_token(&chain.accounts[0], &chain.accounts[1], 100)
        .await;
    let res = chain.submit(&invoice, &hash).await;
    let detail = res.problem(503)["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("PAYMENT_CHAINS") && detail.contains("6 decimals"),
        "{detail}"
    );
    let dai = chain.invoice(100, "DAI").await;
    let res = chain.submit(&dai, &hash).await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.body);
    let none: i64 = sqlx::query_scalar("SELECT count(*) FROM payments")
        .fetch_one(&chain.app.pool)
        .await
        .unwrap();
    assert_eq!(none, 0);
}

/// A JSON-RPC proxy in front of anvil that answers the next call of `method` with null once
/// `hide` is set: the node not knowing a transaction yet, or a payout mined just after the
/// monitor asked for its receipt and before it read the nonce.
async fn hiding_rpc(
    upstream: String,
    method: &'static str,
) -> (String, Arc<std::sync::atomic::AtomicBool>) {
    let hide = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let armed = hide.clone();
    let client = gantry_tests::http_client();
    let app = axum::Router::new().route(
        "/",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (armed, client, upstream) = (armed.clone(), client.clone(), upstream.clone());
            async move {
                let request: Value = serde_json::from_slice(&body).unwrap_or_default();
                if request["method"] == method
                    && armed.swap(false, std::sync::atomic::Ordering::SeqCst)
                {
                    return json!({"jsonrpc": "2.0", "id": request["id"], "result": null})
                        .to_string();
                }
                let answer = client
                    .post(&upstream)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                answer.text().await.unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hide)
}

/// The payout-nonce race: the receipt read finds nothing, the payout is mined, then the nonce
/// read finds the nonce spent. It is CONFIRMED (its receipt is read again), never FAILED: a
/// FAILED payout drops out of the daily limit and invites a second transfer.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_payout_mined_between_the_monitors_two_reads_is_confirmed(pool: PgPool) {
    let Some(anvil) = Anvil::start_or_skip().await else {
        return;
    };
    let supply = format!("{:064x}", 1_000_000_000_000u128);
    let token = anvil.deploy(TEST_TOKEN, &supply).await.unwrap();
    let (rpc, hide) = hiding_rpc(anvil.url.clone(), "eth_getTransactionReceipt").await;
    let chain = Chain::on(pool, anvil, &token, &rpc, &[]).await;
    let body = json!({"chain_id": CHAIN, "to": PAYEE, "amount": ETH.to_string(),
                      "currency": "ETH", "idempotency_key": "raced"});
    let Some(admin) = chain.cast.admin_with_second_factor(&chain.app).await else {
        return;
    };
    let sent = chain.payout(&admin, &body).await;
    assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
    let payout = sent.str("id");
    chain.anvil.mine(3).await.unwrap();

    hide.store(true, std::sync::atomic::Ordering::SeqCst);
    chain.watch(&payout).await.unwrap();
    assert!(
        !hide.load(std::sync::atomic::Ordering::SeqCst),
        "the receipt was hidden once"
    );
    assert_eq!(chain.payout_status(&payout).await, "CONFIRMED");
}

/// Each SENT invoice that a chain takes carries an EIP-681 URI for what is left to pay; paying
/// it, as a wallet would, from the client's linked wallet pays the invoice.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn an_invoice_carries_an_eip681_uri_that_pays_it(pool: PgPool) {
    let Some(chain) = Chain::start(pool).await else {
        return;
    };
    let eip55 = |a: &str| {
        a.parse::<alloy::primitives::Address>()
            .unwrap()
            .to_checksum(None)
    };
    let (receiver, token) = (eip55(&chain.accounts[1]), eip55(&chain.token));
    let eth = chain.invoice(ETH, "ETH").await;
    assert_eq!(
        chain.invoice_state(&eth).await["payment_uri"],
        format!("ethereum:{receiver}@31337?value={ETH}")
    );
    let usdc = chain.invoice(25_000_000, "USDC").await;
    let uri = chain.invoice_state(&usdc).await["payment_uri"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        uri,
        format!("ethereum:{token}@31337/transfer?address={receiver}&uint256=25000000")
    );
    // Not payable on chain: a currency no chain takes, a DRAFT, and a paid invoice.
    assert!(chain.invoice_state(&chain.invoice(100, "EUR").await).await["payment_uri"].is_null());
    let list = chain
        .app
        .get("/invoices")
        .bearer(&chain.cast.owner)
        .send()
        .await;
    assert!(
        list.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["payment_uri"] == uri.as_str())
    );

    // A wallet reads the URI: contract, chain, function, recipient, amount.
    let (target, rest) = uri.trim_start_matches("ethereum:").split_once('@').unwrap();
    let (_, query) = rest.split_once("/transfer?").unwrap();
    let fields: std::collections::HashMap<_, _> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    let amount: u128 = fields["uint256"].parse().unwrap();
    let data = format!(
        "0xa9059cbb{:0>64}{amount:064x}",
        &fields["address"][2..].to_lowercase()
    );
    let hash = chain
        .anvil
        .send(&chain.accounts[0], target, 0, &data)
        .await
        .unwrap();
    let payment = chain.submit(&usdc, &hash).await.str("id");
    chain.anvil.mine(2).await.unwrap();
    chain.watch(&payment).await.unwrap();
    let paid = chain.invoice_state(&usdc).await;
    assert_eq!(paid["status"], "PAID");
    assert!(paid["payment_uri"].is_null(), "nothing is left to pay");
}

impl Chain {
    async fn refund(&self, who: &str, invoice: &str, body: &Value) -> gantry_tests::TestResponse {
        self.app
            .post(&format!("/invoices/{invoice}/refunds"))
            .bearer(who)
            .json(body)
            .send()
            .await
    }

    /// A SENT invoice of `amount` `currency`, paid in full from the client's wallet (account
    /// 0) and CONFIRMED by the monitor: the invoice and the payment.
    async fn paid_on_chain(&self, amount: u128, currency: &str) -> (String, String) {
        let invoice = self.invoice(amount, currency).await;
        let hash = match currency {
            "ETH" => self.pay_eth(&self.accounts[1], amount).await,
            _ => {
                self.pay_token(&self.accounts[0], &self.accounts[1], amount)
                    .await
            }
        };
        let res = self.submit(&invoice, &hash).await;
        assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
        let payment = res.str("id");
        self.anvil.mine(2).await.unwrap();
        self.watch(&payment).await.unwrap();
        let status = self.payment(&invoice).await["status"].clone();
        if status != "CONFIRMED" {
            // What the monitor decided, and the times it compared, to tell a flake from a bug.
            let why: Vec<(String, String)> = sqlx::query_as(
                "SELECT e.event_type, c.not_before::text FROM payment_events e
                 JOIN chain_payments c ON c.payment_id = e.payment_id
                 WHERE e.payment_id = $1::uuid",
            )
            .bind(&payment)
            .fetch_all(&self.app.pool)
            .await
            .unwrap_or_default();
            let block = self
                .anvil
                .rpc("eth_getBlockByNumber", json!(["latest", false]))
                .await;
            panic!("{currency} payment {status}: {why:?}; latest block {block:?}");
        }
        (invoice, payment)
    }

    /// The payout that pays refund `refund` back.
    async fn refund_payout(&self, refund: &str) -> (String, String, String) {
        sqlx::query_as(
            "SELECT id::text, recipient, status::text FROM payouts WHERE refund_id = $1::uuid",
        )
        .bind(refund)
        .fetch_one(&self.app.pool)
        .await
        .unwrap()
    }

    async fn refund_status(&self, invoice: &str, refund: &str) -> Value {
        let res = self
            .app
            .get(&format!("/invoices/{invoice}/refunds"))
            .bearer(&self.cast.staff)
            .send()
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        res.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == refund)
            .unwrap()["status"]
            .clone()
    }

    async fn count(&self, sql: &'static str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.app.pool)
            .await
            .unwrap()
    }
}

/// A refund of an on-chain payment is a payout to the wallet that paid (ADMIN with a fresh
/// second factor only), signed with the reservation, PENDING with the payout's transaction
/// until the monitor finds it final, then SUCCEEDED; one key pays once, never more than was
/// paid, and the daily payout limit counts it.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn an_onchain_refund_pays_the_payer_back_once_through_the_payout_signer(pool: PgPool) {
    let Some(chain) = Chain::start(pool).await else {
        return;
    };
    let Some(admin) = chain.cast.admin_with_second_factor(&chain.app).await else {
        return;
    };
    let (invoice, payment) = chain.paid_on_chain(2 * ETH, "ETH").await;
    let payer = chain.accounts[0].to_lowercase();
    let recorded: String = sqlx::query_scalar("SELECT payer FROM chain_payments")
        .fetch_one(&chain.app.pool)
        .await
        .unwrap();
    assert_eq!(recorded, payer, "the monitor recorded the wallet that paid");
    let refund_of = |amount: u128, key: &str| {
        json!({"payment_id": payment, "amount": amount.to_string(),
               "reason": "Workshop cancelled", "idempotency_key": key})
    };
    let body = refund_of(ETH / 2, "chain-refund-1");

    // STAFF may refund a card, not a chain; an ADMIN needs a second factor used minutes ago.
    chain
        .refund(&chain.cast.staff, &invoice, &body)
        .await
        .problem(403);
    let stale = chain.refund(&chain.cast.admin, &invoice, &body).await;
    stale.problem(401);
    let challenge = stale.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains("insufficient_user_authentication"),
        "{challenge}"
    );
    // Never more than was paid.
    chain
        .refund(&admin, &invoice, &refund_of(2 * ETH + 1, "too-much"))
        .await
        .problem(409);
    // The daily limit (5 ETH) counts payouts and refunds alike: 4 ETH paid out leaves 1 ETH.
    let payout = json!({"chain_id": CHAIN, "to": PAYEE, "amount": (4 * ETH).to_string(),
                        "currency": "ETH", "idempotency_key": "before-the-refund"});
    assert_eq!(
        chain.payout(&admin, &payout).await.status,
        StatusCode::ACCEPTED
    );
    let limited = chain
        .refund(&admin, &invoice, &refund_of(ETH + 1, "over-the-limit"))
        .await;
    assert!(
        limited.problem(409)["detail"]
            .as_str()
            .unwrap()
            .contains("daily limit"),
        "{}",
        limited.body
    );
    // Refused before anything was recorded: no refund, no credit note, one payout.
    assert_eq!(chain.count("SELECT count(*) FROM refunds").await, 0);
    assert_eq!(chain.count("SELECT count(*) FROM credit_notes").await, 0);
    assert_eq!(chain.count("SELECT count(*) FROM payouts").await, 1);

    // The refund: half an ETH back to the wallet that paid, three times at once and once more.
    let before = chain.eth_balance(&payer).await;
    let answers =
        futures::future::join_all((0..3).map(|_| chain.refund(&admin, &invoice, &body))).await;
    for res in &answers {
        assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
        assert_eq!(res.body["id"], answers[0].body["id"]);
        assert_eq!(res.body["provider_ref"], answers[0].body["provider_ref"]);
    }
    let res = chain.refund(&admin, &invoice, &body).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    assert_eq!(res.body["id"], answers[0].body["id"]);
    assert_eq!(res.body["status"], "PENDING");
    let refund = res.str("id");
    let hash = res.str("provider_ref");
    let (payout_id, recipient, status) = chain.refund_payout(&refund).await;
    assert_eq!(
        (recipient.as_str(), status.as_str()),
        (payer.as_str(), "PENDING")
    );
    let sent: String = sqlx::query_scalar("SELECT tx_hash FROM payouts WHERE id = $1::uuid")
        .bind(&payout_id)
        .fetch_one(&chain.app.pool)
        .await
        .unwrap();
    assert_eq!(sent, hash);
    assert_eq!(chain.count("SELECT count(*) FROM payouts").await, 2);
    assert_eq!(
        chain.eth_balance(&payer).await - before,
        ETH / 2,
        "paid once"
    );
    // Its credit note: what is due dropped, the invoice stays PAID.
    let state = chain.invoice_state(&invoice).await;
    assert_eq!(state["credited"], (ETH / 2).to_string());
    assert_eq!(state["status"], "PAID");
    assert_eq!(
        chain
            .count("SELECT count(*) FROM credit_notes WHERE refund_id IS NOT NULL")
            .await,
        1
    );

    // PENDING until the payout is final (3 confirmations), then SUCCEEDED, once.
    later(chain.watch(&payout_id).await);
    assert_eq!(chain.refund_status(&invoice, &refund).await, "PENDING");
    chain.anvil.mine(2).await.unwrap();
    chain.watch(&payout_id).await.unwrap();
    chain.watch(&payout_id).await.unwrap();
    assert_eq!(chain.payout_status(&payout_id).await, "CONFIRMED");
    assert_eq!(chain.refund_status(&invoice, &refund).await, "SUCCEEDED");
    assert_eq!(
        chain.ledger().await,
        ["chain.confirmed", "refund.started", "refund.succeeded"]
    );
    // The key once more, after all that: the same refund, nothing sent.
    let again = chain.refund(&admin, &invoice, &body).await;
    assert_eq!(again.str("id"), refund);
    assert_eq!(again.body["status"], "SUCCEEDED");
    assert_eq!(chain.eth_balance(&payer).await - before, ETH / 2);
    // What is left: 1.5 ETH paid net of its refunds, but the day's limit has 0.5 ETH left.
    chain
        .refund(&admin, &invoice, &refund_of(ETH, "second"))
        .await
        .problem(409);
    let mut conn = chain.app.pool.acquire().await.unwrap();
    assert_eq!(
        gantry::payments::ledger::verify(&mut conn).await.unwrap(),
        gantry::payments::ledger::Verdict::Intact { rows: 3 }
    );
}

/// A token refund whose payout never makes it (its nonce went to another transaction) is
/// FAILED with it, its amount released; the next refund uses its credit note and pays.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn an_onchain_refund_whose_payout_fails_is_failed_and_can_be_made_again(pool: PgPool) {
    let Some(chain) = Chain::start(pool).await else {
        return;
    };
    let Some(admin) = chain.cast.admin_with_second_factor(&chain.app).await else {
        return;
    };
    let (invoice, payment) = chain.paid_on_chain(40_000_000, "USDC").await;
    let payer = chain.accounts[0].to_lowercase();
    chain
        .pay_token(&chain.accounts[0], PAYOUT_ACCOUNT, 100_000_000)
        .await;
    // The payer as a payment confirmed before the monitor recorded it: read from the chain.
    sqlx::query("UPDATE chain_payments SET payer = NULL")
        .execute(&chain.app.pool)
        .await
        .unwrap();
    let anvil = &chain.anvil;
    anvil.rpc("evm_setAutomine", json!([false])).await.unwrap();
    let first = json!({"payment_id": payment, "amount": "40000000", "reason": "Not delivered",
                       "idempotency_key": "usdc-1"});
    let res = chain.refund(&admin, &invoice, &first).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    let (refund, hash) = (res.str("id"), res.str("provider_ref"));
    let (payout, recipient, _) = chain.refund_payout(&refund).await;
    assert_eq!(recipient, payer);
    // Dropped, and the payout account's nonce goes to another transaction, final.
    anvil
        .rpc("anvil_dropTransaction", json!([hash]))
        .await
        .unwrap();
    let nonce = anvil
        .rpc(
            "eth_getTransactionCount",
            json!([PAYOUT_ACCOUNT, "pending"]),
        )
        .await
        .unwrap();
    anvil
        .rpc(
            "eth_sendTransaction",
            json!([{"from": PAYOUT_ACCOUNT, "to": chain.accounts[2], "value": "0x1", "nonce": nonce}]),
        )
        .await
        .unwrap();
    anvil.mine(3).await.unwrap();
    chain.watch(&payout).await.unwrap();
    assert_eq!(chain.payout_status(&payout).await, "FAILED");
    assert_eq!(chain.refund_status(&invoice, &refund).await, "FAILED");
    assert_eq!(
        chain.token_balance(&payer).await,
        1_000_000_000_000 - 140_000_000
    );

    // Released: the whole amount again, under a new key, pays; one credit note in all.
    anvil.rpc("evm_setAutomine", json!([true])).await.unwrap();
    let second = json!({"payment_id": payment, "amount": "40000000", "reason": "Not delivered",
                        "idempotency_key": "usdc-2"});
    let res = chain.refund(&admin, &invoice, &second).await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    assert_eq!(res.body["status"], "PENDING");
    assert_eq!(
        chain.token_balance(&payer).await,
        1_000_000_000_000 - 100_000_000
    );
    let (payout, ..) = chain.refund_payout(&res.str("id")).await;
    chain.anvil.mine(2).await.unwrap();
    chain.watch(&payout).await.unwrap();
    assert_eq!(
        chain.refund_status(&invoice, &res.str("id")).await,
        "SUCCEEDED"
    );
    assert_eq!(chain.count("SELECT count(*) FROM credit_notes").await, 1);
    assert_eq!(chain.invoice_state(&invoice).await["credited"], "40000000");
    // Nothing is left to refund.
    chain
        .refund(
            &admin,
            &invoice,
            &json!({"payment_id": payment, "amount": "1", "reason": "More",
                    "idempotency_key": "usdc-3"}),
        )
        .await
        .problem(409);
}

/// A wallet the client unlinked since it paid gets no refund: the payer rule.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn an_onchain_refund_goes_only_to_a_wallet_still_linked_to_the_client(pool: PgPool) {
    let Some(chain) = Chain::start(pool).await else {
        return;
    };
    let Some(admin) = chain.cast.admin_with_second_factor(&chain.app).await else {
        return;
    };
    let (invoice, payment) = chain.paid_on_chain(ETH, "ETH").await;
    sqlx::query("UPDATE chain_payments SET payer = $1")
        .bind(chain.accounts[2].to_lowercase())
        .execute(&chain.app.pool)
        .await
        .unwrap();
    let body = json!({"payment_id": payment, "amount": "1", "reason": "Sorry",
                      "idempotency_key": "elsewhere"});
    chain.refund(&admin, &invoice, &body).await.problem(409);
    assert_eq!(chain.count("SELECT count(*) FROM refunds").await, 0);
    assert_eq!(chain.count("SELECT count(*) FROM payouts").await, 0);
}
