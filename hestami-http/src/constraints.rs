//! The constraints the server enforces on inputs, stated in the OpenAPI document.
//!
//! The DTOs carry wire strings and numbers; the `convert_*` functions parse them with core's
//! parsers. This pass writes what those parsers accept into the document's input schemas, from
//! the same constants (`Name::MAX_CHARS`, `money::DECIMAL_PATTERN`, `MAX_LIMIT`, …), keyed by
//! the field names the DTOs use for each wire type, so that a client generated from the document
//! does not send what the server refuses. Every input object also gets
//! `additionalProperties: false`, as every input refuses unknown fields. What JSON Schema cannot
//! say (a window's end after its start, a range of at most 31 days) is left to the
//! parsers and listed in ARCHITECTURE.md; tests here check samples at each stated boundary.

use serde_json::{Map, Value, json};
use std::collections::BTreeSet;

use hestami_core::org::TimeZone;
use hestami_core::text::{Description, Name, Phone, Reason, Summary};

/// Control characters (Unicode `Cc`) but for tab and newline, which names and descriptions may
/// hold: the class core's text types refuse.
const CONTROL: &str = "\\u0000-\\u0008\\u000B-\\u001F\\u007F-\\u009F";

/// Text of core's bounded kinds: not blank, no control characters.
fn text(max: usize) -> Value {
    json!({
        "minLength": 1,
        "maxLength": max,
        "pattern": format!("^[^{CONTROL}]*[^\\s{CONTROL}][^{CONTROL}]*$"),
    })
}

/// A trade code as `TradeCode::parse` reads it: a letter, then letters, digits, underscores,
/// spaces or hyphens (case and separators are folded), at most 40.
pub const TRADE_PATTERN: &str = "^[A-Za-z][A-Za-z0-9_ -]*$";
/// An ISO 3166-1 alpha-2 code, in either case.
pub const COUNTRY_PATTERN: &str = "^[A-Za-z]{2}$";
/// 2 to 12 letters, digits, spaces or hyphens.
pub const POSTAL_CODE_PATTERN: &str = "^[A-Za-z0-9 -]{2,12}$";
/// `HH:MM`, 00:00 to 24:00 (a shift's end).
pub const CLOCK_PATTERN: &str = "^([01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$";
/// `HH:MM`, 00:00 to 23:59 (a shift's start).
pub const START_CLOCK_PATTERN: &str = "^([01][0-9]|2[0-3]):[0-5][0-9]$";
/// `local@domain.tld` as `Email::parse` reads it: no whitespace, one `@`, a domain with a dot
/// inside it.
pub const EMAIL_PATTERN: &str = "^[^\\s@\\u0000-\\u001F\\u007F-\\u009F]+@[^\\s@.\\u0000-\\u001F\\u007F-\\u009F][^\\s@\\u0000-\\u001F\\u007F-\\u009F]*\\.[^\\s@\\u0000-\\u001F\\u007F-\\u009F]*[^\\s@.\\u0000-\\u001F\\u007F-\\u009F]$";
/// A password as `Password::parse` reads it: no control character, not only whitespace.
pub const PASSWORD_PATTERN: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*[^\\s\\u0000-\\u001F\\u007F-\\u009F][^\\u0000-\\u001F\\u007F-\\u009F]*$";
/// A page cursor as the server writes it (`nextCursor`): `c1.` and 32 hex digits.
pub const CURSOR_PATTERN: &str = "^c1\\.[0-9a-fA-F]{32}$";

/// A decimal string that is not negative.
pub const NON_NEGATIVE_PATTERN: &str = "^[0-9]+(\\.[0-9]+)?$";
/// A decimal string greater than zero: a non-zero digit before or after the point.
pub const POSITIVE_PATTERN: &str = "^[0-9]*[1-9][0-9]*(\\.[0-9]+)?$|^[0-9]+\\.[0-9]*[1-9][0-9]*$";

/// `Percent::parse`: 0 to `Percent::MAX` (1000), at most 4 decimals.
pub const PERCENT_PATTERN: &str = "^[0-9]{1,3}(\\.[0-9]{1,4})?$|^1000(\\.0{1,4})?$";
/// A tax rate or a percentage discount: 0 to 100, at most 4 decimals.
pub const PERCENT_100_PATTERN: &str = "^[0-9]{1,2}(\\.[0-9]{1,4})?$|^100(\\.0{1,4})?$";
/// A labour multiplier: 1 to 10.
pub const MULTIPLIER_PATTERN: &str = "^[1-9](\\.[0-9]+)?$|^10(\\.0+)?$";
/// A service's estimated labour hours: 0 to 10000.
pub const LABOR_HOURS_PATTERN: &str = "^[0-9]{1,4}(\\.[0-9]+)?$|^10000(\\.0+)?$";

