//! Estimates: what a customer is offered, in one or more options (good, better, best), and
//! what they approve.
//!
//! ```text
//! draft ─send→ sent ─approve→ approved
//!              sent ─decline→ declined
//!              sent ─expire→  expired      (a durable timer at valid_until)
//! draft|sent|declined|expired ─revise→ draft (the next revision)
//! ```
//!
//! Each option holds a [`Quote`]: its lines are priced once, through [`crate::pricebook::quote`],
//! and from then on are a snapshot that no change to the pricebook can reach. Revising an
//! estimate makes the next revision (a new value, `revision + 1`, back in draft); the store keeps
//! the earlier revision as it was. An approved estimate is immutable: every command on it is
//! refused with `ESTIMATE_INVALID_TRANSITION`, and [`planned_work`] hands the approved option's
//! lines to the job.
//!
//! The machine has the shape of the job's: [`decide`] checks a command and returns the change,
//! [`evolve`] applies a recorded event, [`execute`] is both, [`replay`] rebuilds from the log.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Invalid;
use crate::ids::{CustomerId, EstimateId, EstimateOptionId, JobId, PropertyId, UserId};
use crate::money::{FieldError, Money};
use crate::org::Currency;
use crate::pricebook::{PricedLine, Quote};
use crate::text::{Description, Name, Reason};

/// Where an estimate is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EstimateStatus {
    /// Being written.
    Draft,
    /// Delivered to the customer.
    Sent,
    /// The customer approved one option. Final and immutable.
    Approved,
    /// The customer declined.
    Declined,
    /// Not answered before `valid_until`.
    Expired,
}

impl EstimateStatus {
    /// Every state.
    pub const ALL: [EstimateStatus; 5] = [
        Self::Draft,
        Self::Sent,
        Self::Approved,
        Self::Declined,
        Self::Expired,
    ];

    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Sent => "sent",
            Self::Approved => "approved",
            Self::Declined => "declined",
            Self::Expired => "expired",
        }
    }

    /// Parses the snake_case name.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| {
                Invalid::new(
                    "invalid_status",
                    format!("{raw:?} is not an estimate status"),
                )
            })
    }
}

impl std::fmt::Display for EstimateStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The labels of the transition table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EstimateAction {
    /// draft → sent.
    Send,
    /// sent → approved.
    Approve,
    /// sent → declined.
    Decline,
    /// sent → expired.
    Expire,
    /// draft|sent|declined|expired → draft, as the next revision.
    Revise,
}

impl EstimateAction {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Send => "send",
            Self::Approve => "approve",
            Self::Decline => "decline",
            Self::Expire => "expire",
            Self::Revise => "revise",
        }
    }
}

use EstimateAction as A;
use EstimateStatus as S;

/// The transition table: `(from, action, to)`.
pub const TRANSITIONS: &[(EstimateStatus, EstimateAction, EstimateStatus)] = &[
    (S::Draft, A::Send, S::Sent),
    (S::Sent, A::Approve, S::Approved),
    (S::Sent, A::Decline, S::Declined),
    (S::Sent, A::Expire, S::Expired),
    (S::Draft, A::Revise, S::Draft),
    (S::Sent, A::Revise, S::Draft),
    (S::Declined, A::Revise, S::Draft),
    (S::Expired, A::Revise, S::Draft),
];

/// The states an estimate in `status` may move to, without duplicates, in table order.
pub fn allowed_targets(status: EstimateStatus) -> Vec<EstimateStatus> {
    let mut out = Vec::new();
    for (from, _, to) in TRANSITIONS {
        if *from == status && !out.contains(to) {
            out.push(*to);
        }
    }
    out
}

/// The most options an estimate may offer.
pub const MAX_OPTIONS: usize = 10;

/// One option of an estimate: a name and its priced lines.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EstimateOption {
    /// Its id.
    pub id: EstimateOptionId,
    /// Its name, such as `Good`, `Better`, `Best`.
    pub name: Name,
    /// The priced lines, discount, taxes and total, snapshotted when priced.
    pub quote: Quote,
}

