//! Customers and their properties (`customer/v1`, workflow `customer_v1`).

use serde::{Deserialize, Serialize};

use hestami_core::customer::{Address, CountryCode, Customer, GeoPoint, PostalCode, Property};
use hestami_core::ids::{CustomerId, PropertyId};
use hestami_core::text::{Email, Name, Phone};

use super::{Caller, Command, Page, PageRequest, Patch, Services, check_version, like_pattern};
use crate::db::{Row, args};
use crate::directory::parse_stored;
use crate::engine::WorkflowCtx;
use crate::error::{Failure, StoreError};
use crate::store::{Operation, TenantTx, new_id};

/// The workflow behind every customer change.
pub const WORKFLOW: &str = "customer_v1";

/// A new customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewCustomer {
    /// Display name.
    pub name: Name,
    /// Contact address.
    pub email: Option<Email>,
    /// Contact number.
    pub phone: Option<Phone>,
}

/// Changes to a customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerUpdate {
    /// Which customer.
    pub customer_id: CustomerId,
    /// Fail with `VERSION_CONFLICT` unless the customer is at this version.
    pub expected_version: Option<i64>,
    /// A new name.
    pub name: Option<Name>,
    /// A new, or no, e-mail address.
    pub email: Patch<Email>,
    /// A new, or no, phone number.
    pub phone: Patch<Phone>,
}

/// A new property of a customer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewProperty {
    /// Whose.
    pub customer_id: CustomerId,
    /// Where.
    pub address: Address,
    /// Its coordinates, when known.
    pub location: Option<GeoPoint>,
    /// How to get in and what to watch for. (Absent from requests recorded before it existed.)
    #[serde(default)]
    pub access_notes: Option<hestami_core::text::Description>,
}

/// Changes to a property. A new address without a `location` clears the stored coordinates:
/// they were the old address's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyUpdate {
    /// Which property.
    pub property_id: PropertyId,
    /// Fail with `VERSION_CONFLICT` unless the property is at this version.
    pub expected_version: Option<i64>,
    /// A new address.
    pub address: Option<Address>,
    /// New, or no, coordinates.
    pub location: Patch<GeoPoint>,
    /// New, or no, access notes.
    pub access_notes: Patch<hestami_core::text::Description>,
}

/// The customer namespace's mutating procedures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum CustomerCommand {
    /// `customer/v1/create`.
    #[serde(rename = "customer/v1/create")]
    Create(NewCustomer),
    /// `customer/v1/update`.
    #[serde(rename = "customer/v1/update")]
    Update(CustomerUpdate),
    /// `customer/v1/addProperty`.
    #[serde(rename = "customer/v1/addProperty")]
    AddProperty(NewProperty),
    /// `customer/v1/updateProperty`.
    #[serde(rename = "customer/v1/updateProperty")]
    UpdateProperty(PropertyUpdate),
}

impl Command for CustomerCommand {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::Create(_) => "customer/v1/create",
            Self::Update(_) => "customer/v1/update",
            Self::AddProperty(_) => "customer/v1/addProperty",
            Self::UpdateProperty(_) => "customer/v1/updateProperty",
        }
    }
}

pub(crate) async fn run(
    mut ctx: WorkflowCtx,
    command: CustomerCommand,
) -> Result<serde_json::Value, StoreError> {
    Ok(match command {
        CustomerCommand::Create(new) => {
            let customer = ctx
                .step("insert_customer", move |tx| Box::pin(insert(tx, new)))
                .await?;
            serde_json::to_value(customer)?
        }
        CustomerCommand::Update(update) => {
            let customer = ctx
                .step("update_customer", move |tx| {
                    Box::pin(update_customer(tx, update))
                })
                .await?;
            serde_json::to_value(customer)?
        }
        CustomerCommand::AddProperty(new) => {
            let property = ctx
                .step("insert_property", move |tx| {
                    Box::pin(insert_property(tx, new))
                })
                .await?;
            serde_json::to_value(property)?
        }
        CustomerCommand::UpdateProperty(update) => {
            let property = ctx
                .step("update_property", move |tx| {
                    Box::pin(update_property(tx, update))
                })
                .await?;
            serde_json::to_value(property)?
        }
    })
}

