//! The housekeeping queue worker: purges expired rows (`gantry::queue::housekeeping`).

fn main() -> std::process::ExitCode {
    gantry::runtime::start(&gantry::app::HOUSEKEEPING)
}
