//! The e-invoice: a UN/CEFACT Cross Industry Invoice (CII D16B) in the Factur-X / ZUGFeRD 2
//! EN 16931 profile, the XML a buyer's software reads instead of the PDF.
//!
//! Written by hand with the small writer below: no maintained crate models CII, and a general
//! XML crate would add a dependency to escape five characters. The writer also drops the
//! characters XML 1.0 cannot carry at all (most C0 controls), which a plain escaper passes
//! through into a document no parser accepts.

use super::{Document, Kind, Line, Party, TaxRow};
use crate::payments::money::Minor;
use time::Date;

/// The EN 16931 (Factur-X "EN16931", ZUGFeRD "COMFORT") guideline.
pub const GUIDELINE: &str = "urn:cen.eu:en16931:2017";

/// The exemption text for a tax row without a rate (category E): EN 16931 requires a reason.
pub const EXEMPTION_REASON: &str = "Exempt from VAT";

const NAMESPACES: &str = concat!(
    r#"xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100" "#,
    r#"xmlns:qdt="urn:un:unece:uncefact:data:standard:QualifiedDataType:100" "#,
    r#"xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100" "#,
    r#"xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100""#,
);

/// The document as CII XML (UTF-8, with its declaration).
pub fn e_invoice_xml(doc: &Document) -> String {
    let mut w = Writer::default();
    let exponent = doc.currency.exponent();
    let amount = |m: Minor| m.to_decimal(exponent);

    w.raw(r#"<?xml version="1.0" encoding="UTF-8"?>"#);
    w.raw("\n");
    w.raw(&format!("<rsm:CrossIndustryInvoice {NAMESPACES}>"));

    w.open("rsm:ExchangedDocumentContext");
    w.open("ram:GuidelineSpecifiedDocumentContextParameter");
    w.leaf("ram:ID", GUIDELINE);
    w.close("ram:GuidelineSpecifiedDocumentContextParameter");
    w.close("rsm:ExchangedDocumentContext");

    w.open("rsm:ExchangedDocument");
    w.leaf("ram:ID", &doc.number);
    w.leaf("ram:TypeCode", type_code(&doc.kind));
    date(&mut w, "ram:IssueDateTime", doc.issue_date);
    if let Some(notes) = doc.notes.as_deref().filter(|n| !n.trim().is_empty()) {
        w.open("ram:IncludedNote");
        w.leaf("ram:Content", notes);
        w.close("ram:IncludedNote");
    }
    w.close("rsm:ExchangedDocument");

    w.open("rsm:SupplyChainTradeTransaction");
    for (index, line) in doc.lines.iter().enumerate() {
        line_item(&mut w, index + 1, line, &amount);
    }

    w.open("ram:ApplicableHeaderTradeAgreement");
    party(&mut w, "ram:SellerTradeParty", &doc.seller.party);
    party(&mut w, "ram:BuyerTradeParty", &doc.buyer);
    w.close("ram:ApplicableHeaderTradeAgreement");
    // Required, and empty: no delivery details are kept (BT-72 is optional).
    w.raw("<ram:ApplicableHeaderTradeDelivery/>");

    w.open("ram:ApplicableHeaderTradeSettlement");
    // The remittance information (BT-83): the number to quote with a transfer.
    w.leaf("ram:PaymentReference", &doc.number);
    w.leaf("ram:InvoiceCurrencyCode", doc.currency.code());
    w.open("ram:SpecifiedTradeSettlementPaymentMeans");
    match doc.seller.iban.as_deref() {
        Some(iban) => {
            // SEPA credit transfer.
            w.leaf("ram:TypeCode", "58");
            w.open("ram:PayeePartyCreditorFinancialAccount");
            w.leaf("ram:IBANID", &iban.replace(' ', ""));
            w.close("ram:PayeePartyCreditorFinancialAccount");
        }
        // Mutually defined: paid online by card or bitcoin through the invoice's payment page.
        None => w.leaf("ram:TypeCode", "ZZZ"),
    }
    w.close("ram:SpecifiedTradeSettlementPaymentMeans");
    for row in &doc.taxes {
        header_tax(&mut w, row, &amount);
    }
    let terms = doc
        .seller
        .payment_terms
        .as_deref()
        .filter(|t| !t.trim().is_empty());
    if terms.is_some() || doc.due_date.is_some() {
        w.open("ram:SpecifiedTradePaymentTerms");
        if let Some(terms) = terms {
            w.leaf("ram:Description", terms);
        }
        if let Some(due) = doc.due_date {
            date(&mut w, "ram:DueDateDateTime", due);
        }
        w.close("ram:SpecifiedTradePaymentTerms");
    }
    w.open("ram:SpecifiedTradeSettlementHeaderMonetarySummation");
    w.leaf("ram:LineTotalAmount", &amount(doc.subtotal));
    w.leaf("ram:TaxBasisTotalAmount", &amount(doc.subtotal));
    w.leaf_attr(
        "ram:TaxTotalAmount",
        ("currencyID", doc.currency.code()),
        &amount(tax_total(doc)),
    );
    w.leaf("ram:GrandTotalAmount", &amount(doc.total));
    w.leaf("ram:TotalPrepaidAmount", &amount(doc.paid));
    w.leaf(
        "ram:DuePayableAmount",
        &amount(doc.total.saturating_sub(doc.paid)),
    );
    w.close("ram:SpecifiedTradeSettlementHeaderMonetarySummation");
    if let Kind::CreditNote { invoice_number } = &doc.kind {
        w.open("ram:InvoiceReferencedDocument");
        w.leaf("ram:IssuerAssignedID", invoice_number);
        w.close("ram:InvoiceReferencedDocument");
    }
    w.close("ram:ApplicableHeaderTradeSettlement");
    w.close("rsm:SupplyChainTradeTransaction");
    w.raw("</rsm:CrossIndustryInvoice>\n");
    w.out
}

/// UNTDID 1001: 380 commercial invoice, 381 credit note.
pub fn type_code(kind: &Kind) -> &'static str {
    match kind {
        Kind::Invoice => "380",
        Kind::CreditNote { .. } => "381",
    }
}

