//! An issued invoice or credit note as a document: the Factur-X / ZUGFeRD e-invoice (UN/CEFACT
//! CII, EN 16931 profile) and the PDF/A-3 that carries it. Pure: the caller hands in a
//! [`Document`] whose totals are already computed (by `billing::items`), and gets bytes back.

pub mod cii;
#[cfg(feature = "documents")]
pub mod pdf;

pub use cii::e_invoice_xml;
#[cfg(feature = "documents")]
pub use pdf::pdf;

use crate::payments::money::{Currency, Minor};
use serde::{Deserialize, Serialize};
use time::Date;

/// The PDF/A-3 of `doc` with its e-invoice embedded. A function built without the `documents`
/// feature (krilla and the font) cannot render one: only `invoices` and `credit-notes` issue.
pub fn render_pdf(doc: &Document) -> Result<Vec<u8>, DocumentError> {
    #[cfg(feature = "documents")]
    {
        pdf(doc, &e_invoice_xml(doc))
    }
    #[cfg(not(feature = "documents"))]
    {
        let _ = doc;
        Err(DocumentError::NotBuilt)
    }
}

/// Why a document could not be rendered. Only the PDF can fail: the XML is plain text.
#[derive(Debug, thiserror::Error)]
pub enum DocumentError {
    /// The compiled-in font did not load (a build defect, not an input one).
    #[error("the document font did not load")]
    Font,
    /// This function was built without the `documents` feature.
    #[error("this function was built without the `documents` feature of gantry")]
    NotBuilt,
    /// krilla refused the PDF, e.g. a PDF/A-3 validation error.
    #[error("the PDF could not be written: {0}")]
    Pdf(String),
}

/// A party to the document: the seller (from configuration) or the buyer (the client's billing
/// details, frozen when the invoice was issued).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Party {
    pub name: String,
    pub address_lines: Vec<String>,
    pub postal_code: String,
    pub city: String,
    /// ISO 3166-1 alpha-2, e.g. `DE`.
    pub country: String,
    /// A VAT identification number (e.g. `DE123456789`), if any.
    pub tax_id: Option<String>,
}

/// The seller: a party plus how to pay it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seller {
    pub party: Party,
    /// An IBAN for credit transfers, if the seller takes them.
    pub iban: Option<String>,
    /// Free text such as "Payable within 14 days".
    pub payment_terms: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A commercial invoice (UNTDID 1001 code 380).
    Invoice,
    /// A credit note (code 381) correcting the invoice with this number. Its amounts are
    /// positive: the document type carries the sign, as EN 16931 does.
    CreditNote { invoice_number: String },
}

/// One line, with its total already rounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub description: String,
    /// A plain decimal string, e.g. `1.5`.
    pub quantity: String,
    pub unit_price: Minor,
    /// A percent as a decimal string (`19`, `7.7`), or none (no VAT on this line).
    pub tax_rate: Option<String>,
    /// round_half_even(quantity × unit_price), in minor units.
    pub total: Minor,
}

