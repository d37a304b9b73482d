//! The job aggregate and its state machine (version 1, DESIGN §3.1).
//!
//! ```text
//! requested ─schedule→ scheduled ─dispatch→ dispatched ─start_travel→ en_route ─arrive→ on_site
//! on_site ─start_work→ in_progress ─complete→ completed ─invoice→ invoiced ─settle→ paid ─close→ closed
//! any open state ─hold→ on_hold ─resume→ (the state it was held in)
//! requested|scheduled|dispatched|en_route|on_hold ─cancel→ cancelled
//! dispatched|en_route ─unassign→ scheduled
//! completed|invoiced|paid|closed ─callback→ (a new linked job in requested)
//! ```
//!
//! The machine is event-sourced in the small: [`decide`] checks a command against the job and
//! returns the [`JobChange`] it causes (or a refusal that leaves the job untouched), and
//! [`evolve`] applies a recorded [`JobEvent`] to a job. [`execute`] is the two together. Replaying
//! a job's events from its creation with [`replay`] rebuilds it exactly, which the property
//! tests check. Changing the table means `job_lifecycle_v2`.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::Invalid;
use crate::ids::{CustomerId, JobId, PropertyId, TechnicianId, UserId};
use crate::org::SlaWindows;
use crate::text::{Description, Name, Reason, Summary, TradeCode};
use crate::workforce::SkillLevel;

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Asked for, not yet given a time.
    Requested,
    /// Given an appointment window.
    Scheduled,
    /// Sent to its technician.
    Dispatched,
    /// The technician is travelling to the property.
    EnRoute,
    /// The technician has arrived.
    OnSite,
    /// Work has started.
    InProgress,
    /// Work is done.
    Completed,
    /// An invoice has been issued.
    Invoiced,
    /// The invoice is paid.
    Paid,
    /// Nothing more will happen.
    Closed,
    /// Paused; resumes to the state it was held in.
    OnHold,
    /// Called off.
    Cancelled,
}

impl JobStatus {
    /// Every state, in the order of the happy path.
    pub const ALL: [JobStatus; 12] = [
        Self::Requested,
        Self::Scheduled,
        Self::Dispatched,
        Self::EnRoute,
        Self::OnSite,
        Self::InProgress,
        Self::Completed,
        Self::Invoiced,
        Self::Paid,
        Self::Closed,
        Self::OnHold,
        Self::Cancelled,
    ];

    /// The snake_case name used on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Scheduled => "scheduled",
            Self::Dispatched => "dispatched",
            Self::EnRoute => "en_route",
            Self::OnSite => "on_site",
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Invoiced => "invoiced",
            Self::Paid => "paid",
            Self::Closed => "closed",
            Self::OnHold => "on_hold",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| Invalid::new("invalid_status", format!("{raw:?} is not a job status")))
    }

    /// Open states are those in which work is still ahead; only they can be put on hold.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            Self::Requested
                | Self::Scheduled
                | Self::Dispatched
                | Self::EnRoute
                | Self::OnSite
                | Self::InProgress
        )
    }
}

impl JobStatus {
    /// Whether the work was done: completed, and whatever billing followed.
    pub fn is_work_done(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Invoiced | Self::Paid | Self::Closed
        )
    }

    /// Whether the work is still ahead: open, or on hold (a cancelled job's never is).
    pub fn is_pending(self) -> bool {
        self.is_open() || self == Self::OnHold
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How urgent a job is; decides its SLA response deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Water on the floor, no heat in winter, a gas smell.
    Emergency,
    /// Soon, but not tonight.
    Urgent,
    /// Whenever it fits.
    Routine,
}

