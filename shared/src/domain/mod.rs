//! Domain types that validate at the boundary: once parsed, no code checks them again.

mod email;
mod name;
mod password;
mod role;
pub mod schema;

pub use email::Email;
pub use name::{DisplayName, line_schema, parse_line, parse_text, text_schema};
pub use password::Password;
pub use role::Role;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// Page size for keyset-paginated lists: 1 to 100, default 50.
pub fn page_limit(raw: Option<u32>) -> Result<u32, crate::error::FieldError> {
    let limit = raw.unwrap_or(50);
    if (1..=100).contains(&limit) {
        Ok(limit)
    } else {
        Err(crate::error::FieldError::new(
            "limit",
            "must be between 1 and 100",
        ))
    }
}

/// One page of a keyset-paginated list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// `rows` holds up to `limit + 1` rows in key order: the extra one only says that another
    /// page follows, whose cursor is the last kept row's key.
    pub fn of(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> Uuid) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|row| key(row).to_string())
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}
