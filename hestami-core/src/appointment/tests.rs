//! Tests of the appointment state machine: the table against `decide` for every pair, the crew
//! rules, and property tests over random command sequences (replay, refusals that change
//! nothing, the crew's invariants, final states).
use super::*;

use chrono::{Duration, TimeZone as _};
use proptest::prelude::*;
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2031, 3, 2, 14, 0, 0)
        .single()
        .expect("a valid instant")
}

fn window(hours_from_t0: i64) -> TimeWindow {
    let start = t0() + Duration::hours(hours_from_t0);
    TimeWindow::parse(start, start + Duration::hours(2)).expect("a valid window")
}

fn tech(n: u128) -> TechnicianId {
    TechnicianId::from_uuid(Uuid::from_u128(0x7ec0 + n))
}

fn reason() -> Reason {
    Reason::parse("the customer asked").expect("a valid reason")
}

fn fresh() -> Appointment {
    Appointment::new(
        AppointmentId::from_uuid(Uuid::from_u128(1)),
        JobId::from_uuid(Uuid::from_u128(2)),
        window(0),
        90,
    )
    .expect("a valid appointment")
}

/// An appointment in `status`, with a lead, reached through the table.
fn in_state(status: AppointmentStatus) -> Appointment {
    use AppointmentCommand as C;
    let mut a = fresh();
    execute(
        &mut a,
        &C::AssignLead {
            technician: tech(1),
        },
    )
    .expect("lead");
    let path: &[AppointmentCommand] = match status {
        S::Scheduled => &[],
        S::Dispatched => &[C::Dispatch],
        S::EnRoute => &[C::Dispatch, C::StartTravel],
        S::OnSite => &[C::Dispatch, C::StartTravel, C::Arrive],
        S::Done => &[C::Dispatch, C::StartTravel, C::Arrive, C::Finish],
        S::OnHold => &[C::Dispatch],
        S::Cancelled => &[],
    };
    for command in path {
        execute(&mut a, command).expect("on the path");
    }
    match status {
        S::OnHold => {
            execute(&mut a, &C::Hold { reason: reason() }).expect("hold");
        }
        S::Cancelled => {
            execute(&mut a, &C::Cancel { reason: reason() }).expect("cancel");
        }
        _ => {}
    }
    assert_eq!(a.status, status);
    a
}

fn command_for(action: AppointmentAction) -> AppointmentCommand {
    use AppointmentCommand as C;
    match action {
        A::Reschedule => C::Reschedule { window: window(24) },
        A::Dispatch => C::Dispatch,
        A::StartTravel => C::StartTravel,
        A::Arrive => C::Arrive,
        A::Finish => C::Finish,
        A::Recall => C::Recall,
        A::Hold => C::Hold { reason: reason() },
        A::Resume => C::Resume,
        A::Cancel => C::Cancel { reason: reason() },
    }
}

const ACTIONS: [AppointmentAction; 9] = [
    A::Reschedule,
    A::Dispatch,
    A::StartTravel,
    A::Arrive,
    A::Finish,
    A::Recall,
    A::Hold,
    A::Resume,
    A::Cancel,
];

#[test]
fn decide_follows_the_table_for_every_state_and_action() {
    for status in AppointmentStatus::ALL {
        for action in ACTIONS {
            let a = in_state(status);
            let in_table = TRANSITIONS
                .iter()
                .any(|(from, act, _)| *from == status && *act == action);
            match decide(&a, &command_for(action)) {
                Ok(AppointmentChange::Moved { from, to, .. }) => {
                    assert!(
                        in_table,
                        "{status:?} --{action:?}--> allowed but not in the table"
                    );
                    assert_eq!(from, status);
                    assert_eq!(Some(to), target_of(&a, action));
                }
                Ok(other) => panic!("a move gave {other:?}"),
                Err(AppointmentError::NotAllowed { .. }) => {
                    assert!(
                        !in_table,
                        "{status:?} --{action:?}--> in the table but refused"
                    );
                }
                Err(e) => panic!("{status:?} --{action:?}-->: {e}"),
            }
        }
    }
}

