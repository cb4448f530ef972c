//! The books: invoice lines and totals ([`items`]), gap-free numbers ([`numbering`]), the
//! parties ([`parties`]: the seller from [`config`], the buyer from the client's billing
//! details), issuing, credit notes, reminders and the documents themselves ([`document`]).

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
pub mod reports;

/// What issuing documents needs: the seller and numbering, and where the PDFs are kept.
pub struct Books {
    pub config: config::BillingConfig,
    pub ipfs: std::sync::Arc<dyn crate::ipfs::IpfsStore>,
}