/// The tax of one rate: the sum of its lines and the tax on that sum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaxRow {
    pub rate: Option<String>,
    pub base: Minor,
    pub amount: Minor,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub kind: Kind,
    /// E.g. `INV-2027-0001` or `CN-2027-0001`.
    pub number: String,
    pub issue_date: Date,
    pub due_date: Option<Date>,
    pub currency: Currency,
    pub seller: Seller,
    pub buyer: Party,
    pub lines: Vec<Line>,
    /// The sum of the line totals.
    pub subtotal: Minor,
    /// One row per rate, in the order the rates first appear in `lines`.
    pub taxes: Vec<TaxRow>,
    /// subtotal + the sum of the taxes.
    pub total: Minor,
    /// Already paid (an invoice's prepaid amount; zero for a credit note).
    pub paid: Minor,
    pub notes: Option<String>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use time::macros::date;

    fn party(name: &str, country: &str, tax_id: Option<&str>) -> Party {
        Party {
            name: name.into(),
            address_lines: vec!["Hauptstraße 1".into(), "2. OG".into()],
            postal_code: "10115".into(),
            city: "Berlin".into(),
            country: country.into(),
            tax_id: tax_id.map(Into::into),
        }
    }

    fn line(
        description: &str,
        quantity: &str,
        unit: u128,
        rate: Option<&str>,
        total: u128,
    ) -> Line {
        Line {
            description: description.into(),
            quantity: quantity.into(),
            unit_price: Minor::new(unit),
            tax_rate: rate.map(Into::into),
            total: Minor::new(total),
        }
    }

    /// An invoice in EUR with a line at each kind of rate (19 %, zero, exempt), partly paid.
    pub(crate) fn sample() -> Document {
        let lines = vec![
            line("Consulting (hours)", "1.5", 1000, Some("19"), 1500),
            line("Hosting, January", "1", 5000, Some("19"), 5000),
            line("Printed manual", "1", 500, Some("0"), 500),
            line("Insurance", "2", 700, None, 1400),
        ];
        Document {
            kind: Kind::Invoice,
            number: "INV-2027-0001".into(),
            issue_date: date!(2027 - 01 - 15),
            due_date: Some(date!(2027 - 01 - 29)),
            currency: Currency::parse("currency", "EUR").expect("EUR"),
            seller: Seller {
                party: party("Gantry GmbH", "DE", Some("DE123456789")),
                iban: Some("DE02 1203 0000 0000 2020 51".into()),
                payment_terms: Some("Payable within 14 days".into()),
            },
            buyer: party("Acme Ltd", "FR", Some("FR12345678901")),
            lines,
            subtotal: Minor::new(8400),
            taxes: vec![
                TaxRow {
                    rate: Some("19".into()),
                    base: Minor::new(6500),
                    amount: Minor::new(1235),
                },
                TaxRow {
                    rate: Some("0".into()),
                    base: Minor::new(500),
                    amount: Minor::ZERO,
                },
                TaxRow {
                    rate: None,
                    base: Minor::new(1400),
                    amount: Minor::ZERO,
                },
            ],
            total: Minor::new(9635),
            paid: Minor::new(1000),
            notes: Some("Thank you for your business.".into()),
        }
    }

    /// An external checker a test runs, or `None` to skip the test: missing on a developer's
    /// machine it is said loudly; missing in CI (`CI=true`) it fails the test.
    pub(crate) fn external_tool(what: &str, found: Option<String>) -> Option<String> {
        if found.is_some() {
            return found;
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{what} is missing: CI must run this test (scripts/test installs it)"
        );
        eprintln!("\n!!! SKIPPED: {what} missing (run scripts/test). CI does not skip this.\n");
        None
    }

    /// A Python with factur-x and pypdf: `FACTURX_PYTHON`, set by `scripts/test`.
    pub(crate) fn facturx_python() -> Option<String> {
        let python = std::env::var("FACTURX_PYTHON")
            .ok()
            .filter(|p| !p.is_empty());
        external_tool("FACTURX_PYTHON (a python3 with factur-x and pypdf)", python)
    }

    /// Runs `python` on `script` with `args`, asserting it succeeds; its standard output.
    pub(crate) fn run_python(python: &str, script: &str, args: &[&std::path::Path]) -> Vec<u8> {
        let out = std::process::Command::new(python)
            .arg("-c")
            .arg(script)
            .args(args)
            .output()
            .expect("python runs");
        assert!(
            out.status.success(),
            "python failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A file in the temporary directory with `bytes`, removed when dropped.
    pub(crate) struct TempFile(pub std::path::PathBuf);

    impl TempFile {
        pub(crate) fn new(extension: &str, bytes: &[u8]) -> Self {
            let path = std::env::temp_dir().join(format!(
                "gantry-document-{}.{extension}",
                uuid::Uuid::new_v4()
            ));
            std::fs::write(&path, bytes).expect("a temporary file");
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn the_sample_adds_up() {
        let doc = sample();
        let sum = |it: &mut dyn Iterator<Item = Minor>| it.fold(Minor::ZERO, Minor::saturating_add);
        assert_eq!(sum(&mut doc.lines.iter().map(|l| l.total)), doc.subtotal);
        assert_eq!(doc.subtotal.saturating_add(cii::tax_total(&doc)), doc.total);
    }
}