impl Priority {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Emergency => "emergency",
            Self::Urgent => "urgent",
            Self::Routine => "routine",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        match raw {
            "emergency" => Ok(Self::Emergency),
            "urgent" => Ok(Self::Urgent),
            "routine" => Ok(Self::Routine),
            _ => Err(Invalid::new(
                "invalid_priority",
                "the priority is emergency, urgent or routine",
            )),
        }
    }

    /// The response window the organization promises for this priority.
    pub fn response_window(self, sla: &SlaWindows) -> Duration {
        let minutes = match self {
            Self::Emergency => sla.emergency_minutes,
            Self::Urgent => sla.urgent_minutes,
            Self::Routine => sla.routine_minutes,
        };
        Duration::minutes(i64::from(minutes))
    }
}

/// An appointment window: `start < end`, at most 7 days long.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeWindow {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl TimeWindow {
    /// Accepts a window that ends after it starts and lasts at most 7 days.
    pub fn parse(start: DateTime<Utc>, end: DateTime<Utc>) -> Result<Self, Invalid> {
        if end <= start {
            return Err(Invalid::new(
                "window_end_before_start",
                "the window must end after it starts",
            ));
        }
        if end - start > Duration::days(7) {
            return Err(Invalid::new(
                "window_too_long",
                "a window lasts at most 7 days",
            ));
        }
        Ok(Self { start, end })
    }

    /// When it opens.
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }

    /// When it closes.
    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }
}

/// A job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// Its id.
    pub id: JobId,
    /// 1 on creation, +1 on each event.
    pub version: i64,
    /// Where it is in its life.
    pub status: JobStatus,
    /// While on hold, the state it resumes to.
    pub held_from: Option<JobStatus>,
    /// Whose job it is.
    pub customer_id: CustomerId,
    /// Where the work is.
    pub property_id: PropertyId,
    /// The trade it needs.
    pub trade: TradeCode,
    /// How urgent it is.
    pub priority: Priority,
    /// One line.
    pub summary: Summary,
    /// Details.
    pub description: Option<Description>,
    /// The appointment window, once scheduled.
    pub window: Option<TimeWindow>,
    /// The assigned technician.
    pub technician_id: Option<TechnicianId>,
    /// Respond by then, from the organization's SLA windows at creation.
    pub sla_deadline: DateTime<Utc>,
    /// When the technician arrived (the visit started).
    pub visit_started_at: Option<DateTime<Utc>>,
    /// When work was completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// The job this one is a callback for.
    pub callback_of: Option<JobId>,
    /// The lowest skill level in the trade a technician needs.
    #[serde(default)]
    pub min_skill_level: SkillLevel,
    /// Certifications the technician must hold, valid on the appointment date.
    #[serde(default)]
    pub required_certifications: Vec<Name>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What is needed to create a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewJob {
    /// Whose job it is.
    pub customer_id: CustomerId,
    /// Where; must be one of the customer's properties.
    pub property_id: PropertyId,
    /// The trade it needs.
    pub trade: TradeCode,
    /// How urgent.
    pub priority: Priority,
    /// One line.
    pub summary: Summary,
    /// Details.
    pub description: Option<Description>,
    /// The completed job this one calls back to.
    pub callback_of: Option<JobId>,
    /// The lowest skill level in the trade a technician needs (default 1).
    #[serde(default)]
    pub min_skill_level: SkillLevel,
    /// Certifications the technician must hold, valid on the appointment date.
    #[serde(default)]
    pub required_certifications: Vec<Name>,
}

/// The labels of the transition table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobAction {
    /// requested → scheduled (and scheduled → scheduled: a new window).
    Schedule,
    /// scheduled → dispatched.
    Dispatch,
    /// dispatched → en_route.
    StartTravel,
    /// en_route → on_site.
    Arrive,
    /// on_site → in_progress.
    StartWork,
    /// in_progress → completed.
    Complete,
    /// completed → invoiced.
    Invoice,
    /// invoiced → paid.
    Settle,
    /// paid → closed.
    Close,
    /// any open state → on_hold.
    Hold,
    /// on_hold → the state it was held in.
    Resume,
    /// requested|scheduled|dispatched|en_route|on_hold → cancelled.
    Cancel,
    /// dispatched|en_route → scheduled.
    Unassign,
}

