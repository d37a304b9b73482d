//! The store conformance suite: one suite, every backend. Each test runs once on SQLite and once
//! on PostgreSQL (as the unprivileged `hestami_app` role), through the public API only.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration as ChronoDuration, TimeZone as _, Utc};
use hestami_core::customer::CountryCode;
use hestami_store::app::Services;
use hestami_store::engine::EngineConfig;
use serde_json::json;
use tokio::task::JoinSet;
use uuid::Uuid;

use hestami_core::customer::{Customer, Property};
use hestami_core::ids::{CustomerId, JobId, OrganizationId, TechnicianId};
use hestami_core::job::{self as core_job, Job, JobChange, JobStatus, Priority};
use hestami_core::org::{Organization, Role, TimeZone};
use hestami_core::text::{OrgName, Reason};
use hestami_core::workforce::Technician;
use hestami_store::app::customer::{CustomerCommand, CustomerUpdate, NewCustomer};
use hestami_store::app::job::{
    JobFilter, JobLifecycleCommand, RaiseCallback, ScheduleJob, UpdateStatus,
};
use hestami_store::app::org::{OrgCommand, OrgUpdate};
use hestami_store::app::technician::{TechnicianCommand, TechnicianUpdate};
use hestami_store::app::{DEFAULT_LIMIT, MAX_LIMIT, PageRequest, Patch, Request, decode_output};
use hestami_store::engine;
use hestami_store::{Clock, FailureKind, Store, StoreError, StoreOptions, truncate_micros};

use common::*;

on_every_backend!(
    directory_tokens_and_memberships,
    tokens_expire_by_the_store_clock,
    customers_round_trip_with_versions,
    technician_email_is_unique_per_organization,
    job_lifecycle_refusals_timeline_and_callback,
    hold_resume_and_cancel,
    organizations_cannot_reach_each_other,
    pagination_with_cursors,
    idempotent_replay_and_key_reuse,
    concurrent_submits_with_one_key_run_once,
    change_feed_records_every_write_in_order,
    change_feed_has_no_gaps_under_concurrent_writers,
    organization_settings_round_trip,
    concurrent_writers_never_lose_an_update,
    the_expiry_scan_runs_once_a_day_across_processes,
);

fn expect_failure<T: std::fmt::Debug>(
    result: Result<T, StoreError>,
    code: &str,
) -> hestami_store::Failure {
    match result {
        Err(StoreError::Failure(failure)) => {
            assert_eq!(failure.code, code, "unexpected refusal: {failure:?}");
            failure
        }
        other => panic!("expected the refusal {code}, got {other:?}"),
    }
}

fn ids<T>(items: &[T], id: impl Fn(&T) -> Uuid) -> Vec<Uuid> {
    items.iter().map(id).collect()
}

// -------------------------------------------------------------------------------------------------
// Directory

async fn directory_tokens_and_memberships(fx: Fixture) {
    let store = &fx.store;
    let a = fx.org("Acme Plumbing").await;
    let b = fx.org("Best Heating").await;

    assert_eq!(
        store.authenticate(&a.token).await.expect("authenticate"),
        Some(a.user_id)
    );
    assert_eq!(
        store.authenticate(&b.token).await.expect("authenticate"),
        Some(b.user_id)
    );
    assert_eq!(
        store
            .authenticate("hst_not_a_token")
            .await
            .expect("authenticate"),
        None
    );
    assert_eq!(
        store.role_of(a.user_id, a.id()).await.expect("role_of"),
        Some(Role::Owner)
    );
    assert_eq!(
        store.role_of(a.user_id, b.id()).await.expect("role_of"),
        None
    );

    // The same owner creates a second organization: the user is reused.
    let c = create_org(store, "Acme North", a.owner_email.as_str()).await;
    assert_eq!(c.user_id, a.user_id);
    assert_ne!(c.id(), a.id());
    let (user, memberships) = store.whoami(a.user_id).await.expect("whoami");
    assert_eq!(user.id, a.user_id);
    assert_eq!(user.email, a.owner_email);
    let mut expected = vec![a.id(), c.id()];
    expected.sort();
    assert_eq!(
        memberships
            .iter()
            .map(|m| m.organization_id)
            .collect::<Vec<_>>(),
        expected
    );
    assert!(
        memberships
            .iter()
            .all(|m| m.role == Role::Owner && m.user_id == a.user_id)
    );

    // Members: added with a role, re-adding changes the role; e-mail is case-insensitive.
    let dispatcher = store
        .add_member(a.id(), &email("dispatch@example.com"), Role::Dispatcher)
        .await
        .expect("add");
    assert_eq!(
        store.role_of(dispatcher, a.id()).await.expect("role_of"),
        Some(Role::Dispatcher)
    );
    assert_eq!(
        store.role_of(dispatcher, b.id()).await.expect("role_of"),
        None
    );
    let again = store
        .add_member(a.id(), &email("Dispatch@Example.COM"), Role::Viewer)
        .await
        .expect("add");
    assert_eq!(again, dispatcher);
    assert_eq!(
        store.role_of(dispatcher, a.id()).await.expect("role_of"),
        Some(Role::Viewer)
    );
    let (_, memberships) = store.whoami(dispatcher).await.expect("whoami");
    assert_eq!(memberships.len(), 1);
    expect_failure(
        store
            .add_member(
                OrganizationId::from_uuid(Uuid::now_v7()),
                &email("x@example.com"),
                Role::Viewer,
            )
            .await,
        "NOT_FOUND",
    );
    expect_failure(
        store
            .whoami(hestami_core::ids::UserId::from_uuid(Uuid::now_v7()))
            .await,
        "NOT_FOUND",
    );

    // Tokens: issued, authenticated, revoked by secret or by id.
    let t1 = store
        .create_token(&email("dispatch@example.com"), None, Some("cli"))
        .await
        .expect("token");
    assert_eq!(t1.user_id, dispatcher);
    assert_eq!(t1.expires_at, None);
    assert!(t1.token.starts_with("hst_"));
    assert_eq!(
        store.authenticate(&t1.token).await.expect("authenticate"),
        Some(dispatcher)
    );
    assert!(store.revoke_token(&t1.token).await.expect("revoke"));
    assert_eq!(
        store.authenticate(&t1.token).await.expect("authenticate"),
        None
    );
    assert!(
        !store.revoke_token(&t1.token).await.expect("revoke"),
        "a revoked token is not revoked twice"
    );

    let t2 = store
        .create_token(&email("dispatch@example.com"), None, None)
        .await
        .expect("token");
    assert_ne!(t2.token, t1.token);
    assert_eq!(
        store.authenticate(&t2.token).await.expect("authenticate"),
        Some(dispatcher)
    );
    assert!(
        store
            .revoke_token(&t2.token_id.to_string())
            .await
            .expect("revoke by id")
    );
    assert_eq!(
        store.authenticate(&t2.token).await.expect("authenticate"),
        None
    );
    assert!(
        !store
            .revoke_token(&Uuid::now_v7().to_string())
            .await
            .expect("revoke unknown id")
    );

    // Other tokens are unaffected.
    assert_eq!(
        store.authenticate(&a.token).await.expect("authenticate"),
        Some(a.user_id)
    );
    expect_failure(
        store
            .create_token(&email("nobody@example.com"), None, None)
            .await,
        "NOT_FOUND",
    );
}

/// A clock the test moves by hand.
#[derive(Debug)]
struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    fn advance(&self, by: ChronoDuration) {
        let mut now = self.0.lock().expect("clock lock");
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}

async fn tokens_expire_by_the_store_clock(fx: Fixture) {
    let clock = Arc::new(ManualClock(Mutex::new(truncate_micros(Utc::now()))));
    let store = Store::connect(
        &fx.db.app_url,
        StoreOptions {
            max_connections: 4,
            clock: clock.clone(),
        },
    )
    .await
    .expect("connect");
    let a = create_org(&store, "Clocked", "clocked-owner@example.com").await;
    let issued = store
        .create_token(&a.owner_email, Some(ChronoDuration::hours(1)), None)
        .await
        .expect("token");
    assert_eq!(
        issued.expires_at,
        Some(clock.now() + ChronoDuration::hours(1))
    );
    assert_eq!(
        store
            .authenticate(&issued.token)
            .await
            .expect("authenticate"),
        Some(a.user_id)
    );
    clock.advance(ChronoDuration::minutes(59));
    assert_eq!(
        store
            .authenticate(&issued.token)
            .await
            .expect("authenticate"),
        Some(a.user_id)
    );
    clock.advance(ChronoDuration::minutes(2));
    assert_eq!(
        store
            .authenticate(&issued.token)
            .await
            .expect("authenticate"),
        None,
        "an expired token works"
    );
    // The owner's first token has no expiry.
    assert_eq!(
        store.authenticate(&a.token).await.expect("authenticate"),
        Some(a.user_id)
    );
    // An expired token can still be revoked (it is a row); it stays refused.
    assert!(store.revoke_token(&issued.token).await.expect("revoke"));
    assert_eq!(
        store
            .authenticate(&issued.token)
            .await
            .expect("authenticate"),
        None
    );
}

