//! Tests of the job state machine: unit tests of each rule, property tests over random command
//! sequences, and snapshots of the transition table and of the refusal messages.
use super::*;

use std::collections::{BTreeSet, VecDeque};

use chrono::TimeZone as _;
use expect_test::expect;
use proptest::prelude::*;
use uuid::Uuid;

// ---------------------------------------------------------------------------------------------
// Fixtures
// ---------------------------------------------------------------------------------------------

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2031, 3, 2, 21, 58, 3)
        .single()
        .expect("a valid instant")
}

fn job_id() -> JobId {
    JobId::from_uuid(Uuid::from_u128(3))
}

fn tech(n: u128) -> TechnicianId {
    TechnicianId::from_uuid(Uuid::from_u128(0x7ec0 + n))
}

fn callback_id(n: u128) -> JobId {
    JobId::from_uuid(Uuid::from_u128(0xca11 + n))
}

fn actor() -> UserId {
    UserId::from_uuid(Uuid::from_u128(0x5e7))
}

fn sla() -> SlaWindows {
    SlaWindows {
        emergency_minutes: 90,
        urgent_minutes: 600,
        routine_minutes: 4320,
    }
}

fn new_job(priority: Priority) -> NewJob {
    NewJob {
        customer_id: CustomerId::from_uuid(Uuid::from_u128(1)),
        property_id: PropertyId::from_uuid(Uuid::from_u128(2)),
        trade: TradeCode::parse("plumbing").expect("a valid trade"),
        priority,
        summary: Summary::parse("Leaking water heater").expect("a valid summary"),
        description: Some(Description::parse("Water under the tank").expect("valid")),
        callback_of: None,
        min_skill_level: Default::default(),
        required_certifications: vec![],
    }
}

fn created() -> (Job, JobEvent) {
    create(
        job_id(),
        new_job(Priority::Urgent),
        &sla(),
        t0(),
        Some(actor()),
    )
}

fn window(start_minutes: i64, length_minutes: i64) -> TimeWindow {
    let start = t0() + Duration::minutes(start_minutes);
    TimeWindow::parse(start, start + Duration::minutes(length_minutes)).expect("a valid window")
}

const ALL_GUARDS: Guards = Guards {
    invoice_issued: true,
    balance_settled: true,
};
const NO_GUARDS: Guards = Guards {
    invoice_issued: false,
    balance_settled: false,
};

/// Runs commands one after the other (one minute apart), panicking on a refusal. Returns the
/// final job and every event after the given job's.
fn run(job: &Job, commands: &[JobCommand], guards: &Guards) -> (Job, Vec<JobEvent>) {
    let mut job = job.clone();
    let mut events = Vec::new();
    for command in commands {
        let now = job.updated_at + Duration::minutes(1);
        let (next, event) = execute(&job, command, guards, Some(actor()), None, now)
            .unwrap_or_else(|e| panic!("{command:?} refused in {}: {e}", job.status));
        job = next;
        events.push(event);
    }
    (job, events)
}

fn refuse(job: &Job, command: &JobCommand, guards: &Guards) -> JobError {
    let before = job.clone();
    let error = execute(job, command, guards, None, None, t0() + Duration::days(1))
        .map(|(next, _)| next.status)
        .expect_err("the command should be refused");
    assert_eq!(job, &before, "a refusal leaves the job untouched");
    error
}

/// The commands that bring a created job to `status` along the happy path (or to on_hold from
/// scheduled, or to cancelled from requested).
fn drive_to(status: JobStatus) -> Job {
    use JobCommand as C;
    let path = [
        (
            S::Scheduled,
            C::Schedule {
                window: window(60, 120),
            },
        ),
        (
            S::Scheduled,
            C::Assign {
                technician_id: tech(1),
            },
        ),
        (S::Dispatched, C::Dispatch),
        (S::EnRoute, C::StartTravel),
        (S::OnSite, C::Arrive),
        (S::InProgress, C::StartWork),
        (S::Completed, C::Complete),
        (S::Invoiced, C::Invoice),
        (S::Paid, C::Settle),
        (S::Closed, C::Close),
    ];
    let (job, _) = created();
    match status {
        S::Requested => job,
        S::OnHold => run(&drive_to(S::Scheduled), &[C::Hold], &ALL_GUARDS).0,
        S::Cancelled => run(&job, &[C::Cancel], &ALL_GUARDS).0,
        _ => {
            let mut commands = Vec::new();
            for (reached, command) in path {
                commands.push(command);
                if reached == status {
                    break;
                }
            }
            run(&job, &commands, &ALL_GUARDS).0
        }
    }
}

fn resolve(target: Target, held_from: Option<JobStatus>) -> Option<JobStatus> {
    match target {
        Target::State(s) => Some(s),
        Target::HeldState => held_from,
    }
}

/// The states reachable from requested through the table. A resume leads back to a state the
/// job was held in, i.e. the source of a reachable hold.
fn reachable() -> BTreeSet<JobStatus> {
    let mut seen = BTreeSet::from([S::Requested]);
    let mut queue = VecDeque::from([S::Requested]);
    while let Some(state) = queue.pop_front() {
        for &(from, _, target) in TRANSITIONS {
            if from != state {
                continue;
            }
            let targets: Vec<JobStatus> = match target {
                Target::State(to) => vec![to],
                Target::HeldState => TRANSITIONS
                    .iter()
                    .filter(|(f, a, t)| {
                        *a == A::Hold && *t == Target::State(state) && seen.contains(f)
                    })
                    .map(|(f, _, _)| *f)
                    .collect(),
            };
            for to in targets {
                if seen.insert(to) {
                    queue.push_back(to);
                }
            }
        }
    }
    seen
}

// ---------------------------------------------------------------------------------------------
// Unit tests
// ---------------------------------------------------------------------------------------------

#[test]
fn creation_starts_in_requested_at_version_one() {
    let (job, event) = created();
    assert_eq!(job.status, S::Requested);
    assert_eq!(job.version, 1);
    assert_eq!((job.created_at, job.updated_at), (t0(), t0()));
    assert_eq!(job.held_from, None);
    assert_eq!(job.technician_id, None);
    assert_eq!(job.window, None);
    assert_eq!(
        (event.version, event.from, event.to),
        (1, None, S::Requested)
    );
    assert_eq!(event.actor, Some(actor()));
    assert_eq!(genesis(job.id, &event), Some(job.clone()));
    assert_eq!(replay(job.id, std::slice::from_ref(&event)), Some(job));
}

#[test]
fn happy_path_from_requested_to_completed() {
    use JobCommand as C;
    let (job, creation) = created();
    let slot = window(60, 120);
    let commands = [
        C::Schedule { window: slot },
        C::Assign {
            technician_id: tech(1),
        },
        C::Dispatch,
        C::StartTravel,
        C::Arrive,
        C::StartWork,
        C::Complete,
    ];
    let (done, events) = run(&job, &commands, &NO_GUARDS);
    let steps: Vec<(i64, Option<JobStatus>, JobStatus)> =
        events.iter().map(|e| (e.version, e.from, e.to)).collect();
    assert_eq!(
        steps,
        vec![
            (2, Some(S::Requested), S::Scheduled),
            (3, Some(S::Scheduled), S::Scheduled),
            (4, Some(S::Scheduled), S::Dispatched),
            (5, Some(S::Dispatched), S::EnRoute),
            (6, Some(S::EnRoute), S::OnSite),
            (7, Some(S::OnSite), S::InProgress),
            (8, Some(S::InProgress), S::Completed),
        ]
    );
    assert_eq!(
        events[0].change,
        JobChange::Transitioned {
            action: A::Schedule,
            window: Some(slot)
        }
    );
    assert_eq!(
        events[1].change,
        JobChange::Assigned {
            technician_id: tech(1)
        }
    );
    assert_eq!(done.status, S::Completed);
    assert_eq!(done.version, 8);
    assert_eq!(done.window, Some(slot));
    assert_eq!(done.technician_id, Some(tech(1)));
    assert_eq!(done.visit_started_at, Some(events[4].at));
    assert_eq!(done.completed_at, Some(events[6].at));
    assert_eq!(done.updated_at, events[6].at);
    assert_eq!(done.created_at, t0());

    let mut log = vec![creation];
    log.extend(events);
    assert_eq!(replay(job.id, &log), Some(done));
}

