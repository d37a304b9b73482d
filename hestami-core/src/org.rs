//! Organizations, users, memberships, roles and the permission table.
//!
//! An organization is the tenant boundary: every other record belongs to exactly one. A user may
//! be a member of several organizations, with one role in each; the role decides which
//! procedures the user may call there, through [`is_permitted`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Invalid;
use crate::ids::{OrganizationId, UserId};
use crate::text::{Email, Name, OrgName};

/// What kind of organization this is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgKind {
    /// A trade contractor: the organizations this product runs.
    Contractor,
    /// A community association that sends work orders to contractors.
    Hoa,
}

impl OrgKind {
    /// The snake_case name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Contractor => "contractor",
            Self::Hoa => "hoa",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "contractor" => Ok(Self::Contractor),
            "hoa" => Ok(Self::Hoa),
            _ => Err(Invalid::new(
                "invalid_kind",
                "the kind is contractor or hoa",
            )),
        }
    }
}

/// An IANA time zone such as `America/Chicago`. Shifts, appointment windows and "the day" of a
/// dispatch board are in the organization's zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimeZone(chrono_tz::Tz);

impl TimeZone {
    /// Accepts a name from the IANA time zone database.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        raw.trim().parse::<chrono_tz::Tz>().map(Self).map_err(|_| {
            Invalid::new(
                "invalid_time_zone",
                format!("{raw:?} is not an IANA time zone (such as America/Chicago)"),
            )
        })
    }

    /// Every name [`TimeZone::parse`] accepts (untrimmed), for the API document's enum.
    pub fn names() -> impl Iterator<Item = &'static str> {
        chrono_tz::TZ_VARIANTS.iter().map(|z| z.name())
    }

    /// The zone's IANA name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }

    /// The zone, for local-time arithmetic.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.0
    }
}

impl Serialize for TimeZone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for TimeZone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// ISO 4217 currencies this product accepts, with their minor unit (decimal places).
const CURRENCIES: &[(&str, u32)] = &[
    ("AED", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EGP", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KRW", 0),
    ("KWD", 3),
    ("MXN", 2),
    ("MYR", 2),
    ("NGN", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PEN", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("RON", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TND", 3),
    ("TRY", 2),
    ("TWD", 2),
    ("UAH", 2),
    ("USD", 2),
    ("VND", 0),
    ("ZAR", 2),
];

/// An ISO 4217 currency code with its minor unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    minor_unit: u32,
}

impl Currency {
    /// Accepts a supported ISO 4217 code, in any case.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let upper = raw.trim().to_ascii_uppercase();
        CURRENCIES
            .iter()
            .find(|(code, _)| *code == upper)
            .map(|&(code, minor_unit)| Self { code, minor_unit })
            .ok_or_else(|| {
                Invalid::new(
                    "invalid_currency",
                    format!("{raw:?} is not a supported ISO 4217 currency code"),
                )
            })
    }

    /// The three-letter code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// How many decimal places amounts in this currency carry.
    pub fn minor_unit(&self) -> u32 {
        self.minor_unit
    }
}

impl Serialize for Currency {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// How long the organization promises to take, from a job's creation, to respond to it, by
/// priority. In whole minutes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlaWindows {
    /// Response window for emergencies.
    pub emergency_minutes: u32,
    /// Response window for urgent jobs.
    pub urgent_minutes: u32,
    /// Response window for routine jobs.
    pub routine_minutes: u32,
}

impl SlaWindows {
    /// The longest window accepted: 90 days.
    pub const MAX_MINUTES: u32 = 90 * 24 * 60;

    /// Accepts windows that are each between one minute and 90 days and ordered
    /// emergency ≤ urgent ≤ routine. Returns every problem, with the field it concerns.
    pub fn parse(
        emergency_minutes: u32,
        urgent_minutes: u32,
        routine_minutes: u32,
    ) -> Result<Self, Vec<(&'static str, Invalid)>> {
        let mut problems = Vec::new();
        for (field, value) in [
            ("emergencyMinutes", emergency_minutes),
            ("urgentMinutes", urgent_minutes),
            ("routineMinutes", routine_minutes),
        ] {
            if value == 0 || value > Self::MAX_MINUTES {
                problems.push((
                    field,
                    Invalid::new("out_of_range", "a response window is 1 minute to 90 days"),
                ));
            }
        }
        if problems.is_empty()
            && !(emergency_minutes <= urgent_minutes && urgent_minutes <= routine_minutes)
        {
            problems.push((
                "urgentMinutes",
                Invalid::new(
                    "out_of_order",
                    "windows must be ordered emergency ≤ urgent ≤ routine",
                ),
            ));
        }
        if problems.is_empty() {
            Ok(Self {
                emergency_minutes,
                urgent_minutes,
                routine_minutes,
            })
        } else {
            Err(problems)
        }
    }
}

