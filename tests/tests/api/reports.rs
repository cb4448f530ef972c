//! The billing reports: revenue by period and currency (invoices issued with items and two tax
//! rates, a credit note, card payments and refunds delivered as signed Stripe webhooks), the
//! receivables' aging, both as CSV, bad query parameters, and the authorization matrix of every
//! reports route.

use axum::http::{Method, StatusCode, header};
use gantry::payments::signature;
use gantry_tests::{Cast, EVERYONE, TestApp, TestResponse, Who};
use serde_json::{Value, json};
use sqlx::PgPool;
use time::{Date, Duration, Month, OffsetDateTime};
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const WHSEC: &str = "whsec_gantry_reports";

struct World {
    app: TestApp,
    cast: Cast,
    _stub: MockServer,
}

impl std::ops::Deref for World {
    type Target = Cast;
    fn deref(&self) -> &Cast {
        &self.cast
    }
}

/// Three lines, two rates (as in `billing`): subtotal 3000, tax 190 at 19 % and 154 at 7.7 %,
/// total 3344.
fn three_lines() -> Value {
    json!([
        {"description": "Design workshop", "quantity": "1.5", "unit_price": "333", "tax_rate": "19"},
        {"description": "Travel", "quantity": "2", "unit_price": "1000", "tax_rate": "7.7"},
        {"description": "Report", "quantity": "0.5", "unit_price": "1001", "tax_rate": "19.0"},
    ])
}

/// Stripe's PaymentIntent API as far as `create-payment-intent` uses it: the intent's id
/// carries its amount and invoice (`pi_<amount>_<invoice, simple>`), in the currency asked for.
struct StripeStub;

impl Respond for StripeStub {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let form = String::from_utf8_lossy(&request.body).into_owned();
        let field = |name: &str| {
            form.split('&')
                .find_map(|pair| pair.strip_prefix(&format!("{name}=")))
                .unwrap_or_default()
                .to_owned()
        };
        let (id, currency) = if request.method.as_str() == "POST" {
            let invoice = field("metadata%5Binvoice_id%5D").replace('-', "");
            (
                format!("pi_{}_{invoice}", field("amount")),
                field("currency"),
            )
        } else {
            let id = request.url.path().rsplit('/').next().unwrap_or_default();
            (id.to_owned(), "eur".to_owned())
        };
        let amount: u64 = id
            .split('_')
            .nth(1)
            .and_then(|a| a.parse().ok())
            .unwrap_or(0);
        ResponseTemplate::new(200).set_body_json(json!({
            "id": id, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
            "amount_received": 0, "capture_method": "automatic_async",
            "client_secret": format!("{id}_secret_abc"), "confirmation_method": "automatic",
            "created": 1_767_225_600, "currency": currency, "livemode": false, "metadata": {},
            "payment_method_types": ["card"], "status": "requires_payment_method",
        }))
    }
}

impl World {
    async fn new(pool: PgPool) -> Self {
        let stub = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/payment_intents"))
            .respond_with(StripeStub)
            .mount(&stub)
            .await;
        Mock::given(method("GET"))
            .and(path_regex("^/v1/payment_intents/pi_[0-9]+_[0-9a-f]+$"))
            .respond_with(StripeStub)
            .mount(&stub)
            .await;
        let uri = stub.uri();
        let app = TestApp::with(
            pool,
            &[
                ("SELLER_NAME", "Gantry Services GmbH"),
                ("SELLER_ADDRESS", "Hauptstraße 1"),
                ("SELLER_POSTAL_CODE", "10115"),
                ("SELLER_CITY", "Berlin"),
                ("SELLER_COUNTRY", "DE"),
                ("SELLER_TAX_ID", "DE123456789"),
                ("SELLER_IBAN", "DE89370400440532013000"),
                ("STRIPE_SECRET_KEY", "sk_test_gantry"),
                ("STRIPE_WEBHOOK_SECRET", WHSEC),
                ("STRIPE_API_BASE", uri.as_str()),
            ],
        );
        let cast = Cast::on(&app).await;
        Self {
            app,
            cast,
            _stub: stub,
        }
    }