#[test]
fn happy_path_continues_to_closed_with_guards() {
    let completed = drive_to(S::Completed);
    let (closed, events) = run(
        &completed,
        &[JobCommand::Invoice, JobCommand::Settle, JobCommand::Close],
        &ALL_GUARDS,
    );
    let steps: Vec<_> = events.iter().map(|e| (e.from, e.to)).collect();
    assert_eq!(
        steps,
        vec![
            (Some(S::Completed), S::Invoiced),
            (Some(S::Invoiced), S::Paid),
            (Some(S::Paid), S::Closed),
        ]
    );
    assert_eq!(closed.version, completed.version + 3);
    assert!(
        allowed_actions(&closed).is_empty(),
        "closed is terminal in the table"
    );
}

#[test]
fn events_record_actor_reason_and_time() {
    let (job, _) = created();
    let reason = Reason::parse("customer away").expect("a valid reason");
    let at = t0() + Duration::hours(2);
    let (held, event) = execute(
        &job,
        &JobCommand::Hold,
        &NO_GUARDS,
        Some(actor()),
        Some(reason.clone()),
        at,
    )
    .expect("hold from requested");
    assert_eq!(event.actor, Some(actor()));
    assert_eq!(event.reason, Some(reason));
    assert_eq!(event.at, at);
    assert_eq!(held.updated_at, at);
    assert_eq!(held.created_at, t0());
}

#[test]
fn dispatch_needs_a_technician() {
    let scheduled = drive_to(S::Scheduled);
    assert_eq!(scheduled.technician_id, None);
    let error = refuse(&scheduled, &JobCommand::Dispatch, &ALL_GUARDS);
    assert_eq!(error, JobError::TechnicianRequired);
    assert_eq!(error.code(), "JOB_TECHNICIAN_REQUIRED");
    assert!(!error.is_state_conflict());

    let (dispatched, _) = run(
        &scheduled,
        &[
            JobCommand::Assign {
                technician_id: tech(2),
            },
            JobCommand::Dispatch,
        ],
        &NO_GUARDS,
    );
    assert_eq!(dispatched.status, S::Dispatched);
    assert_eq!(dispatched.technician_id, Some(tech(2)));
}

#[test]
fn complete_needs_a_started_visit() {
    let in_progress = drive_to(S::InProgress);
    let no_visit = Job {
        visit_started_at: None,
        ..in_progress
    };
    let error = refuse(&no_visit, &JobCommand::Complete, &ALL_GUARDS);
    assert_eq!(error, JobError::VisitNotStarted);
    assert_eq!(error.code(), "JOB_VISIT_NOT_STARTED");
}

#[test]
fn invoice_needs_an_issued_invoice() {
    let completed = drive_to(S::Completed);
    let only_settled = Guards {
        invoice_issued: false,
        balance_settled: true,
    };
    for guards in [NO_GUARDS, only_settled] {
        let error = refuse(&completed, &JobCommand::Invoice, &guards);
        assert_eq!(error, JobError::InvoiceRequired);
        assert_eq!(error.code(), "JOB_INVOICE_REQUIRED");
    }
    let issued = Guards {
        invoice_issued: true,
        balance_settled: false,
    };
    let (invoiced, _) = run(&completed, &[JobCommand::Invoice], &issued);
    assert_eq!(invoiced.status, S::Invoiced);
}

#[test]
fn settle_needs_a_zero_balance() {
    let invoiced = drive_to(S::Invoiced);
    let only_issued = Guards {
        invoice_issued: true,
        balance_settled: false,
    };
    for guards in [NO_GUARDS, only_issued] {
        let error = refuse(&invoiced, &JobCommand::Settle, &guards);
        assert_eq!(error, JobError::BalanceOutstanding);
        assert_eq!(error.code(), "JOB_BALANCE_OUTSTANDING");
    }
    let settled = Guards {
        invoice_issued: false,
        balance_settled: true,
    };
    let (paid, _) = run(&invoiced, &[JobCommand::Settle], &settled);
    assert_eq!(paid.status, S::Paid);
}

#[test]
fn guards_are_checked_only_after_the_table() {
    // A job that is not completed is refused invoicing for its state, not for its invoice.
    let scheduled = drive_to(S::Scheduled);
    let error = refuse(&scheduled, &JobCommand::Invoice, &NO_GUARDS);
    assert_eq!(error.code(), "JOB_INVALID_TRANSITION");
    let requested = drive_to(S::Requested);
    assert_eq!(
        refuse(&requested, &JobCommand::Dispatch, &ALL_GUARDS).code(),
        "JOB_INVALID_TRANSITION"
    );
}

#[test]
fn unassign_returns_to_scheduled_without_technician() {
    for from in [S::Dispatched, S::EnRoute] {
        let job = drive_to(from);
        assert_eq!(job.technician_id, Some(tech(1)));
        let (unassigned, events) = run(&job, &[JobCommand::Unassign], &NO_GUARDS);
        assert_eq!(unassigned.status, S::Scheduled);
        assert_eq!(unassigned.technician_id, None);
        assert_eq!(unassigned.window, job.window, "the appointment is kept");
        assert_eq!((events[0].from, events[0].to), (Some(from), S::Scheduled));
        assert_eq!(unassigned.version, job.version + 1);
        // Without a technician it cannot be dispatched again until one is assigned.
        assert_eq!(
            refuse(&unassigned, &JobCommand::Dispatch, &NO_GUARDS),
            JobError::TechnicianRequired
        );
    }
}

#[test]
fn hold_then_resume_returns_to_the_held_state() {
    let in_progress = drive_to(S::InProgress);
    let (held, hold) = run(&in_progress, &[JobCommand::Hold], &NO_GUARDS);
    assert_eq!(held.status, S::OnHold);
    assert_eq!(held.held_from, Some(S::InProgress));
    assert_eq!((hold[0].from, hold[0].to), (Some(S::InProgress), S::OnHold));
    assert_eq!(allowed_targets(&held), vec![S::InProgress, S::Cancelled]);

    let (resumed, resume) = run(&held, &[JobCommand::Resume], &NO_GUARDS);
    assert_eq!(resumed.status, S::InProgress);
    assert_eq!(resumed.held_from, None);
    assert_eq!(
        (resume[0].from, resume[0].to),
        (Some(S::OnHold), S::InProgress)
    );
    assert_eq!(resumed.version, in_progress.version + 2);
    // Everything but the status bookkeeping is as before the hold.
    assert_eq!(
        Job {
            version: in_progress.version,
            updated_at: in_progress.updated_at,
            ..resumed
        },
        in_progress
    );
}

#[test]
fn hold_is_possible_from_every_open_state_and_only_those() {
    for status in S::ALL {
        let job = drive_to(status);
        assert_eq!(job.status, status);
        let result = execute(&job, &JobCommand::Hold, &ALL_GUARDS, None, None, t0());
        if status.is_open() {
            let (held, _) = result.expect("an open state can be held");
            assert_eq!(held.held_from, Some(status));
            let (back, _) = run(&held, &[JobCommand::Resume], &ALL_GUARDS);
            assert_eq!(back.status, status);
        } else {
            let error = result
                .map(|(j, _)| j.status)
                .expect_err("not an open state");
            assert_eq!(
                error,
                JobError::InvalidTransition {
                    from: status,
                    to: S::OnHold,
                    allowed: allowed_targets(&job)
                }
            );
        }
    }
}

#[test]
fn cancel_from_on_hold() {
    let held = drive_to(S::OnHold);
    assert_eq!(held.held_from, Some(S::Scheduled));
    let (cancelled, events) = run(&held, &[JobCommand::Cancel], &NO_GUARDS);
    assert_eq!(cancelled.status, S::Cancelled);
    assert_eq!(
        (events[0].from, events[0].to),
        (Some(S::OnHold), S::Cancelled)
    );
    assert!(
        allowed_actions(&cancelled).is_empty(),
        "cancelled is terminal"
    );
    assert!(matches!(
        refuse(&cancelled, &JobCommand::Resume, &ALL_GUARDS),
        JobError::ActionNotAllowed {
            from: S::Cancelled,
            action: A::Resume,
            ..
        }
    ));
}