const COLUMNS: &str = "id, version, name, email, phone, created_at, updated_at";

async fn insert(tx: &mut TenantTx, new: NewCustomer) -> Result<Customer, StoreError> {
    let now = tx.now();
    let customer = Customer {
        id: CustomerId::from_uuid(new_id()),
        version: 1,
        name: new.name,
        email: new.email,
        phone: new.phone,
        created_at: now,
        updated_at: now,
    };
    tx.execute(
        "INSERT INTO customers (organization_id, id, version, name, email, phone, created_at, updated_at) \
         VALUES ($1, $2, 1, $3, $4, $5, $6, $6)",
        args![
            tx.org(),
            customer.id.as_uuid(),
            customer.name.as_str(),
            customer.email.as_ref().map(Email::as_str),
            customer.phone.as_ref().map(Phone::as_str),
            now
        ],
    )
    .await?;
    tx.record_change("customer", customer.id.as_uuid(), 1, Operation::Created)
        .await?;
    Ok(customer)
}

async fn update_customer(
    tx: &mut TenantTx,
    update: CustomerUpdate,
) -> Result<Customer, StoreError> {
    let current = load(tx, update.customer_id, true).await?;
    check_version("customer", update.expected_version, current.version)?;
    let next = Customer {
        version: current.version + 1,
        name: update.name.unwrap_or(current.name),
        email: update.email.apply(current.email),
        phone: update.phone.apply(current.phone),
        updated_at: tx.now(),
        ..current
    };
    tx.execute(
        "UPDATE customers SET version = $1, name = $2, email = $3, phone = $4, updated_at = $5 \
         WHERE organization_id = $6 AND id = $7",
        args![
            next.version,
            next.name.as_str(),
            next.email.as_ref().map(Email::as_str),
            next.phone.as_ref().map(Phone::as_str),
            next.updated_at,
            tx.org(),
            next.id.as_uuid()
        ],
    )
    .await?;
    tx.record_change(
        "customer",
        next.id.as_uuid(),
        next.version,
        Operation::Updated,
    )
    .await?;
    Ok(next)
}

/// Loads a customer of the transaction's organization; `404` if there is none with this id
/// there (whether or not another organization has one).
pub(crate) async fn load(
    tx: &mut TenantTx,
    id: CustomerId,
    lock: bool,
) -> Result<Customer, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM customers WHERE organization_id = $1 AND id = $2{}",
        if lock { tx.for_update() } else { "" }
    );
    let org = tx.org();
    let row = tx.fetch_optional(&sql, args![org, id.as_uuid()]).await?;
    let customer = row
        .map(|r| decode(&r))
        .transpose()?
        .ok_or_else(|| StoreError::from(Failure::not_found("customer")))?;
    super::scope::ensure_customer(tx, id).await?;
    Ok(customer)
}

