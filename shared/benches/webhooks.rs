//! Webhook deliveries as far as they go before the database: the signature check and the parse.
//! Stripe (`Stripe-Signature` over a full `payment_intent.succeeded` event) and BTCPay
//! (`BTCPay-Sig` over an `InvoiceSettled` delivery).
//!   scripts/bench-webhooks   (also times stripe-node's constructEvent and a node HMAC + parse
//!                             on the same payloads, in the same run)

use criterion::{Criterion, criterion_group, criterion_main};
use gantry::payments::{btcpay, signature, stripe};
use std::hint::black_box;

const STRIPE_EVENT: &str = include_str!("../../tests/fixtures/stripe-event.json");
const BTCPAY_DELIVERY: &str = include_str!("../../tests/fixtures/btcpay-delivery.json");
const STRIPE_SECRET: &str = "whsec_bench_secret";
const BTCPAY_SECRET: &str = "btcpay bench secret";

fn webhooks(c: &mut Criterion) {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let t = now.to_string();
    let v1 = signature::sign(
        STRIPE_SECRET.as_bytes(),
        &[t.as_bytes(), b".", STRIPE_EVENT.as_bytes()],
    );
    let stripe_header = format!("t={t},v1={v1}");
    c.bench_function("webhooks/stripe_verify_and_parse", |b| {
        b.iter(|| {
            let report = stripe::webhook::read_event(
                Some(black_box(&stripe_header)),
                black_box(STRIPE_EVENT.as_bytes()),
                STRIPE_SECRET.as_bytes(),
                now,
            );
            assert!(matches!(report, Ok(Some(_))));
            report
        })
    });
    let btcpay_header = format!(
        "sha256={}",
        signature::sign(BTCPAY_SECRET.as_bytes(), &[BTCPAY_DELIVERY.as_bytes()])
    );
    c.bench_function("webhooks/btcpay_verify_and_parse", |b| {
        b.iter(|| {
            let delivery = btcpay::webhook::read_delivery(
                Some(black_box(&btcpay_header)),
                black_box(BTCPAY_DELIVERY.as_bytes()),
                BTCPAY_SECRET.as_bytes(),
            );
            assert!(delivery.is_ok());
            delivery
        })
    });
}

criterion_group!(benches, webhooks);
criterion_main!(benches);
