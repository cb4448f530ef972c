//! The API against real Postgres, a fresh database per test, driven through the router.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod account;
mod billing;
mod btcpay;
mod contract;
mod deploy;
mod edge;
mod eip1271;
mod fixtures;
mod identity;
mod ipfs_backends;
mod links;
mod mail;
mod mfa;
mod onchain;
mod payments;
mod pool;
mod queue;
mod relay;
mod reports;
mod secrets;
mod step_up;
mod store;
mod tokens;
mod users;
mod wallet;
mod work;
