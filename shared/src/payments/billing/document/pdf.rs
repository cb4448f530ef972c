//! The PDF an invoice or credit note is sent as: PDF/A-3b, one A4 page or more, that carries the
//! e-invoice XML as its associated file `factur-x.xml`, which makes it a Factur-X / ZUGFeRD
//! hybrid invoice a person can read and software can book.
//!
//! Laid out in two steps: [`layout`] places text and rules on pages (pure, so the page breaks
//! can be tested), then krilla draws them with Noto Sans, compiled in (Latin, Greek and
//! Cyrillic; Lambda has no system fonts). krilla validates PDF/A-3b as it writes: a character
//! the font lacks would be a `.notdef` glyph, which PDF/A forbids, so [`Fonts::clean`] swaps
//! such characters for `?` first. krilla cannot add an XMP extension schema, so the Factur-X
//! properties go into the metadata in an incremental update ([`xmp::add_factur_x`]).

use super::{Document, DocumentError, Kind, Party, cii};
use crate::payments::money::Minor;
use krilla::color::rgb;
use krilla::configure::{Archival, ConfigurationBuilder};
use krilla::embed::{AssociationKind, EmbeddedFile, MimeType};
use krilla::geom::{PathBuilder, Point};
use krilla::metadata::{DateTime, Metadata};
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};
use krilla::{Data, SerializeSettings};

/// The name Factur-X requires for the embedded XML.
pub const XML_NAME: &str = "factur-x.xml";

const PAGE_WIDTH: f32 = 595.28;
const PAGE_HEIGHT: f32 = 841.89;
const LEFT: f32 = 50.0;
const RIGHT: f32 = PAGE_WIDTH - 50.0;
const TOP: f32 = 60.0;
/// The lowest baseline of the content; the footer sits below it.
const BOTTOM: f32 = PAGE_HEIGHT - 70.0;
const FOOTER: f32 = PAGE_HEIGHT - 40.0;
const BODY: f32 = 9.0;
const LEADING: f32 = 13.0;
/// The table's columns: the description's right edge, then each number column's right edge.
const DESCRIPTION_END: f32 = 285.0;
const QUANTITY_END: f32 = 335.0;
const PRICE_END: f32 = 420.0;
const RATE_END: f32 = 465.0;
/// A description wraps to at most this many lines, the last cut with an ellipsis.
const MAX_DESCRIPTION_LINES: usize = 8;

/// `doc` as a PDF/A-3b with `xml` (the [`cii::e_invoice_xml`] of the same document) embedded.
pub fn pdf(doc: &Document, xml: &str) -> Result<Vec<u8>, DocumentError> {
    let fonts = Fonts::load()?;
    let pages = layout(doc, &fonts);
    let configuration = ConfigurationBuilder::new()
        .with_archival_validator(Archival::A3_B)
        .finish()
        .map_err(|e| DocumentError::Pdf(format!("{e:?}")))?;
    let settings = SerializeSettings {
        configuration,
        ..SerializeSettings::default()
    };
    let mut pdf = krilla::Document::new_with(settings);
    let date = date_time(doc.issue_date);
    // Control characters would make the XMP packet ill-formed XML.
    let plain = |text: &str| text.chars().filter(|c| !c.is_control()).collect::<String>();
    pdf.set_metadata(
        Metadata::new()
            .title(plain(&title(doc)))
            .description(plain(&format!("{} (Factur-X EN 16931)", title(doc))))
            .authors(vec![plain(&doc.seller.party.name)])
            .creator("gantry".into())
            .creation_date(date),
    );
    let embedded = pdf.embed_file(EmbeddedFile {
        path: XML_NAME.into(),
        mime_type: MimeType::new("text/xml"),
        description: Some("Factur-X / ZUGFeRD e-invoice (EN 16931)".into()),
        // Factur-X: "Alternative" for the BASIC, EN 16931 and EXTENDED profiles.
        association_kind: AssociationKind::Alternative,
        data: Data::from(xml.as_bytes().to_vec()),
        modification_date: Some(date),
        compress: Some(true),
        location: None,
    });
    if embedded.is_none() {
        return Err(DocumentError::Pdf("the XML could not be embedded".into()));
    }
    let count = pages.len();
    let size = PageSettings::from_wh(PAGE_WIDTH, PAGE_HEIGHT)
        .ok_or_else(|| DocumentError::Pdf("the page size".into()))?;
    for (index, ops) in pages.iter().enumerate() {
        let mut page = pdf.start_page_with(size.clone());
        let mut surface = page.surface();
        for op in ops {
            draw(&mut surface, &fonts, op);
        }
        let footer = format!("{} · page {} of {count}", doc.number, index + 1);
        let footer = fonts.clean(&footer, false);
        draw(
            &mut surface,
            &fonts,
            &Op::Text {
                x: LEFT,
                y: FOOTER,
                size: 7.5,
                bold: false,
                text: footer,
            },
        );
        surface.finish();
        page.finish();
    }
    let bytes = pdf.finish().map_err(|e| match e {
        krilla::error::KrillaError::Validation(errors) => {
            DocumentError::Pdf(format!("PDF/A validation failed: {errors:?}"))
        }
        other => DocumentError::Pdf(other.to_string()),
    })?;
    xmp::add_factur_x(bytes)
}

