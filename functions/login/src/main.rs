//! POST /login-email-password: the rules live in `gantry::routes::login`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    gantry::runtime::serve(gantry::routes::login).await
}
