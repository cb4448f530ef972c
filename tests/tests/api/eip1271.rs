//! Contract wallets (EIP-1271) on a real node: `tests/contracts/OwnerWallet.sol`, deployed on
//! anvil, approves its owner's signatures.

use axum::http::StatusCode;
use gantry_tests::TestApp;
use gantry_tests::anvil::Anvil;
use gantry_tests::wallet::{Siwe, Wallet};
use serde_json::json;
use sqlx::PgPool;

const OWNER_WALLET: &str = include_str!("../../contracts/OwnerWallet.bin");

/// Deploys an OwnerWallet for `owner`; returns its EIP-55 address.
async fn contract_wallet(anvil: &Anvil, owner: &Wallet) -> String {
    let owner_word = format!(
        "{:0>64}",
        owner.address().trim_start_matches("0x").to_lowercase()
    );
    let address = anvil.deploy(OWNER_WALLET, &owner_word).await.unwrap();
    address
        .parse::<alloy::primitives::Address>()
        .unwrap()
        .to_checksum(None)
}

fn with_rpc(pool: PgPool, anvil: &Anvil) -> TestApp {
    let urls = format!("{}={}", gantry_tests::SIWE_CHAIN, anvil.url);
    TestApp::with(pool, &[("CHAIN_RPC_URLS", &urls)])
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_contract_wallet_registers_and_logs_in_through_eip1271(pool: PgPool) {
    let Some(anvil) = Anvil::start_or_skip().await else {
        return;
    };
    let owner = Wallet::random();
    let contract = contract_wallet(&anvil, &owner).await;
    let app = with_rpc(pool, &anvil);

    let nonce = app.nonce().await;
    let message = owner.message_as(&contract, &Siwe::new(&nonce));
    let res = app
        .post("/register-blockchain")
        .json(&json!({"message": message, "signature": owner.sign(&message)}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.body);
    let profile = app
        .get("/profile")
        .bearer(res.body["access_token"].as_str().unwrap())
        .send()
        .await;
    assert_eq!(
        profile.body["identities"][0]["identifier"],
        contract.as_str()
    );

    let nonce = app.nonce().await;
    let message = owner.message_as(&contract, &Siwe::new(&nonce));
    let login = app
        .post("/login-blockchain")
        .json(&json!({"message": message, "signature": owner.sign(&message)}))
        .send()
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn a_contract_wallet_refuses_a_strangers_signature(pool: PgPool) {
    let Some(anvil) = Anvil::start_or_skip().await else {
        return;
    };
    let (owner, stranger) = (Wallet::random(), Wallet::random());
    let contract = contract_wallet(&anvil, &owner).await;
    let app = with_rpc(pool, &anvil);
    let message = owner.message_as(&contract, &Siwe::new(&app.nonce().await));
    app.post("/register-blockchain")
        .json(&json!({"message": message, "signature": stranger.sign(&message)}))
        .send()
        .await
        .problem(401);
    // An account with no code cannot approve anything either.
    let eoa = Wallet::random();
    let message = stranger.message_as(&eoa.address(), &Siwe::new(&app.nonce().await));
    app.post("/register-blockchain")
        .json(&json!({"message": message, "signature": stranger.sign(&message)}))
        .send()
        .await
        .problem(401);
}

#[sqlx::test(migrator = "gantry::db::MIGRATOR")]
async fn without_an_rpc_for_the_chain_contract_wallets_are_not_tried(pool: PgPool) {
    let Some(anvil) = Anvil::start_or_skip().await else {
        return;
    };
    let owner = Wallet::random();
    let contract = contract_wallet(&anvil, &owner).await;
    let app = TestApp::new(pool);
    let message = owner.message_as(&contract, &Siwe::new(&app.nonce().await));
    app.post("/register-blockchain")
        .json(&json!({"message": message, "signature": owner.sign(&message)}))
        .send()
        .await
        .problem(401);
}