/// "Invoice INV-1" or "Credit note CN-1".
pub fn title(doc: &Document) -> String {
    match doc.kind {
        Kind::Invoice => format!("Invoice {}", doc.number),
        Kind::CreditNote { .. } => format!("Credit note {}", doc.number),
    }
}

fn date_time(date: time::Date) -> DateTime {
    DateTime::new(u16::try_from(date.year()).unwrap_or(0))
        .month(u8::from(date.month()))
        .day(date.day())
        .hour(0)
        .minute(0)
        .second(0)
        .utc_offset_hour(0)
}

/// One thing drawn on a page; `y` is the text's baseline, from the page's top.
#[derive(Debug, Clone, PartialEq)]
enum Op {
    Text {
        x: f32,
        y: f32,
        size: f32,
        bold: bool,
        text: String,
    },
    Rule {
        from: f32,
        to: f32,
        y: f32,
    },
}

fn draw(surface: &mut Surface<'_>, fonts: &Fonts, op: &Op) {
    match op {
        Op::Text {
            x,
            y,
            size,
            bold,
            text,
        } => {
            if text.is_empty() {
                return;
            }
            surface.set_stroke(None);
            surface.set_fill(Some(Fill::default()));
            let font = if *bold { &fonts.bold } else { &fonts.regular };
            surface.draw_text(
                Point::from_xy(*x, *y),
                font.font.clone(),
                *size,
                text,
                false,
                TextDirection::Auto,
            );
        }
        Op::Rule { from, to, y } => {
            let mut builder = PathBuilder::new();
            builder.move_to(*from, *y);
            builder.line_to(*to, *y);
            if let Some(path) = builder.finish() {
                surface.set_fill(None);
                surface.set_stroke(Some(Stroke {
                    paint: rgb::Color::new(140, 140, 140).into(),
                    width: 0.5,
                    ..Stroke::default()
                }));
                surface.draw_path(&path);
            }
        }
    }
}

/// A face for krilla to draw with and for us to measure with.
struct Face {
    font: Font,
    metrics: rustybuzz::Face<'static>,
}

impl Face {
    fn load(data: &'static [u8]) -> Result<Self, DocumentError> {
        Ok(Self {
            font: Font::new(Data::from(data), 0).ok_or(DocumentError::Font)?,
            metrics: rustybuzz::Face::from_slice(data, 0).ok_or(DocumentError::Font)?,
        })
    }

    /// The advance of `text` at `size` points (without kerning: close enough to align by).
    fn width(&self, text: &str, size: f32) -> f32 {
        let units: u32 = text
            .chars()
            .map(|c| {
                let glyph = self.metrics.glyph_index(c).unwrap_or_default();
                u32::from(self.metrics.glyph_hor_advance(glyph).unwrap_or(0))
            })
            .sum();
        units as f32 * size / self.metrics.units_per_em().max(1) as f32
    }
}

/// Noto Sans regular and bold.
struct Fonts {
    regular: Face,
    bold: Face,
}

impl Fonts {
    fn load() -> Result<Self, DocumentError> {
        Ok(Self {
            regular: Face::load(notosans::REGULAR_TTF)?,
            bold: Face::load(notosans::BOLD_TTF)?,
        })
    }

    fn face(&self, bold: bool) -> &Face {
        if bold { &self.bold } else { &self.regular }
    }

    /// `text` as one drawable line: whitespace and controls as spaces, characters the font
    /// has no glyph for as `?`.
    fn clean(&self, text: &str, bold: bool) -> String {
        let face = &self.face(bold).metrics;
        text.chars()
            .map(|c| {
                if c.is_whitespace() || c.is_control() {
                    ' '
                } else if face.glyph_index(c).is_some() {
                    c
                } else {
                    '?'
                }
            })
            .collect()
    }