/// An amount of money as `Money::parse` reads it and the pricebook accepts a price: not negative,
/// at most `money::MAX_SCALE` (6) decimals and at most `money::MAX_AMOUNT` (10^12); trailing
/// zeros are bounded so the whole stays within a decimal's 28 digits.
pub const MONEY_PATTERN: &str = "^[0-9]{1,12}(\\.[0-9]{1,6}0{0,10})?$|^1000000000000(\\.0{1,16})?$";
/// A line's quantity (`pricebook::quote`): more than 0, at most 1,000,000, at most 4 decimals.
pub const QUANTITY_PATTERN: &str =
    "^[1-9][0-9]{0,5}(\\.[0-9]{1,4}0{0,16})?$|^0\\.[0-9]{0,3}[1-9]0{0,16}$|^1000000(\\.0{1,16})?$";

/// A stock movement's quantity (`inventory::Quantity`): more than 0, at most 10^9, at most 4
/// decimals.
pub const STOCK_QUANTITY_PATTERN: &str = "^[1-9][0-9]{0,8}(\\.[0-9]{1,4}0{0,15})?$|^0\\.[0-9]{0,3}[1-9]0{0,16}$|^1000000000(\\.0{1,16})?$";
/// An adjustment's quantity: a decimal with at most 4 places, at most 10^9 either way.
pub const STOCK_ADJUSTMENT_PATTERN: &str =
    "^-?[0-9]{1,9}(\\.[0-9]{1,4}0{0,15})?$|^-?1000000000(\\.0{1,16})?$";

/// A reorder point's minimum or maximum (`ReorderLevel`): 0 to 10^9, at most 4 decimals.
pub const REORDER_LEVEL_PATTERN: &str =
    "^[0-9]{1,9}(\\.[0-9]{1,4}0{0,15})?$|^1000000000(\\.0{1,16})?$";