    async fn call(&self, who: Who, method: &Method, path: &str) -> TestResponse {
        self.cast.call(&self.app, who, method, path, None).await
    }

    async fn staff(&self, method: Method, path: &str, body: Option<&Value>) -> TestResponse {
        self.cast
            .call(&self.app, Who::Staff, &method, path, body)
            .await
    }

    /// A DRAFT invoice on a fresh project of the owner client's: `items`, or a bare `amount`.
    async fn draft(&self, currency: &str, items: Option<&Value>, amount: &str) -> String {
        let project = self
            .staff(
                Method::POST,
                "/projects",
                Some(&json!({"name": "Billed", "client_id": self.owner_id})),
            )
            .await;
        assert_eq!(project.status, StatusCode::CREATED, "{}", project.body);
        let mut body = json!({"project_id": project.str("id"), "currency": currency});
        match items {
            Some(items) => body["items"] = items.clone(),
            None => body["amount"] = json!(amount),
        }
        let res = self.staff(Method::POST, "/invoices", Some(&body)).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        res.str("id")
    }

    async fn set_status(&self, id: &str, status: &str) {
        let res = self
            .staff(
                Method::PUT,
                &format!("/invoices/{id}"),
                Some(&json!({"status": status})),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    }

    /// An issued (SENT) invoice: its id.
    async fn issued(&self, currency: &str, items: Option<&Value>, amount: &str) -> String {
        let id = self.draft(currency, items, amount).await;
        self.set_status(&id, "SENT").await;
        id
    }

    /// A credit note of one line at 19 % on `invoice`: 100 + 19 tax = 119.
    async fn credit(&self, invoice: &str) -> String {
        let note = json!({"items": [{"description": "Workshop shortened", "quantity": "1",
                                     "unit_price": "100", "tax_rate": "19"}],
                          "reason": "Shorter"});
        let res = self
            .staff(
                Method::POST,
                &format!("/invoices/{invoice}/credit-notes"),
                Some(&note),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        assert_eq!(res.body["total"], "119");
        res.str("id")
    }

    async fn sql(&self, sql: &str) {
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&self.app.pool)
            .await
            .unwrap();
    }

    /// Pays what is left of `invoice` by card: a PaymentIntent through the stub, then Stripe's
    /// signed `payment_intent.succeeded`. Returns the PaymentIntent.
    async fn pay_by_card(&self, invoice: &str, currency: &str) -> String {
        let res = self
            .app
            .post(&format!("/invoices/{invoice}/create-payment-intent"))
            .bearer(&self.owner)
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        let pi = res.str("payment_intent_id");
        let amount: u64 = res.str("amount").parse().unwrap();
        let event = succeeded(
            &format!("evt_paid_{invoice}"),
            &pi,
            invoice,
            amount,
            currency,
        );
        assert_eq!(self.stripe(&event).await, "applied");
        pi
    }

    /// Delivers a Stripe event, signed; its outcome.
    async fn stripe(&self, body: &str) -> Value {
        let t = OffsetDateTime::now_utc().unix_timestamp().to_string();
        let v1 = signature::sign(WHSEC.as_bytes(), &[t.as_bytes(), b".", body.as_bytes()]);
        let res = self
            .app
            .post("/stripe-webhook")
            .header("stripe-signature", &format!("t={t},v1={v1}"))
            .raw(Some("application/json"), body.to_owned())
            .send()
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        res.body["outcome"].clone()
    }

    async fn report(&self, path: &str) -> Value {
        let res = self.staff(Method::GET, path, None).await;
        assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.body);
        res.body["rows"].clone()
    }

    async fn csv(&self, path: &str) -> Vec<Vec<String>> {
        let res = self
            .app
            .get(path)
            .bearer(&self.admin)
            .header("accept", "application/json;q=0.5, text/csv")
            .send()
            .await;
        assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.body);
        assert_eq!(res.headers[header::CONTENT_TYPE], "text/csv; charset=utf-8");
        parse_csv(std::str::from_utf8(&res.raw).unwrap())
    }
}