/// What an estimate offers: the content of `generate` and `revise`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EstimateContent {
    /// 1 to [`MAX_OPTIONS`] options with distinct names and ids.
    pub options: Vec<EstimateOption>,
    /// The offer lapses after this instant.
    pub valid_until: DateTime<Utc>,
    /// Notes for the customer.
    pub notes: Option<Description>,
}

/// What is needed to create an estimate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewEstimate {
    /// The job it is for, if any.
    pub job_id: Option<JobId>,
    /// The customer (the job's, when there is a job).
    pub customer_id: CustomerId,
    /// Where the work would be.
    pub property_id: PropertyId,
    /// The organization's currency; every option is priced in it.
    pub currency: Currency,
    /// The offer.
    pub content: EstimateContent,
}

/// The customer's approval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    /// The option approved.
    pub option_id: EstimateOptionId,
    /// Who signed.
    pub signed_by: Name,
    /// The signature as captured (a typed name, or a reference to a stored image).
    pub signature: Option<Description>,
    /// A deposit to collect before work starts, at most the option's total.
    pub deposit_required: Option<Money>,
    /// When.
    pub approved_at: DateTime<Utc>,
}

/// An estimate (one revision of it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Estimate {
    /// Its id (the same across revisions).
    pub id: EstimateId,
    /// 1 on creation, +1 on each event (across revisions).
    pub version: i64,
    /// 1 on creation, +1 on each revise.
    pub revision: u32,
    /// Where it is.
    pub status: EstimateStatus,
    /// The job it is for.
    pub job_id: Option<JobId>,
    /// The customer.
    pub customer_id: CustomerId,
    /// The property.
    pub property_id: PropertyId,
    /// The currency of every amount.
    pub currency: Currency,
    /// The options offered.
    pub options: Vec<EstimateOption>,
    /// The offer lapses after this instant.
    pub valid_until: DateTime<Utc>,
    /// Notes for the customer.
    pub notes: Option<Description>,
    /// When it was sent (this revision).
    pub sent_at: Option<DateTime<Utc>>,
    /// The approval, once approved.
    pub approval: Option<Approval>,
    /// Why it was declined, if a reason was given.
    pub decline_reason: Option<Reason>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Estimate {
    /// The option with this id.
    pub fn option(&self, id: EstimateOptionId) -> Option<&EstimateOption> {
        self.options.iter().find(|o| o.id == id)
    }

    /// The approved option, once approved.
    pub fn approved_option(&self) -> Option<&EstimateOption> {
        self.approval
            .as_ref()
            .filter(|_| self.status == S::Approved)
            .and_then(|a| self.option(a.option_id))
    }
}

/// Something asked of an estimate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "command",
    rename_all = "snake_case",
    rename_all_fields = "camelCase"
)]
pub enum EstimateCommand {
    /// Deliver it (the outbox records the delivery).
    Send,
    /// The customer approves one option.
    Approve {
        /// Which.
        option_id: EstimateOptionId,
        /// Who signed.
        signed_by: Name,
        /// The signature as captured.
        signature: Option<Description>,
        /// A deposit to collect, at most the option's total, in the minor unit.
        deposit_required: Option<Money>,
    },
    /// The customer declines.
    Decline {
        /// Why.
        reason: Option<Reason>,
    },
    /// `valid_until` has passed without an answer (the durable timer).
    Expire,
    /// Replace the offer: the next revision, in draft.
    Revise {
        /// The new offer.
        content: EstimateContent,
    },
}

impl EstimateCommand {
    /// The table action this command performs.
    pub fn action(&self) -> EstimateAction {
        match self {
            Self::Send => A::Send,
            Self::Approve { .. } => A::Approve,
            Self::Decline { .. } => A::Decline,
            Self::Expire => A::Expire,
            Self::Revise { .. } => A::Revise,
        }
    }
}

