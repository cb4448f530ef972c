//! The outbox relay queue worker (`gantry::queue::relay`); the one function built with SQS.

fn main() -> std::process::ExitCode {
    gantry::runtime::start(&gantry::app::OUTBOX_RELAY)
}
