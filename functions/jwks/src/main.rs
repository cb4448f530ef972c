//! GET /.well-known/jwks.json: the rules live in `gantry::routes::jwks`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    gantry::runtime::serve(gantry::routes::jwks).await
}
