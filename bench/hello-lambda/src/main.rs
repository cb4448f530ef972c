//! The smallest lambda_http function, built with the same profile as gantry's functions.

use lambda_http::{Body, Error, Request, Response, run, service_fn};

async fn hello(_: Request) -> Result<Response<Body>, Error> {
    Ok(Response::new(Body::from(r#"{"status":"ok"}"#)))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(hello)).await
}