/// The VAT category (UNCL 5305) of a rate: standard (S) above zero, zero-rated (Z) at zero,
/// exempt (E) without a rate.
pub fn category(rate: Option<&str>) -> &'static str {
    match rate {
        None => "E",
        Some(rate) if is_zero(rate) => "Z",
        Some(_) => "S",
    }
}

/// The rate to write: an exempt row's is 0, as EN 16931 requires (BR-E-05).
fn rate_text(rate: Option<&str>) -> &str {
    rate.map_or("0", str::trim)
}

fn is_zero(rate: &str) -> bool {
    let rate = rate.trim();
    !rate.is_empty() && rate.bytes().all(|b| b == b'0' || b == b'.')
}

/// The sum of the tax rows (the document's total less its subtotal, when the caller added
/// them up the same way).
pub fn tax_total(doc: &Document) -> Minor {
    doc.taxes
        .iter()
        .fold(Minor::ZERO, |sum, row| sum.saturating_add(row.amount))
}

fn line_item(w: &mut Writer, id: usize, line: &Line, amount: &impl Fn(Minor) -> String) {
    w.open("ram:IncludedSupplyChainTradeLineItem");
    w.open("ram:AssociatedDocumentLineDocument");
    w.leaf("ram:LineID", &id.to_string());
    w.close("ram:AssociatedDocumentLineDocument");
    w.open("ram:SpecifiedTradeProduct");
    w.leaf("ram:Name", &line.description);
    w.close("ram:SpecifiedTradeProduct");
    w.open("ram:SpecifiedLineTradeAgreement");
    w.open("ram:NetPriceProductTradePrice");
    w.leaf("ram:ChargeAmount", &amount(line.unit_price));
    w.close("ram:NetPriceProductTradePrice");
    w.close("ram:SpecifiedLineTradeAgreement");
    w.open("ram:SpecifiedLineTradeDelivery");
    w.leaf_attr(
        "ram:BilledQuantity",
        ("unitCode", "C62"),
        line.quantity.trim(),
    );
    w.close("ram:SpecifiedLineTradeDelivery");
    w.open("ram:SpecifiedLineTradeSettlement");
    w.open("ram:ApplicableTradeTax");
    w.leaf("ram:TypeCode", "VAT");
    w.leaf("ram:CategoryCode", category(line.tax_rate.as_deref()));
    w.leaf(
        "ram:RateApplicablePercent",
        rate_text(line.tax_rate.as_deref()),
    );
    w.close("ram:ApplicableTradeTax");
    w.open("ram:SpecifiedTradeSettlementLineMonetarySummation");
    w.leaf("ram:LineTotalAmount", &amount(line.total));
    w.close("ram:SpecifiedTradeSettlementLineMonetarySummation");
    w.close("ram:SpecifiedLineTradeSettlement");
    w.close("ram:IncludedSupplyChainTradeLineItem");
}

