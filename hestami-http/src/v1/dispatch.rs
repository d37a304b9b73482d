//! `dispatch/v1`: assigning technicians.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::eligibility::{Candidate, FailedRule};
use hestami_core::ids::{JobId, TechnicianId};
use hestami_core::job::{Job, TimeWindow};
use hestami_store::app::job::{AssignTech, DispatchCommand};

use super::contractor::RuleFailureDto;
use super::job::JobDto;
use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, mutation, query, validate};

/// `dispatch/v1/assignTech`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssignTechInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which job (requested, scheduled or dispatched).
    pub job_id: Uuid,
    /// Who: an active technician of the organization holding the job's trade.
    pub technician_id: Uuid,
    /// Refuse with `VERSION_CONFLICT` unless the job is at this version.
    pub expected_version: Option<i64>,
}

mutating!(AssignTechInput);

/// `dispatch/v1/eligibleTechs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EligibleTechsInput {
    /// Which job.
    pub job_id: Uuid,
    /// The window to judge (with `windowEnd`); default: the job's own window.
    #[serde(default, deserialize_with = "crate::wire::option_date_time")]
    pub window_start: Option<DateTime<Utc>>,
    /// The window closes; given with `windowStart`.
    #[serde(default, deserialize_with = "crate::wire::option_date_time")]
    pub window_end: Option<DateTime<Utc>>,
}

/// A technician's place in the list for a job.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CandidateDto {
    /// Who.
    pub technician_id: Uuid,
    /// Whether every rule holds.
    pub eligible: bool,
    /// Every rule that failed, with the data that failed it.
    pub failed_rules: Vec<RuleFailureDto>,
    /// The rank's score (higher is better; 20 per skill level, less a point per km and ten per
    /// job that day); ineligible technicians are listed after every eligible one whatever it is.
    pub score: f64,
    /// Why the rank, for a person.
    pub reasons: Vec<String>,
}

impl From<FailedRule> for RuleFailureDto {
    fn from(f: FailedRule) -> Self {
        Self {
            code: f.code.to_owned(),
            message: f.message,
            data: f.data,
        }
    }
}

impl From<Candidate> for CandidateDto {
    fn from(c: Candidate) -> Self {
        Self {
            technician_id: c.technician_id.as_uuid(),
            eligible: c.eligible,
            failed_rules: c.failed.into_iter().map(Into::into).collect(),
            score: c.score,
            reasons: c.reasons,
        }
    }
}

/// Every active technician for a job.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EligibleTechsOutput {
    /// Eligible technicians first, best first; then the ineligible ones.
    pub candidates: Vec<CandidateDto>,
}

async fn eligible_techs(ctx: Ctx, i: EligibleTechsInput) -> Result<EligibleTechsOutput, ApiError> {
    let window = validate(|v| match (i.window_start, i.window_end) {
        (None, None) => Some(None),
        (Some(start), Some(end)) => v
            .check("windowEnd", TimeWindow::parse(start, end))
            .map(Some),
        (Some(_), None) => {
            v.fail(
                "windowEnd",
                "required",
                "windowEnd is required with windowStart",
            );
            None
        }
        (None, Some(_)) => {
            v.fail(
                "windowStart",
                "required",
                "windowStart is required with windowEnd",
            );
            None
        }
    })?;
    let candidates = ctx
        .services
        .eligible_techs(ctx.caller()?, JobId::from_uuid(i.job_id), window)
        .await?;
    Ok(EligibleTechsOutput {
        candidates: candidates.into_iter().map(Into::into).collect(),
    })
}

fn convert(i: AssignTechInput) -> Result<DispatchCommand, ApiError> {
    Ok(DispatchCommand::AssignTech(AssignTech {
        job_id: JobId::from_uuid(i.job_id),
        technician_id: TechnicianId::from_uuid(i.technician_id),
        expected_version: i.expected_version,
    }))
}

fn name(name: &'static str, summary: &'static str, errors: &'static [&'static str]) -> Name {
    Name {
        namespace: "dispatch",
        version: "v1",
        name,
        summary,
        errors,
    }
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        mutation(
            name(
                "assignTech",
                "Assign (or replace) a job's technician",
                &[
                    "NOT_FOUND",
                    "VERSION_CONFLICT",
                    "TECHNICIAN_INELIGIBLE",
                    "JOB_ASSIGNMENT_NOT_ALLOWED",
                ],
            ),
            convert,
            <JobDto as From<Job>>::from,
        ),
        query(
            name(
                "eligibleTechs",
                "Every active technician for a job in a window: eligible or every failed rule, eligible ones ranked",
                &["NOT_FOUND", "JOB_WINDOW_REQUIRED"],
            ),
            eligible_techs,
        ),
    ]
}
