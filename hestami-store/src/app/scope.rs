//! What a technician's scope may see beyond jobs: the customers of the jobs they are on, and the
//! estimates and invoices of those jobs (an estimate without a job: of those customers). Every
//! other id is `404`, as another organization's ids are. See ARCHITECTURE.md, "A technician's
//! scope".

use hestami_core::ids::{AppointmentId, CustomerId, EstimateId, InvoiceId};

use super::job::visible_job_condition;
use crate::db::{Value, args};
use crate::error::{Failure, StoreError};
use crate::store::{Scope, TenantTx};

/// The condition (`AND …`, or empty for the whole organization) keeping the rows whose
/// `customer` column names a customer of a visible job.
pub(crate) fn customers_sql(tx: &TenantTx, customer: &str, values: &mut Vec<Value>) -> String {
    match visible_job_condition(tx, "v", values) {
        None => String::new(),
        Some(visible) => format!(
            " AND {customer} IN (SELECT v.customer_id FROM jobs v WHERE v.organization_id = $1 AND {visible})"
        ),
    }
}

/// The condition keeping the estimates or invoices of visible jobs (and, with no job, of the
/// customers of visible jobs).
pub(crate) fn documents_sql(tx: &TenantTx, values: &mut Vec<Value>) -> String {
    match visible_job_condition(tx, "v", values) {
        None => String::new(),
        Some(visible) => format!(
            " AND (job_id IN (SELECT v.id FROM jobs v WHERE v.organization_id = $1 AND {visible}) \
             OR (job_id IS NULL AND customer_id IN \
             (SELECT v.customer_id FROM jobs v WHERE v.organization_id = $1 AND {visible})))"
        ),
    }
}

async fn exists(
    tx: &mut TenantTx,
    table: &str,
    id: uuid::Uuid,
    what: &str,
    condition: fn(&TenantTx, &mut Vec<Value>) -> String,
) -> Result<(), StoreError> {
    let mut values = args![tx.org(), id];
    let scope = condition(tx, &mut values);
    if scope.is_empty() {
        return Ok(());
    }
    let sql =
        format!("SELECT 1 AS seen FROM {table} WHERE organization_id = $1 AND id = $2{scope}");
    match tx.fetch_optional(&sql, values).await? {
        Some(_) => Ok(()),
        None => Err(Failure::not_found(what).into()),
    }
}

/// `404` unless the scope may see the customer.
pub(crate) async fn ensure_customer(tx: &mut TenantTx, id: CustomerId) -> Result<(), StoreError> {
    exists(tx, "customers", id.as_uuid(), "customer", |tx, v| {
        customers_sql(tx, "id", v)
    })
    .await
}

/// `404` unless the scope may see the estimate.
pub(crate) async fn ensure_estimate(tx: &mut TenantTx, id: EstimateId) -> Result<(), StoreError> {
    exists(tx, "estimates", id.as_uuid(), "estimate", documents_sql).await
}

/// `404` unless the scope may see the invoice.
pub(crate) async fn ensure_invoice(tx: &mut TenantTx, id: InvoiceId) -> Result<(), StoreError> {
    exists(tx, "invoices", id.as_uuid(), "invoice", documents_sql).await
}

/// `404` unless the scope may see the appointment: a technician must be on its crew.
pub(crate) async fn ensure_appointment(
    tx: &mut TenantTx,
    id: AppointmentId,
) -> Result<(), StoreError> {
    let technician = match tx.scope() {
        Scope::Organization => return Ok(()),
        Scope::Technician(None) => return Err(Failure::not_found("appointment").into()),
        Scope::Technician(Some(t)) => t,
    };
    let org = tx.org();
    let on_crew = tx
        .fetch_optional(
            "SELECT 1 AS on_crew FROM appointment_crew WHERE organization_id = $1 \
             AND appointment_id = $2 AND technician_id = $3",
            args![org, id.as_uuid(), technician.as_uuid()],
        )
        .await?
        .is_some();
    if on_crew {
        Ok(())
    } else {
        Err(Failure::not_found("appointment").into())
    }
}