impl SlaWindows {
    /// The windows of a member whose maintenance plan promises `priority`: none longer than
    /// that priority's (an emergency keeps its own, shorter one).
    pub fn for_member(self, priority: crate::job::Priority) -> Self {
        let cap = u32::try_from(priority.response_window(&self).num_minutes()).unwrap_or(u32::MAX);
        Self {
            emergency_minutes: self.emergency_minutes.min(cap),
            urgent_minutes: self.urgent_minutes.min(cap),
            routine_minutes: self.routine_minutes.min(cap),
        }
    }
}

impl Default for SlaWindows {
    /// Two hours for emergencies, one working day for urgent jobs, three days for routine ones.
    fn default() -> Self {
        Self {
            emergency_minutes: 120,
            urgent_minutes: 24 * 60,
            routine_minutes: 72 * 60,
        }
    }
}

/// An organization (a tenant).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    /// Its id.
    pub id: OrganizationId,
    /// Incremented on every change.
    pub version: i64,
    /// Contractor or HOA.
    pub kind: OrgKind,
    /// Display name.
    pub name: OrgName,
    /// The zone its local times are in.
    pub time_zone: TimeZone,
    /// The currency it bills in.
    pub currency: Currency,
    /// Its response promises.
    pub sla: SlaWindows,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A person who can sign in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// The address it signs in with; unique.
    pub email: Email,
    /// Display name.
    pub name: Option<Name>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A role within one organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including the organization itself.
    Owner,
    /// Everything but ownership.
    Admin,
    /// Plans and assigns work.
    Dispatcher,
    /// Customers, jobs and (later) money.
    Office,
    /// A technician in the field: reads, and moves their jobs along.
    Technician,
    /// Reads only.
    Viewer,
}

impl Role {
    /// Every role, most powerful first.
    pub const ALL: [Role; 6] = [
        Self::Owner,
        Self::Admin,
        Self::Dispatcher,
        Self::Office,
        Self::Technician,
        Self::Viewer,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Owner => "owner",
            Self::Admin => "admin",
            Self::Dispatcher => "dispatcher",
            Self::Office => "office",
            Self::Technician => "technician",
            Self::Viewer => "viewer",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == raw)
            .ok_or_else(|| {
                Invalid::new(
                    "invalid_role",
                    "the role is owner, admin, dispatcher, office, technician or viewer",
                )
            })
    }
}

/// A user's membership of an organization.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    /// The organization.
    pub organization_id: OrganizationId,
    /// The member.
    pub user_id: UserId,
    /// What the member may do there.
    pub role: Role,
}

use Role::{Admin, Dispatcher, Office, Owner, Technician, Viewer};

const EVERYONE: &[Role] = &[Owner, Admin, Dispatcher, Office, Technician, Viewer];
const MANAGERS: &[Role] = &[Owner, Admin];
const OFFICE: &[Role] = &[Owner, Admin, Dispatcher, Office];
const DISPATCH: &[Role] = &[Owner, Admin, Dispatcher];
const FIELD: &[Role] = &[Owner, Admin, Dispatcher, Office, Technician];
/// Everyone who may see all of the organization's records: a technician sees their own work.
const ALL_RECORDS: &[Role] = &[Owner, Admin, Dispatcher, Office, Viewer];