/// What happened to an estimate: the payload of an [`EstimateEvent`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EstimateChange {
    /// It was created (always the first event).
    Created {
        /// Everything it was created from.
        estimate: NewEstimate,
    },
    /// It was sent.
    Sent,
    /// It was approved.
    Approved {
        /// The approval.
        approval: Approval,
    },
    /// It was declined.
    Declined {
        /// Why.
        reason: Option<Reason>,
    },
    /// It expired.
    Expired,
    /// Its next revision was made.
    Revised {
        /// The new offer.
        content: EstimateContent,
    },
    /// The approved estimate was handed to a job made for it (`convertToJob`); its state and
    /// content do not change.
    JobLinked {
        /// The job.
        job_id: JobId,
    },
}

/// One entry of an estimate's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EstimateEvent {
    /// The estimate's version after this event (1 for creation).
    pub version: i64,
    /// The revision after this event.
    pub revision: u32,
    /// What happened.
    pub change: EstimateChange,
    /// The state before (`None` for creation).
    pub from: Option<EstimateStatus>,
    /// The state after.
    pub to: EstimateStatus,
    /// Who did it, when a person did.
    pub actor: Option<UserId>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Why a command was refused. A refusal never changes the estimate.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EstimateError {
    /// The table has no such transition from the current state.
    #[error("an estimate in state {from} cannot move to {to}; allowed: {}", list(.allowed))]
    InvalidTransition {
        /// The current state.
        from: EstimateStatus,
        /// The state asked for.
        to: EstimateStatus,
        /// The states the table allows from here.
        allowed: Vec<EstimateStatus>,
    },
    /// Approving or sending after `valid_until`.
    #[error("the estimate expired at {valid_until}")]
    Expired {
        /// When it lapsed.
        valid_until: DateTime<Utc>,
    },
    /// Expiring before `valid_until` (a timer set for an earlier revision).
    #[error("the estimate is valid until {valid_until}")]
    NotYetExpired {
        /// When it lapses.
        valid_until: DateTime<Utc>,
    },
    /// The option to approve is not one of this estimate's.
    #[error("the estimate has no option {option_id}")]
    OptionNotFound {
        /// The option asked for.
        option_id: EstimateOptionId,
    },
    /// Only an approved estimate becomes planned work.
    #[error("only an approved estimate can be converted to a job; this one is {status}")]
    NotApproved {
        /// The current state.
        status: EstimateStatus,
    },
    /// The content or the approval has problems, each with its field.
    #[error("the estimate is not valid: {}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid {
        /// Every problem.
        problems: Vec<FieldError>,
    },
}

impl EstimateError {
    /// The stable code reported to clients.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidTransition { .. } => "ESTIMATE_INVALID_TRANSITION",
            Self::Expired { .. } => "ESTIMATE_EXPIRED",
            Self::NotYetExpired { .. } => "ESTIMATE_NOT_YET_EXPIRED",
            Self::OptionNotFound { .. } => "ESTIMATE_OPTION_NOT_FOUND",
            Self::NotApproved { .. } => "ESTIMATE_NOT_APPROVED",
            Self::Invalid { .. } => "VALIDATION_FAILED",
        }
    }

    /// Whether the refusal is a conflict with the estimate's state (409) rather than a rule
    /// that is not met (422) or a malformed request (400).
    pub fn is_state_conflict(&self) -> bool {
        matches!(
            self,
            Self::InvalidTransition { .. } | Self::NotApproved { .. }
        )
    }
}

