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