#[test]
fn cancel_only_before_the_technician_arrives() {
    for status in S::ALL {
        let job = drive_to(status);
        let accepted = execute(&job, &JobCommand::Cancel, &ALL_GUARDS, None, None, t0()).is_ok();
        let expected = matches!(
            status,
            S::Requested | S::Scheduled | S::Dispatched | S::EnRoute | S::OnHold
        );
        assert_eq!(accepted, expected, "cancel from {status}");
    }
}

#[test]
fn assignment_only_until_the_technician_sets_off() {
    let en_route = drive_to(S::EnRoute);
    let error = refuse(
        &en_route,
        &JobCommand::Assign {
            technician_id: tech(2),
        },
        &ALL_GUARDS,
    );
    assert_eq!(error, JobError::AssignmentNotAllowed { status: S::EnRoute });
    assert_eq!(error.code(), "JOB_ASSIGNMENT_NOT_ALLOWED");
    assert!(error.is_state_conflict());
    assert!(error.to_string().contains("en_route"));

    for status in S::ALL {
        let job = drive_to(status);
        let result = execute(
            &job,
            &JobCommand::Assign {
                technician_id: tech(3),
            },
            &ALL_GUARDS,
            None,
            None,
            t0(),
        );
        assert_eq!(
            result.is_ok(),
            ASSIGNABLE_IN.contains(&status),
            "assign in {status}"
        );
        if let Ok((assigned, event)) = result {
            assert_eq!(
                assigned.status, status,
                "assignment is not a change of state"
            );
            assert_eq!(assigned.technician_id, Some(tech(3)));
            assert_eq!((event.from, event.to), (Some(status), status));
        }
    }
}

#[test]
fn reassignment_replaces_the_technician() {
    let scheduled = drive_to(S::Scheduled);
    let (job, _) = run(
        &scheduled,
        &[
            JobCommand::Assign {
                technician_id: tech(1),
            },
            JobCommand::Assign {
                technician_id: tech(2),
            },
        ],
        &NO_GUARDS,
    );
    assert_eq!(job.technician_id, Some(tech(2)));
}

#[test]
fn reschedule_keeps_the_job_scheduled_with_the_new_window() {
    let scheduled = drive_to(S::Scheduled);
    let later = window(24 * 60, 60);
    let (job, events) = run(
        &scheduled,
        &[JobCommand::Schedule { window: later }],
        &NO_GUARDS,
    );
    assert_eq!(job.status, S::Scheduled);
    assert_eq!(job.window, Some(later));
    assert_eq!(
        (events[0].from, events[0].to),
        (Some(S::Scheduled), S::Scheduled)
    );
}

#[test]
fn callback_only_from_finished_states() {
    for status in S::ALL {
        let job = drive_to(status);
        let command = JobCommand::Callback {
            callback_job_id: callback_id(1),
        };
        let result = execute(&job, &command, &ALL_GUARDS, None, None, t0());
        let expected = matches!(status, S::Completed | S::Invoiced | S::Paid | S::Closed);
        assert_eq!(expected, CALLBACK_FROM.contains(&status));
        match result {
            Ok((after, event)) => {
                assert!(expected, "callback accepted from {status}");
                assert_eq!(after.status, status, "the job itself does not move");
                assert_eq!(after.version, job.version + 1);
                assert_eq!(
                    event.change,
                    JobChange::CallbackRaised {
                        callback_job_id: callback_id(1)
                    }
                );
                assert_eq!((event.from, event.to), (Some(status), status));
            }
            Err(error) => {
                assert!(!expected, "callback refused from {status}");
                assert_eq!(error, JobError::CallbackNotAllowed { status });
                assert_eq!(error.code(), "JOB_CALLBACK_NOT_ALLOWED");
            }
        }
    }
}

#[test]
fn a_callback_job_links_to_the_original() {
    let original = drive_to(S::Completed);
    let linked = NewJob {
        callback_of: Some(original.id),
        min_skill_level: Default::default(),
        required_certifications: vec![],
        ..new_job(Priority::Urgent)
    };
    let (callback, event) = create(callback_id(1), linked, &sla(), t0(), None);
    assert_eq!(callback.status, S::Requested);
    assert_eq!(callback.callback_of, Some(original.id));
    assert_eq!(genesis(callback.id, &event), Some(callback));
}

#[test]
fn sla_deadline_is_creation_plus_the_priority_window() {
    let windows = sla();
    for (priority, minutes) in [
        (Priority::Emergency, windows.emergency_minutes),
        (Priority::Urgent, windows.urgent_minutes),
        (Priority::Routine, windows.routine_minutes),
    ] {
        let (job, event) = create(job_id(), new_job(priority), &windows, t0(), None);
        let expected = t0() + Duration::minutes(i64::from(minutes));
        assert_eq!(job.sla_deadline, expected, "{}", priority.as_str());
        assert_eq!(
            priority.response_window(&windows),
            Duration::minutes(i64::from(minutes))
        );
        assert!(
            matches!(event.change, JobChange::Created { sla_deadline, .. } if sla_deadline == expected)
        );
    }
    // The defaults: 2 hours, 1 day, 3 days.
    let (job, _) = create(
        job_id(),
        new_job(Priority::Routine),
        &SlaWindows::default(),
        t0(),
        None,
    );
    assert_eq!(job.sla_deadline, t0() + Duration::days(3));
}

#[test]
fn action_for_target_maps_states_to_actions() {
    let requested = drive_to(S::Requested);
    assert_eq!(
        action_for_target(&requested, S::Scheduled),
        Some(A::Schedule)
    );
    assert_eq!(action_for_target(&requested, S::OnHold), Some(A::Hold));
    assert_eq!(action_for_target(&requested, S::Cancelled), Some(A::Cancel));
    assert_eq!(action_for_target(&requested, S::Dispatched), None);

    let scheduled = drive_to(S::Scheduled);
    assert_eq!(
        action_for_target(&scheduled, S::Scheduled),
        Some(A::Schedule)
    );
    assert_eq!(
        action_for_target(&scheduled, S::Dispatched),
        Some(A::Dispatch)
    );

    let dispatched = drive_to(S::Dispatched);
    assert_eq!(
        action_for_target(&dispatched, S::Scheduled),
        Some(A::Unassign)
    );
    assert_eq!(
        action_for_target(&dispatched, S::EnRoute),
        Some(A::StartTravel)
    );
    assert_eq!(action_for_target(&dispatched, S::OnSite), None);

    let en_route = drive_to(S::EnRoute);
    assert_eq!(
        action_for_target(&en_route, S::Scheduled),
        Some(A::Unassign)
    );
    assert_eq!(action_for_target(&en_route, S::OnSite), Some(A::Arrive));

    let held = drive_to(S::OnHold);
    assert_eq!(action_for_target(&held, S::Scheduled), Some(A::Resume));
    assert_eq!(action_for_target(&held, S::Cancelled), Some(A::Cancel));
    assert_eq!(action_for_target(&held, S::Dispatched), None);
    let held_in_progress = Job {
        held_from: Some(S::InProgress),
        ..held.clone()
    };
    assert_eq!(
        action_for_target(&held_in_progress, S::InProgress),
        Some(A::Resume)
    );
    assert_eq!(action_for_target(&held_in_progress, S::Scheduled), None);
    // On hold with no recorded state (never produced by the machine): no way to resume.
    let lost = Job {
        held_from: None,
        ..held
    };
    assert_eq!(allowed_actions(&lost), vec![(A::Cancel, S::Cancelled)]);

    assert_eq!(
        action_for_target(&drive_to(S::Completed), S::Invoiced),
        Some(A::Invoice)
    );
    assert_eq!(
        action_for_target(&drive_to(S::Invoiced), S::Paid),
        Some(A::Settle)
    );
    assert_eq!(
        action_for_target(&drive_to(S::Paid), S::Closed),
        Some(A::Close)
    );
    assert_eq!(action_for_target(&drive_to(S::Closed), S::Requested), None);
}