/// What a field of this name holds, wherever it appears in an input.
fn rule_for(name: &str) -> Option<Value> {
    let decimal = || json!({ "pattern": hestami_core::money::DECIMAL_PATTERN });
    Some(match name {
        "limit" => json!({ "minimum": 1, "maximum": hestami_store::app::MAX_LIMIT }),
        "after" => json!({ "minimum": 0 }),
        "withinDays" => json!({ "minimum": 1, "maximum": 365 }),
        "days" => json!({ "minimum": 1, "maximum": hestami_store::app::board::MAX_BOARD_DAYS }),
        "lookaheadDays" => {
            json!({ "minimum": 1, "maximum": hestami_store::app::board::MAX_SLOT_DAYS })
        }
        "count" => json!({ "minimum": 1, "maximum": hestami_store::app::board::MAX_SLOT_OPTIONS }),
        "estimatedMinutes" => json!({ "minimum": 1, "maximum": 1440 }),
        "timeBudgetMs" => json!({
            "minimum": crate::v1::plan::MIN_BUDGET_MS,
            "maximum": hestami_store::app::dispatch_plan::MAX_BUDGET_MS,
        }),
        "travelMinutes" | "travelKm" | "stability" => {
            json!({ "minimum": 0, "maximum": crate::v1::plan::MAX_WEIGHT })
        }
        "appointmentIds" => json!({
            "maxItems": hestami_store::app::dispatch_plan::MAX_PLAN_VISITS,
            "uniqueItems": true,
        }),
        "pins" => json!({
            "maxProperties": hestami_store::app::dispatch_plan::MAX_PLAN_VISITS,
            "propertyNames": { "format": "uuid" },
        }),
        "detourFactor" => json!({ "minimum": 1, "maximum": 3 }),
        "speedKmh" => json!({ "minimum": 5, "maximum": 130 }),
        "helperIds" => {
            json!({ "maxItems": hestami_core::appointment::MAX_HELPERS, "uniqueItems": true })
        }
        "arrivalWindows" => json!({
            "minItems": 1,
            "maxItems": hestami_core::dispatch::board::MAX_ARRIVAL_WINDOWS,
        }),
        "level" | "skillLevel" | "minSkillLevel" => json!({ "minimum": 1, "maximum": 5 }),
        "dailyCapacity" => json!({ "minimum": 1, "maximum": 100 }),
        "trade" | "trades" => json!({ "pattern": TRADE_PATTERN, "maxLength": 40 }),
        "country" => json!({ "pattern": COUNTRY_PATTERN }),
        "postalCode" | "postalCodes" => json!({ "pattern": POSTAL_CODE_PATTERN }),
        "start" => json!({ "pattern": START_CLOCK_PATTERN }),
        "end" => json!({ "pattern": CLOCK_PATTERN }),
        "email" | "contactEmail" => json!({ "pattern": EMAIL_PATTERN, "maxLength": 254 }),
        "password" => json!({
            "minLength": hestami_core::text::Password::MIN_CHARS,
            "maxLength": hestami_core::text::Password::MAX_CHARS,
            "pattern": PASSWORD_PATTERN,
        }),
        "deviceName" => text(Name::MAX_CHARS),
        "refreshToken" | "inviteCode" => {
            json!({ "minLength": 1, "maxLength": crate::v1::auth::MAX_SECRET_CHARS })
        }
        "cursor" => json!({ "pattern": CURSOR_PATTERN }),
        "items" => json!({ "maxItems": crate::v1::sync::MAX_PUSH_ITEMS }),
        "since" => json!({ "pattern": crate::v1::sync::SYNC_CURSOR_PATTERN }),
        "name"
        | "cardToken"
        | "signedBy"
        | "issuer"
        | "number"
        | "policyNumber"
        | "carrier"
        | "legalName"
        | "tradeNames"
        | "additionalInsureds"
        | "certifications"
        | "requiredCertifications" => text(Name::MAX_CHARS),
        "summary" | "caption" => text(Summary::MAX_CHARS),
        "sha256" => json!({ "pattern": "^[0-9a-fA-F]{64}$" }),
        "description" | "notes" | "body" | "accessNotes" => text(Description::MAX_CHARS),
        "reason" | "slaOverrideReason" => text(Reason::MAX_CHARS),
        "phone" | "contactPhone" => text(Phone::MAX_CHARS),
        "category" => text(Name::MAX_CHARS),
        // `pricebook::Sku` and `pricebook::Unit` (folded to one case).
        "sku" => json!({ "pattern": "^[A-Za-z0-9._/-]{1,64}$" }),
        "unit" => json!({ "pattern": "^[A-Za-z0-9._/-]{1,16}$" }),
        "documentRef" | "certificateRef" => text(1000),
        "signature" => text(Description::MAX_CHARS),
        // A jurisdiction's region code (an address's region is a name: `constrain_object`).
        "region" => json!({ "pattern": "^[A-Za-z0-9-]{1,10}$" }),
        "locality" => text(hestami_core::compliance::MAX_LOCALITY_CHARS),
        "line1" | "line2" | "city" | "reference" | "taxId" => text(Name::MAX_CHARS),
        "radiusKm" => json!({
            "minimum": 0,
            "exclusiveMinimum": 0,
            "maximum": hestami_core::area::RadiusKm::MAX,
        }),
        "netDays" => json!({ "minimum": 0, "maximum": 365 }),
        "expiresInDays" => json!({
            "minimum": 1,
            "maximum": hestami_store::app::members::MAX_TOKEN_DAYS,
        }),
        "lat" => json!({ "minimum": -90, "maximum": 90 }),
        "dailyMinutes" => json!({ "minimum": 1, "maximum": 1440 }),
        "weeklyMinutes" => json!({ "minimum": 1, "maximum": 10080 }),
        "accuracyM" => json!({ "minimum": 0, "maximum": hestami_core::field::MAX_ACCURACY_M }),
        "lon" => json!({ "minimum": -180, "maximum": 180 }),
        // Amounts that change hands: more than zero, and an amount of money. (At most the
        // currency's minor unit of decimals too, which depends on the organization: listed in
        // ARCHITECTURE.md.)
        "amount" => json!({ "pattern": POSITIVE_PATTERN, "allOf": [{ "pattern": MONEY_PATTERN }] }),
        // Insurance limits: more than zero.
        "perOccurrenceLimit" | "aggregateLimit" => json!({ "pattern": POSITIVE_PATTERN }),
        // Prices and costs.
        "price" | "unitPrice" | "hourly" | "rate" | "cost" => json!({ "pattern": MONEY_PATTERN }),
        "emergencyMinutes" | "urgentMinutes" | "routineMinutes" => json!({
            "minimum": 1,
            "maximum": hestami_core::org::SlaWindows::MAX_MINUTES,
        }),
        // Never negative.
        "depositRequired" | "minPerOccurrence" | "minAggregate" => {
            json!({ "pattern": NON_NEGATIVE_PATTERN })
        }
        // `Percent`: 0 to 1000 with at most 4 decimals (tax rates and discounts: at most 100,
        // see `constrain_object`).
        "percent" | "markupPercent" => json!({ "pattern": PERCENT_PATTERN }),
        "overtimeMultiplier" | "afterHoursMultiplier" => json!({ "pattern": MULTIPLIER_PATTERN }),
        "estimatedLaborHours" => json!({ "pattern": LABOR_HOURS_PATTERN }),
        "quantity" | "from" | "to" => decimal(),
        _ => return None,
    })
}

