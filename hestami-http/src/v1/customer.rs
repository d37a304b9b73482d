//! `customer/v1`: customers and their properties.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::customer::{Address, CountryCode, Customer, GeoPoint, PostalCode, Property};
use hestami_core::ids::{CustomerId, PropertyId};
use hestami_core::text::{Email, Name as PersonName, Phone};
use hestami_store::app::customer::{
    CustomerCommand, CustomerUpdate, NewCustomer, NewProperty, PropertyUpdate,
};
use hestami_store::app::{PageRequest, Patch};

use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, Validator, double_option, mutation, query, validate};

/// A customer.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerDto {
    /// Its id.
    pub id: Uuid,
    /// 1 on creation, +1 on each change.
    pub version: i64,
    /// Display name.
    pub name: String,
    /// Contact address.
    pub email: Option<String>,
    /// Contact number.
    pub phone: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Customer> for CustomerDto {
    fn from(c: Customer) -> Self {
        Self {
            id: c.id.as_uuid(),
            version: c.version,
            name: c.name.as_str().to_owned(),
            email: c.email.map(|e| e.as_str().to_owned()),
            phone: c.phone.map(|p| p.as_str().to_owned()),
            created_at: c.created_at,
            updated_at: c.updated_at,
        }
    }
}

/// A street address.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddressDto {
    /// Street and number.
    pub line1: String,
    /// Unit, suite, floor.
    #[serde(default)]
    pub line2: Option<String>,
    /// City or town.
    pub city: String,
    /// State, province or region.
    pub region: String,
    /// Postal code.
    pub postal_code: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country: String,
}

/// A point (WGS 84 degrees).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationDto {
    /// Latitude, -90 to 90.
    pub lat: f64,
    /// Longitude, -180 to 180.
    pub lon: f64,
}

/// A property (a service location).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PropertyDto {
    /// Its id.
    pub id: Uuid,
    /// Whose.
    pub customer_id: Uuid,
    /// 1 on creation, +1 on each change.
    pub version: i64,
    /// Where.
    pub address: AddressDto,
    /// Its coordinates, when known.
    pub location: Option<LocationDto>,
    /// How to get in and what to watch for (gate code, dog, shut-off valve).
    pub access_notes: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<&Address> for AddressDto {
    fn from(a: &Address) -> Self {
        Self {
            line1: a.line1.as_str().to_owned(),
            line2: a.line2.as_ref().map(|l| l.as_str().to_owned()),
            city: a.city.as_str().to_owned(),
            region: a.region.as_str().to_owned(),
            postal_code: a.postal_code.as_str().to_owned(),
            country: a.country.as_str().to_owned(),
        }
    }
}

impl From<Property> for PropertyDto {
    fn from(p: Property) -> Self {
        let a = p.address;
        Self {
            id: p.id.as_uuid(),
            customer_id: p.customer_id.as_uuid(),
            version: p.version,
            address: (&a).into(),
            location: p.location.map(|l| LocationDto {
                lat: l.lat(),
                lon: l.lon(),
            }),
            access_notes: p.access_notes.map(|n| n.as_str().to_owned()),
            created_at: p.created_at,
            updated_at: p.updated_at,
        }
    }
}

/// `customer/v1/create`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateCustomerInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Display name.
    pub name: String,
    /// Contact address.
    pub email: Option<String>,
    /// Contact number.
    pub phone: Option<String>,
}

/// `customer/v1/get`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetCustomerInput {
    /// Which customer.
    pub customer_id: Uuid,
}

/// `customer/v1/list`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListCustomersInput {
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
    /// Only customers whose name, e-mail or phone, or one of whose properties' address (street,
    /// city, postal code), contains this (case-insensitive).
    pub query: Option<String>,
}

/// A page of customers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerPage {
    /// The customers, in creation order.
    pub items: Vec<CustomerDto>,
    /// The cursor of the next page, or null on the last.
    pub next_cursor: Option<String>,
}

/// `customer/v1/update`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdateCustomerInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which customer.
    pub customer_id: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the customer is at this version.
    pub expected_version: Option<i64>,
    /// A new name.
    pub name: Option<String>,
    /// A new e-mail address, or null to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// A new phone number, or null to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
}

