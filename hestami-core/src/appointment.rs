//! Appointments (visits): a job's time on site, each with its own window, crew and state.
//!
//! ```text
//! scheduled ─dispatch→ dispatched ─start_travel→ en_route ─arrive→ on_site ─finish→ done
//! scheduled ─reschedule→ scheduled (a new window)
//! dispatched|en_route ─recall→ scheduled (the crew has not started work: back to the board)
//! scheduled|dispatched|en_route|on_site ─hold→ on_hold ─resume→ (the state it was held in)
//! scheduled|dispatched|en_route|on_hold ─cancel→ cancelled
//! ```
//!
//! A job has one or more appointments ("return for parts" is a second one). An appointment's
//! crew is a lead technician and optional helpers. The crew can change while nobody has set off
//! (scheduled, dispatched); dispatching needs a lead. The machine follows the job's: [`decide`]
//! checks a command against an appointment and returns the [`AppointmentChange`] it causes (or a
//! refusal that leaves it untouched), [`evolve`] applies a change, and [`replay`] rebuilds an
//! appointment from its changes, which the property tests check. The table is data
//! ([`TRANSITIONS`]); changing it means a new workflow version.
//!
//! A job driven through `job/v2` (workflow `job_lifecycle_v2`) follows its appointments:
//! [`followed_status`] is the rule, [`completion_refusal`] says when it may be completed and
//! [`sla_refusal`] when a first visit would start after the job's SLA deadline.
//! [`crate::schedule::Appointment`] is not this aggregate but what eligibility sees of a booking
//! (a job, a window, a place): the store derives one for each member of a crew.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{AppointmentId, JobId, TechnicianId};
use crate::job::{JobStatus, TimeWindow};
use crate::text::Reason;

/// The most helpers on one appointment.
pub const MAX_HELPERS: usize = 8;

/// Where an appointment is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentStatus {
    /// Has a window; may or may not have a crew yet.
    Scheduled,
    /// Sent to its crew.
    Dispatched,
    /// The crew is on the way.
    EnRoute,
    /// The crew is at the property.
    OnSite,
    /// The visit is over.
    Done,
    /// Paused; resumes to the state it was held in.
    OnHold,
    /// Called off.
    Cancelled,
}

impl AppointmentStatus {
    /// Every state, in the order of the happy path.
    pub const ALL: [AppointmentStatus; 7] = [
        Self::Scheduled,
        Self::Dispatched,
        Self::EnRoute,
        Self::OnSite,
        Self::Done,
        Self::OnHold,
        Self::Cancelled,
    ];

    /// The snake_case name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Dispatched => "dispatched",
            Self::EnRoute => "en_route",
            Self::OnSite => "on_site",
            Self::Done => "done",
            Self::OnHold => "on_hold",
            Self::Cancelled => "cancelled",
        }
    }

    /// Done and cancelled appointments never change again.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Done | Self::Cancelled)
    }
}

/// A move in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppointmentAction {
    /// scheduled → scheduled, with a new window.
    Reschedule,
    /// scheduled → dispatched.
    Dispatch,
    /// dispatched → en_route.
    StartTravel,
    /// en_route → on_site.
    Arrive,
    /// on_site → done.
    Finish,
    /// dispatched|en_route → scheduled.
    Recall,
    /// scheduled|dispatched|en_route|on_site → on_hold.
    Hold,
    /// on_hold → the state it was held in.
    Resume,
    /// scheduled|dispatched|en_route|on_hold → cancelled.
    Cancel,
}

/// The target of a transition: a fixed state, or "the state it was held in".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Always this state.
    State(AppointmentStatus),
    /// The state recorded when the appointment was put on hold.
    HeldState,
}

use AppointmentAction as A;
use AppointmentStatus as S;

/// The transition table: `(from, action, to)`.
pub const TRANSITIONS: &[(AppointmentStatus, AppointmentAction, Target)] = &[
    (S::Scheduled, A::Reschedule, Target::State(S::Scheduled)),
    (S::Scheduled, A::Dispatch, Target::State(S::Dispatched)),
    (S::Dispatched, A::StartTravel, Target::State(S::EnRoute)),
    (S::EnRoute, A::Arrive, Target::State(S::OnSite)),
    (S::OnSite, A::Finish, Target::State(S::Done)),
    (S::Dispatched, A::Recall, Target::State(S::Scheduled)),
    (S::EnRoute, A::Recall, Target::State(S::Scheduled)),
    (S::Scheduled, A::Hold, Target::State(S::OnHold)),
    (S::Dispatched, A::Hold, Target::State(S::OnHold)),
    (S::EnRoute, A::Hold, Target::State(S::OnHold)),
    (S::OnSite, A::Hold, Target::State(S::OnHold)),
    (S::OnHold, A::Resume, Target::HeldState),
    (S::Scheduled, A::Cancel, Target::State(S::Cancelled)),
    (S::Dispatched, A::Cancel, Target::State(S::Cancelled)),
    (S::EnRoute, A::Cancel, Target::State(S::Cancelled)),
    (S::OnHold, A::Cancel, Target::State(S::Cancelled)),
];

