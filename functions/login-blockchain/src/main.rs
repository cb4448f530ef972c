//! POST /login-blockchain: the rules live in `gantry::routes::login_blockchain`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    gantry::runtime::serve(gantry::routes::login_blockchain).await
}
