//! The mailer queue worker: delivers the mail outbox (`gantry::mail`).

fn main() -> std::process::ExitCode {
    gantry::runtime::start(&gantry::app::MAILER)
}
