//! POST /unlink-identity: the rules live in `gantry::routes::unlink_identity`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    gantry::runtime::serve(gantry::routes::unlink_identity).await
}
