//! The books: line items priced by the contract's rule, gap-free numbers when an invoice is
//! issued (also under concurrent issues and rolled-back ones), the issued PDF and e-invoice,
//! credit notes, billing details, reminders with the clock moved by the test, and the
//! authorization matrix of every billing route.

use axum::http::{Method, StatusCode};
use gantry::payments::billing::config::BillingConfig;
use gantry::payments::billing::reminders::Reminders;
use gantry_tests::{Cast, EVERYONE, TestApp, TestResponse, Who, pdf_text};
use serde_json::{Value, json};
use sqlx::PgPool;
use time::OffsetDateTime;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// A form-encoded request body, decoded.
fn form_of(request: &Request) -> std::collections::HashMap<String, String> {
    form_urlencoded::parse(&request.body).into_owned().collect()
}

const FORMAT: &str = "T-{YYYY}-{SEQ:4}";

const WHSEC: &str = "whsec_billing_tests";

struct World {
    app: TestApp,
    cast: Cast,
    /// Stripe's API, as far as payments and refunds use it.
    stub: MockServer,
}

impl std::ops::Deref for World {
    type Target = Cast;
    fn deref(&self) -> &Cast {
        &self.cast
    }
}

/// Three lines, two rates: 1.5 × 333 = 499.5 → 500 (half to even) and 0.5 × 1001 = 500.5 →
/// 500 at 19 %; 2 × 1000 = 2000 at 7.7 %. Tax 190 + 154; total 3344.
fn three_lines() -> Value {
    json!([
        {"description": "Design workshop", "quantity": "1.5", "unit_price": "333", "tax_rate": "19"},
        {"description": "Травел (Ελληνικά)", "quantity": "2", "unit_price": "1000", "tax_rate": "7.7"},
        {"description": "Report & <summary>", "quantity": "0.5", "unit_price": "1001", "tax_rate": "19.0"},
    ])
}

impl World {
    async fn new(pool: PgPool) -> Self {
        let stub = MockServer::start().await;
        let uri = stub.uri();
        // A PaymentIntent per invoice: `pi_<invoice, simple>`, for the amount asked.
        Mock::given(method("POST"))
            .and(path("/v1/payment_intents"))
            .respond_with(|request: &Request| {
                let form = form_of(request);
                let invoice = form["metadata[invoice_id]"].replace('-', "");
                ResponseTemplate::new(200).set_body_json(json!({
                    "id": format!("pi_{invoice}"), "object": "payment_intent",
                    "amount": form["amount"].parse::<u64>().unwrap(), "currency": form["currency"],
                    "client_secret": format!("pi_{invoice}_secret_x"), "status": "requires_payment_method"}))
            })
            .mount(&stub)
            .await;
        let app = TestApp::with(
            pool,
            &[
                ("STRIPE_SECRET_KEY", "sk_test_billing"),
                ("STRIPE_WEBHOOK_SECRET", WHSEC),
                ("STRIPE_API_BASE", uri.as_str()),
                ("INVOICE_NUMBER_FORMAT", FORMAT),
                ("SELLER_NAME", "Gantry Services GmbH"),
                ("SELLER_ADDRESS", "Hauptstraße 1"),
                ("SELLER_POSTAL_CODE", "10115"),
                ("SELLER_CITY", "Berlin"),
                ("SELLER_COUNTRY", "DE"),
                ("SELLER_TAX_ID", "DE123456789"),
                ("SELLER_IBAN", "DE89370400440532013000"),
            ],
        );
        let cast = Cast::on(&app).await;
        Self { app, cast, stub }
    }

