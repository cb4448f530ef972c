//! The buyer: a user's billing details (`/users/{id}/billing`), which the invoices of the
//! projects they are the client of print. The user themself, STAFF and ADMIN read and change
//! them; anyone else gets the 404 of a user that does not exist. Issued documents keep the
//! details they were issued with: a change applies to the next one.

use super::document::Party;
use crate::domain::Role;
use crate::error::{AppError, AppResult, FieldError};
use crate::extract::AuthUser;
use crate::identity::facade as identity;
use crate::payments::audit::{self, PaymentsAction};
use crate::work::facade as work;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::{PgConnection, PgPool};
use utoipa::ToSchema;
use uuid::Uuid;

/// A user's billing details, as printed on their invoices.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq, Eq)]
pub struct BillingDetails {
    #[schema(example = "Example Client Ltd")]
    pub name: String,
    pub address_lines: Vec<String>,
    #[schema(example = "10115")]
    pub postal_code: String,
    #[schema(example = "Berlin")]
    pub city: String,
    /// ISO 3166-1 alpha-2.
    #[schema(example = "DE")]
    pub country: String,
    /// A VAT identification number, if any.
    #[schema(example = "DE123456789")]
    pub tax_id: Option<String>,
}

/// A change to the billing details: only the fields given change (`tax_id: null` clears it).
/// The first change must give `name` and `country`. No field holds a control character.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BillingDetailsPatch {
    #[schema(schema_with = name_schema)]
    pub name: Option<String>,
    /// Up to 4 lines, each up to 100 characters.
    #[schema(schema_with = lines_schema)]
    pub address_lines: Option<Vec<String>>,
    #[schema(schema_with = postal_code_schema)]
    pub postal_code: Option<String>,
    #[schema(schema_with = city_schema)]
    pub city: Option<String>,
    #[schema(pattern = "^[A-Z]{2}$", example = "DE")]
    pub country: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(schema_with = tax_id_schema)]
    pub tax_id: Option<Option<String>>,
}

/// Text without control characters (Unicode Cc), as a pattern.
const PLAIN: &str = "^[^\\x00-\\x1f\\x7f-\\x9f]*$";

fn plain(max: usize) -> utoipa::openapi::schema::Object {
    crate::domain::schema::or_null(
        crate::domain::schema::string(None, Some(max)).pattern(Some(PLAIN)),
    )
}

fn name_schema() -> utoipa::openapi::schema::Object {
    crate::domain::schema::or_null(crate::domain::line_schema(200))
}

fn postal_code_schema() -> utoipa::openapi::schema::Object {
    plain(20)
}

fn city_schema() -> utoipa::openapi::schema::Object {
    plain(100)
}

fn tax_id_schema() -> utoipa::openapi::schema::Object {
    plain(40)
}

fn lines_schema() -> utoipa::openapi::schema::Array {
    utoipa::openapi::schema::ArrayBuilder::new()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            utoipa::openapi::Type::Array,
            utoipa::openapi::Type::Null,
        ]))
        .items(crate::domain::schema::string(None, Some(100)).pattern(Some(PLAIN)))
        .max_items(Some(4))
        .build()
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

impl From<BillingDetails> for Party {
    fn from(d: BillingDetails) -> Self {
        Party {
            name: d.name,
            address_lines: d.address_lines,
            postal_code: d.postal_code,
            city: d.city,
            country: d.country,
            tax_id: d.tax_id,
        }
    }
}

/// The user themself, STAFF or ADMIN; a 404 for anyone else, as for a user that does not
/// exist (no enumeration).
async fn may_see(pool: &PgPool, caller: &AuthUser, user_id: Uuid) -> AppResult<()> {
    let own = caller.user_id == user_id;
    if !own && !matches!(caller.role, Role::Staff | Role::Admin) {
        return Err(AppError::NotFound);
    }
    if identity::role_of(pool, user_id).await?.is_none() {
        return Err(AppError::NotFound);
    }
    Ok(())
}

async fn stored(conn: &mut PgConnection, user_id: Uuid) -> AppResult<Option<BillingDetails>> {
    Ok(sqlx::query_as!(
        BillingDetails,
        "SELECT name, address_lines, postal_code, city, country, tax_id
         FROM billing_details WHERE user_id = $1",
        user_id
    )
    .fetch_optional(conn)
    .await?)
}

/// A user's billing details; 404 while they have none.
#[tracing::instrument(name = "payments.billing_details", skip_all)]
pub async fn get(pool: &PgPool, caller: &AuthUser, user_id: Uuid) -> AppResult<BillingDetails> {
    may_see(pool, caller, user_id).await?;
    let mut conn = pool.acquire().await?;
    stored(&mut conn, user_id).await?.ok_or(AppError::NotFound)
}

fn text(
    field: &str,
    value: Option<String>,
    max: usize,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let value = value?.trim().to_owned();
    if value.chars().count() > max || value.chars().any(char::is_control) {
        errors.push(FieldError::new(
            field,
            format!("must be at most {max} characters, without control characters"),
        ));
    }
    Some(value)
}