/// States in which the crew may change: nobody has set off yet.
pub const CREW_CHANGES_IN: [AppointmentStatus; 2] = [S::Scheduled, S::Dispatched];

/// An appointment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Appointment {
    /// Its id.
    pub id: AppointmentId,
    /// The job it is a visit of.
    pub job_id: JobId,
    /// Goes up by one with every change.
    pub version: i64,
    /// Where it is.
    pub status: AppointmentStatus,
    /// While on hold: the state it resumes to.
    pub held_from: Option<AppointmentStatus>,
    /// When the crew is expected to arrive.
    pub window: TimeWindow,
    /// How long the visit is expected to take on site, in minutes (1 to 24 hours).
    pub estimated_minutes: u32,
    /// Who leads the visit.
    pub lead: Option<TechnicianId>,
    /// Who helps, in the order they were added; never the lead, never twice.
    pub helpers: Vec<TechnicianId>,
    /// When the crew is planned to start, inside the window (a dispatcher's promise, or a
    /// plan's); cleared by a reschedule.
    #[serde(default)]
    pub planned_start: Option<DateTime<Utc>>,
}

impl Appointment {
    /// A new scheduled appointment without a crew. `estimated_minutes` must be 1 to 1,440.
    pub fn new(
        id: AppointmentId,
        job_id: JobId,
        window: TimeWindow,
        estimated_minutes: u32,
    ) -> Result<Self, AppointmentError> {
        if !(1..=1_440).contains(&estimated_minutes) {
            return Err(AppointmentError::InvalidDuration(estimated_minutes));
        }
        Ok(Self {
            id,
            job_id,
            version: 1,
            status: S::Scheduled,
            held_from: None,
            window,
            estimated_minutes,
            lead: None,
            helpers: Vec::new(),
            planned_start: None,
        })
    }

    /// When the visit takes its crew: from the planned start for the estimated minutes, or,
    /// unplanned, the whole window (the crew may arrive at any time in it).
    pub fn occupied(&self) -> TimeWindow {
        self.planned_start
            .and_then(|start| {
                TimeWindow::parse(
                    start,
                    start + chrono::Duration::minutes(i64::from(self.estimated_minutes)),
                )
                .ok()
            })
            .unwrap_or(self.window)
    }

    /// Everyone on the crew, lead first.
    pub fn crew(&self) -> Vec<TechnicianId> {
        self.lead
            .into_iter()
            .chain(self.helpers.iter().copied())
            .collect()
    }
}

/// Something asked of an appointment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AppointmentCommand {
    /// A new window (only while scheduled).
    Reschedule {
        /// The new window.
        window: TimeWindow,
    },
    /// Send it to its crew (needs a lead).
    Dispatch,
    /// The crew sets off.
    StartTravel,
    /// The crew arrives.
    Arrive,
    /// The visit is over.
    Finish,
    /// Back to the board before work started.
    Recall,
    /// Pause it.
    Hold {
        /// Why.
        reason: Reason,
    },
    /// Go on from where it was held.
    Resume,
    /// Call it off.
    Cancel {
        /// Why.
        reason: Reason,
    },
    /// Make `technician` the lead (replacing the lead; a helper who becomes lead stops helping).
    AssignLead {
        /// Who.
        technician: TechnicianId,
    },
    /// Add a helper.
    AddHelper {
        /// Who.
        technician: TechnicianId,
    },
    /// Take someone off the crew (lead or helper).
    RemoveFromCrew {
        /// Who.
        technician: TechnicianId,
    },
    /// Plan when the crew starts, inside the window (or clear the plan), before anyone set off.
    Plan {
        /// The start, or `None` to clear it.
        start: Option<DateTime<Utc>>,
    },
}

