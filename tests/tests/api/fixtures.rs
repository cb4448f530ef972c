//! Our SIWE verifier against messages signed by an independent implementation (ethers.js):
//! `tests/fixtures/siwe-ethers.json`, made by `scripts/siwe-fixtures`.

use gantry::chain::NoChain;
use gantry::identity::wallet::siwe::{SiweMessage, SiwePolicy};
use serde_json::Value;
use std::time::Duration;

const FIXTURES: &str = include_str!("../../fixtures/siwe-ethers.json");

#[tokio::test]
async fn signatures_made_by_ethers_verify_exactly_as_labelled() {
    let fixtures: Value = serde_json::from_str(FIXTURES).unwrap();
    let policy = SiwePolicy {
        domains: vec!["app.example.com".into()],
        chain_ids: vec![1, 31337],
        skew: Duration::from_secs(60),
    };
    let now = time::OffsetDateTime::now_utc();
    let cases = fixtures["cases"].as_array().unwrap();
    assert!(cases.len() >= 15);
    let mut valid = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let message = SiweMessage::parse(case["message"].as_str().unwrap()).unwrap();
        let outcome = message
            .verify(case["signature"].as_str().unwrap(), &policy, &NoChain, now)
            .await;
        assert_eq!(
            outcome.is_ok(),
            case["valid"].as_bool().unwrap(),
            "{name}: {outcome:?}"
        );
        if let Ok(proof) = outcome {
            assert_eq!(
                proof.checksummed(),
                case["message"].as_str().unwrap().lines().nth(1).unwrap()
            );
            valid += 1;
        }
    }
    assert!(valid >= 7, "the valid cases were exercised");
}
