//! The books: invoice lines and totals ([`items`]), gap-free numbers ([`numbering`]), the
//! parties ([`parties`]: the seller from [`config`], the buyer from the client's billing
//! details), issuing, credit notes, reminders, and the documents themselves ([`document`]),
//! rendered by the `billing-documents` worker ([`render`]).

pub mod api;
pub mod config;
pub mod credit_notes;
pub mod document;
pub mod issue;
pub mod items;
pub mod numbering;
pub mod parties;
pub mod refunds;
pub mod reminders;
pub mod render;
pub mod reports;
