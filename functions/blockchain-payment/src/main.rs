//! POST /invoices/{id}/blockchain-payment: its entry in `gantry::app::FUNCTIONS`; the rules
//! live in the area.

fn main() -> std::process::ExitCode {
    gantry::runtime::start(&gantry::app::BLOCKCHAIN_PAYMENT)
}
