//! The core's part of the OpenAPI 3.1 document (health, the bearer scheme, the document's
//! metadata), how the document is merged from the functions' paths and the areas' tags and
//! links ([`document`]; `crate::app::openapi` names the parts), and how it is served. `gantry openapi` writes the committed copy
//! (`openapi.json`); a test fails when that copy is stale.

use crate::function::FunctionSpec;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::header::{Header, HeaderBuilder};
use utoipa::openapi::link::Link;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "gantry",
        description = "The gantry HTTP API: identity (email/password and Sign-In with Ethereum), sessions and user administration. Errors are RFC 9457 problem+json."
    ),
    paths(crate::runtime::health),
    components(schemas(crate::error::Problem)),
    tags((name = "meta", description = "Health")),
)]
pub struct CoreApi;

/// An area's part of the document besides its functions' paths: its tags (a
/// `#[derive(utoipa::OpenApi)]`), and what the derive cannot say (links, byte bodies).
pub struct AreaDoc {
    pub tags: fn() -> OpenApi,
    pub amend: fn(&mut OpenApi),
}

/// The OpenAPI document: the core's part (health, security scheme), every area's tags, every
/// function's paths (read from its handlers' `#[utoipa::path]`s, as its router is), the
/// statuses the edge answers (a function that needs the database, a key or a provider can
/// answer 503) and each area's amendments.
pub fn document(functions: &[&FunctionSpec], areas: &[AreaDoc]) -> OpenApi {
    let mut doc = <CoreApi as utoipa::OpenApi>::openapi();
    for area in areas {
        doc.merge((area.tags)());
    }
    // (method, path) of every route whose function can answer 503.
    let mut dependent = Vec::new();
    for spec in functions {
        let Some(paths) = spec.openapi() else {
            continue;
        };
        if spec.needs.iter().any(|need| need.can_be_unavailable) {
            dependent.extend(spec.routes());
        }
        doc.merge(paths);
    }
    add_problem_bodies(&mut doc);
    add_edge_responses(&mut doc, |method, path| {
        let dependent = dependent.iter().any(|route| {
            route.path == path && route.method.http().as_str().eq_ignore_ascii_case(method)
        });
        EdgeFacts { dependent }
    });
    for area in areas {
        (area.amend)(&mut doc);
    }
    finish(doc)
}

/// Adds what every document carries: the bearer security scheme and the crate version.
pub fn finish(mut doc: OpenApi) -> OpenApi {
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
pub fn to_json(doc: &OpenApi) -> String {
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

/// What a route's function may answer besides its own statuses.
#[derive(Debug, Clone, Copy, Default)]
pub struct EdgeFacts {
    /// It depends on the database, a signing key or a chain RPC, so it answers 503 when one is
    /// down or not configured.
    pub dependent: bool,
}

fn problem(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content("application/problem+json", problem_content())
        .build()
}

fn problem_content() -> utoipa::openapi::Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build()
}

fn retry_after() -> Header {
    HeaderBuilder::new()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        ))
        .description(Some("Seconds to wait before trying again"))
        .build()
}

/// Every operation of `doc` with `(method, path, operation)`.
fn operations(doc: &mut OpenApi) -> impl Iterator<Item = (&'static str, &String, &mut Operation)> {
    doc.paths.paths.iter_mut().flat_map(|(path, item)| {
        [
            ("get", item.get.as_mut()),
            ("put", item.put.as_mut()),
            ("post", item.post.as_mut()),
            ("delete", item.delete.as_mut()),
            ("patch", item.patch.as_mut()),
        ]
        .into_iter()
        .filter_map(move |(method, op)| op.map(|op| (method, path, op)))
    })
}

/// Gives every error response a route declares (`(status = 404, description = "...")`) the one
/// body every error has: a problem+json [`Problem`](crate::error::Problem). So a handler's
/// `#[utoipa::path]` says only which statuses it answers and why.
fn add_problem_bodies(doc: &mut OpenApi) {
    for (_, _, op) in operations(doc) {
        for (status, response) in op.responses.responses.iter_mut() {
            let error = status.starts_with('4') || status.starts_with('5');
            if let RefOr::T(response) = response
                && error
                && response.content.is_empty()
            {
                response.content.insert(
                    "application/problem+json".to_owned(),
                    RefOr::T(problem_content()),
                );
            }
        }
    }
}

/// Adds the statuses the edge answers on its own, so no route can leave them out: 400, 413 and
/// 415 wherever a JSON body is read (not JSON, too large, wrong Content-Type); 400 wherever path
/// or query parameters are parsed; 401 wherever a bearer token is required; 503 wherever the
/// function depends on the database, a key or a chain. Every 429 gets its `Retry-After` header.
/// A status a route documents itself keeps the route's description.
pub fn add_edge_responses(doc: &mut OpenApi, facts: impl Fn(&str, &str) -> EdgeFacts) {
    for (method, path, op) in operations(doc) {
        let json_body = match &op.request_body {
            Some(RefOr::T(body)) => body.content.contains_key("application/json"),
            _ => false,
        };
        let responses = &mut op.responses.responses;
        let mut add = |status: &str, description: &str| {
            responses
                .entry(status.to_owned())
                .or_insert_with(|| RefOr::T(problem(description)));
        };
        if json_body {
            add(
                "400",
                "The body is not a JSON object, or a field is invalid (see `errors`)",
            );
            add("413", "The body is larger than 1 MiB");
            add(
                "415",
                "The body is not sent as Content-Type: application/json",
            );
        }
        if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
            add("400", "A path or query parameter is invalid");
        }
        if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
            add("401", "No valid access token");
        }
        if facts(method, path).dependent {
            add(
                "503",
                "A dependency (database, signing key, chain RPC, IPFS backend or payment provider) is down or not configured; the detail says which",
            );
        }
        if let Some(RefOr::T(limited)) = op.responses.responses.get_mut("429") {
            limited
                .headers
                .insert("Retry-After".to_owned(), RefOr::T(retry_after()));
        }
    }
}

/// Adds an OpenAPI link to the `status` response of `method path`: how a value in that response
/// feeds another operation (clients and schemathesis' stateful phase follow them).
pub fn add_link(doc: &mut OpenApi, method: &str, path: &str, status: &str, name: &str, link: Link) {
    let found =
        operation_mut(doc, method, path).and_then(|op| op.responses.responses.get_mut(status));
    if let Some(RefOr::T(response)) = found {
        response.links.insert(name.to_owned(), RefOr::T(link));
    }
}

/// The operation `method path` of `doc`, to adjust what the derive cannot say.
pub fn operation_mut<'a>(
    doc: &'a mut OpenApi,
    method: &str,
    path: &str,
) -> Option<&'a mut Operation> {
    operations(doc)
        .find(|(m, p, _)| *m == method && p.as_str() == path)
        .map(|(_, _, op)| op)
}