    /// `text` cleaned and broken into lines no wider than `width`: at spaces where it can,
    /// inside a word that is wider than a line by itself. Line breaks in `text` are kept.
    fn wrap(&self, text: &str, size: f32, bold: bool, width: f32) -> Vec<String> {
        let face = self.face(bold);
        let mut lines = Vec::new();
        for paragraph in text.lines() {
            let mut line = String::new();
            for word in self
                .clean(paragraph, bold)
                .split(' ')
                .filter(|w| !w.is_empty())
            {
                let candidate = if line.is_empty() {
                    word.to_owned()
                } else {
                    format!("{line} {word}")
                };
                if face.width(&candidate, size) <= width {
                    line = candidate;
                    continue;
                }
                if !line.is_empty() {
                    lines.push(std::mem::take(&mut line));
                }
                for c in word.chars() {
                    line.push(c);
                    if face.width(&line, size) > width && line.chars().count() > 1 {
                        line.pop();
                        lines.push(std::mem::replace(&mut line, c.to_string()));
                    }
                }
            }
            lines.push(line);
        }
        while lines.last().is_some_and(String::is_empty) {
            lines.pop();
        }
        lines
    }
}

/// Places the document on pages: a new page when the next block would pass [`BOTTOM`].
fn layout(doc: &Document, fonts: &Fonts) -> Vec<Vec<Op>> {
    let mut page = Pages::new(fonts);
    let exponent = doc.currency.exponent();
    let code = doc.currency.code();
    let money = |m: Minor| format!("{} {code}", m.to_decimal(exponent));

    party(&mut page, &doc.seller.party, 11.0);
    // Room for the title's capitals above its baseline.
    page.gap(LEADING + 10.0);
    for line in fonts.wrap(&title(doc), 18.0, true, RIGHT - LEFT) {
        page.need(24.0);
        page.text(LEFT, 18.0, true, &line);
        page.advance(24.0);
    }
    if let Kind::CreditNote { invoice_number } = &doc.kind {
        page.wrapped(LEFT, RIGHT, &format!("for invoice {invoice_number}"), false);
    }
    page.gap(4.0);
    page.wrapped(
        LEFT,
        RIGHT,
        &format!("Issue date: {}", doc.issue_date),
        false,
    );
    if let Some(due) = doc.due_date {
        page.wrapped(LEFT, RIGHT, &format!("Due date: {due}"), false);
    }
    page.gap(LEADING);
    page.wrapped(LEFT, RIGHT, "Bill to", true);
    party(&mut page, &doc.buyer, BODY);
    page.gap(LEADING);

    // The lines.
    let header = |page: &mut Pages<'_>| {
        // Not alone at the foot of a page: with room for the first row under it.
        page.need(18.0 + LEADING);
        page.text(LEFT, BODY, true, "Description");
        page.right(QUANTITY_END, BODY, true, "Qty");
        page.right(PRICE_END, BODY, true, &format!("Unit price ({code})"));
        page.right(RATE_END, BODY, true, "VAT");
        page.right(RIGHT, BODY, true, &format!("Total ({code})"));
        page.advance(5.0);
        page.rule(LEFT, RIGHT);
        page.advance(LEADING);
    };
    header(&mut page);
    for line in &doc.lines {
        let mut description =
            fonts.wrap(&line.description, BODY, false, DESCRIPTION_END - LEFT - 6.0);
        if description.len() > MAX_DESCRIPTION_LINES {
            description.truncate(MAX_DESCRIPTION_LINES);
            if let Some(last) = description.last_mut() {
                last.push('…');
            }
        }
        if description.is_empty() {
            description.push(String::new());
        }
        let height = LEADING * description.len() as f32;
        if page.would_break(height) {
            page.break_page();
            header(&mut page);
        }
        let rate = line
            .tax_rate
            .as_deref()
            .map_or_else(|| "exempt".to_owned(), |r| format!("{} %", r.trim()));
        page.right(QUANTITY_END, BODY, false, &line.quantity);
        page.right(
            PRICE_END,
            BODY,
            false,
            &line.unit_price.to_decimal(exponent),
        );
        page.right(RATE_END, BODY, false, &rate);
        page.right(RIGHT, BODY, false, &line.total.to_decimal(exponent));
        for text in &description {
            page.text(LEFT, BODY, false, text);
            page.advance(LEADING);
        }
    }
    page.advance(5.0 - LEADING);
    page.rule(LEFT, RIGHT);
    page.advance(LEADING + 2.0);

    // The sums, labels right-aligned against the amounts.
    let label_end = PRICE_END + 20.0;
    let sum = |page: &mut Pages<'_>, label: &str, amount: Minor, bold: bool| {
        page.need(LEADING);
        page.right(label_end, BODY, bold, label);
        page.right(RIGHT, BODY, bold, &money(amount));
        page.advance(LEADING);
    };
    sum(&mut page, "Subtotal", doc.subtotal, false);
    for row in &doc.taxes {
        let base = row.base.to_decimal(exponent);
        let label = match row.rate.as_deref() {
            Some(rate) => format!("VAT {} % on {base}", rate.trim()),
            None => format!("{} on {base}", cii::EXEMPTION_REASON),
        };
        sum(&mut page, &label, row.amount, false);
    }
    sum(&mut page, "Total", doc.total, true);
    if let Kind::Invoice = doc.kind {
        sum(&mut page, "Paid", doc.paid, false);
        sum(
            &mut page,
            "Amount due",
            doc.total.saturating_sub(doc.paid),
            true,
        );
    }
    page.gap(LEADING);

    // How to pay, and the notes.
    if let Some(terms) = doc.seller.payment_terms.as_deref() {
        page.wrapped(LEFT, RIGHT, &format!("Payment terms: {terms}"), false);
    }
    if let Some(iban) = doc.seller.iban.as_deref() {
        page.wrapped(LEFT, RIGHT, &format!("IBAN: {iban}"), false);
        page.wrapped(
            LEFT,
            RIGHT,
            &format!("Please quote {} with your payment.", doc.number),
            false,
        );
    }
    if let Some(notes) = doc.notes.as_deref().filter(|n| !n.trim().is_empty()) {
        page.gap(LEADING);
        page.wrapped(LEFT, RIGHT, "Notes", true);
        page.wrapped(LEFT, RIGHT, notes, false);
    }
    page.pages
}

