//! The books' functions: `billing-details` (`/users/{id}/billing`), `credit-notes`
//! (`/invoices/{id}/credit-notes`) and `invoice-documents` (the PDFs and the e-invoice). Thin:
//! extract, call the rule, choose the status.

use super::credit_notes::{self, CreditNote, CreditNoteInput, CreditNotes};
use super::document::cii;
use super::issue;
use super::parties::{self, BillingDetails, BillingDetailsPatch};
use crate::endpoint;
use crate::error::{AppError, AppResult};
use crate::extract::{AuthUser, Json, Path};
use crate::function::needs::{DATABASE, PUBLIC_KEYS};
use crate::function::{FunctionSpec, Http, Trigger};
use crate::payments::invoices;
use crate::payments::state::PaymentsState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::{self, HeaderValue};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

/// `billing-details`: a user's billing details.
pub static BILLING_DETAILS: FunctionSpec = FunctionSpec {
    name: "billing-details",
    trigger: Trigger::Http(&Http::new(
        |platform| Ok(PaymentsState::rows(platform)),
        &[
            endpoint!(get_billing_details),
            endpoint!(patch_billing_details),
        ],
    )),
    needs: &[&DATABASE, &PUBLIC_KEYS],
};

/// `credit-notes`: an invoice's credit notes (issuing one queues its PDF).
pub static CREDIT_NOTES: FunctionSpec = FunctionSpec {
    name: "credit-notes",
    trigger: Trigger::Http(&Http::new(
        PaymentsState::with_books,
        &[endpoint!(list_credit_notes), endpoint!(create_credit_note)],
    )),
    needs: &[&DATABASE, &PUBLIC_KEYS, &super::config::NEED],
};

/// `invoice-documents`: the issued PDFs and the e-invoice.
pub static INVOICE_DOCUMENTS: FunctionSpec = FunctionSpec {
    name: "invoice-documents",
    trigger: Trigger::Http(&Http::new(
        PaymentsState::with_documents,
        &[
            endpoint!(invoice_pdf),
            endpoint!(invoice_e_invoice),
            endpoint!(credit_note_pdf),
        ],
    )),
    needs: &[&DATABASE, &PUBLIC_KEYS, &crate::ipfs::config::NEED],
};

#[utoipa::path(get, path = "/users/{id}/billing", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "The user's billing details", body = BillingDetails),
        (status = 404, description = "No such user, not the caller (unless STAFF or ADMIN), or no details yet"),
    ))]
pub async fn get_billing_details(
    State(state): State<PaymentsState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<BillingDetails>> {
    Ok(Json(parties::get(state.db()?, &caller, id).await?))
}

#[utoipa::path(patch, path = "/users/{id}/billing", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    request_body = BillingDetailsPatch,
    responses(
        (status = 200, description = "The billing details, changed (the next issued invoice prints them)", body = BillingDetails),
        (status = 404, description = "No such user, or not the caller (unless STAFF or ADMIN)"),
        (status = 422, description = "The first change lacks name or country"),
    ))]
pub async fn patch_billing_details(
    State(state): State<PaymentsState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<BillingDetailsPatch>,
) -> AppResult<Json<BillingDetails>> {
    Ok(Json(parties::patch(state.db()?, &caller, id, body).await?))
}

#[utoipa::path(get, path = "/invoices/{id}/credit-notes", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 200, description = "The invoice's credit notes, oldest first", body = CreditNotes),
        (status = 404, description = crate::payments::NOT_VISIBLE),
    ))]
pub async fn list_credit_notes(
    State(state): State<PaymentsState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Json<CreditNotes>> {
    Ok(Json(credit_notes::list(state.db()?, &caller, id).await?))
}

#[utoipa::path(post, path = "/invoices/{id}/credit-notes", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    request_body = CreditNoteInput,
    responses(
        (status = 201, description = "The credit note, numbered, with its PDF; what the invoice's due amount drops by", body = CreditNote),
        (status = 403, description = "A CLIENT"),
        (status = 404, description = crate::payments::NOT_VISIBLE),
        (status = 409, description = "The invoice is not issued (DRAFT or VOID), or the note exceeds what is left to credit"),
    ))]