#[test]
fn hold_resumes_to_the_state_it_was_held_in() {
    for status in [S::Scheduled, S::Dispatched, S::EnRoute, S::OnSite] {
        let mut a = in_state(status);
        execute(&mut a, &AppointmentCommand::Hold { reason: reason() }).expect("hold");
        assert_eq!((a.status, a.held_from), (S::OnHold, Some(status)));
        execute(&mut a, &AppointmentCommand::Resume).expect("resume");
        assert_eq!((a.status, a.held_from), (status, None));
    }
}

#[test]
fn dispatch_needs_a_lead_and_the_crew_locks_once_on_the_way() {
    let mut a = fresh();
    assert_eq!(
        decide(&a, &AppointmentCommand::Dispatch),
        Err(AppointmentError::NoLead)
    );
    execute(
        &mut a,
        &AppointmentCommand::AddHelper {
            technician: tech(2),
        },
    )
    .expect("helper");
    assert_eq!(
        decide(&a, &AppointmentCommand::Dispatch),
        Err(AppointmentError::NoLead),
        "a helper is not a lead"
    );
    // The helper becomes the lead: one person, one role.
    execute(
        &mut a,
        &AppointmentCommand::AssignLead {
            technician: tech(2),
        },
    )
    .expect("lead");
    assert_eq!((a.lead, a.helpers.clone()), (Some(tech(2)), vec![]));
    execute(&mut a, &AppointmentCommand::Dispatch).expect("dispatch");
    assert_eq!(
        decide(
            &a,
            &AppointmentCommand::RemoveFromCrew {
                technician: tech(2)
            }
        ),
        Err(AppointmentError::LeadRequired)
    );
    // Replacing the lead of a dispatched appointment is allowed; nobody has set off.
    execute(
        &mut a,
        &AppointmentCommand::AssignLead {
            technician: tech(3),
        },
    )
    .expect("new lead");
    execute(&mut a, &AppointmentCommand::StartTravel).expect("travel");
    assert_eq!(
        decide(
            &a,
            &AppointmentCommand::AddHelper {
                technician: tech(4)
            }
        ),
        Err(AppointmentError::CrewLocked("en_route"))
    );
    assert_eq!(a.crew(), vec![tech(3)]);
}

#[test]
fn the_crew_has_no_duplicates_and_a_bounded_size() {
    let mut a = fresh();
    execute(
        &mut a,
        &AppointmentCommand::AssignLead {
            technician: tech(0),
        },
    )
    .expect("lead");
    assert_eq!(
        decide(
            &a,
            &AppointmentCommand::AddHelper {
                technician: tech(0)
            }
        ),
        Err(AppointmentError::AlreadyOnCrew)
    );
    for n in 1..=MAX_HELPERS as u128 {
        execute(
            &mut a,
            &AppointmentCommand::AddHelper {
                technician: tech(n),
            },
        )
        .expect("helper");
    }
    assert_eq!(
        decide(
            &a,
            &AppointmentCommand::AddHelper {
                technician: tech(99)
            }
        ),
        Err(AppointmentError::TooManyHelpers)
    );
    assert_eq!(
        decide(
            &a,
            &AppointmentCommand::RemoveFromCrew {
                technician: tech(99)
            }
        ),
        Err(AppointmentError::NotOnCrew)
    );
    assert_eq!(
        Appointment::new(a.id, a.job_id, window(0), 0),
        Err(AppointmentError::InvalidDuration(0))
    );
}

fn any_command() -> impl Strategy<Value = AppointmentCommand> {
    use AppointmentCommand as C;
    let technician = (0u128..5).prop_map(tech);
    prop_oneof![
        (0i64..48).prop_map(|h| C::Reschedule { window: window(h) }),
        (-1i64..5).prop_map(|h| C::Plan {
            start: (h >= 0).then(|| t0() + Duration::hours(h)),
        }),
        Just(C::Dispatch),
        Just(C::StartTravel),
        Just(C::Arrive),
        Just(C::Finish),
        Just(C::Recall),
        Just(C::Hold { reason: reason() }),
        Just(C::Resume),
        Just(C::Cancel { reason: reason() }),
        technician
            .clone()
            .prop_map(|technician| C::AssignLead { technician }),
        technician
            .clone()
            .prop_map(|technician| C::AddHelper { technician }),
        technician.prop_map(|technician| C::RemoveFromCrew { technician }),
    ]
}