/// The rules of the form inputs' fields, whose names (`key`, `min`, `unit`) mean other things
/// elsewhere.
fn form_rule(schema: &str, field: &str) -> Option<Value> {
    use hestami_core::form;
    Some(match (schema, field) {
        ("QuestionDto" | "AnswerItemInput", "key") => json!({ "pattern": form::KEY_PATTERN }),
        ("QuestionDto", "label") => text(Summary::MAX_CHARS),
        ("QuestionDto", "unit") => text(form::MAX_UNIT_CHARS),
        ("QuestionDto", "min" | "max") => {
            json!({ "pattern": hestami_core::money::DECIMAL_PATTERN })
        }
        ("QuestionDto", "options") => {
            let mut rule = text(form::MAX_OPTION_CHARS);
            if let Some(r) = rule.as_object_mut() {
                r.insert("minItems".into(), json!(1));
                r.insert("maxItems".into(), json!(form::MAX_OPTIONS));
                r.insert("uniqueItems".into(), json!(true));
            }
            rule
        }
        ("DefineTemplateInput", "questions") => {
            json!({ "minItems": 1, "maxItems": form::MAX_QUESTIONS })
        }
        ("AnswerInput", "answers") => json!({ "minItems": 1 }),
        ("AnswerInput", "templateVersion") => json!({ "minimum": 1 }),
        _ => return None,
    })
}

/// Fields whose rule in one input differs from the field name's rule elsewhere.
fn schema_rule(schema: &str, field: &str) -> Option<Value> {
    use hestami_core::pricebook::MAX_LINES;
    Some(match (schema, field) {
        // An address's region is a name (`Texas`), a jurisdiction's a code (`TX`).
        ("AddressDto", "region") => text(Name::MAX_CHARS),
        // A line's description replaces the item's name.
        ("QuoteLineInput", "description") => text(Name::MAX_CHARS),
        ("QuoteLineInput" | "CreditLineInput", "quantity") => {
            json!({ "pattern": QUANTITY_PATTERN })
        }
        ("AdjustmentInput", "description") => text(Name::MAX_CHARS),
        (
            "ReceiveInput" | "TransferInput" | "ReserveInput" | "ReleaseInput" | "ReturnUsageInput"
            | "OrderLineInput" | "ReceiveLineInput" | "BillLineInput",
            "quantity",
        )
        | ("SetSupplierItemInput", "packSize") => json!({ "pattern": STOCK_QUANTITY_PATTERN }),
        ("OrderLineInput" | "BillLineInput", "unitCost")
        | ("SetSupplierItemInput", "lastPrice") => {
            json!({ "pattern": MONEY_PATTERN })
        }
        ("SetReorderPointInput", "min" | "max") => json!({ "pattern": REORDER_LEVEL_PATTERN }),
        (
            "ReceiveInput" | "TransferInput" | "AdjustInput" | "RecordUsageInput"
            | "ReturnUsageInput" | "SendTransferInput" | "ReceiveLineInput",
            "serials",
        ) => json!({
            "pattern": hestami_core::inventory::TrackingCode::PATTERN,
            "uniqueItems": true,
            "maxItems": hestami_core::inventory::MAX_SERIALS,
        }),
        (
            "ReceiveInput" | "TransferInput" | "AdjustInput" | "RecordUsageInput"
            | "ReturnUsageInput" | "SendTransferInput" | "ReceiveLineInput",
            "lot",
        ) => json!({ "pattern": hestami_core::inventory::TrackingCode::PATTERN }),
        ("ReceiveLineInput" | "BillLineInput", "line") => json!({ "minimum": 1 }),
        (
            "CreatePurchaseOrderInput" | "ReceivePurchaseOrderInput" | "RecordSupplierBillInput",
            "lines",
        ) => json!({
            "minItems": 1,
            "maxItems": hestami_store::app::procurement::MAX_ORDER_LINES,
        }),
        ("CreateSupplierInput", "paymentTermsDays") | ("SetSupplierItemInput", "leadTimeDays") => {
            json!({ "minimum": 0, "maximum": 365 })
        }
        ("CreateSupplierInput", "contactName") | ("SetSupplierItemInput", "partNumber") => {
            text(Name::MAX_CHARS)
        }
        // Usage becomes a line of the job's actuals: a line's quantity.
        ("RecordUsageInput", "quantity") => json!({ "pattern": QUANTITY_PATTERN }),
        ("AdjustInput", "quantity") => json!({ "pattern": STOCK_ADJUSTMENT_PATTERN }),
        ("ReceiveInput", "unitCost") => json!({ "pattern": MONEY_PATTERN }),
        ("CreateContractInput", "propertyIds") => json!({
            "minItems": 1,
            "maxItems": hestami_store::app::maintenance::MAX_PROPERTIES,
            "uniqueItems": true,
        }),
        // A visit's window is one day's: it ends by 23:59.
        ("DayWindowDto", "end") => json!({ "pattern": START_CLOCK_PATTERN }),
        ("PlanServiceDto", "quantity") => json!({ "pattern": STOCK_QUANTITY_PATTERN }),
        ("BenefitsInput", "discountPercent") => json!({ "pattern": PERCENT_100_PATTERN }),
        ("PricesDto", "monthly" | "quarterly" | "annually" | "perVisit") => {
            json!({ "pattern": MONEY_PATTERN })
        }
        ("CreditNoteInput", "lines") => json!({ "maxItems": MAX_LINES }),
        ("CreditNoteInput", "adjustments") => {
            json!({ "maxItems": hestami_core::invoice::credit::MAX_ADJUSTMENTS })
        }
        ("BundledMaterialInput", "quantity") => json!({ "pattern": POSITIVE_PATTERN }),
        // What is priced has 1 to `MAX_LINES` lines.
        (
            "QuoteInput" | "EstimateOptionInput" | "InvoiceFromInput" | "UpdateInvoiceInput",
            "lines",
        ) => {
            json!({ "minItems": 1, "maxItems": MAX_LINES })
        }
        ("RecordActualsInput", "lines") => json!({ "maxItems": MAX_LINES }),
        // A labour item has a rate for one or more of the five skill levels.
        ("ItemDetailsInput", "rates") => json!({ "minItems": 1, "maxItems": 5 }),
        ("RedriveInput", "messageIds") => json!({
            "minItems": 1,
            "maxItems": hestami_store::app::delivery::MAX_REDRIVE,
            "uniqueItems": true,
        }),
        ("CreateWebhookInput" | "UpdateWebhookInput", "eventTypes") => json!({
            "minItems": 1,
            "maxItems": hestami_store::app::webhooks::MAX_EVENT_TYPES,
            "pattern": crate::v1::webhook::EVENT_TYPE_PATTERN,
        }),
        _ => return None,
    })
}

