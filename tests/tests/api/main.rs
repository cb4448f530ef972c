//! The API against real Postgres, a fresh database per test, driven through the router.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod contract;
mod deploy;
mod identity;
mod tokens;
mod users;
