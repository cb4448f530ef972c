//! Domain types that validate at the boundary: once parsed, no code checks them again.

mod email;
mod name;
mod password;
mod role;
pub mod schema;

pub use email::Email;
pub use name::DisplayName;
pub use password::Password;
pub use role::Role;