/// What a command did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AppointmentChange {
    /// A move in the table (with the new window, for a reschedule).
    Moved {
        /// The action.
        action: AppointmentAction,
        /// From.
        from: AppointmentStatus,
        /// To.
        to: AppointmentStatus,
        /// The new window, for a reschedule.
        window: Option<TimeWindow>,
        /// Why, for hold and cancel.
        reason: Option<Reason>,
    },
    /// The crew changed.
    CrewChanged {
        /// The lead after the change.
        lead: Option<TechnicianId>,
        /// The helpers after the change.
        helpers: Vec<TechnicianId>,
    },
    /// The planned start changed.
    Planned {
        /// The new planned start.
        start: Option<DateTime<Utc>>,
    },
}

/// Why a command was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AppointmentError {
    /// The table has no such move from the current state.
    #[error("an appointment that is {from} cannot {action}")]
    NotAllowed {
        /// The current state.
        from: &'static str,
        /// The action asked.
        action: &'static str,
    },
    /// Dispatching needs a lead technician.
    #[error("the appointment has no lead technician to dispatch")]
    NoLead,
    /// The crew cannot change once it set off.
    #[error("the crew of an appointment that is {0} cannot change")]
    CrewLocked(&'static str),
    /// The technician is already on the crew.
    #[error("the technician is already on the crew")]
    AlreadyOnCrew,
    /// The technician is not on the crew.
    #[error("the technician is not on the crew")]
    NotOnCrew,
    /// Too many helpers.
    #[error("an appointment has at most {MAX_HELPERS} helpers")]
    TooManyHelpers,
    /// The lead cannot leave a dispatched appointment without a replacement.
    #[error("a dispatched appointment keeps a lead: assign another lead, or recall it first")]
    LeadRequired,
    /// The estimated duration is out of range.
    #[error("an appointment lasts 1 to 1440 minutes, not {0}")]
    InvalidDuration(u32),
    /// A planned start outside the window.
    #[error("the planned start is outside the appointment's window")]
    PlannedStartOutsideWindow,
}

impl AppointmentError {
    /// A stable code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotAllowed { .. } => "APPOINTMENT_TRANSITION_NOT_ALLOWED",
            Self::NoLead => "APPOINTMENT_NO_LEAD",
            Self::CrewLocked(_) => "APPOINTMENT_CREW_LOCKED",
            Self::AlreadyOnCrew => "APPOINTMENT_ALREADY_ON_CREW",
            Self::NotOnCrew => "APPOINTMENT_NOT_ON_CREW",
            Self::TooManyHelpers => "APPOINTMENT_TOO_MANY_HELPERS",
            Self::LeadRequired => "APPOINTMENT_LEAD_REQUIRED",
            Self::InvalidDuration(_) => "APPOINTMENT_INVALID_DURATION",
            Self::PlannedStartOutsideWindow => "APPOINTMENT_PLANNED_START_OUTSIDE_WINDOW",
        }
    }
}

fn action_of(command: &AppointmentCommand) -> Option<AppointmentAction> {
    use AppointmentCommand as C;
    Some(match command {
        C::Reschedule { .. } => A::Reschedule,
        C::Dispatch => A::Dispatch,
        C::StartTravel => A::StartTravel,
        C::Arrive => A::Arrive,
        C::Finish => A::Finish,
        C::Recall => A::Recall,
        C::Hold { .. } => A::Hold,
        C::Resume => A::Resume,
        C::Cancel { .. } => A::Cancel,
        C::AssignLead { .. } | C::AddHelper { .. } | C::RemoveFromCrew { .. } | C::Plan { .. } => {
            return None;
        }
    })
}

fn action_name(action: AppointmentAction) -> &'static str {
    match action {
        A::Reschedule => "reschedule",
        A::Dispatch => "dispatch",
        A::StartTravel => "start_travel",
        A::Arrive => "arrive",
        A::Finish => "finish",
        A::Recall => "recall",
        A::Hold => "hold",
        A::Resume => "resume",
        A::Cancel => "cancel",
    }
}

/// The state `action` leads to from the appointment's current state, if the table allows it.
pub fn target_of(
    appointment: &Appointment,
    action: AppointmentAction,
) -> Option<AppointmentStatus> {
    TRANSITIONS
        .iter()
        .find(|(from, a, _)| *from == appointment.status && *a == action)
        .and_then(|&(_, _, target)| match target {
            Target::State(to) => Some(to),
            Target::HeldState => appointment.held_from,
        })
}