fn event(event_id: &str, kind: &str, object: Value) -> String {
    json!({"id": event_id, "object": "event", "api_version": "2025-03-31.basil",
           "created": OffsetDateTime::now_utc().unix_timestamp(), "livemode": false,
           "pending_webhooks": 1, "type": kind, "data": {"object": object}})
    .to_string()
}

fn succeeded(event_id: &str, pi: &str, invoice: &str, amount: u64, currency: &str) -> String {
    event(
        event_id,
        "payment_intent.succeeded",
        json!({"id": pi, "object": "payment_intent", "amount": amount, "amount_received": amount,
               "currency": currency.to_lowercase(), "status": "succeeded",
               "metadata": {"invoice_id": invoice}}),
    )
}

/// Stripe's `charge.refunded`: `refunded` is the charge's cumulative refunded amount.
fn refunded(event_id: &str, pi: &str, invoice: &str, amount: u64, refunded: u64) -> String {
    event(
        event_id,
        "charge.refunded",
        json!({"id": format!("ch_{pi}"), "object": "charge", "amount": amount,
               "amount_refunded": refunded, "currency": "usd", "payment_intent": pi,
               "refunded": refunded >= amount, "metadata": {"invoice_id": invoice}}),
    )
}

/// RFC 4180, read by hand (independently of the writer): quoted fields may hold commas,
/// doubled quotes and line breaks; records end with CRLF.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => record.push(std::mem::take(&mut field)),
            (false, '\r') => assert_eq!(chars.next(), Some('\n'), "CRLF line ends"),
            (false, '\n') => panic!("a bare LF ends a record: {text:?}"),
            (false, c) => field.push(c),
        }
        if !quoted && c == '\r' {
            record.push(std::mem::take(&mut field));
            records.push(std::mem::take(&mut record));
        }
    }
    assert!(
        field.is_empty() && record.is_empty(),
        "the last record ends with CRLF"
    );
    records
}

fn d(date: Date) -> String {
    date.to_string()
}

/// The row of `period` and `currency`.
fn row<'a>(rows: &'a Value, period: &str, currency: &str) -> &'a Value {
    rows.as_array()
        .unwrap()
        .iter()
        .find(|r| r["period"] == period && r["currency"] == currency)
        .unwrap_or_else(|| panic!("no row {period} {currency} in {rows}"))
}

fn tax(pairs: &[(Option<&str>, &str)]) -> Value {
    pairs
        .iter()
        .map(|(rate, amount)| json!({"rate": rate, "amount": amount}))
        .collect()
}

