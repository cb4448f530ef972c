//! Getting back in and proving an address: password forgot/reset/change ([`password`]), email
//! verification ([`verification`]), and the single-use mailed tokens both use ([`mailed`]).

pub mod api;
pub mod mailed;
pub mod password;
pub mod verification;
