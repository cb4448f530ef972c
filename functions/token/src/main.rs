//! POST /token/refresh, POST /logout: the rules live in `gantry::routes::token`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    gantry::runtime::serve(gantry::routes::token).await
}
