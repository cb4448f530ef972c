//! The work area's part of the OpenAPI document: its tags, and what the derive cannot say.
//! Its paths come from its functions' handlers (`projects::api`, `items::api`,
//! `documents::api`).

/// The work area's tags in the OpenAPI document; its paths come from its functions' endpoints.
#[derive(utoipa::OpenApi)]
#[openapi(
    tags(
        (name = "work", description = "Projects, their tasks and work orders"),
        (name = "ipfs", description = "Documents on IPFS, content-addressed"),
    )
)]
pub struct WorkApi;

/// What the derive cannot say: document bodies are bytes, and how the work area's responses
/// feed its other operations (OpenAPI links).
pub fn add_links(doc: &mut utoipa::openapi::OpenApi) {
    use crate::openapi::{add_link, operation_mut};
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
    if let Some(RefOr::T(body)) =
        operation_mut(doc, "post", "/ipfs").and_then(|op| op.request_body.as_mut())
    {
        for content in body.content.values_mut() {
            if let RefOr::T(content) = content {
                content.schema = Some(RefOr::T(Schema::Object(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
                        .build(),
                )));
            }
        }
    }
    // The bytes come back in the content type they were stored with: any schema.
    if let Some(RefOr::T(ok)) = operation_mut(doc, "get", "/ipfs/{cid}")
        .and_then(|op| op.responses.responses.get_mut("200"))
    {
        for content in ok.content.values_mut() {
            if let RefOr::T(content) = content {
                content.schema = Some(RefOr::T(Schema::Object(
                    ObjectBuilder::new()
                        .description(Some("The stored bytes"))
                        .build(),
                )));
            }
        }
    }
    use utoipa::openapi::link::LinkBuilder;
    let project = |operation: &str| {
        LinkBuilder::new()
            .operation_id(operation)
            .parameter("path.id", "$response.body#/id")
            .description("The new project's id")
            .build()
    };
    let under_project = [
        "get_project",
        "update_project",
        "delete_project",
        "list_tasks",
        "create_task",
        "list_work_orders",
        "create_work_order",
    ];
    for operation in under_project {
        add_link(
            doc,
            "post",
            "/projects",
            "201",
            operation,
            project(operation),
        );
    }
    // A new task or work order feeds its own routes.
    let kinds = [
        (
            "/projects/{id}/tasks",
            ["get_task", "update_task", "delete_task"],
        ),
        (
            "/projects/{id}/work-orders",
            ["get_work_order", "update_work_order", "delete_work_order"],
        ),
    ];
    for (list, operations) in kinds {
        for operation in operations {
            let link = LinkBuilder::new()
                .operation_id(operation)
                .parameter("path.id", "$response.body#/id")
                .description("The new item's id")
                .build();
            add_link(doc, "post", list, "201", operation, link);
        }
    }
    let metadata = LinkBuilder::new()
        .operation_id("ipfs_get")
        .parameter("path.cid", "$response.body#/ipfs_metadata_cid")
        .description("The project's metadata document")
        .build();
    add_link(doc, "post", "/projects", "201", "metadata", metadata);
    let document = LinkBuilder::new()
        .operation_id("ipfs_get")
        .parameter("path.cid", "$response.body#/cid")
        .description("The stored bytes")
        .build();
    add_link(doc, "post", "/ipfs", "201", "read", document);
}