/// The revenue report with known numbers. Invoices are issued a year back (their `sent_at`
/// and the credit note's `created_at` moved by SQL); the payments and refunds happen now, as
/// the ledger records them (append-only: its times are never moved).
///
/// - A: EUR, three lines (3344: 19 % 190, 7.7 % 154), issued March 5; credited 119 (100 +
///   19 at 19 %) on April 10; the rest (3225) paid by card now.
/// - B: EUR, three lines, issued March 20, unpaid.
/// - C: USD 1500, issued March 20, paid by card now, then refunded 500 and 800 (cumulative).
/// - D: EUR 1000, issued April 2, unpaid. V: EUR 999, issued March 10, then VOID. A draft.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn revenue_counts_invoices_credit_notes_payments_and_refunds_per_period(pool: PgPool) {
    let world = World::new(pool).await;
    let today = OffsetDateTime::now_utc().date();
    let year = today.year() - 1;
    let day = |month: Month, day: u8| Date::from_calendar_date(year, month, day).unwrap();
    let a = world.issued("EUR", Some(&three_lines()), "").await;
    let b = world.issued("EUR", Some(&three_lines()), "").await;
    let c = world.issued("USD", None, "1500").await;
    let dd = world.issued("EUR", None, "1000").await;
    let v = world.issued("EUR", None, "999").await;
    world.set_status(&v, "VOID").await;
    world.draft("EUR", None, "777").await;
    let note = world.credit(&a).await;
    for (id, when) in [
        (&a, day(Month::March, 5)),
        (&b, day(Month::March, 20)),
        (&c, day(Month::March, 20)),
        (&dd, day(Month::April, 2)),
        (&v, day(Month::March, 10)),
    ] {
        world
            .sql(&format!(
                "UPDATE invoices SET sent_at = '{when} 10:00:00+00' WHERE id = '{id}'"
            ))
            .await;
    }
    world
        .sql(&format!(
            "UPDATE credit_notes SET created_at = '{} 23:59:59+00' WHERE id = '{note}'",
            day(Month::April, 10)
        ))
        .await;

    let pi_a = world.pay_by_card(&a, "EUR").await;
    let pi_c = world.pay_by_card(&c, "USD").await;
    // A second success of A's intent changes nothing (the first one counts), and one that
    // names another amount is rejected: neither is counted again.
    let again = succeeded("evt_again", &pi_a, &a, 3225, "EUR");
    assert_eq!(world.stripe(&again).await, "applied");
    let wrong = succeeded("evt_wrong", &pi_a, &a, 1, "EUR");
    assert_eq!(world.stripe(&wrong).await, "rejected");
    // Refunds report the cumulative figure: 500, then 800 in all (300 more).
    let first = refunded("evt_refund_1", &pi_c, &c, 1500, 500);
    assert_eq!(world.stripe(&first).await, "applied");
    let second = refunded("evt_refund_2", &pi_c, &c, 1500, 800);
    assert_eq!(world.stripe(&second).await, "applied");
    let stale = refunded("evt_refund_stale", &pi_c, &c, 1500, 500);
    assert_eq!(world.stripe(&stale).await, "applied");

    // By month, March and April.
    let months = format!(
        "/reports/revenue?from={}&to={}&interval=month",
        day(Month::March, 1),
        day(Month::April, 30)
    );
    let rows = world.report(&months).await;
    assert_eq!(rows.as_array().unwrap().len(), 3, "{rows}");
    let march = d(day(Month::March, 1));
    let april = d(day(Month::April, 1));
    let zero = json!({"card": "0", "bitcoin": "0", "chain": "0"});
    assert_eq!(
        row(&rows, &march, "EUR"),
        &json!({"period": march, "currency": "EUR", "invoiced": "6688", "paid": zero,
                "refunded": "0", "outstanding": "3344",
                "tax": tax(&[(Some("7.7"), "308"), (Some("19"), "380")])}),
        "A and B; A is paid, B is not (V is void, the draft not issued)"
    );
    assert_eq!(
        row(&rows, &march, "USD"),
        &json!({"period": march, "currency": "USD", "invoiced": "1500", "paid": zero,
                "refunded": "0", "outstanding": "800", "tax": []}),
        "C: 1500 less 1500 paid plus 800 refunded is due; its 0 tax row is left out"
    );
    assert_eq!(
        row(&rows, &april, "EUR"),
        &json!({"period": april, "currency": "EUR", "invoiced": "881", "paid": zero,
                "refunded": "0", "outstanding": "1000", "tax": tax(&[(Some("19"), "-19")])}),
        "D, less A's credit note in the month it was made"
    );

    // By day: each issue and the note on its own day.
    let days = months.replace("interval=month", "interval=day");
    let rows = world.report(&days).await;
    let periods: Vec<(&str, &str, &str, &str)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["period"].as_str().unwrap(),
                r["currency"].as_str().unwrap(),
                r["invoiced"].as_str().unwrap(),
                r["outstanding"].as_str().unwrap(),
            )
        })
        .collect();
    let (mar5, mar20) = (d(day(Month::March, 5)), d(day(Month::March, 20)));
    let (apr2, apr10) = (d(day(Month::April, 2)), d(day(Month::April, 10)));
    assert_eq!(
        periods,
        [
            (mar5.as_str(), "EUR", "3344", "0"),
            (mar20.as_str(), "EUR", "3344", "3344"),
            (mar20.as_str(), "USD", "1500", "800"),
            (apr2.as_str(), "EUR", "1000", "1000"),
            (apr10.as_str(), "EUR", "-119", "0"),
        ]
    );
    assert_eq!(
        row(&rows, &apr10, "EUR")["tax"],
        tax(&[(Some("19"), "-19")])
    );

    // By week: a period is the Monday that starts it.
    let weeks = months.replace("interval=month", "interval=week");
    let rows = world.report(&weeks).await;
    let april_2 = day(Month::April, 2);
    let monday = april_2 - Duration::days(i64::from(april_2.weekday().number_days_from_monday()));
    assert_eq!(row(&rows, &d(monday), "EUR")["invoiced"], "1000");

    // Today: the payments and refunds, when the ledger applied them.
    let now = format!("/reports/revenue?from={today}&to={today}&interval=day");
    let rows = world.report(&now).await;
    assert_eq!(
        rows,
        json!([
            {"period": d(today), "currency": "EUR", "invoiced": "0",
             "paid": {"card": "3225", "bitcoin": "0", "chain": "0"}, "refunded": "0",
             "outstanding": "0", "tax": []},
            {"period": d(today), "currency": "USD", "invoiced": "0",
             "paid": {"card": "1500", "bitcoin": "0", "chain": "0"}, "refunded": "800",
             "outstanding": "0", "tax": []},
        ])
    );
    // The default range (the last 30 days, by month) holds them too; the year-old issues
    // are outside it.
    let rows = world.report("/reports/revenue").await;
    let paid: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["paid"]["card"].as_str().unwrap())
        .collect();
    assert_eq!(paid, ["3225", "1500"], "{rows}");
    assert!(
        rows.as_array()
            .unwrap()
            .iter()
            .all(|r| r["invoiced"] == "0")
    );
}