fn header_tax(w: &mut Writer, row: &TaxRow, amount: &impl Fn(Minor) -> String) {
    let rate = row.rate.as_deref();
    w.open("ram:ApplicableTradeTax");
    w.leaf("ram:CalculatedAmount", &amount(row.amount));
    w.leaf("ram:TypeCode", "VAT");
    if rate.is_none() {
        w.leaf("ram:ExemptionReason", EXEMPTION_REASON);
    }
    w.leaf("ram:BasisAmount", &amount(row.base));
    w.leaf("ram:CategoryCode", category(rate));
    w.leaf("ram:RateApplicablePercent", rate_text(rate));
    w.close("ram:ApplicableTradeTax");
}

fn party(w: &mut Writer, element: &str, party: &Party) {
    w.open(element);
    w.leaf("ram:Name", &party.name);
    w.open("ram:PostalTradeAddress");
    if !party.postal_code.trim().is_empty() {
        w.leaf("ram:PostcodeCode", &party.postal_code);
    }
    // CII has three address lines: any further ones join the third.
    let lines: Vec<&str> = party
        .address_lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty())
        .collect();
    let third = lines
        .get(2..)
        .filter(|rest| !rest.is_empty())
        .map(|rest| rest.join(", "));
    for (element, text) in [
        ("ram:LineOne", lines.first().copied()),
        ("ram:LineTwo", lines.get(1).copied()),
        ("ram:LineThree", third.as_deref()),
    ] {
        if let Some(text) = text {
            w.leaf(element, text);
        }
    }
    if !party.city.trim().is_empty() {
        w.leaf("ram:CityName", &party.city);
    }
    w.leaf("ram:CountryID", party.country.trim());
    w.close("ram:PostalTradeAddress");
    if let Some(tax_id) = party.tax_id.as_deref().filter(|t| !t.trim().is_empty()) {
        w.open("ram:SpecifiedTaxRegistration");
        w.leaf_attr("ram:ID", ("schemeID", "VA"), tax_id.trim());
        w.close("ram:SpecifiedTaxRegistration");
    }
    w.close(element);
}

/// A date in format 102 (`YYYYMMDD`).
fn date(w: &mut Writer, element: &str, date: Date) {
    w.open(element);
    w.leaf_attr(
        "udt:DateTimeString",
        ("format", "102"),
        &format!(
            "{:04}{:02}{:02}",
            date.year(),
            u8::from(date.month()),
            date.day()
        ),
    );
    w.close(element);
}

/// Appends elements to a string; text and attribute values go through [`escape`].
#[derive(Default)]
struct Writer {
    out: String,
}

impl Writer {
    fn raw(&mut self, text: &str) {
        self.out.push_str(text);
    }

    fn open(&mut self, name: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push('>');
    }