pub async fn create_credit_note(
    State(state): State<PaymentsState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
    Json(body): Json<CreditNoteInput>,
) -> AppResult<(StatusCode, Json<CreditNote>)> {
    Ok((
        StatusCode::CREATED,
        Json(credit_notes::create(&state, &caller, id, body).await?),
    ))
}

/// An issued document whose PDF the `billing-documents` worker has not stored yet (seconds,
/// normally).
const RENDERING: AppError = AppError::NotYet {
    detail: "the PDF is being rendered; try again shortly",
    retry_after_secs: 5,
};

/// A document's bytes, as a download that is never rendered as a page of this origin.
fn download(content_type: &'static str, filename: &str, bytes: Vec<u8>) -> Response {
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
        .unwrap_or(HeaderValue::from_static("attachment"));
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CONTENT_DISPOSITION, disposition),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=31536000, immutable"),
            ),
        ],
        bytes,
    )
        .into_response()
}

#[utoipa::path(get, path = "/invoices/{id}/pdf", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 200, description = "The issued invoice: a PDF/A-3 with its Factur-X e-invoice embedded, checked against `pdf_cid`",
            content((Vec<u8> = "application/pdf"))),
        (status = 404, description = "Not issued yet (DRAFT), no such invoice, or not the caller's to see"),
        (status = 503, description = "Issued, but its PDF is still being rendered (`pdf_cid` is null; type `urn:gantry:problem:not-yet`): retry after `Retry-After` seconds. Or a dependency (the database, the IPFS backend) is down"),
    ))]
pub async fn invoice_pdf(
    State(state): State<PaymentsState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Response> {
    let invoice = invoices::visible(state.db()?, &caller, id).await?;
    let number = invoice.number.ok_or(AppError::NotFound)?;
    let cid = invoice.pdf_cid.ok_or(RENDERING)?;
    let pdf = issue::read_pdf(state.documents()?, &cid).await?;
    Ok(download("application/pdf", &format!("{number}.pdf"), pdf))
}

#[utoipa::path(get, path = "/invoices/{id}/e-invoice", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Invoice id")),
    responses(
        (status = 200, description = "The issued invoice's e-invoice: Factur-X / ZUGFeRD, UN/CEFACT CII, EN 16931 profile (the XML its PDF carries)",
            content((String = "application/xml"))),
        (status = 404, description = "Not issued yet (DRAFT), no such invoice, or not the caller's to see"),
    ))]
pub async fn invoice_e_invoice(
    State(state): State<PaymentsState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Response> {
    let pool = state.db()?;
    invoices::visible(pool, &caller, id).await?;
    let mut conn = pool.acquire().await?;
    let doc = issue::invoice_document(&mut conn, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let xml = cii::e_invoice_xml(&doc);
    Ok(download(
        "application/xml",
        &format!("{}.xml", doc.number),
        xml.into_bytes(),
    ))
}

#[utoipa::path(get, path = "/credit-notes/{id}/pdf", tag = "billing", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Credit note id")),
    responses(
        (status = 200, description = "The credit note: a PDF/A-3 with its Factur-X e-invoice embedded",
            content((Vec<u8> = "application/pdf"))),
        (status = 404, description = "No such credit note, or its invoice is not the caller's to see"),
        (status = 503, description = "Its PDF is still being rendered (`pdf_cid` is null; type `urn:gantry:problem:not-yet`): retry after `Retry-After` seconds. Or a dependency (the database, the IPFS backend) is down"),
    ))]
pub async fn credit_note_pdf(
    State(state): State<PaymentsState>,
    caller: AuthUser,
    Path(id): Path<Uuid>,
) -> AppResult<Response> {
    let (_, cid) = credit_notes::invoice_of(state.db()?, &caller, id).await?;
    let cid = cid.ok_or(RENDERING)?;
    let pdf = issue::read_pdf(state.documents()?, &cid).await?;
    Ok(download(
        "application/pdf",
        &format!("credit-note-{id}.pdf"),
        pdf,
    ))
}
