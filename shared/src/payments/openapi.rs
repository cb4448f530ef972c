//! The payments area's part of the OpenAPI document: its tag and links. Its paths come from
//! its functions' handlers.

/// The payments area's tag in the OpenAPI document; its paths come from its functions' endpoints.
#[derive(utoipa::OpenApi)]
#[openapi(
    tags(
        (name = "payments", description = "Invoices and their payments: cards (Stripe) and bitcoin (BTCPay Server)"),
        (name = "billing", description = "The books: issued invoices' PDFs and e-invoices, credit notes, billing details"),
        (name = "reports", description = "The books in figures, for STAFF and ADMIN: revenue by period and currency, and the receivables' aging; JSON, or CSV with `Accept: text/csv`"),
    ),
)]
pub struct PaymentsApi;

/// How a new invoice feeds its other operations (OpenAPI links).
pub fn add_links(doc: &mut utoipa::openapi::OpenApi) {
    use crate::openapi::add_link;
    use utoipa::openapi::link::LinkBuilder;
    let invoice = |operation: &str| {
        LinkBuilder::new()
            .operation_id(operation)
            .parameter("path.id", "$response.body#/id")
            .description("The invoice's id")
    };
    for operation in ["get_invoice", "update_invoice", "list_payments"] {
        add_link(
            doc,
            "post",
            "/invoices",
            "201",
            operation,
            invoice(operation).build(),
        );
    }
    // Sending it makes it payable; a changed invoice feeds the payment routes.
    let send = invoice("update_invoice")
        .request_body(Some(serde_json::json!({"status": "SENT"})))
        .build();
    add_link(doc, "post", "/invoices", "201", "send_invoice", send);
    for operation in [
        "create_payment_intent",
        "create_btcpay_invoice",
        "list_payments",
    ] {
        add_link(
            doc,
            "put",
            "/invoices/{id}",
            "200",
            operation,
            invoice(operation).build(),
        );
    }
    // A new project can be billed.
    let bill = LinkBuilder::new()
        .operation_id("create_invoice")
        .request_body(Some(serde_json::json!({
            "project_id": "$response.body#/id",
            "amount": "1500",
            "currency": "USD",
        })))
        .description("An invoice for the new project")
        .build();
    add_link(doc, "post", "/projects", "201", "create_invoice", bill);
}