/// Which roles may call which procedure, by `namespace/version/procedure`. A procedure that is
/// not listed may be called by nobody: adding a procedure means deciding who may call it.
pub const PERMISSIONS: &[(&str, &[Role])] = &[
    // The sign-in procedures are public (no token, no organization, so no role); they are
    // listed so that every procedure has a row.
    ("auth/v1/login", EVERYONE),
    ("auth/v1/refresh", EVERYONE),
    ("auth/v1/acceptInvite", EVERYONE),
    ("auth/v1/logout", EVERYONE),
    ("auth/v1/whoami", EVERYONE),
    ("org/v1/get", EVERYONE),
    ("org/v1/update", MANAGERS),
    ("member/v1/invite", MANAGERS),
    ("member/v1/list", MANAGERS),
    ("member/v1/setRole", MANAGERS),
    ("member/v1/remove", MANAGERS),
    ("token/v1/list", MANAGERS),
    ("token/v1/createIntegration", MANAGERS),
    ("token/v1/revoke", MANAGERS),
    ("inventory/v1/createLocation", OFFICE),
    ("inventory/v1/listLocations", EVERYONE),
    ("inventory/v1/receive", OFFICE),
    ("inventory/v1/transfer", OFFICE),
    ("inventory/v1/adjust", OFFICE),
    ("inventory/v1/recordUsage", FIELD),
    ("inventory/v1/stock", EVERYONE),
    ("inventory/v1/ledger", EVERYONE),
    ("inventory/v1/reserve", OFFICE),
    ("inventory/v1/release", OFFICE),
    ("inventory/v1/returnUsage", FIELD),
    ("inventory/v1/sendTransfer", OFFICE),
    ("inventory/v1/receiveTransfer", FIELD),
    ("inventory/v1/cancelTransfer", OFFICE),
    ("inventory/v1/transfers", EVERYONE),
    ("inventory/v1/jobUsage", EVERYONE),
    ("inventory/v1/setTracking", OFFICE),
    ("inventory/v1/serials", EVERYONE),
    ("inventory/v1/createSupplier", OFFICE),
    ("inventory/v1/listSuppliers", OFFICE),
    ("inventory/v1/setSupplierItem", OFFICE),
    ("inventory/v1/setReorderPoint", OFFICE),
    ("inventory/v1/reorderPoints", EVERYONE),
    ("inventory/v1/createPurchaseOrder", OFFICE),
    ("inventory/v1/submitPurchaseOrder", OFFICE),
    ("inventory/v1/receivePurchaseOrder", OFFICE),
    ("inventory/v1/cancelPurchaseOrder", OFFICE),
    ("inventory/v1/closePurchaseOrder", OFFICE),
    ("inventory/v1/recordSupplierBill", OFFICE),
    ("inventory/v1/getPurchaseOrder", OFFICE),
    ("inventory/v1/purchaseOrders", OFFICE),
    ("maintenance/v1/createPlan", MANAGERS),
    ("maintenance/v1/setPlanPrices", MANAGERS),
    ("maintenance/v1/getPlan", ALL_RECORDS),
    ("maintenance/v1/listPlans", ALL_RECORDS),
    ("maintenance/v1/createContract", OFFICE),
    ("maintenance/v1/activate", OFFICE),
    ("maintenance/v1/suspend", OFFICE),
    ("maintenance/v1/resume", OFFICE),
    ("maintenance/v1/cancel", OFFICE),
    ("maintenance/v1/changeSchedule", OFFICE),
    ("maintenance/v1/changePlan", OFFICE),
    ("maintenance/v1/setAutopay", OFFICE),
    ("maintenance/v1/get", ALL_RECORDS),
    ("maintenance/v1/list", ALL_RECORDS),
    ("maintenance/v1/visits", ALL_RECORDS),
    ("maintenance/v1/invoices", ALL_RECORDS),
    ("maintenance/v1/report", ALL_RECORDS),
    ("workOrder/v1/addProperty", MANAGERS),
    ("workOrder/v1/properties", ALL_RECORDS),
    ("workOrder/v1/setVendorRequirements", MANAGERS),
    ("workOrder/v1/vendorRequirements", ALL_RECORDS),
    ("workOrder/v1/inviteVendor", MANAGERS),
    ("workOrder/v1/answerInvitation", MANAGERS),
    ("workOrder/v1/links", ALL_RECORDS),
    ("contractor/v1/getProfile", EVERYONE),
    ("contractor/v1/updateProfile", MANAGERS),
    ("contractor/v1/addLicense", MANAGERS),
    ("contractor/v1/updateLicense", MANAGERS),
    ("contractor/v1/removeLicense", MANAGERS),
    ("contractor/v1/verifyLicense", MANAGERS),
    ("contractor/v1/addInsurance", MANAGERS),
    ("contractor/v1/updateInsurance", MANAGERS),
    ("contractor/v1/removeInsurance", MANAGERS),
    ("contractor/v1/listCredentials", EVERYONE),
    ("contractor/v1/setServiceAreas", MANAGERS),
    ("contractor/v1/getServiceAreas", EVERYONE),
    ("contractor/v1/getRequirements", EVERYONE),
    ("contractor/v1/setRequirements", MANAGERS),
    ("contractor/v1/getTrades", EVERYONE),
    ("contractor/v1/setTrades", MANAGERS),
    ("contractor/v1/complianceStatus", EVERYONE),
    ("contractor/v1/listExpiring", EVERYONE),
    ("customer/v1/create", OFFICE),
    ("customer/v1/get", EVERYONE),
    ("customer/v1/list", EVERYONE),
    ("customer/v1/update", OFFICE),
    ("customer/v1/addProperty", OFFICE),
    ("customer/v1/listProperties", EVERYONE),
    ("customer/v1/getProperty", EVERYONE),
    ("customer/v1/updateProperty", OFFICE),
    ("technician/v1/create", MANAGERS),
    ("technician/v1/get", EVERYONE),
    ("technician/v1/list", EVERYONE),
    ("technician/v1/update", MANAGERS),
    ("technician/v1/deactivate", MANAGERS),
    ("technician/v1/getProfile", EVERYONE),
    ("technician/v1/availability", EVERYONE),
    ("technician/v1/setSkills", MANAGERS),
    ("technician/v1/addCertification", MANAGERS),
    ("technician/v1/removeCertification", MANAGERS),
    ("technician/v1/setShifts", MANAGERS),
    ("technician/v1/addTimeOff", MANAGERS),
    ("technician/v1/removeTimeOff", MANAGERS),
    ("technician/v1/setServiceAreas", MANAGERS),
    ("technician/v1/setHomeBase", MANAGERS),
    ("technician/v1/linkUser", MANAGERS),
    ("technician/v1/invite", MANAGERS),
    ("technician/v1/devices", MANAGERS),
    ("technician/v1/revokeDevice", MANAGERS),
    // A device reports its technician's position; an owner who also works in the field reports
    // their own technician's (the office roles are not refused: they may be that person).
    ("technician/v1/reportLocation", FIELD),
    ("technician/v1/positions", EVERYONE),
    ("technician/v1/punch", FIELD),
    ("technician/v1/timesheet", EVERYONE),
    ("technician/v1/submitTimesheet", FIELD),
    ("technician/v1/approveTimesheet", MANAGERS),
    ("technician/v1/setOvertimeRule", MANAGERS),
    ("technician/v1/myDay", EVERYONE),
    ("job/v1/create", OFFICE),
    ("job/v1/schedule", OFFICE),
    ("job/v1/updateStatus", FIELD),
    ("job/v1/callback", OFFICE),
    ("job/v1/update", OFFICE),
    ("job/v1/get", EVERYONE),
    ("job/v1/list", EVERYONE),
    ("job/v1/timeline", EVERYONE),
    ("job/v1/recordActuals", FIELD),
    ("job/v1/work", EVERYONE),
    ("dispatch/v1/assignTech", DISPATCH),
    ("dispatch/v1/eligibleTechs", OFFICE),
    ("dispatch/v1/board", OFFICE),
    ("dispatch/v1/suggestSlots", OFFICE),
    ("dispatch/v1/getSettings", EVERYONE),
    ("dispatch/v1/updateSettings", MANAGERS),
    ("dispatch/v1/optimize", DISPATCH),
    ("dispatch/v1/applyPlan", DISPATCH),
    ("dispatch/v1/getPlan", OFFICE),
    ("dispatch/v1/placeVisit", OFFICE),
    ("pricebook/v1/createItem", OFFICE),
    ("pricebook/v1/updateItem", OFFICE),
    ("pricebook/v1/archiveItem", OFFICE),
    ("pricebook/v1/getItem", EVERYONE),
    ("pricebook/v1/listItems", EVERYONE),
    ("pricebook/v1/setMarkupTiers", MANAGERS),
    ("pricebook/v1/setTaxRates", MANAGERS),
    ("pricebook/v1/getSettings", EVERYONE),
    ("pricebook/v1/quote", EVERYONE),
    ("pricebook/v1/importBatch", OFFICE),
    // Technicians present estimates and take the customer's signature on site.
    ("estimate/v1/generate", FIELD),
    ("estimate/v1/revise", FIELD),
    ("estimate/v1/send", FIELD),
    ("estimate/v1/approve", FIELD),
    ("estimate/v1/decline", FIELD),
    ("estimate/v1/convertToJob", OFFICE),
    ("estimate/v1/get", EVERYONE),
    ("estimate/v1/list", EVERYONE),
    ("estimate/v1/pdf", EVERYONE),
    ("invoice/v1/create", OFFICE),
    ("invoice/v1/update", OFFICE),
    ("invoice/v1/issue", OFFICE),
    ("invoice/v1/void", OFFICE),
    ("invoice/v1/collectPayment", FIELD),
    ("invoice/v1/refund", MANAGERS),
    ("invoice/v1/creditNote", MANAGERS),
    ("invoice/v1/writeOff", MANAGERS),
    ("invoice/v1/get", EVERYONE),
    ("invoice/v1/list", EVERYONE),
    ("invoice/v1/pdf", EVERYONE),
    ("workflow/v1/get", MANAGERS),
    ("workflow/v1/list", MANAGERS),
    ("workflow/v1/cancel", MANAGERS),
    ("workflow/v1/resume", MANAGERS),
    // A photo, a document or the customer's signature, from the field or the office; the blob
    // path (`PUT /api/v1/blobs/{sha256}`) is allowed to whoever may attach, its download to
    // whoever may list.
    ("attachment/v1/attach", FIELD),
    ("attachment/v1/list", EVERYONE),
    ("attachment/v1/downloadLink", EVERYONE),
    // Checklists: the office defines them, the field answers them.
    ("form/v1/defineTemplate", OFFICE),
    ("form/v1/templates", EVERYONE),
    ("form/v1/answer", FIELD),
    ("form/v1/ofJob", EVERYONE),
    // Every change of every record of the organization (a technician pulls their own through
    // sync/v1/pull).
    ("feed/v1/changes", ALL_RECORDS),
    ("sync/v1/pull", EVERYONE),
    // Each item is checked against this table as the call it is.
    ("sync/v1/push", EVERYONE),
    // What the organization tells people, and the outbox behind it; owners and admins set
    // templates and re-drive dead messages.
    ("notification/v1/templates", MANAGERS),
    ("notification/v1/setTemplate", MANAGERS),
    ("notification/v1/messages", MANAGERS),
    ("notification/v1/redrive", MANAGERS),
    // Webhooks carry every change of the organization to an endpoint: owners and admins only.
    ("webhook/v1/create", MANAGERS),
    ("webhook/v1/update", MANAGERS),
    ("webhook/v1/rotateSecret", MANAGERS),
    ("webhook/v1/redeliver", MANAGERS),
    ("webhook/v1/list", MANAGERS),
    ("webhook/v1/get", MANAGERS),
    ("webhook/v1/deliveries", MANAGERS),
];

