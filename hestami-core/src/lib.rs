//! The Hestami domain: the types, state machines and rules of a trade contractor's operations.
//!
//! This crate does no I/O. It never reads the clock and never invents identifiers: the time and
//! the ids a rule needs are passed in, so every rule is a plain, deterministic function that a
//! property test can call millions of times. It knows nothing of SQL or HTTP; `hestami-store`
//! persists what it decides and `hestami-http` carries it over the wire.
//!
//! Values are parsed once, at the edge, into types that cannot hold an invalid value
//! ("parse, don't validate"): once a [`customer::PostalCode`] or an [`org::TimeZone`] exists it
//! is valid, and nothing deeper re-checks it.
//!
//! ```
//! use chrono::{TimeZone as _, Utc};
//! use hestami_core::ids::{CustomerId, JobId, PropertyId};
//! use hestami_core::job::{self, JobCommand, JobStatus, NewJob, Priority};
//! use hestami_core::org::SlaWindows;
//! use hestami_core::text::{Summary, TradeCode};
//!
//! let now = Utc.with_ymd_and_hms(2031, 3, 2, 21, 58, 3).unwrap();
//! let new_job = NewJob {
//!     customer_id: CustomerId::from_uuid(uuid::Uuid::from_u128(1)),
//!     property_id: PropertyId::from_uuid(uuid::Uuid::from_u128(2)),
//!     trade: TradeCode::parse("plumbing").unwrap(),
//!     priority: Priority::Urgent,
//!     summary: Summary::parse("Leaking water heater").unwrap(),
//!     description: None,
//!     callback_of: None,
//!     min_skill_level: Default::default(),
//!     required_certifications: vec![],
//! };
//! let (job, _created) = job::create(JobId::from_uuid(uuid::Uuid::from_u128(3)), new_job,
//!     &SlaWindows::default(), now, None);
//! assert_eq!(job.status, JobStatus::Requested);
//! // A requested job cannot set off to the property: the refusal names the allowed next states.
//! let refusal = job::decide(&job, &JobCommand::StartTravel, &job::Guards::default()).unwrap_err();
//! assert_eq!(refusal.to_string(),
//!     "a job in state requested cannot move to en_route; allowed: scheduled, on_hold, cancelled");
//! ```
#![deny(missing_docs)]

pub mod appointment;
pub mod area;
pub mod blob;
pub mod compliance;
pub mod customer;
pub mod dispatch;
pub mod eligibility;
pub mod estimate;
pub mod field;
pub mod form;
pub mod ids;
pub mod inventory;
pub mod invoice;
pub mod job;
pub mod maintenance;
pub mod money;
pub mod org;
pub mod pricebook;
pub mod schedule;
pub mod text;
pub mod timesheet;
pub mod trade;
pub mod workforce;
pub mod workorder;

/// Why a raw value was refused when parsing it into a domain type.
///
/// It carries no field name: the caller knows where the value came from and attaches the path
/// (`address.postalCode`) when it reports the problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// A stable snake_case code, such as `too_long` or `invalid_time_zone`.
    pub code: &'static str,
    /// A sentence for a person.
    pub message: String,
}

impl Invalid {
    /// Builds a refusal from its code and message.
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}