// -------------------------------------------------------------------------------------------------
// Customers and technicians

async fn customers_round_trip_with_versions(fx: Fixture) {
    let s = &fx.services;
    let a = fx.org("Acme").await;
    let created: Customer = ok(
        s,
        &a.caller,
        CustomerCommand::Create(NewCustomer {
            name: name("Ada Lovelace"),
            email: Some(email("Ada@Example.com")),
            phone: Some(hestami_core::text::Phone::parse("+1 555 0100").expect("phone")),
        }),
    )
    .await;
    assert_eq!(created.version, 1);
    assert_eq!(created.email, Some(email("ada@example.com")));
    assert_eq!(created.created_at, created.updated_at);
    assert_eq!(
        s.customer_get(&a.caller, created.id).await.expect("get"),
        created
    );

    let update = |expected_version, new_name: &str, email_patch, phone_patch| {
        CustomerCommand::Update(CustomerUpdate {
            customer_id: created.id,
            expected_version,
            name: Some(name(new_name)),
            email: email_patch,
            phone: phone_patch,
        })
    };
    let v2: Customer = ok(
        s,
        &a.caller,
        update(Some(1), "Ada King", Patch::Keep, Patch::Clear),
    )
    .await;
    assert_eq!(v2.version, 2);
    assert_eq!(v2.name, name("Ada King"));
    assert_eq!(v2.email, created.email, "Keep leaves the e-mail");
    assert_eq!(v2.phone, None, "Clear removes the phone");
    assert_eq!(v2.created_at, created.created_at);
    assert!(v2.updated_at >= created.updated_at);
    assert_eq!(
        s.customer_get(&a.caller, created.id).await.expect("get"),
        v2
    );

    // A stale expected version is refused with the current one, and changes nothing.
    let conflict = refused(
        s,
        &a.caller,
        update(Some(1), "Stale Write", Patch::Keep, Patch::Keep),
    )
    .await;
    assert_eq!(conflict.code, "VERSION_CONFLICT");
    assert_eq!(conflict.kind, FailureKind::Conflict);
    assert_eq!(conflict.details, Some(json!({ "currentVersion": 2 })));
    assert_eq!(
        s.customer_get(&a.caller, created.id).await.expect("get"),
        v2
    );

    // Without an expected version the write goes through, still +1.
    let v3: Customer = ok(
        s,
        &a.caller,
        update(
            None,
            "Ada King",
            Patch::Set(email("countess@example.com")),
            Patch::Keep,
        ),
    )
    .await;
    assert_eq!(v3.version, 3);
    assert_eq!(v3.email, Some(email("countess@example.com")));
    assert_eq!(
        s.customer_get(&a.caller, created.id).await.expect("get"),
        v3
    );

    // Properties belong to their customer.
    let property: Property = ok(s, &a.caller, new_property(created.id)).await;
    assert_eq!(property.version, 1);
    assert_eq!(property.customer_id, created.id);
    assert_eq!(
        s.customer_list_properties(&a.caller, created.id)
            .await
            .expect("list"),
        vec![property.clone()]
    );
    let second: Property = ok(s, &a.caller, new_property(created.id)).await;
    assert_eq!(
        s.customer_list_properties(&a.caller, created.id)
            .await
            .expect("list"),
        vec![property, second],
        "properties are listed in creation order"
    );

    let unknown = CustomerId::from_uuid(Uuid::now_v7());
    expect_failure(s.customer_get(&a.caller, unknown).await, "NOT_FOUND");
    assert_eq!(
        refused(s, &a.caller, new_property(unknown)).await.code,
        "NOT_FOUND"
    );
    let missing = refused(
        s,
        &a.caller,
        CustomerCommand::Update(CustomerUpdate {
            customer_id: unknown,
            expected_version: None,
            name: None,
            email: Patch::Keep,
            phone: Patch::Keep,
        }),
    )
    .await;
    assert_eq!(
        (missing.code.as_str(), missing.kind),
        ("NOT_FOUND", FailureKind::NotFound)
    );
}

async fn technician_email_is_unique_per_organization(fx: Fixture) {
    let s = &fx.services;
    let a = fx.org("Acme").await;
    let b = fx.org("Best").await;

    let pat: Technician = ok(
        s,
        &a.caller,
        new_technician(
            "Pat",
            Some("pat@example.com"),
            &["plumbing", "hvac", "plumbing"],
        ),
    )
    .await;
    assert_eq!(pat.version, 1);
    assert!(pat.active);
    assert_eq!(
        pat.trades,
        vec![trade("hvac"), trade("plumbing")],
        "trades are sorted and deduplicated"
    );
    assert_eq!(s.technician_get(&a.caller, pat.id).await.expect("get"), pat);

    let taken = refused(
        s,
        &a.caller,
        new_technician("Pat Two", Some("PAT@example.com"), &["hvac"]),
    )
    .await;
    assert_eq!(taken.code, "TECHNICIAN_EMAIL_TAKEN");
    assert_eq!(taken.kind, FailureKind::Conflict);

    // Another organization may use the same address.
    let pat_b: Technician = ok(
        s,
        &b.caller,
        new_technician("Pat", Some("pat@example.com"), &["plumbing"]),
    )
    .await;
    assert_ne!(pat_b.id, pat.id);

    // Any number of technicians without an address.
    let _: Technician = ok(s, &a.caller, new_technician("No Mail 1", None, &["hvac"])).await;
    let _: Technician = ok(s, &a.caller, new_technician("No Mail 2", None, &["hvac"])).await;

    let sam: Technician = ok(
        s,
        &a.caller,
        new_technician("Sam", Some("sam@example.com"), &["electrical"]),
    )
    .await;
    let steal = TechnicianCommand::Update(TechnicianUpdate {
        technician_id: sam.id,
        expected_version: Some(1),
        name: None,
        email: Patch::Set(email("pat@example.com")),
        phone: Patch::Keep,
        trades: None,
    });
    assert_eq!(
        refused(s, &a.caller, steal).await.code,
        "TECHNICIAN_EMAIL_TAKEN"
    );
    assert_eq!(
        s.technician_get(&a.caller, sam.id).await.expect("get"),
        sam,
        "a refused update changes nothing"
    );

    let retrained: Technician = ok(
        s,
        &a.caller,
        TechnicianCommand::Update(TechnicianUpdate {
            technician_id: sam.id,
            expected_version: Some(1),
            name: Some(name("Samuel")),
            email: Patch::Keep,
            phone: Patch::Keep,
            trades: Some(vec![trade("plumbing"), trade("electrical")]),
        }),
    )
    .await;
    assert_eq!(retrained.version, 2);
    assert_eq!(retrained.name, name("Samuel"));
    assert_eq!(retrained.email, sam.email);
    assert_eq!(
        retrained.trades,
        vec![trade("electrical"), trade("plumbing")]
    );

    let stale = TechnicianCommand::Deactivate {
        technician_id: sam.id,
        expected_version: Some(1),
    };
    let conflict = refused(s, &a.caller, stale).await;
    assert_eq!(conflict.code, "VERSION_CONFLICT");
    assert_eq!(conflict.details, Some(json!({ "currentVersion": 2 })));
    let retired: Technician = ok(
        s,
        &a.caller,
        TechnicianCommand::Deactivate {
            technician_id: sam.id,
            expected_version: Some(2),
        },
    )
    .await;
    assert_eq!((retired.version, retired.active), (3, false));
    assert_eq!(
        s.technician_get(&a.caller, sam.id).await.expect("get"),
        retired
    );

    // Filters: active plumbers of A are Pat only; all plumbers include the retired Samuel.
    let page = PageRequest::parse(None, None).expect("page");
    let active_plumbers = s
        .technician_list(&a.caller, page, Some(true), Some(trade("plumbing")))
        .await
        .expect("list");
    assert_eq!(
        ids(&active_plumbers.items, |t| t.id.as_uuid()),
        vec![pat.id.as_uuid()]
    );
    let plumbers = s
        .technician_list(&a.caller, page, None, Some(trade("plumbing")))
        .await
        .expect("list");
    assert_eq!(
        ids(&plumbers.items, |t| t.id.as_uuid()),
        vec![pat.id.as_uuid(), sam.id.as_uuid()]
    );
    let inactive = s
        .technician_list(&a.caller, page, Some(false), None)
        .await
        .expect("list");
    assert_eq!(
        ids(&inactive.items, |t| t.id.as_uuid()),
        vec![sam.id.as_uuid()]
    );
    let all_a = s
        .technician_list(&a.caller, page, None, None)
        .await
        .expect("list");
    assert_eq!(all_a.items.len(), 4);
    let all_b = s
        .technician_list(&b.caller, page, None, None)
        .await
        .expect("list");
    assert_eq!(all_b.items, vec![pat_b]);

    expect_failure(
        s.technician_get(&a.caller, TechnicianId::from_uuid(Uuid::now_v7()))
            .await,
        "NOT_FOUND",
    );

    // The trade filter matches whole codes only: `_` in a code is not a wildcard. (Trades come
    // from the organization's catalogue, so b adds the look-alikes to its own first.)
    let _: hestami_store::app::trades::TradesDoc = ok(
        s,
        &b.caller,
        hestami_store::app::contractor::ContractorCommand::SetTrades {
            trades: hestami_core::trade::TradeCatalogue::parse(vec![
                trade("gas_fitting"),
                trade("gasxfitting"),
                trade("gas_fitting_extra"),
            ])
            .expect("a catalogue"),
            expected_version: Some(0),
        },
    )
    .await;
    let gas: Technician = ok(s, &b.caller, new_technician("Gus", None, &["gas_fitting"])).await;
    let _: Technician = ok(
        s,
        &b.caller,
        new_technician("Gil", None, &["gasxfitting", "gas_fitting_extra"]),
    )
    .await;
    let gas_fitters = s
        .technician_list(&b.caller, page, None, Some(trade("gas_fitting")))
        .await
        .expect("list");
    assert_eq!(
        ids(&gas_fitters.items, |t| t.id.as_uuid()),
        vec![gas.id.as_uuid()]
    );
}