impl JobAction {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Schedule => "schedule",
            Self::Dispatch => "dispatch",
            Self::StartTravel => "start_travel",
            Self::Arrive => "arrive",
            Self::StartWork => "start_work",
            Self::Complete => "complete",
            Self::Invoice => "invoice",
            Self::Settle => "settle",
            Self::Close => "close",
            Self::Hold => "hold",
            Self::Resume => "resume",
            Self::Cancel => "cancel",
            Self::Unassign => "unassign",
        }
    }
}

/// The target of a transition: a fixed state, or "the state it was held in".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Always this state.
    State(JobStatus),
    /// The state recorded when the job was put on hold.
    HeldState,
}

use JobAction as A;
use JobStatus as S;

/// The transition table of `job_lifecycle_v1`: `(from, action, to)`.
pub const TRANSITIONS: &[(JobStatus, JobAction, Target)] = &[
    (S::Requested, A::Schedule, Target::State(S::Scheduled)),
    (S::Scheduled, A::Schedule, Target::State(S::Scheduled)),
    (S::Scheduled, A::Dispatch, Target::State(S::Dispatched)),
    (S::Dispatched, A::StartTravel, Target::State(S::EnRoute)),
    (S::EnRoute, A::Arrive, Target::State(S::OnSite)),
    (S::OnSite, A::StartWork, Target::State(S::InProgress)),
    (S::InProgress, A::Complete, Target::State(S::Completed)),
    (S::Completed, A::Invoice, Target::State(S::Invoiced)),
    (S::Invoiced, A::Settle, Target::State(S::Paid)),
    (S::Paid, A::Close, Target::State(S::Closed)),
    (S::Requested, A::Hold, Target::State(S::OnHold)),
    (S::Scheduled, A::Hold, Target::State(S::OnHold)),
    (S::Dispatched, A::Hold, Target::State(S::OnHold)),
    (S::EnRoute, A::Hold, Target::State(S::OnHold)),
    (S::OnSite, A::Hold, Target::State(S::OnHold)),
    (S::InProgress, A::Hold, Target::State(S::OnHold)),
    (S::OnHold, A::Resume, Target::HeldState),
    (S::Requested, A::Cancel, Target::State(S::Cancelled)),
    (S::Scheduled, A::Cancel, Target::State(S::Cancelled)),
    (S::Dispatched, A::Cancel, Target::State(S::Cancelled)),
    (S::EnRoute, A::Cancel, Target::State(S::Cancelled)),
    (S::OnHold, A::Cancel, Target::State(S::Cancelled)),
    (S::Dispatched, A::Unassign, Target::State(S::Scheduled)),
    (S::EnRoute, A::Unassign, Target::State(S::Scheduled)),
];

/// States from which a callback (a new linked job) may be raised.
pub const CALLBACK_FROM: [JobStatus; 4] = [S::Completed, S::Invoiced, S::Paid, S::Closed];

/// States in which nobody has reached the property yet (with no visit started): a job in one of
/// them past its SLA deadline is in breach.
pub const NOT_YET_REACHED: [JobStatus; 5] = [
    S::Requested,
    S::Scheduled,
    S::Dispatched,
    S::EnRoute,
    S::OnHold,
];

/// Whether a job has not been reached: its state is one of [`NOT_YET_REACHED`] and no visit of
/// it has started (a job held after its crew arrived has been reached).
pub fn not_yet_reached(status: JobStatus, visit_started: bool) -> bool {
    NOT_YET_REACHED.contains(&status) && !visit_started
}

/// States in which a technician may be assigned or replaced. A dispatched job may still go to
/// another technician (nobody has set off yet); once the technician is on the way, it must be
/// unassigned (back to scheduled) first.
pub const ASSIGNABLE_IN: [JobStatus; 3] = [S::Requested, S::Scheduled, S::Dispatched];

