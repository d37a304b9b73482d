//! Estimates and invoices as PDF documents: what the customer receives by e-mail and what
//! `estimate/v1/pdf` and `invoice/v1/pdf` return.
//!
//! A [`Document`] is plain data (parties, facts, sections of priced lines and their totals)
//! built from the domain records by [`estimate_document`] and [`invoice_document`], and
//! [`render_pdf`] lays it out on A4 pages in the standard Helvetica (no font is embedded, so a
//! document is a few kilobytes). Every amount is printed from the record's own exact value —
//! the totals on paper are the totals in the database, to the cent.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};
use rust_decimal::Decimal;

use hestami_core::customer::{Customer, Property};
use hestami_core::estimate::Estimate;
use hestami_core::invoice::Invoice;
use hestami_core::money::Money;
use hestami_core::org::Organization;
use hestami_core::pricebook::Quote;

use crate::app::contractor::Profile;

/// A document ready to be laid out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Document {
    /// `Estimate` or `Invoice INV-000042`.
    pub title: String,
    /// The issuing organization: name, legal name, contact, tax id.
    pub from: Vec<String>,
    /// The customer and where the work is.
    pub to: Vec<String>,
    /// Dates, status, currency.
    pub facts: Vec<(String, String)>,
    /// The priced options (an estimate) or the one set of lines (an invoice).
    pub sections: Vec<Section>,
    /// Closing lines: notes, the signature captured, payments received.
    pub footer: Vec<String>,
}

/// A set of priced lines and their totals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// The option's name, when there are several.
    pub heading: Option<String>,
    /// One row per priced line.
    pub rows: Vec<Row>,
    /// Subtotal, discount, one row per tax, total.
    pub totals: Vec<(String, String)>,
}

/// One priced line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// What the customer reads.
    pub description: String,
    /// Quantity and unit.
    pub quantity: String,
    /// The exact unit price.
    pub unit_price: String,
    /// The line's total, rounded to the minor unit as the record holds it.
    pub total: String,
}

/// An amount as printed: the record's exact decimal with the currency's minor digits
/// (`1234.50`), negative for what is taken off.
pub fn amount(money: &Money) -> String {
    money.amount_text()
}

fn negative(money: &Money) -> String {
    format!("-{}", amount(money))
}

fn section(heading: Option<String>, quote: &Quote) -> Section {
    let rows = quote
        .lines
        .iter()
        .map(|line| Row {
            // A waived trip fee says what membership saved.
            description: match &line.waived {
                Some(w) => format!(
                    "{} (waived for members: {})",
                    line.description.as_str(),
                    amount(&w.unit_price)
                ),
                None => line.description.as_str().to_owned(),
            },
            quantity: match &line.unit {
                Some(unit) => format!("{} {}", line.quantity.normalize(), unit.as_str()),
                None => line.quantity.normalize().to_string(),
            },
            unit_price: amount(&line.unit_price),
            total: amount(&line.line_total),
        })
        .collect();
    let mut totals = vec![("Subtotal".to_owned(), amount(&quote.subtotal))];
    if quote.discount.amount() != Decimal::ZERO {
        totals.push(("Discount".to_owned(), negative(&quote.discount)));
    }
    if let Some(member) = &quote.member_discount {
        totals.push((
            format!(
                "Member discount {}%",
                member.rule.percent.value().normalize()
            ),
            negative(&member.amount),
        ));
    }
    for tax in &quote.tax_lines {
        totals.push((
            format!(
                "{} {}% on {}",
                tax.name.as_str(),
                tax.percent.value().normalize(),
                amount(&tax.taxable_base)
            ),
            amount(&tax.tax),
        ));
    }
    totals.push((
        format!("Total {}", quote.currency.code()),
        amount(&quote.total),
    ));
    Section {
        heading,
        rows,
        totals,
    }
}

