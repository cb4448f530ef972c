//! Every HTTP function on one port, every queue worker in-process, plus `GET /openapi.json`:
//! what `scripts/dev` runs.

fn main() -> std::process::ExitCode {
    gantry::runtime::gateway::start(gantry::app::FUNCTIONS, gantry::app::openapi_route)
}