#[test]
fn every_action_but_schedule_has_a_command() {
    for &(_, action, _) in TRANSITIONS {
        match JobCommand::for_action(action) {
            None => assert_eq!(action, A::Schedule),
            Some(command) => assert_eq!(command.action(), Some(action)),
        }
    }
}

#[test]
fn table_matches_the_documented_shape() {
    // Hold from exactly the open states; every target of the table is reachable from requested;
    // every state can be reached.
    let hold_from: BTreeSet<JobStatus> = TRANSITIONS
        .iter()
        .filter(|(_, a, _)| *a == A::Hold)
        .map(|(f, _, _)| *f)
        .collect();
    let open: BTreeSet<JobStatus> = S::ALL.into_iter().filter(|s| s.is_open()).collect();
    assert_eq!(hold_from, open);
    assert_eq!(reachable(), S::ALL.into_iter().collect::<BTreeSet<_>>());
    // No duplicate (from, action) pair: a command is never ambiguous.
    for (i, (f, a, _)) in TRANSITIONS.iter().enumerate() {
        assert!(
            !TRANSITIONS[i + 1..]
                .iter()
                .any(|(g, b, _)| g == f && b == a),
            "{f} {} appears twice",
            a.as_str()
        );
    }
}

#[test]
fn status_names_round_trip() {
    for status in S::ALL {
        assert_eq!(JobStatus::parse(status.as_str()), Ok(status));
        assert_eq!(status.to_string(), status.as_str());
    }
    assert!(JobStatus::parse("done").is_err());
}

// ---------------------------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------------------------

/// A step of a random run: a raw command, or "one of the actions the table allows now, other
/// than cancel" (so that runs get deep into the table instead of being mostly refused or
/// cancelled early). A guided dispatch of a job without technician assigns one instead.
#[derive(Clone, Debug)]
enum Step {
    Raw(JobCommand),
    Allowed(usize, TimeWindow),
}

fn window_strategy() -> impl Strategy<Value = TimeWindow> {
    (0i64..20_000, 1i64..=7 * 24 * 60).prop_map(|(start, length)| window(start, length))
}

fn command_strategy() -> impl Strategy<Value = JobCommand> {
    use JobCommand as C;
    prop_oneof![
        window_strategy().prop_map(|window| C::Schedule { window }),
        (0u128..3).prop_map(|n| C::Assign {
            technician_id: tech(n)
        }),
        (0u128..3).prop_map(|n| C::Callback {
            callback_job_id: callback_id(n)
        }),
        Just(C::Dispatch),
        Just(C::StartTravel),
        Just(C::Arrive),
        Just(C::StartWork),
        Just(C::Complete),
        Just(C::Invoice),
        Just(C::Settle),
        Just(C::Close),
        Just(C::Hold),
        Just(C::Resume),
        Just(C::Cancel),
        Just(C::Unassign),
    ]
}

fn step_strategy() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => command_strategy().prop_map(Step::Raw),
        2 => (0usize..4, window_strategy()).prop_map(|(n, w)| Step::Allowed(n, w)),
    ]
}

fn guards_strategy() -> impl Strategy<Value = Guards> {
    (any::<bool>(), any::<bool>()).prop_map(|(invoice_issued, balance_settled)| Guards {
        invoice_issued,
        balance_settled,
    })
}

fn resolve_step(job: &Job, step: &Step) -> JobCommand {
    match step {
        Step::Raw(command) => command.clone(),
        Step::Allowed(n, window) => {
            let allowed: Vec<JobAction> = allowed_actions(job)
                .into_iter()
                .map(|(action, _)| action)
                .filter(|action| *action != A::Cancel)
                .collect();
            let Some(&action) = allowed.get(n % allowed.len().max(1)) else {
                return JobCommand::Callback {
                    callback_job_id: callback_id(9),
                };
            };
            match JobCommand::for_action(action) {
                None => JobCommand::Schedule { window: *window },
                Some(JobCommand::Dispatch) if job.technician_id.is_none() => JobCommand::Assign {
                    technician_id: tech(*n as u128 % 3),
                },
                Some(command) => command,
            }
        }
    }
}