fn from_lines(organization: &Organization, profile: &Profile) -> Vec<String> {
    let mut from = vec![organization.name.as_str().to_owned()];
    if let Some(legal) = &profile.legal_name
        && legal.as_str() != organization.name.as_str()
    {
        from.push(legal.as_str().to_owned());
    }
    if let Some(email) = &profile.contact_email {
        from.push(email.as_str().to_owned());
    }
    if let Some(phone) = &profile.contact_phone {
        from.push(phone.as_str().to_owned());
    }
    if let Some(tax_id) = &profile.tax_id {
        from.push(format!("Tax id {}", tax_id.as_str()));
    }
    from
}

fn to_lines(customer: &Customer, property: Option<&Property>) -> Vec<String> {
    let mut to = vec![customer.name.as_str().to_owned()];
    if let Some(property) = property {
        let a = &property.address;
        to.push(a.line1.as_str().to_owned());
        if let Some(line2) = &a.line2 {
            to.push(line2.as_str().to_owned());
        }
        to.push(format!(
            "{}, {} {} {}",
            a.city.as_str(),
            a.region.as_str(),
            a.postal_code.as_str(),
            a.country.as_str()
        ));
    }
    if let Some(email) = &customer.email {
        to.push(email.as_str().to_owned());
    }
    to
}

/// An estimate as the customer receives it: every option with its lines and totals, and the
/// approval with its signature once captured.
pub fn estimate_document(
    organization: &Organization,
    profile: &Profile,
    customer: &Customer,
    property: Option<&Property>,
    estimate: &Estimate,
) -> Document {
    let tz = organization.time_zone.tz();
    let several = estimate.options.len() > 1;
    let sections = estimate
        .options
        .iter()
        .enumerate()
        .map(|(k, option)| {
            let heading = several.then(|| format!("Option {}: {}", k + 1, option.name.as_str()));
            section(heading, &option.quote)
        })
        .collect();
    let mut footer = Vec::new();
    if let Some(notes) = &estimate.notes {
        footer.push(format!("Notes: {}", notes.as_str()));
    }
    if let Some(approval) = &estimate.approval {
        let option = estimate
            .options
            .iter()
            .find(|o| o.id == approval.option_id)
            .map_or("", |o| o.name.as_str());
        footer.push(format!(
            "Approved: {option}, signed by {} on {}",
            approval.signed_by.as_str(),
            approval
                .approved_at
                .with_timezone(&tz)
                .format("%Y-%m-%d %H:%M %Z")
        ));
        if let Some(signature) = &approval.signature {
            footer.push(format!("Signature: {}", signature.as_str()));
        }
        if let Some(deposit) = &approval.deposit_required {
            footer.push(format!("Deposit required: {}", amount(deposit)));
        }
    }
    Document {
        title: format!("Estimate (revision {})", estimate.revision),
        from: from_lines(organization, profile),
        to: to_lines(customer, property),
        facts: vec![
            ("Estimate".to_owned(), estimate.id.to_string()),
            (
                "Valid until".to_owned(),
                estimate
                    .valid_until
                    .with_timezone(&tz)
                    .format("%Y-%m-%d")
                    .to_string(),
            ),
            ("Status".to_owned(), estimate.status.as_str().to_owned()),
            ("Currency".to_owned(), estimate.currency.code().to_owned()),
        ],
        sections,
        footer,
    }
}

