//! Typed identifiers.
//!
//! Every aggregate has its own id type so that a `CustomerId` can never be passed where a
//! `JobId` is expected. All are UUIDs on the wire and in the database; this crate never creates
//! one (the store mints UUIDv7s, time-ordered), it only carries them.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps a UUID that is known to identify this kind of thing.
            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

id_type!(
    /// An organization: a contractor or a community association. The tenant boundary.
    OrganizationId
);
id_type!(
    /// A person who can sign in; may belong to several organizations.
    UserId
);
id_type!(
    /// A contractor's customer.
    CustomerId
);
id_type!(
    /// A service location belonging to a customer.
    PropertyId
);
id_type!(
    /// A technician of the organization's workforce.
    TechnicianId
);
id_type!(
    /// A job (a unit of field work).
    JobId
);
id_type!(
    /// A durable workflow run.
    WorkflowId
);
id_type!(
    /// An appointment: one visit of a job.
    AppointmentId
);
id_type!(
    /// A dispatch plan: what `dispatch/v1/optimize` proposed for a day.
    PlanId
);
id_type!(
    /// A trade licence held by an organization.
    LicenseId
);
id_type!(
    /// An insurance policy (or bond) held by an organization.
    InsuranceId
);
id_type!(
    /// A technician's certification.
    CertificationId
);
id_type!(
    /// A technician's period of time off.
    TimeOffId
);
id_type!(
    /// One version of a set of service areas (an organization's or a technician's); replacing
    /// the set makes a new one and keeps the old in the history.
    ServiceAreaSetId
);
id_type!(
    /// A pricebook item (a service, material, labour rate or piece of equipment); the same id
    /// across all its revisions.
    PricebookItemId
);
id_type!(
    /// An estimate (a proposal to a customer); the same id across all its revisions.
    EstimateId
);
id_type!(
    /// One option of an estimate (such as good, better or best).
    EstimateOptionId
);
id_type!(
    /// An invoice.
    InvoiceId
);
id_type!(
    /// A payment collected against an invoice.
    PaymentId
);
id_type!(
    /// A refund of (part of) a payment.
    RefundId
);
id_type!(
    /// A credit note against an invoice.
    CreditNoteId
);
id_type!(
    /// A write-off of (part of) an invoice's balance as bad debt.
    WriteOffId
);
id_type!(
    /// A place stock is kept: a warehouse or a technician's truck.
    StockLocationId
);
id_type!(
    /// A movement of stock between two locations, possibly in transit.
    StockTransferId
);
id_type!(
    /// A supplier of materials.
    SupplierId
);
id_type!(
    /// A purchase order to a supplier.
    PurchaseOrderId
);
id_type!(
    /// A supplier's bill against a purchase order.
    SupplierBillId
);
id_type!(
    /// A note on a job or one of its appointments.
    NoteId
);
id_type!(
    /// A photo, document or signature attached to a job, appointment, estimate or invoice.
    AttachmentId
);
id_type!(
    /// A form template (the same id across its versions).
    FormTemplateId
);
id_type!(
    /// A maintenance plan: the template agreements are written on.
    MaintenancePlanId
);
id_type!(
    /// A customer's maintenance agreement.
    AgreementId
);
id_type!(
    /// A community association's property: a unit or a common area.
    HoaPropertyId
);
id_type!(
    /// The link between an association and a contractor it approves as a vendor.
    VendorLinkId
);