/// Fields that go together: either both or neither.
const PAIRS: &[(&str, &str)] = &[("windowStart", "windowEnd"), ("customerId", "propertyId")];

/// Inputs where those fields are independent filters, not a pair.
const UNPAIRED: &[&str] = &["ListJobsInput"];

/// Applies the rules to every schema an operation's request body reaches.
pub fn constrain(document: &mut Value) {
    let mut inputs = BTreeSet::new();
    let mut pending: Vec<String> = Vec::new();
    if let Some(paths) = document["paths"].as_object() {
        for item in paths.values() {
            let schema = &item["post"]["requestBody"]["content"]["application/json"]["schema"];
            collect_refs(schema, &mut pending);
        }
    }
    while let Some(name) = pending.pop() {
        if inputs.insert(name.clone()) {
            let schema = document["components"]["schemas"][&name].clone();
            collect_refs(&schema, &mut pending);
        }
    }
    if let Some(schemas) = document["components"]["schemas"].as_object_mut() {
        for name in &inputs {
            if let Some(schema) = schemas.get_mut(name) {
                constrain_object(name, schema);
            }
        }
    }
}

fn collect_refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref")
                && let Some(name) = r.strip_prefix("#/components/schemas/")
            {
                out.push(name.to_owned());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// Constrains an input schema and every inline object inside it.
fn constrain_object(schema_name: &str, schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else {
        return;
    };
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(Value::Array(variants)) = map.get_mut(key) {
            variants
                .iter_mut()
                .for_each(|v| constrain_object(schema_name, v));
        }
    }
    let Some(Value::Object(properties)) = map.get_mut("properties") else {
        return;
    };
    for (name, property) in properties.iter_mut() {
        if let Some(rule) = form_rule(schema_name, name) {
            apply(property, &rule);
            constrain_object(schema_name, property);
            continue;
        }
        if name == "timeZone" {
            let mut names: Vec<Value> = TimeZone::names().map(Value::from).collect();
            if is_type(property, "null") {
                names.push(Value::Null);
            }
            merge(property, &json!({ "enum": names }));
        } else if let Some(rule) = schema_rule(schema_name, name) {
            apply(property, &rule);
        } else if name == "percent" && matches!(schema_name, "TaxRateInput" | "DiscountInput") {
            apply(property, &json!({ "pattern": PERCENT_100_PATTERN }));
        } else if schema_name == "ListWorkflowsInput" && name == "status" {
            merge_into_string(
                property,
                &json!({ "enum": ["pending", "succeeded", "failed", "cancelled"] }),
            );
        } else if let Some(rule) = rule_for(name) {
            apply(property, &rule);
        }
        // Inline objects (and arrays of them) nested in this one.
        constrain_object(schema_name, property);
        if let Some(items) = property.get_mut("items") {
            constrain_object(schema_name, items);
        }
    }
    let names: BTreeSet<String> = properties.keys().cloned().collect();
    let has = |field: &str| names.contains(field);
    // Rules between fields, each an `if`/`then` (JSON Schema draft 7, which generators read;
    // `dependentRequired` would also let a paired field be null, which the server refuses).
    let mut rules: Vec<Value> = Vec::new();
    for (a, b) in PAIRS {
        if has(a) && has(b) && !UNPAIRED.contains(&schema_name) {
            rules.push(when(given(a), demand(&[b], &[])));
            rules.push(when(given(b), demand(&[a], &[])));
        }
    }
    match schema_name {
        // Holding a visit needs a reason.
        "MoveAppointmentInput" if has("action") => {
            rules.push(when(is("action", "hold"), demand(&["reason"], &[])));
        }
        // A question's fields are those of its type.
        "QuestionDto" if has("type") => {
            rules.push(json!({
                "if": is("type", "number"),
                "else": demand(&[], &["unit", "min", "max"]),
            }));
            rules.push(json!({
                "if": is("type", "choice"),
                "then": demand(&["options"], &[]),
                "else": demand(&[], &["options", "multiple"]),
            }));
        }
        // A version is expected only of a template that exists.
        "DefineTemplateInput" if has("expectedVersion") => {
            rules.push(when(given("expectedVersion"), demand(&["templateId"], &[])));
        }
        // A signature has the name printed beside it; nothing else has one.
        "AttachInput" if has("signedBy") => rules.push(json!({
            "if": is("kind", "signature"),
            "then": demand(&["signedBy"], &[]),
            "else": demand(&[], &["signedBy"]),
        })),
        // A job or a draft, not both.
        "SuggestSlotsInput" if has("draft") => {
            map.insert(
                "oneOf".into(),
                json!([
                    { "required": ["jobId"], "properties": { "jobId": { "type": "string" } } },
                    { "required": ["draft"], "properties": { "draft": { "type": "object" } } },
                ]),
            );
        }
        // A pricebook line takes its price and kind from the item; a custom line gives them.
        "QuoteLineInput" if has("itemId") => rules.push(json!({
            "if": given("itemId"),
            "then": demand(&[], &["unitPrice", "kind"]),
            "else": demand(
                &["description", "unitPrice", "kind"],
                &["revision", "skillLevel", "laborTime"],
            ),
        })),
        "DiscountInput" if has("type") => {
            rules.push(when(
                is("type", "amount"),
                demand(&["amount"], &["percent"]),
            ));
            rules.push(when(
                is("type", "percent"),
                demand(&["percent"], &["amount"]),
            ));
        }
        // An item gives exactly the fields of its kind (the converter's own table).
        "ItemDetailsInput" if has("kind") => {
            for kind in crate::v1::money::ITEM_KINDS {
                let (required, optional) = crate::v1::money::item_fields(kind);
                let others: Vec<&str> = crate::v1::money::ITEM_DETAIL_FIELDS
                    .into_iter()
                    .filter(|f| !required.contains(f) && !optional.contains(f))
                    .collect();
                let value = serde_json::to_value(kind).unwrap_or_default();
                rules.push(when(
                    is("kind", value.as_str().unwrap_or_default()),
                    demand(required, &others),
                ));
            }
        }
        "MaterialPricingInput" if has("rule") => {
            rules.push(when(
                is("rule", "explicit"),
                demand(&["price"], &["percent"]),
            ));
            rules.push(when(is("rule", "markup"), demand(&["percent"], &["price"])));
            rules.push(when(
                is("rule", "tiered"),
                demand(&[], &["price", "percent"]),
            ));
        }
        "InvoiceFromInput" if has("from") => {
            rules.push(when(
                is("from", "approved_estimate"),
                demand(&[], &["lines", "discount"]),
            ));
            rules.push(when(
                is("from", "actuals"),
                demand(&[], &["estimateId", "lines", "discount"]),
            ));
            rules.push(when(
                is("from", "lines"),
                demand(&["lines"], &["estimateId"]),
            ));
        }
        // A new discount replaces the lines too.
        "UpdateInvoiceInput" if has("discount") => {
            rules.push(when(given("discount"), demand(&["lines"], &[])));
        }
        // An estimate is for a job, or for a customer at one of its properties.
        "GenerateEstimateInput" if has("jobId") => rules.push(json!({
            "if": given("jobId"),
            "else": demand(&["customerId", "propertyId"], &[]),
        })),
        // A truck belongs to a technician; a warehouse to none.
        "CreateLocationInput" if has("technicianId") => rules.push(json!({
            "if": is("kind", "truck"),
            "then": demand(&["technicianId"], &[]),
            "else": demand(&[], &["technicianId"]),
        })),
        // A credit note credits a line or an amount.
        "CreditNoteInput" if has("adjustments") => rules.push(json!({
            "anyOf": [
                { "required": ["lines"], "properties": { "lines": { "type": "array", "minItems": 1 } } },
                { "required": ["adjustments"],
                  "properties": { "adjustments": { "type": "array", "minItems": 1 } } },
            ]
        })),
        // A delta adjustment changes the quantity; a count is 0 or more.
        "AdjustInput" if has("mode") => rules.push(json!({
            "if": is("mode", "count"),
            "then": { "properties": { "quantity": { "not": { "pattern": "^-0*[1-9]|^-0*\\.0*[1-9]" } } } },
            "else": { "properties": { "quantity": { "not": { "pattern": "^-?0*(\\.0*)?$" } } } },
        })),
        // A locality is within a region.
        "JurisdictionDto" if has("locality") => {
            rules.push(when(given("locality"), demand(&["region"], &[])));
        }
        _ => {}
    }
    if !rules.is_empty() {
        map.insert("allOf".into(), Value::Array(rules));
    }
    map.insert("additionalProperties".into(), Value::Bool(false));
}

