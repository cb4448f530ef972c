//! Every function on one port, plus `GET /openapi.json`: what `scripts/dev` runs.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    gantry::runtime::serve(gantry::routes::gateway).await
}
