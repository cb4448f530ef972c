//! POST /auth/nonce: the rules live in `gantry::routes::auth_nonce`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    gantry::runtime::serve(gantry::routes::auth_nonce).await
}
