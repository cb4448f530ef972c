//! A real Ethereum node (anvil, from the npm package `@foundry-rs/anvil-linux-amd64`) for tests:
//! started on a free loopback port, killed on drop. `scripts/test` installs it and sets
//! `ANVIL_BIN`.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};
use std::time::Duration;

pub struct Anvil {
    _child: tokio::process::Child,
    pub url: String,
    client: reqwest::Client,
}

impl Anvil {
    /// Starts anvil, or returns `None` on a developer's machine without it (loudly). Under
    /// `CI=true` a missing anvil fails the test.
    pub async fn start_or_skip() -> Option<Self> {
        let Ok(bin) = std::env::var("ANVIL_BIN") else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "ANVIL_BIN is not set: CI must run the EIP-1271 tests (scripts/test sets it)"
            );
            eprintln!(
                "\n!!! SKIPPED: ANVIL_BIN is not set (run scripts/test). CI does not skip this.\n"
            );
            return None;
        };
        Some(Self::start(&bin).await.expect("anvil starts"))
    }

    pub async fn start(bin: &str) -> Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = tokio::process::Command::new(bin)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--silent",
            ])
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {bin}"))?;
        let anvil = Self {
            _child: child,
            url: format!("http://127.0.0.1:{port}"),
            client: crate::http_client(),
        };
        for _ in 0..100 {
            if anvil.rpc("eth_chainId", json!([])).await.is_ok() {
                return Ok(anvil);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("anvil did not answer on port {port}")
    }

    pub async fn rpc(&self, method: &str, params: Value) -> Result<Value> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let reply: Value = self
            .client
            .post(&self.url)
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        if let Some(err) = reply.get("error") {
            bail!("{method}: {err}");
        }
        Ok(reply["result"].clone())
    }

    /// Deploys `creation_code` (hex) with `args` (ABI-encoded hex) from anvil's first unlocked
    /// account, in a real transaction; returns the contract address.
    pub async fn deploy(&self, creation_code: &str, args: &str) -> Result<String> {
        let accounts = self.rpc("eth_accounts", json!([])).await?;
        let from = accounts[0].as_str().ok_or_else(|| anyhow!("no accounts"))?;
        let data = format!("0x{}{}", creation_code.trim(), args);
        let tx = self
            .rpc(
                "eth_sendTransaction",
                json!([{"from": from, "data": data, "gas": "0x2dc6c0"}]),
            )
            .await?;
        for _ in 0..50 {
            let receipt = self.rpc("eth_getTransactionReceipt", json!([tx])).await?;
            if let Some(address) = receipt["contractAddress"].as_str() {
                if receipt["status"] != "0x1" {
                    bail!("deployment reverted: {receipt}");
                }
                return Ok(address.to_owned());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("no receipt for {tx}")
    }

    /// anvil's unlocked accounts (0 deploys and pays; the others are free to use).
    pub async fn accounts(&self) -> Result<Vec<String>> {
        let accounts = self.rpc("eth_accounts", json!([])).await?;
        Ok(serde_json::from_value(accounts)?)
    }

    /// Sends a transaction from an unlocked account (`data`: hex calldata; a fixed gas limit,
    /// so a call that reverts is still mined); returns its hash once it is mined.
    pub async fn send(&self, from: &str, to: &str, value: u128, data: &str) -> Result<String> {
        let tx = self
            .rpc(
                "eth_sendTransaction",
                json!([{"from": from, "to": to, "value": format!("0x{value:x}"),
                        "data": data, "gas": "0x30d40"}]),
            )
            .await?;
        let hash = tx
            .as_str()
            .ok_or_else(|| anyhow!("no hash: {tx}"))?
            .to_owned();
        for _ in 0..50 {
            if !self
                .rpc("eth_getTransactionReceipt", json!([hash]))
                .await?
                .is_null()
            {
                return Ok(hash);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("{hash} was not mined")
    }

    /// Mines `blocks` empty blocks.
    pub async fn mine(&self, blocks: u64) -> Result<()> {
        self.rpc("anvil_mine", json!([format!("0x{blocks:x}")]))
            .await?;
        Ok(())
    }

    /// Takes a snapshot of the chain (`evm_snapshot`); [`Self::revert`] goes back to it, as a
    /// reorg drops the blocks after a fork point.
    pub async fn snapshot(&self) -> Result<String> {
        let id = self.rpc("evm_snapshot", json!([])).await?;
        id.as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("no snapshot id: {id}"))
    }

    pub async fn revert(&self, snapshot: &str) -> Result<()> {
        let done = self.rpc("evm_revert", json!([snapshot])).await?;
        if done != Value::Bool(true) {
            bail!("evm_revert refused: {done}");
        }
        Ok(())
    }
}