/// What must hold of any appointment the machine can reach.
fn check_invariants(a: &Appointment) {
    assert!(
        a.lead.is_none_or(|lead| !a.helpers.contains(&lead)),
        "{a:?}"
    );
    let mut helpers = a.helpers.clone();
    helpers.sort();
    helpers.dedup();
    assert_eq!(helpers.len(), a.helpers.len(), "no helper twice: {a:?}");
    assert!(a.helpers.len() <= MAX_HELPERS);
    let underway =
        |s: AppointmentStatus| matches!(s, S::Dispatched | S::EnRoute | S::OnSite | S::Done);
    if underway(a.status) || a.held_from.is_some_and(underway) {
        assert!(a.lead.is_some(), "dispatched work has a lead: {a:?}");
    }
    assert_eq!(a.held_from.is_some(), a.status == S::OnHold, "{a:?}");
    if let Some(start) = a.planned_start {
        assert!(
            a.window.start() <= start && start <= a.window.end(),
            "planned inside: {a:?}"
        );
    }
}

proptest! {
    #[test]
    fn random_commands_keep_every_rule(commands in prop::collection::vec(any_command(), 0..40)) {
        let first = fresh();
        let mut a = first.clone();
        let mut changes = Vec::new();
        for command in &commands {
            let before = a.clone();
            match execute(&mut a, command) {
                Ok(change) => {
                    prop_assert_eq!(a.version, before.version + 1);
                    prop_assert!(!before.status.is_final(), "a final appointment changed");
                    changes.push(change);
                }
                Err(_) => prop_assert_eq!(&a, &before, "a refusal changed nothing"),
            }
            check_invariants(&a);
        }
        // The recorded changes rebuild it exactly.
        prop_assert_eq!(replay(&first, &changes), a);
    }

    #[test]
    fn final_appointments_refuse_everything(command in any_command(), done in any::<bool>()) {
        let a = in_state(if done { S::Done } else { S::Cancelled });
        prop_assert!(decide(&a, &command).is_err());
    }
}

/// An appointment numbered `n` in `status`, its window `n` hours after t0.
fn visit(n: u128, status: AppointmentStatus) -> Appointment {
    let mut a = in_state(status);
    a.id = AppointmentId::from_uuid(Uuid::from_u128(100 + n));
    a.window = window(i64::try_from(n).expect("small"));
    a
}

#[test]
fn the_job_follows_its_current_visit() {
    use JobStatus as J;
    let f = |current: J, visits: &[Appointment]| {
        followed_status(current, &visits.iter().collect::<Vec<_>>())
    };
    assert_eq!(f(J::Requested, &[]), J::Requested);
    assert_eq!(f(J::Requested, &[visit(1, S::Scheduled)]), J::Scheduled);
    assert_eq!(f(J::Scheduled, &[visit(1, S::Dispatched)]), J::Dispatched);
    assert_eq!(f(J::Dispatched, &[visit(1, S::EnRoute)]), J::EnRoute);
    assert_eq!(f(J::EnRoute, &[visit(1, S::OnSite)]), J::OnSite);
    // One visit done: waiting for an explicit completion.
    assert_eq!(f(J::OnSite, &[visit(1, S::Done)]), J::InProgress);
    // Return for parts: a second visit keeps the job in progress until its crew sets off.
    let back = [visit(1, S::Done), visit(2, S::Dispatched)];
    assert_eq!(f(J::InProgress, &back), J::InProgress);
    assert_eq!(
        f(J::InProgress, &[visit(1, S::Done), visit(2, S::EnRoute)]),
        J::EnRoute
    );
    // The visit furthest along is the current one, whatever the windows.
    assert_eq!(
        f(J::Scheduled, &[visit(1, S::Scheduled), visit(2, S::OnSite)]),
        J::OnSite
    );
    // Every visit cancelled: back to the queue.
    assert_eq!(f(J::Scheduled, &[visit(1, S::Cancelled)]), J::Requested);
    // A visit held once its crew arrived keeps the job on site.
    let mut held = visit(1, S::OnSite);
    execute(&mut held, &AppointmentCommand::Hold { reason: reason() }).expect("hold");
    assert_eq!(f(J::OnSite, &[held]), J::OnSite);
    // Explicit states are not followed.
    for held in [J::OnHold, J::Completed, J::Cancelled, J::Closed] {
        assert_eq!(f(held, &[visit(1, S::OnSite)]), held);
    }
}

