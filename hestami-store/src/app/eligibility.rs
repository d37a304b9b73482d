//! Who may take a job, when (`dispatch/v1/eligibleTechs`), and the checks that enforce it on
//! scheduling, assignment and dispatch. The rules are `hestami_core::eligibility` and
//! `hestami_core::compliance`; this module loads their facts in one transaction.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, NaiveDate, Utc};

use hestami_core::compliance as rules;
use hestami_core::eligibility::{self, Candidate, JobNeeds, OrgFacts, TechnicianFacts, Verdict};
use hestami_core::ids::{JobId, TechnicianId};
use hestami_core::job::{Job, TimeWindow};
use hestami_core::org::TimeZone;
use hestami_core::schedule::local_to_utc;

use super::contractor::{
    load_areas, load_licenses, load_policies, load_requirements, property_jurisdiction,
};
use super::workforce::{load_appointments, load_detail, load_details};
use super::{Caller, Services};
use crate::directory::load_organization;
use crate::error::{Failure, FailureKind, StoreError};
use crate::store::TenantTx;

/// What `job` needs of a technician for `window`.
pub(crate) async fn needs_for(
    tx: &mut TenantTx,
    job: &Job,
    window: TimeWindow,
) -> Result<JobNeeds, StoreError> {
    let property = super::customer::load_property(tx, job.customer_id, job.property_id).await?;
    Ok(JobNeeds {
        job_id: Some(job.id),
        appointment_id: None,
        trade: job.trade.clone(),
        min_skill_level: job.min_skill_level,
        required_certifications: job.required_certifications.clone(),
        location: property.location,
        postal_code: property.address.postal_code.clone(),
        jurisdiction: property_jurisdiction(&property.address),
        window,
    })
}

/// The local day (in the organization's zone) around `at`, as UTC instants.
fn local_day(tz: chrono_tz::Tz, at: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    day_bounds(tz, at.with_timezone(&tz).date_naive())
}

/// `[start, end)` of local `date` in `tz`, as UTC instants.
pub(crate) fn day_bounds(tz: chrono_tz::Tz, date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = local_to_utc(tz, date.and_hms_opt(0, 0, 0).unwrap_or_default());
    let end = local_to_utc(
        tz,
        (date + Duration::days(1))
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default(),
    );
    (start, end)
}

/// The organization's facts for the local date of `needs.window`.
pub(crate) async fn org_facts(tx: &mut TenantTx, needs: &JobNeeds) -> Result<OrgFacts, StoreError> {
    let time_zone = load_organization(tx, false).await?.time_zone;
    let on = needs
        .window
        .start()
        .with_timezone(&time_zone.tz())
        .date_naive();
    org_facts_by_date(tx, needs, time_zone, &[on])
        .await?
        .remove(&on)
        .ok_or_else(|| StoreError::Internal("no facts for the window's date".into()))
}

/// What the organization's compliance and areas are judged from, read once and applied to any
/// job's trade, jurisdiction and date.
pub(crate) struct OrgRules {
    licenses: Vec<hestami_core::compliance::License>,
    policies: Vec<hestami_core::compliance::InsurancePolicy>,
    requirements: hestami_core::compliance::Requirements,
    service_areas: Vec<hestami_core::area::ServiceArea>,
    time_zone: TimeZone,
}

impl OrgRules {
    /// Reads the licences, policies, requirements and areas.
    pub(crate) async fn load(tx: &mut TenantTx, time_zone: TimeZone) -> Result<Self, StoreError> {
        Ok(Self {
            licenses: load_licenses(tx).await?,
            policies: load_policies(tx).await?,
            requirements: load_requirements(tx, false).await?.requirements,
            service_areas: load_areas(tx, None).await?.areas,
            time_zone,
        })
    }

    /// The organization's areas and zone, with no compliance verdict of its own (a plan's
    /// visits each carry theirs).
    pub(crate) fn base(&self) -> OrgFacts {
        OrgFacts {
            service_areas: self.service_areas.clone(),
            compliance: hestami_core::compliance::ComplianceVerdict::compliant(),
            time_zone: self.time_zone,
        }
    }

    /// The organization's facts for `needs` on `date`.
    pub(crate) fn facts(&self, needs: &JobNeeds, date: NaiveDate) -> OrgFacts {
        OrgFacts {
            service_areas: self.service_areas.clone(),
            compliance: rules::check(
                &needs.trade,
                &needs.jurisdiction,
                date,
                &self.licenses,
                &self.policies,
                &self.requirements,
                &[],
            ),
            time_zone: self.time_zone,
        }
    }
}

/// The organization facts (in zone `time_zone`) for each date, with compliance checked on
/// that date: the licences, policies, requirements and areas are read once.
pub(crate) async fn org_facts_by_date(
    tx: &mut TenantTx,
    needs: &JobNeeds,
    time_zone: TimeZone,
    dates: &[NaiveDate],
) -> Result<BTreeMap<NaiveDate, OrgFacts>, StoreError> {
    let org_rules = OrgRules::load(tx, time_zone).await?;
    Ok(dates
        .iter()
        .map(|date| (*date, org_rules.facts(needs, *date)))
        .collect())
}