/// `customer/v1/addProperty`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AddPropertyInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Whose property.
    pub customer_id: Uuid,
    /// Where.
    pub address: AddressDto,
    /// Its coordinates, when known.
    pub location: Option<LocationDto>,
    /// How to get in and what to watch for (gate code, dog, shut-off valve): shown to the
    /// technician with each visit.
    pub access_notes: Option<String>,
}

/// `customer/v1/getProperty`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetPropertyInput {
    /// Which property.
    pub property_id: Uuid,
}

/// `customer/v1/updateProperty`: absent fields are kept. A new `address` without `location`
/// clears the stored coordinates (they were the old address's).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpdatePropertyInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which property.
    pub property_id: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the property is at this version.
    pub expected_version: Option<i64>,
    /// A new address.
    pub address: Option<AddressDto>,
    /// New coordinates, or null to clear them.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<LocationDto>)]
    pub location: Option<Option<LocationDto>>,
    /// New access notes, or null to clear them.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub access_notes: Option<Option<String>>,
}

/// `customer/v1/listProperties`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListPropertiesInput {
    /// Whose properties.
    pub customer_id: Uuid,
}

/// A customer's properties.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PropertyList {
    /// The properties, in creation order.
    pub items: Vec<PropertyDto>,
}

mutating!(
    CreateCustomerInput,
    UpdateCustomerInput,
    AddPropertyInput,
    UpdatePropertyInput
);

/// Parses a patch of an optional text field.
pub(crate) fn patch<T>(
    v: &mut Validator,
    field: &str,
    raw: Option<Option<String>>,
    parse: impl FnOnce(&str) -> Result<T, hestami_core::Invalid>,
) -> Option<Patch<T>> {
    match raw {
        None => Some(Patch::Keep),
        Some(None) => Some(Patch::Clear),
        Some(Some(raw)) => v.check(field, parse(&raw)).map(Patch::Set),
    }
}

fn convert_create(i: CreateCustomerInput) -> Result<CustomerCommand, ApiError> {
    validate(|v| {
        let name = v.check("name", PersonName::parse(&i.name));
        let email = v.optional("email", i.email.as_deref(), Email::parse);
        let phone = v.optional("phone", i.phone.as_deref(), Phone::parse);
        Some(CustomerCommand::Create(NewCustomer {
            name: name?,
            email: email?,
            phone: phone?,
        }))
    })
}

fn convert_update(i: UpdateCustomerInput) -> Result<CustomerCommand, ApiError> {
    validate(|v| {
        let name = v.optional("name", i.name.as_deref(), PersonName::parse);
        let email = patch(v, "email", i.email, Email::parse);
        let phone = patch(v, "phone", i.phone, Phone::parse);
        Some(CustomerCommand::Update(CustomerUpdate {
            customer_id: CustomerId::from_uuid(i.customer_id),
            expected_version: i.expected_version,
            name: name?,
            email: email?,
            phone: phone?,
        }))
    })
}

/// An address at `address.…`.
/// An address at `address.…`.
pub(crate) fn address(v: &mut Validator, a: &AddressDto) -> Option<Address> {
    let line1 = v.check("address.line1", PersonName::parse(&a.line1));
    let line2 = v.optional("address.line2", a.line2.as_deref(), PersonName::parse);
    let city = v.check("address.city", PersonName::parse(&a.city));
    let region = v.check("address.region", PersonName::parse(&a.region));
    let postal_code = v.check("address.postalCode", PostalCode::parse(&a.postal_code));
    let country = v.check("address.country", CountryCode::parse(&a.country));
    Some(Address {
        line1: line1?,
        line2: line2?,
        city: city?,
        region: region?,
        postal_code: postal_code?,
        country: country?,
    })
}

/// Coordinates at `location.…`.
fn location(v: &mut Validator, l: &LocationDto) -> Option<GeoPoint> {
    match GeoPoint::parse(l.lat, l.lon) {
        Ok(p) => Some(p),
        Err((field, invalid)) => {
            v.fail(&format!("location.{field}"), invalid.code, &invalid.message);
            None
        }
    }
}