/// The `(action, target state)` pairs the table allows from the job's current state, in table
/// order, with the held state resolved.
pub fn allowed_actions(job: &Job) -> Vec<(JobAction, JobStatus)> {
    TRANSITIONS
        .iter()
        .filter(|(from, _, _)| *from == job.status)
        .filter_map(|&(_, action, target)| match target {
            Target::State(to) => Some((action, to)),
            Target::HeldState => job.held_from.map(|to| (action, to)),
        })
        .collect()
}

/// The states the job may move to next, without duplicates, in table order.
pub fn allowed_targets(job: &Job) -> Vec<JobStatus> {
    let mut targets: Vec<JobStatus> = Vec::new();
    for (_, to) in allowed_actions(job) {
        if !targets.contains(&to) {
            targets.push(to);
        }
    }
    targets
}

/// The action that moves the job to `target`, for the "set the status" style of API. When
/// several actions lead there, the table's first wins (from `scheduled`, `scheduled` is a
/// reschedule, which needs a window and so goes through [`JobCommand::Schedule`]).
pub fn action_for_target(job: &Job, target: JobStatus) -> Option<JobAction> {
    allowed_actions(job)
        .into_iter()
        .find(|(_, to)| *to == target)
        .map(|(a, _)| a)
}

/// Facts the state machine cannot know by itself, supplied by the caller from other aggregates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Guards {
    /// The job has an invoice in issued state (guard of `invoice`).
    pub invoice_issued: bool,
    /// The job's invoice balance is zero (guard of `settle`).
    pub balance_settled: bool,
}

/// Something asked of a job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum JobCommand {
    /// Give the job an appointment window.
    Schedule {
        /// The window.
        window: TimeWindow,
    },
    /// Assign (or replace) the technician; not a change of state.
    Assign {
        /// Who.
        technician_id: TechnicianId,
    },
    /// Send it to its technician.
    Dispatch,
    /// The technician sets off.
    StartTravel,
    /// The technician arrives.
    Arrive,
    /// Work starts.
    StartWork,
    /// Work is done.
    Complete,
    /// Its invoice is issued.
    Invoice,
    /// Its invoice is paid.
    Settle,
    /// Close it.
    Close,
    /// Pause it.
    Hold,
    /// Unpause it.
    Resume,
    /// Call it off.
    Cancel,
    /// Take it back from its technician.
    Unassign,
    /// Raise a new job linked to this one.
    Callback {
        /// The id of the new job.
        callback_job_id: JobId,
    },
    /// Correct what the job is (`job/v1/update`); not a change of state.
    Update {
        /// The fields to change.
        edit: JobEdit,
        /// The organization's SLA windows, for a new priority's deadline.
        sla: SlaWindows,
    },
    /// Record labour time and materials used (`job/v1/recordActuals`); not a change of state.
    RecordActuals {
        /// How many lines.
        lines: u32,
    },
}

/// What `job/v1/update` changes; `None` keeps a field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobEdit {
    /// A new summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<Summary>,
    /// New details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<Description>,
    /// Remove the details.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clear_description: bool,
    /// A new priority: a job not yet reached gets the deadline of its new SLA window, counted
    /// from its creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<Priority>,
    /// A new trade (not once the visit started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trade: Option<TradeCode>,
    /// A new lowest skill level (not once the visit started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_skill_level: Option<SkillLevel>,
    /// New required certifications (not once the visit started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_certifications: Option<Vec<Name>>,
}

impl JobEdit {
    /// Whether it changes who may do the job (trade, skill level or certifications).
    pub fn changes_requirements(&self) -> bool {
        self.trade.is_some()
            || self.min_skill_level.is_some()
            || self.required_certifications.is_some()
    }

    /// The camelCase names of the fields it sets, in a fixed order.
    pub fn fields(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let mut push = |set: bool, name| {
            if set {
                out.push(name);
            }
        };
        push(self.summary.is_some(), "summary");
        push(
            self.description.is_some() || self.clear_description,
            "description",
        );
        push(self.priority.is_some(), "priority");
        push(self.trade.is_some(), "trade");
        push(self.min_skill_level.is_some(), "minSkillLevel");
        push(
            self.required_certifications.is_some(),
            "requiredCertifications",
        );
        out
    }
}

