//! POST /register-email-password: the rules live in `gantry::routes::register`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    gantry::runtime::serve(gantry::routes::register).await
}
