//! The `billing-documents` function. Its routes (or queue), needs and handlers are in the module named below.

fn main() -> std::process::ExitCode {
    gantry::runtime::start(&gantry::payments::billing::render::BILLING_DOCUMENTS)
}
