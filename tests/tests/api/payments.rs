//! Payments: the authorization matrix for every payments route, the invoice state machine over
//! HTTP, Stripe and BTCPay against local stubs serving their documented responses, webhooks
//! (signatures, redelivery, concurrency, order), and the ledger's hash chain.

use axum::http::{Method, StatusCode};
use gantry::payments::signature;
use gantry_tests::{Cast, EVERYONE, TestApp, TestResponse, Who};
use serde_json::{Value, json};
use sqlx::PgPool;
use wiremock::matchers::{body_string_contains, header, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const WHSEC: &str = "whsec_gantry_tests";
const BTCPAY_SECRET: &str = "btcpay webhook secret";
const STORE: &str = "Store1";
/// A chain that takes this world's USD invoices (as a stablecoin), for the routes' rules; the
/// chain itself is tested in `onchain`.
const CHAINS: &str = r#"{"31337": {"receiver": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "assets": {"USD": "0x5FbDB2315678afecb367f032d93F642f64180aa3"}}}"#;

struct World {
    app: TestApp,
    stub: MockServer,
    cast: Cast,
}

/// The cast's tokens read as the world's own (`world.staff`).
impl std::ops::Deref for World {
    type Target = Cast;
    fn deref(&self) -> &Cast {
        &self.cast
    }
}

impl World {
    /// The app with Stripe and BTCPay pointed at one local stub.
    async fn new(pool: PgPool) -> Self {
        let stub = MockServer::start().await;
        let uri = stub.uri();
        // The chain's node, as far as the routes ask it: the USD token's decimals() is 2.
        Mock::given(method("POST"))
            .and(path("/rpc"))
            .respond_with(|request: &wiremock::Request| {
                let call: Value = serde_json::from_slice(&request.body).unwrap_or_default();
                let result = match call["method"].as_str() {
                    Some("eth_call") => format!("0x{:064x}", 2),
                    _ => "0x7a69".to_owned(),
                };
                ResponseTemplate::new(200)
                    .set_body_json(json!({"jsonrpc": "2.0", "id": call["id"], "result": result}))
            })
            .mount(&stub)
            .await;
        let rpc = format!("31337={uri}/rpc");
        let app = TestApp::with(
            pool,
            &[
                ("STRIPE_SECRET_KEY", "sk_test_gantry"),
                ("STRIPE_WEBHOOK_SECRET", WHSEC),
                ("STRIPE_API_BASE", uri.as_str()),
                ("BTCPAY_URL", uri.as_str()),
                ("BTCPAY_STORE_ID", STORE),
                ("BTCPAY_API_KEY", "btcpay-key"),
                ("BTCPAY_WEBHOOK_SECRET", BTCPAY_SECRET),
                ("PAYMENT_CHAINS", CHAINS),
                ("CHAIN_RPC_URLS", rpc.as_str()),
            ],
        );
        let cast = Cast::on(&app).await;
        Self { app, stub, cast }
    }

    async fn call(
        &self,
        who: Who,
        method: &Method,
        path: &str,
        body: Option<&Value>,
    ) -> TestResponse {
        self.cast.call(&self.app, who, method, path, body).await
    }

    /// A project of the owner client's: its id.
    async fn project(&self) -> String {
        let res = self
            .app
            .post("/projects")
            .bearer(&self.staff)
            .json(&json!({"name": "Billed", "client_id": self.owner_id}))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        res.str("id")
    }

    /// An invoice of `amount` USD cents on a fresh project, moved to `status`: its id.
    async fn invoice(&self, amount: &str, status: &str) -> String {
        self.invoice_in(amount, "USD", status).await
    }

    /// An invoice of `amount` ISO 4217 minor units of `currency`, moved to `status`: its id.
    async fn invoice_in(&self, amount: &str, currency: &str, status: &str) -> String {
        let project = self.project().await;
        let res = self
            .app
            .post("/invoices")
            .bearer(&self.staff)
            .json(&json!({"project_id": project, "amount": amount, "currency": currency, "due_date": "2027-01-31"}))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        let id = res.str("id");
        if status != "DRAFT" {
            let res = self.put(&id, &json!({"status": status})).await;
            assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        }
        id
    }

    async fn put(&self, id: &str, body: &Value) -> TestResponse {
        self.app
            .put(&format!("/invoices/{id}"))
            .bearer(&self.staff)
            .json(body)
            .send()
            .await
    }

    async fn get(&self, id: &str) -> Value {
        let res = self
            .app
            .get(&format!("/invoices/{id}"))
            .bearer(&self.staff)
            .send()
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        res.body
    }

    async fn payments(&self, id: &str) -> Vec<Value> {
        let res = self
            .app
            .get(&format!("/invoices/{id}/payments"))
            .bearer(&self.staff)
            .send()
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        res.body["items"].as_array().unwrap().clone()
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.app.pool)
            .await
            .unwrap()
    }

    /// Stripe, as a stub that makes one open PaymentIntent per invoice and amount (its id says
    /// which) and retrieves it again.
    async fn stripe_ok(&self) {
        Mock::given(method("POST"))
            .and(path("/v1/payment_intents"))
            .and(header("authorization", "Bearer sk_test_gantry"))
            .respond_with(StripeStub)
            .mount(&self.stub)
            .await;
        Mock::given(method("GET"))
            .and(path_regex("^/v1/payment_intents/pi_[0-9]+_[0-9a-f]+$"))
            .and(header("authorization", "Bearer sk_test_gantry"))
            .respond_with(StripeStub)
            .mount(&self.stub)
            .await;
    }

    async fn start_card_payment(&self, invoice: &str) -> TestResponse {
        self.app
            .post(&format!("/invoices/{invoice}/create-payment-intent"))
            .bearer(&self.owner)
            .send()
            .await
    }

    async fn stripe_event(&self, body: &str) -> TestResponse {
        let header = stripe_header(body, WHSEC, now());
        self.app
            .post("/stripe-webhook")
            .header("stripe-signature", &header)
            .raw(Some("application/json"), body.to_owned())
            .send()
            .await
    }

    async fn btcpay_delivery(&self, body: &str) -> TestResponse {
        let sig = format!(
            "sha256={}",
            signature::sign(BTCPAY_SECRET.as_bytes(), &[body.as_bytes()])
        );
        self.app
            .post("/btcpay-webhook")
            .header("btcpay-sig", &sig)
            .raw(Some("application/json"), body.to_owned())
            .send()
            .await
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// A `Stripe-Signature` header for `body` at time `t`, as Stripe makes it (our signer; the
/// verifier is checked against stripe-node's in `stripe_signatures_agree_with_stripe_node`).
fn stripe_header(body: &str, secret: &str, t: i64) -> String {
    let t = t.to_string();
    let v1 = signature::sign(secret.as_bytes(), &[t.as_bytes(), b".", body.as_bytes()]);
    format!("t={t},v1={v1}")
}

/// Stripe's PaymentIntent API, as far as this API uses it: a create answers an open intent whose
/// id carries the amount and the invoice (`pi_<amount>_<invoice, simple>`) in the currency asked
/// for; a retrieve answers that intent again (in USD).
struct StripeStub;

impl Respond for StripeStub {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let mut currency = "usd".to_owned();
        let id = if request.method.as_str() == "POST" {
            let form = String::from_utf8_lossy(&request.body).into_owned();
            let field = |name: &str| {
                form.split('&')
                    .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
                    .unwrap_or_default()
                    .to_owned()
            };
            let invoice = field("metadata%5Binvoice_id%5D").replace('-', "");
            currency = field("currency");
            format!("pi_{}_{invoice}", field("amount"))
        } else {
            request
                .url
                .path()
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_owned()
        };
        let amount = id
            .split('_')
            .nth(1)
            .and_then(|a| a.parse().ok())
            .unwrap_or(0);
        let mut body = intent(&id, amount, "requires_payment_method");
        body["currency"] = json!(currency);
        ResponseTemplate::new(200).set_body_json(body)
    }
}

/// A PaymentIntent as Stripe's API documents it (the fields a real one has at this stage).
fn intent(id: &str, amount: u64, status: &str) -> Value {
    json!({
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_received": 0,
        "automatic_payment_methods": {"allow_redirects": "always", "enabled": true},
        "capture_method": "automatic_async",
        "client_secret": format!("{id}_secret_abc"),
        "confirmation_method": "automatic",
        "created": 1_767_225_600,
        "currency": "usd",
        "livemode": false,
        "metadata": {},
        "payment_method_types": ["card"],
        "status": status,
    })
}

/// A Stripe event about PaymentIntent `pi` (or a charge of it).
fn stripe_event(event_id: &str, kind: &str, pi: &str, invoice: &str, amount: u64) -> String {
    let object = if kind == "charge.refunded" {
        json!({"id": format!("ch_{event_id}"), "object": "charge", "amount": 1500, "amount_refunded": amount,
               "currency": "usd", "payment_intent": pi, "refunded": amount >= 1500, "metadata": {"invoice_id": invoice}})
    } else {
        json!({"id": pi, "object": "payment_intent", "amount": amount, "amount_received": amount,
               "currency": "usd", "status": "succeeded", "metadata": {"invoice_id": invoice}})
    };
    json!({"id": event_id, "object": "event", "api_version": "2025-03-31.basil", "created": now(),
           "livemode": false, "pending_webhooks": 1, "type": kind, "data": {"object": object}})
    .to_string()
}

// ---------------------------------------------------------------------------------------------
// Who may do what

/// One row per payments route: method, path (`{id}` is an invoice of the owner client's
/// project), body (`{project}` is its project, `{hash}` a transaction hash of its own, `{id}`
/// the invoice), and the status for anonymous, owner client, other client, staff, admin. A
/// payments route in the function table without a row fails `every_payments_route_has_a_row`.
/// Provider calls are answered by the stub. A webhook takes the provider's signature, never a
/// user's token: unsigned, it is a 400 whoever calls. A payout needs an ADMIN who used a second
/// factor in the last five minutes, which the cast's ADMIN has not (`step_up` has the rest).
fn matrix() -> Vec<(Method, &'static str, Option<Value>, [u16; 5])> {
    let stripe = stripe_event(
        "evt_matrix",
        "payment_intent.succeeded",
        "pi_1500_x",
        "{id}",
        1500,
    );
    let btcpay = delivery("DlvMatrix", "DlvMatrix", "InvoiceSettled", "BtcMatrix");
    vec![
        (Method::GET, "/invoices", None, [401, 200, 200, 200, 200]),
        (
            Method::POST,
            "/invoices",
            Some(json!({"project_id": "{project}", "amount": "100", "currency": "EUR"})),
            [401, 403, 403, 201, 201],
        ),
        (
            Method::GET,
            "/invoices/{id}",
            None,
            [401, 200, 404, 200, 200],
        ),
        (
            Method::PUT,
            "/invoices/{id}",
            Some(json!({"due_date": "2027-02-01"})),
            [401, 403, 404, 200, 200],
        ),
        (
            Method::GET,
            "/invoices/{id}/payments",
            None,
            [401, 200, 404, 200, 200],
        ),
        (
            Method::POST,
            "/invoices/{id}/create-payment-intent",
            None,
            [401, 201, 404, 201, 201],
        ),
        (
            Method::POST,
            "/invoices/{id}/create-btcpay-invoice",
            None,
            [401, 201, 404, 201, 201],
        ),
        (
            Method::POST,
            "/invoices/{id}/blockchain-payment",
            Some(json!({"chain_id": 31337, "tx_hash": "{hash}"})),
            [401, 202, 404, 202, 202],
        ),
        (
            Method::POST,
            "/payouts",
            Some(
                json!({"chain_id": 31337, "to": "0x000000000000000000000000000000000000beef",
                        "amount": "100", "currency": "USD", "idempotency_key": "matrix"}),
            ),
            [401, 403, 403, 403, 401],
        ),
        (
            Method::POST,
            "/stripe-webhook",
            Some(serde_json::from_str(&stripe).unwrap()),
            [400, 400, 400, 400, 400],
        ),
        (
            Method::POST,
            "/btcpay-webhook",
            Some(serde_json::from_str(&btcpay).unwrap()),
            [400, 400, 400, 400, 400],
        ),
    ]
}

/// BTCPay's Greenfield invoices API for one invoice `id` of ours (`order`): none made before,
/// a create answering it as New, and a read answering it in `status`.
async fn btcpay_stub(stub: &MockServer, id: &str, amount: &str, order: &str, status: &str) {
    let invoice = |status: &str| {
        json!({
            "id": id, "storeId": STORE, "amount": amount, "currency": "USD", "type": "Standard",
            "checkoutLink": format!("https://btcpay.example.com/i/{id}"), "status": status,
            "additionalStatus": "None", "createdTime": 1_767_225_600, "expirationTime": 1_767_226_500,
            "monitoringExpiration": 1_767_312_000, "archived": false,
            "metadata": {"orderId": order}, "checkout": {"speedPolicy": "MediumSpeed"},
        })
    };
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/stores/{STORE}/invoices")))
        .and(query_param("orderId", order))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(stub)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/api/v1/stores/{STORE}/invoices")))
        .and(header("authorization", "token btcpay-key"))
        .and(body_string_contains(order))
        .respond_with(ResponseTemplate::new(200).set_body_json(invoice("New")))
        .mount(stub)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/stores/{STORE}/invoices/{id}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(invoice(status)))
        .mount(stub)
        .await;
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn the_authorization_matrix_holds_for_every_payments_route_and_caller(pool: PgPool) {
    let world = World::new(pool).await;
    world.stripe_ok().await;
    for (method, template, body, expected) in matrix() {
        for (n, (who, want)) in EVERYONE.iter().zip(expected).enumerate() {
            // A fresh SENT invoice per cell, so one cell's change cannot decide another's.
            let invoice = world.invoice("1500", "SENT").await;
            btcpay_stub(
                &world.stub,
                &format!("Btc{n}x{}", &invoice[..8]),
                "15.00",
                &invoice,
                "New",
            )
            .await;
            let project = world.get(&invoice).await["project_id"]
                .as_str()
                .unwrap()
                .to_owned();
            let body = body.as_ref().map(|b| {
                let hash = format!("0x{0}{0}", invoice.replace('-', ""));
                let text = b.to_string().replace("{project}", &project);
                let text = text.replace("{id}", &invoice);
                serde_json::from_str(&text.replace("{hash}", &hash)).unwrap()
            });
            let path = template.replace("{id}", &invoice);
            let res = world.call(*who, &method, &path, body.as_ref()).await;
            assert_eq!(
                res.status.as_u16(),
                want,
                "{method} {template} as {who:?}: {}",
                res.body
            );
        }
    }
}

/// The matrix has one row for each route the function table serves that the OpenAPI document
/// files under `payments` (invoices, payouts, webhooks), and no other.
#[test]
fn every_payments_route_has_a_row() {
    let mut rows: Vec<(String, String)> = matrix()
        .into_iter()
        .map(|(m, p, _, _)| (m.as_str().to_owned(), p.to_owned()))
        .collect();
    let routes = gantry_tests::routes_tagged("payments");
    rows.sort();
    assert_eq!(rows, routes);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_client_lists_only_their_own_projects_invoices(pool: PgPool) {
    let world = World::new(pool).await;
    let mine = world.invoice("100", "DRAFT").await;
    let (_, third) = world
        .app
        .user_with_role("third@client.example", "CLIENT")
        .await;
    let list = |token: String| {
        let app = &world.app;
        async move { app.get("/invoices").bearer(&token).send().await.body["items"].clone() }
    };
    let owner_sees = list(world.owner.clone()).await;
    assert_eq!(owner_sees.as_array().unwrap().len(), 1);
    assert_eq!(owner_sees[0]["id"], mine.as_str());
    assert_eq!(list(third).await, json!([]));
    assert_eq!(list(world.staff.clone()).await.as_array().unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Invoices

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn an_invoice_moves_only_forward(pool: PgPool) {
    let world = World::new(pool).await;
    let id = world.invoice("1500", "DRAFT").await;
    let body = world.get(&id).await;
    assert_eq!(body["status"], "DRAFT");
    assert_eq!(body["amount"], "1500", "money is an integer string");
    assert_eq!(body["amount_paid"], "0");
    assert_eq!(body["due_date"], "2027-01-31");
    assert_eq!(
        world.put(&id, &json!({"amount": "2000"})).await.body["amount"],
        "2000"
    );
    assert_eq!(
        world
            .put(&id, &json!({"status": "PAID"}))
            .await
            .problem(409)["type"],
        "urn:gantry:problem:conflict"
    );
    assert_eq!(
        world.put(&id, &json!({"status": "SENT"})).await.status,
        StatusCode::OK
    );
    world
        .put(&id, &json!({"amount": "2500"}))
        .await
        .problem(409);
    world
        .put(&id, &json!({"currency": "EUR"}))
        .await
        .problem(409);
    world
        .put(&id, &json!({"status": "DRAFT"}))
        .await
        .problem(409);
    // Sending again, or the same amount, is a no-op, not a conflict.
    assert_eq!(
        world
            .put(&id, &json!({"status": "SENT", "amount": "2000"}))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        world.put(&id, &json!({"due_date": null})).await.body["due_date"],
        Value::Null
    );
    assert_eq!(
        world.put(&id, &json!({"status": "VOID"})).await.status,
        StatusCode::OK
    );
    world
        .put(&id, &json!({"status": "SENT"}))
        .await
        .problem(409);
    assert_eq!(world.app.audit_count("invoice.updated").await, 5);
    assert_eq!(world.app.audit_count("invoice.created").await, 1);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn bad_invoices_are_refused_with_the_field(pool: PgPool) {
    let world = World::new(pool).await;
    let project = world.project().await;
    let post = |body: Value| {
        let app = &world.app;
        let staff = world.staff.clone();
        async move {
            app.post("/invoices")
                .bearer(&staff)
                .json(&body)
                .send()
                .await
        }
    };
    for (amount, field) in [
        ("0", "amount"),
        ("-1", "amount"),
        ("1.5", "amount"),
        ("", "amount"),
    ] {
        let res = post(json!({"project_id": project, "amount": amount, "currency": "USD"})).await;
        assert_eq!(res.fields(), vec![field.to_owned()], "{amount}");
    }
    let res = post(json!({"project_id": project, "amount": 1500, "currency": "USD"})).await;
    assert_eq!(
        res.fields(),
        vec!["amount".to_owned()],
        "a number is not an integer string"
    );
    let res = post(json!({"project_id": project, "amount": "1", "currency": "usd"})).await;
    assert_eq!(res.fields(), vec!["currency".to_owned()]);
    let res = post(json!({"project_id": project, "amount": "1", "currency": "ZZZ"})).await;
    assert_eq!(res.problem(422)["errors"][0]["field"], "currency");
    let res =
        post(json!({"project_id": uuid::Uuid::now_v7(), "amount": "1", "currency": "USD"})).await;
    assert_eq!(res.problem(422)["errors"][0]["field"], "project_id");
    let res =
        post(json!({"project_id": project, "amount": "1", "currency": "USD", "status": "PAID"}))
            .await;
    assert_eq!(
        res.fields(),
        vec!["status".to_owned()],
        "no mass assignment"
    );
    assert_eq!(world.count("SELECT count(*) FROM invoices").await, 0);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_project_with_invoices_cannot_be_deleted(pool: PgPool) {
    let world = World::new(pool).await;
    let id = world.invoice("1500", "DRAFT").await;
    let project = world.get(&id).await["project_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = world
        .app
        .request(Method::DELETE, &format!("/projects/{project}"))
        .bearer(&world.admin)
        .send()
        .await;
    res.problem(409);
    assert_eq!(world.count("SELECT count(*) FROM invoices").await, 1);
}

// ---------------------------------------------------------------------------------------------
// Stripe: starting a card payment

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_payment_intent_is_made_once_for_the_invoice_amount(pool: PgPool) {
    let world = World::new(pool).await;
    let id = world.invoice("1500", "SENT").await;
    world.stripe_ok().await;
    let first = world.start_card_payment(&id).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);
    let pi = first.str("payment_intent_id");
    assert_eq!(pi, format!("pi_1500_{}", id.replace('-', "")));
    assert_eq!(first.body["client_secret"], format!("{pi}_secret_abc"));
    assert_eq!(first.body["amount"], "1500");
    assert_eq!(first.body["currency"], "USD");
    let again = world.start_card_payment(&id).await;
    assert_eq!(again.body, first.body, "the same open intent");
    // What Stripe was asked: the invoice's amount, its id in the metadata, a derived key.
    let requests = world.stub.received_requests().await.unwrap();
    let creates: Vec<_> = requests
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/v1/payment_intents")
        .collect();
    assert_eq!(creates.len(), 1, "the second call retrieved, not created");
    let form = String::from_utf8_lossy(&creates[0].body).into_owned();
    assert!(
        form.contains("amount=1500") && form.contains("currency=usd"),
        "{form}"
    );
    assert!(
        form.contains(&format!("metadata%5Binvoice_id%5D={id}")),
        "{form}"
    );
    let key = creates[0]
        .headers
        .get("idempotency-key")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(key.starts_with(&format!("gantry-{id}-1500-USD-")), "{key}");
    let payments = world.payments(&id).await;
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0]["status"], "PENDING");
    assert_eq!(payments[0]["payment_method"], "CREDIT_CARD");
    assert_eq!(payments[0]["transaction_id"], pi.as_str());
    assert_eq!(world.app.audit_count("payment.started").await, 1);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn double_clicks_make_one_payment(pool: PgPool) {
    let world = World::new(pool).await;
    let id = world.invoice("1500", "SENT").await;
    world.stripe_ok().await;
    let clicks = (0..8).map(|_| world.start_card_payment(&id));
    let answers = futures::future::join_all(clicks).await;
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        assert_eq!(
            answer.body["payment_intent_id"],
            answers[0].body["payment_intent_id"]
        );
    }
    assert_eq!(world.count("SELECT count(*) FROM payments").await, 1);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn only_a_sent_invoice_can_be_paid(pool: PgPool) {
    let world = World::new(pool).await;
    world.stripe_ok().await;
    for status in ["DRAFT", "VOID"] {
        let id = world.invoice("1500", status).await;
        world.start_card_payment(&id).await.problem(409);
    }
    assert!(
        world.stub.received_requests().await.unwrap().is_empty(),
        "Stripe was never asked"
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_card_cannot_pay_a_crypto_invoice(pool: PgPool) {
    let world = World::new(pool).await;
    world.stripe_ok().await;
    let project = world.project().await;
    let res = world
        .app
        .post("/invoices")
        .bearer(&world.staff)
        .json(&json!({"project_id": project, "amount": "150000", "currency": "BTC"}))
        .send()
        .await;
    let id = res.str("id");
    world.put(&id, &json!({"status": "SENT"})).await;
    world.start_card_payment(&id).await.problem(409);
    assert!(world.stub.received_requests().await.unwrap().is_empty());
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_provider_object_of_another_invoice_is_refused(pool: PgPool) {
    let world = World::new(pool).await;
    // A Stripe that answers every invoice with the same PaymentIntent.
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent(
            "pi_shared",
            1500,
            "requires_payment_method",
        )))
        .mount(&world.stub)
        .await;
    let first = world.invoice("1500", "SENT").await;
    assert_eq!(
        world.start_card_payment(&first).await.status,
        StatusCode::CREATED
    );
    let second = world.invoice("1500", "SENT").await;
    world.start_card_payment(&second).await.problem(502);
    assert!(world.payments(&second).await.is_empty());
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_payment_that_succeeded_before_its_webhook_is_not_started_again(pool: PgPool) {
    let world = World::new(pool).await;
    let id = world.invoice("1500", "SENT").await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent(
            "pi_paid_early",
            1500,
            "requires_payment_method",
        )))
        .mount(&world.stub)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/payment_intents/pi_paid_early"))
        .respond_with(ResponseTemplate::new(200).set_body_json(intent(
            "pi_paid_early",
            1500,
            "succeeded",
        )))
        .mount(&world.stub)
        .await;
    assert_eq!(
        world.start_card_payment(&id).await.status,
        StatusCode::CREATED
    );
    // The payer paid; Stripe's webhook has not arrived yet. Another click must not open a
    // second intent (a second charge).
    world.start_card_payment(&id).await.problem(409);
    assert_eq!(world.count("SELECT count(*) FROM payments").await, 1);
    // The same for bitcoin: BTCPay says the invoice is being paid.
    let btc = world.invoice("1500", "SENT").await;
    btcpay_stub(&world.stub, "BtcEarly", "15.00", &btc, "Processing").await;
    let start = || {
        world
            .app
            .post(&format!("/invoices/{btc}/create-btcpay-invoice"))
            .bearer(&world.owner)
            .send()
    };
    assert_eq!(start().await.status, StatusCode::CREATED);
    start().await.problem(409);
    assert_eq!(world.count("SELECT count(*) FROM payments").await, 2);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn stripe_failures_leave_nothing_half_written(pool: PgPool) {
    let world = World::new(pool).await;
    let id = world.invoice("1500", "SENT").await;
    // Down, then refusing, then answering with another amount.
    let cases = [
        (ResponseTemplate::new(500).set_body_json(json!({"error": {"type": "api_error"}})), 503),
        (
            ResponseTemplate::new(400).set_body_json(json!({"error": {"type": "invalid_request_error", "code": "amount_too_small", "message": "secret detail"}})),
            502,
        ),
        (ResponseTemplate::new(200).set_body_json(intent("pi_other", 999, "requires_payment_method")), 502),
        (ResponseTemplate::new(200).set_body_string("not json"), 502),
    ];
    for (response, status) in cases {
        world.stub.reset().await;
        Mock::given(method("POST"))
            .and(path("/v1/payment_intents"))
            .respond_with(response)
            .mount(&world.stub)
            .await;
        let res = world.start_card_payment(&id).await;
        let problem = res.problem(status);
        assert!(
            !problem.to_string().contains("secret detail"),
            "upstream bodies never leak"
        );
        assert_eq!(world.count("SELECT count(*) FROM payments").await, 0);
    }
    // Stripe answers too late: the client gives up (8 s), nothing is written.
    world.stub.reset().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(ResponseTemplate::new(200).set_delay(std::time::Duration::from_secs(9)))
        .mount(&world.stub)
        .await;
    world.start_card_payment(&id).await.problem(503);
    assert_eq!(world.count("SELECT count(*) FROM payments").await, 0);
    // And a retry once Stripe is back succeeds.
    world.stub.reset().await;
    world.stripe_ok().await;
    assert_eq!(
        world.start_card_payment(&id).await.status,
        StatusCode::CREATED
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn missing_provider_settings_are_503_naming_the_variable(pool: PgPool) {
    let app = TestApp::new(pool);
    let (_, staff) = app.user_with_role("staff@example.com", "STAFF").await;
    let id = uuid::Uuid::now_v7();
    let cases = [
        (
            format!("/invoices/{id}/create-payment-intent"),
            "STRIPE_SECRET_KEY",
        ),
        (
            format!("/invoices/{id}/create-btcpay-invoice"),
            "BTCPAY_URL",
        ),
        ("/stripe-webhook".to_owned(), "STRIPE_WEBHOOK_SECRET"),
        ("/btcpay-webhook".to_owned(), "BTCPAY_WEBHOOK_SECRET"),
    ];
    for (path, variable) in cases {
        let res = app
            .post(&path)
            .bearer(&staff)
            .raw(Some("application/json"), "{}")
            .send()
            .await;
        let detail = res.problem(503)["detail"].as_str().unwrap().to_owned();
        assert!(detail.contains(variable), "{path}: {detail}");
    }
}

// ---------------------------------------------------------------------------------------------
// Stripe: webhooks

/// A SENT invoice of 1500 with an open Stripe payment: the invoice's id and the intent's.
async fn card_payment(world: &World) -> (String, String) {
    let id = world.invoice("1500", "SENT").await;
    world.stripe_ok().await;
    let res = world.start_card_payment(&id).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    (id, res.str("payment_intent_id"))
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_succeeded_payment_pays_the_invoice_once(pool: PgPool) {
    let world = World::new(pool).await;
    let (id, pi) = card_payment(&world).await;
    let event = stripe_event("evt_paid", "payment_intent.succeeded", &pi, &id, 1500);
    let res = world.stripe_event(&event).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body["outcome"], "applied");
    let invoice = world.get(&id).await;
    assert_eq!(invoice["status"], "PAID");
    assert_eq!(invoice["amount_paid"], "1500");
    assert_eq!(world.payments(&id).await[0]["status"], "CONFIRMED");
    // Stripe delivers it again: a no-op 200.
    let again = world.stripe_event(&event).await;
    assert_eq!(again.body["outcome"], "duplicate");
    assert_eq!(world.count("SELECT count(*) FROM payment_events").await, 1);
    // A PAID invoice cannot be paid again.
    world.start_card_payment(&id).await.problem(409);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_hundred_concurrent_deliveries_apply_once(pool: PgPool) {
    let world = World::new(pool).await;
    let (id, pi) = card_payment(&world).await;
    let event = stripe_event("evt_storm", "payment_intent.succeeded", &pi, &id, 1500);
    let deliveries = (0..100).map(|_| world.stripe_event(&event));
    let answers = futures::future::join_all(deliveries).await;
    let applied = answers
        .iter()
        .filter(|a| a.body["outcome"] == "applied")
        .count();
    assert!(answers.iter().all(|a| a.status == StatusCode::OK));
    assert_eq!(applied, 1);
    assert_eq!(world.count("SELECT count(*) FROM payment_events").await, 1);
    assert_eq!(
        world
            .count("SELECT count(*) FROM payments WHERE status = 'CONFIRMED'")
            .await,
        1
    );
    assert_eq!(world.get(&id).await["amount_paid"], "1500");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_failure_after_success_never_unpays(pool: PgPool) {
    let world = World::new(pool).await;
    let (id, pi) = card_payment(&world).await;
    for (event, kind) in [
        ("evt_ok", "payment_intent.succeeded"),
        ("evt_late_fail", "payment_intent.payment_failed"),
        ("evt_late_cancel", "payment_intent.canceled"),
    ] {
        let res = world
            .stripe_event(&stripe_event(event, kind, &pi, &id, 1500))
            .await;
        assert_eq!(res.status, StatusCode::OK);
    }
    assert_eq!(world.get(&id).await["status"], "PAID");
    assert_eq!(world.payments(&id).await[0]["status"], "CONFIRMED");
    assert_eq!(world.count("SELECT count(*) FROM payment_events").await, 3);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn an_amount_mismatch_never_credits(pool: PgPool) {
    let world = World::new(pool).await;
    let (id, pi) = card_payment(&world).await;
    let short = stripe_event("evt_short", "payment_intent.succeeded", &pi, &id, 1499);
    assert_eq!(world.stripe_event(&short).await.body["outcome"], "rejected");
    let elsewhere = stripe_event(
        "evt_elsewhere",
        "payment_intent.succeeded",
        &pi,
        &uuid::Uuid::now_v7().to_string(),
        1500,
    );
    assert_eq!(
        world.stripe_event(&elsewhere).await.body["outcome"],
        "rejected"
    );
    let euros = stripe_event("evt_eur", "payment_intent.succeeded", &pi, &id, 1500)
        .replace("\"usd\"", "\"eur\"");
    assert_eq!(world.stripe_event(&euros).await.body["outcome"], "rejected");
    assert_eq!(world.get(&id).await["status"], "SENT");
    assert_eq!(world.payments(&id).await[0]["status"], "PENDING");
    // Each was recorded in the ledger, with why it did not count.
    assert_eq!(
        world
            .count("SELECT count(*) FROM payment_events WHERE outcome LIKE 'rejected:%'")
            .await,
        3
    );
}

/// The form of each PaymentIntent Stripe was asked to create.
async fn created_intents(world: &World) -> Vec<String> {
    let requests = world.stub.received_requests().await.unwrap();
    requests
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/v1/payment_intents")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

/// ISK has no decimals in ISO 4217 but two in Stripe's API: 100,000 kr is `amount=10000000`.
/// Before, Stripe was asked for `100000` (1,000 kr) and a webhook of that paid the invoice at 1%
/// of its price.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn an_isk_invoice_is_charged_and_credited_in_stripes_units(pool: PgPool) {
    let world = World::new(pool).await;
    let id = world.invoice_in("100000", "ISK", "SENT").await;
    world.stripe_ok().await;
    let res = world.start_card_payment(&id).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    assert_eq!(
        res.body["amount"], "100000",
        "the API speaks ISO 4217 units"
    );
    assert_eq!(res.body["currency"], "ISK");
    let forms = created_intents(&world).await;
    assert_eq!(forms.len(), 1);
    assert!(
        forms[0].contains("amount=10000000&") && forms[0].contains("currency=isk"),
        "{}",
        forms[0]
    );
    let pi = res.str("payment_intent_id");
    let isk = |event: &str, amount: u64| {
        stripe_event(event, "payment_intent.succeeded", &pi, &id, amount)
            .replace("\"usd\"", "\"isk\"")
    };
    // 1,000 kr (Stripe's 100000): 1% of the price never credits.
    let cheap = world.stripe_event(&isk("evt_isk_1pct", 100_000)).await;
    assert_eq!(cheap.body["outcome"], "rejected", "{}", cheap.body);
    // A fraction of a króna is no ISO amount: refused, never rounded into a credit.
    world
        .stripe_event(&isk("evt_isk_fraction", 10_000_050))
        .await
        .problem(400);
    assert_eq!(world.get(&id).await["status"], "SENT");
    // The whole price, in Stripe's units, pays it.
    let paid = world.stripe_event(&isk("evt_isk_paid", 10_000_000)).await;
    assert_eq!(paid.body["outcome"], "applied", "{}", paid.body);
    let invoice = world.get(&id).await;
    assert_eq!(invoice["status"], "PAID");
    assert_eq!(invoice["amount_paid"], "100000");
    // The ledger books ISO units too.
    assert_eq!(
        world
            .count("SELECT count(*) FROM payment_events WHERE amount = 100000 AND currency = 'ISK'")
            .await,
        1
    );
}

/// MGA has two decimals in ISO 4217 and none in Stripe's API: 500 Ar (ISO "50000") is
/// `amount=500`, and 123.45 Ar cannot be charged at all (a 422, not a rounded charge).
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn an_mga_invoice_is_charged_in_whole_ariary_or_refused(pool: PgPool) {
    let world = World::new(pool).await;
    world.stripe_ok().await;
    let odd = world.invoice_in("12345", "MGA", "SENT").await;
    let refused = world.start_card_payment(&odd).await;
    let problem = refused.problem(422);
    assert_eq!(problem["errors"][0]["field"], "amount", "{problem}");
    assert!(
        created_intents(&world).await.is_empty(),
        "Stripe was never asked"
    );
    assert!(world.payments(&odd).await.is_empty());

    let id = world.invoice_in("50000", "MGA", "SENT").await;
    let res = world.start_card_payment(&id).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    assert_eq!(res.body["amount"], "50000");
    let forms = created_intents(&world).await;
    assert_eq!(forms.len(), 1);
    assert!(
        forms[0].contains("amount=500&") && forms[0].contains("currency=mga"),
        "{}",
        forms[0]
    );
    let pi = res.str("payment_intent_id");
    let mga = |event: &str, amount: u64| {
        stripe_event(event, "payment_intent.succeeded", &pi, &id, amount)
            .replace("\"usd\"", "\"mga\"")
    };
    // 5 Ar, 1% of the price, never credits.
    let cheap = world.stripe_event(&mga("evt_mga_1pct", 5)).await;
    assert_eq!(cheap.body["outcome"], "rejected", "{}", cheap.body);
    assert_eq!(world.get(&id).await["status"], "SENT");
    let paid = world.stripe_event(&mga("evt_mga_paid", 500)).await;
    assert_eq!(paid.body["outcome"], "applied", "{}", paid.body);
    let invoice = world.get(&id).await;
    assert_eq!(invoice["status"], "PAID");
    assert_eq!(invoice["amount_paid"], "50000");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn refunds_are_recorded_and_a_full_refund_reopens_the_invoice(pool: PgPool) {
    let world = World::new(pool).await;
    let (id, pi) = card_payment(&world).await;
    let paid = stripe_event("evt_p", "payment_intent.succeeded", &pi, &id, 1500);
    world.stripe_event(&paid).await;
    let partial = stripe_event("evt_r1", "charge.refunded", &pi, &id, 500);
    assert_eq!(
        world.stripe_event(&partial).await.body["outcome"],
        "applied"
    );
    let invoice = world.get(&id).await;
    assert_eq!(invoice["amount_paid"], "1000");
    assert_eq!(invoice["status"], "SENT", "no longer covered");
    assert_eq!(world.payments(&id).await[0]["refunded"], "500");
    // The later, cumulative figure wins; an older one arriving late changes nothing.
    world
        .stripe_event(&stripe_event("evt_r2", "charge.refunded", &pi, &id, 1500))
        .await;
    world
        .stripe_event(&stripe_event("evt_r0", "charge.refunded", &pi, &id, 200))
        .await;
    let payment = &world.payments(&id).await[0];
    assert_eq!(payment["status"], "REFUNDED");
    assert_eq!(payment["refunded"], "1500");
    assert_eq!(world.get(&id).await["amount_paid"], "0");
}

/// A Stripe `charge.dispute.*` event about a dispute of PaymentIntent `pi`'s charge, as
/// Stripe documents the Dispute object.
fn dispute_event(event_id: &str, kind: &str, pi: &str, status: &str) -> String {
    let object = json!({"id": "dp_1", "object": "dispute", "amount": 1500, "balance_transactions": [],
        "charge": "ch_1", "created": now(), "currency": "usd", "is_charge_refundable": false,
        "livemode": false, "metadata": {}, "payment_intent": pi, "reason": "fraudulent",
        "status": status});
    json!({"id": event_id, "object": "event", "api_version": "2025-03-31.basil", "created": now(),
           "livemode": false, "pending_webhooks": 1, "type": kind, "data": {"object": object}})
    .to_string()
}

/// A paid invoice whose charge is disputed is owed again (its payment DISPUTED, out of the paid
/// sum); a lost dispute keeps it so, whatever arrives late. Before, disputes were ignored and
/// the invoice stayed PAID after a chargeback.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_dispute_opened_and_lost_leaves_the_invoice_owed(pool: PgPool) {
    let world = World::new(pool).await;
    let (id, pi) = card_payment(&world).await;
    let paid = stripe_event("evt_paid", "payment_intent.succeeded", &pi, &id, 1500);
    assert_eq!(world.stripe_event(&paid).await.body["outcome"], "applied");
    assert_eq!(world.get(&id).await["status"], "PAID");

    let opened = dispute_event(
        "evt_dp_open",
        "charge.dispute.created",
        &pi,
        "needs_response",
    );
    let res = world.stripe_event(&opened).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body["outcome"], "applied");
    let invoice = world.get(&id).await;
    assert_eq!(invoice["status"], "SENT", "owed again");
    assert_eq!(invoice["amount_paid"], "0");
    assert_eq!(world.payments(&id).await[0]["status"], "DISPUTED");
    assert_eq!(
        world.stripe_event(&opened).await.body["outcome"],
        "duplicate"
    );

    let lost = dispute_event("evt_dp_lost", "charge.dispute.closed", &pi, "lost");
    assert_eq!(world.stripe_event(&lost).await.body["outcome"], "applied");
    // Late or stray events change nothing now: the success again (another delivery id), a
    // second opening, a "won" that contradicts the close.
    for (event, body) in [
        (
            "late success",
            stripe_event("evt_paid_2", "payment_intent.succeeded", &pi, &id, 1500),
        ),
        (
            "late opening",
            dispute_event(
                "evt_dp_open_2",
                "charge.dispute.created",
                &pi,
                "needs_response",
            ),
        ),
        (
            "contradicting close",
            dispute_event("evt_dp_won", "charge.dispute.closed", &pi, "won"),
        ),
    ] {
        let res = world.stripe_event(&body).await;
        assert_eq!(res.status, StatusCode::OK, "{event}: {}", res.body);
    }
    let invoice = world.get(&id).await;
    assert_eq!(invoice["status"], "SENT");
    assert_eq!(invoice["amount_paid"], "0");
    assert_eq!(world.payments(&id).await[0]["status"], "DISPUTED");
    // The ledger records the opening, the close and every late event once.
    assert_eq!(
        world
            .count("SELECT count(*) FROM payment_events WHERE event_type LIKE 'charge.dispute.%'")
            .await,
        4
    );
    assert_eq!(
        world
            .count("SELECT count(*) FROM payment_events WHERE event_id = 'evt_dp_open' AND outcome LIKE '%Confirmed -> Disputed%Paid -> Sent%'")
            .await,
        1
    );
    assert_eq!(
        world
            .count("SELECT count(*) FROM payments WHERE dispute = 'LOST'")
            .await,
        1
    );
}

/// A won dispute counts the payment again, in whatever order Stripe delivers the opening and
/// the close.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_won_dispute_pays_the_invoice_again_in_any_order(pool: PgPool) {
    let world = World::new(pool).await;
    // In order: opened (owed again), then won (paid again).
    let (id, pi) = card_payment(&world).await;
    let paid = stripe_event("evt_paid_a", "payment_intent.succeeded", &pi, &id, 1500);
    world.stripe_event(&paid).await;
    world
        .stripe_event(&dispute_event(
            "evt_a_open",
            "charge.dispute.created",
            &pi,
            "needs_response",
        ))
        .await;
    assert_eq!(world.get(&id).await["status"], "SENT");
    let won = dispute_event("evt_a_won", "charge.dispute.closed", &pi, "won");
    assert_eq!(world.stripe_event(&won).await.body["outcome"], "applied");
    let invoice = world.get(&id).await;
    assert_eq!(invoice["status"], "PAID");
    assert_eq!(invoice["amount_paid"], "1500");
    assert_eq!(world.payments(&id).await[0]["status"], "CONFIRMED");

    // Out of order: the close (an inquiry closed without a chargeback) first, then the opening,
    // then the success itself: the invoice ends PAID and the late opening does not reopen it.
    let (other, pi) = card_payment(&world).await;
    for body in [
        dispute_event(
            "evt_b_closed",
            "charge.dispute.closed",
            &pi,
            "warning_closed",
        ),
        dispute_event(
            "evt_b_open",
            "charge.dispute.created",
            &pi,
            "warning_needs_response",
        ),
        stripe_event("evt_paid_b", "payment_intent.succeeded", &pi, &other, 1500),
    ] {
        let res = world.stripe_event(&body).await;
        assert_eq!(res.body["outcome"], "applied", "{}", res.body);
    }
    let invoice = world.get(&other).await;
    assert_eq!(invoice["status"], "PAID");
    assert_eq!(world.payments(&other).await[0]["status"], "CONFIRMED");

    // A dispute of a PaymentIntent that is none of ours is recorded only.
    let stranger = dispute_event(
        "evt_c_open",
        "charge.dispute.created",
        "pi_stranger",
        "needs_response",
    );
    assert_eq!(
        world.stripe_event(&stranger).await.body["outcome"],
        "ignored"
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn webhooks_without_a_valid_signature_are_400_and_change_nothing(pool: PgPool) {
    let world = World::new(pool).await;
    let (id, pi) = card_payment(&world).await;
    let body = stripe_event("evt_forged", "payment_intent.succeeded", &pi, &id, 1500);
    let send = |header: Option<String>, body: String| {
        let app = &world.app;
        async move {
            let mut call = app.post("/stripe-webhook");
            if let Some(header) = header {
                call = call.header("stripe-signature", &header);
            }
            call.raw(Some("application/json"), body).send().await
        }
    };
    let t = now();
    let cases = [
        Some(stripe_header(&body, "whsec_wrong", t)),
        Some(stripe_header(&body, WHSEC, t - 301)),
        Some(stripe_header(&body.replace("1500", "15000"), WHSEC, t)),
        Some(stripe_header(&body, WHSEC, t).replace("v1=", "v0=")),
        None,
    ];
    for header in cases {
        send(header, body.clone()).await.problem(400);
    }
    // Signed, but not an event.
    send(Some(stripe_header("[1,2]", WHSEC, t)), "[1,2]".into())
        .await
        .problem(400);
    assert_eq!(world.count("SELECT count(*) FROM payment_events").await, 0);
    assert_eq!(world.get(&id).await["status"], "SENT");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn unknown_event_types_and_strangers_payments_are_200(pool: PgPool) {
    let world = World::new(pool).await;
    let unknown =
        json!({"id": "evt_x", "type": "customer.created", "data": {"object": {"id": "cus_1"}}})
            .to_string();
    let res = world.stripe_event(&unknown).await;
    assert_eq!(
        (res.status, res.body["outcome"].clone()),
        (StatusCode::OK, json!("ignored"))
    );
    assert_eq!(world.count("SELECT count(*) FROM payment_events").await, 0);
    // A PaymentIntent made outside this API: recorded, nothing credited.
    let stranger = stripe_event(
        "evt_stranger",
        "payment_intent.succeeded",
        "pi_dashboard",
        &uuid::Uuid::now_v7().to_string(),
        100,
    );
    assert_eq!(
        world.stripe_event(&stranger).await.body["outcome"],
        "ignored"
    );
    assert_eq!(world.count("SELECT count(*) FROM payment_events").await, 1);
}

// ---------------------------------------------------------------------------------------------
// The ledger

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn the_ledger_is_a_hash_chain_that_shows_any_change(pool: PgPool) {
    use gantry::payments::ledger::{Verdict, verify};
    let world = World::new(pool).await;
    let (id, pi) = card_payment(&world).await;
    for (event, kind, amount) in [
        ("evt_c1", "payment_intent.succeeded", 1500),
        ("evt_c2", "charge.refunded", 100),
        ("evt_c3", "charge.refunded", 300),
    ] {
        world
            .stripe_event(&stripe_event(event, kind, &pi, &id, amount))
            .await;
    }
    let mut conn = world.app.pool.acquire().await.unwrap();
    assert_eq!(
        verify(&mut conn).await.unwrap(),
        Verdict::Intact { rows: 3 }
    );
    // The table refuses changes; whoever turns that off is caught by the chain.
    let update = "UPDATE payment_events SET amount = 1 WHERE seq = 2";
    assert!(
        sqlx::query(update).execute(&mut *conn).await.is_err(),
        "append-only"
    );
    sqlx::query("ALTER TABLE payment_events DISABLE TRIGGER payment_events_append_only")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(update).execute(&mut *conn).await.unwrap();
    assert!(matches!(
        verify(&mut conn).await.unwrap(),
        Verdict::Broken { seq: 2, .. }
    ));
    sqlx::query("UPDATE payment_events SET amount = 100 WHERE seq = 2")
        .execute(&mut *conn)
        .await
        .unwrap();
    assert_eq!(
        verify(&mut conn).await.unwrap(),
        Verdict::Intact { rows: 3 }
    );
    sqlx::query("DELETE FROM payment_events WHERE seq = 3")
        .execute(&mut *conn)
        .await
        .unwrap();
    assert!(
        matches!(verify(&mut conn).await.unwrap(), Verdict::Broken { .. }),
        "a removed tail"
    );
}

// ---------------------------------------------------------------------------------------------
// BTCPay

fn delivery(id: &str, original: &str, kind: &str, invoice: &str) -> String {
    json!({
        "deliveryId": id, "webhookId": "Wh1", "originalDeliveryId": original,
        "isRedelivery": id != original, "type": kind, "timestamp": now(),
        "storeId": STORE, "invoiceId": invoice, "metadata": {},
    })
    .to_string()
}

/// A SENT invoice of 1500 (15.00 USD) with a BTCPay payment `btc` open: the invoice id.
async fn bitcoin_payment(world: &World, btc: &str, status: &str) -> String {
    let id = world.invoice("1500", "SENT").await;
    btcpay_stub(&world.stub, btc, "15.00", &id, status).await;
    let res = world
        .app
        .post(&format!("/invoices/{id}/create-btcpay-invoice"))
        .bearer(&world.owner)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    assert_eq!(res.body["btcpay_invoice_id"], btc);
    assert_eq!(
        res.body["checkout_link"],
        format!("https://btcpay.example.com/i/{btc}")
    );
    id
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_btcpay_invoice_is_made_once_for_the_amount_in_major_units(pool: PgPool) {
    let world = World::new(pool).await;
    let id = bitcoin_payment(&world, "BtcOnce", "New").await;
    let again = world
        .app
        .post(&format!("/invoices/{id}/create-btcpay-invoice"))
        .bearer(&world.staff)
        .send()
        .await;
    assert_eq!(again.body["btcpay_invoice_id"], "BtcOnce");
    let requests = world.stub.received_requests().await.unwrap();
    let posts: Vec<_> = requests
        .iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() != "/rpc")
        .collect();
    assert_eq!(posts.len(), 1);
    let sent: Value = serde_json::from_slice(&posts[0].body).unwrap();
    assert_eq!(sent["amount"], "15.00");
    assert_eq!(sent["currency"], "USD");
    assert_eq!(sent["metadata"]["orderId"], id.as_str());
    assert_eq!(world.payments(&id).await[0]["payment_method"], "CRYPTO");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_btcpay_invoice_made_before_a_lost_answer_is_reused(pool: PgPool) {
    let world = World::new(pool).await;
    let id = world.invoice("1500", "SENT").await;
    let made = json!([{
        "id": "BtcLost", "storeId": STORE, "amount": "15", "currency": "USD", "status": "New",
        "checkoutLink": "https://btcpay.example.com/i/BtcLost", "metadata": {"orderId": id},
    }]);
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/stores/{STORE}/invoices")))
        .and(query_param("orderId", id.as_str()))
        .and(query_param("status", "New"))
        .respond_with(ResponseTemplate::new(200).set_body_json(made))
        .mount(&world.stub)
        .await;
    let res = world
        .app
        .post(&format!("/invoices/{id}/create-btcpay-invoice"))
        .bearer(&world.owner)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    assert_eq!(res.body["btcpay_invoice_id"], "BtcLost");
    let requests = world.stub.received_requests().await.unwrap();
    assert!(
        requests
            .iter()
            .all(|r| r.method.as_str() == "GET" || r.url.path() == "/rpc"),
        "nothing new was made"
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn btcpay_failures_leave_nothing_half_written(pool: PgPool) {
    let world = World::new(pool).await;
    let id = world.invoice("1500", "SENT").await;
    let start = || {
        world
            .app
            .post(&format!("/invoices/{id}/create-btcpay-invoice"))
            .bearer(&world.owner)
            .send()
    };
    let invoices = format!("/api/v1/stores/{STORE}/invoices");
    // Down, refusing the key, too slow (8 s), and answering with another amount.
    let other = json!({"id": "BtcOther", "amount": "14.99", "currency": "USD", "status": "New",
                       "checkoutLink": "https://btcpay.example.com/i/BtcOther", "metadata": {"orderId": id}});
    let cases = [
        (ResponseTemplate::new(503), 503),
        (
            ResponseTemplate::new(401)
                .set_body_json(json!({"code": "unauthenticated", "message": "secret detail"})),
            502,
        ),
        (
            ResponseTemplate::new(200)
                .set_body_json(json!([]))
                .set_delay(std::time::Duration::from_secs(9)),
            503,
        ),
        (ResponseTemplate::new(200).set_body_json(other), 502),
    ];
    for (n, (response, status)) in cases.into_iter().enumerate() {
        world.stub.reset().await;
        let searched = n == 3;
        Mock::given(method("GET"))
            .and(path(invoices.clone()))
            .respond_with(if searched {
                ResponseTemplate::new(200).set_body_json(json!([]))
            } else {
                response.clone()
            })
            .mount(&world.stub)
            .await;
        Mock::given(method("POST"))
            .and(path(invoices.clone()))
            .respond_with(response)
            .mount(&world.stub)
            .await;
        let res = start().await;
        let problem = res.problem(status);
        assert!(
            !problem.to_string().contains("secret detail"),
            "upstream bodies never leak"
        );
        assert_eq!(
            world.count("SELECT count(*) FROM payments").await,
            0,
            "case {n}"
        );
    }
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_btcpay_settlement_is_confirmed_with_btcpay_before_it_credits(pool: PgPool) {
    let world = World::new(pool).await;
    let id = bitcoin_payment(&world, "BtcSettle", "Settled").await;
    let first = delivery("Dlv1", "Dlv1", "InvoiceSettled", "BtcSettle");
    let res = world.btcpay_delivery(&first).await;
    assert_eq!(res.body["outcome"], "applied", "{}", res.body);
    assert_eq!(world.get(&id).await["status"], "PAID");
    // A redelivery has a new deliveryId and the first one's as originalDeliveryId.
    let redelivery = delivery("Dlv2", "Dlv1", "InvoiceSettled", "BtcSettle");
    assert_eq!(
        world.btcpay_delivery(&redelivery).await.body["outcome"],
        "duplicate"
    );
    assert_eq!(world.count("SELECT count(*) FROM payment_events").await, 1);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn reconciliation_applies_a_bitcoin_settlement_whose_delivery_never_came(pool: PgPool) {
    let world = World::new(pool).await;
    // BTCPay's API says Settled; the InvoiceSettled delivery never came.
    let id = bitcoin_payment(&world, "BtcLost", "Settled").await;
    // A waiting on-chain payment is handed to the chain monitor again.
    let hash = format!("0x{0}{0}", id.replace('-', ""));
    let res = world
        .call(
            Who::OwnerClient,
            &Method::POST,
            &format!(
                "/invoices/{}/blockchain-payment",
                world.invoice("1500", "SENT").await
            ),
            Some(&json!({"chain_id": 31337, "tx_hash": hash})),
        )
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"object": "list", "has_more": false, "data": []})),
        )
        .mount(&world.stub)
        .await;
    let watches = "SELECT count(*) FROM queue_messages WHERE queue = 'chain-monitor'";
    let before = world.count(watches).await;
    let reconciler =
        gantry::payments::reconcile::Reconciler::from_platform(&world.app.platform).unwrap();
    let ran = reconciler.run().await.unwrap();
    assert_eq!(ran.findings.len(), 1, "{:?}", ran.findings);
    assert_eq!(ran.findings[0].provider, "btcpay");
    assert_eq!(ran.findings[0].provider_ref, "BtcLost");
    assert_eq!(ran.findings[0].kind, "missing");
    assert_eq!(world.get(&id).await["status"], "PAID");
    assert_eq!(world.count(watches).await, before + 1);
    // Settled now: the next run reads it back as paid, and finds nothing.
    let again = reconciler.run().await.unwrap();
    assert!(again.findings.is_empty(), "{:?}", again.findings);

    // BTCPay marks it invalid afterwards: we still count it paid, so that is a finding, once,
    // however many runs read it; nothing is changed.
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/stores/{STORE}/invoices/BtcLost")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "BtcLost", "storeId": STORE, "amount": "15.00", "currency": "USD",
            "status": "Invalid", "additionalStatus": "Marked", "metadata": {"orderId": id}})))
        .with_priority(1)
        .mount(&world.stub)
        .await;
    let marked = reconciler.run().await.unwrap();
    assert_eq!(marked.findings.len(), 1, "{:?}", marked.findings);
    assert_eq!(marked.findings[0].provider_ref, "BtcLost");
    assert_eq!(marked.findings[0].kind, "status");
    assert!(marked.findings[0].detail.contains("Invalid"));
    let once_more = reconciler.run().await.unwrap();
    assert!(once_more.findings.is_empty(), "{:?}", once_more.findings);
    assert_eq!(world.get(&id).await["status"], "PAID");
    assert_eq!(
        world
            .count("SELECT count(*) FROM reconciliation_findings WHERE kind = 'status'")
            .await,
        1
    );
}

/// A payout event of BTCPay's for payout `payout` (delivery `id`).
fn payout_delivery(id: &str, kind: &str, payout: &str) -> String {
    json!({
        "deliveryId": id, "webhookId": "Wh1", "originalDeliveryId": id, "isRedelivery": false,
        "type": kind, "timestamp": now(), "storeId": STORE, "payoutId": payout,
        "pullPaymentId": "ignored: BTCPay's API is read instead", "payoutState": "Completed",
    })
    .to_string()
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_bitcoin_refund_is_a_claim_link_mailed_to_the_client_and_settles_when_paid_out(
    pool: PgPool,
) {
    let world = World::new(pool).await;
    let id = bitcoin_payment(&world, "BtcRefund", "Settled").await;
    let settled = delivery("DlvR1", "DlvR1", "InvoiceSettled", "BtcRefund");
    assert_eq!(
        world.btcpay_delivery(&settled).await.body["outcome"],
        "applied"
    );
    let payment: String =
        sqlx::query_scalar("SELECT id::text FROM payments WHERE invoice_id = $1::uuid")
            .bind(&id)
            .fetch_one(&world.app.pool)
            .await
            .unwrap();
    // Greenfield's invoice refund: a pull payment of 4.00 USD, claimed at its view link.
    Mock::given(method("POST"))
        .and(path(format!(
            "/api/v1/stores/{STORE}/invoices/BtcRefund/refund"
        )))
        .and(header("authorization", "token btcpay-key"))
        .and(body_string_contains(r#""customAmount":"4.00""#))
        .and(body_string_contains(r#""refundVariant":"Custom""#))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "PpRefund1", "name": "Refund", "currency": "USD", "amount": "4.00",
            "viewLink": "https://btcpay.example.com/pull-payments/PpRefund1", "archived": false})))
        .expect(1)
        .mount(&world.stub)
        .await;
    let body = json!({"payment_id": payment, "amount": "400", "reason": "Half a day less",
                      "idempotency_key": "btc-refund-1"});
    let res = world
        .call(
            Who::Staff,
            &Method::POST,
            &format!("/invoices/{id}/refunds"),
            Some(&body),
        )
        .await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    assert_eq!(res.body["status"], "PENDING");
    assert_eq!(res.body["provider_ref"], "PpRefund1");
    let link = "https://btcpay.example.com/pull-payments/PpRefund1";
    assert_eq!(res.body["claim_link"], link);
    let refund = res.str("id");
    let mailed: String = sqlx::query_scalar(
        "SELECT text_body FROM mail_outbox WHERE recipient = 'owner@client.example' AND subject LIKE 'Your refund%'",
    )
    .fetch_one(&world.app.pool)
    .await
    .unwrap();
    assert!(mailed.contains(link), "{mailed}");
    // A payout still on its way changes nothing; once BTCPay's API says Completed, it settles.
    for (payout, state) in [("PoWaiting", "AwaitingPayment"), ("PoDone", "Completed")] {
        Mock::given(method("GET"))
            .and(path(format!("/api/v1/stores/{STORE}/payouts/{payout}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!({
                "id": payout, "pullPaymentId": "PpRefund1", "state": state, "amount": "4.00"})))
            .mount(&world.stub)
            .await;
    }
    let res = world
        .btcpay_delivery(&payout_delivery("DlvP1", "PayoutUpdated", "PoWaiting"))
        .await;
    assert_eq!(res.body["outcome"], "ignored", "{}", res.body);
    let res = world
        .btcpay_delivery(&payout_delivery("DlvP2", "PayoutUpdated", "PoDone"))
        .await;
    assert_eq!(res.body["outcome"], "applied", "{}", res.body);
    let res = world
        .btcpay_delivery(&payout_delivery("DlvP3", "PayoutUpdated", "PoDone"))
        .await;
    assert_eq!(res.body["outcome"], "ignored", "settled once");
    let list = world
        .call(
            Who::Staff,
            &Method::GET,
            &format!("/invoices/{id}/refunds"),
            None,
        )
        .await;
    assert_eq!(list.body["items"][0]["id"], refund.as_str());
    assert_eq!(list.body["items"][0]["status"], "SUCCEEDED");
    // Its credit note lowered what is due: the invoice stays PAID.
    assert_eq!(world.get(&id).await["credited"], "400");
    assert_eq!(world.get(&id).await["status"], "PAID");
    // BTCPay reports no cumulative refund figure: the refund is counted on its payment.
    assert_eq!(world.get(&id).await["amount_paid"], "1100");
    let rev = world
        .call(
            Who::Staff,
            &Method::GET,
            "/reports/revenue?interval=day",
            None,
        )
        .await;
    assert_eq!(rev.body["rows"][0]["refunded"], "400", "{}", rev.body);
    assert_eq!(
        rev.body["rows"][0]["paid"]["bitcoin"], "1500",
        "{}",
        rev.body
    );
    // A forged payout delivery (no valid signature) is refused.
    let forged = world
        .app
        .post("/btcpay-webhook")
        .header("btcpay-sig", "sha256=00")
        .raw(
            Some("application/json"),
            payout_delivery("DlvP4", "PayoutUpdated", "PoDone"),
        )
        .send()
        .await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_settlement_btcpay_does_not_confirm_credits_nothing(pool: PgPool) {
    let world = World::new(pool).await;
    // BTCPay's API says the invoice is still Processing, whatever the delivery claims.
    let id = bitcoin_payment(&world, "BtcClaim", "Processing").await;
    let claim = delivery("Dlv9", "Dlv9", "InvoiceSettled", "BtcClaim");
    assert_eq!(
        world.btcpay_delivery(&claim).await.body["outcome"],
        "ignored"
    );
    assert_eq!(world.get(&id).await["status"], "SENT");
    assert_eq!(
        world.count("SELECT count(*) FROM payment_events").await,
        0,
        "a redelivery can still credit"
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_delivery_for_another_store_is_ignored(pool: PgPool) {
    let world = World::new(pool).await;
    let id = bitcoin_payment(&world, "BtcElsewhere", "Settled").await;
    let body =
        delivery("Dlv8", "Dlv8", "InvoiceSettled", "BtcElsewhere").replace(STORE, "OtherStore");
    assert_eq!(
        world.btcpay_delivery(&body).await.body["outcome"],
        "ignored"
    );
    assert_eq!(world.get(&id).await["status"], "SENT");
    assert_eq!(world.count("SELECT count(*) FROM payment_events").await, 0);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn an_expired_btcpay_invoice_fails_its_payment(pool: PgPool) {
    let world = World::new(pool).await;
    let id = bitcoin_payment(&world, "BtcLate", "New").await;
    let expired = delivery("Dlv5", "Dlv5", "InvoiceExpired", "BtcLate");
    assert_eq!(
        world.btcpay_delivery(&expired).await.body["outcome"],
        "applied"
    );
    assert_eq!(world.payments(&id).await[0]["status"], "FAILED");
    assert_eq!(world.get(&id).await["status"], "SENT");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn btcpay_deliveries_without_a_valid_signature_are_400(pool: PgPool) {
    let world = World::new(pool).await;
    bitcoin_payment(&world, "BtcForged", "Settled").await;
    let body = delivery("Dlv7", "Dlv7", "InvoiceSettled", "BtcForged");
    let wrong = format!(
        "sha256={}",
        signature::sign(b"not the secret", &[body.as_bytes()])
    );
    for header in [
        Some(wrong.as_str()),
        Some("sha256=00"),
        Some("garbage"),
        None,
    ] {
        let mut call = world.app.post("/btcpay-webhook");
        if let Some(header) = header {
            call = call.header("btcpay-sig", header);
        }
        call.raw(Some("application/json"), body.clone())
            .send()
            .await
            .problem(400);
    }
    assert_eq!(world.count("SELECT count(*) FROM payment_events").await, 0);
}

// ---------------------------------------------------------------------------------------------
// Signatures against independent signers

#[test]
fn stripe_signatures_agree_with_stripe_node() {
    let fixtures: Value =
        serde_json::from_str(include_str!("../../fixtures/webhook-signatures.json")).unwrap();
    let stripe = &fixtures["stripe"];
    let secret = stripe["secret"].as_str().unwrap();
    for case in stripe["cases"].as_array().unwrap() {
        let outcome = gantry::payments::stripe::webhook::verify(
            case["header"].as_str().unwrap(),
            case["body"].as_str().unwrap().as_bytes(),
            secret.as_bytes(),
            case["now"].as_i64().unwrap(),
        );
        assert_eq!(
            outcome.is_ok(),
            case["valid"].as_bool().unwrap(),
            "{}: {outcome:?}",
            case["name"]
        );
    }
}

#[test]
fn btcpay_signatures_agree_with_node_crypto() {
    let fixtures: Value =
        serde_json::from_str(include_str!("../../fixtures/webhook-signatures.json")).unwrap();
    let btcpay = &fixtures["btcpay"];
    let secret = btcpay["secret"].as_str().unwrap();
    for case in btcpay["cases"].as_array().unwrap() {
        let outcome = gantry::payments::btcpay::webhook::verify(
            case["header"].as_str().unwrap(),
            case["body"].as_str().unwrap().as_bytes(),
            secret.as_bytes(),
        );
        assert_eq!(
            outcome.is_ok(),
            case["valid"].as_bool().unwrap(),
            "{}: {outcome:?}",
            case["name"]
        );
    }
}