/// The CSV variant holds the JSON rows, column by column.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn revenue_and_aging_as_csv_are_the_json_rows(pool: PgPool) {
    let world = World::new(pool).await;
    let a = world.issued("EUR", Some(&three_lines()), "").await;
    world.issued("USD", None, "1500").await;
    world.credit(&a).await;
    let due = OffsetDateTime::now_utc().date() - Duration::days(40);
    world
        .sql(&format!(
            "UPDATE invoices SET due_date = '{due}' WHERE id = '{a}'"
        ))
        .await;

    let path = "/reports/revenue?interval=day";
    let json = world.report(path).await;
    let csv = world.csv(path).await;
    assert_eq!(
        csv[0],
        [
            "period",
            "currency",
            "invoiced",
            "paid_card",
            "paid_bitcoin",
            "paid_chain",
            "refunded",
            "outstanding",
            "tax"
        ]
    );
    let from_json: Vec<Vec<String>> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let tax: Vec<String> = r["tax"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    format!(
                        "{}:{}",
                        t["rate"].as_str().unwrap_or("none"),
                        t["amount"].as_str().unwrap()
                    )
                })
                .collect();
            [
                &r["period"],
                &r["currency"],
                &r["invoiced"],
                &r["paid"]["card"],
                &r["paid"]["bitcoin"],
                &r["paid"]["chain"],
                &r["refunded"],
                &r["outstanding"],
            ]
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .chain([tax.join(";")])
            .collect()
        })
        .collect();
    assert_eq!(from_json.len(), 2, "{json}");
    assert_eq!(csv[1..], from_json[..]);
    assert_eq!(csv[1][8], "7.7:154;19:171", "190 - 19 at 19 %");

    let json = world.report("/reports/aging").await;
    let csv = world.csv("/reports/aging").await;
    assert_eq!(
        csv[0],
        [
            "currency", "current", "d1_30", "d31_60", "d61_90", "d90_plus"
        ]
    );
    let from_json: Vec<Vec<String>> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            [
                "currency", "current", "d1_30", "d31_60", "d61_90", "d90_plus",
            ]
            .iter()
            .map(|k| r[k].as_str().unwrap().to_owned())
            .collect()
        })
        .collect();
    assert_eq!(csv[1..], from_json[..]);
    assert_eq!(
        csv[1..],
        [
            ["EUR", "0", "0", "3225", "0", "0"],
            ["USD", "1500", "0", "0", "0", "0"]
        ]
    );
    // Nothing to report is a header alone.
    let empty = world
        .csv("/reports/revenue?from=2001-01-01&to=2001-01-31")
        .await;
    assert_eq!(empty.len(), 1);
}