/// An invoice as the customer receives it: its lines and totals, the payments received and
/// refunded, its credit notes and write-offs, and what remains due.
pub fn invoice_document(
    organization: &Organization,
    profile: &Profile,
    customer: &Customer,
    property: Option<&Property>,
    invoice: &Invoice,
) -> Document {
    let tz = organization.time_zone.tz();
    let title = match &invoice.number {
        Some(number) => format!("Invoice {number}"),
        None => "Invoice (draft)".to_owned(),
    };
    let mut facts = Vec::new();
    if let Some(date) = invoice.issue_date {
        facts.push(("Issued".to_owned(), date.to_string()));
    }
    if let Some(date) = invoice.due_date {
        facts.push(("Due".to_owned(), date.to_string()));
    }
    facts.push(("Status".to_owned(), invoice.status.as_str().to_owned()));
    facts.push(("Currency".to_owned(), invoice.currency().code().to_owned()));
    let mut footer = Vec::new();
    for payment in &invoice.payments {
        footer.push(format!(
            "Payment received {}: {}",
            payment.received_at.with_timezone(&tz).format("%Y-%m-%d"),
            amount(&payment.amount)
        ));
    }
    for refund in &invoice.refunds {
        footer.push(format!(
            "Refunded {}: {}",
            refund.refunded_at.with_timezone(&tz).format("%Y-%m-%d"),
            amount(&refund.amount)
        ));
    }
    for note in &invoice.credit_notes {
        footer.push(format!(
            "Credit note {} of {} ({}): {}",
            note.number,
            note.issue_date,
            note.reason.as_str(),
            amount(&note.total)
        ));
    }
    for write_off in &invoice.write_offs {
        footer.push(format!(
            "Written off ({}): {}",
            write_off.reason.as_str(),
            amount(&write_off.amount)
        ));
    }
    footer.push(format!(
        "Balance due {}: {}",
        invoice.currency().code(),
        amount(&invoice.balance())
    ));
    Document {
        title,
        from: from_lines(organization, profile),
        to: to_lines(customer, property),
        facts,
        sections: vec![section(None, &invoice.quote)],
        footer,
    }
}

/// A4 in points.
const PAGE: (f32, f32) = (595.0, 842.0);
const MARGIN: f32 = 50.0;
const BODY: f32 = 10.0;
const LEADING: f32 = 14.0;
/// Right edges of the quantity, unit price and total columns.
const COLUMNS: [f32; 3] = [370.0, 460.0, 545.0];
/// The widest description before it is cut, in points.
const DESCRIPTION_WIDTH: f32 = 250.0;

/// Helvetica's advance widths (per 1000 units of the font size) for what documents print;
/// enough to right-align amounts and cut long descriptions.
fn char_width(c: char) -> f32 {
    match c {
        '0'..='9' => 556.0,
        '.' | ',' | ' ' | ':' | ';' | '!' | '|' | 'i' | 'j' | 'l' | 'I' | '\'' => 278.0,
        '-' | '(' | ')' | 'f' | 't' | 'r' => 333.0,
        'm' | 'M' | 'W' => 833.0,
        'w' => 722.0,
        'A'..='Z' => 667.0,
        _ => 556.0,
    }
}

fn text_width(text: &str, size: f32) -> f32 {
    text.chars().map(char_width).sum::<f32>() * size / 1000.0
}

/// `text` in WinAnsi (the standard fonts' encoding): Latin-1 as it is, a few common
/// punctuation marks mapped, anything else as `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| match c {
            '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{ff}' => c as u8,
            '\u{2013}' => 0x96,
            '\u{2014}' => 0x97,
            '\u{2018}' => 0x91,
            '\u{2019}' => 0x92,
            '\u{201c}' => 0x93,
            '\u{201d}' => 0x94,
            '\u{2022}' => 0x95,
            '\u{20ac}' => 0x80,
            _ => b'?',
        })
        .collect()
}

fn fit(text: &str, width: f32, size: f32) -> String {
    if text_width(text, size) <= width {
        return text.to_owned();
    }
    let mut cut = String::new();
    for c in text.chars() {
        if text_width(&cut, size) + text_width("...", size) + char_width(c) * size / 1000.0 > width
        {
            break;
        }
        cut.push(c);
    }
    cut.push_str("...");
    cut
}

/// Lays out pages top to bottom.
struct Layout {
    pages: Vec<Content>,
    y: f32,
}

impl Layout {
    fn new() -> Self {
        let mut layout = Self {
            pages: Vec::new(),
            y: 0.0,
        };
        layout.new_page();
        layout
    }

    fn new_page(&mut self) {
        self.pages.push(Content::new());
        self.y = PAGE.1 - MARGIN;
    }

