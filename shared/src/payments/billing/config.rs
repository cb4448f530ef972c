//! What the books read from the environment: the seller printed on every document, the number
//! formats of invoices and credit notes, and the reminder schedule.

use super::document::{Party, Seller};
use super::numbering::NumberFormat;
use crate::config::{ConfigError, Env};
use crate::need::{FaasValue, Need, SamValue, Var, optional};

/// Days after the due date on which a reminder goes out, by default.
const REMINDER_DAYS: &[u32] = &[0, 7, 14];

#[derive(Debug, Clone)]
pub struct BillingConfig {
    pub seller: Seller,
    pub invoice_numbers: NumberFormat,
    pub credit_note_numbers: NumberFormat,
    /// Days after the due date, ascending, each a reminder stage.
    pub reminder_days: Vec<u32>,
    /// Where the app shows an invoice (`PUBLIC_BASE_URL`, identity's setting), for the mails.
    pub pay_base_url: Option<String>,
}

const fn text(
    name: &'static str,
    param: &'static str,
    description: &'static str,
    example: &'static str,
) -> Var {
    Var {
        name,
        sam: optional(param, false, description),
        openfaas: FaasValue::Value { value: example },
    }
}

/// The seller's details and the numbering, for every function that issues or prints a
/// document.
pub const NEED: Need = Need {
    name: "billing",
    can_be_unavailable: false,
    vars: &[
        Var {
            name: "SELLER_NAME",
            sam: SamValue::Parameter {
                name: "SellerName",
                secret: false,
                default: None,
                description: "The seller's legal name, printed on every invoice and credit note",
            },
            openfaas: FaasValue::Value {
                value: "Example Services GmbH",
            },
        },
        text(
            "SELLER_ADDRESS",
            "SellerAddress",
            "The seller's street address; lines separated by `;`",
            "Hauptstraße 1",
        ),
        text(
            "SELLER_POSTAL_CODE",
            "SellerPostalCode",
            "The seller's postal code",
            "10115",
        ),
        text("SELLER_CITY", "SellerCity", "The seller's city", "Berlin"),
        Var {
            name: "SELLER_COUNTRY",
            sam: SamValue::Parameter {
                name: "SellerCountry",
                secret: false,
                default: None,
                description: "The seller's country, ISO 3166-1 alpha-2 (DE)",
            },
            openfaas: FaasValue::Value { value: "DE" },
        },
        text(
            "SELLER_TAX_ID",
            "SellerTaxId",
            "The seller's VAT id (DE123456789)",
            "DE123456789",
        ),
        text(
            "SELLER_IBAN",
            "SellerIban",
            "The IBAN printed for credit transfers",
            "",
        ),
        text(
            "SELLER_PAYMENT_TERMS",
            "SellerPaymentTerms",
            "Payment terms printed on invoices",
            "Payable within 14 days",
        ),
        text(
            "INVOICE_NUMBER_FORMAT",
            "InvoiceNumberFormat",
            "Invoice numbers: {YYYY} {YY} {MM} and one {SEQ} or {SEQ:n} (default INV-{YYYY}-{SEQ:4})",
            "INV-{YYYY}-{SEQ:4}",
        ),
        text(
            "CREDIT_NOTE_NUMBER_FORMAT",
            "CreditNoteNumberFormat",
            "Credit note numbers, as INVOICE_NUMBER_FORMAT (default CN-{YYYY}-{SEQ:4})",
            "CN-{YYYY}-{SEQ:4}",
        ),
        text(
            "BILLING_REMINDER_DAYS",
            "BillingReminderDays",
            "Days after the due date on which reminders go out, comma-separated (default 0,7,14)",
            "0,7,14",
        ),
    ],
    aws: &[],
};

impl BillingConfig {
    pub fn from_env(env: &Env) -> Result<Self, ConfigError> {
        let country = env.get("SELLER_COUNTRY").unwrap_or_else(|| "DE".to_owned());
        if !(country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase())) {
            return Err(ConfigError::invalid(
                "SELLER_COUNTRY",
                "must be an ISO 3166-1 alpha-2 code such as DE",
            ));
        }
        let address_lines = env
            .get("SELLER_ADDRESS")
            .map(|a| {
                a.split(';')
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let seller = Seller {
            party: Party {
                name: env
                    .get("SELLER_NAME")
                    .unwrap_or_else(|| "gantry".to_owned()),
                address_lines,
                postal_code: env.get("SELLER_POSTAL_CODE").unwrap_or_default(),
                city: env.get("SELLER_CITY").unwrap_or_default(),
                country,
                tax_id: env.get("SELLER_TAX_ID"),
            },
            iban: env.get("SELLER_IBAN").map(|i| i.replace(' ', "")),
            payment_terms: env.get("SELLER_PAYMENT_TERMS"),
        };
        let format = |name: &'static str, default: &str| {
            NumberFormat::parse(&env.get(name).unwrap_or_else(|| default.to_owned()))
                .map_err(|reason| ConfigError::invalid(name, reason))
        };
        let reminder_days = match env.get("BILLING_REMINDER_DAYS") {
            None => REMINDER_DAYS.to_vec(),
            Some(raw) => parse_days(&raw).ok_or_else(|| {
                ConfigError::invalid(
                    "BILLING_REMINDER_DAYS",
                    "must be days such as 0,7,14 (each 0 to 365)",
                )
            })?,
        };
        Ok(Self {
            seller,
            invoice_numbers: format("INVOICE_NUMBER_FORMAT", "INV-{YYYY}-{SEQ:4}")?,
            credit_note_numbers: format("CREDIT_NOTE_NUMBER_FORMAT", "CN-{YYYY}-{SEQ:4}")?,
            reminder_days,
            pay_base_url: env
                .get("PUBLIC_BASE_URL")
                .map(|u| u.trim().trim_end_matches('/').to_owned()),
        })
    }
}

fn parse_days(raw: &str) -> Option<Vec<u32>> {
    let mut days = raw
        .split(',')
        .map(|d| d.trim().parse::<u32>().ok().filter(|d| *d <= 365))
        .collect::<Option<Vec<u32>>>()?;
    days.sort_unstable();
    days.dedup();
    (!days.is_empty() && days.len() <= 10).then_some(days)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_bad_settings_name_the_variable() -> crate::TestResult {
        let config =
            BillingConfig::from_env(&Env::from_pairs([("SELLER_ADDRESS", "Hof 2; 3. OG ;")]))?;
        assert_eq!(config.reminder_days, [0, 7, 14]);
        assert_eq!(config.seller.party.address_lines, ["Hof 2", "3. OG"]);
        assert_eq!(config.seller.party.country, "DE");
        let config =
            BillingConfig::from_env(&Env::from_pairs([("BILLING_REMINDER_DAYS", "14, 0,0")]))?;
        assert_eq!(config.reminder_days, [0, 14]);
        for (name, value) in [
            ("SELLER_COUNTRY", "Germany"),
            ("BILLING_REMINDER_DAYS", "0,-7"),
            ("BILLING_REMINDER_DAYS", "400"),
            ("INVOICE_NUMBER_FORMAT", "INV-{YYYY}"),
            ("CREDIT_NOTE_NUMBER_FORMAT", "CN {SEQ}"),
        ] {
            let err = BillingConfig::from_env(&Env::from_pairs([(name, value)]))
                .err()
                .ok_or(value)?;
            assert!(err.to_string().contains(name), "{err}");
        }
        Ok(())
    }
}