fn convert_add_property(i: AddPropertyInput) -> Result<CustomerCommand, ApiError> {
    validate(|v| {
        let address = address(v, &i.address);
        let access_notes = v.optional(
            "accessNotes",
            i.access_notes.as_deref(),
            hestami_core::text::Description::parse,
        );
        let location = match &i.location {
            None => Some(None),
            Some(l) => location(v, l).map(Some),
        };
        Some(CustomerCommand::AddProperty(NewProperty {
            customer_id: CustomerId::from_uuid(i.customer_id),
            address: address?,
            location: location?,
            access_notes: access_notes?,
        }))
    })
}

fn convert_update_property(i: UpdatePropertyInput) -> Result<CustomerCommand, ApiError> {
    validate(|v| {
        let address = match &i.address {
            None => Some(None),
            Some(a) => address(v, a).map(Some),
        };
        let location = match &i.location {
            None => Some(Patch::Keep),
            Some(None) => Some(Patch::Clear),
            Some(Some(l)) => location(v, l).map(Patch::Set),
        };
        let access_notes = patch(
            v,
            "accessNotes",
            i.access_notes,
            hestami_core::text::Description::parse,
        );
        Some(CustomerCommand::UpdateProperty(PropertyUpdate {
            property_id: PropertyId::from_uuid(i.property_id),
            expected_version: i.expected_version,
            address: address?,
            location: location?,
            access_notes: access_notes?,
        }))
    })
}

async fn get_property(ctx: Ctx, i: GetPropertyInput) -> Result<PropertyDto, ApiError> {
    Ok(ctx
        .services
        .property_get(ctx.caller()?, PropertyId::from_uuid(i.property_id))
        .await?
        .into())
}

async fn get(ctx: Ctx, i: GetCustomerInput) -> Result<CustomerDto, ApiError> {
    Ok(ctx
        .services
        .customer_get(ctx.caller()?, CustomerId::from_uuid(i.customer_id))
        .await?
        .into())
}

async fn list(ctx: Ctx, i: ListCustomersInput) -> Result<CustomerPage, ApiError> {
    let page = PageRequest::parse(i.limit, i.cursor.as_deref())?;
    let query = i
        .query
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty());
    let page = ctx
        .services
        .customer_list(ctx.caller()?, page, query)
        .await?;
    Ok(CustomerPage {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    })
}

async fn list_properties(ctx: Ctx, i: ListPropertiesInput) -> Result<PropertyList, ApiError> {
    let items = ctx
        .services
        .customer_list_properties(ctx.caller()?, CustomerId::from_uuid(i.customer_id))
        .await?;
    Ok(PropertyList {
        items: items.into_iter().map(Into::into).collect(),
    })
}

fn name(name: &'static str, summary: &'static str, errors: &'static [&'static str]) -> Name {
    Name {
        namespace: "customer",
        version: "v1",
        name,
        summary,
        errors,
    }
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        mutation(
            name("create", "Create a customer", &[]),
            convert_create,
            <CustomerDto as From<Customer>>::from,
        ),
        query(name("get", "A customer", &["NOT_FOUND"]), get),
        query(
            name(
                "list",
                "Customers, by creation, optionally filtered by name or e-mail",
                &[],
            ),
            list,
        ),
        mutation(
            name(
                "update",
                "Change a customer",
                &["NOT_FOUND", "VERSION_CONFLICT"],
            ),
            convert_update,
            <CustomerDto as From<Customer>>::from,
        ),
        mutation(
            name(
                "addProperty",
                "Add a service location to a customer",
                &["NOT_FOUND"],
            ),
            convert_add_property,
            <PropertyDto as From<Property>>::from,
        ),
        query(
            name("listProperties", "A customer's properties", &["NOT_FOUND"]),
            list_properties,
        ),
        query(
            name("getProperty", "A property", &["NOT_FOUND"]),
            get_property,
        ),
        mutation(
            name(
                "updateProperty",
                "Change a property's address, coordinates or access notes",
                &["NOT_FOUND", "VERSION_CONFLICT"],
            ),
            convert_update_property,
            <PropertyDto as From<Property>>::from,
        ),
    ]
}