// -------------------------------------------------------------------------------------------------
// Jobs

fn callback(job_id: JobId, reason: Option<&str>) -> JobLifecycleCommand {
    JobLifecycleCommand::Callback(RaiseCallback {
        job_id,
        summary: None,
        description: None,
        priority: None,
        reason: reason.map(|r| Reason::parse(r).expect("reason")),
    })
}

async fn job_lifecycle_refusals_timeline_and_callback(fx: Fixture) {
    let s = &fx.services;
    let a = fx.org("Acme").await;
    let c = &a.caller;
    let (customer, property) = customer_with_property(s, c, "Grace Hopper").await;
    ensure_ready(s, c).await;

    let job: Job = ok(s, c, new_job(customer.id, property.id, "plumbing")).await;
    assert_eq!((job.version, job.status), (1, JobStatus::Requested));
    assert_eq!(
        (job.customer_id, job.property_id),
        (customer.id, property.id)
    );
    assert_eq!(
        (job.technician_id, job.window, job.callback_of),
        (None, None, None)
    );
    assert_eq!(
        job.sla_deadline,
        job.created_at + ChronoDuration::minutes(24 * 60),
        "urgent: one day by default"
    );
    assert_eq!(
        s.job_get(c, job.id).await.expect("get"),
        job,
        "the recorded output is what is stored"
    );

    // Not in the table: the refusal names the current state and the allowed ones.
    let invalid = refused(s, c, set_status(job.id, JobStatus::Dispatched)).await;
    assert_eq!(invalid.code, "JOB_INVALID_TRANSITION");
    assert_eq!(invalid.kind, FailureKind::Conflict);
    assert_eq!(
        invalid.details,
        Some(
            json!({ "currentStatus": "requested", "allowed": ["scheduled", "on_hold", "cancelled"] })
        )
    );
    assert_eq!(
        refused(s, c, set_status(job.id, JobStatus::Scheduled))
            .await
            .code,
        "JOB_WINDOW_REQUIRED"
    );

    let scheduled: Job = ok(
        s,
        c,
        JobLifecycleCommand::Schedule(ScheduleJob {
            job_id: job.id,
            window: window(),
            expected_version: Some(1),
        }),
    )
    .await;
    assert_eq!(
        (scheduled.version, scheduled.status, scheduled.window),
        (2, JobStatus::Scheduled, Some(window()))
    );
    let stale = refused(
        s,
        c,
        JobLifecycleCommand::Schedule(ScheduleJob {
            job_id: job.id,
            window: window(),
            expected_version: Some(1),
        }),
    )
    .await;
    assert_eq!(stale.code, "VERSION_CONFLICT");
    assert_eq!(stale.details, Some(json!({ "currentVersion": 2 })));

    // Dispatch needs a technician, and only an eligible one can be assigned.
    let no_tech = refused(s, c, set_status(job.id, JobStatus::Dispatched)).await;
    assert_eq!(
        (no_tech.code.as_str(), no_tech.kind),
        ("JOB_TECHNICIAN_REQUIRED", FailureKind::RuleViolation)
    );

    let hvac: Technician = ok(s, c, new_technician("Hal", None, &["hvac"])).await;
    ready(s, c, &hvac).await;
    let wrong_trade = refused(s, c, assign(job.id, hvac.id)).await;
    assert_eq!(
        (wrong_trade.code.as_str(), wrong_trade.kind),
        ("TECHNICIAN_INELIGIBLE", FailureKind::RuleViolation)
    );
    let rules = |f: &hestami_store::Failure| -> Vec<String> {
        f.details.as_ref().expect("details")["failedRules"]
            .as_array()
            .expect("failedRules")
            .iter()
            .map(|r| r["code"].as_str().expect("code").to_owned())
            .collect()
    };
    assert_eq!(rules(&wrong_trade), ["TRADE_MISSING"]);

    let retired: Technician = ok(s, c, new_technician("Rita", None, &["plumbing"])).await;
    ready(s, c, &retired).await;
    let _: Technician = ok(
        s,
        c,
        TechnicianCommand::Deactivate {
            technician_id: retired.id,
            expected_version: None,
        },
    )
    .await;
    let inactive = refused(s, c, assign(job.id, retired.id)).await;
    assert_eq!(inactive.code, "TECHNICIAN_INELIGIBLE");
    assert_eq!(rules(&inactive), ["TECHNICIAN_INACTIVE"]);
    let _: Technician = ok(
        s,
        c,
        TechnicianCommand::Deactivate {
            technician_id: hvac.id,
            expected_version: None,
        },
    )
    .await;
    let both = refused(s, c, assign(job.id, hvac.id)).await;
    assert_eq!(rules(&both), ["TECHNICIAN_INACTIVE", "TRADE_MISSING"]);
    assert_eq!(
        s.job_get(c, job.id).await.expect("get"),
        scheduled,
        "refusals change nothing"
    );

    let plumber: Technician = ok(s, c, new_technician("Pat", None, &["plumbing"])).await;
    ready(s, c, &plumber).await;
    let assigned: Job = ok(s, c, assign(job.id, plumber.id)).await;
    assert_eq!(
        (assigned.version, assigned.status, assigned.technician_id),
        (3, JobStatus::Scheduled, Some(plumber.id))
    );

    let mut current = assigned;
    for (status, version) in [
        (JobStatus::Dispatched, 4),
        (JobStatus::EnRoute, 5),
        (JobStatus::OnSite, 6),
        (JobStatus::InProgress, 7),
        (JobStatus::Completed, 8),
    ] {
        current = ok(s, c, set_status(job.id, status)).await;
        assert_eq!((current.status, current.version), (status, version));
    }
    assert!(current.visit_started_at.is_some());
    assert!(current.completed_at.is_some());
    let invoice = refused(s, c, set_status(job.id, JobStatus::Invoiced)).await;
    assert_eq!(
        (invoice.code.as_str(), invoice.kind),
        ("JOB_INVOICE_REQUIRED", FailureKind::RuleViolation)
    );
    let reassign = refused(s, c, assign(job.id, plumber.id)).await;
    assert_eq!(reassign.code, "JOB_ASSIGNMENT_NOT_ALLOWED");

    // The timeline is the job's history, and replaying it rebuilds the job.
    let stored = s.job_get(c, job.id).await.expect("get");
    assert_eq!(stored, current);
    let timeline = s.job_timeline(c, job.id).await.expect("timeline");
    assert_eq!(
        timeline.iter().map(|e| e.version).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
    assert_eq!(
        (timeline[0].from, timeline[0].to),
        (None, JobStatus::Requested)
    );
    assert!(
        timeline.iter().all(|e| e.actor == Some(a.user_id)),
        "every event names who did it"
    );
    assert_eq!(core_job::replay(job.id, &timeline), Some(stored.clone()));

    // A callback is a new linked job, recorded on the original.
    let cb: Job = ok(s, c, callback(job.id, Some("Still leaking"))).await;
    assert_ne!(cb.id, job.id);
    assert_eq!(
        (cb.status, cb.version, cb.callback_of),
        (JobStatus::Requested, 1, Some(job.id))
    );
    assert_eq!(
        (cb.customer_id, cb.property_id, &cb.trade, cb.priority),
        (customer.id, property.id, &job.trade, Priority::Urgent)
    );
    assert_eq!(cb.summary.as_str(), "Callback: Leaking water heater");
    assert_eq!(s.job_get(c, cb.id).await.expect("get"), cb);
    let original = s.job_get(c, job.id).await.expect("get");
    assert_eq!(
        (original.status, original.version),
        (JobStatus::Completed, 9)
    );
    let timeline = s.job_timeline(c, job.id).await.expect("timeline");
    let last = timeline.last().expect("events");
    assert_eq!(
        last.change,
        JobChange::CallbackRaised {
            callback_job_id: cb.id
        }
    );
    assert_eq!(
        (last.from, last.to),
        (Some(JobStatus::Completed), JobStatus::Completed)
    );
    assert_eq!(
        last.reason.as_ref().map(Reason::as_str),
        Some("Still leaking")
    );
    assert_eq!(core_job::replay(job.id, &timeline), Some(original));
    assert_eq!(
        core_job::replay(cb.id, &s.job_timeline(c, cb.id).await.expect("timeline")),
        Some(cb.clone())
    );
    assert_eq!(
        refused(s, c, callback(cb.id, None)).await.code,
        "JOB_CALLBACK_NOT_ALLOWED"
    );

    // Lists filter by status and technician.
    let page = PageRequest::parse(None, None).expect("page");
    let list = |filter| s.job_list(c, filter, page);
    let completed = list(JobFilter {
        status: Some(JobStatus::Completed),
        ..JobFilter::default()
    })
    .await
    .expect("list");
    assert_eq!(
        ids(&completed.items, |j| j.id.as_uuid()),
        vec![job.id.as_uuid()]
    );
    let requested = list(JobFilter {
        status: Some(JobStatus::Requested),
        ..JobFilter::default()
    })
    .await
    .expect("list");
    assert_eq!(
        ids(&requested.items, |j| j.id.as_uuid()),
        vec![cb.id.as_uuid()]
    );
    let pats = list(JobFilter {
        technician_id: Some(plumber.id),
        ..JobFilter::default()
    })
    .await
    .expect("list");
    assert_eq!(ids(&pats.items, |j| j.id.as_uuid()), vec![job.id.as_uuid()]);
    let in_window = list(JobFilter {
        from: Some(at(10)),
        to: Some(at(11)),
        ..JobFilter::default()
    })
    .await
    .expect("list");
    assert_eq!(
        ids(&in_window.items, |j| j.id.as_uuid()),
        vec![job.id.as_uuid()]
    );
    let after_window = list(JobFilter {
        from: Some(at(13)),
        ..JobFilter::default()
    })
    .await
    .expect("list");
    assert!(after_window.items.is_empty());
    let all = list(JobFilter::default()).await.expect("list");
    assert_eq!(
        ids(&all.items, |j| j.id.as_uuid()),
        vec![job.id.as_uuid(), cb.id.as_uuid()]
    );
}

async fn hold_resume_and_cancel(fx: Fixture) {
    let s = &fx.services;
    let a = fx.org("Acme").await;
    let c = &a.caller;
    let job = requested_job(s, c).await;
    ensure_ready(s, c).await;
    let _: Job = ok(s, c, schedule(job.id)).await;
    let held: Job = ok(
        s,
        c,
        JobLifecycleCommand::UpdateStatus(UpdateStatus {
            job_id: job.id,
            status: JobStatus::OnHold,
            reason: Some(Reason::parse("Waiting for parts").expect("reason")),
            expected_version: Some(2),
        }),
    )
    .await;
    assert_eq!(
        (held.status, held.held_from, held.version),
        (JobStatus::OnHold, Some(JobStatus::Scheduled), 3)
    );
    let invalid = refused(s, c, set_status(job.id, JobStatus::Dispatched)).await;
    assert_eq!(
        invalid.details,
        Some(json!({ "currentStatus": "on_hold", "allowed": ["scheduled", "cancelled"] }))
    );
    let resumed: Job = ok(s, c, set_status(job.id, JobStatus::Scheduled)).await;
    assert_eq!(
        (resumed.status, resumed.held_from, resumed.version),
        (JobStatus::Scheduled, None, 4)
    );
    assert_eq!(resumed.window, Some(window()), "the window survives a hold");
    let cancelled: Job = ok(s, c, set_status(job.id, JobStatus::Cancelled)).await;
    assert_eq!(
        (cancelled.status, cancelled.version),
        (JobStatus::Cancelled, 5)
    );
    let dead_end = refused(s, c, set_status(job.id, JobStatus::Scheduled)).await;
    assert_eq!(
        dead_end.details,
        Some(json!({ "currentStatus": "cancelled", "allowed": [] }))
    );
    let timeline = s.job_timeline(c, job.id).await.expect("timeline");
    assert_eq!(
        timeline[2].reason.as_ref().map(Reason::as_str),
        Some("Waiting for parts")
    );
    assert_eq!(core_job::replay(job.id, &timeline), Some(cancelled));
}

// -------------------------------------------------------------------------------------------------
// Tenancy

async fn organizations_cannot_reach_each_other(fx: Fixture) {
    let s = &fx.services;
    let a = fx.org("Acme").await;
    let b = fx.org("Best").await;
    let job_a = requested_job(s, &a.caller).await;
    let tech_a: Technician = ok(s, &a.caller, new_technician("Pat", None, &["plumbing"])).await;
    let created_in_a = s
        .submit(&a.caller, request(new_customer("Only In A")))
        .await
        .expect("submit");
    let job_b = requested_job(s, &b.caller).await;

    // Reads from B find nothing of A's.
    expect_failure(s.job_get(&b.caller, job_a.id).await, "NOT_FOUND");
    expect_failure(s.job_timeline(&b.caller, job_a.id).await, "NOT_FOUND");
    expect_failure(
        s.customer_get(&b.caller, job_a.customer_id).await,
        "NOT_FOUND",
    );
    expect_failure(
        s.customer_list_properties(&b.caller, job_a.customer_id)
            .await,
        "NOT_FOUND",
    );
    expect_failure(s.technician_get(&b.caller, tech_a.id).await, "NOT_FOUND");
    expect_failure(
        s.workflow_get(&b.caller, created_in_a.workflow_id).await,
        "NOT_FOUND",
    );

    // Writes from B naming A's ids are refused as not found.
    for command in [
        set_status(job_a.id, JobStatus::Cancelled),
        schedule(job_a.id),
        callback(job_a.id, None),
        new_job(job_a.customer_id, job_a.property_id, "plumbing"),
        new_job(job_b.customer_id, job_a.property_id, "plumbing"),
    ] {
        assert_eq!(refused(s, &b.caller, command).await.code, "NOT_FOUND");
    }
    assert_eq!(
        refused(s, &b.caller, new_property(job_a.customer_id))
            .await
            .code,
        "NOT_FOUND"
    );
    assert_eq!(
        refused(s, &b.caller, assign(job_a.id, tech_a.id))
            .await
            .code,
        "NOT_FOUND"
    );
    assert_eq!(
        refused(s, &b.caller, assign(job_b.id, tech_a.id))
            .await
            .code,
        "NOT_FOUND",
        "A's technician"
    );
    assert_eq!(
        refused(
            s,
            &b.caller,
            TechnicianCommand::Deactivate {
                technician_id: tech_a.id,
                expected_version: None
            }
        )
        .await
        .code,
        "NOT_FOUND"
    );

    // Within one organization, a job needs a property of its own customer.
    let (_, other_property) = customer_with_property(s, &a.caller, "Someone Else").await;
    let wrong_property = refused(
        s,
        &a.caller,
        new_job(job_a.customer_id, other_property.id, "plumbing"),
    )
    .await;
    assert_eq!(wrong_property.code, "NOT_FOUND");
    assert!(
        wrong_property.message.contains("property"),
        "{}",
        wrong_property.message
    );

    // Nothing of A's changed, and lists and feeds are per organization.
    assert_eq!(s.job_get(&a.caller, job_a.id).await.expect("get"), job_a);
    assert_eq!(
        s.technician_get(&a.caller, tech_a.id).await.expect("get"),
        tech_a
    );
    let page = PageRequest::parse(None, None).expect("page");
    let b_jobs = s
        .job_list(&b.caller, JobFilter::default(), page)
        .await
        .expect("list");
    assert_eq!(
        ids(&b_jobs.items, |j| j.id.as_uuid()),
        vec![job_b.id.as_uuid()]
    );
    let b_customers = s.customer_list(&b.caller, page, None).await.expect("list");
    assert_eq!(
        ids(&b_customers.items, |c| c.id.as_uuid()),
        vec![job_b.customer_id.as_uuid()]
    );
    assert!(
        s.technician_list(&b.caller, page, None, None)
            .await
            .expect("list")
            .items
            .is_empty()
    );
    let b_feed = whole_feed(s, &b.caller).await;
    assert_feed_is_clean(&b_feed);
    let a_entities: std::collections::HashSet<Uuid> = whole_feed(s, &a.caller)
        .await
        .iter()
        .map(|c| c.entity_id)
        .collect();
    assert!(b_feed.iter().all(|c| !a_entities.contains(&c.entity_id)));
    let b_workflows = s
        .workflow_list(&b.caller, None, None, page)
        .await
        .expect("list");
    assert!(
        b_workflows
            .items
            .iter()
            .all(|w| w.id != created_in_a.workflow_id)
    );
    assert_eq!(s.org_get(&b.caller).await.expect("org").id, b.id());
}

// -------------------------------------------------------------------------------------------------
// Pagination

async fn pagination_with_cursors(fx: Fixture) {
    let s = &fx.services;
    let a = fx.org("Acme").await;
    let b = fx.org("Best").await;
    let c = &a.caller;
    let mut created = Vec::new();
    for i in 0..5 {
        let customer: Customer = ok(s, c, new_customer(&format!("Customer {i}"))).await;
        created.push(customer.id.as_uuid());
    }

    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page =
            PageRequest::parse(Some(2), cursor.as_deref()).expect("a cursor we were given parses");
        let result = s.customer_list(c, page, None).await.expect("list");
        sizes.push(result.items.len());
        seen.extend(ids(&result.items, |c| c.id.as_uuid()));
        match result.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(
        seen, created,
        "pages cover every item once, in creation order"
    );

    // A page that ends exactly at the last item says there is no more.
    let exact = s
        .customer_list(c, PageRequest::parse(Some(5), None).expect("page"), None)
        .await
        .expect("list");
    assert_eq!((exact.items.len(), exact.next_cursor.as_deref()), (5, None));
    let four = s
        .customer_list(c, PageRequest::parse(Some(4), None).expect("page"), None)
        .await
        .expect("list");
    let rest_cursor = four.next_cursor.expect("one more");
    let rest = s
        .customer_list(
            c,
            PageRequest::parse(Some(4), Some(&rest_cursor)).expect("page"),
            None,
        )
        .await
        .expect("list");
    assert_eq!(
        (ids(&rest.items, |c| c.id.as_uuid()), rest.next_cursor),
        (vec![created[4]], None)
    );

    // A cursor of one organization pages over the other's data only.
    let other = s
        .customer_list(
            &b.caller,
            PageRequest::parse(Some(2), Some(&rest_cursor)).expect("page"),
            None,
        )
        .await;
    assert!(other.expect("list").items.is_empty());

    // Search filters, with LIKE wildcards taken literally.
    let found = s
        .customer_list(
            c,
            PageRequest::parse(None, None).expect("page"),
            Some("customer 3".into()),
        )
        .await
        .expect("list");
    assert_eq!(ids(&found.items, |c| c.id.as_uuid()), vec![created[3]]);
    let wildcard = s
        .customer_list(
            c,
            PageRequest::parse(None, None).expect("page"),
            Some("%".into()),
        )
        .await
        .expect("list");
    assert!(wildcard.items.is_empty(), "% is not a wildcard");

    // Invalid page requests are validation failures naming the field.
    for (limit, cursor, field, code) in [
        (Some(2), Some("garbage"), "cursor", "invalid_cursor"),
        (Some(2), Some("c1.not-a-uuid"), "cursor", "invalid_cursor"),
        (
            Some(2),
            Some(created[0].to_string().as_str()),
            "cursor",
            "invalid_cursor",
        ),
        (Some(0), None, "limit", "out_of_range"),
        (Some(MAX_LIMIT + 1), None, "limit", "out_of_range"),
    ] {
        let failure = PageRequest::parse(limit, cursor).expect_err("refused");
        assert_eq!(
            (failure.code.as_str(), failure.kind),
            ("VALIDATION_FAILED", FailureKind::Validation)
        );
        assert_eq!(failure.field_errors.len(), 1);
        assert_eq!(
            (
                failure.field_errors[0].field.as_str(),
                failure.field_errors[0].code.as_str()
            ),
            (field, code)
        );
    }
    assert_eq!(
        PageRequest::parse(Some(0), Some("x"))
            .expect_err("refused")
            .field_errors
            .len(),
        2
    );
    assert_eq!(
        PageRequest::parse(None, None).expect("default").limit,
        DEFAULT_LIMIT
    );
    assert_eq!(
        PageRequest::parse(Some(MAX_LIMIT), None)
            .expect("max")
            .limit,
        MAX_LIMIT
    );

    // Technicians, jobs and workflows page the same way.
    let mut techs = Vec::new();
    for i in 0..3 {
        let t: Technician = ok(
            s,
            c,
            new_technician(&format!("Tech {i}"), None, &["plumbing"]),
        )
        .await;
        techs.push(t.id.as_uuid());
    }
    let first = s
        .technician_list(
            c,
            PageRequest::parse(Some(2), None).expect("page"),
            None,
            None,
        )
        .await
        .expect("list");
    let next = PageRequest::parse(Some(2), first.next_cursor.as_deref()).expect("page");
    let second = s.technician_list(c, next, None, None).await.expect("list");
    assert_eq!(
        [
            ids(&first.items, |t| t.id.as_uuid()),
            ids(&second.items, |t| t.id.as_uuid())
        ]
        .concat(),
        techs
    );
    assert_eq!(second.next_cursor, None);

    let property: Property = ok(s, c, new_property(CustomerId::from_uuid(created[0]))).await;
    let mut jobs = Vec::new();
    for _ in 0..3 {
        let j: Job = ok(
            s,
            c,
            new_job(CustomerId::from_uuid(created[0]), property.id, "plumbing"),
        )
        .await;
        jobs.push(j.id.as_uuid());
    }
    let mut paged = Vec::new();
    let mut cursor = None;
    loop {
        let page = PageRequest::parse(Some(1), cursor.as_deref()).expect("page");
        let result = s
            .job_list(c, JobFilter::default(), page)
            .await
            .expect("list");
        paged.extend(ids(&result.items, |j| j.id.as_uuid()));
        cursor = result.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(paged, jobs);

    // Every submission above is one workflow: 5 customers, 3 technicians, 1 property, 3 jobs,
    // plus one refused submission.
    let refusal = s
        .submit(
            c,
            request(set_status(
                JobId::from_uuid(Uuid::now_v7()),
                JobStatus::Cancelled,
            )),
        )
        .await
        .expect("submit");
    assert_eq!(failure_of(&refusal).code, "NOT_FOUND");
    let mut workflows = Vec::new();
    let mut cursor = None;
    loop {
        let page = PageRequest::parse(Some(5), cursor.as_deref()).expect("page");
        let result = s.workflow_list(c, None, None, page).await.expect("list");
        workflows.extend(result.items);
        cursor = result.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(workflows.len(), 13);
    let mut sorted = workflows.iter().map(|w| w.id).collect::<Vec<_>>();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 13, "no workflow is listed twice");
    let page = PageRequest::parse(None, None).expect("page");
    let failed = s
        .workflow_list(c, Some("failed".into()), None, page)
        .await
        .expect("list");
    assert_eq!(
        ids(&failed.items, |w| w.id.as_uuid()),
        vec![refusal.workflow_id.as_uuid()]
    );
    let technician_runs = s
        .workflow_list(c, None, Some("technician_v1".into()), page)
        .await
        .expect("list");
    assert_eq!(technician_runs.items.len(), 3);
    let succeeded = s
        .workflow_list(c, Some("succeeded".into()), None, page)
        .await
        .expect("list");
    assert_eq!(succeeded.items.len(), 12);
}

// -------------------------------------------------------------------------------------------------
// Idempotency

async fn idempotent_replay_and_key_reuse(fx: Fixture) {
    let s = &fx.services;
    let a = fx.org("Acme").await;
    let b = fx.org("Best").await;
    let key = Uuid::new_v4();
    let command = new_customer("Once Only");

    let first = s
        .submit(
            &a.caller,
            Request {
                trace_id: Some("trace-1".into()),
                ..request_with_key(key, command.clone())
            },
        )
        .await
        .expect("first");
    assert!(!first.replayed);
    assert_eq!(first.trace_id.as_deref(), Some("trace-1"));
    assert_eq!(
        first.workflow_id,
        engine::workflow_id(a.id(), "customer/v1/create", key)
    );
    let text = first.outcome.clone().expect("created");
    let customer: Customer = decode_output(&text).expect("decodes");

    let second = s
        .submit(
            &a.caller,
            Request {
                trace_id: Some("trace-2".into()),
                ..request_with_key(key, command.clone())
            },
        )
        .await
        .expect("second");
    assert!(second.replayed);
    assert_eq!(second.workflow_id, first.workflow_id);
    assert_eq!(
        second.outcome,
        Ok(text.clone()),
        "the replay is byte-identical"
    );
    assert_eq!(
        second.trace_id.as_deref(),
        Some("trace-1"),
        "the recorded trace is returned"
    );

    let page = PageRequest::parse(None, None).expect("page");
    let listed = s.customer_list(&a.caller, page, None).await.expect("list");
    assert_eq!(
        listed.items,
        vec![customer.clone()],
        "the effect happened once"
    );

    // The same key with another request is refused, and nothing happens.
    match s
        .submit(
            &a.caller,
            request_with_key(key, new_customer("Someone Else")),
        )
        .await
    {
        Err(StoreError::IdempotencyKeyReused) => {}
        other => panic!("expected IdempotencyKeyReused, got {other:?}"),
    }
    let forged = Request {
        fingerprint: "not-the-fingerprint".into(),
        ..request_with_key(key, command.clone())
    };
    assert!(matches!(
        s.submit(&a.caller, forged).await,
        Err(StoreError::IdempotencyKeyReused)
    ));
    assert_eq!(
        s.customer_list(&a.caller, page, None)
            .await
            .expect("list")
            .items
            .len(),
        1
    );

    // The same key in another organization, or for another procedure, is another request.
    let in_b = s
        .submit(&b.caller, request_with_key(key, command.clone()))
        .await
        .expect("in b");
    assert!(!in_b.replayed);
    assert_ne!(in_b.workflow_id, first.workflow_id);
    assert_eq!(
        s.customer_list(&b.caller, page, None)
            .await
            .expect("list")
            .items
            .len(),
        1
    );
    let other_procedure = s
        .submit(&a.caller, request_with_key(key, new_property(customer.id)))
        .await
        .expect("other procedure");
    assert!(!other_procedure.replayed);
    assert!(other_procedure.outcome.is_ok());

    // Refusals are recorded and replayed, even once the request would now succeed.
    let stale_key = Uuid::new_v4();
    let stale = CustomerCommand::Update(CustomerUpdate {
        customer_id: customer.id,
        expected_version: Some(2),
        name: Some(name("Renamed")),
        email: Patch::Keep,
        phone: Patch::Keep,
    });
    let refused_once = s
        .submit(&a.caller, request_with_key(stale_key, stale.clone()))
        .await
        .expect("submit");
    assert!(!refused_once.replayed);
    assert_eq!(failure_of(&refused_once).code, "VERSION_CONFLICT");
    let _: Customer = ok(
        s,
        &a.caller,
        CustomerCommand::Update(CustomerUpdate {
            customer_id: customer.id,
            expected_version: Some(1),
            name: None,
            email: Patch::Keep,
            phone: Patch::Keep,
        }),
    )
    .await;
    let refused_again = s
        .submit(&a.caller, request_with_key(stale_key, stale))
        .await
        .expect("submit");
    assert!(refused_again.replayed);
    assert_eq!(refused_again.outcome, refused_once.outcome);
    assert_eq!(
        s.customer_get(&a.caller, customer.id)
            .await
            .expect("get")
            .version,
        2,
        "the refusal was not re-run"
    );

    // The workflow records say the same.
    let summary = s
        .workflow_get(&a.caller, first.workflow_id)
        .await
        .expect("workflow");
    assert_eq!(summary.status, "succeeded");
    assert_eq!(
        (summary.name.as_str(), summary.procedure.as_str()),
        ("customer_v1", "customer/v1/create")
    );
    assert_eq!(
        (summary.idempotency_key, summary.attempts, summary.steps),
        (key, 1, 1)
    );
    assert_eq!(summary.trace_id.as_deref(), Some("trace-1"));
    assert_eq!(summary.executor_id.as_deref(), Some("local"));
    assert!(summary.error.is_none());
    assert!(
        summary
            .completed_at
            .is_some_and(|t| t >= summary.created_at)
    );
    let failed = s
        .workflow_get(&a.caller, refused_once.workflow_id)
        .await
        .expect("workflow");
    assert_eq!(failed.status, "failed");
    assert_eq!(failed.steps, 0, "a refused step journals nothing");
    assert_eq!(
        failed.error.map(|e| e.code),
        Some("VERSION_CONFLICT".to_owned())
    );
    expect_failure(
        s.workflow_get(
            &a.caller,
            engine::workflow_id(a.id(), "customer/v1/create", Uuid::new_v4()),
        )
        .await,
        "NOT_FOUND",
    );
}

async fn concurrent_submits_with_one_key_run_once(fx: Fixture) {
    let a = fx.org("Acme").await;
    let key = Uuid::new_v4();
    let command = new_customer("Raced");
    let mut set = JoinSet::new();
    for _ in 0..32 {
        let services = fx.services.clone();
        let caller = a.caller;
        let request = request_with_key(key, command.clone());
        set.spawn(async move { services.submit(&caller, request).await });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = set.join_next().await {
        outcomes.push(
            joined
                .expect("the task ran")
                .expect("every submission gets the outcome"),
        );
    }
    assert_eq!(outcomes.len(), 32);
    let first = &outcomes[0];
    assert!(
        outcomes
            .iter()
            .all(|o| o.outcome == first.outcome && o.workflow_id == first.workflow_id)
    );
    assert_eq!(
        outcomes.iter().filter(|o| !o.replayed).count(),
        1,
        "exactly one submission ran the workflow"
    );
    let customer: Customer =
        decode_output(first.outcome.as_ref().expect("created")).expect("decodes");

    let page = PageRequest::parse(None, None).expect("page");
    assert_eq!(
        fx.services
            .customer_list(&a.caller, page, None)
            .await
            .expect("list")
            .items,
        vec![customer]
    );
    let feed = whole_feed(&fx.services, &a.caller).await;
    assert_feed_is_clean(&feed);
    assert_eq!(feed.len(), 2, "the organization and one customer");
    let summary = fx
        .services
        .workflow_get(&a.caller, first.workflow_id)
        .await
        .expect("workflow");
    assert_eq!(
        (summary.status.as_str(), summary.attempts, summary.steps),
        ("succeeded", 1, 1)
    );
}

// -------------------------------------------------------------------------------------------------
// The change feed

async fn change_feed_records_every_write_in_order(fx: Fixture) {
    let s = &fx.services;
    let a = fx.org("Acme").await;
    let b = fx.org("Best").await;
    let c = &a.caller;

    let feed = s.changes(c, 0, 10).await.expect("feed");
    assert_eq!(feed.len(), 1);
    assert_eq!(
        (
            feed[0].seq,
            feed[0].entity_kind.as_str(),
            feed[0].entity_id,
            feed[0].version,
            feed[0].operation.as_str()
        ),
        (1, "organization", a.id().as_uuid(), 1, "created")
    );

    // Each write appends one row, naming the aggregate, its new version, the actor and the workflow.
    let mut seq = 1;
    let done = s
        .submit(c, request(new_customer("Ada")))
        .await
        .expect("submit");
    let customer: Customer = decode_output(done.outcome.as_ref().expect("ok")).expect("decode");
    expect_row(
        s,
        &a,
        &mut seq,
        &done,
        "customer",
        customer.id.as_uuid(),
        1,
        "created",
    )
    .await;

    let done = s
        .submit(
            c,
            request(CustomerCommand::Update(CustomerUpdate {
                customer_id: customer.id,
                expected_version: Some(1),
                name: Some(name("Ada B")),
                email: Patch::Keep,
                phone: Patch::Keep,
            })),
        )
        .await
        .expect("submit");
    expect_row(
        s,
        &a,
        &mut seq,
        &done,
        "customer",
        customer.id.as_uuid(),
        2,
        "updated",
    )
    .await;

    let done = s
        .submit(c, request(new_property(customer.id)))
        .await
        .expect("submit");
    let property: Property = decode_output(done.outcome.as_ref().expect("ok")).expect("decode");
    expect_row(
        s,
        &a,
        &mut seq,
        &done,
        "property",
        property.id.as_uuid(),
        1,
        "created",
    )
    .await;

    let done = s
        .submit(c, request(new_technician("Pat", None, &["plumbing"])))
        .await
        .expect("submit");
    let tech: Technician = decode_output(done.outcome.as_ref().expect("ok")).expect("decode");
    expect_row(
        s,
        &a,
        &mut seq,
        &done,
        "technician",
        tech.id.as_uuid(),
        1,
        "created",
    )
    .await;

    let done = s
        .submit(c, request(new_job(customer.id, property.id, "plumbing")))
        .await
        .expect("submit");
    let job: Job = decode_output(done.outcome.as_ref().expect("ok")).expect("decode");
    expect_row(
        s,
        &a,
        &mut seq,
        &done,
        "job",
        job.id.as_uuid(),
        1,
        "created",
    )
    .await;

    // Scheduling needs a compliant organization; getting there writes its own rows.
    ensure_ready(s, c).await;
    seq = whole_feed(s, c).await.last().expect("rows").seq;
    let done = s
        .submit(c, request(schedule(job.id)))
        .await
        .expect("submit");
    expect_row(
        s,
        &a,
        &mut seq,
        &done,
        "job",
        job.id.as_uuid(),
        2,
        "transitioned",
    )
    .await;

    let tech = ready(s, c, &tech).await;
    seq = whole_feed(s, c).await.last().expect("rows").seq;
    let done = s
        .submit(c, request(assign(job.id, tech.id)))
        .await
        .expect("submit");
    expect_row(
        s,
        &a,
        &mut seq,
        &done,
        "job",
        job.id.as_uuid(),
        3,
        "updated",
    )
    .await;

    // A refusal appends nothing.
    let done = s
        .submit(c, request(set_status(job.id, JobStatus::Completed)))
        .await
        .expect("submit");
    assert!(done.outcome.is_err());
    assert!(s.changes(c, seq, 10).await.expect("feed").is_empty());

    let done = s
        .submit(
            c,
            request(OrgCommand::Update(OrgUpdate {
                expected_version: Some(1),
                name: Some(OrgName::parse("Acme Renamed").expect("name")),
                time_zone: None,
                sla: None,
            })),
        )
        .await
        .expect("submit");
    expect_row(
        s,
        &a,
        &mut seq,
        &done,
        "organization",
        a.id().as_uuid(),
        2,
        "updated",
    )
    .await;

    let feed = whole_feed(s, c).await;
    assert_feed_is_clean(&feed);
    // Nine from this test's own writes, seven from making the organization ready for work (two
    // licences added and verified, one policy, one area set, one technician's shifts).
    assert_eq!(feed.len(), 16);
    assert!(
        feed.windows(2).all(|w| w[0].at <= w[1].at),
        "feed times never go back"
    );
    // Paging from the middle, with a small limit.
    let middle = s.changes(c, 3, 2).await.expect("feed");
    assert_eq!(middle.iter().map(|r| r.seq).collect::<Vec<_>>(), [4, 5]);
    assert!(s.changes(c, 16, 10).await.expect("feed").is_empty());
    // B's feed has its own numbering.
    let b_feed = whole_feed(s, &b.caller).await;
    assert_eq!(b_feed.len(), 1);
    assert_eq!((b_feed[0].seq, b_feed[0].entity_id), (1, b.id().as_uuid()));
}

/// Checks that the write `completed` appended exactly one row, the next one, as described.
#[allow(clippy::too_many_arguments)]
async fn expect_row(
    s: &hestami_store::app::Services,
    org: &Org,
    seq: &mut i64,
    completed: &hestami_store::engine::Completed,
    kind: &str,
    id: Uuid,
    version: i64,
    op: &str,
) {
    let rows = s.changes(&org.caller, *seq, 10).await.expect("feed");
    *seq += 1;
    assert_eq!(rows.len(), 1, "one row for {kind} {op}: {rows:?}");
    let row = &rows[0];
    assert_eq!(
        (
            row.seq,
            row.entity_kind.as_str(),
            row.entity_id,
            row.version,
            row.operation.as_str()
        ),
        (*seq, kind, id, version, op)
    );
    assert_eq!(row.actor_user_id, Some(org.user_id.as_uuid()));
    assert_eq!(row.workflow_id, Some(completed.workflow_id.as_uuid()));
}

async fn change_feed_has_no_gaps_under_concurrent_writers(fx: Fixture) {
    const WRITERS: usize = 8;
    const PER_WRITER: usize = 25;
    let a = fx.org("Busy").await;
    let b = fx.org("Also Busy").await;
    let done = Arc::new(AtomicBool::new(false));

    let reader = {
        let services = fx.services.clone();
        let caller = a.caller;
        let done = done.clone();
        tokio::spawn(async move {
            let mut after = 0_i64;
            let mut pages = 0_usize;
            loop {
                // Read the flag first: if the writers were done before this page was read and
                // the page is empty, everything has been seen.
                let finished = done.load(Ordering::SeqCst);
                let page = services
                    .changes(&caller, after, 16)
                    .await
                    .expect("reading the feed");
                let seqs: Vec<i64> = page.iter().map(|c| c.seq).collect();
                let expected: Vec<i64> = (after + 1..).take(page.len()).collect();
                assert_eq!(
                    seqs, expected,
                    "the reader observed a gap after seq {after}"
                );
                if let Some(last) = page.last() {
                    after = last.seq;
                    pages += 1;
                } else if finished {
                    return (after, pages);
                } else {
                    tokio::task::yield_now().await;
                }
            }
        })
    };

    let mut writers = JoinSet::new();
    for w in 0..WRITERS + 2 {
        let services = fx.services.clone();
        let (caller, count) = if w < WRITERS {
            (a.caller, PER_WRITER)
        } else {
            (b.caller, 10)
        };
        writers.spawn(async move {
            for i in 0..count {
                let _: Customer = ok(
                    &services,
                    &caller,
                    new_customer(&format!("Writer {w} customer {i}")),
                )
                .await;
            }
        });
    }
    while let Some(joined) = writers.join_next().await {
        joined.expect("a writer failed");
    }
    done.store(true, Ordering::SeqCst);
    let (last_seen, pages) = reader.await.expect("the reader failed");

    let total = i64::try_from(WRITERS * PER_WRITER).expect("small") + 1;
    assert_eq!(last_seen, total, "the reader saw every row");
    assert!(pages >= 2, "the reader paged while writers wrote");
    let feed = whole_feed(&fx.services, &a.caller).await;
    assert_feed_is_clean(&feed);
    assert_eq!(feed.len(), usize::try_from(total).expect("small"));
    assert!(
        feed[1..]
            .iter()
            .all(|c| c.entity_kind == "customer" && c.operation == "created")
    );
    let b_feed = whole_feed(&fx.services, &b.caller).await;
    assert_feed_is_clean(&b_feed);
    assert_eq!(
        b_feed.len(),
        1 + 2 * 10,
        "B: its creation and two writers of 10"
    );
}

// -------------------------------------------------------------------------------------------------
// Organization settings

async fn organization_settings_round_trip(fx: Fixture) {
    let s = &fx.services;
    let a = fx.org("Acme").await;
    let org: Organization = s.org_get(&a.caller).await.expect("org");
    assert_eq!(
        (org.id, org.version, org.name.as_str()),
        (a.id(), 1, "Acme")
    );
    assert_eq!(
        org.time_zone,
        TimeZone::parse("America/Chicago").expect("zone")
    );
    assert_eq!(org.currency.code(), "USD");

    let updated: Organization = ok(
        s,
        &a.caller,
        OrgCommand::Update(OrgUpdate {
            expected_version: Some(1),
            name: Some(OrgName::parse("Acme Plumbing & Heating").expect("name")),
            time_zone: Some(TimeZone::parse("Europe/Berlin").expect("zone")),
            sla: Some(hestami_core::org::SlaWindows::parse(60, 600, 6000).expect("sla")),
        }),
    )
    .await;
    assert_eq!(updated.version, 2);
    assert_eq!(updated.name.as_str(), "Acme Plumbing & Heating");
    assert_eq!(updated.time_zone.name(), "Europe/Berlin");
    assert_eq!(updated.sla.routine_minutes, 6000);
    assert_eq!(
        (updated.created_at, updated.currency),
        (org.created_at, org.currency)
    );
    assert_eq!(s.org_get(&a.caller).await.expect("org"), updated);

    let stale = refused(
        s,
        &a.caller,
        OrgCommand::Update(OrgUpdate {
            expected_version: Some(1),
            name: None,
            time_zone: None,
            sla: None,
        }),
    )
    .await;
    assert_eq!(stale.code, "VERSION_CONFLICT");
    assert_eq!(stale.details, Some(json!({ "currentVersion": 2 })));

    // New jobs take the new SLA windows.
    let job = requested_job(s, &a.caller).await;
    assert_eq!(
        job.sla_deadline,
        job.created_at + ChronoDuration::minutes(600)
    );
}

// -------------------------------------------------------------------------------------------------
// Concurrent writers on one aggregate

async fn concurrent_writers_never_lose_an_update(fx: Fixture) {
    const RACERS: usize = 10;
    let a = fx.org("Acme").await;
    let c = a.caller;
    let customer: Customer = ok(&fx.services, &c, new_customer("Contended")).await;

    // Racing updates that all expect version 1: exactly one wins, the others see version 2.
    let mut set = JoinSet::new();
    for i in 0..RACERS {
        let services = fx.services.clone();
        let command = CustomerCommand::Update(CustomerUpdate {
            customer_id: customer.id,
            expected_version: Some(1),
            name: Some(name(&format!("Racer {i}"))),
            email: Patch::Keep,
            phone: Patch::Keep,
        });
        set.spawn(async move { submit(&services, &c, command).await });
    }
    let mut wins = 0;
    while let Some(joined) = set.join_next().await {
        match joined.expect("task") {
            Ok(_) => wins += 1,
            Err(failure) => {
                assert_eq!(failure.code, "VERSION_CONFLICT");
                assert_eq!(failure.details, Some(json!({ "currentVersion": 2 })));
            }
        }
    }
    assert_eq!(wins, 1, "exactly one of the racing updates wins");
    assert_eq!(
        fx.services
            .customer_get(&c, customer.id)
            .await
            .expect("get")
            .version,
        2
    );

    // Racing updates without an expected version all apply, one version each.
    let mut set = JoinSet::new();
    for i in 0..RACERS {
        let services = fx.services.clone();
        let command = CustomerCommand::Update(CustomerUpdate {
            customer_id: customer.id,
            expected_version: None,
            name: Some(name(&format!("Writer {i}"))),
            email: Patch::Keep,
            phone: Patch::Keep,
        });
        set.spawn(async move { ok::<Customer, _>(&services, &c, command).await.version });
    }
    let mut versions = Vec::new();
    while let Some(joined) = set.join_next().await {
        versions.push(joined.expect("task"));
    }
    versions.sort_unstable();
    let last = i64::try_from(RACERS).expect("small") + 2;
    assert_eq!(
        versions,
        (3..=last).collect::<Vec<_>>(),
        "no update was lost"
    );
    assert_eq!(
        fx.services
            .customer_get(&c, customer.id)
            .await
            .expect("get")
            .version,
        last
    );

    // Racing transitions of one job: one cancel wins, the others find it cancelled.
    let job = requested_job(&fx.services, &c).await;
    let mut set = JoinSet::new();
    for _ in 0..RACERS {
        let services = fx.services.clone();
        set.spawn(
            async move { submit(&services, &c, set_status(job.id, JobStatus::Cancelled)).await },
        );
    }
    let mut cancels = 0;
    while let Some(joined) = set.join_next().await {
        match joined.expect("task") {
            Ok(_) => cancels += 1,
            Err(failure) => assert_eq!(failure.code, "JOB_INVALID_TRANSITION"),
        }
    }
    assert_eq!(cancels, 1);
    let timeline = fx
        .services
        .job_timeline(&c, job.id)
        .await
        .expect("timeline");
    assert_eq!(timeline.len(), 2, "one creation, one cancellation");
    assert_feed_is_clean(&whole_feed(&fx.services, &c).await);
}

async fn the_expiry_scan_runs_once_a_day_across_processes(fx: Fixture) {
    use hestami_core::compliance::{InsuranceKind, Jurisdiction, License};
    use hestami_store::app::contractor::{ContractorCommand, NewInsurance, NewLicense};
    use hestami_store::app::workforce::{NewCertification, WorkforceCommand};

    // Noon UTC (morning in Chicago), on a fixed date.
    let start = Utc
        .with_ymd_and_hms(2031, 5, 1, 12, 0, 0)
        .single()
        .expect("valid");
    let clock = Arc::new(ManualClock(Mutex::new(start)));
    let connect_as_process = || async {
        let store = Store::connect(
            &fx.db.app_url,
            StoreOptions {
                max_connections: 4,
                clock: clock.clone(),
            },
        )
        .await
        .expect("connect");
        Services::new(store, EngineConfig::default())
    };
    let first = connect_as_process().await;
    let second = connect_as_process().await;
    let a = create_org(first.store(), "Scanned", "scanned-owner@example.com").await;
    let c = &a.caller;
    let today = start.date_naive();
    // A licence lapsing in 30 days, a policy that lapsed yesterday, a certification lapsing in 7.
    let license: License = ok(
        &first,
        c,
        ContractorCommand::AddLicense(NewLicense {
            trade: trade("plumbing"),
            jurisdiction: Jurisdiction::parse(
                CountryCode::parse("US").expect("US"),
                Some("IL"),
                None,
            )
            .expect("valid"),
            number: name("PL-1"),
            issued_on: None,
            expires_on: today + ChronoDuration::days(30),
            document_ref: None,
        }),
    )
    .await;
    let _: serde_json::Value = ok(
        &first,
        c,
        ContractorCommand::AddInsurance(NewInsurance {
            kind: InsuranceKind::GeneralLiability,
            carrier: name("Acme"),
            policy_number: name("GL-9"),
            per_occurrence_limit: 1_000_000.into(),
            aggregate_limit: 2_000_000.into(),
            effective_on: today - ChronoDuration::days(365),
            expires_on: today - ChronoDuration::days(1),
            certificate_ref: None,
            additional_insureds: Vec::new(),
        }),
    )
    .await;
    let tech: Technician = ok(&first, c, new_technician("Cert", None, &["gas_fitting"])).await;
    let _: serde_json::Value = ok(
        &first,
        c,
        WorkforceCommand::AddCertification {
            technician_id: tech.id,
            certification: NewCertification {
                name: name("Gas Safe"),
                issuer: name("State Board"),
                number: None,
                expires_on: Some(today + ChronoDuration::days(7)),
                trades: vec![trade("gas_fitting")],
            },
        },
    )
    .await;

    // Timers for organizations that predate them are created; doing it again changes nothing.
    first.ensure_timers().await.expect("ensure timers");
    second.ensure_timers().await.expect("ensure timers again");

    // Two processes fire at the same moment: the day is scanned once.
    let (x, y) = tokio::join!(first.fire_due_timers(), second.fire_due_timers());
    let fired = x.expect("first pass") + y.expect("second pass");
    assert!(fired >= 1, "the organization was due");
    let outbox = first.outbox(c).await.expect("outbox");
    let days: Vec<i64> = outbox
        .iter()
        .map(|(_, p)| p["daysLeft"].as_i64().expect("days"))
        .collect();
    assert_eq!(
        days.len(),
        2,
        "one reminder at 30 days, one at 7: {outbox:?}"
    );
    assert!(days.contains(&30) && days.contains(&7));
    let lapsed_rows = whole_feed(&first, c)
        .await
        .into_iter()
        .filter(|r| r.entity_kind == "insurance" && r.operation == "updated")
        .count();
    assert_eq!(lapsed_rows, 1, "the lapsed policy was marked once");

    // Not due again today; a crash that lost the timer's advance repeats nothing either.
    assert_eq!(first.fire_due_timers().await.expect("pass"), 0);
    let raw = sqlx_reset_timer(&fx, a.id()).await;
    assert_eq!(raw, 1);
    assert_eq!(second.fire_due_timers().await.expect("pass"), 1);
    assert_eq!(
        first.outbox(c).await.expect("outbox").len(),
        2,
        "the recorded scan was replayed"
    );
    let scans = first
        .workflow_list(
            c,
            None,
            Some("compliance_expiry_scan_v1".into()),
            PageRequest::parse(None, None).expect("page"),
        )
        .await
        .expect("list");
    assert_eq!(scans.items.len(), 1, "one scan workflow for the day");

    // Tomorrow morning it runs again, and 23 days later the 7-day reminder for the licence.
    // (Each morning every daily timer fires: the compliance scan, the invoice overdue scan and
    // the inventory reorder pass.)
    let daily = hestami_store::app::timers::DAILY.len();
    clock.advance(ChronoDuration::days(1));
    assert_eq!(first.fire_due_timers().await.expect("pass"), daily);
    clock.advance(ChronoDuration::days(22));
    assert_eq!(first.fire_due_timers().await.expect("pass"), daily);
    let reminders = first.outbox(c).await.expect("outbox");
    assert!(
        reminders
            .iter()
            .any(|(_, p)| p["itemId"] == json!(license.id) && p["daysLeft"] == 7),
        "{reminders:?}"
    );
}

/// Puts an organization's scan timer back to "due now", as a crash between starting the scan
/// and moving the timer would leave it.
async fn sqlx_reset_timer(fx: &Fixture, org: OrganizationId) -> u64 {
    let url = &fx.db.owner_url;
    let when = Utc
        .with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .expect("valid");
    match fx.kind {
        Kind::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.expect("connect");
            let n = sqlx::query(
                "UPDATE timers SET due_at = $1 WHERE organization_id = $2 AND name = 'compliance_expiry_scan'",
            )
                .bind(when.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                .bind(org.as_uuid())
                .execute(&pool)
                .await
                .expect("reset")
                .rows_affected();
            pool.close().await;
            n
        }
        Kind::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.expect("connect");
            let n = sqlx::query(
                "UPDATE timers SET due_at = $1 WHERE organization_id = $2 AND name = 'compliance_expiry_scan'",
            )
                .bind(when)
                .bind(org.as_uuid())
                .execute(&pool)
                .await
                .expect("reset")
                .rows_affected();
            pool.close().await;
            n
        }
    }
}
