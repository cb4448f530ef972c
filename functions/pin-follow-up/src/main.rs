//! The pin-follow-up queue worker: follows pins a pinning service still had queued
//! (`gantry::work::pins`).

fn main() -> std::process::ExitCode {
    gantry::runtime::start(&gantry::app::PIN_FOLLOW_UP)
}