/// Checks `command` against the appointment: the change it causes, or why not.
pub fn decide(
    appointment: &Appointment,
    command: &AppointmentCommand,
) -> Result<AppointmentChange, AppointmentError> {
    use AppointmentCommand as C;
    if let Some(action) = action_of(command) {
        let to = target_of(appointment, action).ok_or(AppointmentError::NotAllowed {
            from: appointment.status.as_str(),
            action: action_name(action),
        })?;
        if action == A::Dispatch && appointment.lead.is_none() {
            return Err(AppointmentError::NoLead);
        }
        let (window, reason) = match command {
            C::Reschedule { window } => (Some(*window), None),
            C::Hold { reason } | C::Cancel { reason } => (None, Some(reason.clone())),
            _ => (None, None),
        };
        return Ok(AppointmentChange::Moved {
            action,
            from: appointment.status,
            to,
            window,
            reason,
        });
    }
    if !CREW_CHANGES_IN.contains(&appointment.status) {
        return Err(AppointmentError::CrewLocked(appointment.status.as_str()));
    }
    if let C::Plan { start } = command {
        if start.is_some_and(|s| s < appointment.window.start() || s > appointment.window.end()) {
            return Err(AppointmentError::PlannedStartOutsideWindow);
        }
        return Ok(AppointmentChange::Planned { start: *start });
    }
    let mut lead = appointment.lead;
    let mut helpers = appointment.helpers.clone();
    match command {
        C::AssignLead { technician } => {
            if lead == Some(*technician) {
                return Err(AppointmentError::AlreadyOnCrew);
            }
            helpers.retain(|h| h != technician);
            lead = Some(*technician);
        }
        C::AddHelper { technician } => {
            if lead == Some(*technician) || helpers.contains(technician) {
                return Err(AppointmentError::AlreadyOnCrew);
            }
            if helpers.len() >= MAX_HELPERS {
                return Err(AppointmentError::TooManyHelpers);
            }
            helpers.push(*technician);
        }
        C::RemoveFromCrew { technician } => {
            if lead == Some(*technician) {
                if appointment.status == S::Dispatched {
                    return Err(AppointmentError::LeadRequired);
                }
                lead = None;
            } else if helpers.contains(technician) {
                helpers.retain(|h| h != technician);
            } else {
                return Err(AppointmentError::NotOnCrew);
            }
        }
        _ => unreachable!("every move has an action"),
    }
    Ok(AppointmentChange::CrewChanged { lead, helpers })
}

/// Applies a change that [`decide`] returned (or that was recorded): the version goes up by one.
pub fn evolve(appointment: &mut Appointment, change: &AppointmentChange) {
    match change {
        AppointmentChange::Moved {
            action,
            from,
            to,
            window,
            ..
        } => {
            appointment.held_from = match action {
                A::Hold => Some(*from),
                _ => None,
            };
            appointment.status = *to;
            if let Some(window) = window {
                appointment.window = *window;
                appointment.planned_start = None;
            }
        }
        AppointmentChange::CrewChanged { lead, helpers } => {
            appointment.lead = *lead;
            appointment.helpers = helpers.clone();
        }
        AppointmentChange::Planned { start } => appointment.planned_start = *start,
    }
    appointment.version += 1;
}

/// [`decide`] then [`evolve`]: the change, with the appointment updated; untouched on refusal.
pub fn execute(
    appointment: &mut Appointment,
    command: &AppointmentCommand,
) -> Result<AppointmentChange, AppointmentError> {
    let change = decide(appointment, command)?;
    evolve(appointment, &change);
    Ok(change)
}

/// Rebuilds an appointment from its first state and its recorded changes.
pub fn replay(first: &Appointment, changes: &[AppointmentChange]) -> Appointment {
    let mut appointment = first.clone();
    for change in changes {
        evolve(&mut appointment, change);
    }
    appointment
}

/// When a change happened, for a timeline.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentEvent {
    /// What changed.
    pub change: AppointmentChange,
    /// When.
    pub at: DateTime<Utc>,
}

/// Job states in which a visit may be added (v2): before completion, not held or cancelled. A
/// job `in_progress` takes a second visit ("return for parts").
pub const VISITS_ADDED_IN: [JobStatus; 6] = [
    JobStatus::Requested,
    JobStatus::Scheduled,
    JobStatus::Dispatched,
    JobStatus::EnRoute,
    JobStatus::OnSite,
    JobStatus::InProgress,
];

/// Where a visit stands for everything that follows it: a held visit counts as the state it was
/// held in (a visit held once its crew arrived is still a visit whose crew arrived).
pub fn effective_status(
    status: AppointmentStatus,
    held_from: Option<AppointmentStatus>,
) -> AppointmentStatus {
    match (status, held_from) {
        (S::OnHold, Some(held)) if held != S::OnHold => held,
        (S::OnHold, _) => S::Scheduled,
        (status, _) => status,
    }
}

