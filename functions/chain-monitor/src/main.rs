//! The chain-monitor queue worker: watches on-chain payments until they are final
//! (`gantry::payments::onchain::monitor`).

fn main() -> std::process::ExitCode {
    gantry::runtime::start(&gantry::app::CHAIN_MONITOR)
}
