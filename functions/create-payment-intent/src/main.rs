//! POST /invoices/{id}/create-payment-intent: its entry in `gantry::app::FUNCTIONS`;
//! the rules live in the area.

fn main() -> std::process::ExitCode {
    gantry::runtime::start(&gantry::app::CREATE_PAYMENT_INTENT)
}