/// The same for the version 2 procedures (a table per contract version, so that each
/// version's table lists exactly its procedures).
pub const PERMISSIONS_V2: &[(&str, &[Role])] = &[
    ("job/v2/addAppointment", OFFICE),
    ("job/v2/rescheduleAppointment", OFFICE),
    ("job/v2/cancelAppointment", OFFICE),
    ("job/v2/assignTechnician", DISPATCH),
    ("job/v2/unassignTechnician", DISPATCH),
    // The field moves and completion are the technician's, as `job/v1/updateStatus` is.
    ("job/v2/moveAppointment", FIELD),
    ("job/v2/complete", FIELD),
    ("job/v2/addNote", FIELD),
    ("job/v2/notes", EVERYONE),
    ("job/v2/get", EVERYONE),
    ("job/v2/timeline", EVERYONE),
    ("job/v2/list", EVERYONE),
];

/// May a member with `role` call `procedure` (`namespace/version/name`)?
pub fn is_permitted(role: Role, procedure: &str) -> bool {
    PERMISSIONS
        .iter()
        .chain(PERMISSIONS_V2)
        .find(|(name, _)| *name == procedure)
        .is_some_and(|(_, roles)| roles.contains(&role))
}

/// May a member with `role` book a first visit after a job's SLA deadline (an override with a
/// reason)? Dispatchers and above.
pub fn may_override_sla(role: Role) -> bool {
    DISPATCH.contains(&role)
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    #[test]
    fn time_zones_and_currencies_parse() {
        assert_eq!(
            TimeZone::parse("America/Chicago").map(|z| z.name()),
            Ok("America/Chicago")
        );
        assert_eq!(
            TimeZone::parse("Mars/Olympus").map_err(|e| e.code),
            Err("invalid_time_zone")
        );
        let usd = Currency::parse("usd").expect("USD is listed");
        assert_eq!((usd.code(), usd.minor_unit()), ("USD", 2));
        assert_eq!(Currency::parse("JPY").map(|c| c.minor_unit()), Ok(0));
        assert!(Currency::parse("XXX").is_err());
    }

    #[test]
    fn sla_windows_are_bounded_and_ordered() {
        assert!(SlaWindows::parse(60, 240, 1440).is_ok());
        let fields = |r: Result<SlaWindows, Vec<(&'static str, Invalid)>>| {
            r.err()
                .map(|p| p.into_iter().map(|(f, i)| (f, i.code)).collect::<Vec<_>>())
        };
        assert_eq!(
            fields(SlaWindows::parse(0, 240, 200_000)),
            Some(vec![
                ("emergencyMinutes", "out_of_range"),
                ("routineMinutes", "out_of_range")
            ])
        );
        assert_eq!(
            fields(SlaWindows::parse(300, 240, 1440)),
            Some(vec![("urgentMinutes", "out_of_order")])
        );
    }

    #[test]
    fn a_member_priority_caps_every_window_at_its_own() {
        use crate::job::Priority;
        let sla = SlaWindows::parse(120, 1440, 4320).expect("ordered");
        let urgent = sla.for_member(Priority::Urgent);
        assert_eq!(
            (
                urgent.emergency_minutes,
                urgent.urgent_minutes,
                urgent.routine_minutes
            ),
            (120, 1440, 1440)
        );
        assert_eq!(sla.for_member(Priority::Routine), sla);
        assert_eq!(sla.for_member(Priority::Emergency).routine_minutes, 120);
    }

    #[test]
    fn unknown_procedures_are_permitted_to_nobody() {
        for role in Role::ALL {
            assert!(!is_permitted(role, "job/v1/explode"));
            assert!(is_permitted(role, "job/v1/get"));
        }
    }

    #[test]
    fn permission_table_snapshot() {
        let table: String = PERMISSIONS
            .iter()
            .map(|(p, roles)| {
                let names: Vec<_> = roles.iter().map(|r| r.as_str()).collect();
                format!("{p:<30} {}\n", names.join(" "))
            })
            .collect();
        expect![[r#"
            auth/v1/login                  owner admin dispatcher office technician viewer
            auth/v1/refresh                owner admin dispatcher office technician viewer
            auth/v1/acceptInvite           owner admin dispatcher office technician viewer
            auth/v1/logout                 owner admin dispatcher office technician viewer
            auth/v1/whoami                 owner admin dispatcher office technician viewer
            org/v1/get                     owner admin dispatcher office technician viewer
            org/v1/update                  owner admin
            member/v1/invite               owner admin
            member/v1/list                 owner admin
            member/v1/setRole              owner admin
            member/v1/remove               owner admin
            token/v1/list                  owner admin
            token/v1/createIntegration     owner admin
            token/v1/revoke                owner admin
            inventory/v1/createLocation    owner admin dispatcher office
            inventory/v1/listLocations     owner admin dispatcher office technician viewer
            inventory/v1/receive           owner admin dispatcher office
            inventory/v1/transfer          owner admin dispatcher office
            inventory/v1/adjust            owner admin dispatcher office
            inventory/v1/recordUsage       owner admin dispatcher office technician
            inventory/v1/stock             owner admin dispatcher office technician viewer
            inventory/v1/ledger            owner admin dispatcher office technician viewer
            inventory/v1/reserve           owner admin dispatcher office
            inventory/v1/release           owner admin dispatcher office
            inventory/v1/returnUsage       owner admin dispatcher office technician
            inventory/v1/sendTransfer      owner admin dispatcher office
            inventory/v1/receiveTransfer   owner admin dispatcher office technician
            inventory/v1/cancelTransfer    owner admin dispatcher office
            inventory/v1/transfers         owner admin dispatcher office technician viewer
            inventory/v1/jobUsage          owner admin dispatcher office technician viewer
            inventory/v1/setTracking       owner admin dispatcher office
            inventory/v1/serials           owner admin dispatcher office technician viewer
            inventory/v1/createSupplier    owner admin dispatcher office
            inventory/v1/listSuppliers     owner admin dispatcher office
            inventory/v1/setSupplierItem   owner admin dispatcher office
            inventory/v1/setReorderPoint   owner admin dispatcher office
            inventory/v1/reorderPoints     owner admin dispatcher office technician viewer
            inventory/v1/createPurchaseOrder owner admin dispatcher office
            inventory/v1/submitPurchaseOrder owner admin dispatcher office
            inventory/v1/receivePurchaseOrder owner admin dispatcher office
            inventory/v1/cancelPurchaseOrder owner admin dispatcher office
            inventory/v1/closePurchaseOrder owner admin dispatcher office
            inventory/v1/recordSupplierBill owner admin dispatcher office
            inventory/v1/getPurchaseOrder  owner admin dispatcher office
            inventory/v1/purchaseOrders    owner admin dispatcher office
            maintenance/v1/createPlan      owner admin
            maintenance/v1/setPlanPrices   owner admin
            maintenance/v1/getPlan         owner admin dispatcher office viewer
            maintenance/v1/listPlans       owner admin dispatcher office viewer
            maintenance/v1/createContract  owner admin dispatcher office
            maintenance/v1/activate        owner admin dispatcher office
            maintenance/v1/suspend         owner admin dispatcher office
            maintenance/v1/resume          owner admin dispatcher office
            maintenance/v1/cancel          owner admin dispatcher office
            maintenance/v1/changeSchedule  owner admin dispatcher office
            maintenance/v1/changePlan      owner admin dispatcher office
            maintenance/v1/setAutopay      owner admin dispatcher office
            maintenance/v1/get             owner admin dispatcher office viewer
            maintenance/v1/list            owner admin dispatcher office viewer
            maintenance/v1/visits          owner admin dispatcher office viewer
            maintenance/v1/invoices        owner admin dispatcher office viewer
            maintenance/v1/report          owner admin dispatcher office viewer
            workOrder/v1/addProperty       owner admin
            workOrder/v1/properties        owner admin dispatcher office viewer
            workOrder/v1/setVendorRequirements owner admin
            workOrder/v1/vendorRequirements owner admin dispatcher office viewer
            workOrder/v1/inviteVendor      owner admin
            workOrder/v1/answerInvitation  owner admin
            workOrder/v1/links             owner admin dispatcher office viewer
            contractor/v1/getProfile       owner admin dispatcher office technician viewer
            contractor/v1/updateProfile    owner admin
            contractor/v1/addLicense       owner admin
            contractor/v1/updateLicense    owner admin
            contractor/v1/removeLicense    owner admin
            contractor/v1/verifyLicense    owner admin
            contractor/v1/addInsurance     owner admin
            contractor/v1/updateInsurance  owner admin
            contractor/v1/removeInsurance  owner admin
            contractor/v1/listCredentials  owner admin dispatcher office technician viewer
            contractor/v1/setServiceAreas  owner admin
            contractor/v1/getServiceAreas  owner admin dispatcher office technician viewer
            contractor/v1/getRequirements  owner admin dispatcher office technician viewer
            contractor/v1/setRequirements  owner admin
            contractor/v1/getTrades        owner admin dispatcher office technician viewer
            contractor/v1/setTrades        owner admin
            contractor/v1/complianceStatus owner admin dispatcher office technician viewer
            contractor/v1/listExpiring     owner admin dispatcher office technician viewer
            customer/v1/create             owner admin dispatcher office
            customer/v1/get                owner admin dispatcher office technician viewer
            customer/v1/list               owner admin dispatcher office technician viewer
            customer/v1/update             owner admin dispatcher office
            customer/v1/addProperty        owner admin dispatcher office
            customer/v1/listProperties     owner admin dispatcher office technician viewer
            customer/v1/getProperty        owner admin dispatcher office technician viewer
            customer/v1/updateProperty     owner admin dispatcher office
            technician/v1/create           owner admin
            technician/v1/get              owner admin dispatcher office technician viewer
            technician/v1/list             owner admin dispatcher office technician viewer
            technician/v1/update           owner admin
            technician/v1/deactivate       owner admin
            technician/v1/getProfile       owner admin dispatcher office technician viewer
            technician/v1/availability     owner admin dispatcher office technician viewer
            technician/v1/setSkills        owner admin
            technician/v1/addCertification owner admin
            technician/v1/removeCertification owner admin
            technician/v1/setShifts        owner admin
            technician/v1/addTimeOff       owner admin
            technician/v1/removeTimeOff    owner admin
            technician/v1/setServiceAreas  owner admin
            technician/v1/setHomeBase      owner admin
            technician/v1/linkUser         owner admin
            technician/v1/invite           owner admin
            technician/v1/devices          owner admin
            technician/v1/revokeDevice     owner admin
            technician/v1/reportLocation   owner admin dispatcher office technician
            technician/v1/positions        owner admin dispatcher office technician viewer
            technician/v1/punch            owner admin dispatcher office technician
            technician/v1/timesheet        owner admin dispatcher office technician viewer
            technician/v1/submitTimesheet  owner admin dispatcher office technician
            technician/v1/approveTimesheet owner admin
            technician/v1/setOvertimeRule  owner admin
            technician/v1/myDay            owner admin dispatcher office technician viewer
            job/v1/create                  owner admin dispatcher office
            job/v1/schedule                owner admin dispatcher office
            job/v1/updateStatus            owner admin dispatcher office technician
            job/v1/callback                owner admin dispatcher office
            job/v1/update                  owner admin dispatcher office
            job/v1/get                     owner admin dispatcher office technician viewer
            job/v1/list                    owner admin dispatcher office technician viewer
            job/v1/timeline                owner admin dispatcher office technician viewer
            job/v1/recordActuals           owner admin dispatcher office technician
            job/v1/work                    owner admin dispatcher office technician viewer
            dispatch/v1/assignTech         owner admin dispatcher
            dispatch/v1/eligibleTechs      owner admin dispatcher office
            dispatch/v1/board              owner admin dispatcher office
            dispatch/v1/suggestSlots       owner admin dispatcher office
            dispatch/v1/getSettings        owner admin dispatcher office technician viewer
            dispatch/v1/updateSettings     owner admin
            dispatch/v1/optimize           owner admin dispatcher
            dispatch/v1/applyPlan          owner admin dispatcher
            dispatch/v1/getPlan            owner admin dispatcher office
            dispatch/v1/placeVisit         owner admin dispatcher office
            pricebook/v1/createItem        owner admin dispatcher office
            pricebook/v1/updateItem        owner admin dispatcher office
            pricebook/v1/archiveItem       owner admin dispatcher office
            pricebook/v1/getItem           owner admin dispatcher office technician viewer
            pricebook/v1/listItems         owner admin dispatcher office technician viewer
            pricebook/v1/setMarkupTiers    owner admin
            pricebook/v1/setTaxRates       owner admin
            pricebook/v1/getSettings       owner admin dispatcher office technician viewer
            pricebook/v1/quote             owner admin dispatcher office technician viewer
            pricebook/v1/importBatch       owner admin dispatcher office
            estimate/v1/generate           owner admin dispatcher office technician
            estimate/v1/revise             owner admin dispatcher office technician
            estimate/v1/send               owner admin dispatcher office technician
            estimate/v1/approve            owner admin dispatcher office technician
            estimate/v1/decline            owner admin dispatcher office technician
            estimate/v1/convertToJob       owner admin dispatcher office
            estimate/v1/get                owner admin dispatcher office technician viewer
            estimate/v1/list               owner admin dispatcher office technician viewer
            estimate/v1/pdf                owner admin dispatcher office technician viewer
            invoice/v1/create              owner admin dispatcher office
            invoice/v1/update              owner admin dispatcher office
            invoice/v1/issue               owner admin dispatcher office
            invoice/v1/void                owner admin dispatcher office
            invoice/v1/collectPayment      owner admin dispatcher office technician
            invoice/v1/refund              owner admin
            invoice/v1/creditNote          owner admin
            invoice/v1/writeOff            owner admin
            invoice/v1/get                 owner admin dispatcher office technician viewer
            invoice/v1/list                owner admin dispatcher office technician viewer
            invoice/v1/pdf                 owner admin dispatcher office technician viewer
            workflow/v1/get                owner admin
            workflow/v1/list               owner admin
            workflow/v1/cancel             owner admin
            workflow/v1/resume             owner admin
            attachment/v1/attach           owner admin dispatcher office technician
            attachment/v1/list             owner admin dispatcher office technician viewer
            attachment/v1/downloadLink     owner admin dispatcher office technician viewer
            form/v1/defineTemplate         owner admin dispatcher office
            form/v1/templates              owner admin dispatcher office technician viewer
            form/v1/answer                 owner admin dispatcher office technician
            form/v1/ofJob                  owner admin dispatcher office technician viewer
            feed/v1/changes                owner admin dispatcher office viewer
            sync/v1/pull                   owner admin dispatcher office technician viewer
            sync/v1/push                   owner admin dispatcher office technician viewer
            notification/v1/templates      owner admin
            notification/v1/setTemplate    owner admin
            notification/v1/messages       owner admin
            notification/v1/redrive        owner admin
            webhook/v1/create              owner admin
            webhook/v1/update              owner admin
            webhook/v1/rotateSecret        owner admin
            webhook/v1/redeliver           owner admin
            webhook/v1/list                owner admin
            webhook/v1/get                 owner admin
            webhook/v1/deliveries          owner admin
        "#]]
        .assert_eq(&table);
    }
}