/// Aging buckets by days past the due date at `at`; what is due is net of credit notes and of
/// payments less refunds; only SENT and OVERDUE invoices issued by `at` count.
#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn aging_buckets_what_is_due_by_days_past_the_due_date(pool: PgPool) {
    let world = World::new(pool).await;
    let today = OffsetDateTime::now_utc().date();
    let mut ids = Vec::new();
    // (amount, days before today it is due; None: no due date)
    for (amount, due) in [
        ("1000", None),
        ("2000", Some(0)),
        ("3000", Some(1)),
        ("4000", Some(30)),
        ("5000", Some(31)),
        ("6000", Some(61)),
        ("7000", Some(91)),
    ] {
        let id = world.issued("EUR", None, amount).await;
        let due = due.map_or("NULL".to_owned(), |days| {
            format!("'{}'", today - Duration::days(days))
        });
        world
            .sql(&format!(
                "UPDATE invoices SET due_date = {due} WHERE id = '{id}'"
            ))
            .await;
        ids.push(id);
    }
    // Credited 119 of 3344, due 45 days ago: 3225 in d31_60.
    let credited = world.issued("EUR", Some(&three_lines()), "").await;
    world.credit(&credited).await;
    world
        .sql(&format!(
            "UPDATE invoices SET due_date = '{}' WHERE id = '{credited}'",
            today - Duration::days(45)
        ))
        .await;
    // The reminders worker's mark counts the same.
    world
        .sql(&format!(
            "UPDATE invoices SET status = 'OVERDUE' WHERE id = '{}'",
            ids[6]
        ))
        .await;
    // USD: one paid and then refunded 800 of 1500 (800 due, in 10 days), one paid in full.
    let refunded_one = world.issued("USD", None, "1500").await;
    world
        .sql(&format!(
            "UPDATE invoices SET due_date = '{}' WHERE id = '{refunded_one}'",
            today + Duration::days(10)
        ))
        .await;
    let pi = world.pay_by_card(&refunded_one, "USD").await;
    let refund = refunded("evt_refund", &pi, &refunded_one, 1500, 800);
    assert_eq!(world.stripe(&refund).await, "applied");
    let paid = world.issued("USD", None, "500").await;
    world.pay_by_card(&paid, "USD").await;
    // Neither a draft nor a void invoice is owed.
    world.draft("EUR", None, "100000").await;
    let void = world.issued("EUR", None, "100000").await;
    world.set_status(&void, "VOID").await;

    let expected_today = json!([
        {"currency": "EUR", "current": "3000", "d1_30": "7000", "d31_60": "8225",
         "d61_90": "6000", "d90_plus": "7000"},
        {"currency": "USD", "current": "800", "d1_30": "0", "d31_60": "0", "d61_90": "0",
         "d90_plus": "0"},
    ]);
    assert_eq!(world.report("/reports/aging").await, expected_today);
    assert_eq!(
        world.report(&format!("/reports/aging?at={today}")).await,
        expected_today
    );

    // Issued a year ago, but for the one due 30 days ago: aged 31 days back, that one was not
    // issued yet, and the rest are 31 days less late.
    world
        .sql(&format!(
            "UPDATE invoices SET sent_at = sent_at - interval '365 days' WHERE id <> '{}'",
            ids[3]
        ))
        .await;
    let back = today - Duration::days(31);
    assert_eq!(
        world.report(&format!("/reports/aging?at={back}")).await,
        json!([
            {"currency": "EUR", "current": "11000", "d1_30": "9225", "d31_60": "7000",
             "d61_90": "0", "d90_plus": "0"},
            {"currency": "USD", "current": "800", "d1_30": "0", "d31_60": "0", "d61_90": "0",
             "d90_plus": "0"},
        ])
    );
    // Before anything was issued: nothing.
    assert_eq!(
        world.report("/reports/aging?at=2001-01-01").await,
        json!([])
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn bad_query_parameters_are_problems_naming_the_field(pool: PgPool) {
    let world = World::new(pool).await;
    let get = |path: String| {
        let world = &world;
        async move { world.staff(Method::GET, &path, None).await }
    };
    for (query, field) in [
        ("from=2027-02-30", "from"),
        ("from=27-01-01", "from"),
        ("to=2027-01-01T00:00:00Z", "to"),
        ("to=", "to"),
        ("interval=year", "interval"),
        ("interval=Month", "interval"),
    ] {
        let res = get(format!("/reports/revenue?{query}")).await;
        assert_eq!(res.fields(), [field], "{query}");
    }
    let res = get("/reports/revenue?from=x&to=y&interval=z".into()).await;
    assert_eq!(res.fields(), ["from", "to", "interval"]);
    for query in [
        "from=2027-02-02&to=2027-02-01",
        "from=2017-01-01&to=2027-01-10",
    ] {
        let res = get(format!("/reports/revenue?{query}")).await;
        assert_eq!(res.problem(422)["errors"][0]["field"], "from", "{query}");
    }
    // 3660 days is the longest range.
    let res = get("/reports/revenue?from=2017-01-01&to=2027-01-09&interval=day".into()).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let res = get("/reports/aging?at=2027-1-1".into()).await;
    assert_eq!(res.fields(), ["at"]);
    // A CSV client still gets its problem as problem+json.
    let res = world
        .app
        .get("/reports/aging?at=yesterday")
        .bearer(&world.staff)
        .header("accept", "text/csv")
        .send()
        .await;
    assert_eq!(res.fields(), ["at"]);
}

/// One row per reports route: method, path, and the status for anonymous, owner client, other
/// client, staff, admin.
fn matrix() -> Vec<(Method, &'static str, [u16; 5])> {
    vec![
        (Method::GET, "/reports/revenue", [401, 403, 403, 200, 200]),
        (Method::GET, "/reports/aging", [401, 403, 403, 200, 200]),
    ]
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn the_authorization_matrix_holds_for_every_reports_route_and_caller(pool: PgPool) {
    let world = World::new(pool).await;
    world.issued("EUR", None, "1000").await;
    for (method, path, expected) in matrix() {
        for (who, want) in EVERYONE.iter().zip(expected) {
            for query in ["", "?from=bad"] {
                let res = world.call(*who, &method, &format!("{path}{query}")).await;
                // A bad parameter is a 400 only for a caller who may ask at all.
                let want = match (want, query) {
                    (200, "?from=bad") if path.ends_with("revenue") => 400,
                    (want, _) => want,
                };
                assert_eq!(
                    res.status.as_u16(),
                    want,
                    "{method} {path}{query} as {who:?}: {}",
                    res.body
                );
            }
        }
    }
}

/// The matrix has one row for each route the OpenAPI document files under `reports`.
#[test]
fn every_reports_route_has_a_row() {
    let mut rows: Vec<(String, String)> = matrix()
        .into_iter()
        .map(|(m, p, _)| (m.as_str().to_owned(), p.to_owned()))
        .collect();
    let mut routes = Vec::new();
    for spec in gantry::app::FUNCTIONS {
        let doc = serde_json::to_value(spec.openapi()).unwrap();
        for route in spec.routes() {
            let method = route.method.http().as_str().to_owned();
            let tags = doc["paths"][&route.path][method.to_lowercase()]["tags"].clone();
            if tags
                .as_array()
                .is_some_and(|t| t.contains(&json!("reports")))
            {
                routes.push((method, route.path.clone()));
            }
        }
    }
    rows.sort();
    routes.sort();
    assert_eq!(rows, routes);
    assert_eq!(routes.len(), 2);
}
