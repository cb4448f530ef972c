//! SIWE parse + verify (claims and EIP-191 signature recovery) on an ethers.js-signed fixture.
//!   scripts/bench-siwe   (also times ethers.js verifyMessage on the same message)

use criterion::{Criterion, criterion_group, criterion_main};
use gantry::identity::wallet::siwe::{SiweMessage, SiwePolicy};
use std::hint::black_box;
use std::time::Duration;

const FIXTURES: &str = include_str!("../../tests/fixtures/siwe-ethers.json");

fn siwe(c: &mut Criterion) {
    let Ok(fixtures) = serde_json::from_str::<serde_json::Value>(FIXTURES) else {
        return;
    };
    let case = &fixtures["cases"][0];
    let (Some(message), Some(signature)) = (case["message"].as_str(), case["signature"].as_str())
    else {
        return;
    };
    let policy = SiwePolicy {
        domains: vec!["app.example.com".into()],
        chain_ids: vec![1, 31337],
        skew: Duration::from_secs(60),
    };
    c.bench_function("siwe/parse_and_verify", |b| {
        b.iter(|| {
            let now = time::OffsetDateTime::now_utc();
            SiweMessage::parse(black_box(message))
                .and_then(|m| m.verify_eoa(black_box(signature), &policy, now))
        })
    });
    c.bench_function("siwe/parse_only", |b| {
        b.iter(|| SiweMessage::parse(black_box(message)))
    });
}

criterion_group!(benches, siwe);
criterion_main!(benches);