    fn close(&mut self, name: &str) {
        self.out.push_str("</");
        self.out.push_str(name);
        self.out.push('>');
    }

    fn leaf(&mut self, name: &str, text: &str) {
        self.open(name);
        escape(&mut self.out, text);
        self.close(name);
    }

    fn leaf_attr(&mut self, name: &str, (key, value): (&str, &str), text: &str) {
        self.out.push('<');
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(key);
        self.out.push_str("=\"");
        escape(&mut self.out, value);
        self.out.push_str("\">");
        escape(&mut self.out, text);
        self.close(name);
    }
}

/// `text` as XML character data or attribute value: the five markup characters as entities,
/// tab, newline and carriage return as character references (kept exactly, even in
/// attributes), and the characters XML 1.0 forbids left out.
fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            c if allowed(c) => out.push(c),
            _ => {}
        }
    }
}

/// XML 1.0's `Char` production (less tab, newline and carriage return, handled above).
fn allowed(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::payments::billing::document::Seller;
    use crate::payments::billing::document::tests::{
        TempFile, external_tool, facturx_python, run_python, sample,
    };

    fn count(haystack: &str, needle: &str) -> usize {
        haystack.matches(needle).count()
    }

    /// The text of every `<name>` element, in order.
    fn texts(xml: &str, name: &str) -> Vec<String> {
        let open = format!("<{name}");
        let close = format!("</{name}>");
        let mut found = Vec::new();
        let mut rest = xml;
        while let Some(at) = rest.find(&open) {
            rest = &rest[at + open.len()..];
            if !rest.starts_with(['>', ' ']) {
                continue;
            }
            let Some(gt) = rest.find('>') else { break };
            let Some(end) = rest.find(&close) else { break };
            found.push(rest[gt + 1..end].to_owned());
            rest = &rest[end..];
        }
        found
    }

    #[test]
    fn totals_are_the_documents() {
        let doc = sample();
        let xml = e_invoice_xml(&doc);
        let amount = |m: Minor| m.to_decimal(2);
        let summation = &xml[xml
            .find("<ram:SpecifiedTradeSettlementHeaderMonetarySummation>")
            .unwrap_or(0)..];
        assert_eq!(
            texts(summation, "ram:LineTotalAmount")[0],
            amount(doc.subtotal)
        );
        assert_eq!(
            texts(summation, "ram:TaxBasisTotalAmount"),
            [amount(doc.subtotal)]
        );
        assert!(summation.contains(&format!(
            r#"<ram:TaxTotalAmount currencyID="EUR">{}</ram:TaxTotalAmount>"#,
            amount(tax_total(&doc))
        )));
        assert_eq!(texts(&xml, "ram:GrandTotalAmount"), [amount(doc.total)]);
        assert_eq!(texts(&xml, "ram:TotalPrepaidAmount"), [amount(doc.paid)]);
        assert_eq!(
            texts(&xml, "ram:DuePayableAmount"),
            [amount(doc.total.saturating_sub(doc.paid))]
        );
        assert_eq!(texts(&xml, "ram:DuePayableAmount"), ["86.35"]);
        assert_eq!(texts(&xml, "ram:InvoiceCurrencyCode"), ["EUR"]);
        // One line item per line, its total and price in major units.
        assert_eq!(
            count(&xml, "<ram:IncludedSupplyChainTradeLineItem>"),
            doc.lines.len()
        );
        assert_eq!(texts(&xml, "ram:ChargeAmount")[0], "10.00");
        assert!(xml.contains(r#"<ram:BilledQuantity unitCode="C62">1.5</ram:BilledQuantity>"#));
        assert_eq!(texts(&xml, "ram:TypeCode")[0], "380");
        assert!(xml.contains("<udt:DateTimeString format=\"102\">20270115</udt:DateTimeString>"));
        assert!(xml.contains("<ram:DueDateDateTime><udt:DateTimeString format=\"102\">20270129<"));
        assert!(xml.contains(r#"<ram:ID schemeID="VA">DE123456789</ram:ID>"#));
        assert_eq!(texts(&xml, "ram:IBANID"), ["DE02120300000000202051"]);
        assert!(!xml.contains("InvoiceReferencedDocument"));
    }

    #[test]
    fn text_is_escaped() {
        let mut doc = sample();
        doc.buyer.name = r#"Smith & Sons <"Ltd"> 'x'"#.into();
        doc.lines[0].description = "a<b&c\u{1}d\te".into();
        doc.notes = Some("1 < 2 && \"3\" > 2".into());
        let xml = e_invoice_xml(&doc);
        assert!(xml.contains(
            "<ram:Name>Smith &amp; Sons &lt;&quot;Ltd&quot;&gt; &apos;x&apos;</ram:Name>"
        ));
        assert!(
            xml.contains("<ram:Name>a&lt;b&amp;cd&#9;e</ram:Name>"),
            "a control character is dropped"
        );
        assert!(
            xml.contains("<ram:Content>1 &lt; 2 &amp;&amp; &quot;3&quot; &gt; 2</ram:Content>")
        );
        assert!(!xml.contains("Smith & Sons"));
    }

    #[test]
    fn a_credit_note_is_381_and_names_its_invoice() {
        let mut doc = sample();
        doc.kind = Kind::CreditNote {
            invoice_number: "INV-2027-0001".into(),
        };
        doc.number = "CN-2027-0001".into();
        doc.paid = Minor::ZERO;
        let xml = e_invoice_xml(&doc);
        assert_eq!(texts(&xml, "ram:TypeCode")[0], "381");
        assert!(xml.contains(
            "<ram:InvoiceReferencedDocument><ram:IssuerAssignedID>INV-2027-0001</ram:IssuerAssignedID></ram:InvoiceReferencedDocument>"
        ));
        assert_eq!(
            texts(&xml, "ram:DuePayableAmount"),
            [doc.total.to_decimal(2)]
        );
        // Positive amounts: the type code carries the sign.
        assert!(!xml.contains(">-"));
    }

    #[test]
    fn tax_categories_follow_the_rate() {
        assert_eq!(category(Some("19")), "S");
        assert_eq!(category(Some("7.7")), "S");
        assert_eq!(category(Some("0")), "Z");
        assert_eq!(category(Some("0.00")), "Z");
        assert_eq!(category(None), "E");
        let doc = sample();
        let xml = e_invoice_xml(&doc);
        let settlement = &xml[xml
            .find("<ram:ApplicableHeaderTradeSettlement>")
            .unwrap_or(0)..];
        // One header tax per row, in order, with its basis and amount.
        assert_eq!(texts(settlement, "ram:CategoryCode"), ["S", "Z", "E"]);
        assert_eq!(
            texts(settlement, "ram:RateApplicablePercent"),
            ["19", "0", "0"]
        );
        assert_eq!(
            texts(settlement, "ram:BasisAmount"),
            ["65.00", "5.00", "14.00"]
        );
        assert_eq!(
            texts(settlement, "ram:CalculatedAmount"),
            ["12.35", "0.00", "0.00"]
        );
        assert_eq!(texts(settlement, "ram:ExemptionReason"), [EXEMPTION_REASON]);
        // And one per line.
        let lines = &xml[..xml
            .find("<ram:ApplicableHeaderTradeAgreement>")
            .unwrap_or(0)];
        assert_eq!(texts(lines, "ram:CategoryCode"), ["S", "S", "Z", "E"]);
    }

    #[test]
    fn optional_parts_are_left_out() {
        let mut doc = sample();
        doc.seller = Seller {
            iban: None,
            payment_terms: None,
            ..doc.seller
        };
        doc.due_date = None;
        doc.notes = None;
        doc.buyer.tax_id = None;
        doc.lines.clear();
        let xml = e_invoice_xml(&doc);
        assert!(xml.contains("<ram:SpecifiedTradeSettlementPaymentMeans><ram:TypeCode>ZZZ</ram:TypeCode></ram:SpecifiedTradeSettlementPaymentMeans>"));
        assert!(!xml.contains("LineThree"), "no empty third address line");
        for absent in [
            "SpecifiedTradePaymentTerms",
            "IncludedNote",
            "IBANID",
            "LineItem",
        ] {
            assert!(!xml.contains(absent), "{absent}");
        }
        assert_eq!(
            count(&xml, "SpecifiedTaxRegistration>"),
            2,
            "the seller's only"
        );
    }

    /// The factur-x library's XSD check, and its profile detection from the guideline id.
    const CHECK_XSD: &str = r#"
import sys, facturx
from lxml import etree
xml = open(sys.argv[1], "rb").read()
facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931")
print(facturx.get_level(etree.fromstring(xml), "factur-x"))
"#;

    #[test]
    fn invoices_and_credit_notes_are_valid_against_the_en16931_xsd() {
        let Some(python) = facturx_python() else {
            return;
        };
        let mut credit_note = sample();
        credit_note.kind = Kind::CreditNote {
            invoice_number: "INV-2027-0001".into(),
        };
        credit_note.paid = Minor::ZERO;
        let mut bare = sample();
        bare.seller.iban = None;
        bare.seller.payment_terms = None;
        bare.due_date = None;
        bare.notes = None;
        bare.buyer.tax_id = None;
        bare.buyer.address_lines.clear();
        bare.lines.truncate(1);
        bare.lines[0].description = "Ελληνικά & Кириллица <ok>".into();
        bare.subtotal = Minor::new(1500);
        bare.taxes.truncate(1);
        bare.taxes[0].base = Minor::new(1500);
        bare.taxes[0].amount = Minor::new(285);
        bare.total = Minor::new(1785);
        bare.paid = Minor::ZERO;
        for doc in [sample(), credit_note, bare] {
            let file = TempFile::new("xml", e_invoice_xml(&doc).as_bytes());
            let level = run_python(&python, CHECK_XSD, &[&file.0]);
            assert_eq!(
                String::from_utf8_lossy(&level).trim(),
                "en16931",
                "{}",
                doc.number
            );
            // And the business rules (BR-*): the EN 16931 schematron, which factur-x ships
            // compiled to XSLT 2, run with Saxon.
            if let Some(saxon) = saxon_jar() {
                let saxon = std::path::Path::new(&saxon);
                let failed = run_python(&python, SCHEMATRON, &[&file.0, saxon]);
                assert_eq!(
                    String::from_utf8_lossy(&failed).trim(),
                    "",
                    "{}",
                    doc.number
                );
            }
        }
    }

    /// Saxon HE's jar: `SAXON_JAR`, set by `scripts/test` (Debian's libsaxonhe-java).
    fn saxon_jar() -> Option<String> {
        let jar = std::env::var("SAXON_JAR").ok().filter(|p| !p.is_empty());
        external_tool("SAXON_JAR (Saxon HE, for the EN 16931 schematron)", jar)
    }

    /// Runs the schematron with Saxon; prints each failed assertion that is not a warning.
    const SCHEMATRON: &str = r#"
import sys, subprocess, importlib.resources, facturx
from lxml import etree
xslt = importlib.resources.files(facturx).joinpath(
    "xsd_and_schematron/facturx-en16931/FACTUR-X_EN16931.xslt")
svrl = subprocess.run(["java", "-jar", sys.argv[2], "-s:" + sys.argv[1], "-xsl:" + str(xslt)],
                      check=True, capture_output=True).stdout
ns = {"svrl": "http://purl.oclc.org/dsdl/svrl"}
for failed in etree.fromstring(svrl).iterfind(".//svrl:failed-assert", ns):
    if failed.get("flag") != "warning":
        print(failed.get("id"), " ".join(failed.findtext("svrl:text", "", ns).split()))
"#;
}