/// A party's name, address and VAT number, one line each.
fn party(page: &mut Pages<'_>, party: &Party, name_size: f32) {
    for line in page.fonts.wrap(&party.name, name_size, true, RIGHT - LEFT) {
        page.need(LEADING);
        page.text(LEFT, name_size, true, &line);
        page.advance(LEADING);
    }
    let place = format!("{} {}", party.postal_code.trim(), party.city.trim());
    let lines = party
        .address_lines
        .iter()
        .map(String::as_str)
        .chain([place.trim(), party.country.trim()]);
    for line in lines.filter(|l| !l.trim().is_empty()) {
        page.wrapped(LEFT, RIGHT, line, false);
    }
    if let Some(tax_id) = party.tax_id.as_deref() {
        page.wrapped(LEFT, RIGHT, &format!("VAT ID: {tax_id}"), false);
    }
}

/// The pages laid out so far and the baseline of the next line on the last one.
struct Pages<'f> {
    fonts: &'f Fonts,
    pages: Vec<Vec<Op>>,
    y: f32,
}

impl<'f> Pages<'f> {
    fn new(fonts: &'f Fonts) -> Self {
        Self {
            fonts,
            pages: vec![Vec::new()],
            y: TOP,
        }
    }

    fn would_break(&self, height: f32) -> bool {
        self.y + height - LEADING > BOTTOM && self.y > TOP
    }

    fn break_page(&mut self) {
        self.pages.push(Vec::new());
        self.y = TOP;
    }

    /// A new page unless `height` more fits on this one.
    fn need(&mut self, height: f32) {
        if self.would_break(height) {
            self.break_page();
        }
    }

    fn advance(&mut self, by: f32) {
        self.y += by;
    }

    /// Space between blocks, dropped at the top of a page.
    fn gap(&mut self, by: f32) {
        if self.y > TOP {
            self.y += by;
        }
    }

    fn push(&mut self, op: Op) {
        if let Some(page) = self.pages.last_mut() {
            page.push(op);
        }
    }

    fn text(&mut self, x: f32, size: f32, bold: bool, text: &str) {
        let text = self.fonts.clean(text, bold);
        self.push(Op::Text {
            x,
            y: self.y,
            size,
            bold,
            text,
        });
    }

    fn right(&mut self, end: f32, size: f32, bold: bool, text: &str) {
        let text = self.fonts.clean(text, bold);
        let x = end - self.fonts.face(bold).width(&text, size);
        self.push(Op::Text {
            x,
            y: self.y,
            size,
            bold,
            text,
        });
    }

    fn rule(&mut self, from: f32, to: f32) {
        self.push(Op::Rule {
            from,
            to,
            y: self.y,
        });
    }

    /// Body text wrapped between `from` and `to`, each line on a page with room for it.
    fn wrapped(&mut self, from: f32, to: f32, text: &str, bold: bool) {
        for line in self.fonts.wrap(text, BODY, bold, to - from) {
            self.need(LEADING);
            self.text(from, BODY, bold, &line);
            self.advance(LEADING);
        }
    }
}

