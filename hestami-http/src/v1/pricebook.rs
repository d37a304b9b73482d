//! `pricebook/v1`: the organization's items and their revisions, the markup tiers and tax rates,
//! the batch import, and `quote`, which prices lines through the same path as estimates and
//! invoices without saving anything.
//!
//! The item, tier, tax and quote shapes are the shared money wire types of [`super::money`];
//! this module adds the procedure inputs and the import's row and report shapes.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::ids::{CustomerId, PricebookItemId, PropertyId};
use hestami_core::org::Currency;
use hestami_core::pricebook::PricebookItem;
use hestami_core::pricebook::import::{ImportRow, parse_batch};
use hestami_store::app::PageRequest;
use hestami_store::app::pricebook::{
    ArchiveItem, ImportBatch, ImportOutcome, ImportReport, ItemFilter, PricebookCommand,
    PricingSettings, SetMarkupTiers, SetTaxRates, UpdateItem,
};

use super::Empty;
use super::money::{
    DiscountInput, ItemDetailsInput, ItemDraftInput, ItemKindDto, MarkupTierDto, MarkupTierInput,
    PricebookItemDto, QuoteDto, QuoteLineInput, TaxRateDto, TaxRateInput, core_problems,
    item_draft, markup_tiers, quote_request, tax_rates,
};
use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, mutation, mutation_in, query, validate};

// ---------------------------------------------------------------------------------------------
// Inputs.
// ---------------------------------------------------------------------------------------------

/// `pricebook/v1/createItem`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateItemInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The name shown on estimates and invoices (unique per kind; a material is unique by SKU).
    pub name: String,
    /// More detail, for the office.
    #[serde(default)]
    pub description: Option<String>,
    /// A category to group and filter by, such as `Water heaters`.
    #[serde(default)]
    pub category: Option<String>,
    /// The kind and its prices.
    pub details: ItemDetailsInput,
}

/// `pricebook/v1/updateItem`: the item's next revision (its kind cannot change).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateItemInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which item.
    pub item_id: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the item is at this revision.
    #[serde(default)]
    pub expected_revision: Option<u32>,
    /// The name shown on estimates and invoices.
    pub name: String,
    /// More detail, for the office.
    #[serde(default)]
    pub description: Option<String>,
    /// A category to group and filter by.
    #[serde(default)]
    pub category: Option<String>,
    /// The kind (the item's own) and its prices.
    pub details: ItemDetailsInput,
}

/// `pricebook/v1/archiveItem`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArchiveItemInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which item.
    pub item_id: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the item is at this revision.
    #[serde(default)]
    pub expected_revision: Option<u32>,
}

/// `pricebook/v1/getItem`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetItemInput {
    /// Which item.
    pub item_id: Uuid,
    /// An earlier revision; absent for the current one.
    #[serde(default)]
    pub revision: Option<u32>,
}

/// `pricebook/v1/listItems`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListItemsInput {
    /// Words that must all appear in the name, description, category or SKU (any case).
    #[serde(default)]
    pub query: Option<String>,
    /// Only this kind.
    #[serde(default)]
    pub kind: Option<ItemKindDto>,
    /// Only this category (exact).
    #[serde(default)]
    pub category: Option<String>,
    /// Include archived items (default false).
    #[serde(default)]
    pub include_archived: Option<bool>,
    /// Page size, 1 to 200 (default 50).
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `pricebook/v1/setMarkupTiers`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetMarkupTiersInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The whole table, contiguous from 0, the last tier open-ended (it replaces the current
    /// one).
    pub tiers: Vec<MarkupTierInput>,
    /// Refuse with `VERSION_CONFLICT` unless the settings are at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// `pricebook/v1/setTaxRates`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetTaxRatesInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The whole table (it replaces the current one).
    pub rates: Vec<TaxRateInput>,
    /// Refuse with `VERSION_CONFLICT` unless the settings are at this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
}

/// `pricebook/v1/quote`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QuoteInput {
    /// With `propertyId`: the customer whose property's taxes apply.
    #[serde(default)]
    pub customer_id: Option<Uuid>,
    /// With `customerId`: the property whose jurisdiction decides the taxes; without both, no
    /// tax applies.
    #[serde(default)]
    pub property_id: Option<Uuid>,
    /// The lines to price.
    pub lines: Vec<QuoteLineInput>,
    /// A discount taken before tax.
    #[serde(default)]
    pub discount: Option<DiscountInput>,
}

