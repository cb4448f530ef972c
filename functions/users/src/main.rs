//! GET /users, PUT /users/{id}/role: the rules live in `gantry::routes::users`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    gantry::runtime::serve(gantry::routes::users).await
}
