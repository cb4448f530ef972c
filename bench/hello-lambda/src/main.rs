//! The smallest lambda_http function (current-thread runtime, as Lambda needs: one event at a
//! time), built with the same profile as gantry's functions: the cold-start floor.

use lambda_http::{Body, Error, Request, Response, run, service_fn};

async fn hello(_: Request) -> Result<Response<Body>, Error> {
    Ok(Response::new(Body::from(r#"{"status":"ok"}"#)))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(hello)).await
}