/// One row of an import: every column as text, as in the CSV file. Empty cells count as absent;
/// a cell given for a kind that does not use it is refused.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportRowInput {
    /// service, material, labor or equipment (any case); required.
    #[serde(default)]
    pub kind: Option<String>,
    /// The item's name; required.
    #[serde(default)]
    pub name: Option<String>,
    /// More detail; any kind.
    #[serde(default)]
    pub description: Option<String>,
    /// A category; any kind.
    #[serde(default)]
    pub category: Option<String>,
    /// Material: the stock-keeping unit (required).
    #[serde(default)]
    pub sku: Option<String>,
    /// Material and equipment: the unit it is sold or rented by (required).
    #[serde(default)]
    pub unit: Option<String>,
    /// Material: what one unit costs (required).
    #[serde(default)]
    pub cost: Option<String>,
    /// Service: the flat price (required). Material: an explicit selling price (then no
    /// `markupPercent`). Equipment: the rate per unit (required).
    #[serde(default)]
    pub price: Option<String>,
    /// Material: its own markup on cost; with neither `price` nor `markupPercent` the material
    /// is priced by the markup tiers.
    #[serde(default)]
    pub markup_percent: Option<String>,
    /// Service: the estimated labour hours (default 0).
    #[serde(default)]
    pub labor_hours: Option<String>,
    /// Service and labour: the trade (required).
    #[serde(default)]
    pub trade: Option<String>,
    /// Labour: `level:rate` pairs separated by `;`, such as `1:85.00;2:95` (required).
    #[serde(default)]
    pub rates: Option<String>,
    /// Labour: the overtime multiplier (default `1.5`).
    #[serde(default)]
    pub overtime_multiplier: Option<String>,
    /// Labour: the after-hours multiplier (default `2`).
    #[serde(default)]
    pub after_hours_multiplier: Option<String>,
}

impl From<ImportRowInput> for ImportRow {
    fn from(r: ImportRowInput) -> Self {
        Self {
            kind: r.kind,
            name: r.name,
            description: r.description,
            category: r.category,
            sku: r.sku,
            unit: r.unit,
            cost: r.cost,
            price: r.price,
            markup_percent: r.markup_percent,
            labor_hours: r.labor_hours,
            trade: r.trade,
            rates: r.rates,
            overtime_multiplier: r.overtime_multiplier,
            after_hours_multiplier: r.after_hours_multiplier,
        }
    }
}

/// `pricebook/v1/importBatch`: 1 to 1,000 rows, applied all or nothing. A row whose item exists
/// (a material by SKU, another kind by name) makes its next revision, or leaves it unchanged.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportBatchInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The rows; problems are reported as `rows[3].price`.
    pub rows: Vec<ImportRowInput>,
}

mutating!(
    CreateItemInput,
    UpdateItemInput,
    ArchiveItemInput,
    SetMarkupTiersInput,
    SetTaxRatesInput,
    ImportBatchInput
);

// ---------------------------------------------------------------------------------------------
// Outputs.
// ---------------------------------------------------------------------------------------------

/// A page of pricebook items (their current revisions).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PricebookItemPage {
    /// The items, in creation order.
    pub items: Vec<PricebookItemDto>,
    /// The cursor of the next page, or null on the last.
    pub next_cursor: Option<String>,
}

/// The organization's pricing tables.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PricingSettingsDto {
    /// 0 until first set, +1 on each change of either table.
    pub version: i64,
    /// The tiered markup for materials priced by tier, lowest first.
    pub markup_tiers: Vec<MarkupTierDto>,
    /// The sales taxes by jurisdiction.
    pub tax_rates: Vec<TaxRateDto>,
}

impl From<PricingSettings> for PricingSettingsDto {
    fn from(s: PricingSettings) -> Self {
        Self {
            version: s.version,
            markup_tiers: s.markup_tiers.tiers().iter().map(Into::into).collect(),
            tax_rates: s.tax_rates.rates().iter().map(Into::into).collect(),
        }
    }
}

/// What an import did with one row.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportedRowDto {
    /// The item.
    pub item_id: Uuid,
    /// Its current revision.
    pub revision: u32,
    /// created, updated or unchanged.
    pub outcome: String,
}

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportReportDto {
    /// New items.
    pub created: u32,
    /// Items given a new revision.
    pub updated: u32,
    /// Items already as given.
    pub unchanged: u32,
    /// Each row, in order.
    pub rows: Vec<ImportedRowDto>,
}