impl JobCommand {
    /// The command that performs `action`; `None` for `schedule`, which needs a window.
    pub fn for_action(action: JobAction) -> Option<JobCommand> {
        Some(match action {
            A::Schedule => return None,
            A::Dispatch => Self::Dispatch,
            A::StartTravel => Self::StartTravel,
            A::Arrive => Self::Arrive,
            A::StartWork => Self::StartWork,
            A::Complete => Self::Complete,
            A::Invoice => Self::Invoice,
            A::Settle => Self::Settle,
            A::Close => Self::Close,
            A::Hold => Self::Hold,
            A::Resume => Self::Resume,
            A::Cancel => Self::Cancel,
            A::Unassign => Self::Unassign,
        })
    }

    fn action(&self) -> Option<JobAction> {
        Some(match self {
            Self::Schedule { .. } => A::Schedule,
            Self::Dispatch => A::Dispatch,
            Self::StartTravel => A::StartTravel,
            Self::Arrive => A::Arrive,
            Self::StartWork => A::StartWork,
            Self::Complete => A::Complete,
            Self::Invoice => A::Invoice,
            Self::Settle => A::Settle,
            Self::Close => A::Close,
            Self::Hold => A::Hold,
            Self::Resume => A::Resume,
            Self::Cancel => A::Cancel,
            Self::Unassign => A::Unassign,
            Self::Assign { .. }
            | Self::Callback { .. }
            | Self::Update { .. }
            | Self::RecordActuals { .. } => return None,
        })
    }
}

/// What happened to a job: the payload of a [`JobEvent`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum JobChange {
    /// The job was created (always the first event).
    Created {
        /// Everything the job was created from.
        job: NewJob,
        /// The response deadline computed at creation.
        sla_deadline: DateTime<Utc>,
    },
    /// A transition of the table.
    Transitioned {
        /// Which.
        action: JobAction,
        /// The window, for `schedule`.
        window: Option<TimeWindow>,
    },
    /// A technician was assigned (or replaced).
    Assigned {
        /// Who.
        technician_id: TechnicianId,
    },
    /// A callback job was raised from this one.
    CallbackRaised {
        /// The new job.
        callback_job_id: JobId,
    },
    /// Its description was corrected.
    Updated {
        /// What changed.
        edit: JobEdit,
        /// The new response deadline, when a new priority moved it.
        #[serde(default)]
        sla_deadline: Option<DateTime<Utc>>,
    },
    /// Labour time or materials were recorded on it.
    ActualsRecorded {
        /// How many lines.
        lines: u32,
    },
}