fn list(states: &[EstimateStatus]) -> String {
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

/// Every problem with an offer in `currency` made at `now`: no options or too many, duplicate
/// names or ids, an option priced in another currency or with no lines, `valid_until` not in
/// the future.
pub fn validate_content(
    content: &EstimateContent,
    currency: Currency,
    now: DateTime<Utc>,
) -> Vec<FieldError> {
    let mut problems = Vec::new();
    if content.options.is_empty() {
        problems.push(FieldError::new(
            "options",
            "required",
            "an estimate offers at least one option",
        ));
    }
    if content.options.len() > MAX_OPTIONS {
        problems.push(FieldError::new(
            "options",
            "too_many",
            format!("an estimate offers at most {MAX_OPTIONS} options"),
        ));
    }
    let mut names = BTreeSet::new();
    let mut ids = BTreeSet::new();
    for (i, option) in content.options.iter().enumerate() {
        if !names.insert(option.name.as_str().to_lowercase()) {
            problems.push(FieldError::new(
                format!("options[{i}].name"),
                "duplicate",
                "another option has the same name",
            ));
        }
        if !ids.insert(option.id) {
            problems.push(FieldError::new(
                format!("options[{i}].id"),
                "duplicate",
                "another option has the same id",
            ));
        }
        if option.quote.currency != currency {
            problems.push(FieldError::new(
                format!("options[{i}]"),
                "currency_mismatch",
                format!("the option must be priced in {}", currency.code()),
            ));
        }
        if option.quote.lines.is_empty() {
            problems.push(FieldError::new(
                format!("options[{i}].lines"),
                "required",
                "an option has at least one line",
            ));
        }
    }
    if content.valid_until <= now {
        problems.push(FieldError::new(
            "validUntil",
            "must_be_in_future",
            "an estimate must be valid until a time in the future",
        ));
    }
    problems
}

/// Creates an estimate in draft, revision 1, with its creation event; or every problem with it.
pub fn create(
    id: EstimateId,
    new_estimate: NewEstimate,
    now: DateTime<Utc>,
    actor: Option<UserId>,
) -> Result<(Estimate, EstimateEvent), Vec<FieldError>> {
    let problems = validate_content(&new_estimate.content, new_estimate.currency, now);
    if !problems.is_empty() {
        return Err(problems);
    }
    let event = EstimateEvent {
        version: 1,
        revision: 1,
        change: EstimateChange::Created {
            estimate: new_estimate,
        },
        from: None,
        to: S::Draft,
        actor,
        at: now,
    };
    let estimate = genesis(id, &event);
    // Invariant: the event was built as a creation just above, which genesis always accepts.
    estimate.map(|e| (e, event)).ok_or_else(Vec::new)
}

/// Builds an estimate from its creation event; `None` if the event is not a creation.
pub fn genesis(id: EstimateId, event: &EstimateEvent) -> Option<Estimate> {
    let EstimateChange::Created { estimate } = &event.change else {
        return None;
    };
    Some(Estimate {
        id,
        version: event.version,
        revision: event.revision,
        status: S::Draft,
        job_id: estimate.job_id,
        customer_id: estimate.customer_id,
        property_id: estimate.property_id,
        currency: estimate.currency,
        options: estimate.content.options.clone(),
        valid_until: estimate.content.valid_until,
        notes: estimate.content.notes.clone(),
        sent_at: None,
        approval: None,
        decline_reason: None,
        created_at: event.at,
        updated_at: event.at,
    })
}

/// Checks `command` against `estimate` at `now` and returns the change it causes, or why not.
pub fn decide(
    estimate: &Estimate,
    command: &EstimateCommand,
    now: DateTime<Utc>,
) -> Result<EstimateChange, EstimateError> {
    let action = command.action();
    let Some(&(_, _, to)) = TRANSITIONS
        .iter()
        .find(|(from, a, _)| *from == estimate.status && *a == action)
    else {
        let to = TRANSITIONS
            .iter()
            .find(|(_, a, _)| *a == action)
            .map_or(estimate.status, |(_, _, to)| *to);
        return Err(EstimateError::InvalidTransition {
            from: estimate.status,
            to,
            allowed: allowed_targets(estimate.status),
        });
    };
    debug_assert!(allowed_targets(estimate.status).contains(&to));
    match command {
        EstimateCommand::Send => {
            if now >= estimate.valid_until {
                return Err(EstimateError::Expired {
                    valid_until: estimate.valid_until,
                });
            }
            Ok(EstimateChange::Sent)
        }
        EstimateCommand::Approve {
            option_id,
            signed_by,
            signature,
            deposit_required,
        } => {
            // `valid_until` is exclusive, as for sending: at that instant the expiry timer
            // is due, and an approval must not race it.
            if now >= estimate.valid_until {
                return Err(EstimateError::Expired {
                    valid_until: estimate.valid_until,
                });
            }
            let Some(option) = estimate.option(*option_id) else {
                return Err(EstimateError::OptionNotFound {
                    option_id: *option_id,
                });
            };
            if let Some(deposit) = deposit_required {
                let problems = check_deposit(deposit, &option.quote.total);
                if !problems.is_empty() {
                    return Err(EstimateError::Invalid { problems });
                }
            }
            Ok(EstimateChange::Approved {
                approval: Approval {
                    option_id: *option_id,
                    signed_by: signed_by.clone(),
                    signature: signature.clone(),
                    deposit_required: deposit_required.map(|d| d.round()),
                    approved_at: now,
                },
            })
        }
        EstimateCommand::Decline { reason } => Ok(EstimateChange::Declined {
            reason: reason.clone(),
        }),
        EstimateCommand::Expire => {
            if now < estimate.valid_until {
                return Err(EstimateError::NotYetExpired {
                    valid_until: estimate.valid_until,
                });
            }
            Ok(EstimateChange::Expired)
        }
        EstimateCommand::Revise { content } => {
            let problems = validate_content(content, estimate.currency, now);
            if !problems.is_empty() {
                return Err(EstimateError::Invalid { problems });
            }
            Ok(EstimateChange::Revised {
                content: content.clone(),
            })
        }
    }
}

fn check_deposit(deposit: &Money, total: &Money) -> Vec<FieldError> {
    let field = "depositRequired";
    let mut problems = Vec::new();
    match deposit.checked_cmp(total) {
        Err(e) => problems.push(FieldError::invalid(field, e.to_invalid())),
        Ok(std::cmp::Ordering::Greater) => problems.push(FieldError::new(
            field,
            "exceeds_total",
            format!("the deposit is more than the option's total of {total}"),
        )),
        Ok(_) => {}
    }
    if !deposit.is_positive() {
        problems.push(FieldError::new(
            field,
            "must_be_positive",
            "a deposit must be greater than 0",
        ));
    }
    if let Err(e) = deposit.require_minor_unit() {
        problems.push(FieldError::invalid(field, e.to_invalid()));
    }
    problems
}

fn target(from: EstimateStatus, change: &EstimateChange) -> EstimateStatus {
    match change {
        EstimateChange::Created { .. } | EstimateChange::Revised { .. } => S::Draft,
        EstimateChange::Sent => S::Sent,
        EstimateChange::Approved { .. } => S::Approved,
        EstimateChange::Declined { .. } => S::Declined,
        EstimateChange::Expired => {
            debug_assert_eq!(from, S::Sent);
            S::Expired
        }
        EstimateChange::JobLinked { .. } => from,
    }
}

/// Applies a recorded event to the estimate it belongs to. Events come from [`decide`] (or the
/// log), so they are valid for the estimate's state; this function does not re-check them.
pub fn evolve(estimate: &Estimate, event: &EstimateEvent) -> Estimate {
    let mut next = estimate.clone();
    next.version = event.version;
    next.revision = event.revision;
    next.status = event.to;
    next.updated_at = event.at;
    match &event.change {
        EstimateChange::Created { .. } | EstimateChange::Expired => {}
        EstimateChange::Sent => next.sent_at = Some(event.at),
        EstimateChange::Approved { approval } => next.approval = Some(approval.clone()),
        EstimateChange::Declined { reason } => next.decline_reason = reason.clone(),
        EstimateChange::JobLinked { job_id } => next.job_id = Some(*job_id),
        EstimateChange::Revised { content } => {
            next.options = content.options.clone();
            next.valid_until = content.valid_until;
            next.notes = content.notes.clone();
            next.sent_at = None;
            next.approval = None;
            next.decline_reason = None;
        }
    }
    next
}

/// Runs a command: decides, builds the event (version +1; revision +1 for a revise) and applies
/// it. For a revise the returned estimate is the next revision; the caller keeps the one it
/// passed in as the earlier revision.
pub fn execute(
    estimate: &Estimate,
    command: &EstimateCommand,
    actor: Option<UserId>,
    now: DateTime<Utc>,
) -> Result<(Estimate, EstimateEvent), EstimateError> {
    let change = decide(estimate, command, now)?;
    let revision = match change {
        EstimateChange::Revised { .. } => estimate.revision + 1,
        _ => estimate.revision,
    };
    let event = EstimateEvent {
        version: estimate.version + 1,
        revision,
        to: target(estimate.status, &change),
        change,
        from: Some(estimate.status),
        actor,
        at: now,
    };
    Ok((evolve(estimate, &event), event))
}

/// Links an approved estimate that has no job to the job made for it, with its event. Refused
/// (`ESTIMATE_NOT_APPROVED`) unless the estimate is approved; an estimate that already has a
/// job keeps it (the caller links that one instead).
pub fn link_job(
    estimate: &Estimate,
    job_id: JobId,
    actor: Option<UserId>,
    now: DateTime<Utc>,
) -> Result<(Estimate, EstimateEvent), EstimateError> {
    if estimate.status != S::Approved || estimate.job_id.is_some() {
        return Err(EstimateError::NotApproved {
            status: estimate.status,
        });
    }
    let event = EstimateEvent {
        version: estimate.version + 1,
        revision: estimate.revision,
        change: EstimateChange::JobLinked { job_id },
        from: Some(estimate.status),
        to: estimate.status,
        actor,
        at: now,
    };
    Ok((evolve(estimate, &event), event))
}

/// Rebuilds an estimate (its latest revision) from its full event log.
pub fn replay(id: EstimateId, events: &[EstimateEvent]) -> Option<Estimate> {
    let (first, rest) = events.split_first()?;
    let estimate = genesis(id, first)?;
    Some(rest.iter().fold(estimate, |e, event| evolve(&e, event)))
}

/// What an approved estimate hands to its job (`convertToJob`): the approved option's lines as
/// the job's planned work.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PlannedWork {
    /// The estimate.
    pub estimate_id: EstimateId,
    /// The revision approved.
    pub revision: u32,
    /// The option approved.
    pub option_id: EstimateOptionId,
    /// Its name.
    pub option_name: Name,
    /// The job to link, if the estimate was for one; otherwise the store creates a job.
    pub job_id: Option<JobId>,
    /// The customer.
    pub customer_id: CustomerId,
    /// The property.
    pub property_id: PropertyId,
    /// The lines, as priced.
    pub lines: Vec<PricedLine>,
    /// The option's total.
    pub total: Money,
    /// The deposit to collect before work starts.
    pub deposit_required: Option<Money>,
}

/// The planned work of an approved estimate, or `ESTIMATE_NOT_APPROVED`.
pub fn planned_work(estimate: &Estimate) -> Result<PlannedWork, EstimateError> {
    let (Some(approval), Some(option)) = (&estimate.approval, estimate.approved_option()) else {
        return Err(EstimateError::NotApproved {
            status: estimate.status,
        });
    };
    Ok(PlannedWork {
        estimate_id: estimate.id,
        revision: estimate.revision,
        option_id: option.id,
        option_name: option.name.clone(),
        job_id: estimate.job_id,
        customer_id: estimate.customer_id,
        property_id: estimate.property_id,
        lines: option.quote.lines.clone(),
        total: option.quote.total,
        deposit_required: approval.deposit_required,
    })
}

#[cfg(test)]
mod tests;