#[test]
fn completion_needs_every_visit_done_or_cancelled() {
    let refusal = |visits: &[Appointment]| {
        completion_refusal(&visits.iter().collect::<Vec<_>>()).map(|r| r.code())
    };
    assert_eq!(refusal(&[]), Some("JOB_NO_VISIT_DONE"));
    assert_eq!(
        refusal(&[visit(1, S::Cancelled)]),
        Some("JOB_NO_VISIT_DONE")
    );
    assert_eq!(
        refusal(&[visit(1, S::Done), visit(2, S::Scheduled)]),
        Some("JOB_APPOINTMENTS_OPEN")
    );
    assert_eq!(refusal(&[visit(1, S::Done), visit(2, S::Cancelled)]), None);
}

#[test]
fn only_a_first_visit_is_held_to_the_sla() {
    let deadline = t0() + Duration::hours(4);
    let late = window(5);
    assert_eq!(sla_refusal(&late, deadline, &[]), Some(deadline));
    assert_eq!(sla_refusal(&window(3), deadline, &[]), None);
    let cancelled = visit(1, S::Cancelled);
    assert_eq!(sla_refusal(&late, deadline, &[&cancelled]), Some(deadline));
    let done = visit(1, S::Done);
    assert_eq!(sla_refusal(&late, deadline, &[&done]), None);
}

fn any_status() -> impl Strategy<Value = AppointmentStatus> {
    prop::sample::select(AppointmentStatus::ALL.to_vec())
}

proptest! {
    /// Whatever its visits, a followed job is in a field state consistent with them.
    #[test]
    fn followed_states_agree_with_the_visits(
        statuses in prop::collection::vec(any_status(), 0..6),
        current in prop::sample::select(VISITS_ADDED_IN.to_vec()),
    ) {
        use JobStatus as J;
        let visits: Vec<Appointment> = statuses
            .iter()
            .enumerate()
            .map(|(n, s)| visit(n as u128, *s))
            .collect();
        let refs: Vec<&Appointment> = visits.iter().collect();
        let followed = followed_status(current, &refs);
        prop_assert!(VISITS_ADDED_IN.contains(&followed));
        let any = |s: AppointmentStatus| statuses.contains(&s);
        prop_assert_eq!(followed == J::OnSite, any(S::OnSite));
        prop_assert_eq!(followed == J::EnRoute, any(S::EnRoute) && !any(S::OnSite));
        if any(S::Done) {
            prop_assert!(matches!(followed, J::InProgress | J::EnRoute | J::OnSite));
        }
        // Completion is allowed exactly when the job has nothing open and a visit done.
        prop_assert_eq!(
            completion_refusal(&refs).is_none(),
            any(S::Done) && statuses.iter().all(|s| s.is_final())
        );
        if completion_refusal(&refs).is_none() {
            prop_assert_eq!(followed, J::InProgress);
        }
    }
}

#[test]
fn a_planned_start_narrows_the_time_taken_and_a_reschedule_clears_it() {
    let mut a = fresh();
    assert_eq!(a.occupied(), a.window, "unplanned: the whole window");
    let inside = t0() + Duration::minutes(30);
    execute(
        &mut a,
        &AppointmentCommand::Plan {
            start: Some(inside),
        },
    )
    .expect("inside");
    assert_eq!(
        (a.occupied().start(), a.occupied().end()),
        (inside, inside + Duration::minutes(90))
    );
    let outside = AppointmentCommand::Plan {
        start: Some(t0() + Duration::hours(3)),
    };
    assert_eq!(
        decide(&a, &outside).map_err(|e| e.code()),
        Err("APPOINTMENT_PLANNED_START_OUTSIDE_WINDOW")
    );
    execute(
        &mut a,
        &AppointmentCommand::Reschedule { window: window(24) },
    )
    .expect("reschedule");
    assert_eq!(a.planned_start, None);
}