    /// Room for `lines` more lines, or a new page.
    fn room(&mut self, lines: usize) {
        if self.y - LEADING * (lines as f32) < MARGIN {
            self.new_page();
        }
    }

    fn page(&mut self) -> &mut Content {
        let last = self.pages.len() - 1;
        &mut self.pages[last]
    }

    fn text_at(&mut self, x: f32, text: &str, size: f32, bold: bool) {
        let y = self.y;
        let font = if bold { b"F2" as &[u8] } else { b"F1" };
        let bytes = win_ansi(text);
        self.page()
            .begin_text()
            .set_font(Name(font), size)
            .next_line(x, y)
            .show(Str(&bytes))
            .end_text();
    }

    fn right_at(&mut self, right: f32, text: &str, size: f32, bold: bool) {
        let x = right - text_width(text, size);
        self.text_at(x, text, size, bold);
    }

    fn line(&mut self, text: &str, size: f32, bold: bool) {
        self.room(1);
        self.text_at(MARGIN, text, size, bold);
        self.y -= LEADING.max(size + 4.0);
    }

    fn rule(&mut self) {
        let y = self.y + LEADING / 2.0 - 2.0;
        self.page()
            .set_line_width(0.5)
            .move_to(MARGIN, y)
            .line_to(PAGE.0 - MARGIN, y)
            .stroke();
    }

    fn gap(&mut self) {
        self.y -= LEADING / 2.0;
    }
}

