//! POST /register-email-password, POST /register-blockchain: the rules live in `gantry::routes::register`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    gantry::runtime::serve(gantry::routes::register).await
}