    /// Invoice `id` paid in full by card: a PaymentIntent, then Stripe's signed
    /// `payment_intent.succeeded`. The payment's id and the intent's.
    async fn pay_by_card(&self, id: &str) -> (String, String) {
        let res = self
            .call(
                Who::OwnerClient,
                &Method::POST,
                &format!("/invoices/{id}/create-payment-intent"),
                None,
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        let intent = res.str("payment_intent_id");
        let amount: u64 = res.str("amount").parse().unwrap();
        let object = json!({"id": intent, "object": "payment_intent", "amount": amount,
                            "amount_received": amount, "currency": "eur", "status": "succeeded",
                            "metadata": {"invoice_id": id}});
        // Stripe keeps it: `GET /v1/payment_intents/{id}` answers it as it is now.
        Mock::given(method("GET"))
            .and(path(format!("/v1/payment_intents/{intent}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(&object))
            .mount(&self.stub)
            .await;
        let res = self
            .stripe_event(
                &format!("evt_paid_{intent}"),
                "payment_intent.succeeded",
                &object,
            )
            .await;
        assert_eq!(res.body["outcome"], "applied", "{}", res.body);
        let payments = self
            .staff(Method::GET, &format!("/invoices/{id}/payments"), None)
            .await;
        (
            payments.body["items"][0]["id"].as_str().unwrap().to_owned(),
            intent,
        )
    }

    /// Stripe's event `event_id` of `kind` about `object`, signed now.
    async fn stripe_event(&self, event_id: &str, kind: &str, object: &Value) -> TestResponse {
        let body = json!({"id": event_id, "object": "event", "type": kind, "created": OffsetDateTime::now_utc().unix_timestamp(),
                          "livemode": false, "data": {"object": object}})
        .to_string();
        let t = OffsetDateTime::now_utc().unix_timestamp().to_string();
        let v1 = gantry::payments::signature::sign(
            WHSEC.as_bytes(),
            &[t.as_bytes(), b".", body.as_bytes()],
        );
        self.app
            .post("/stripe-webhook")
            .header("stripe-signature", &format!("t={t},v1={v1}"))
            .raw(Some("application/json"), body)
            .send()
            .await
    }

    /// Stripe's refunds API answering every refund in `status`, as `re_<our refund id>`.
    async fn stripe_refunds(&self, status: &'static str) {
        Mock::given(method("POST"))
            .and(path("/v1/refunds"))
            .and(header("authorization", "Bearer sk_test_billing"))
            .respond_with(move |request: &Request| {
                let form = form_of(request);
                let key = request
                    .headers
                    .get("idempotency-key")
                    .unwrap()
                    .to_str()
                    .unwrap();
                assert_eq!(
                    key,
                    format!("gantry-refund-{}", form["metadata[refund_id]"])
                );
                ResponseTemplate::new(200).set_body_json(json!({
                    "id": format!("re_{}", form["metadata[refund_id]"].replace('-', "")),
                    "object": "refund", "amount": form["amount"].parse::<u64>().unwrap(),
                    "payment_intent": form["payment_intent"], "status": status,
                    "metadata": {"refund_id": form["metadata[refund_id]"]}}))
            })
            .mount(&self.stub)
            .await;
    }

    async fn refund(&self, invoice: &str, payment: &str, amount: &str, key: &str) -> TestResponse {
        self.staff(
            Method::POST,
            &format!("/invoices/{invoice}/refunds"),
            Some(&json!({"payment_id": payment, "amount": amount, "reason": "Partly cancelled", "idempotency_key": key})),
        )
        .await
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

    async fn staff(&self, method: Method, path: &str, body: Option<&Value>) -> TestResponse {
        self.call(Who::Staff, &method, path, body).await
    }

    /// A DRAFT invoice with `items` on a fresh project of the owner client's: its id.
    async fn draft(&self, items: &Value) -> String {
        let project = self
            .staff(
                Method::POST,
                "/projects",
                Some(&json!({"name": "Billed", "client_id": self.owner_id})),
            )
            .await;
        assert_eq!(project.status, StatusCode::CREATED, "{}", project.body);
        let res = self
            .staff(
                Method::POST,
                "/invoices",
                Some(&json!({"project_id": project.str("id"), "currency": "EUR",
                             "due_date": "2027-01-31", "items": items, "notes": "Thank you"})),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
        res.str("id")
    }

    async fn issue(&self, id: &str) -> TestResponse {
        self.staff(
            Method::PUT,
            &format!("/invoices/{id}"),
            Some(&json!({"status": "SENT"})),
        )
        .await
    }

    async fn issued(&self, items: &Value) -> Value {
        let id = self.draft(items).await;
        let res = self.issue(&id).await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
        res.body
    }

    /// An issued invoice of three lines, paid in full by card: its id and the payment's.
    async fn paid_invoice(&self) -> (String, String) {
        let id = self.issued(&three_lines()).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (payment, _) = self.pay_by_card(&id).await;
        (id, payment)
    }

    /// The CID of invoice `id`'s stored PDF (the billing-documents worker has run).
    async fn pdf_cid(&self, id: &str) -> String {
        self.staff(Method::GET, &format!("/invoices/{id}"), None)
            .await
            .str("pdf_cid")
    }

    async fn bill_owner(&self, name: &str) {
        let res = self
            .call(
                Who::OwnerClient,
                &Method::PATCH,
                &format!("/users/{}/billing", self.owner_id),
                Some(
                    &json!({"name": name, "address_lines": ["Kundenweg 5"], "postal_code": "80331",
                             "city": "München", "country": "DE", "tax_id": "DE987654321"}),
                ),
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    }
}

fn year() -> i32 {
    OffsetDateTime::now_utc().year()
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn lines_and_rates_are_priced_by_the_contracts_rule(pool: PgPool) {
    let world = World::new(pool).await;
    let id = world.draft(&three_lines()).await;
    let invoice = world
        .staff(Method::GET, &format!("/invoices/{id}"), None)
        .await
        .body;
    assert_eq!(invoice["subtotal"], "3000");
    assert_eq!(invoice["tax"], "344");
    assert_eq!(invoice["amount"], "3344");
    assert_eq!(invoice["number"], Value::Null, "a draft has no number");
    assert_eq!(invoice["pdf_cid"], Value::Null);
    assert_eq!(invoice["items"][2]["tax_rate"], "19", "rates are canonical");
    assert_eq!(invoice["notes"], "Thank you");

    // A bare amount is one line without tax, as before items.
    let project = invoice["project_id"].as_str().unwrap();
    let bare = world
        .staff(
            Method::POST,
            "/invoices",
            Some(&json!({"project_id": project, "amount": "1500", "currency": "EUR"})),
        )
        .await;
    assert_eq!(bare.status, StatusCode::CREATED, "{}", bare.body);
    assert_eq!(bare.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(bare.body["tax"], "0");
    assert_eq!(bare.body["subtotal"], "1500");

    // An amount given with items must be their total.
    let wrong = world
        .staff(
            Method::POST,
            "/invoices",
            Some(&json!({"project_id": project, "amount": "3000", "currency": "EUR", "items": three_lines()})),
        )
        .await;
    assert_eq!(wrong.problem(422)["errors"][0]["field"], "amount");
    // Every bad field is named, at its index.
    let bad = world
        .staff(
            Method::POST,
            "/invoices",
            Some(&json!({"project_id": project, "currency": "EUR", "items": [
                {"description": "", "quantity": "0", "unit_price": "-1", "tax_rate": "101"}]})),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    let fields: Vec<&str> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "items[0].description",
            "items[0].quantity",
            "items[0].unit_price",
            "items[0].tax_rate"
        ]
    );
    let neither = world
        .staff(
            Method::POST,
            "/invoices",
            Some(&json!({"project_id": project, "currency": "EUR"})),
        )
        .await;
    assert_eq!(
        neither.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        neither.body
    );

    // While DRAFT, items change and the amount follows.
    let res = world
        .staff(
            Method::PUT,
            &format!("/invoices/{id}"),
            Some(&json!({"items": [{"description": "One", "quantity": "3", "unit_price": "25", "tax_rate": "10"}]})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    // 75 × 10 % = 7.5 → 8 (half to even: 7 is odd)
    assert_eq!(res.body["amount"], "83");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn issuing_numbers_the_invoice_freezes_it_and_mails_its_pdf(pool: PgPool) {
    let world = World::new(pool).await;
    world.bill_owner("Kunde Кириллица GmbH").await;
    let invoice = world.issued(&three_lines()).await;
    let id = invoice["id"].as_str().unwrap();
    let number = format!("T-{}-0001", year());
    assert_eq!(invoice["number"], number.as_str());
    assert_eq!(invoice["status"], "SENT");
    // The PDF is the billing-documents worker's: until it has run, none, and a 503 that says
    // when to come back. The e-invoice is there already.
    assert_eq!(invoice["pdf_cid"], Value::Null);
    let early = world
        .staff(Method::GET, &format!("/invoices/{id}/pdf"), None)
        .await;
    assert_eq!(early.problem(503)["type"], "urn:gantry:problem:not-yet");
    assert_eq!(early.headers["retry-after"], "5");
    let mails = world.app.outbox_count("owner@client.example").await;
    assert_eq!(world.app.render_documents().await, 1);
    assert_eq!(
        world.app.outbox_count("owner@client.example").await,
        mails + 1
    );
    let cid = world.pdf_cid(id).await;

    // Frozen: items, notes and money cannot change; a credit note corrects it.
    for change in [
        json!({"items": [{"description": "x", "quantity": "1", "unit_price": "1"}]}),
        json!({"notes": "changed"}),
        json!({"amount": "1"}),
    ] {
        let res = world
            .staff(Method::PUT, &format!("/invoices/{id}"), Some(&change))
            .await;
        assert_eq!(res.status, StatusCode::CONFLICT, "{change}: {}", res.body);
    }
    // The buyer's details change later; the issued documents keep the old ones.
    world.bill_owner("Renamed Client AG").await;

    let pdf = world
        .staff(Method::GET, &format!("/invoices/{id}/pdf"), None)
        .await;
    assert_eq!(pdf.status, StatusCode::OK);
    assert_eq!(pdf.headers["content-type"], "application/pdf");
    assert!(pdf.raw.starts_with(b"%PDF-"), "a PDF");
    let cid_of_bytes = gantry::ipfs::to_text(&gantry::ipfs::import(&pdf.raw).root);
    assert_eq!(cid_of_bytes, cid, "the bytes are the CID's");
    if let Some(text) = pdf_text(&pdf.raw) {
        for expected in [
            number.as_str(),
            "Gantry Services GmbH",
            "Kunde Кириллица GmbH",
            "Design workshop",
            "Ελληνικά",
            "33.44",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} in the PDF text:\n{text}"
            );
        }
        assert!(!text.contains("Renamed Client AG"));
    }
    let xml = world
        .staff(Method::GET, &format!("/invoices/{id}/e-invoice"), None)
        .await;
    assert_eq!(xml.status, StatusCode::OK);
    assert_eq!(xml.headers["content-type"], "application/xml");
    let xml = String::from_utf8(xml.raw).unwrap();
    assert!(xml.contains(&number), "{xml}");
    assert!(xml.contains("33.44"), "the grand total: {xml}");
    assert!(xml.contains("Kunde Кириллица GmbH"));
    assert!(xml.contains("Report &amp; &lt;summary&gt;"), "escaped");

    // The client is mailed the invoice with the PDF attached, in the outbox with the issue.
    let (subject, name, attachment): (String, Option<String>, Option<Vec<u8>>) = sqlx::query_as(
        "SELECT subject, attachment_name, attachment FROM mail_outbox WHERE recipient = 'owner@client.example'
         ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&world.app.pool)
    .await
    .unwrap();
    assert!(subject.contains(&number), "{subject}");
    assert_eq!(name.as_deref(), Some(format!("{number}.pdf").as_str()));
    assert_eq!(attachment.as_deref(), Some(pdf.raw.as_slice()));
    assert_eq!(world.app.audit_count("invoice.issued").await, 1);
    assert_eq!(world.app.audit_count("document.stored").await, 1);

    // A draft has neither document.
    let draft = world.draft(&three_lines()).await;
    for doc in ["pdf", "e-invoice"] {
        let res = world
            .staff(Method::GET, &format!("/invoices/{draft}/{doc}"), None)
            .await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{doc}");
    }
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_document_rendered_by_two_workers_at_once_is_stored_and_mailed_once(pool: PgPool) {
    let world = World::new(pool).await;
    let invoice = world.issued(&three_lines()).await;
    let id = invoice["id"].as_str().unwrap();
    let (job_id, body): (uuid::Uuid, String) =
        sqlx::query_as("SELECT id, body FROM queue_messages WHERE queue = 'billing-documents'")
            .fetch_one(&world.app.pool)
            .await
            .unwrap();
    assert!(body.contains(id), "{body}");
    let job = gantry::queue::Job {
        id: job_id.to_string(),
        body: body.clone(),
        attempt: 1,
    };
    let mails = world.app.outbox_count("owner@client.example").await;
    let (a, b) = (world.app.document_renderer(), world.app.document_renderer());
    let (ran_a, ran_b) = tokio::join!(a.handle(&job), b.handle(&job));
    ran_a.unwrap();
    ran_b.unwrap();
    // Delivered once more, later: nothing new either.
    a.handle(&job).await.unwrap();
    assert_eq!(world.app.audit_count("document.stored").await, 1);
    assert_eq!(
        world.app.outbox_count("owner@client.example").await,
        mails + 1
    );
    let stored = world.pdf_cid(id).await;
    let pdf = world
        .staff(Method::GET, &format!("/invoices/{id}/pdf"), None)
        .await;
    assert_eq!(pdf.status, StatusCode::OK);
    assert_eq!(
        gantry::ipfs::to_text(&gantry::ipfs::import(&pdf.raw).root),
        stored
    );
    // A job for no issued document, or no job at all, is dead-lettered, not retried.
    for body in [
        json!({"task": "invoice", "id": uuid::Uuid::now_v7()}).to_string(),
        json!({"task": "credit-note", "id": id}).to_string(),
        "{\"task\": \"print\"}".to_owned(),
    ] {
        let job = gantry::queue::Job {
            id: "x".into(),
            body: body.clone(),
            attempt: 1,
        };
        let err = a.handle(&job).await.unwrap_err();
        assert!(
            matches!(err, gantry::queue::JobError::Drop(_)),
            "{body}: {err}"
        );
    }
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_document_goes_to_the_client_it_was_issued_to_and_a_lost_one_is_queued_again(
    pool: PgPool,
) {
    let world = World::new(pool).await;
    let invoice = world.issued(&three_lines()).await;
    let id = invoice["id"].as_str().unwrap().to_owned();
    // Before the worker runs, the project is handed to another client.
    let other = world
        .call(Who::OtherClient, &Method::GET, "/profile", None)
        .await
        .body["user"]["id"]
        .clone();
    let project = invoice["project_id"].as_str().unwrap();
    let res = world
        .staff(
            Method::PUT,
            &format!("/projects/{project}"),
            Some(&json!({"name": "Billed", "client_id": other})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    let (owner_mails, other_mails) = (
        world.app.outbox_count("owner@client.example").await,
        world.app.outbox_count("other@client.example").await,
    );
    assert_eq!(world.app.render_documents().await, 1);
    assert_eq!(
        world.app.outbox_count("owner@client.example").await,
        owner_mails + 1,
        "the client it was issued to"
    );
    assert_eq!(
        world.app.outbox_count("other@client.example").await,
        other_mails
    );
    assert!(!world.pdf_cid(&id).await.is_empty());

    // A job lost (dead-lettered while the store was down, say): the reconcile run queues the
    // document again once it is late. One voided in the meantime is stored, but not mailed.
    let lost = world.issued(&three_lines()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sqlx::query("DELETE FROM queue_messages WHERE queue = 'billing-documents'")
        .execute(&world.app.pool)
        .await
        .unwrap();
    let res = world
        .staff(
            Method::PUT,
            &format!("/invoices/{lost}"),
            Some(&json!({"status": "VOID"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    stripe_lists(&world, Vec::new()).await;
    let reconciler =
        gantry::payments::reconcile::Reconciler::from_platform(&world.app.platform).unwrap();
    assert_eq!(reconciler.run().await.unwrap().requeued, 0, "not late yet");
    sqlx::query("UPDATE invoices SET sent_at = now() - interval '20 minutes' WHERE id = $1::uuid")
        .bind(&lost)
        .execute(&world.app.pool)
        .await
        .unwrap();
    assert_eq!(reconciler.run().await.unwrap().requeued, 1);
    assert_eq!(
        reconciler.run().await.unwrap().requeued,
        1,
        "the job is still waiting"
    );
    let mails = world.app.outbox_count("owner@client.example").await;
    assert_eq!(world.app.render_documents().await, 1, "queued once");
    assert!(!world.pdf_cid(&lost).await.is_empty());
    assert_eq!(world.app.outbox_count("owner@client.example").await, mails);
    assert_eq!(reconciler.run().await.unwrap().requeued, 0);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn twenty_invoices_issued_at_once_get_twenty_consecutive_numbers(pool: PgPool) {
    let world = World::new(pool).await;
    let mut drafts = Vec::new();
    for _ in 0..20 {
        drafts.push(world.draft(&three_lines()).await);
    }
    let issued = futures::future::join_all(drafts.iter().map(|id| world.issue(id))).await;
    let mut numbers: Vec<String> = issued
        .iter()
        .map(|res| {
            assert_eq!(res.status, StatusCode::OK, "{}", res.body);
            res.str("number")
        })
        .collect();
    numbers.sort();
    let expected: Vec<String> = (1..=20).map(|n| format!("T-{}-{n:04}", year())).collect();
    assert_eq!(numbers, expected);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_rolled_back_issue_gives_its_number_back(pool: PgPool) {
    let world = World::new(pool).await;
    let failing = world.draft(&three_lines()).await;
    // The issue fails after its number was taken (as a crash or a failed write would).
    sqlx::raw_sql(
        "CREATE TABLE fail_issue_of (id uuid PRIMARY KEY);
         CREATE FUNCTION fail_issue() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF EXISTS (SELECT 1 FROM fail_issue_of WHERE id = NEW.id) THEN
                 RAISE EXCEPTION 'injected';
             END IF;
             RETURN NEW;
         END $$;
         CREATE TRIGGER fail_issue BEFORE UPDATE OF number ON invoices FOR EACH ROW
         EXECUTE FUNCTION fail_issue();",
    )
    .execute(&world.app.pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO fail_issue_of VALUES ($1::uuid)")
        .bind(&failing)
        .execute(&world.app.pool)
        .await
        .unwrap();
    let res = world.issue(&failing).await;
    assert!(res.status.is_server_error(), "{}", res.body);
    let still = world
        .staff(Method::GET, &format!("/invoices/{failing}"), None)
        .await
        .body;
    assert_eq!(still["status"], "DRAFT");
    assert_eq!(still["number"], Value::Null);
    assert_eq!(world.app.render_documents().await, 0, "nothing to render");
    let next = world.issued(&three_lines()).await;
    assert_eq!(next["number"], format!("T-{}-0001", year()), "no gap");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn credit_notes_lower_what_is_due_in_their_own_series(pool: PgPool) {
    let world = World::new(pool).await;
    let draft = world.draft(&three_lines()).await;
    let note = json!({"items": [{"description": "Workshop shortened", "quantity": "1", "unit_price": "500", "tax_rate": "19"}],
                      "reason": "Half a day less"});
    let res = world
        .staff(
            Method::POST,
            &format!("/invoices/{draft}/credit-notes"),
            Some(&note),
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::CONFLICT,
        "a draft is corrected, not credited: {}",
        res.body
    );

    let invoice = world.issued(&three_lines()).await;
    let id = invoice["id"].as_str().unwrap();
    let res = world
        .call(
            Who::OwnerClient,
            &Method::POST,
            &format!("/invoices/{id}/credit-notes"),
            Some(&note),
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = world
        .staff(
            Method::POST,
            &format!("/invoices/{id}/credit-notes"),
            Some(&note),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    assert_eq!(res.body["number"], format!("CN-{}-0001", year()));
    assert_eq!(res.body["total"], "595", "500 + 19 % tax");
    let note_id = res.str("id");
    let after = world
        .staff(Method::GET, &format!("/invoices/{id}"), None)
        .await
        .body;
    assert_eq!(after["credited"], "595");
    assert_eq!(after["amount"], "3344", "the invoice itself is unchanged");
    assert_eq!(after["status"], "SENT");

    // Never more than the invoice: 3344 - 595 = 2749 is left to credit.
    let too_much = json!({"items": [{"description": "All", "quantity": "1", "unit_price": "2750"}], "reason": "x"});
    let res = world
        .staff(
            Method::POST,
            &format!("/invoices/{id}/credit-notes"),
            Some(&too_much),
        )
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT, "{}", res.body);
    // The rest, exactly: nothing is left to pay, so it is settled.
    let rest = json!({"items": [{"description": "All", "quantity": "1", "unit_price": "2749"}], "reason": "Cancelled"});
    let res = world
        .staff(
            Method::POST,
            &format!("/invoices/{id}/credit-notes"),
            Some(&rest),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    assert_eq!(res.body["number"], format!("CN-{}-0002", year()));
    let after = world
        .staff(Method::GET, &format!("/invoices/{id}"), None)
        .await
        .body;
    assert_eq!(after["credited"], "3344");
    assert_eq!(after["status"], "PAID");

    let list = world
        .call(
            Who::OwnerClient,
            &Method::GET,
            &format!("/invoices/{id}/credit-notes"),
            None,
        )
        .await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["items"].as_array().unwrap().len(), 2);
    let note_pdf = format!("/credit-notes/{note_id}/pdf");
    let read_note = || world.call(Who::OwnerClient, &Method::GET, &note_pdf, None);
    let early = read_note().await;
    assert_eq!(early.problem(503)["type"], "urn:gantry:problem:not-yet");
    // The invoice's PDF and both credit notes'.
    assert_eq!(world.app.render_documents().await, 3);
    let pdf = read_note().await;
    assert_eq!(pdf.status, StatusCode::OK);
    if let Some(text) = pdf_text(&pdf.raw) {
        for expected in [
            format!("CN-{}-0001", year()),
            invoice["number"].as_str().unwrap().to_owned(),
            "Half a day less".into(),
            "5.95".into(),
        ] {
            assert!(text.contains(&expected), "{expected:?} in:\n{text}");
        }
    }
    assert_eq!(world.app.audit_count("credit_note.issued").await, 2);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn billing_details_are_the_users_own_and_need_a_name_and_country_first(pool: PgPool) {
    let world = World::new(pool).await;
    let path = format!("/users/{}/billing", world.owner_id);
    let res = world
        .call(Who::OwnerClient, &Method::GET, &path, None)
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND, "none yet");
    let res = world
        .call(
            Who::OwnerClient,
            &Method::PATCH,
            &path,
            Some(&json!({"city": "Berlin"})),
        )
        .await;
    let fields: Vec<&str> = res.problem(422)["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "country"]);
    let res = world
        .call(
            Who::OwnerClient,
            &Method::PATCH,
            &path,
            Some(&json!({"name": "Me", "country": "Germany"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.body);
    world.bill_owner("Me Ltd").await;
    let res = world
        .call(
            Who::Staff,
            &Method::PATCH,
            &path,
            Some(&json!({"tax_id": null, "city": "Köln"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(res.body["tax_id"], Value::Null);
    assert_eq!(res.body["city"], "Köln");
    assert_eq!(res.body["name"], "Me Ltd", "the rest stays");
    // Someone else's, or nobody's: the same 404.
    let res = world
        .call(Who::OtherClient, &Method::GET, &path, None)
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let nobody = format!("/users/{}/billing", uuid::Uuid::now_v7());
    let res = world.call(Who::Staff, &Method::GET, &nobody, None).await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    assert_eq!(world.app.audit_count("billing_details.changed").await, 2);
}

/// An OVERDUE invoice of the owner client's, due `days_ago` days before `now`.
async fn overdue_at(world: &World, due: time::Date) -> String {
    let id = world.issued(&three_lines()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    sqlx::query("UPDATE invoices SET due_date = $2 WHERE id = $1::uuid")
        .bind(&id)
        .bind(due)
        .execute(&world.app.pool)
        .await
        .unwrap();
    id
}

fn reminders(world: &World, days: &str) -> Reminders {
    let env = gantry_tests::test_env(&[("BILLING_REMINDER_DAYS", days)]);
    Reminders::new(
        gantry::db::Db::new(Some(world.app.pool.clone())),
        BillingConfig::from_env(&env).unwrap(),
    )
}

async fn stages(pool: &PgPool, id: &str) -> Vec<i32> {
    sqlx::query_scalar(
        "SELECT stage FROM invoice_reminders WHERE invoice_id = $1::uuid ORDER BY stage",
    )
    .bind(id)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn each_reminder_stage_goes_out_once_even_under_two_concurrent_workers(pool: PgPool) {
    let world = World::new(pool).await;
    let now = OffsetDateTime::now_utc();
    let today = now.date();
    let id = overdue_at(&world, today - time::Duration::days(1)).await;
    let mails_before = world.app.outbox_count("owner@client.example").await;
    let (a, b) = (reminders(&world, "0,7,14"), reminders(&world, "0,7,14"));
    let (ran_a, ran_b) = tokio::join!(a.run(now), b.run(now));
    let (ran_a, ran_b) = (ran_a.unwrap(), ran_b.unwrap());
    assert_eq!(ran_a.overdue + ran_b.overdue, 1, "marked OVERDUE once");
    assert_eq!(ran_a.reminded + ran_b.reminded, 1, "stage 0 once");
    let invoice = world
        .staff(Method::GET, &format!("/invoices/{id}"), None)
        .await
        .body;
    assert_eq!(invoice["status"], "OVERDUE");
    assert_eq!(stages(&world.app.pool, &id).await, [0]);
    assert_eq!(
        world.app.outbox_count("owner@client.example").await,
        mails_before + 1
    );
    // The same day again: nothing. A week later: stage 7, once.
    assert_eq!(a.run(now).await.unwrap().reminded, 0);
    let week = now + time::Duration::days(7);
    let (x, y) = tokio::join!(a.run(week), b.run(week));
    assert_eq!(x.unwrap().reminded + y.unwrap().reminded, 1);
    assert_eq!(stages(&world.app.pool, &id).await, [0, 7]);
    // An OVERDUE invoice is still paid or voided; a voided one gets no more reminders.
    let res = world
        .staff(
            Method::PUT,
            &format!("/invoices/{id}"),
            Some(&json!({"status": "VOID"})),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.body);
    assert_eq!(
        a.run(now + time::Duration::days(30))
            .await
            .unwrap()
            .reminded,
        0
    );
    assert_eq!(world.app.audit_count("invoice.overdue").await, 1);
    assert_eq!(world.app.audit_count("invoice.reminder_sent").await, 2);

    // Mailed through the real mailer over SMTP to the catcher.
    if let Some(mail) = world.app.mailed("owner@client.example").await {
        assert!(
            mail["subject"].as_str().unwrap().contains("Reminder"),
            "{mail}"
        );
    }
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_stage_passed_before_the_invoice_became_overdue_is_not_sent_late(pool: PgPool) {
    let world = World::new(pool).await;
    let now = OffsetDateTime::now_utc();
    let id = overdue_at(&world, now.date() - time::Duration::days(20)).await;
    let ran = reminders(&world, "0,7,14").run(now).await.unwrap();
    assert_eq!((ran.overdue, ran.reminded), (1, 1));
    assert_eq!(
        stages(&world.app.pool, &id).await,
        [14],
        "only the latest stage due"
    );
    // Not yet due: neither OVERDUE nor reminded.
    let later = overdue_at(&world, now.date() + time::Duration::days(3)).await;
    reminders(&world, "0,7,14").run(now).await.unwrap();
    let invoice = world
        .staff(Method::GET, &format!("/invoices/{later}"), None)
        .await
        .body;
    assert_eq!(invoice["status"], "SENT");
    assert!(stages(&world.app.pool, &later).await.is_empty());
}

/// One row per billing route: method, path (`{id}` an issued invoice of the owner client's,
/// `{note}` its credit note, `{user}` the owner client), body, and the status for anonymous,
/// owner client, other client, staff, admin.
fn matrix() -> Vec<(Method, &'static str, Option<Value>, [u16; 5])> {
    let note = json!({"items": [{"description": "x", "quantity": "1", "unit_price": "1"}], "reason": "matrix"});
    vec![
        (
            Method::GET,
            "/invoices/{id}/pdf",
            None,
            [401, 200, 404, 200, 200],
        ),
        (
            Method::GET,
            "/invoices/{id}/e-invoice",
            None,
            [401, 200, 404, 200, 200],
        ),
        (
            Method::GET,
            "/invoices/{id}/credit-notes",
            None,
            [401, 200, 404, 200, 200],
        ),
        (
            Method::POST,
            "/invoices/{id}/credit-notes",
            Some(note),
            [401, 403, 404, 201, 201],
        ),
        (
            Method::GET,
            "/credit-notes/{id}/pdf",
            None,
            [401, 200, 404, 200, 200],
        ),
        (
            Method::GET,
            "/reconciliation",
            None,
            [401, 403, 403, 403, 200],
        ),
        (
            Method::GET,
            "/invoices/{id}/refunds",
            None,
            [401, 200, 404, 200, 200],
        ),
        (
            Method::POST,
            "/invoices/{id}/refunds",
            Some(
                json!({"payment_id": "{payment}", "amount": "1", "reason": "matrix", "idempotency_key": "{key}"}),
            ),
            [401, 403, 404, 202, 202],
        ),
        (
            Method::GET,
            "/users/{id}/billing",
            None,
            [401, 200, 404, 200, 200],
        ),
        (
            Method::PATCH,
            "/users/{id}/billing",
            Some(json!({"city": "Berlin"})),
            [401, 200, 404, 200, 200],
        ),
    ]
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn the_authorization_matrix_holds_for_every_billing_route_and_caller(pool: PgPool) {
    let world = World::new(pool).await;
    world.bill_owner("Owner").await;
    world.stripe_refunds("succeeded").await;
    for (method, template, body, expected) in matrix() {
        for (n, (who, want)) in EVERYONE.iter().zip(expected).enumerate() {
            let invoice = world.issued(&three_lines()).await;
            let invoice = invoice["id"].as_str().unwrap();
            let (payment, _) = world.pay_by_card(invoice).await;
            let body = body.as_ref().map(|b| {
                let text = b.to_string().replace("{payment}", &payment);
                serde_json::from_str::<Value>(
                    &text.replace("{key}", &format!("matrix-{n}-{invoice}")),
                )
                .unwrap()
            });
            let note = world
                .staff(
                    Method::POST,
                    &format!("/invoices/{invoice}/credit-notes"),
                    Some(&json!({"items": [{"description": "y", "quantity": "1", "unit_price": "1"}], "reason": "r"})),
                )
                .await
                .str("id");
            if template.ends_with("/pdf") {
                world.app.render_documents().await;
            }
            let path = match template {
                t if t.starts_with("/users") => t.replace("{id}", &world.owner_id),
                t if t.starts_with("/credit-notes") => t.replace("{id}", &note),
                t => t.replace("{id}", invoice),
            };
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

/// The matrix has one row for each route the OpenAPI document files under `billing`.
#[test]
fn every_billing_route_has_a_row() {
    let mut rows: Vec<(String, String)> = matrix()
        .into_iter()
        .map(|(m, p, _, _)| (m.as_str().to_owned(), p.to_owned()))
        .collect();
    let routes = gantry_tests::routes_tagged("billing");
    rows.sort();
    assert_eq!(rows, routes);
}

async fn ledger_rows(pool: &PgPool, event_type: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM payment_events WHERE event_type = $1")
        .bind(event_type)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_card_refund_returns_money_once_and_comes_with_its_credit_note(pool: PgPool) {
    let world = World::new(pool).await;
    world.stripe_refunds("succeeded").await;
    let invoice = world.issued(&three_lines()).await;
    let id = invoice["id"].as_str().unwrap();
    let (payment, intent) = world.pay_by_card(id).await;
    assert_eq!(
        world
            .staff(Method::GET, &format!("/invoices/{id}"), None)
            .await
            .body["status"],
        "PAID"
    );

    // The client cannot refund; staff can, on the rail the money came in on.
    let body =
        json!({"payment_id": payment, "amount": "1000", "reason": "x", "idempotency_key": "k1"});
    let res = world
        .call(
            Who::OwnerClient,
            &Method::POST,
            &format!("/invoices/{id}/refunds"),
            Some(&body),
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = world.refund(id, &payment, "1000", "k1").await;
    assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
    assert_eq!(res.body["status"], "SUCCEEDED");
    assert_eq!(res.body["currency"], "EUR");
    assert_eq!(res.body["claim_link"], Value::Null);
    let refund = res.str("id");
    assert_eq!(
        res.str("provider_ref"),
        format!("re_{}", refund.replace('-', ""))
    );
    // The same key answers the same refund, and Stripe is not asked again.
    let again = world.refund(id, &payment, "1000", "k1").await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    assert_eq!(again.str("id"), refund);
    let asked = world.stub.received_requests().await.unwrap();
    assert_eq!(
        asked
            .iter()
            .filter(|r| r.url.path() == "/v1/refunds")
            .count(),
        1
    );
    // The key for another refund, or more than is left: refused, Stripe not asked.
    assert_eq!(
        world.refund(id, &payment, "999", "k1").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let res = world.refund(id, &payment, "2345", "k2").await;
    assert_eq!(
        res.status,
        StatusCode::CONFLICT,
        "3344 - 1000 = 2344 left: {}",
        res.body
    );

    // The credit note of the refund lowers what is due, so Stripe's charge.refunded keeps the
    // invoice PAID.
    let notes = world
        .staff(Method::GET, &format!("/invoices/{id}/credit-notes"), None)
        .await
        .body;
    assert_eq!(notes["items"].as_array().unwrap().len(), 1);
    assert_eq!(notes["items"][0]["total"], "1000");
    let charge = json!({"id": "ch_1", "object": "charge", "amount": 3344, "amount_refunded": 1000,
                        "currency": "eur", "payment_intent": intent, "metadata": {"invoice_id": id}});
    let res = world
        .stripe_event("evt_refunded_1", "charge.refunded", &charge)
        .await;
    assert_eq!(res.body["outcome"], "applied", "{}", res.body);
    let after = world
        .staff(Method::GET, &format!("/invoices/{id}"), None)
        .await
        .body;
    assert_eq!(after["status"], "PAID");
    assert_eq!(after["amount_paid"], "2344");
    assert_eq!(after["credited"], "1000");
    // Stripe's refund.updated for it changes nothing more.
    let object = json!({"id": format!("re_{}", refund.replace('-', "")), "object": "refund", "status": "succeeded",
                        "amount": 1000, "currency": "eur", "metadata": {"refund_id": refund}});
    let res = world
        .stripe_event("evt_refund_updated", "refund.updated", &object)
        .await;
    assert_eq!(res.body["outcome"], "ignored");
    assert_eq!(ledger_rows(&world.app.pool, "refund.started").await, 1);
    assert_eq!(ledger_rows(&world.app.pool, "refund.succeeded").await, 1);
    assert_eq!(world.app.audit_count("refund.started").await, 1);

    // The refunds list shows it to the client.
    let list = world
        .call(
            Who::OwnerClient,
            &Method::GET,
            &format!("/invoices/{id}/refunds"),
            None,
        )
        .await;
    assert_eq!(list.body["items"][0]["id"], refund.as_str());

    // A refund made in Stripe's dashboard (no credit note) leaves the invoice owed again.
    let charge = json!({"id": "ch_1", "object": "charge", "amount": 3344, "amount_refunded": 1500,
                        "currency": "eur", "payment_intent": intent, "metadata": {"invoice_id": id}});
    world
        .stripe_event("evt_refunded_2", "charge.refunded", &charge)
        .await;
    let after = world
        .staff(Method::GET, &format!("/invoices/{id}"), None)
        .await
        .body;
    assert_eq!(after["status"], "SENT");
    assert_eq!(after["amount_paid"], "1844");
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn ten_concurrent_refunds_of_one_payment_never_exceed_what_it_paid(pool: PgPool) {
    let world = World::new(pool).await;
    world.stripe_refunds("succeeded").await;
    let (id, payment) = world.paid_invoice().await;
    let keys: Vec<String> = (0..10).map(|n| format!("concurrent-{n}")).collect();
    let answers = futures::future::join_all(
        keys.iter()
            .map(|key| world.refund(&id, &payment, "500", key)),
    )
    .await;
    let accepted = answers
        .iter()
        .filter(|r| r.status == StatusCode::ACCEPTED)
        .count();
    let refused = answers
        .iter()
        .filter(|r| r.status == StatusCode::CONFLICT)
        .count();
    assert_eq!(
        (accepted, refused),
        (6, 4),
        "6 × 500 fit in 3344, a seventh does not"
    );
    let refunded: i64 =
        sqlx::query_scalar("SELECT sum(amount)::bigint FROM refunds WHERE payment_id = $1::uuid")
            .bind(&payment)
            .fetch_one(&world.app.pool)
            .await
            .unwrap();
    assert_eq!(refunded, 3000);
    let after = world
        .staff(Method::GET, &format!("/invoices/{id}"), None)
        .await
        .body;
    assert_eq!(after["credited"], "3000", "one credit note per refund");
    let asked = world.stub.received_requests().await.unwrap();
    assert_eq!(
        asked
            .iter()
            .filter(|r| r.url.path() == "/v1/refunds")
            .count(),
        6
    );
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_pending_card_refund_settles_once_when_stripe_reports_it(pool: PgPool) {
    let world = World::new(pool).await;
    world.stripe_refunds("pending").await;
    let (id, payment) = world.paid_invoice().await;
    let res = world.refund(&id, &payment, "3344", "all").await;
    assert_eq!(res.body["status"], "PENDING", "{}", res.body);
    let refund = res.str("id");
    let object = |status: &str| {
        json!({"id": format!("re_{}", refund.replace('-', "")), "object": "refund", "status": status,
               "amount": 3344, "currency": "eur", "metadata": {"refund_id": refund}})
    };
    // Still pending: nothing moves. Succeeded: once, whatever comes after or again.
    let res = world
        .stripe_event("evt_r1", "refund.updated", &object("pending"))
        .await;
    assert_eq!(res.body["outcome"], "ignored");
    let res = world
        .stripe_event("evt_r2", "refund.updated", &object("succeeded"))
        .await;
    assert_eq!(res.body["outcome"], "applied", "{}", res.body);
    for (event, status) in [("evt_r2", "succeeded"), ("evt_r3", "failed")] {
        let res = world
            .stripe_event(event, "refund.updated", &object(status))
            .await;
        assert_eq!(res.body["outcome"], "ignored", "{event}");
    }
    let list = world
        .staff(Method::GET, &format!("/invoices/{id}/refunds"), None)
        .await
        .body;
    assert_eq!(list["items"][0]["status"], "SUCCEEDED");
    assert_eq!(ledger_rows(&world.app.pool, "refund.succeeded").await, 1);
    // A refund that fails releases its amount; its credit note is used by the next one.
    let (id, payment) = world.paid_invoice().await;
    let first = world.refund(&id, &payment, "1000", "f1").await.str("id");
    let failed = json!({"id": format!("re_{}", first.replace('-', "")), "object": "refund", "status": "failed",
                        "amount": 1000, "currency": "eur", "metadata": {"refund_id": first}});
    assert_eq!(
        world
            .stripe_event("evt_f1", "refund.failed", &failed)
            .await
            .body["outcome"],
        "applied"
    );
    let second = world.refund(&id, &payment, "3344", "f2").await;
    assert_eq!(
        second.status,
        StatusCode::ACCEPTED,
        "the failed 1000 is released: {}",
        second.body
    );
    let after = world
        .staff(Method::GET, &format!("/invoices/{id}"), None)
        .await
        .body;
    assert_eq!(
        after["credited"], "3344",
        "1000 from the failed refund's note, 2344 new"
    );
}

/// Stripe's event list answering `events` (newest first) on one page, whatever is asked.
async fn stripe_lists(world: &World, events: Vec<Value>) {
    Mock::given(method("GET"))
        .and(path("/v1/events"))
        .and(header("authorization", "Bearer sk_test_billing"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"object": "list", "url": "/v1/events", "has_more": false, "data": events}),
        ))
        .mount(&world.stub)
        .await;
}

/// A run's findings as (object, kind), sorted.
fn found(ran: &gantry::payments::reconcile::Ran) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = ran
        .findings
        .iter()
        .map(|f| (f.provider_ref.clone(), f.kind.clone()))
        .collect();
    found.sort();
    found
}

fn event(id: &str, kind: &str, object: &Value) -> Value {
    json!({"id": id, "object": "event", "type": kind, "created": OffsetDateTime::now_utc().unix_timestamp(),
           "livemode": false, "data": {"object": object}})
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_stripe_event_that_never_arrived_is_applied_by_the_reconcile_run(pool: PgPool) {
    let world = World::new(pool).await;
    // One invoice paid and delivered; another whose payment's webhook never came.
    let delivered = world.issued(&three_lines()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, delivered_intent) = world.pay_by_card(&delivered).await;
    let lost = world.issued(&three_lines()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = world
        .call(
            Who::OwnerClient,
            &Method::POST,
            &format!("/invoices/{lost}/create-payment-intent"),
            None,
        )
        .await;
    let lost_intent = res.str("payment_intent_id");
    let succeeded = |intent: &str, invoice: &str| {
        json!({"id": intent, "object": "payment_intent", "amount": 3344, "amount_received": 3344,
               "currency": "eur", "status": "succeeded", "metadata": {"invoice_id": invoice}})
    };
    Mock::given(method("GET"))
        .and(path(format!("/v1/payment_intents/{lost_intent}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(succeeded(&lost_intent, &lost)))
        .mount(&world.stub)
        .await;
    stripe_lists(
        &world,
        vec![
            event(
                "evt_lost",
                "payment_intent.succeeded",
                &succeeded(&lost_intent, &lost),
            ),
            event(
                &format!("evt_paid_{delivered_intent}"),
                "payment_intent.succeeded",
                &succeeded(&delivered_intent, &delivered),
            ),
        ],
    )
    .await;
    assert_eq!(
        world
            .staff(Method::GET, &format!("/invoices/{lost}"), None)
            .await
            .body["status"],
        "SENT"
    );

    let reconciler =
        gantry::payments::reconcile::Reconciler::from_platform(&world.app.platform).unwrap();
    let ran = reconciler.run().await.unwrap();
    assert_eq!(ran.events, 2);
    assert_eq!(ran.findings.len(), 1, "{:?}", ran.findings);
    assert_eq!(ran.findings[0].provider_ref, "evt_lost");
    assert_eq!(ran.findings[0].kind, "missing");
    assert!(ran.anchor.is_some());
    assert_eq!(
        world
            .staff(Method::GET, &format!("/invoices/{lost}"), None)
            .await
            .body["status"],
        "PAID"
    );
    // Again: nothing new, and the listing starts from where the last one left off.
    let again = reconciler.run().await.unwrap();
    assert!(again.findings.is_empty());
    let lists: Vec<_> = world
        .stub
        .received_requests()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.url.path() == "/v1/events")
        .collect();
    assert_eq!(lists.len(), 2);
    let since = |r: &Request| -> i64 {
        r.url
            .query_pairs()
            .find(|(k, _)| k == "created[gte]")
            .unwrap()
            .1
            .parse()
            .unwrap()
    };
    assert!(since(&lists[1]) > since(&lists[0]), "the cursor moved");
    assert!(
        lists[0]
            .url
            .query_pairs()
            .any(|(k, v)| k == "types[]" && v == "charge.refunded")
    );

    // Findings are the ADMIN's to read, audited.
    let res = world
        .call(Who::Admin, &Method::GET, "/reconciliation", None)
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.body["items"][0]["provider_ref"], "evt_lost");
    assert_eq!(res.body["items"][0]["kind"], "missing");
    for who in [Who::Staff, Who::OwnerClient] {
        let res = world.call(who, &Method::GET, "/reconciliation", None).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{who:?}");
    }
    assert_eq!(
        world
            .call(Who::Anonymous, &Method::GET, "/reconciliation", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(world.app.audit_count("reconciliation.finding").await, 1);
}

/// A ledger row's content: provider, event id and type, invoice, payment, amount, currency,
/// outcome.
type LedgerRow = (
    String,
    String,
    String,
    Option<uuid::Uuid>,
    Option<uuid::Uuid>,
    Option<String>,
    Option<String>,
    String,
);

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_card_payment_stripe_never_collected_or_collected_otherwise_is_a_finding(pool: PgPool) {
    let world = World::new(pool).await;
    let mut intents = Vec::new();
    for _ in 0..5 {
        let id = world.issued(&three_lines()).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (_, intent) = world.pay_by_card(&id).await;
        intents.push((id, intent));
    }
    stripe_lists(&world, Vec::new()).await;
    // As Stripe has them now: the first as we do; the second was never collected (our ledger
    // says paid, Stripe does not); the third collected less than we recorded.
    let now_is = |intent: &str, invoice: &str, status: &str, received: u64| {
        json!({"id": intent, "object": "payment_intent", "amount": 3344,
               "amount_received": received, "currency": "eur", "status": status,
               "metadata": {"invoice_id": invoice}})
    };
    for (n, status, received) in [(1, "requires_payment_method", 0), (2, "succeeded", 3000)] {
        let (invoice, intent) = &intents[n];
        Mock::given(method("GET"))
            .and(path(format!("/v1/payment_intents/{intent}")))
            .respond_with(
                ResponseTemplate::new(200).set_body_json(now_is(intent, invoice, status, received)),
            )
            .with_priority(1)
            .mount(&world.stub)
            .await;
    }
    // The fourth Stripe does not know at all; the fifth it cannot answer now (a 500): that one
    // is left for a later run, and the run goes on.
    let (answers, problems) = (
        [404, 500],
        [
            json!({"error": {"type": "invalid_request_error", "code": "resource_missing"}}),
            json!({"error": {"type": "api_error"}}),
        ],
    );
    for ((status, body), (_, intent)) in answers.into_iter().zip(problems).zip(&intents[3..]) {
        Mock::given(method("GET"))
            .and(path(format!("/v1/payment_intents/{intent}")))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .with_priority(1)
            .mount(&world.stub)
            .await;
    }
    // Two runs at once (a redelivered job, the CLI beside the schedule): each difference once.
    let reconciler =
        gantry::payments::reconcile::Reconciler::from_platform(&world.app.platform).unwrap();
    let beside =
        gantry::payments::reconcile::Reconciler::from_platform(&world.app.platform).unwrap();
    let (ran, also) = tokio::join!(reconciler.run(), beside.run());
    let mut ran = ran.unwrap();
    ran.findings.extend(also.unwrap().findings);
    let found = found(&ran);
    let mut expected = vec![
        (intents[1].1.clone(), "extra".to_owned()),
        (intents[2].1.clone(), "amount".to_owned()),
        (intents[3].1.clone(), "extra".to_owned()),
    ];
    expected.sort();
    assert_eq!(found, expected, "{:?}", ran.findings);
    // The next run records none of them again; it read four back, and one it could not.
    let again = reconciler.run().await.unwrap();
    assert!(again.findings.is_empty(), "{:?}", again.findings);
    assert_eq!((again.rechecked, again.unread), (4, 1));
    assert!(again.anchor.is_some(), "the run went on to the end");
    // Found, never fixed: the invoices are still PAID, and each finding has its audit row.
    for (invoice, _) in &intents[1..] {
        let now = world
            .staff(Method::GET, &format!("/invoices/{invoice}"), None)
            .await;
        assert_eq!(now.body["status"], "PAID");
    }
    assert_eq!(world.app.audit_count("reconciliation.finding").await, 3);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_card_refund_stripe_has_otherwise_is_a_finding(pool: PgPool) {
    let world = World::new(pool).await;
    world.stripe_refunds("succeeded").await;
    let (id, payment) = world.paid_invoice().await;
    let mut refs = Vec::new();
    for key in ["r-1", "r-2", "r-3"] {
        let res = world.refund(&id, &payment, "500", key).await;
        assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.body);
        assert_eq!(res.body["status"], "SUCCEEDED");
        refs.push(res.str("provider_ref"));
    }
    stripe_lists(&world, Vec::new()).await;
    // As Stripe has them now: the first as we do; the second failed there; the third returned
    // less than we count.
    for (re, status, amount) in [
        (&refs[0], "succeeded", 500),
        (&refs[1], "failed", 500),
        (&refs[2], "succeeded", 400),
    ] {
        Mock::given(method("GET"))
            .and(path(format!("/v1/refunds/{re}")))
            .respond_with(ResponseTemplate::new(200).set_body_json(
                json!({"id": re, "object": "refund", "amount": amount, "currency": "eur",
                       "status": status}),
            ))
            .mount(&world.stub)
            .await;
    }
    let reconciler =
        gantry::payments::reconcile::Reconciler::from_platform(&world.app.platform).unwrap();
    let ran = reconciler.run().await.unwrap();
    let found = found(&ran);
    let mut expected = vec![
        (refs[1].clone(), "status".to_owned()),
        (refs[2].clone(), "amount".to_owned()),
    ];
    expected.sort();
    assert_eq!(found, expected, "{:?}", ran.findings);
    // Found, not fixed: ours are all still SUCCEEDED.
    let ours = world
        .staff(Method::GET, &format!("/invoices/{id}/refunds"), None)
        .await;
    for refund in ours.body["items"].as_array().unwrap() {
        assert_eq!(refund["status"], "SUCCEEDED", "{refund}");
    }
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_ledger_rewritten_after_its_anchor_fails_verification_against_it(pool: PgPool) {
    use gantry::payments::ledger::{self, Verdict};
    let world = World::new(pool).await;
    for _ in 0..2 {
        let id = world.issued(&three_lines()).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        world.pay_by_card(&id).await;
    }
    let store = gantry::ipfs::IpfsConfig::from_env(&world.app.platform.env, false)
        .unwrap()
        .build(&world.app.platform.env);
    let cid = gantry::payments::reconcile::anchor(&world.app.pool, &*store)
        .await
        .unwrap();
    let mut conn = world.app.pool.acquire().await.unwrap();
    let verdict = gantry::payments::reconcile::verify_anchor(&mut conn, &*store, &cid)
        .await
        .unwrap();
    assert_eq!(verdict, Verdict::Intact { rows: 2 });

    // Someone who can turn the append-only trigger off rewrites history, consistently: every
    // hash recomputed, one amount changed.
    let rows: Vec<LedgerRow> =
        sqlx::query_as(
            "SELECT provider, event_id, event_type, invoice_id, payment_id, amount::text, currency, outcome
             FROM payment_events ORDER BY seq",
        )
        .fetch_all(&mut *conn)
        .await
        .unwrap();
    sqlx::raw_sql(
        "ALTER TABLE payment_events DISABLE TRIGGER payment_events_append_only;
         DELETE FROM payment_events;
         UPDATE ledger_head SET seq = 0, hash = '\\x0000000000000000000000000000000000000000000000000000000000000000';",
    )
    .execute(&mut *conn)
    .await
    .unwrap();
    let mut tx = world.app.pool.begin().await.unwrap();
    for (n, (provider, event_id, event_type, invoice_id, payment_id, amount, currency, outcome)) in
        rows.into_iter().enumerate()
    {
        let head = ledger::lock_head(&mut tx).await.unwrap();
        let amount = if n == 0 {
            Some(gantry::payments::money::Minor::new(1))
        } else {
            amount.map(|a| a.parse().unwrap())
        };
        let entry = ledger::Entry {
            provider,
            event_id,
            event_type,
            invoice_id,
            payment_id,
            amount,
            currency,
            outcome,
        };
        ledger::append(&mut tx, head, &entry).await.unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(
        ledger::verify(&mut conn).await.unwrap(),
        Verdict::Intact { rows: 2 },
        "consistent on its own"
    );
    let verdict = gantry::payments::reconcile::verify_anchor(&mut conn, &*store, &cid)
        .await
        .unwrap();
    assert!(
        matches!(verdict, Verdict::Broken { seq: 2, .. }),
        "{verdict:?}"
    );
}