/// One entry of a job's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobEvent {
    /// The job's version after this event (1 for creation).
    pub version: i64,
    /// What happened.
    pub change: JobChange,
    /// The state before (`None` for creation).
    pub from: Option<JobStatus>,
    /// The state after.
    pub to: JobStatus,
    /// Who did it, when a person did.
    pub actor: Option<UserId>,
    /// Why, when a reason was given.
    pub reason: Option<Reason>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Why a command was refused. A refusal never changes the job.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    /// The table has no such transition from the current state.
    #[error("a job in state {from} cannot move to {to}; allowed: {}", list(.allowed))]
    InvalidTransition {
        /// The current state.
        from: JobStatus,
        /// The state asked for.
        to: JobStatus,
        /// The states the table allows from here.
        allowed: Vec<JobStatus>,
    },
    /// The action is not available in the current state (for actions with no fixed target).
    #[error("a job in state {from} cannot {}; allowed: {}", .action.as_str(), list(.allowed))]
    ActionNotAllowed {
        /// The current state.
        from: JobStatus,
        /// The action asked for.
        action: JobAction,
        /// The states the table allows from here.
        allowed: Vec<JobStatus>,
    },
    /// `dispatch` needs an assigned technician.
    #[error("a job needs an assigned technician before it can be dispatched")]
    TechnicianRequired,
    /// `complete` needs the technician on site first.
    #[error("a job can only be completed after its technician has arrived on site")]
    VisitNotStarted,
    /// `invoice` needs an issued invoice.
    #[error("a job moves to invoiced when an invoice for it is issued")]
    InvoiceRequired,
    /// `settle` needs a zero balance.
    #[error("a job moves to paid when its invoice balance reaches zero")]
    BalanceOutstanding,
    /// The technician can no longer be changed in this state.
    #[error("the technician of a job in state {status} cannot be changed{}", unassign_hint(*.status))]
    AssignmentNotAllowed {
        /// The current state.
        status: JobStatus,
    },
    /// A closed or cancelled job is not changed any more.
    #[error("a {status} job cannot be changed")]
    Closed {
        /// The current state.
        status: JobStatus,
    },
    /// Who may do the job cannot change once its visit started.
    #[error(
        "the trade, skill level and certifications of a job cannot change once its visit has started"
    )]
    VisitStarted,
    /// A callback can only be raised from a finished job.
    #[error(
        "a callback can only be raised for a completed, invoiced, paid or closed job, not one in state {status}"
    )]
    CallbackNotAllowed {
        /// The current state.
        status: JobStatus,
    },
}

impl JobError {
    /// The stable code reported to clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidTransition { .. } | Self::ActionNotAllowed { .. } => {
                "JOB_INVALID_TRANSITION"
            }
            Self::TechnicianRequired => "JOB_TECHNICIAN_REQUIRED",
            Self::VisitNotStarted => "JOB_VISIT_NOT_STARTED",
            Self::InvoiceRequired => "JOB_INVOICE_REQUIRED",
            Self::BalanceOutstanding => "JOB_BALANCE_OUTSTANDING",
            Self::AssignmentNotAllowed { .. } => "JOB_ASSIGNMENT_NOT_ALLOWED",
            Self::CallbackNotAllowed { .. } => "JOB_CALLBACK_NOT_ALLOWED",
            Self::Closed { .. } => "JOB_CLOSED",
            Self::VisitStarted => "JOB_VISIT_STARTED",
        }
    }

    /// Whether the refusal is a conflict with the job's state (409) rather than a business rule
    /// that is not met (422).
    pub fn is_state_conflict(&self) -> bool {
        matches!(
            self,
            Self::InvalidTransition { .. }
                | Self::ActionNotAllowed { .. }
                | Self::AssignmentNotAllowed { .. }
                | Self::CallbackNotAllowed { .. }
                | Self::Closed { .. }
                | Self::VisitStarted
        )
    }
}

fn unassign_hint(status: JobStatus) -> &'static str {
    if TRANSITIONS
        .iter()
        .any(|(from, action, _)| *from == status && *action == A::Unassign)
    {
        "; unassign it first"
    } else {
        ""
    }
}