/// Every active technician's facts with their bookings over `[from, to)`.
pub(crate) async fn technicians_with_bookings(
    tx: &mut TenantTx,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<TechnicianFacts>, StoreError> {
    let mut bookings: HashMap<TechnicianId, Vec<_>> = HashMap::new();
    for (tech, booking) in load_appointments(tx, None, from, to).await? {
        bookings.entry(tech).or_default().push(booking);
    }
    Ok(load_details(tx, None, true)
        .await?
        .into_iter()
        .map(|d| TechnicianFacts {
            appointments: bookings.remove(&d.technician.id).unwrap_or_default(),
            technician: d.technician,
            profile: d.profile,
        })
        .collect())
}

/// A technician's facts for the local day of `window` in `tz` (the organization's zone).
pub(crate) async fn technician_facts(
    tx: &mut TenantTx,
    id: TechnicianId,
    window: TimeWindow,
    tz: chrono_tz::Tz,
) -> Result<TechnicianFacts, StoreError> {
    let (from, to) = local_day(tz, window.start());
    let detail = load_detail(tx, id).await?;
    let appointments =
        load_appointments(tx, Some(id), from.min(window.start()), to.max(window.end()))
            .await?
            .into_iter()
            .map(|(_, a)| a)
            .collect();
    Ok(TechnicianFacts {
        technician: detail.technician,
        profile: detail.profile,
        appointments,
    })
}

/// Locks the technicians' rows (in id order, so that two bookings never wait on each other)
/// before their bookings are read: two concurrent bookings of one technician are judged one
/// after the other, and the second sees the first. SQLite runs one writer at a time already.
pub(crate) async fn lock_technicians(
    tx: &mut TenantTx,
    technicians: &[TechnicianId],
) -> Result<(), StoreError> {
    let lock = tx.for_update();
    if lock.is_empty() || technicians.is_empty() {
        return Ok(());
    }
    let mut ids: Vec<uuid::Uuid> = technicians.iter().map(|t| t.as_uuid()).collect();
    ids.sort();
    ids.dedup();
    let org = tx.org();
    for id in ids {
        tx.fetch_optional(
            &format!("SELECT id FROM technicians WHERE organization_id = $1 AND id = $2{lock}"),
            crate::db::args![org, id],
        )
        .await?;
    }
    Ok(())
}

/// `422 TECHNICIAN_INELIGIBLE` with every failed rule, unless the technician may take the job in
/// `window`.
pub(crate) async fn ensure_eligible(
    tx: &mut TenantTx,
    job: &Job,
    technician: TechnicianId,
    window: TimeWindow,
) -> Result<(), StoreError> {
    lock_technicians(tx, &[technician]).await?;
    let needs = needs_for(tx, job, window).await?;
    let org = org_facts(tx, &needs).await?;
    let facts = technician_facts(tx, technician, window, org.time_zone.tz()).await?;
    let verdict = eligibility::evaluate(&needs, &facts, &org);
    if verdict.eligible {
        Ok(())
    } else {
        Err(ineligible(&verdict).into())
    }
}

/// The refusal for an ineligible technician.
pub(crate) fn ineligible(verdict: &Verdict) -> Failure {
    let message = verdict
        .failed
        .iter()
        .map(|f| f.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Failure::new(
        FailureKind::RuleViolation,
        "TECHNICIAN_INELIGIBLE",
        format!("the technician cannot take this job: {message}"),
    )
    .with_details(serde_json::json!({ "failedRules": verdict.failed }))
}

/// `422 COMPLIANCE_REQUIREMENTS_NOT_MET` with every reason, unless the organization may do the
/// job's trade at the property on the window's date.
pub(crate) async fn ensure_compliant(
    tx: &mut TenantTx,
    job: &Job,
    window: TimeWindow,
) -> Result<(), StoreError> {
    let needs = needs_for(tx, job, window).await?;
    let org = org_facts(tx, &needs).await?;
    let mut verdict = org.compliance;
    if let Some(outside) = rules::outside_service_areas(
        &org.service_areas,
        needs.location,
        &needs.postal_code,
        &needs.trade,
    ) {
        verdict.reasons.push(outside);
        verdict.compliant = false;
    }
    if verdict.compliant {
        return Ok(());
    }
    let message = verdict
        .reasons
        .iter()
        .map(|r| r.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Err(Failure::new(
        FailureKind::RuleViolation,
        "COMPLIANCE_REQUIREMENTS_NOT_MET",
        format!(
            "the organization may not do {} work there on that date: {message}",
            needs.trade
        ),
    )
    .with_details(serde_json::json!({
        "trade": needs.trade,
        "jurisdiction": needs.jurisdiction,
        "reasons": verdict.reasons,
    }))
    .into())
}

impl Services {
    /// `dispatch/v1/eligibleTechs`: every active technician for the job in `window` (default:
    /// the job's own window), eligible ones first and ranked, each with its failed rules or its
    /// rank's reasons.
    pub async fn eligible_techs(
        &self,
        caller: &Caller,
        job_id: JobId,
        window: Option<TimeWindow>,
    ) -> Result<Vec<Candidate>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let job = super::job::load(tx, job_id, false).await?;
                let Some(window) = window.or(job.window) else {
                    return Err(Failure::new(
                        FailureKind::RuleViolation,
                        "JOB_WINDOW_REQUIRED",
                        "give windowStart and windowEnd, or schedule the job first",
                    )
                    .into());
                };
                let needs = needs_for(tx, &job, window).await?;
                let org = org_facts(tx, &needs).await?;
                let tz = org.time_zone.tz();
                let (from, to) = local_day(tz, window.start());
                let (from, to) = (from.min(window.start()), to.max(window.end()));
                let facts = technicians_with_bookings(tx, from, to).await?;
                Ok(eligibility::rank(&needs, &facts, &org))
            })
        })
        .await
    }
}
