//! BTCPay books what it received: partly paid, over-paid and late-paid invoices, against a
//! stub of the Greenfield API serving its documented invoice and payment-methods answers, with
//! the documented webhook payloads. A payment counts once BTCPay says it is Settled; redelivered
//! and out-of-order deliveries record the same.

use axum::http::StatusCode;
use gantry::payments::signature;
use gantry_tests::{Cast, TestApp, TestResponse};
use serde_json::{Value, json};
use sqlx::PgPool;
use wiremock::matchers::{body_string_contains, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "btcpay webhook secret";
const STORE: &str = "Store1";
/// The stub's exchange rate: USD per BTC.
const RATE: &str = "40000.00";

struct Btcpay {
    app: TestApp,
    stub: MockServer,
    cast: Cast,
}

impl Btcpay {
    async fn new(pool: PgPool) -> Self {
        let stub = MockServer::start().await;
        let uri = stub.uri();
        let app = TestApp::with(
            pool,
            &[
                ("BTCPAY_URL", uri.as_str()),
                ("BTCPAY_STORE_ID", STORE),
                ("BTCPAY_API_KEY", "btcpay-key"),
                ("BTCPAY_WEBHOOK_SECRET", SECRET),
            ],
        );
        let cast = Cast::on(&app).await;
        Self { app, stub, cast }
    }

    /// A SENT invoice of 15.00 USD, with BTCPay invoice `btc` opened for it: our invoice's id.
    async fn paying(&self, btc: &str) -> String {
        let id = self
            .app
            .sent_invoice(&self.cast.staff, &self.cast.owner_id, "1500", "USD")
            .await;
        Mock::given(method("GET"))
            .and(path(format!("/api/v1/stores/{STORE}/invoices")))
            .and(query_param("orderId", id.as_str()))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .mount(&self.stub)
            .await;
        Mock::given(method("POST"))
            .and(path(format!("/api/v1/stores/{STORE}/invoices")))
            .and(body_string_contains("\"15.00\""))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(invoice_data(btc, &id, "New", "None")),
            )
            .mount(&self.stub)
            .await;
        let made = self.open_btcpay_invoice(&id).await;
        assert_eq!(made.status, StatusCode::CREATED, "{}", made.body);
        assert_eq!(made.body["btcpay_invoice_id"], btc);
        id
    }

    async fn open_btcpay_invoice(&self, id: &str) -> TestResponse {
        self.app
            .post(&format!("/invoices/{id}/create-btcpay-invoice"))
            .bearer(&self.cast.owner)
            .send()
            .await
    }

    /// From now on BTCPay answers invoice `btc` (of our `order`) in `status` and
    /// `additional`, paid by `payments` (`(BTC value, payment status)`) on chain.
    async fn answers(
        &self,
        btc: &str,
        order: &str,
        status: &str,
        additional: &str,
        payments: &[(&str, &str)],
    ) {
        self.stub.reset().await;
        Mock::given(method("GET"))
            .and(path(format!("/api/v1/stores/{STORE}/invoices/{btc}")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(invoice_data(btc, order, status, additional)),
            )
            .mount(&self.stub)
            .await;
        Mock::given(method("GET"))
            .and(path(format!(
                "/api/v1/stores/{STORE}/invoices/{btc}/payment-methods"
            )))
            .respond_with(ResponseTemplate::new(200).set_body_json(payment_methods(payments)))
            .mount(&self.stub)
            .await;
    }

    /// Delivers `body`, signed as BTCPay signs: its outcome.
    async fn deliver(&self, body: &Value) -> String {
        let body = body.to_string();
        let sig = format!(
            "sha256={}",
            signature::sign(SECRET.as_bytes(), &[body.as_bytes()])
        );
        let res = self
            .app
            .post("/btcpay-webhook")
            .header("btcpay-sig", &sig)
            .raw(Some("application/json"), body)
            .send()
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        res.str("outcome")
    }

    /// Our invoice's status and amount paid, and its one payment's status and amount.
    async fn books(&self, id: &str) -> [String; 4] {
        let invoice = self
            .app
            .get(&format!("/invoices/{id}"))
            .bearer(&self.cast.staff)
            .send()
            .await;
        let payments = self
            .app
            .get(&format!("/invoices/{id}/payments"))
            .bearer(&self.cast.staff)
            .send()
            .await;
        let payment = &payments.body["items"][0];
        [
            invoice.str("status"),
            invoice.str("amount_paid"),
            payment["status"].as_str().unwrap().to_owned(),
            payment["amount"].as_str().unwrap().to_owned(),
        ]
    }
}

/// Greenfield's `InvoiceData` for 15.00 USD.
fn invoice_data(btc: &str, order: &str, status: &str, additional: &str) -> Value {
    json!({
        "id": btc, "storeId": STORE, "amount": "15.00", "currency": "USD", "type": "Standard",
        "checkoutLink": format!("https://btcpay.example.com/i/{btc}"), "status": status,
        "additionalStatus": additional, "createdTime": 1_767_225_600,
        "expirationTime": 1_767_226_500, "monitoringExpiration": 1_767_312_000,
        "archived": false, "metadata": {"orderId": order},
        "checkout": {"speedPolicy": "MediumSpeed"},
        "availableStatusesForManualMarking": ["Settled", "Invalid"],
    })
}

/// Greenfield's `InvoicePaymentMethodDataModel` list: on-chain BTC at [`RATE`], with
/// `payments`, and a Lightning method nobody used.
fn payment_methods(payments: &[(&str, &str)]) -> Value {
    let paid: Vec<Value> = payments
        .iter()
        .enumerate()
        .map(|(n, (value, status))| {
            json!({
                "id": format!("{n:064x}-0"), "receivedDate": 1_767_225_700 + n,
                "value": value, "fee": "0.00000000", "status": status,
                "destination": "bcrt1qgantrytestdestination",
            })
        })
        .collect();
    json!([
        {
            "paymentMethodId": "BTC-CHAIN", "currency": "BTC",
            "destination": "bcrt1qgantrytestdestination",
            "paymentLink": "bitcoin:bcrt1qgantrytestdestination?amount=0.000375",
            "rate": RATE, "paymentMethodPaid": "0", "totalPaid": "0", "due": "0.00037500",
            "amount": "0.00037500", "networkFee": "0.00000000", "payments": paid,
            "activated": true, "additionalData": {},
        },
        {
            "paymentMethodId": "BTC-LN", "currency": "BTC", "destination": "lnbcrt1gantry",
            "paymentLink": "lightning:lnbcrt1gantry", "rate": RATE, "paymentMethodPaid": "0",
            "totalPaid": "0", "due": "0.00037500", "amount": "0.00037500",
            "networkFee": "0.00000000", "payments": [], "activated": true,
            "additionalData": {},
        },
    ])
}

/// A webhook delivery of `kind` about `btc`, with `extra` (the event's own fields).
fn delivery(id: &str, original: &str, kind: &str, btc: &str, extra: Value) -> Value {
    let mut body = json!({
        "deliveryId": id, "webhookId": "Wh1", "originalDeliveryId": original,
        "isRedelivery": id != original, "type": kind, "timestamp": 1_767_226_600,
        "storeId": STORE, "invoiceId": btc, "metadata": {"orderId": "whatever the delivery says"},
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

fn payment_settled(after_expiration: bool, value: &str) -> Value {
    json!({
        "afterExpiration": after_expiration, "paymentMethodId": "BTC-CHAIN",
        "payment": {"id": "aa-0", "receivedDate": 1_767_226_550, "value": value,
                    "fee": "0.00000000", "status": "Settled",
                    "destination": "bcrt1qgantrytestdestination"},
    })
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_partly_paid_invoice_books_what_settled_and_leaves_the_rest_due(pool: PgPool) {
    let btcpay = Btcpay::new(pool).await;
    let id = btcpay.paying("BtcPart").await;

    // Expired with 10.00 USD of 15.00 received, not yet confirmed: nothing is booked.
    btcpay
        .answers(
            "BtcPart",
            &id,
            "Expired",
            "PaidPartial",
            &[("0.00025000", "Processing")],
        )
        .await;
    let expired = delivery(
        "Dlv1",
        "Dlv1",
        "InvoiceExpired",
        "BtcPart",
        json!({"partiallyPaid": true}),
    );
    assert_eq!(btcpay.deliver(&expired).await, "applied");
    assert_eq!(btcpay.books(&id).await, ["SENT", "0", "FAILED", "1500"]);

    // The payment confirms: 0.00025 BTC at 40000 USD is booked as a payment of 10.00.
    btcpay
        .answers(
            "BtcPart",
            &id,
            "Expired",
            "PaidPartial",
            &[("0.00025000", "Settled")],
        )
        .await;
    let settled = delivery(
        "Dlv2",
        "Dlv2",
        "InvoicePaymentSettled",
        "BtcPart",
        payment_settled(false, "0.00025000"),
    );
    assert_eq!(btcpay.deliver(&settled).await, "applied");
    assert_eq!(
        btcpay.books(&id).await,
        ["SENT", "1000", "CONFIRMED", "1000"]
    );

    // A redelivery, and the expiry delivered again out of order, book nothing more.
    let again = delivery(
        "Dlv3",
        "Dlv2",
        "InvoicePaymentSettled",
        "BtcPart",
        payment_settled(false, "0.00025000"),
    );
    assert_eq!(btcpay.deliver(&again).await, "duplicate");
    let late = delivery(
        "Dlv4",
        "Dlv4",
        "InvoiceExpired",
        "BtcPart",
        json!({"partiallyPaid": true}),
    );
    assert_eq!(btcpay.deliver(&late).await, "applied");
    let received = delivery(
        "Dlv5",
        "Dlv5",
        "InvoiceReceivedPayment",
        "BtcPart",
        payment_settled(false, "0.00025000"),
    );
    btcpay.deliver(&received).await;
    assert_eq!(
        btcpay.books(&id).await,
        ["SENT", "1000", "CONFIRMED", "1000"]
    );

    // What is left, 5.00, is what the next BTCPay invoice asks for.
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/stores/{STORE}/invoices")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&btcpay.stub)
        .await;
    let mut rest = invoice_data("BtcRest", &id, "New", "None");
    rest["amount"] = json!("5.00");
    Mock::given(method("POST"))
        .and(path(format!("/api/v1/stores/{STORE}/invoices")))
        .and(body_string_contains("\"5.00\""))
        .respond_with(ResponseTemplate::new(200).set_body_json(rest))
        .mount(&btcpay.stub)
        .await;
    let next = btcpay.open_btcpay_invoice(&id).await;
    assert_eq!(next.status, StatusCode::CREATED, "{}", next.body);
    assert_eq!(next.body["btcpay_invoice_id"], "BtcRest");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn an_overpaid_settlement_records_what_was_paid(pool: PgPool) {
    let btcpay = Btcpay::new(pool).await;
    let id = btcpay.paying("BtcOver").await;
    // 0.0004 BTC at 40000 USD: 16.00 for an invoice of 15.00.
    btcpay
        .answers(
            "BtcOver",
            &id,
            "Settled",
            "PaidOver",
            &[("0.00040000", "Settled")],
        )
        .await;
    let settled = delivery(
        "Dlv1",
        "Dlv1",
        "InvoiceSettled",
        "BtcOver",
        json!({"manuallyMarked": false, "overPaid": true}),
    );
    assert_eq!(btcpay.deliver(&settled).await, "applied");
    assert_eq!(
        btcpay.books(&id).await,
        ["PAID", "1600", "CONFIRMED", "1600"]
    );
    let again = delivery(
        "Dlv2",
        "Dlv1",
        "InvoiceSettled",
        "BtcOver",
        json!({"manuallyMarked": false, "overPaid": true}),
    );
    assert_eq!(btcpay.deliver(&again).await, "duplicate");
    assert_eq!(
        btcpay.books(&id).await,
        ["PAID", "1600", "CONFIRMED", "1600"]
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_payment_after_expiry_is_booked_when_it_settles(pool: PgPool) {
    let btcpay = Btcpay::new(pool).await;
    let id = btcpay.paying("BtcLate").await;
    // Expired unpaid: the payment fails.
    btcpay.answers("BtcLate", &id, "Expired", "None", &[]).await;
    let expired = delivery(
        "Dlv1",
        "Dlv1",
        "InvoiceExpired",
        "BtcLate",
        json!({"partiallyPaid": false}),
    );
    assert_eq!(btcpay.deliver(&expired).await, "applied");
    assert_eq!(btcpay.books(&id).await, ["SENT", "0", "FAILED", "1500"]);
    // Then the whole amount arrives late and confirms: BTCPay says Expired, PaidLate.
    btcpay
        .answers(
            "BtcLate",
            &id,
            "Expired",
            "PaidLate",
            &[("0.00037500", "Settled")],
        )
        .await;
    let settled = delivery(
        "Dlv2",
        "Dlv2",
        "InvoicePaymentSettled",
        "BtcLate",
        payment_settled(true, "0.00037500"),
    );
    assert_eq!(btcpay.deliver(&settled).await, "applied");
    assert_eq!(
        btcpay.books(&id).await,
        ["PAID", "1500", "CONFIRMED", "1500"]
    );
    // The expiry redelivered after it changes nothing.
    let again = delivery(
        "Dlv3",
        "Dlv1",
        "InvoiceExpired",
        "BtcLate",
        json!({"partiallyPaid": false}),
    );
    assert_eq!(btcpay.deliver(&again).await, "duplicate");
    assert_eq!(
        btcpay.books(&id).await,
        ["PAID", "1500", "CONFIRMED", "1500"]
    );
}