#[tracing::instrument(name = "payments.change_billing_details", skip_all)]
pub async fn patch(
    pool: &PgPool,
    caller: &AuthUser,
    user_id: Uuid,
    input: BillingDetailsPatch,
) -> AppResult<BillingDetails> {
    may_see(pool, caller, user_id).await?;
    let mut errors = Vec::new();
    let name = input.name.and_then(|n| {
        crate::domain::parse_line("name", &n, 200)
            .map_err(|e| errors.push(e))
            .ok()
    });
    let postal_code = text("postal_code", input.postal_code, 20, &mut errors);
    let city = text("city", input.city, 100, &mut errors);
    let country = input.country;
    if country
        .as_deref()
        .is_some_and(|c| !(c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())))
    {
        errors.push(FieldError::new(
            "country",
            "must be an ISO 3166-1 alpha-2 code such as DE",
        ));
    }
    let tax_id = input
        .tax_id
        .map(|t| text("tax_id", t, 40, &mut errors).filter(|t| !t.is_empty()));
    let address_lines = input.address_lines.map(|lines| {
        if lines.len() > 4 {
            errors.push(FieldError::new(
                "address_lines",
                "must hold at most 4 lines",
            ));
        }
        lines
            .into_iter()
            .enumerate()
            .filter_map(|(i, line)| {
                text(&format!("address_lines[{i}]"), Some(line), 100, &mut errors)
            })
            .filter(|line| !line.is_empty())
            .collect::<Vec<_>>()
    });
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let mut tx = pool.begin().await?;
    let current = sqlx::query!(
        "SELECT 1 AS one FROM billing_details WHERE user_id = $1 FOR UPDATE",
        user_id
    )
    .fetch_optional(&mut *tx)
    .await?;
    if current.is_none() {
        let mut missing = Vec::new();
        if name.is_none() {
            missing.push(FieldError::semantic("name", "is required the first time"));
        }
        if country.is_none() {
            missing.push(FieldError::semantic(
                "country",
                "is required the first time",
            ));
        }
        if !missing.is_empty() {
            return Err(AppError::Validation(missing));
        }
    }
    if current.is_none() {
        // The first details: the row, then the same change as any later one. (A concurrent
        // first change inserts nothing here and its update applies after this one's.)
        sqlx::query!(
            "INSERT INTO billing_details (user_id, name, country) VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO NOTHING",
            user_id,
            name.as_deref().unwrap_or_default(),
            country.as_deref().unwrap_or_default(),
        )
        .execute(&mut *tx)
        .await?;
    }
    sqlx::query!(
        r#"UPDATE billing_details SET
               name = COALESCE($2, name), address_lines = COALESCE($3::text[], address_lines),
               postal_code = COALESCE($4, postal_code), city = COALESCE($5, city),
               country = COALESCE($6, country),
               tax_id = CASE WHEN $7 THEN $8 ELSE tax_id END, updated_at = now()
           WHERE user_id = $1"#,
        user_id,
        name,
        address_lines.as_deref(),
        postal_code,
        city,
        country,
        tax_id.is_some(),
        tax_id.flatten(),
    )
    .execute(&mut *tx)
    .await?;
    audit::record(
        &mut tx,
        PaymentsAction::BillingDetailsChanged,
        caller,
        user_id,
        json!({}),
    )
    .await?;
    let details = stored(&mut tx, user_id).await?.ok_or(AppError::NotFound)?;
    tx.commit().await?;
    Ok(details)
}

/// Who an invoice of project `project_id` is addressed to: the client's billing details, else
/// the client's name in the seller's country (a client who never gave details).
pub(crate) async fn buyer_of(
    conn: &mut PgConnection,
    project_id: Uuid,
    fallback_country: &str,
) -> AppResult<Party> {
    let nobody = |name: String| Party {
        name,
        address_lines: Vec::new(),
        postal_code: String::new(),
        city: String::new(),
        country: fallback_country.to_owned(),
        tax_id: None,
    };
    let Some(client) = work::project_client(&mut *conn, project_id).await? else {
        return Ok(nobody("(no client)".to_owned()));
    };
    Ok(match stored(&mut *conn, client).await? {
        Some(details) => details.into(),
        None => nobody(
            identity::contact(conn, client)
                .await?
                .map_or_else(|| "(no client)".to_owned(), |c| c.name),
        ),
    })
}

/// Where reminders and refund links for project `project_id`'s invoices are mailed: its
/// client's address, if it has a client with one.
pub(crate) async fn mail_to(
    conn: &mut PgConnection,
    project_id: Uuid,
) -> AppResult<Option<String>> {
    match work::project_client(&mut *conn, project_id).await? {
        Some(client) => email_of(conn, client).await,
        None => Ok(None),
    }
}

/// User `user`'s mail address, if they have one.
pub(crate) async fn email_of(conn: &mut PgConnection, user: Uuid) -> AppResult<Option<String>> {
    Ok(identity::contact(conn, user).await?.and_then(|c| c.email))
}
