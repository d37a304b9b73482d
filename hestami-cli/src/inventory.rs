//! `hestami inventory export`: an organization's stock, or its valuation by location, as CSV,
//! read through the same services (and the same row-level security) as `inventory/v1/stock`.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Subcommand, ValueEnum};
use rust_decimal::Decimal;

use hestami_core::ids::OrganizationId;
use hestami_core::money::Money;
use hestami_store::app::inventory::{InTransit, LocationKind, StockFilter, StockLevel};
use hestami_store::app::{Caller, Services};

use crate::DatabaseArgs;

/// What to export.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Report {
    /// Each material at each location: on hand, reserved, available, average cost, value.
    Stock,
    /// The value at each location, in transit, and in total.
    Valuation,
}

/// The inventory commands.
#[derive(Subcommand, Debug)]
pub enum InventoryCommand {
    /// Export the stock (each material at each location) or the valuation (by location, in
    /// transit, total) as CSV.
    Export {
        #[command(flatten)]
        db: DatabaseArgs,
        /// The organization id.
        #[arg(long)]
        org: uuid::Uuid,
        /// stock or valuation.
        #[arg(long, value_enum, default_value = "stock")]
        report: Report,
        /// Write here instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// Runs an inventory command.
pub async fn run(command: InventoryCommand) -> Result<()> {
    let InventoryCommand::Export {
        db,
        org,
        report,
        output,
    } = command;
    let services = crate::admin_services(&db, "export").await?;
    let caller = Caller {
        organization_id: OrganizationId::from_uuid(org),
        user_id: None,
        scope: Default::default(),
    };
    let out: Box<dyn Write> = match &output {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    export(&services, &caller, report, out).await
}

/// Writes `report` of the caller's organization to `out`.
pub async fn export(
    services: &Services,
    caller: &Caller,
    report: Report,
    out: impl Write,
) -> Result<()> {
    let levels = services
        .inventory_stock(caller, StockFilter::default())
        .await
        .context("reading the stock")?;
    match report {
        Report::Stock => write_stock(&levels, out),
        Report::Valuation => {
            let in_transit = services
                .inventory_in_transit(caller, None)
                .await
                .context("reading the stock in transit")?;
            let currency = services
                .org_get(caller)
                .await
                .context("reading the organization")?
                .currency;
            write_valuation(&levels, &in_transit, Money::zero(currency), out)
        }
    }
}

fn kind(kind: LocationKind) -> &'static str {
    match kind {
        LocationKind::Warehouse => "warehouse",
        LocationKind::Truck => "truck",
    }
}

/// One row per material and location.
pub fn write_stock(levels: &[StockLevel], out: impl Write) -> Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "itemId",
        "itemName",
        "locationId",
        "locationName",
        "locationKind",
        "technicianId",
        "onHand",
        "reserved",
        "available",
        "averageCost",
        "value",
    ])?;
    for l in levels {
        w.write_record([
            l.item_id.to_string(),
            l.item_name.clone(),
            l.location_id.to_string(),
            l.location_name.clone(),
            kind(l.location_kind).to_owned(),
            l.technician_id.map(|t| t.to_string()).unwrap_or_default(),
            l.on_hand.normalize().to_string(),
            l.reserved.normalize().to_string(),
            (l.on_hand - l.reserved)
                .max(Decimal::ZERO)
                .normalize()
                .to_string(),
            l.average_cost.amount().normalize().to_string(),
            l.value.amount_text(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// One row per location (by id), then the stock in transit, then the total.
pub fn write_valuation(
    levels: &[StockLevel],
    in_transit: &InTransit,
    zero: Money,
    out: impl Write,
) -> Result<()> {
    let mut by_location: Vec<(&StockLevel, Decimal)> = Vec::new();
    for l in levels {
        match by_location
            .iter_mut()
            .find(|(first, _)| first.location_id == l.location_id)
        {
            Some((_, value)) => *value += l.value.amount(),
            None => by_location.push((l, l.value.amount())),
        }
    }
    by_location.sort_by_key(|(l, _)| l.location_id);
    let text = |d: Decimal| Money::new(d, zero.currency()).amount_text();
    let mut w = csv::Writer::from_writer(out);
    w.write_record(["locationId", "locationName", "locationKind", "value"])?;
    let mut total = in_transit.value.amount();
    for (l, value) in &by_location {
        total += value;
        w.write_record([
            l.location_id.to_string(),
            l.location_name.clone(),
            kind(l.location_kind).to_owned(),
            text(*value),
        ])?;
    }
    w.write_record(["", "in transit", "", &text(in_transit.value.amount())])?;
    w.write_record(["", "total", "", &text(total)])?;
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hestami_store::testing::TestDb;
    use hestami_store::{Store, StoreOptions};

    /// Stock received into a warehouse and moved (partly through transit) to a truck exports
    /// as the API reads it: one row per material and location, and a valuation whose total
    /// counts what is on the road.
    #[tokio::test]
    async fn exports_stock_and_valuation_as_csv() {
        let db = TestDb::sqlite().await.expect("a database");
        let store = Store::connect(&db.app_url, StoreOptions::default())
            .await
            .expect("connect");
        let services = Services::new(store.clone(), Default::default());
        let created = store
            .create_organization(hestami_store::directory::NewOrganization {
                name: hestami_core::text::OrgName::parse("Exports").expect("name"),
                kind: hestami_core::org::OrgKind::Contractor,
                time_zone: hestami_core::org::TimeZone::parse("America/Chicago").expect("tz"),
                currency: hestami_core::org::Currency::parse("USD").expect("usd"),
                owner_email: hestami_core::text::Email::parse("owner@example.com").expect("email"),
            })
            .await
            .expect("organization");
        let caller = Caller {
            organization_id: created.organization_id,
            user_id: Some(created.user_id),
            scope: Default::default(),
        };
        let submit = |command: serde_json::Value| {
            let services = services.clone();
            async move {
                let procedure = command["procedure"].as_str().unwrap_or_default().to_owned();
                let value = if procedure.starts_with("pricebook") {
                    let c: hestami_store::app::pricebook::PricebookCommand =
                        serde_json::from_value(command).expect("command");
                    hestami_store::testing::fixtures::submit::<_, serde_json::Value>(
                        &services, &caller, c,
                    )
                    .await
                } else {
                    let c: hestami_store::app::inventory::InventoryCommand =
                        serde_json::from_value(command).expect("command");
                    hestami_store::testing::fixtures::submit::<_, serde_json::Value>(
                        &services, &caller, c,
                    )
                    .await
                };
                value.expect("accepted")
            }
        };
        let usd = |a: &str| serde_json::json!({ "amount": a, "currency": "USD" });
        let item = submit(
            serde_json::json!({ "procedure": "pricebook/v1/createItem", "input": {
            "name": "Valve, \"brass\"",
            "details": { "kind": "material", "sku": "V-1", "unit": "each", "cost": usd("2.50"),
                         "pricing": { "rule": "explicit", "price": usd("9.00") } } } }),
        )
        .await;
        let location = |name: &str| {
            serde_json::json!({ "procedure": "inventory/v1/createLocation", "input": {
                "kind": "warehouse", "name": name, "technicianId": null, "allowNegative": false } })
        };
        let main = submit(location("Main")).await;
        let annex = submit(location("Annex")).await;
        submit(
            serde_json::json!({ "procedure": "inventory/v1/receive", "input": {
            "itemId": item["id"], "locationId": main["id"], "quantity": "10", "unitCost": null } }),
        )
        .await;
        for (quantity, in_transit) in [("2", false), ("3", true)] {
            submit(
                serde_json::json!({ "procedure": "inventory/v1/transfer", "input": {
                "itemId": item["id"], "fromLocationId": main["id"], "toLocationId": annex["id"],
                "quantity": quantity, "inTransit": in_transit } }),
            )
            .await;
        }

        let mut stock = Vec::new();
        export(&services, &caller, Report::Stock, &mut stock)
            .await
            .expect("export");
        let mut reader = csv::Reader::from_reader(stock.as_slice());
        let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("a row")).collect();
        assert_eq!(rows.len(), 2);
        let row = |r: &csv::StringRecord| {
            (
                r[1].to_owned(),
                r[3].to_owned(),
                r[6].to_owned(),
                r[10].to_owned(),
            )
        };
        assert_eq!(
            row(&rows[0]),
            (
                "Valve, \"brass\"".to_owned(),
                "Main".to_owned(),
                "5".to_owned(),
                "12.50".to_owned()
            )
        );
        assert_eq!(
            row(&rows[1]),
            (
                "Valve, \"brass\"".to_owned(),
                "Annex".to_owned(),
                "2".to_owned(),
                "5.00".to_owned()
            )
        );

        let mut valuation = Vec::new();
        export(&services, &caller, Report::Valuation, &mut valuation)
            .await
            .expect("export");
        let text = String::from_utf8(valuation).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1..],
            [
                format!(
                    "{},Main,warehouse,12.50",
                    main["id"].as_str().unwrap_or_default()
                ),
                format!(
                    "{},Annex,warehouse,5.00",
                    annex["id"].as_str().unwrap_or_default()
                ),
                ",in transit,,7.50".to_owned(),
                ",total,,25.00".to_owned(),
            ]
        );
    }
}
