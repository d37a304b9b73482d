//! `dispatch/v1`: assigning technicians.

use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::ids::{JobId, TechnicianId};
use hestami_core::job::Job;
use hestami_store::app::job::{AssignTech, DispatchCommand};

use super::job::JobDto;
use crate::error::ApiError;
use crate::rpc::{Name, Procedure, mutation};

/// `dispatch/v1/assignTech`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssignTechInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which job (requested or scheduled).
    pub job_id: Uuid,
    /// Who: an active technician of the organization holding the job's trade.
    pub technician_id: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the job is at this version.
    pub expected_version: Option<i64>,
}

mutating!(AssignTechInput);

fn convert(i: AssignTechInput) -> Result<DispatchCommand, ApiError> {
    Ok(DispatchCommand::AssignTech(AssignTech {
        job_id: JobId::from_uuid(i.job_id),
        technician_id: TechnicianId::from_uuid(i.technician_id),
        expected_version: i.expected_version,
    }))
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![mutation(
        Name {
            namespace: "dispatch",
            version: "v1",
            name: "assignTech",
            summary: "Assign (or replace) a job's technician",
            errors: &[
                "NOT_FOUND",
                "VERSION_CONFLICT",
                "TECHNICIAN_INELIGIBLE",
                "JOB_ASSIGNMENT_NOT_ALLOWED",
            ],
        },
        convert,
        <JobDto as From<Job>>::from,
    )]
}