impl From<ImportReport> for ImportReportDto {
    fn from(r: ImportReport) -> Self {
        Self {
            created: r.created,
            updated: r.updated,
            unchanged: r.unchanged,
            rows: r
                .rows
                .into_iter()
                .map(|row| ImportedRowDto {
                    item_id: row.item_id.as_uuid(),
                    revision: row.revision,
                    outcome: match row.outcome {
                        ImportOutcome::Created => "created",
                        ImportOutcome::Updated => "updated",
                        ImportOutcome::Unchanged => "unchanged",
                    }
                    .to_owned(),
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Conversions.
// ---------------------------------------------------------------------------------------------

fn convert_create(i: CreateItemInput, currency: Currency) -> Result<PricebookCommand, ApiError> {
    let draft = ItemDraftInput {
        name: i.name,
        description: i.description,
        category: i.category,
        details: i.details,
    };
    validate(|v| item_draft(v, "", draft, currency).map(PricebookCommand::CreateItem))
}

fn convert_update(i: UpdateItemInput, currency: Currency) -> Result<PricebookCommand, ApiError> {
    // A client that does not know the trip-fee mark does not clear it.
    let keep_trip_fee = i.details.trip_fee.is_none();
    let draft = ItemDraftInput {
        name: i.name,
        description: i.description,
        category: i.category,
        details: i.details,
    };
    validate(|v| {
        item_draft(v, "", draft, currency).map(|draft| {
            PricebookCommand::UpdateItem(UpdateItem {
                item_id: PricebookItemId::from_uuid(i.item_id),
                draft,
                expected_revision: i.expected_revision,
                keep_trip_fee,
            })
        })
    })
}

fn convert_archive(i: ArchiveItemInput) -> Result<PricebookCommand, ApiError> {
    Ok(PricebookCommand::ArchiveItem(ArchiveItem {
        item_id: PricebookItemId::from_uuid(i.item_id),
        expected_revision: i.expected_revision,
    }))
}

fn convert_tiers(i: SetMarkupTiersInput) -> Result<PricebookCommand, ApiError> {
    validate(|v| {
        markup_tiers(v, i.tiers).map(|tiers| {
            PricebookCommand::SetMarkupTiers(SetMarkupTiers {
                tiers,
                expected_version: i.expected_version,
            })
        })
    })
}

fn convert_taxes(i: SetTaxRatesInput) -> Result<PricebookCommand, ApiError> {
    validate(|v| {
        tax_rates(v, i.rates).map(|rates| {
            PricebookCommand::SetTaxRates(SetTaxRates {
                rates,
                expected_version: i.expected_version,
            })
        })
    })
}

fn convert_import(i: ImportBatchInput, currency: Currency) -> Result<PricebookCommand, ApiError> {
    let rows: Vec<ImportRow> = i.rows.into_iter().map(Into::into).collect();
    validate(|v| match parse_batch(&rows, currency) {
        Ok(rows) => Some(PricebookCommand::ImportBatch(ImportBatch { rows })),
        Err(problems) => {
            core_problems(v, "", problems);
            None
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Reads.
// ---------------------------------------------------------------------------------------------

async fn get_item(ctx: Ctx, i: GetItemInput) -> Result<PricebookItemDto, ApiError> {
    Ok(ctx
        .services
        .pricebook_get_item(
            ctx.caller()?,
            PricebookItemId::from_uuid(i.item_id),
            i.revision,
        )
        .await?
        .into())
}

async fn list_items(ctx: Ctx, i: ListItemsInput) -> Result<PricebookItemPage, ApiError> {
    let page = PageRequest::parse(i.limit, i.cursor.as_deref())?;
    let filter = ItemFilter {
        query: i.query,
        kind: i.kind.map(Into::into),
        category: i.category,
        include_archived: i.include_archived.unwrap_or(false),
    };
    let page = ctx
        .services
        .pricebook_list_items(ctx.caller()?, filter, page)
        .await?;
    Ok(PricebookItemPage {
        items: page.items.iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    })
}

async fn get_settings(ctx: Ctx, _: Empty) -> Result<PricingSettingsDto, ApiError> {
    Ok(ctx.services.pricebook_settings(ctx.caller()?).await?.into())
}

async fn quote(ctx: Ctx, i: QuoteInput) -> Result<QuoteDto, ApiError> {
    let currency = ctx.services.org_get(ctx.caller()?).await?.currency;
    let (at, request) = validate(|v| {
        let at = match (i.customer_id, i.property_id) {
            (Some(customer), Some(property)) => Some(Some((
                CustomerId::from_uuid(customer),
                PropertyId::from_uuid(property),
            ))),
            (None, None) => Some(None),
            (customer, _) => {
                let missing = if customer.is_none() {
                    "customerId"
                } else {
                    "propertyId"
                };
                v.fail(
                    missing,
                    "required",
                    "a quote names both a customer and one of its properties, or neither",
                );
                None
            }
        };
        let request = quote_request(v, "", i.lines, i.discount.as_ref(), currency);
        Some((at?, request?))
    })?;
    Ok(ctx
        .services
        .pricebook_quote(ctx.caller()?, at, request)
        .await?
        .into())
}

fn name(name: &'static str, summary: &'static str, errors: &'static [&'static str]) -> Name {
    Name {
        namespace: "pricebook",
        version: "v1",
        name,
        summary,
        errors,
    }
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        mutation_in(
            name(
                "createItem",
                "Add an item to the pricebook (revision 1)",
                &["PRICEBOOK_KEY_TAKEN", "TRADE_UNKNOWN"],
            ),
            convert_create,
            <PricebookItemDto as From<PricebookItem>>::from,
        ),
        mutation_in(
            name(
                "updateItem",
                "Make an item's next revision (earlier revisions stay readable; priced lines keep theirs)",
                &[
                    "NOT_FOUND",
                    "VERSION_CONFLICT",
                    "PRICEBOOK_KEY_TAKEN",
                    "TRADE_UNKNOWN",
                ],
            ),
            convert_update,
            <PricebookItemDto as From<PricebookItem>>::from,
        ),
        mutation(
            name(
                "archiveItem",
                "Archive an item: kept for history, no longer quoted",
                &["NOT_FOUND", "VERSION_CONFLICT", "ITEM_ARCHIVED"],
            ),
            convert_archive,
            <PricebookItemDto as From<PricebookItem>>::from,
        ),
        query(
            name(
                "getItem",
                "An item's current revision, or an earlier one",
                &["NOT_FOUND"],
            ),
            get_item,
        ),
        query(
            name(
                "listItems",
                "Items, by creation, searched by words and filtered by kind or category",
                &[],
            ),
            list_items,
        ),
        mutation(
            name(
                "setMarkupTiers",
                "Replace the tiered markup on material cost",
                &["VERSION_CONFLICT"],
            ),
            convert_tiers,
            <PricingSettingsDto as From<PricingSettings>>::from,
        ),
        mutation(
            name(
                "setTaxRates",
                "Replace the sales tax rates by jurisdiction",
                &["VERSION_CONFLICT"],
            ),
            convert_taxes,
            <PricingSettingsDto as From<PricingSettings>>::from,
        ),
        query(
            name("getSettings", "The markup tiers and tax rates", &[]),
            get_settings,
        ),
        query(
            name(
                "quote",
                "Price lines with every rule, rounding and tax shown, saving nothing",
                &["NOT_FOUND"],
            ),
            quote,
        ),
        mutation_in(
            name(
                "importBatch",
                "Create or revise up to 1,000 items from rows of text, all or nothing",
                &["PRICEBOOK_KEY_TAKEN"],
            ),
            convert_import,
            <ImportReportDto as From<ImportReport>>::from,
        ),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn usd() -> Currency {
        Currency::parse("USD").expect("listed")
    }

    fn fields(e: &ApiError) -> Vec<(&str, &str)> {
        e.field_errors
            .iter()
            .map(|f| (f.field.as_str(), f.code.as_str()))
            .collect()
    }

    #[test]
    fn an_import_reports_every_row_by_its_column() {
        let input: ImportBatchInput = serde_json::from_value(json!({
            "idempotencyKey": Uuid::nil(),
            "rows": [
                { "kind": "service", "name": "Install", "price": "100", "trade": "plumbing" },
                { "kind": "service", "name": "Flush", "price": "1.2.3", "trade": "plumbing" },
                { "kind": "gadget", "name": "X" },
            ],
        }))
        .expect("well-formed");
        let err = convert_import(input, usd()).expect_err("refused");
        let got = fields(&err);
        assert_eq!(got[0], ("rows[1].price", "invalid_amount"), "{got:?}");
        assert!(
            got.iter().any(|(f, _)| f.starts_with("rows[2].kind")),
            "{got:?}"
        );
    }

    #[test]
    fn an_item_draft_at_the_top_level_reports_detail_paths() {
        let input: CreateItemInput = serde_json::from_value(json!({
            "idempotencyKey": Uuid::nil(), "name": "Install",
            "details": { "kind": "service", "price": "abc", "estimatedLaborHours": "2",
                         "trade": "plumbing" },
        }))
        .expect("well-formed");
        let err = convert_create(input, usd()).expect_err("refused");
        assert_eq!(fields(&err), vec![("details.price", "invalid_amount")]);
    }
}
