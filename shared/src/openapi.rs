//! The core's part of the OpenAPI 3.1 document (health, the bearer scheme, the document's
//! metadata) and how a merged document is finished and served. Each area describes its own
//! paths; `crate::app::openapi` merges them. `gantry openapi` writes the committed copy
//! (`openapi.json`); a test fails when that copy is stale.

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "gantry",
        description = "The gantry HTTP API: identity (email/password and Sign-In with Ethereum), sessions and user administration. Errors are RFC 9457 problem+json."
    ),
    paths(crate::runtime::health),
    tags((name = "meta", description = "Health")),
)]
pub struct CoreApi;

/// Adds what every document carries: the bearer security scheme and the crate version.
pub fn finish(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("JWT")
                .build(),
        ),
    );
    doc
}

/// Pretty JSON with a trailing newline.
pub fn to_json(doc: &utoipa::openapi::OpenApi) -> String {
    let mut text = doc.to_pretty_json().unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    text
}

/// A handler that serves the document `spec` renders.
pub fn serve(
    spec: fn() -> String,
) -> impl Fn() -> std::future::Ready<axum::response::Response> + Clone + Send + Sync + 'static {
    move || {
        std::future::ready(([(header::CONTENT_TYPE, "application/json")], spec()).into_response())
    }
}