fn is_guard_error(error: &JobError) -> bool {
    matches!(
        error,
        JobError::TechnicianRequired
            | JobError::VisitNotStarted
            | JobError::InvoiceRequired
            | JobError::BalanceOutstanding
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_runs_follow_the_table(
        steps in prop::collection::vec((step_strategy(), guards_strategy()), 0..40),
        priority in prop_oneof![Just(Priority::Emergency), Just(Priority::Urgent), Just(Priority::Routine)],
    ) {
        let reachable = reachable();
        let (mut job, creation) = create(job_id(), new_job(priority), &sla(), t0(), None);
        let mut log = vec![creation];
        let mut held: Option<JobStatus> = None;

        for (i, (step, guards)) in steps.iter().enumerate() {
            let command = resolve_step(&job, step);
            let now = t0() + Duration::minutes(i64::try_from(i).expect("small") + 1);
            let before = job.clone();
            let action = command.action();
            let in_table = action.is_some_and(|a| allowed_actions(&before).iter().any(|(b, _)| *b == a));

            match execute(&before, &command, guards, None, None, now) {
                Ok((next, event)) => {
                    // The event continues the log and is the one that was applied.
                    prop_assert_eq!(event.version, before.version + 1);
                    prop_assert_eq!(event.from, Some(before.status));
                    prop_assert_eq!(event.to, next.status);
                    prop_assert_eq!(event.at, now);
                    prop_assert_eq!(&evolve(&before, &event), &next);
                    prop_assert_eq!(next.version, before.version + 1);

                    // (a) Accepted transitions are rows of the table.
                    match &event.change {
                        JobChange::Transitioned { action, window } => {
                            prop_assert_eq!(Some(*action), command.action());
                            let row = TRANSITIONS.iter().any(|&(f, a, t)| {
                                Some(f) == event.from
                                    && a == *action
                                    && resolve(t, before.held_from) == Some(event.to)
                            });
                            prop_assert!(row, "{:?} not in the table", (event.from, action, event.to));
                            prop_assert!(in_table);
                            match &command {
                                JobCommand::Schedule { window: w } => {
                                    prop_assert_eq!(*window, Some(*w));
                                    prop_assert_eq!(next.window, Some(*w));
                                }
                                _ => prop_assert_eq!(*window, None),
                            }
                        }
                        JobChange::Assigned { technician_id } => {
                            prop_assert_eq!(event.from, Some(event.to));
                            prop_assert!(ASSIGNABLE_IN.contains(&before.status));
                            prop_assert_eq!(next.technician_id, Some(*technician_id));
                        }
                        JobChange::CallbackRaised { .. } => {
                            prop_assert_eq!(event.from, Some(event.to));
                            prop_assert!(CALLBACK_FROM.contains(&before.status));
                            let unchanged = Job {
                                version: before.version,
                                updated_at: before.updated_at,
                                ..next.clone()
                            };
                            prop_assert_eq!(&unchanged, &before);
                        }
                        JobChange::Updated { .. } | JobChange::ActualsRecorded { .. } => {
                            prop_assert_eq!(event.from, Some(event.to));
                            prop_assert!(!matches!(before.status, S::Closed | S::Cancelled));
                        }
                        JobChange::Created { .. } => prop_assert!(false, "a command created a job"),
                    }
                    prop_assert!(reachable.contains(&next.status), "{} is unreachable", next.status);

                    // (c) A resume goes back to the state that was held.
                    match command {
                        JobCommand::Hold => {
                            prop_assert!(before.status.is_open());
                            held = Some(before.status);
                        }
                        JobCommand::Resume => {
                            prop_assert_eq!(Some(next.status), held, "resumed elsewhere");
                            prop_assert_eq!(next.held_from, None);
                            held = None;
                        }
                        JobCommand::Cancel => held = None,
                        _ => {}
                    }

                    job = next;
                    log.push(event);
                }
                Err(error) => {
                    // (b) A refusal changes nothing and explains itself.
                    prop_assert_eq!(&job, &before);
                    if error.is_state_conflict() {
                        prop_assert_eq!(error.code() == "JOB_INVALID_TRANSITION", action.is_some());
                        prop_assert!(!in_table, "{:?} refused in {} though in the table", command, before.status);
                        let message = error.to_string();
                        prop_assert!(
                            message.contains(before.status.as_str()),
                            "{:?} does not name {}", message, before.status
                        );
                        if let JobError::InvalidTransition { allowed, .. }
                        | JobError::ActionNotAllowed { allowed, .. } = &error
                        {
                            prop_assert_eq!(allowed, &allowed_targets(&before));
                        }
                    } else {
                        // A guard only speaks once the table allows the action.
                        prop_assert!(is_guard_error(&error));
                        prop_assert!(in_table, "guard {:?} for a move not in the table", error);
                        match error {
                            JobError::InvoiceRequired => prop_assert!(!guards.invoice_issued),
                            JobError::BalanceOutstanding => prop_assert!(!guards.balance_settled),
                            JobError::TechnicianRequired => prop_assert!(before.technician_id.is_none()),
                            JobError::VisitNotStarted => prop_assert!(before.visit_started_at.is_none()),
                            _ => {}
                        }
                    }
                }
            }

            // Invariants of every reachable job.
            prop_assert_eq!(job.status == S::OnHold, held.is_some());
            if job.status == S::OnHold {
                prop_assert_eq!(job.held_from, held);
            } else if job.held_from.is_some() {
                // Only a job cancelled while on hold keeps a held state behind.
                prop_assert_eq!(job.status, S::Cancelled);
            }
            let with_technician = [S::Dispatched, S::EnRoute, S::OnSite, S::InProgress, S::Completed,
                S::Invoiced, S::Paid, S::Closed];
            let effective = if job.status == S::OnHold { job.held_from.unwrap_or(job.status) } else { job.status };
            if with_technician.contains(&effective) {
                prop_assert!(job.technician_id.is_some(), "{} without technician", job.status);
                prop_assert!(job.window.is_some(), "{} without window", job.status);
            }
            if matches!(effective, S::OnSite | S::InProgress | S::Completed | S::Invoiced | S::Paid | S::Closed) {
                prop_assert!(job.visit_started_at.is_some());
            }
            if matches!(effective, S::Completed | S::Invoiced | S::Paid | S::Closed) {
                prop_assert!(job.completed_at.is_some());
            }
        }

        // (d) The log rebuilds the job, with consecutive versions from 1.
        prop_assert_eq!(replay(job.id, &log), Some(job.clone()));
        let versions: Vec<i64> = log.iter().map(|e| e.version).collect();
        let expected: Vec<i64> = (1..=i64::try_from(log.len()).expect("small")).collect();
        prop_assert_eq!(versions, expected);
        prop_assert_eq!(job.version, i64::try_from(log.len()).expect("small"));
        for pair in log.windows(2) {
            prop_assert_eq!(pair[0].to, pair[1].from.expect("only the creation has no from"));
        }
    }

    #[test]
    fn refusals_never_change_anything(
        status_index in 0usize..12,
        command in command_strategy(),
        guards in guards_strategy(),
    ) {
        let job = drive_to(S::ALL[status_index]);
        let before = job.clone();
        if let Err(error) = decide(&job, &command, &guards) {
            let via_execute = execute(&job, &command, &guards, None, None, t0()).map(|(j, _)| j.status);
            prop_assert_eq!(via_execute, Err(error));
            prop_assert_eq!(&job, &before);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------------------------

#[test]
fn transition_table_snapshot() {
    let mut out = String::new();
    for &(from, action, target) in TRANSITIONS {
        let to = match target {
            Target::State(s) => s.as_str(),
            Target::HeldState => "(held state)",
        };
        out.push_str(&format!("{from} --{}--> {to}\n", action.as_str()));
    }
    let names = |states: &[JobStatus]| {
        states
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    out.push_str(&format!("callback from: {}\n", names(&CALLBACK_FROM)));
    out.push_str(&format!("assignable in: {}\n", names(&ASSIGNABLE_IN)));
    expect![[r#"
        requested --schedule--> scheduled
        scheduled --schedule--> scheduled
        scheduled --dispatch--> dispatched
        dispatched --start_travel--> en_route
        en_route --arrive--> on_site
        on_site --start_work--> in_progress
        in_progress --complete--> completed
        completed --invoice--> invoiced
        invoiced --settle--> paid
        paid --close--> closed
        requested --hold--> on_hold
        scheduled --hold--> on_hold
        dispatched --hold--> on_hold
        en_route --hold--> on_hold
        on_site --hold--> on_hold
        in_progress --hold--> on_hold
        on_hold --resume--> (held state)
        requested --cancel--> cancelled
        scheduled --cancel--> cancelled
        dispatched --cancel--> cancelled
        en_route --cancel--> cancelled
        on_hold --cancel--> cancelled
        dispatched --unassign--> scheduled
        en_route --unassign--> scheduled
        callback from: completed, invoiced, paid, closed
        assignable in: requested, scheduled, dispatched
    "#]]
    .assert_eq(&out);
}

/// A job in `status` with every guard that depends on the job itself satisfied.
fn job_in(status: JobStatus) -> Job {
    let (job, _) = created();
    Job {
        status,
        held_from: (status == S::OnHold).then_some(S::Scheduled),
        window: Some(window(60, 120)),
        technician_id: Some(tech(1)),
        visit_started_at: Some(t0() + Duration::minutes(90)),
        ..job
    }
}

fn command_name(command: &JobCommand) -> &'static str {
    match command {
        JobCommand::Schedule { .. } => "schedule",
        JobCommand::Assign { .. } => "assign",
        JobCommand::Callback { .. } => "callback",
        other => other.action().map_or("?", JobAction::as_str),
    }
}

#[test]
fn refusal_messages_snapshot() {
    use JobCommand as C;
    let commands = [
        C::Schedule {
            window: window(60, 120),
        },
        C::Assign {
            technician_id: tech(2),
        },
        C::Dispatch,
        C::StartTravel,
        C::Arrive,
        C::StartWork,
        C::Complete,
        C::Invoice,
        C::Settle,
        C::Close,
        C::Hold,
        C::Resume,
        C::Cancel,
        C::Unassign,
        C::Callback {
            callback_job_id: callback_id(1),
        },
    ];
    let mut out = String::new();
    for status in S::ALL {
        let job = job_in(status);
        for command in &commands {
            let line = match decide(&job, command, &ALL_GUARDS) {
                Ok(_) => continue,
                Err(e) => format!(
                    "{status} + {} -> {}: {e}\n",
                    command_name(command),
                    e.code()
                ),
            };
            out.push_str(&line);
        }
    }
    // The guards, each alone.
    let guarded = [
        (
            Job {
                technician_id: None,
                ..job_in(S::Scheduled)
            },
            C::Dispatch,
            ALL_GUARDS,
        ),
        (
            Job {
                visit_started_at: None,
                ..job_in(S::InProgress)
            },
            C::Complete,
            ALL_GUARDS,
        ),
        (job_in(S::Completed), C::Invoice, NO_GUARDS),
        (job_in(S::Invoiced), C::Settle, NO_GUARDS),
    ];
    for (job, command, guards) in guarded {
        let e = decide(&job, &command, &guards)
            .map(|_| ())
            .expect_err("a guard refuses");
        out.push_str(&format!(
            "{} + {} -> {}: {e}\n",
            job.status,
            command_name(&command),
            e.code()
        ));
    }
    expect![[r#"
        requested + dispatch -> JOB_INVALID_TRANSITION: a job in state requested cannot move to dispatched; allowed: scheduled, on_hold, cancelled
        requested + start_travel -> JOB_INVALID_TRANSITION: a job in state requested cannot move to en_route; allowed: scheduled, on_hold, cancelled
        requested + arrive -> JOB_INVALID_TRANSITION: a job in state requested cannot move to on_site; allowed: scheduled, on_hold, cancelled
        requested + start_work -> JOB_INVALID_TRANSITION: a job in state requested cannot move to in_progress; allowed: scheduled, on_hold, cancelled
        requested + complete -> JOB_INVALID_TRANSITION: a job in state requested cannot move to completed; allowed: scheduled, on_hold, cancelled
        requested + invoice -> JOB_INVALID_TRANSITION: a job in state requested cannot move to invoiced; allowed: scheduled, on_hold, cancelled
        requested + settle -> JOB_INVALID_TRANSITION: a job in state requested cannot move to paid; allowed: scheduled, on_hold, cancelled
        requested + close -> JOB_INVALID_TRANSITION: a job in state requested cannot move to closed; allowed: scheduled, on_hold, cancelled
        requested + resume -> JOB_INVALID_TRANSITION: a job in state requested cannot resume; allowed: scheduled, on_hold, cancelled
        requested + unassign -> JOB_INVALID_TRANSITION: a job in state requested cannot unassign; allowed: scheduled, on_hold, cancelled
        requested + callback -> JOB_CALLBACK_NOT_ALLOWED: a callback can only be raised for a completed, invoiced, paid or closed job, not one in state requested
        scheduled + start_travel -> JOB_INVALID_TRANSITION: a job in state scheduled cannot move to en_route; allowed: scheduled, dispatched, on_hold, cancelled
        scheduled + arrive -> JOB_INVALID_TRANSITION: a job in state scheduled cannot move to on_site; allowed: scheduled, dispatched, on_hold, cancelled
        scheduled + start_work -> JOB_INVALID_TRANSITION: a job in state scheduled cannot move to in_progress; allowed: scheduled, dispatched, on_hold, cancelled
        scheduled + complete -> JOB_INVALID_TRANSITION: a job in state scheduled cannot move to completed; allowed: scheduled, dispatched, on_hold, cancelled
        scheduled + invoice -> JOB_INVALID_TRANSITION: a job in state scheduled cannot move to invoiced; allowed: scheduled, dispatched, on_hold, cancelled
        scheduled + settle -> JOB_INVALID_TRANSITION: a job in state scheduled cannot move to paid; allowed: scheduled, dispatched, on_hold, cancelled
        scheduled + close -> JOB_INVALID_TRANSITION: a job in state scheduled cannot move to closed; allowed: scheduled, dispatched, on_hold, cancelled
        scheduled + resume -> JOB_INVALID_TRANSITION: a job in state scheduled cannot resume; allowed: scheduled, dispatched, on_hold, cancelled
        scheduled + unassign -> JOB_INVALID_TRANSITION: a job in state scheduled cannot unassign; allowed: scheduled, dispatched, on_hold, cancelled
        scheduled + callback -> JOB_CALLBACK_NOT_ALLOWED: a callback can only be raised for a completed, invoiced, paid or closed job, not one in state scheduled
        dispatched + schedule -> JOB_INVALID_TRANSITION: a job in state dispatched cannot schedule; allowed: en_route, on_hold, cancelled, scheduled
        dispatched + dispatch -> JOB_INVALID_TRANSITION: a job in state dispatched cannot move to dispatched; allowed: en_route, on_hold, cancelled, scheduled
        dispatched + arrive -> JOB_INVALID_TRANSITION: a job in state dispatched cannot move to on_site; allowed: en_route, on_hold, cancelled, scheduled
        dispatched + start_work -> JOB_INVALID_TRANSITION: a job in state dispatched cannot move to in_progress; allowed: en_route, on_hold, cancelled, scheduled
        dispatched + complete -> JOB_INVALID_TRANSITION: a job in state dispatched cannot move to completed; allowed: en_route, on_hold, cancelled, scheduled
        dispatched + invoice -> JOB_INVALID_TRANSITION: a job in state dispatched cannot move to invoiced; allowed: en_route, on_hold, cancelled, scheduled
        dispatched + settle -> JOB_INVALID_TRANSITION: a job in state dispatched cannot move to paid; allowed: en_route, on_hold, cancelled, scheduled
        dispatched + close -> JOB_INVALID_TRANSITION: a job in state dispatched cannot move to closed; allowed: en_route, on_hold, cancelled, scheduled
        dispatched + resume -> JOB_INVALID_TRANSITION: a job in state dispatched cannot resume; allowed: en_route, on_hold, cancelled, scheduled
        dispatched + callback -> JOB_CALLBACK_NOT_ALLOWED: a callback can only be raised for a completed, invoiced, paid or closed job, not one in state dispatched
        en_route + schedule -> JOB_INVALID_TRANSITION: a job in state en_route cannot schedule; allowed: on_site, on_hold, cancelled, scheduled
        en_route + assign -> JOB_ASSIGNMENT_NOT_ALLOWED: the technician of a job in state en_route cannot be changed; unassign it first
        en_route + dispatch -> JOB_INVALID_TRANSITION: a job in state en_route cannot move to dispatched; allowed: on_site, on_hold, cancelled, scheduled
        en_route + start_travel -> JOB_INVALID_TRANSITION: a job in state en_route cannot move to en_route; allowed: on_site, on_hold, cancelled, scheduled
        en_route + start_work -> JOB_INVALID_TRANSITION: a job in state en_route cannot move to in_progress; allowed: on_site, on_hold, cancelled, scheduled
        en_route + complete -> JOB_INVALID_TRANSITION: a job in state en_route cannot move to completed; allowed: on_site, on_hold, cancelled, scheduled
        en_route + invoice -> JOB_INVALID_TRANSITION: a job in state en_route cannot move to invoiced; allowed: on_site, on_hold, cancelled, scheduled
        en_route + settle -> JOB_INVALID_TRANSITION: a job in state en_route cannot move to paid; allowed: on_site, on_hold, cancelled, scheduled
        en_route + close -> JOB_INVALID_TRANSITION: a job in state en_route cannot move to closed; allowed: on_site, on_hold, cancelled, scheduled
        en_route + resume -> JOB_INVALID_TRANSITION: a job in state en_route cannot resume; allowed: on_site, on_hold, cancelled, scheduled
        en_route + callback -> JOB_CALLBACK_NOT_ALLOWED: a callback can only be raised for a completed, invoiced, paid or closed job, not one in state en_route
        on_site + schedule -> JOB_INVALID_TRANSITION: a job in state on_site cannot move to scheduled; allowed: in_progress, on_hold
        on_site + assign -> JOB_ASSIGNMENT_NOT_ALLOWED: the technician of a job in state on_site cannot be changed
        on_site + dispatch -> JOB_INVALID_TRANSITION: a job in state on_site cannot move to dispatched; allowed: in_progress, on_hold
        on_site + start_travel -> JOB_INVALID_TRANSITION: a job in state on_site cannot move to en_route; allowed: in_progress, on_hold
        on_site + arrive -> JOB_INVALID_TRANSITION: a job in state on_site cannot move to on_site; allowed: in_progress, on_hold
        on_site + complete -> JOB_INVALID_TRANSITION: a job in state on_site cannot move to completed; allowed: in_progress, on_hold
        on_site + invoice -> JOB_INVALID_TRANSITION: a job in state on_site cannot move to invoiced; allowed: in_progress, on_hold
        on_site + settle -> JOB_INVALID_TRANSITION: a job in state on_site cannot move to paid; allowed: in_progress, on_hold
        on_site + close -> JOB_INVALID_TRANSITION: a job in state on_site cannot move to closed; allowed: in_progress, on_hold
        on_site + resume -> JOB_INVALID_TRANSITION: a job in state on_site cannot resume; allowed: in_progress, on_hold
        on_site + cancel -> JOB_INVALID_TRANSITION: a job in state on_site cannot move to cancelled; allowed: in_progress, on_hold
        on_site + unassign -> JOB_INVALID_TRANSITION: a job in state on_site cannot move to scheduled; allowed: in_progress, on_hold
        on_site + callback -> JOB_CALLBACK_NOT_ALLOWED: a callback can only be raised for a completed, invoiced, paid or closed job, not one in state on_site
        in_progress + schedule -> JOB_INVALID_TRANSITION: a job in state in_progress cannot move to scheduled; allowed: completed, on_hold
        in_progress + assign -> JOB_ASSIGNMENT_NOT_ALLOWED: the technician of a job in state in_progress cannot be changed
        in_progress + dispatch -> JOB_INVALID_TRANSITION: a job in state in_progress cannot move to dispatched; allowed: completed, on_hold
        in_progress + start_travel -> JOB_INVALID_TRANSITION: a job in state in_progress cannot move to en_route; allowed: completed, on_hold
        in_progress + arrive -> JOB_INVALID_TRANSITION: a job in state in_progress cannot move to on_site; allowed: completed, on_hold
        in_progress + start_work -> JOB_INVALID_TRANSITION: a job in state in_progress cannot move to in_progress; allowed: completed, on_hold
        in_progress + invoice -> JOB_INVALID_TRANSITION: a job in state in_progress cannot move to invoiced; allowed: completed, on_hold
        in_progress + settle -> JOB_INVALID_TRANSITION: a job in state in_progress cannot move to paid; allowed: completed, on_hold
        in_progress + close -> JOB_INVALID_TRANSITION: a job in state in_progress cannot move to closed; allowed: completed, on_hold
        in_progress + resume -> JOB_INVALID_TRANSITION: a job in state in_progress cannot resume; allowed: completed, on_hold
        in_progress + cancel -> JOB_INVALID_TRANSITION: a job in state in_progress cannot move to cancelled; allowed: completed, on_hold
        in_progress + unassign -> JOB_INVALID_TRANSITION: a job in state in_progress cannot move to scheduled; allowed: completed, on_hold
        in_progress + callback -> JOB_CALLBACK_NOT_ALLOWED: a callback can only be raised for a completed, invoiced, paid or closed job, not one in state in_progress
        completed + schedule -> JOB_INVALID_TRANSITION: a job in state completed cannot move to scheduled; allowed: invoiced
        completed + assign -> JOB_ASSIGNMENT_NOT_ALLOWED: the technician of a job in state completed cannot be changed
        completed + dispatch -> JOB_INVALID_TRANSITION: a job in state completed cannot move to dispatched; allowed: invoiced
        completed + start_travel -> JOB_INVALID_TRANSITION: a job in state completed cannot move to en_route; allowed: invoiced
        completed + arrive -> JOB_INVALID_TRANSITION: a job in state completed cannot move to on_site; allowed: invoiced
        completed + start_work -> JOB_INVALID_TRANSITION: a job in state completed cannot move to in_progress; allowed: invoiced
        completed + complete -> JOB_INVALID_TRANSITION: a job in state completed cannot move to completed; allowed: invoiced
        completed + settle -> JOB_INVALID_TRANSITION: a job in state completed cannot move to paid; allowed: invoiced
        completed + close -> JOB_INVALID_TRANSITION: a job in state completed cannot move to closed; allowed: invoiced
        completed + hold -> JOB_INVALID_TRANSITION: a job in state completed cannot move to on_hold; allowed: invoiced
        completed + resume -> JOB_INVALID_TRANSITION: a job in state completed cannot resume; allowed: invoiced
        completed + cancel -> JOB_INVALID_TRANSITION: a job in state completed cannot move to cancelled; allowed: invoiced
        completed + unassign -> JOB_INVALID_TRANSITION: a job in state completed cannot move to scheduled; allowed: invoiced
        invoiced + schedule -> JOB_INVALID_TRANSITION: a job in state invoiced cannot move to scheduled; allowed: paid
        invoiced + assign -> JOB_ASSIGNMENT_NOT_ALLOWED: the technician of a job in state invoiced cannot be changed
        invoiced + dispatch -> JOB_INVALID_TRANSITION: a job in state invoiced cannot move to dispatched; allowed: paid
        invoiced + start_travel -> JOB_INVALID_TRANSITION: a job in state invoiced cannot move to en_route; allowed: paid
        invoiced + arrive -> JOB_INVALID_TRANSITION: a job in state invoiced cannot move to on_site; allowed: paid
        invoiced + start_work -> JOB_INVALID_TRANSITION: a job in state invoiced cannot move to in_progress; allowed: paid
        invoiced + complete -> JOB_INVALID_TRANSITION: a job in state invoiced cannot move to completed; allowed: paid
        invoiced + invoice -> JOB_INVALID_TRANSITION: a job in state invoiced cannot move to invoiced; allowed: paid
        invoiced + close -> JOB_INVALID_TRANSITION: a job in state invoiced cannot move to closed; allowed: paid
        invoiced + hold -> JOB_INVALID_TRANSITION: a job in state invoiced cannot move to on_hold; allowed: paid
        invoiced + resume -> JOB_INVALID_TRANSITION: a job in state invoiced cannot resume; allowed: paid
        invoiced + cancel -> JOB_INVALID_TRANSITION: a job in state invoiced cannot move to cancelled; allowed: paid
        invoiced + unassign -> JOB_INVALID_TRANSITION: a job in state invoiced cannot move to scheduled; allowed: paid
        paid + schedule -> JOB_INVALID_TRANSITION: a job in state paid cannot move to scheduled; allowed: closed
        paid + assign -> JOB_ASSIGNMENT_NOT_ALLOWED: the technician of a job in state paid cannot be changed
        paid + dispatch -> JOB_INVALID_TRANSITION: a job in state paid cannot move to dispatched; allowed: closed
        paid + start_travel -> JOB_INVALID_TRANSITION: a job in state paid cannot move to en_route; allowed: closed
        paid + arrive -> JOB_INVALID_TRANSITION: a job in state paid cannot move to on_site; allowed: closed
        paid + start_work -> JOB_INVALID_TRANSITION: a job in state paid cannot move to in_progress; allowed: closed
        paid + complete -> JOB_INVALID_TRANSITION: a job in state paid cannot move to completed; allowed: closed
        paid + invoice -> JOB_INVALID_TRANSITION: a job in state paid cannot move to invoiced; allowed: closed
        paid + settle -> JOB_INVALID_TRANSITION: a job in state paid cannot move to paid; allowed: closed
        paid + hold -> JOB_INVALID_TRANSITION: a job in state paid cannot move to on_hold; allowed: closed
        paid + resume -> JOB_INVALID_TRANSITION: a job in state paid cannot resume; allowed: closed
        paid + cancel -> JOB_INVALID_TRANSITION: a job in state paid cannot move to cancelled; allowed: closed
        paid + unassign -> JOB_INVALID_TRANSITION: a job in state paid cannot move to scheduled; allowed: closed
        closed + schedule -> JOB_INVALID_TRANSITION: a job in state closed cannot move to scheduled; allowed: none
        closed + assign -> JOB_ASSIGNMENT_NOT_ALLOWED: the technician of a job in state closed cannot be changed
        closed + dispatch -> JOB_INVALID_TRANSITION: a job in state closed cannot move to dispatched; allowed: none
        closed + start_travel -> JOB_INVALID_TRANSITION: a job in state closed cannot move to en_route; allowed: none
        closed + arrive -> JOB_INVALID_TRANSITION: a job in state closed cannot move to on_site; allowed: none
        closed + start_work -> JOB_INVALID_TRANSITION: a job in state closed cannot move to in_progress; allowed: none
        closed + complete -> JOB_INVALID_TRANSITION: a job in state closed cannot move to completed; allowed: none
        closed + invoice -> JOB_INVALID_TRANSITION: a job in state closed cannot move to invoiced; allowed: none
        closed + settle -> JOB_INVALID_TRANSITION: a job in state closed cannot move to paid; allowed: none
        closed + close -> JOB_INVALID_TRANSITION: a job in state closed cannot move to closed; allowed: none
        closed + hold -> JOB_INVALID_TRANSITION: a job in state closed cannot move to on_hold; allowed: none
        closed + resume -> JOB_INVALID_TRANSITION: a job in state closed cannot resume; allowed: none
        closed + cancel -> JOB_INVALID_TRANSITION: a job in state closed cannot move to cancelled; allowed: none
        closed + unassign -> JOB_INVALID_TRANSITION: a job in state closed cannot move to scheduled; allowed: none
        on_hold + schedule -> JOB_INVALID_TRANSITION: a job in state on_hold cannot schedule; allowed: scheduled, cancelled
        on_hold + assign -> JOB_ASSIGNMENT_NOT_ALLOWED: the technician of a job in state on_hold cannot be changed
        on_hold + dispatch -> JOB_INVALID_TRANSITION: a job in state on_hold cannot move to dispatched; allowed: scheduled, cancelled
        on_hold + start_travel -> JOB_INVALID_TRANSITION: a job in state on_hold cannot move to en_route; allowed: scheduled, cancelled
        on_hold + arrive -> JOB_INVALID_TRANSITION: a job in state on_hold cannot move to on_site; allowed: scheduled, cancelled
        on_hold + start_work -> JOB_INVALID_TRANSITION: a job in state on_hold cannot move to in_progress; allowed: scheduled, cancelled
        on_hold + complete -> JOB_INVALID_TRANSITION: a job in state on_hold cannot move to completed; allowed: scheduled, cancelled
        on_hold + invoice -> JOB_INVALID_TRANSITION: a job in state on_hold cannot move to invoiced; allowed: scheduled, cancelled
        on_hold + settle -> JOB_INVALID_TRANSITION: a job in state on_hold cannot move to paid; allowed: scheduled, cancelled
        on_hold + close -> JOB_INVALID_TRANSITION: a job in state on_hold cannot move to closed; allowed: scheduled, cancelled
        on_hold + hold -> JOB_INVALID_TRANSITION: a job in state on_hold cannot move to on_hold; allowed: scheduled, cancelled
        on_hold + unassign -> JOB_INVALID_TRANSITION: a job in state on_hold cannot unassign; allowed: scheduled, cancelled
        on_hold + callback -> JOB_CALLBACK_NOT_ALLOWED: a callback can only be raised for a completed, invoiced, paid or closed job, not one in state on_hold
        cancelled + schedule -> JOB_INVALID_TRANSITION: a job in state cancelled cannot move to scheduled; allowed: none
        cancelled + assign -> JOB_ASSIGNMENT_NOT_ALLOWED: the technician of a job in state cancelled cannot be changed
        cancelled + dispatch -> JOB_INVALID_TRANSITION: a job in state cancelled cannot move to dispatched; allowed: none
        cancelled + start_travel -> JOB_INVALID_TRANSITION: a job in state cancelled cannot move to en_route; allowed: none
        cancelled + arrive -> JOB_INVALID_TRANSITION: a job in state cancelled cannot move to on_site; allowed: none
        cancelled + start_work -> JOB_INVALID_TRANSITION: a job in state cancelled cannot move to in_progress; allowed: none
        cancelled + complete -> JOB_INVALID_TRANSITION: a job in state cancelled cannot move to completed; allowed: none
        cancelled + invoice -> JOB_INVALID_TRANSITION: a job in state cancelled cannot move to invoiced; allowed: none
        cancelled + settle -> JOB_INVALID_TRANSITION: a job in state cancelled cannot move to paid; allowed: none
        cancelled + close -> JOB_INVALID_TRANSITION: a job in state cancelled cannot move to closed; allowed: none
        cancelled + hold -> JOB_INVALID_TRANSITION: a job in state cancelled cannot move to on_hold; allowed: none
        cancelled + resume -> JOB_INVALID_TRANSITION: a job in state cancelled cannot resume; allowed: none
        cancelled + cancel -> JOB_INVALID_TRANSITION: a job in state cancelled cannot move to cancelled; allowed: none
        cancelled + unassign -> JOB_INVALID_TRANSITION: a job in state cancelled cannot move to scheduled; allowed: none
        cancelled + callback -> JOB_CALLBACK_NOT_ALLOWED: a callback can only be raised for a completed, invoiced, paid or closed job, not one in state cancelled
        scheduled + dispatch -> JOB_TECHNICIAN_REQUIRED: a job needs an assigned technician before it can be dispatched
        in_progress + complete -> JOB_VISIT_NOT_STARTED: a job can only be completed after its technician has arrived on site
        completed + invoice -> JOB_INVOICE_REQUIRED: a job moves to invoiced when an invoice for it is issued
        invoiced + settle -> JOB_BALANCE_OUTSTANDING: a job moves to paid when its invoice balance reaches zero
    "#]].assert_eq(&out);
}

#[test]
fn accepted_moves_snapshot() {
    use JobCommand as C;
    let mut out = String::new();
    for status in S::ALL {
        let job = job_in(status);
        let moves: Vec<String> = allowed_actions(&job)
            .into_iter()
            .map(|(action, to)| format!("{} -> {to}", action.as_str()))
            .collect();
        let extra: Vec<&str> = [
            (
                C::Assign {
                    technician_id: tech(2),
                },
                "assign",
            ),
            (
                C::Callback {
                    callback_job_id: callback_id(1),
                },
                "callback",
            ),
        ]
        .into_iter()
        .filter(|(c, _)| decide(&job, c, &ALL_GUARDS).is_ok())
        .map(|(_, name)| name)
        .collect();
        out.push_str(&format!(
            "{status}: [{}] + [{}]\n",
            moves.join(", "),
            extra.join(", ")
        ));
    }
    expect![[r#"
        requested: [schedule -> scheduled, hold -> on_hold, cancel -> cancelled] + [assign]
        scheduled: [schedule -> scheduled, dispatch -> dispatched, hold -> on_hold, cancel -> cancelled] + [assign]
        dispatched: [start_travel -> en_route, hold -> on_hold, cancel -> cancelled, unassign -> scheduled] + [assign]
        en_route: [arrive -> on_site, hold -> on_hold, cancel -> cancelled, unassign -> scheduled] + []
        on_site: [start_work -> in_progress, hold -> on_hold] + []
        in_progress: [complete -> completed, hold -> on_hold] + []
        completed: [invoice -> invoiced] + [callback]
        invoiced: [settle -> paid] + [callback]
        paid: [close -> closed] + [callback]
        closed: [] + [callback]
        on_hold: [resume -> scheduled, cancel -> cancelled] + []
        cancelled: [] + []
    "#]].assert_eq(&out);
}

/// `update` corrects what a job is without moving it: a new priority moves the deadline of a
/// job not yet reached (counted from its creation), who may do it is fixed once the visit
/// started, and a closed or cancelled job is not changed. Replaying the log gives the same job.
#[test]
fn updates_correct_a_job_and_recheck_what_they_affect() {
    let (job, first) = created();
    let edit = JobEdit {
        summary: Some(Summary::parse("Water heater replacement").expect("valid")),
        clear_description: true,
        priority: Some(Priority::Emergency),
        trade: Some(TradeCode::parse("hvac").expect("valid")),
        ..JobEdit::default()
    };
    let (edited, events) = run(
        &job,
        &[JobCommand::Update {
            edit: edit.clone(),
            sla: sla(),
        }],
        &NO_GUARDS,
    );
    assert_eq!(edited.status, S::Requested);
    assert_eq!(edited.summary.as_str(), "Water heater replacement");
    assert_eq!(edited.description, None);
    assert_eq!(edited.trade.as_str(), "hvac");
    assert_eq!(edited.sla_deadline, t0() + Duration::minutes(90));
    assert_eq!(
        edit.fields(),
        ["summary", "description", "priority", "trade"]
    );
    let log: Vec<JobEvent> = std::iter::once(first).chain(events).collect();
    assert_eq!(replay(job.id, &log), Some(edited));

    let on_site = drive_to(S::OnSite);
    let trade = JobCommand::Update {
        edit: JobEdit {
            trade: Some(TradeCode::parse("electrical").expect("valid")),
            ..JobEdit::default()
        },
        sla: sla(),
    };
    assert_eq!(
        refuse(&on_site, &trade, &NO_GUARDS).code(),
        "JOB_VISIT_STARTED"
    );
    // Once reached, a new priority keeps the deadline it was reached by.
    let (urgent, _) = run(
        &on_site,
        &[JobCommand::Update {
            edit: JobEdit {
                priority: Some(Priority::Routine),
                ..JobEdit::default()
            },
            sla: sla(),
        }],
        &NO_GUARDS,
    );
    assert_eq!(urgent.sla_deadline, on_site.sla_deadline);
    let cancelled = drive_to(S::Cancelled);
    assert_eq!(refuse(&cancelled, &trade, &NO_GUARDS).code(), "JOB_CLOSED");
    assert_eq!(
        refuse(
            &cancelled,
            &JobCommand::RecordActuals { lines: 1 },
            &NO_GUARDS
        )
        .code(),
        "JOB_CLOSED"
    );
}
