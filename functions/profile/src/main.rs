//! GET /profile: the rules live in `gantry::routes::profile`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    gantry::runtime::serve(gantry::routes::profile).await
}
