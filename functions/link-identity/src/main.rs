//! POST /link-identity: the rules live in `gantry::routes::link_identity`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    gantry::runtime::serve(gantry::routes::link_identity).await
}
