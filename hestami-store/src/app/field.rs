//! The technician's day (`technician/v1/myDay`): their visits of a local day in order, as the
//! board shows them, with each job's customer, property and planned work.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use hestami_core::customer::{Customer, Property};
use hestami_core::ids::{JobId, TechnicianId};

use super::board::{BoardQuery, BoardTechnician};
use super::job::JobWork;
use super::{Caller, PageRequest, Services};
use crate::directory::load_organization;
use crate::error::{Failure, FailureKind, StoreError};
use crate::store::Scope;

/// `technician/v1/myDay`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MyDayQuery {
    /// The local date (default: today in the organization's zone).
    pub date: Option<NaiveDate>,
    /// Whose day: a technician's own (default), or any technician's for the office.
    pub technician_id: Option<TechnicianId>,
}

/// A job of the day, with what the technician needs on site.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MyDayJob {
    /// The job.
    pub job_id: JobId,
    /// Its customer.
    pub customer: Customer,
    /// Where.
    pub property: Property,
    /// The planned work handed to the job, and what was recorded.
    pub work: JobWork,
}

/// A technician's local day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MyDay {
    /// The organization's zone.
    pub time_zone: String,
    /// The day as the board shows it: shifts, time off, the stops in order with legs and
    /// projections, the load.
    pub technician: BoardTechnician,
    /// Each job of the day's stops, once.
    pub jobs: Vec<MyDayJob>,
}

impl Services {
    /// `technician/v1/myDay`.
    pub async fn my_day(&self, caller: &Caller, q: MyDayQuery) -> Result<MyDay, StoreError> {
        let technician = match (caller.scope, q.technician_id) {
            (Scope::Technician(Some(own)), None) => own,
            (Scope::Technician(Some(own)), Some(asked)) if asked == own => own,
            // Another technician's day, or none linked: not found, as any id out of scope.
            (Scope::Technician(_), _) => return Err(Failure::not_found("technician").into()),
            (Scope::Organization, Some(asked)) => asked,
            // "My day" for a caller who is not a technician: there is no technician of theirs,
            // as for a technician member linked to none.
            (Scope::Organization, None) => {
                return Err(Failure::new(
                    FailureKind::NotFound,
                    "NOT_FOUND",
                    "no technician is yours: name one with technicianId",
                )
                .into());
            }
        };
        let date = match q.date {
            Some(d) => d,
            None => {
                self.read(caller, move |tx| {
                    Box::pin(async move {
                        let tz = load_organization(tx, false).await?.time_zone.tz();
                        Ok(tx.now().with_timezone(&tz).date_naive())
                    })
                })
                .await?
            }
        };
        let board = self
            .dispatch_board(
                caller,
                BoardQuery {
                    date,
                    days: 1,
                    trade: None,
                    technician_ids: vec![technician],
                    statuses: Vec::new(),
                    postal_codes: Vec::new(),
                    page: PageRequest::parse(Some(1), None)
                        .map_err(|_| StoreError::Internal("a page of one".into()))?,
                },
            )
            .await?;
        let Some(day) = board.technicians.into_iter().next() else {
            return Err(Failure::not_found("technician").into());
        };
        let mut job_ids: Vec<JobId> = Vec::new();
        for stop in day.days.iter().flat_map(|d| &d.stops) {
            if !job_ids.contains(&stop.stop.visit.job_id) {
                job_ids.push(stop.stop.visit.job_id);
            }
        }
        let jobs = self
            .read(caller, move |tx| {
                Box::pin(async move {
                    let mut out = Vec::with_capacity(job_ids.len());
                    for id in job_ids {
                        let job = super::job::load(tx, id, false).await?;
                        let customer = super::customer::load(tx, job.customer_id, false).await?;
                        let property =
                            super::customer::load_property(tx, job.customer_id, job.property_id)
                                .await?;
                        out.push(MyDayJob {
                            job_id: id,
                            customer,
                            property,
                            work: JobWork {
                                job_id: id,
                                planned: super::estimate::planned_work_of(tx, id).await?,
                                actuals: super::invoice::actuals_of(tx, id).await?,
                            },
                        });
                    }
                    Ok(out)
                })
            })
            .await?;
        Ok(MyDay {
            time_zone: board.time_zone,
            technician: day,
            jobs,
        })
    }
}