/// `if` → `then`.
fn when(condition: Value, then: Value) -> Value {
    json!({ "if": condition, "then": then })
}

/// The condition "`field` is given (and not null)".
fn given(field: &str) -> Value {
    json!({ "required": [field], "properties": { field: { "not": { "type": "null" } } } })
}

/// The condition "`field` is `value`".
fn is(field: &str, value: &str) -> Value {
    json!({ "required": [field], "properties": { field: { "const": value } } })
}

/// `required` are given (not null) and `absent` are absent or null.
fn demand(required: &[&str], absent: &[&str]) -> Value {
    let mut properties = Map::new();
    for field in required {
        properties.insert((*field).into(), json!({ "not": { "type": "null" } }));
    }
    for field in absent {
        properties.insert((*field).into(), json!({ "type": "null" }));
    }
    json!({ "required": required, "properties": properties })
}

/// Applies a rule to a property: to a string or integer itself, to the items of an array.
fn apply(property: &mut Value, rule: &Value) {
    if is_array(property) {
        // Counts and uniqueness are the array's; the rest is its items'.
        let mut items_rule = rule.clone();
        if let (Some(array), Some(items_only)) =
            (property.as_object_mut(), items_rule.as_object_mut())
        {
            for key in ["minItems", "maxItems", "uniqueItems"] {
                if let Some(v) = items_only.remove(key) {
                    array.insert(key.into(), v);
                }
            }
        }
        if items_rule.as_object().is_some_and(|r| !r.is_empty())
            && let Some(items) = property.get_mut("items")
        {
            apply(items, &items_rule);
        }
        return;
    }
    // A map: its size and its keys.
    if rule.get("maxProperties").is_some() {
        if is_type(property, "object") {
            merge(property, rule);
        }
        return;
    }
    let numeric = rule.get("minimum").is_some();
    if numeric && (is_type(property, "integer") || is_type(property, "number")) {
        merge(property, rule);
        return;
    }
    // Only plain strings: a `format` (uuid, date-time) is its own, stricter rule.
    if !numeric
        && is_type(property, "string")
        && property.get("format").is_none()
        && property.get("enum").is_none()
    {
        merge(property, rule);
    }
}