fn decode(row: &Row) -> Result<Customer, StoreError> {
    Ok(Customer {
        id: CustomerId::from_uuid(row.get("id")?),
        version: row.get("version")?,
        name: parse_stored(&row.get::<String>("name")?, Name::parse)?,
        email: row
            .get::<Option<String>>("email")?
            .map(|e| parse_stored(&e, Email::parse))
            .transpose()?,
        phone: row
            .get::<Option<String>>("phone")?
            .map(|p| parse_stored(&p, Phone::parse))
            .transpose()?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

async fn insert_property(tx: &mut TenantTx, new: NewProperty) -> Result<Property, StoreError> {
    load(tx, new.customer_id, false).await?;
    let now = tx.now();
    let property = Property {
        id: PropertyId::from_uuid(new_id()),
        customer_id: new.customer_id,
        version: 1,
        address: new.address,
        location: new.location,
        access_notes: new.access_notes,
        created_at: now,
        updated_at: now,
    };
    let a = &property.address;
    tx.execute(
        "INSERT INTO properties (organization_id, id, customer_id, version, line1, line2, city, region, \
         postal_code, country, lat, lon, access_notes, created_at, updated_at) \
         VALUES ($1, $2, $3, 1, $4, $5, $6, $7, $8, $9, $10, $11, $13, $12, $12)",
        args![
            tx.org(),
            property.id.as_uuid(),
            property.customer_id.as_uuid(),
            a.line1.as_str(),
            a.line2.as_ref().map(Name::as_str),
            a.city.as_str(),
            a.region.as_str(),
            a.postal_code.as_str(),
            a.country.as_str(),
            property.location.map(|l| l.lat()),
            property.location.map(|l| l.lon()),
            now,
            property.access_notes.as_ref().map(|n| n.as_str().to_owned())
        ],
    )
    .await?;
    tx.record_change("property", property.id.as_uuid(), 1, Operation::Created)
        .await?;
    Ok(property)
}

async fn update_property(
    tx: &mut TenantTx,
    update: PropertyUpdate,
) -> Result<Property, StoreError> {
    let current = load_property_by_id(tx, update.property_id, true).await?;
    check_version("property", update.expected_version, current.version)?;
    let location = match (&update.address, update.location) {
        // A new address without coordinates: the old ones described the old address.
        (Some(_), Patch::Keep) => None,
        (_, patch) => patch.apply(current.location),
    };
    let next = Property {
        version: current.version + 1,
        address: update.address.unwrap_or(current.address),
        location,
        access_notes: update.access_notes.apply(current.access_notes),
        updated_at: tx.now(),
        ..current
    };
    let a = &next.address;
    tx.execute(
        "UPDATE properties SET version = $1, line1 = $2, line2 = $3, city = $4, region = $5, postal_code = $6, \
         country = $7, lat = $8, lon = $9, access_notes = $10, updated_at = $11 \
         WHERE organization_id = $12 AND id = $13",
        args![
            next.version,
            a.line1.as_str(),
            a.line2.as_ref().map(Name::as_str),
            a.city.as_str(),
            a.region.as_str(),
            a.postal_code.as_str(),
            a.country.as_str(),
            next.location.map(|l| l.lat()),
            next.location.map(|l| l.lon()),
            next.access_notes.as_ref().map(|n| n.as_str().to_owned()),
            next.updated_at,
            tx.org(),
            next.id.as_uuid()
        ],
    )
    .await?;
    tx.record_change(
        "property",
        next.id.as_uuid(),
        next.version,
        Operation::Updated,
    )
    .await?;
    Ok(next)
}

/// Loads a property by its id alone; `404` unless it exists in this organization (and, for a
/// technician, belongs to a customer of their jobs).
async fn load_property_by_id(
    tx: &mut TenantTx,
    id: PropertyId,
    lock: bool,
) -> Result<Property, StoreError> {
    let org = tx.org();
    let row = tx
        .fetch_optional(
            &format!(
                "SELECT {PROPERTY_COLUMNS} FROM properties WHERE organization_id = $1 AND id = $2{}",
                if lock { tx.for_update() } else { "" }
            ),
            args![org, id.as_uuid()],
        )
        .await?;
    let property = row
        .map(|r| decode_property(&r))
        .transpose()?
        .ok_or_else(|| StoreError::from(Failure::not_found("property")))?;
    super::scope::ensure_customer(tx, property.customer_id).await?;
    Ok(property)
}

const PROPERTY_COLUMNS: &str = "id, customer_id, version, line1, line2, city, region, postal_code, country, \
                                lat, lon, access_notes, created_at, updated_at";

fn decode_property(row: &Row) -> Result<Property, StoreError> {
    let text = |col: &str| -> Result<Name, StoreError> {
        parse_stored(&row.get::<String>(col)?, Name::parse)
    };
    let location = match (
        row.get::<Option<f64>>("lat")?,
        row.get::<Option<f64>>("lon")?,
    ) {
        (Some(lat), Some(lon)) => Some(
            GeoPoint::parse(lat, lon)
                .map_err(|_| StoreError::Internal("stored coordinates are invalid".into()))?,
        ),
        _ => None,
    };
    Ok(Property {
        id: PropertyId::from_uuid(row.get("id")?),
        customer_id: CustomerId::from_uuid(row.get("customer_id")?),
        version: row.get("version")?,
        address: Address {
            line1: text("line1")?,
            line2: row
                .get::<Option<String>>("line2")?
                .map(|l| parse_stored(&l, Name::parse))
                .transpose()?,
            city: text("city")?,
            region: text("region")?,
            postal_code: parse_stored(&row.get::<String>("postal_code")?, PostalCode::parse)?,
            country: parse_stored(&row.get::<String>("country")?, CountryCode::parse)?,
        },
        location,
        access_notes: row
            .get::<Option<String>>("access_notes")?
            .map(|n| parse_stored(&n, hestami_core::text::Description::parse))
            .transpose()?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

/// Loads a property; `404` unless it exists in this organization and belongs to `customer_id`.
pub(crate) async fn load_property(
    tx: &mut TenantTx,
    customer_id: CustomerId,
    id: PropertyId,
) -> Result<Property, StoreError> {
    let org = tx.org();
    let row = tx
        .fetch_optional(
            &format!("SELECT {PROPERTY_COLUMNS} FROM properties WHERE organization_id = $1 AND customer_id = $2 AND id = $3"),
            args![org, customer_id.as_uuid(), id.as_uuid()],
        )
        .await?;
    row.map(|r| decode_property(&r))
        .transpose()?
        .ok_or_else(|| Failure::not_found("property").into())
}

impl Services {
    /// `customer/v1/getProperty`.
    pub async fn property_get(
        &self,
        caller: &Caller,
        id: PropertyId,
    ) -> Result<Property, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(load_property_by_id(tx, id, false))
        })
        .await
    }

    /// `customer/v1/get`.
    pub async fn customer_get(
        &self,
        caller: &Caller,
        id: CustomerId,
    ) -> Result<Customer, StoreError> {
        self.read(caller, move |tx| Box::pin(load(tx, id, false)))
            .await
    }

    /// `customer/v1/list`: by id, optionally only those whose name or e-mail contains `query`.
    pub async fn customer_list(
        &self,
        caller: &Caller,
        page: PageRequest,
        query: Option<String>,
    ) -> Result<Page<Customer>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let org = tx.org();
                let pattern = query.as_deref().map(like_pattern);
                let mut values = args![org, page.after, pattern, i64::from(page.limit) + 1];
                let scope = super::scope::customers_sql(tx, "id", &mut values);
                let rows = tx
                    .fetch_all(
                        &format!(
                            "SELECT {COLUMNS} FROM customers WHERE organization_id = $1 \
                             AND ($2 IS NULL OR id > $2) \
                             AND ($3 IS NULL OR lower(name) LIKE $3 ESCAPE '\\' OR lower(email) LIKE $3 ESCAPE '\\' \
                                  OR lower(phone) LIKE $3 ESCAPE '\\' \
                                  OR EXISTS (SELECT 1 FROM properties p WHERE p.organization_id = customers.organization_id \
                                      AND p.customer_id = customers.id AND (lower(p.line1) LIKE $3 ESCAPE '\\' \
                                      OR lower(COALESCE(p.line2, '')) LIKE $3 ESCAPE '\\' OR lower(p.city) LIKE $3 ESCAPE '\\' \
                                      OR lower(p.postal_code) LIKE $3 ESCAPE '\\'))){scope} \
                             ORDER BY id LIMIT $4"
                        ),
                        values,
                    )
                    .await?;
                let items = rows.iter().map(decode).collect::<Result<Vec<_>, _>>()?;
                Ok(page.page(items, |c| c.id.as_uuid()))
            })
        })
        .await
    }

    /// `customer/v1/listProperties`: every property of a customer, by id.
    pub async fn customer_list_properties(
        &self,
        caller: &Caller,
        customer_id: CustomerId,
    ) -> Result<Vec<Property>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                load(tx, customer_id, false).await?;
                let org = tx.org();
                let rows = tx
                    .fetch_all(
                        &format!(
                            "SELECT {PROPERTY_COLUMNS} FROM properties WHERE organization_id = $1 \
                             AND customer_id = $2 ORDER BY id"
                        ),
                        args![org, customer_id.as_uuid()],
                    )
                    .await?;
                rows.iter().map(decode_property).collect()
            })
        })
        .await
    }
}
