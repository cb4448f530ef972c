//! The `pin-follow-up` function. Its routes (or queue), needs and handlers are in the module named below.

fn main() -> std::process::ExitCode {
    gantry::runtime::start(&gantry::work::pins::PIN_FOLLOW_UP)
}