fn merge_into_string(property: &mut Value, rule: &Value) {
    if is_type(property, "string") {
        merge(property, rule);
    }
}

fn merge(property: &mut Value, rule: &Value) {
    if let (Some(target), Some(source)) = (property.as_object_mut(), rule.as_object()) {
        for (k, v) in source {
            target.insert(k.clone(), v.clone());
        }
    }
}

fn types_of(property: &Value) -> Vec<&str> {
    match &property["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

fn is_type(property: &Value, wanted: &str) -> bool {
    types_of(property).contains(&wanted)
}

fn is_array(property: &Value) -> bool {
    is_type(property, "array")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use hestami_core::customer::{CountryCode, PostalCode};
    use hestami_core::text::TradeCode;

    /// Samples at and across each boundary: what each pattern is written to admit, the parser
    /// admits, and what it is written to refuse, the parser refuses. (The patterns themselves
    /// are exercised by schemathesis in `.ci/run`, which generates values from them and fails
    /// when the server refuses one.)
    #[test]
    fn patterns_state_the_parsers_rules() {
        let cases: &[(&str, &str, bool)] = &[
            (TRADE_PATTERN, "plumbing", true),
            (TRADE_PATTERN, "Gas Fitting", true),
            (TRADE_PATTERN, "hvac-2", true),
            (TRADE_PATTERN, "2hvac", false),
            (TRADE_PATTERN, "", false),
            (TRADE_PATTERN, "pl.umbing", false),
            (COUNTRY_PATTERN, "US", true),
            (COUNTRY_PATTERN, "us", true),
            (COUNTRY_PATTERN, "USA", false),
            (COUNTRY_PATTERN, "U1", false),
            (POSTAL_CODE_PATTERN, "60601", true),
            (POSTAL_CODE_PATTERN, "SW1A 1AA", true),
            (POSTAL_CODE_PATTERN, "1", false),
            (POSTAL_CODE_PATTERN, "1234567890123", false),
        ];
        for (pattern, sample, admitted) in cases {
            let parsed = match *pattern {
                TRADE_PATTERN => TradeCode::parse(sample).is_ok(),
                COUNTRY_PATTERN => CountryCode::parse(sample).is_ok(),
                POSTAL_CODE_PATTERN => PostalCode::parse(sample).is_ok(),
                _ => unreachable!(),
            };
            assert_eq!(parsed, *admitted, "{pattern} {sample:?}");
        }
        for (sample, admitted) in [
            ("ada@example.com", true),
            ("Ada@Example.COM", true),
            ("a@b.c", true),
            ("ada@example", false),
            ("ada@.example.com", false),
            ("ada@example.com.", false),
            ("@example.com", false),
            ("a b@example.com", false),
            ("a\u{0}b@example.com", false),
        ] {
            assert_eq!(
                hestami_core::text::Email::parse(sample).is_ok(),
                admitted,
                "{sample:?}"
            );
        }
        use hestami_core::money::Percent;
        for (sample, admitted) in [
            ("0", true),
            ("8.25", true),
            ("999.9999", true),
            ("1000", true),
            ("1000.0000", true),
            ("1000.0001", false),
            ("12.34567", false),
        ] {
            assert_eq!(Percent::parse_str(sample).is_ok(), admitted, "{sample:?}");
        }
        // MONEY_PATTERN and QUANTITY_PATTERN: what each admits the parsers admit.
        let usd = hestami_core::org::Currency::parse("USD").unwrap();
        for (sample, admitted) in [
            ("0", true),
            ("12.345678", true),
            ("12.3456780000", true),
            ("1000000000000", true),
            ("1000000000000.000001", false),
            ("12.3456789", false),
        ] {
            let money = hestami_core::money::Money::parse(sample, usd);
            assert_eq!(money.is_ok(), admitted, "{sample:?}");
        }
        for (sample, admitted) in [
            ("0.0001", true),
            ("1", true),
            ("1000000", true),
            ("1000000.0001", false),
            ("0.00001", false),
            ("0", false),
        ] {
            let line = hestami_core::pricebook::QuoteLine {
                source: hestami_core::pricebook::LineSource::Custom {
                    description: Name::parse("Trip").unwrap(),
                    unit_price: hestami_core::money::Money::parse("1", usd).unwrap(),
                    kind: hestami_core::pricebook::ItemKind::Service,
                },
                quantity: hestami_core::money::parse_decimal(sample).unwrap(),
                description: None,
            };
            let request = hestami_core::pricebook::QuoteRequest {
                lines: vec![line],
                discount: None,
            };
            let markup = hestami_core::pricebook::MarkupTiers::default();
            let ctx = hestami_core::pricebook::PricingContext {
                currency: usd,
                items: &[],
                markup: &markup,
                taxes: &[],
                member: None,
                trip_fee_waived_by: None,
            };
            let quoted = hestami_core::pricebook::quote(&ctx, &request);
            assert_eq!(quoted.is_ok(), admitted, "{sample:?}");
        }
        let cursor = format!("c1.{}", uuid::Uuid::nil().simple());
        assert!(hestami_store::app::PageRequest::parse(None, Some(&cursor)).is_ok());
        assert!(hestami_store::app::PageRequest::parse(None, Some("c1.xyz")).is_err());
        for (sample, admitted) in [
            ("1", true),
            ("-1.50", true),
            ("0.000001", true),
            (" 1", false),
            ("+1", false),
            ("1E+2", false),
            ("1.", false),
            (".5", false),
            ("", false),
        ] {
            assert_eq!(
                hestami_core::money::parse_decimal(sample).is_some(),
                admitted,
                "{sample:?}"
            );
        }
    }

    #[test]
    fn every_input_refuses_unknown_fields_and_states_its_limits() {
        let document: Value = serde_json::from_str(&crate::openapi::document_json()).unwrap();
        let schemas = &document["components"]["schemas"];
        assert_eq!(schemas["ListCustomersInput"]["additionalProperties"], false);
        assert_eq!(
            schemas["ListCustomersInput"]["properties"]["limit"]["minimum"],
            1
        );
        assert_eq!(
            schemas["ListCustomersInput"]["properties"]["limit"]["maximum"],
            200
        );
        assert_eq!(
            schemas["ListWorkflowsInput"]["properties"]["status"]["enum"],
            json!(["pending", "succeeded", "failed", "cancelled"])
        );
        // Output schemas are left as they are.
        assert!(schemas["CustomerDto"].get("additionalProperties").is_none());
    }
}
