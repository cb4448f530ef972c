//! Identity's OpenAPI tags and the links between its operations; the paths come from each
//! capability's handlers (`<capability>::api`).

/// Identity's tags in the OpenAPI document; its paths come from its functions' endpoints.
#[derive(utoipa::OpenApi)]
#[openapi(
    tags(
        (name = "identity", description = "Accounts and sign-in"),
        (name = "tokens", description = "Sessions and signing keys"),
        (name = "users", description = "User administration (ADMIN)"),
        (name = "account", description = "Password recovery, email verification, sessions and login history"),
    )
)]
pub struct IdentityApi;

/// How identity's responses feed its other operations (OpenAPI links): a session's tokens feed
/// /profile, /token/refresh and /logout; ids feed the operations that take them.
pub fn add_links(doc: &mut utoipa::openapi::OpenApi) {
    closed_variants(doc, "LinkIdentity");
    closed_variants(doc, "LoginMfa");
    use crate::openapi::add_link;
    use serde_json::json;
    use utoipa::openapi::link::LinkBuilder;
    let profile = || {
        LinkBuilder::new()
            .operation_id("profile")
            .parameter(
                "header.Authorization",
                "Bearer {$response.body#/access_token}",
            )
            .description("The access token reads the caller's profile")
            .build()
    };
    let with_refresh = |operation: &str| {
        LinkBuilder::new()
            .operation_id(operation)
            .request_body(Some(
                json!({"refresh_token": "$response.body#/refresh_token"}),
            ))
            .description("The refresh token rotates the session, or ends it")
            .build()
    };
    let sessions = [
        ("post", "/register-email-password", "201"),
        ("post", "/register-blockchain", "201"),
        ("post", "/login-email-password", "200"),
        ("post", "/login-blockchain", "200"),
        ("post", "/token/refresh", "200"),
    ];
    for (method, path, status) in sessions {
        add_link(doc, method, path, status, "profile", profile());
        add_link(
            doc,
            method,
            path,
            status,
            "refresh",
            with_refresh("refresh"),
        );
        add_link(doc, method, path, status, "logout", with_refresh("logout"));
    }
    for (path, pointer) in [
        ("/register-email-password", "/user/id"),
        ("/register-blockchain", "/user/id"),
    ] {
        let link = LinkBuilder::new()
            .operation_id("set_role")
            .parameter("path.id", format!("$response.body#{pointer}"))
            .description("An ADMIN sets the new user's role")
            .build();
        add_link(doc, "post", path, "201", "set_role", link);
    }
    let first_user = LinkBuilder::new()
        .operation_id("set_role")
        .parameter("path.id", "$response.body#/items/0/id")
        .description("An ADMIN sets a listed user's role")
        .build();
    add_link(doc, "get", "/users", "200", "set_role", first_user);
    let unlink = |pointer: &str| {
        LinkBuilder::new()
            .operation_id("unlink_identity")
            .request_body(Some(
                json!({"identity_id": format!("$response.body#{pointer}")}),
            ))
            .description("The identity can be unlinked again")
            .build()
    };
    add_link(
        doc,
        "post",
        "/link-identity",
        "201",
        "unlink",
        unlink("/id"),
    );
    add_link(
        doc,
        "get",
        "/profile",
        "200",
        "unlink",
        unlink("/identities/0/id"),
    );
}

/// utoipa marks a `deny_unknown_fields` struct `additionalProperties: false` but not the variants
/// of a tagged enum; the code refuses unknown fields there too, so the document says so.
fn closed_variants(doc: &mut utoipa::openapi::OpenApi, name: &str) {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{AdditionalProperties, Schema};
    let found = doc
        .components
        .as_mut()
        .and_then(|components| components.schemas.get_mut(name));
    if let Some(RefOr::T(Schema::OneOf(one_of))) = found {
        for item in &mut one_of.items {
            if let RefOr::T(Schema::Object(object)) = item {
                object.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
}
