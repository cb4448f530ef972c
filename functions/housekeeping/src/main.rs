//! The `housekeeping` function. Its queue and needs are declared in `gantry::app` (it runs every
//! owner's purges); the worker is `gantry::queue::housekeeping`.

fn main() -> std::process::ExitCode {
    gantry::runtime::start(&gantry::app::HOUSEKEEPING)
}