/// Whether nobody of the crew has reached the property for this visit yet, and it is still
/// expected: scheduled, dispatched, en route, or held in one of those.
pub fn before_site(status: AppointmentStatus, held_from: Option<AppointmentStatus>) -> bool {
    matches!(
        effective_status(status, held_from),
        S::Scheduled | S::Dispatched | S::EnRoute
    ) && !status.is_final()
}

/// How far along an open appointment is, for picking the job's current visit.
fn progress(appointment: &Appointment) -> u8 {
    match effective_status(appointment.status, appointment.held_from) {
        S::OnSite => 4,
        S::EnRoute => 3,
        S::Dispatched => 2,
        S::Scheduled | S::OnHold => 1,
        S::Done | S::Cancelled => 0,
    }
}

/// The job's current visit: the open (not done, not cancelled) appointment furthest along
/// (on site, then en route, dispatched, scheduled; a held visit as the state it was held in),
/// the earliest window first among equals; `None` when none is open.
pub fn current_visit<'a>(appointments: &[&'a Appointment]) -> Option<&'a Appointment> {
    appointments
        .iter()
        .copied()
        .filter(|a| !a.status.is_final())
        .min_by_key(|a| (std::cmp::Reverse(progress(a)), a.window.start(), a.id))
}

/// The state a v2 job takes from its appointments. The rules, in order:
///
/// 1. A job that is completed or later, cancelled or on hold does not follow its visits (those
///    moves are explicit: `job/v2/complete`, hold, resume, cancel).
/// 2. With an open visit, the job takes the state of its current visit ([`current_visit`]; a
///    held visit counts as the state it was held in): `on_site` and `en_route` as they are;
///    `dispatched` and `scheduled` as they are until a visit is done, `in_progress` after
///    ("return for parts").
/// 3. With no open visit: `in_progress` once a visit is done (waiting for an explicit
///    completion), `requested` otherwise (every visit cancelled, or none yet).
pub fn followed_status(current: JobStatus, appointments: &[&Appointment]) -> JobStatus {
    use JobStatus as J;
    if !VISITS_ADDED_IN.contains(&current) {
        return current;
    }
    let work_begun = appointments.iter().any(|a| a.status == S::Done);
    match current_visit(appointments).map(|a| effective_status(a.status, a.held_from)) {
        Some(S::OnSite) => J::OnSite,
        Some(S::EnRoute) => J::EnRoute,
        Some(_) if work_begun => J::InProgress,
        Some(S::Dispatched) => J::Dispatched,
        Some(_) => J::Scheduled,
        None if work_begun => J::InProgress,
        None => J::Requested,
    }
}

/// Why a v2 job cannot be completed yet, if it cannot: every appointment that is not cancelled
/// must be done, and at least one must be.
pub fn completion_refusal(appointments: &[&Appointment]) -> Option<CompletionRefusal> {
    let open: Vec<AppointmentId> = appointments
        .iter()
        .filter(|a| !a.status.is_final())
        .map(|a| a.id)
        .collect();
    if !open.is_empty() {
        return Some(CompletionRefusal::VisitsOpen(open));
    }
    if !appointments.iter().any(|a| a.status == S::Done) {
        return Some(CompletionRefusal::NoVisitDone);
    }
    None
}

/// Why a v2 job cannot be completed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompletionRefusal {
    /// Some appointments are neither done nor cancelled.
    #[error("{} appointment(s) of the job are neither done nor cancelled", .0.len())]
    VisitsOpen(Vec<AppointmentId>),
    /// No appointment is done.
    #[error("no appointment of the job is done")]
    NoVisitDone,
}

impl CompletionRefusal {
    /// A stable code for the API.
    pub fn code(&self) -> &'static str {
        match self {
            Self::VisitsOpen(_) => "JOB_APPOINTMENTS_OPEN",
            Self::NoVisitDone => "JOB_NO_VISIT_DONE",
        }
    }
}

/// Whether a visit in `window` is the job's first: no other appointment is open or done. Only a
/// first visit is held to the SLA deadline (a return visit is not a response).
pub fn is_first_visit(others: &[&Appointment]) -> bool {
    others.iter().all(|a| a.status == S::Cancelled)
}

/// `Some(deadline)` when a first visit in `window` would start after the job's SLA deadline.
pub fn sla_refusal(
    window: &TimeWindow,
    sla_deadline: DateTime<Utc>,
    others: &[&Appointment],
) -> Option<DateTime<Utc>> {
    (is_first_visit(others) && window.start() > sla_deadline).then_some(sla_deadline)
}

#[cfg(test)]
mod tests;