/// The document as a PDF file.
pub fn render_pdf(document: &Document) -> Vec<u8> {
    let mut layout = Layout::new();
    layout.line(&document.title, 18.0, true);
    layout.gap();
    let (from, to) = (&document.from, &document.to);
    layout.room(from.len().max(to.len()) + 1);
    layout.text_at(MARGIN, "From", BODY, true);
    layout.text_at(PAGE.0 / 2.0, "To", BODY, true);
    layout.y -= LEADING;
    for k in 0..from.len().max(to.len()) {
        if let Some(line) = from.get(k) {
            layout.text_at(MARGIN, line, BODY, false);
        }
        if let Some(line) = to.get(k) {
            layout.text_at(PAGE.0 / 2.0, line, BODY, false);
        }
        layout.y -= LEADING;
    }
    layout.gap();
    for (label, value) in &document.facts {
        layout.room(1);
        layout.text_at(MARGIN, &format!("{label}:"), BODY, true);
        layout.text_at(MARGIN + 80.0, value, BODY, false);
        layout.y -= LEADING;
    }
    for section in &document.sections {
        layout.gap();
        layout.room(4);
        if let Some(heading) = &section.heading {
            layout.line(heading, 12.0, true);
        }
        layout.text_at(MARGIN, "Description", BODY, true);
        layout.right_at(COLUMNS[0], "Quantity", BODY, true);
        layout.right_at(COLUMNS[1], "Unit price", BODY, true);
        layout.right_at(COLUMNS[2], "Amount", BODY, true);
        layout.y -= LEADING;
        layout.rule();
        for row in &section.rows {
            layout.room(1);
            let description = fit(&row.description, DESCRIPTION_WIDTH, BODY);
            layout.text_at(MARGIN, &description, BODY, false);
            layout.right_at(COLUMNS[0], &row.quantity, BODY, false);
            layout.right_at(COLUMNS[1], &row.unit_price, BODY, false);
            layout.right_at(COLUMNS[2], &row.total, BODY, false);
            layout.y -= LEADING;
        }
        layout.rule();
        let last = section.totals.len().saturating_sub(1);
        for (k, (label, value)) in section.totals.iter().enumerate() {
            layout.room(1);
            let bold = k == last;
            layout.right_at(COLUMNS[1], label, BODY, bold);
            layout.right_at(COLUMNS[2], value, BODY, bold);
            layout.y -= LEADING;
        }
    }
    if !document.footer.is_empty() {
        layout.gap();
        for line in &document.footer {
            layout.line(&fit(line, PAGE.0 - 2.0 * MARGIN, BODY), BODY, false);
        }
    }

    // Objects: 1 catalog, 2 page tree, 3 and 4 the fonts, 5 the information dictionary, then a
    // page and its content stream per page.
    let (catalog, tree, regular, bold, info) = (
        Ref::new(1),
        Ref::new(2),
        Ref::new(3),
        Ref::new(4),
        Ref::new(5),
    );
    let page_refs: Vec<(Ref, Ref)> = (0..layout.pages.len() as i32)
        .map(|k| (Ref::new(6 + 2 * k), Ref::new(7 + 2 * k)))
        .collect();
    let mut pdf = Pdf::new();
    pdf.catalog(catalog).pages(tree);
    pdf.pages(tree)
        .kids(page_refs.iter().map(|(page, _)| *page))
        .count(page_refs.len() as i32);
    pdf.type1_font(regular)
        .base_font(Name(b"Helvetica"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    pdf.type1_font(bold)
        .base_font(Name(b"Helvetica-Bold"))
        .encoding_predefined(Name(b"WinAnsiEncoding"));
    let title = win_ansi(&document.title);
    pdf.document_info(info)
        .title(pdf_writer::TextStr(&String::from_utf8_lossy(&title)))
        .producer(pdf_writer::TextStr("Hestami Contractor Ops"));
    for ((page_ref, content_ref), content) in page_refs.iter().zip(layout.pages) {
        let mut page = pdf.page(*page_ref);
        page.media_box(Rect::new(0.0, 0.0, PAGE.0, PAGE.1))
            .parent(tree)
            .contents(*content_ref);
        let mut resources = page.resources();
        let mut fonts = resources.fonts();
        fonts.pair(Name(b"F1"), regular);
        fonts.pair(Name(b"F2"), bold);
        fonts.finish();
        resources.finish();
        page.finish();
        pdf.stream(*content_ref, &content.finish());
    }
    pdf.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sample(rows: usize) -> Document {
        Document {
            title: "Invoice INV-000001".into(),
            from: vec!["Ace Plumbing (Dallas)".into(), "office@ace.example".into()],
            to: vec!["Dana Díaz".into(), "1 Elm St".into()],
            facts: vec![("Due".into(), "2026-12-31".into())],
            sections: vec![Section {
                heading: None,
                rows: (0..rows)
                    .map(|k| Row {
                        description: format!(
                            "Line {k} – a very long description that goes on and on past the column"
                        ),
                        quantity: "2 each".into(),
                        unit_price: "12.345".into(),
                        total: "24.69".into(),
                    })
                    .collect(),
                totals: vec![("Total USD".into(), "1234.50".into())],
            }],
            footer: vec!["Balance due USD: 1234.50".into()],
        }
    }

    #[test]
    fn a_document_is_a_pdf_with_its_text() {
        let bytes = render_pdf(&sample(3));
        assert!(bytes.starts_with(b"%PDF-"));
        assert!(bytes.ends_with(b"%%EOF") || bytes.ends_with(b"%%EOF\n"));
        // Content streams are not compressed: the strings are there to read.
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("(1234.50)"), "{text}");
        assert!(text.contains("(Ace Plumbing (Dallas)) Tj"), "{text}");
    }

    #[test]
    fn long_documents_take_more_pages() {
        let one = render_pdf(&sample(5));
        let many = render_pdf(&sample(200));
        let pages = |b: &[u8]| {
            String::from_utf8_lossy(b).matches("/Type /Page\n").count()
                + String::from_utf8_lossy(b).matches("/Type /Page ").count()
        };
        assert!(
            pages(&many) > pages(&one),
            "{} vs {}",
            pages(&many),
            pages(&one)
        );
    }

    #[test]
    fn text_outside_win_ansi_is_replaced_not_dropped() {
        assert_eq!(win_ansi("Díaz – 5€ ✓"), b"D\xedaz \x96 5\x80 ?".to_vec());
    }
}
