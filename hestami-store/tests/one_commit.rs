//! The one-commit path: a new request's claim, its step and its outcome commit together. These
//! are the cases that path creates — a duplicate arriving while the first holds the uncommitted
//! row, a crash before the commit (nothing is left, the retry runs afresh) and a crash between
//! the commit and the answer (the retry replays) — on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use hestami_core::customer::Customer;
use hestami_core::ids::OrganizationId;
use hestami_store::app::{PageRequest, Services, decode_output, register_all};
use hestami_store::engine::{
    self, CommitFault, CommitPoint, Engine, EngineConfig, Start, WorkflowCtx,
};
use hestami_store::{Failure, FailureKind, StoreError};

use common::*;

on_every_backend!(
    a_duplicate_waits_for_the_open_claim_then_replays,
    a_refused_first_run_leaves_the_key_to_the_duplicate,
    a_crash_before_the_commit_leaves_nothing,
    a_crash_after_the_commit_is_replayed,
);

const HOLD: &str = "hold_test_v1";

/// A one-step workflow whose first run stops inside its step until the test lets it go on, and
/// which refuses when its input says so.
struct Gate {
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
    runs: AtomicUsize,
}

fn gate_engine(store: hestami_store::Store, gate: Arc<Gate>) -> Engine {
    Engine::builder(store, EngineConfig::default())
        .register(
            HOLD,
            move |mut ctx: WorkflowCtx, input: serde_json::Value| {
                let gate = gate.clone();
                async move {
                    let refuse = input["refuse"].as_bool().unwrap();
                    let g = gate.clone();
                    let n: usize = ctx
                        .step("held", move |_tx| {
                            Box::pin(async move {
                                let n = g.runs.fetch_add(1, Ordering::SeqCst) + 1;
                                if n == 1 {
                                    g.entered.notify_one();
                                    g.release.notified().await;
                                }
                                if refuse {
                                    return Err(Failure::new(
                                        FailureKind::Validation,
                                        "REFUSED",
                                        "refused on purpose",
                                    )
                                    .into());
                                }
                                Ok(n)
                            })
                        })
                        .await?;
                    Ok(json!({ "run": n }))
                }
            },
        )
        .build()
}

fn hold_start(organization_id: OrganizationId, key: Uuid, refuse: bool) -> Start {
    let input = json!({ "refuse": refuse });
    Start {
        organization_id,
        actor: None,
        procedure: "test/v1/hold".into(),
        workflow: HOLD,
        idempotency_key: key,
        fingerprint: engine::fingerprint(&input),
        input,
        trace_id: None,
        wait: Duration::from_secs(20),
    }
}

fn gate() -> Arc<Gate> {
    Arc::new(Gate {
        entered: tokio::sync::Notify::new(),
        release: tokio::sync::Notify::new(),
        runs: AtomicUsize::new(0),
    })
}