fn list(states: &[JobStatus]) -> String {
    if states.is_empty() {
        "none".to_owned()
    } else {
        states
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Creates a job in `requested`, with its SLA deadline, and its creation event.
pub fn create(
    id: JobId,
    new_job: NewJob,
    sla: &SlaWindows,
    now: DateTime<Utc>,
    actor: Option<UserId>,
) -> (Job, JobEvent) {
    let sla_deadline = now + new_job.priority.response_window(sla);
    create_due(id, new_job, sla_deadline, now, actor)
}

/// Creates a job that must be reached by `sla_deadline` rather than by its priority's response
/// window: a maintenance visit generated weeks ahead is due at its own date, not three days
/// after it was generated.
pub fn create_due(
    id: JobId,
    new_job: NewJob,
    sla_deadline: DateTime<Utc>,
    now: DateTime<Utc>,
    actor: Option<UserId>,
) -> (Job, JobEvent) {
    let event = JobEvent {
        version: 1,
        change: JobChange::Created {
            job: new_job,
            sla_deadline,
        },
        from: None,
        to: S::Requested,
        actor,
        reason: None,
        at: now,
    };
    let JobChange::Created { job: new_job, .. } = &event.change else {
        unreachable!("the event was built as a creation two lines above")
    };
    let job = from_creation(id, new_job, sla_deadline, &event);
    (job, event)
}

/// Builds a job from its creation event; `None` if the event is not a creation.
pub fn genesis(id: JobId, event: &JobEvent) -> Option<Job> {
    let JobChange::Created { job, sla_deadline } = &event.change else {
        return None;
    };
    Some(from_creation(id, job, *sla_deadline, event))
}

fn from_creation(id: JobId, job: &NewJob, sla_deadline: DateTime<Utc>, event: &JobEvent) -> Job {
    Job {
        id,
        version: event.version,
        status: S::Requested,
        held_from: None,
        customer_id: job.customer_id,
        property_id: job.property_id,
        trade: job.trade.clone(),
        priority: job.priority,
        summary: job.summary.clone(),
        description: job.description.clone(),
        window: None,
        technician_id: None,
        sla_deadline,
        visit_started_at: None,
        completed_at: None,
        callback_of: job.callback_of,
        min_skill_level: job.min_skill_level,
        required_certifications: job.required_certifications.clone(),
        created_at: event.at,
        updated_at: event.at,
    }
}

/// Checks `command` against `job` and returns the change it causes, or why it is refused.
pub fn decide(job: &Job, command: &JobCommand, guards: &Guards) -> Result<JobChange, JobError> {
    match command {
        JobCommand::Assign { technician_id } => {
            if ASSIGNABLE_IN.contains(&job.status) {
                Ok(JobChange::Assigned {
                    technician_id: *technician_id,
                })
            } else {
                Err(JobError::AssignmentNotAllowed { status: job.status })
            }
        }
        JobCommand::Update { edit, sla } => {
            if matches!(job.status, S::Closed | S::Cancelled) {
                return Err(JobError::Closed { status: job.status });
            }
            if edit.changes_requirements() && job.visit_started_at.is_some() {
                return Err(JobError::VisitStarted);
            }
            let sla_deadline = match edit.priority {
                Some(priority) if job.visit_started_at.is_none() => {
                    Some(job.created_at + priority.response_window(sla))
                }
                _ => None,
            };
            Ok(JobChange::Updated {
                edit: edit.clone(),
                sla_deadline,
            })
        }
        JobCommand::RecordActuals { lines } => {
            if matches!(job.status, S::Closed | S::Cancelled) {
                return Err(JobError::Closed { status: job.status });
            }
            Ok(JobChange::ActualsRecorded { lines: *lines })
        }
        JobCommand::Callback { callback_job_id } => {
            if CALLBACK_FROM.contains(&job.status) {
                Ok(JobChange::CallbackRaised {
                    callback_job_id: *callback_job_id,
                })
            } else {
                Err(JobError::CallbackNotAllowed { status: job.status })
            }
        }
        _ => {
            let Some(action) = command.action() else {
                unreachable!("every other command names a table action")
            };
            let allowed = allowed_actions(job);
            if !allowed.iter().any(|(a, _)| *a == action) {
                let allowed = allowed_targets(job);
                // "cannot move to X" only when X is really out of reach; otherwise (unassign
                // from requested, where scheduled is reachable by schedule) name the action.
                return Err(match fixed_target(action) {
                    Some(to) if !allowed.contains(&to) => JobError::InvalidTransition {
                        from: job.status,
                        to,
                        allowed,
                    },
                    _ => JobError::ActionNotAllowed {
                        from: job.status,
                        action,
                        allowed,
                    },
                });
            }
            match action {
                A::Dispatch if job.technician_id.is_none() => Err(JobError::TechnicianRequired),
                A::Complete if job.visit_started_at.is_none() => Err(JobError::VisitNotStarted),
                A::Invoice if !guards.invoice_issued => Err(JobError::InvoiceRequired),
                A::Settle if !guards.balance_settled => Err(JobError::BalanceOutstanding),
                _ => {
                    let window = match command {
                        JobCommand::Schedule { window } => Some(*window),
                        _ => None,
                    };
                    Ok(JobChange::Transitioned { action, window })
                }
            }
        }
    }
}

/// The state an action always leads to, if it has a fixed one.
fn fixed_target(action: JobAction) -> Option<JobStatus> {
    let targets: Vec<JobStatus> = TRANSITIONS
        .iter()
        .filter(|(_, a, _)| *a == action)
        .filter_map(|(_, _, t)| match t {
            Target::State(s) => Some(*s),
            Target::HeldState => None,
        })
        .collect();
    match targets.first() {
        Some(first) if targets.iter().all(|t| t == first) => Some(*first),
        _ => None,
    }
}

/// Applies a recorded event to the job it belongs to. Events come from [`decide`] (or from the
/// log), so they are valid for the job's state; applying one out of order is a programming error
/// that this function does not try to detect.
pub fn evolve(job: &Job, event: &JobEvent) -> Job {
    let mut next = job.clone();
    next.version = event.version;
    next.updated_at = event.at;
    next.status = event.to;
    match &event.change {
        JobChange::Created { .. }
        | JobChange::CallbackRaised { .. }
        | JobChange::ActualsRecorded { .. } => {}
        JobChange::Updated { edit, sla_deadline } => {
            if let Some(summary) = &edit.summary {
                next.summary = summary.clone();
            }
            if edit.clear_description {
                next.description = None;
            }
            if let Some(description) = &edit.description {
                next.description = Some(description.clone());
            }
            if let Some(priority) = edit.priority {
                next.priority = priority;
            }
            if let Some(trade) = &edit.trade {
                next.trade = trade.clone();
            }
            if let Some(level) = edit.min_skill_level {
                next.min_skill_level = level;
            }
            if let Some(certifications) = &edit.required_certifications {
                next.required_certifications = certifications.clone();
            }
            if let Some(deadline) = sla_deadline {
                next.sla_deadline = *deadline;
            }
        }
        JobChange::Assigned { technician_id } => next.technician_id = Some(*technician_id),
        JobChange::Transitioned { action, window } => match action {
            A::Schedule => next.window = *window,
            A::Arrive => next.visit_started_at = Some(event.at),
            A::Complete => next.completed_at = Some(event.at),
            A::Hold => next.held_from = event.from,
            A::Resume | A::Cancel => next.held_from = None,
            A::Unassign => next.technician_id = None,
            _ => {}
        },
    }
    next
}

/// Runs a command: decides, builds the event (version +1, from/to, who, why, when) and applies
/// it. On refusal the job is untouched (it is borrowed immutably).
pub fn execute(
    job: &Job,
    command: &JobCommand,
    guards: &Guards,
    actor: Option<UserId>,
    reason: Option<Reason>,
    now: DateTime<Utc>,
) -> Result<(Job, JobEvent), JobError> {
    let change = decide(job, command, guards)?;
    let to = match &change {
        JobChange::Transitioned { action, .. } => allowed_actions(job)
            .into_iter()
            .find(|(a, _)| a == action)
            .map_or(job.status, |(_, to)| to),
        _ => job.status,
    };
    let event = JobEvent {
        version: job.version + 1,
        change,
        from: Some(job.status),
        to,
        actor,
        reason,
        at: now,
    };
    Ok((evolve(job, &event), event))
}

/// Rebuilds a job from its full event log (creation first). `None` if the log is empty or does
/// not start with a creation.
pub fn replay(id: JobId, events: &[JobEvent]) -> Option<Job> {
    let (first, rest) = events.split_first()?;
    let job = genesis(id, first)?;
    Some(rest.iter().fold(job, |job, event| evolve(&job, event)))
}

#[cfg(test)]
mod tests;
