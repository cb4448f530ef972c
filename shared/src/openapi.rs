//! The OpenAPI 3.1 document, generated from the handlers. `gantry openapi` writes the committed
//! copy (`openapi.json`); a test fails when that copy is stale.

use crate::identity::handlers;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

#[derive(OpenApi)]
#[openapi(
    info(title = "gantry", description = "The gantry HTTP API (see CONTRACT.md)."),
    paths(
        crate::runtime::health,
        handlers::register_email_password,
        handlers::login_email_password,
        handlers::profile,
        handlers::refresh,
        handlers::logout,
        handlers::jwks,
        handlers::list_users,
        handlers::set_role,
        handlers::auth_nonce,
        handlers::register_blockchain,
        handlers::login_blockchain,
        handlers::link_identity,
        handlers::unlink_identity,
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "identity", description = "Accounts and sign-in"),
        (name = "tokens", description = "Sessions and signing keys"),
        (name = "users", description = "User administration (ADMIN)"),
        (name = "meta", description = "Health"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .bearer_format("JWT")
                        .build(),
                ),
            );
        }
    }
}

/// The document as pretty JSON with a trailing newline, exactly as committed.
pub fn spec_json() -> String {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let mut text = doc.to_pretty_json().unwrap_or_else(|_| "{}".to_owned());
    text.push('\n');
    text
}

/// `GET /openapi.json` on the gateway.
pub async fn serve() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], spec_json())
}