async fn a_duplicate_waits_for_the_open_claim_then_replays(fx: Fixture) {
    let org = fx.org("Held").await;
    let gate = gate();
    let first = gate_engine(fx.fresh_store().await, gate.clone());
    let second = gate_engine(fx.fresh_store().await, gate.clone());
    let key = Uuid::new_v4();

    let a = tokio::spawn({
        let first = first.clone();
        let start = hold_start(org.id(), key, false);
        async move { first.run(start).await }
    });
    gate.entered.notified().await;
    // The first run holds its claim, uncommitted, inside its step. A duplicate from another
    // process waits for it (on the row on PostgreSQL, on the write lock on SQLite).
    let b = tokio::spawn({
        let second = second.clone();
        let start = hold_start(org.id(), key, false);
        async move { second.run(start).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!b.is_finished(), "the duplicate waits for the open claim");
    // Nothing of the first run is visible yet.
    let id = engine::workflow_id(org.id(), "test/v1/hold", key);
    assert!(matches!(
        fx.services.workflow_get(&org.caller, id).await,
        Err(StoreError::Failure(f)) if f.code == "NOT_FOUND"
    ));
    gate.release.notify_one();

    let a = a.await.unwrap().expect("the first run");
    let b = b.await.unwrap().expect("the duplicate");
    assert!(!a.replayed);
    assert!(b.replayed, "the duplicate got the recorded outcome");
    assert_eq!(a.outcome, b.outcome);
    assert_eq!(a.outcome, Ok(json!({ "run": 1 }).to_string()));
    assert_eq!(gate.runs.load(Ordering::SeqCst), 1, "the step ran once");

    // The same key with another request is refused, as before.
    assert!(matches!(
        first.run(hold_start(org.id(), key, true)).await,
        Err(StoreError::IdempotencyKeyReused)
    ));
    let summary = fx.services.workflow_get(&org.caller, id).await.unwrap();
    assert_eq!(
        (summary.status.as_str(), summary.steps, summary.attempts),
        ("succeeded", 1, 1)
    );
}

async fn a_refused_first_run_leaves_the_key_to_the_duplicate(fx: Fixture) {
    let org = fx.org("Refused").await;
    let gate = gate();
    let first = gate_engine(fx.fresh_store().await, gate.clone());
    let second = gate_engine(fx.fresh_store().await, gate.clone());
    let key = Uuid::new_v4();

    let a = tokio::spawn({
        let start = hold_start(org.id(), key, true);
        async move { first.run(start).await }
    });
    gate.entered.notified().await;
    let b = tokio::spawn({
        let start = hold_start(org.id(), key, true);
        async move { second.run(start).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    gate.release.notify_one();

    // The first run's refusal rolls its claim back; the duplicate then claims the key itself and
    // gets its own answer. Neither is recorded: the key stays free for a corrected request.
    for run in [a.await.unwrap(), b.await.unwrap()] {
        let completed = run.expect("an answer");
        assert!(!completed.replayed);
        assert_eq!(completed.outcome.unwrap_err().code, "REFUSED");
    }
    assert_eq!(gate.runs.load(Ordering::SeqCst), 2);
    let id = engine::workflow_id(org.id(), "test/v1/hold", key);
    assert!(matches!(
        fx.services.workflow_get(&org.caller, id).await,
        Err(StoreError::Failure(f)) if f.code == "NOT_FOUND"
    ));
}

/// Services whose outcome commits crash once at `point`.
async fn crashing_at(fx: &Fixture, point: CommitPoint) -> Services {
    let fired = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let fault: CommitFault = Arc::new(move |_, at| {
        seen.lock().unwrap().push(at);
        at == point && !fired.swap(true, Ordering::SeqCst)
    });
    let engine = register_all(Engine::builder(
        fx.fresh_store().await,
        EngineConfig::default(),
    ))
    .commit_fault(fault)
    .build();
    Services::from_engine(engine)
}

async fn customers(fx: &Fixture, org: &Org) -> Vec<Customer> {
    fx.services
        .customer_list(&org.caller, PageRequest::parse(None, None).unwrap(), None)
        .await
        .unwrap()
        .items
}

async fn a_crash_before_the_commit_leaves_nothing(fx: Fixture) {
    let org = fx.org("Before").await;
    let req = request(new_customer("Ada"));
    let crashing = crashing_at(&fx, CommitPoint::BeforeCommit).await;
    assert!(matches!(
        crashing.submit(&org.caller, req.clone()).await,
        Err(StoreError::InjectedCrash)
    ));
    drop(crashing);
    // The claim, the customer, its change-feed row and the outcome were one transaction, rolled
    // back: no workflow, no customer, nothing for recovery.
    let id = engine::workflow_id(org.id(), "customer/v1/create", req.idempotency_key);
    assert!(matches!(
        fx.services.workflow_get(&org.caller, id).await,
        Err(StoreError::Failure(f)) if f.code == "NOT_FOUND"
    ));
    assert!(customers(&fx, &org).await.is_empty());
    let restarted = fx.restart(EngineConfig::default()).await;
    assert_eq!(restarted.engine().recover(true).await.unwrap(), 0);

    // The client's retry runs it afresh, once.
    let retried = restarted.submit(&org.caller, req.clone()).await.unwrap();
    assert!(!retried.replayed);
    let customer: Customer = decode_output(retried.outcome.as_ref().unwrap()).unwrap();
    assert_eq!(customers(&fx, &org).await, vec![customer]);
    let again = restarted.submit(&org.caller, req).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.outcome, retried.outcome);
}

async fn a_crash_after_the_commit_is_replayed(fx: Fixture) {
    let org = fx.org("After").await;
    let req = request(new_customer("Grace"));
    let crashing = crashing_at(&fx, CommitPoint::AfterCommit).await;
    assert!(matches!(
        crashing.submit(&org.caller, req.clone()).await,
        Err(StoreError::InjectedCrash)
    ));
    drop(crashing);
    // Committed before the answer was lost: recorded, finished, nothing left to recover.
    let id = engine::workflow_id(org.id(), "customer/v1/create", req.idempotency_key);
    let summary = fx.services.workflow_get(&org.caller, id).await.unwrap();
    assert_eq!(
        (summary.status.as_str(), summary.steps, summary.attempts),
        ("succeeded", 1, 1)
    );
    let restarted = fx.restart(EngineConfig::default()).await;
    assert_eq!(restarted.engine().recover(true).await.unwrap(), 0);

    // The client's retry gets the recorded answer; the customer exists once.
    let retried = restarted.submit(&org.caller, req).await.unwrap();
    assert!(retried.replayed);
    let customer: Customer = decode_output(retried.outcome.as_ref().unwrap()).unwrap();
    assert_eq!(customers(&fx, &org).await, vec![customer]);
}
