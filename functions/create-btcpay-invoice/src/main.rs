//! POST /invoices/{id}/create-btcpay-invoice: its entry in `gantry::app::FUNCTIONS`;
//! the rules live in the area.

fn main() -> std::process::ExitCode {
    gantry::runtime::start(&gantry::app::CREATE_BTCPAY_INVOICE)
}