/// The Factur-X properties in the PDF's XMP metadata.
///
/// Factur-X requires its `fx:` properties and their PDF/A extension schema description in the
/// XMP. krilla writes the XMP itself and takes no extra schema, so the metadata is written
/// again in an incremental update: the object that holds it is redefined at the end of the
/// file, with an xref section for that one object and a trailer pointing back to krilla's.
/// PDF/A allows incremental updates. krilla writes the XMP uncompressed (PDF/A-1 requires it,
/// and krilla does so for all) and a classic xref table, which is what this relies on; a
/// change there fails the tests rather than the output.
mod xmp {
    use super::DocumentError;

    const NAMESPACE: &str = "urn:factur-x:pdfa:CrossIndustryDocument:invoice:1p0#";

    /// The Factur-X properties and the extension schema that declares them, as RDF
    /// descriptions.
    /// Factur-X 1.0 has the one document type, INVOICE, for invoices and credit notes alike.
    pub(super) fn descriptions() -> String {
        let property = |name: &str, description: &str| {
            format!(
                "<rdf:li rdf:parseType=\"Resource\"><pdfaProperty:name>{name}</pdfaProperty:name><pdfaProperty:valueType>Text</pdfaProperty:valueType><pdfaProperty:category>external</pdfaProperty:category><pdfaProperty:description>{description}</pdfaProperty:description></rdf:li>"
            )
        };
        format!(
            concat!(
                "<rdf:Description rdf:about=\"\" xmlns:fx=\"{ns}\">",
                "<fx:DocumentType>INVOICE</fx:DocumentType>",
                "<fx:DocumentFileName>{file}</fx:DocumentFileName>",
                "<fx:Version>1.0</fx:Version>",
                "<fx:ConformanceLevel>EN 16931</fx:ConformanceLevel>",
                "</rdf:Description>",
                "<rdf:Description rdf:about=\"\" ",
                "xmlns:pdfaExtension=\"http://www.aiim.org/pdfa/ns/extension/\" ",
                "xmlns:pdfaSchema=\"http://www.aiim.org/pdfa/ns/schema#\" ",
                "xmlns:pdfaProperty=\"http://www.aiim.org/pdfa/ns/property#\">",
                "<pdfaExtension:schemas><rdf:Bag><rdf:li rdf:parseType=\"Resource\">",
                "<pdfaSchema:schema>Factur-X PDFA Extension Schema</pdfaSchema:schema>",
                "<pdfaSchema:namespaceURI>{ns}</pdfaSchema:namespaceURI>",
                "<pdfaSchema:prefix>fx</pdfaSchema:prefix>",
                "<pdfaSchema:property><rdf:Seq>{p1}{p2}{p3}{p4}</rdf:Seq></pdfaSchema:property>",
                "</rdf:li></rdf:Bag></pdfaExtension:schemas>",
                "</rdf:Description>",
            ),
            ns = NAMESPACE,
            file = super::XML_NAME,
            p1 = property("DocumentFileName", "The name of the embedded XML document"),
            p2 = property(
                "DocumentType",
                "The type of the hybrid document in capital letters, e.g. INVOICE or ORDER"
            ),
            p3 = property(
                "Version",
                "The actual version of the standard applying to the embedded XML document"
            ),
            p4 = property(
                "ConformanceLevel",
                "The conformance level of the embedded XML document"
            ),
        )
    }

    fn fail(what: &str) -> DocumentError {
        DocumentError::Pdf(format!("the Factur-X metadata: {what}"))
    }

    fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).position(|w| w == needle)
    }

    fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).rposition(|w| w == needle)
    }

    /// The value after `key` in the trailer dictionary, up to the next key or its end.
    fn trailer_value<'t>(trailer: &'t str, key: &str) -> Option<&'t str> {
        let start = trailer.find(key)? + key.len();
        let rest = trailer.get(start..)?;
        let end = if rest.trim_start().starts_with('[') {
            rest.find(']')? + 1
        } else {
            // Past the space after the key: the value may itself start with `/`.
            let value = rest.len() - rest.trim_start().len() + 1;
            rest.get(value..)?
                .find(['/', '>'])
                .map_or(rest.len(), |e| e + value)
        };
        Some(rest.get(..end)?.trim()).filter(|v| !v.is_empty())
    }

    /// `pdf` with the Factur-X properties added to its XMP metadata.
    pub(super) fn add_factur_x(mut pdf: Vec<u8>) -> Result<Vec<u8>, DocumentError> {
        let packet_start = find(&pdf, b"<?xpacket begin").ok_or_else(|| fail("no XMP"))?;
        let packet_end = find(&pdf[packet_start..], b"<?xpacket end")
            .and_then(|at| {
                let at = packet_start + at;
                find(&pdf[at..], b"?>").map(|close| at + close + 2)
            })
            .ok_or_else(|| fail("the XMP does not end"))?;
        let xmp = std::str::from_utf8(&pdf[packet_start..packet_end])
            .map_err(|_| fail("the XMP is not UTF-8"))?;
        let close = xmp
            .rfind("</rdf:RDF>")
            .ok_or_else(|| fail("the XMP has no rdf:RDF"))?;
        let xmp = format!("{}{}{}", &xmp[..close], descriptions(), &xmp[close..]);

        // The object holding the XMP: "N 0 obj" before the stream's dictionary.
        let head = &pdf[..packet_start];
        let obj = rfind(head, b" 0 obj").ok_or_else(|| fail("no metadata object"))?;
        let number_start = head[..obj]
            .iter()
            .rposition(|b| !b.is_ascii_digit())
            .map_or(0, |p| p + 1);
        let number = std::str::from_utf8(&head[number_start..obj])
            .ok()
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(|| fail("the metadata object number"))?;
        if find(&head[obj..], b"/Metadata").is_none() {
            return Err(fail("the XMP is not in a /Metadata stream"));
        }

        let startxref = rfind(&pdf, b"startxref").ok_or_else(|| fail("no startxref"))?;
        let previous = std::str::from_utf8(&pdf[startxref + 9..])
            .ok()
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| fail("the startxref offset"))?;
        if !pdf.get(previous..).is_some_and(|x| x.starts_with(b"xref")) {
            return Err(fail("not a classic xref table"));
        }
        let trailer_start = rfind(&pdf, b"trailer").ok_or_else(|| fail("no trailer"))?;
        let trailer = pdf
            .get(trailer_start..startxref)
            .and_then(|t| std::str::from_utf8(t).ok())
            .ok_or_else(|| fail("the trailer is not text before startxref"))?;
        let size = trailer_value(trailer, "/Size").ok_or_else(|| fail("no /Size"))?;
        let root = trailer_value(trailer, "/Root").ok_or_else(|| fail("no /Root"))?;
        let id = trailer_value(trailer, "/ID").ok_or_else(|| fail("no /ID"))?;
        let info = trailer_value(trailer, "/Info")
            .map(|info| format!(" /Info {info}"))
            .unwrap_or_default();
        let trailer = format!("<</Size {size} /Root {root}{info} /ID {id} /Prev {previous}>>");

        if !pdf.ends_with(b"\n") {
            pdf.push(b'\n');
        }
        let offset = pdf.len();
        pdf.extend_from_slice(
            format!(
                "{number} 0 obj\n<</Type /Metadata /Subtype /XML /Length {}>>\nstream\n",
                xmp.len()
            )
            .as_bytes(),
        );
        pdf.extend_from_slice(xmp.as_bytes());
        pdf.extend_from_slice(b"\nendstream\nendobj\n");
        let xref = pdf.len();
        pdf.extend_from_slice(
            format!(
                "xref\n{number} 1\n{offset:010} 00000 n\r\ntrailer\n{trailer}\nstartxref\n{xref}\n%%EOF\n"
            )
            .as_bytes(),
        );
        Ok(pdf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payments::billing::document::Line;
    use crate::payments::billing::document::tests::{
        TempFile, external_tool, facturx_python, run_python, sample,
    };

    /// The sample with Greek and Cyrillic text in it.
    fn multilingual() -> Document {
        let mut doc = sample();
        doc.buyer.name = "Ελληνικά Ltd".into();
        doc.buyer.city = "Αθήνα".into();
        doc.lines[1].description = "Кириллица: хостинг".into();
        doc
    }

    fn texts(pages: &[Vec<Op>]) -> Vec<String> {
        pages
            .iter()
            .flatten()
            .filter_map(|op| match op {
                Op::Text { text, .. } => Some(text.clone()),
                Op::Rule { .. } => None,
            })
            .collect()
    }

    fn many_lines(count: usize) -> Document {
        let mut doc = sample();
        doc.lines = (1..=count)
            .map(|n| Line {
                description: format!("Item number {n}"),
                quantity: "1".into(),
                unit_price: Minor::new(100),
                tax_rate: Some("19".into()),
                total: Minor::new(100),
            })
            .collect();
        doc
    }

    /// pdftotext's text of `pdf`, in reading order (`-layout`).
    fn pdftotext(pdf: &[u8]) -> Option<String> {
        let found = std::process::Command::new("pdftotext")
            .arg("-v")
            .output()
            .is_ok()
            .then(|| "pdftotext".to_owned());
        let program = external_tool("pdftotext (Debian's poppler-utils)", found)?;
        let file = TempFile::new("pdf", pdf);
        let out = std::process::Command::new(program)
            .args(["-layout", "-enc", "UTF-8"])
            .arg(&file.0)
            .arg("-")
            .output()
            .expect("pdftotext runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(String::from_utf8(out.stdout).expect("UTF-8"))
    }

    #[test]
    fn the_text_is_all_there() {
        let doc = multilingual();
        let pdf = pdf(&doc, &cii::e_invoice_xml(&doc)).expect("a PDF");
        assert!(pdf.starts_with(b"%PDF-1.7"));
        // To look at it: GANTRY_INVOICE_PDF=/tmp/invoice.pdf cargo test ... the_text_is_all_there
        if let Ok(path) = std::env::var("GANTRY_INVOICE_PDF") {
            std::fs::write(path, &pdf).expect("the PDF written");
        }
        let Some(text) = pdftotext(&pdf) else {
            return;
        };
        for expected in [
            "Invoice INV-2027-0001",
            "Gantry GmbH",
            "Ελληνικά Ltd",
            "Αθήνα",
            "Кириллица: хостинг",
            "Consulting (hours)",
            "Printed manual",
            "Insurance",
            "VAT ID: DE123456789",
            "Issue date: 2027-01-15",
            "Due date: 2027-01-29",
            "96.35 EUR",
            "86.35 EUR",
            "VAT 19 % on 65.00",
            "Exempt from VAT on 14.00",
            "IBAN: DE02 1203 0000 0000 2020 51",
            "Payment terms: Payable within 14 days",
            "Thank you for your business.",
            "page 1 of 1",
        ] {
            assert!(text.contains(expected), "{expected:?} missing in:\n{text}");
        }
    }

    #[test]
    fn a_credit_note_names_its_invoice() {
        let mut doc = sample();
        doc.kind = Kind::CreditNote {
            invoice_number: "INV-2027-0001".into(),
        };
        doc.number = "CN-2027-0001".into();
        doc.paid = Minor::ZERO;
        let pages = layout(&doc, &Fonts::load().expect("fonts"));
        let texts = texts(&pages);
        assert!(texts.contains(&"Credit note CN-2027-0001".to_owned()));
        assert!(texts.contains(&"for invoice INV-2027-0001".to_owned()));
        assert!(!texts.contains(&"Amount due".to_owned()));
        let pdf = pdf(&doc, &cii::e_invoice_xml(&doc)).expect("a PDF");
        if let Some(text) = pdftotext(&pdf) {
            assert!(text.contains("Credit note CN-2027-0001"), "{text}");
            assert!(text.contains("for invoice INV-2027-0001"), "{text}");
        }
    }

    #[test]
    fn long_documents_run_onto_more_pages() {
        let fonts = Fonts::load().expect("fonts");
        assert_eq!(layout(&sample(), &fonts).len(), 1);
        let doc = many_lines(150);
        let pages = layout(&doc, &fonts);
        assert!(pages.len() >= 3, "{} pages", pages.len());
        for page in &pages {
            for op in page {
                let (Op::Text { y, .. } | Op::Rule { y, .. }) = op;
                // Rules sit a little below the baseline above them.
                assert!((TOP..=BOTTOM + 6.0).contains(y), "{op:?} off the page");
            }
        }
        // Every page of the table repeats its header.
        let headers = texts(&pages).iter().filter(|t| *t == "Description").count();
        assert_eq!(headers, pages.len() - usize::from(!table_on_last(&pages)));
        let pdf = pdf(&doc, &cii::e_invoice_xml(&doc)).expect("a PDF");
        if let Some(text) = pdftotext(&pdf) {
            assert!(text.contains("Item number 1\n") || text.contains("Item number 1 "));
            assert!(text.contains("Item number 150"), "{text}");
            assert!(text.contains(&format!("page {0} of {0}", pages.len())));
        }
    }

    fn table_on_last(pages: &[Vec<Op>]) -> bool {
        pages.last().is_some_and(|page| {
            page.iter()
                .any(|op| matches!(op, Op::Text { text, .. } if text.starts_with("Item number")))
        })
    }

    #[test]
    fn awkward_input_still_renders() {
        let mut doc = sample();
        doc.lines.clear();
        pdf(&doc, &cii::e_invoice_xml(&doc)).expect("no lines");

        let mut doc = sample();
        doc.buyer.name = "x".repeat(5_000);
        doc.buyer.address_lines = vec![String::new(), "  ".into()];
        doc.buyer.country = String::new();
        doc.lines[0].description = format!("{} {}", "word ".repeat(2_000), "y".repeat(3_000));
        doc.lines[1].description = "tab\there\nnew line\u{0}nul \u{7f} 😀 عربى \u{200b}".into();
        doc.lines[2].description = String::new();
        doc.lines[3].quantity = "99999999999999999999.999".into();
        doc.notes = Some("line\n".repeat(400));
        doc.number = "N°\u{1}<&>".into();
        doc.total = Minor::new(u128::MAX);
        let fonts = Fonts::load().expect("fonts");
        let pages = layout(&doc, &fonts);
        for text in texts(&pages) {
            assert!(!text.contains(['\t', '\n', '\u{0}', '😀']), "{text:?}");
        }
        let description = texts(&pages)
            .into_iter()
            .filter(|t| t.starts_with("word"))
            .count();
        assert!(description <= MAX_DESCRIPTION_LINES, "{description} lines");
        let pdf = pdf(&doc, &cii::e_invoice_xml(&doc)).expect("a PDF of awkward text");
        if let Some(text) = pdftotext(&pdf) {
            assert!(text.contains("tab here"), "{text}");
            assert!(text.contains(&u128::MAX.to_string()[..20]));
        }
    }

    #[test]
    fn wrapping_keeps_words_and_breaks_long_ones() {
        let fonts = Fonts::load().expect("fonts");
        let lines = fonts.wrap("alpha beta gamma delta", BODY, false, 60.0);
        assert!(lines.len() > 1);
        assert_eq!(lines.join(" "), "alpha beta gamma delta");
        let long = "z".repeat(500);
        let lines = fonts.wrap(&long, BODY, false, 100.0);
        assert!(lines.len() > 1);
        assert_eq!(lines.concat(), long);
        for line in &lines {
            assert!(fonts.regular.width(line, BODY) <= 100.0);
        }
        assert!(fonts.wrap("", BODY, false, 100.0).is_empty());
        assert_eq!(fonts.clean("a\u{1}😀b", false), "a ?b");
    }

    /// Reads the embedded XML back (factur-x's own extractor, which also checks it against
    /// the XSD), the associated file's entry, and the XMP.
    const INSPECT: &str = r#"
import sys, io, re, facturx, pypdf
pdf = open(sys.argv[1], "rb").read()
name, xml = facturx.get_facturx_xml_from_pdf(pdf, check_xsd=True)
assert name == "factur-x.xml", name
reader = pypdf.PdfReader(io.BytesIO(pdf), strict=True)
root = reader.trailer["/Root"]
spec = root["/AF"][0].get_object()
names = root["/Names"]["/EmbeddedFiles"]["/Names"]
assert names[0] == "factur-x.xml", names
assert spec["/AFRelationship"] == "/Alternative", spec
assert spec["/F"] == "factur-x.xml" and spec["/UF"] == "factur-x.xml", spec
assert spec["/EF"]["/F"].get_object()["/Subtype"] == "/text/xml", spec["/EF"]["/F"]
xmp = root["/Metadata"].get_object().get_data().decode()
for expected in ["<fx:ConformanceLevel>EN 16931</fx:ConformanceLevel>",
                 "<fx:DocumentFileName>factur-x.xml</fx:DocumentFileName>",
                 "<fx:DocumentType>INVOICE</fx:DocumentType>",
                 "<fx:Version>1.0</fx:Version>",
                 "<pdfaSchema:prefix>fx</pdfaSchema:prefix>"]:
    assert expected in xmp, expected
assert re.search(r"pdfaid:part(>|=\")3", xmp), xmp
assert re.search(r"pdfaid:conformance(>|=\")B", xmp), xmp
meta = reader.xmp_metadata
assert meta is not None
print(len(reader.pages), file=sys.stderr)
sys.stdout.buffer.write(xml)
"#;

    #[test]
    fn the_xml_is_embedded_as_factur_x() {
        let Some(python) = facturx_python() else {
            return;
        };
        for doc in [multilingual(), many_lines(80)] {
            let xml = cii::e_invoice_xml(&doc);
            let file = TempFile::new("pdf", &pdf(&doc, &xml).expect("a PDF"));
            let extracted = run_python(&python, INSPECT, &[&file.0]);
            assert_eq!(String::from_utf8_lossy(&extracted), xml);
        }
    }

    #[test]
    fn the_factur_x_metadata_is_an_incremental_update() {
        let doc = sample();
        let pdf = pdf(&doc, &cii::e_invoice_xml(&doc)).expect("a PDF");
        let text = String::from_utf8_lossy(&pdf);
        assert_eq!(text.matches("startxref").count(), 2);
        assert_eq!(text.matches("<fx:ConformanceLevel>EN 16931<").count(), 1);
        assert!(text.contains("/Prev "));
        assert!(pdf.ends_with(b"%%EOF\n"));
    }
}
