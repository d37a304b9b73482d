//! Workflow simulation: crash at every step boundary, recover in a fresh process, and check that
//! the effects happened exactly once (transactional steps) or at least once with a stable key
//! (external steps). Runs on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use hestami_core::ids::{JobId, OrganizationId};
use hestami_core::job::{self as core_job, Job, JobChange, JobStatus};
use hestami_store::app::job::{JobFilter, JobLifecycleCommand, RaiseCallback};
use hestami_store::app::workflow::WorkflowCommand;
use hestami_store::app::{Command, PageRequest, Request, Services, decode_output, register_all};
use hestami_store::engine::{
    self, Completed, Engine, EngineConfig, FaultHook, Start, WorkflowCtx, WorkflowSummary,
};
use hestami_store::{Store, StoreError};

use common::*;

on_every_backend!(
    test_workflow_crash_at_every_step_boundary,
    callback_crash_at_every_step_boundary,
    live_leases_are_respected_between_executors,
    aborted_submission_is_recovered_exactly_once,
    timed_out_submissions_never_duplicate,
    every_procedure_recovers_after_a_crash,
    internal_errors_are_retried_then_recorded,
    operators_cancel_and_resume_workflows,
    a_run_in_progress_stops_when_cancelled,
    optimization_recovers_at_every_step_boundary,
);

/// A fault hook that crashes once, right after step `k` commits.
fn crash_once_at(k: i64) -> FaultHook {
    let fired = Arc::new(AtomicBool::new(false));
    Arc::new(move |_, index, _| index == k && !fired.swap(true, Ordering::SeqCst))
}

fn config(executor_id: &str, lease: Duration, fault: Option<FaultHook>) -> EngineConfig {
    EngineConfig {
        executor_id: executor_id.into(),
        lease,
        fault,
    }
}

const LONG_LEASE: Duration = Duration::from_secs(30);

// -------------------------------------------------------------------------------------------------
// A test workflow: a transactional step, an external call, a transactional step.

const TEST_WORKFLOW: &str = "crash_test_v1";
const TEST_PROCEDURE: &str = "test/v1/crash";
const STEPS: [&str; 3] = ["double", "notify", "increment"];

/// Counts how often each step body of each run executed, and the keys the external step got.
#[derive(Default)]
struct Probe {
    runs: Mutex<HashMap<(u64, &'static str), usize>>,
    keys: Mutex<HashMap<u64, Vec<String>>>,
    /// Runs whose external call "dies" once after reaching the other party, before its answer
    /// is journalled.
    die_after_call: Mutex<Vec<u64>>,
}

impl Probe {
    fn ran(&self, run: u64, step: &'static str) {
        *self
            .runs
            .lock()
            .expect("probe")
            .entry((run, step))
            .or_default() += 1;
    }

    fn count(&self, run: u64, step: &str) -> usize {
        self.runs
            .lock()
            .expect("probe")
            .iter()
            .filter(|((r, s), _)| *r == run && *s == step)
            .map(|(_, n)| *n)
            .sum()
    }

    fn counts(&self, run: u64) -> [usize; 3] {
        STEPS.map(|step| self.count(run, step))
    }
}

fn test_engine(store: Store, config: EngineConfig, probe: Arc<Probe>) -> Engine {
    register_all(Engine::builder(store, config))
        .register(TEST_WORKFLOW, move |mut ctx: WorkflowCtx, input: serde_json::Value| {
            let probe = probe.clone();
            async move {
                let run = input["run"].as_u64().expect("run");
                let n = input["n"].as_i64().expect("n");
                let p = probe.clone();
                let doubled: i64 = ctx
                    .step("double", move |_tx| {
                        Box::pin(async move {
                            p.ran(run, "double");
                            Ok(n * 2)
                        })
                    })
                    .await?;
                let p = probe.clone();
                let receipt: String = ctx
                    .external("notify", move |key| async move {
                        p.ran(run, "notify");
                        p.keys.lock().expect("probe").entry(run).or_default().push(key);
                        let mut dying = p.die_after_call.lock().expect("probe");
                        if let Some(i) = dying.iter().position(|r| *r == run) {
                            dying.remove(i);
                            return Err(StoreError::InjectedCrash);
                        }
                        Ok(format!("sent {doubled}"))
                    })
                    .await?;
                let p = probe.clone();
                let incremented: i64 = ctx
                    .step("increment", move |_tx| {
                        Box::pin(async move {
                            p.ran(run, "increment");
                            Ok(doubled + 1)
                        })
                    })
                    .await?;
                Ok(json!({ "doubled": doubled, "receipt": receipt, "incremented": incremented }))
            }
        })
        .build()
}

fn test_start(organization_id: OrganizationId, run: u64) -> Start {
    let input = json!({ "run": run, "n": 21 });
    Start {
        organization_id,
        actor: None,
        procedure: TEST_PROCEDURE.into(),
        workflow: TEST_WORKFLOW,
        idempotency_key: Uuid::from_u128(u128::from(run)),
        fingerprint: engine::fingerprint(&input),
        input,
        trace_id: None,
        wait: Duration::from_secs(10),
    }
}

async fn test_workflow_crash_at_every_step_boundary(fx: Fixture) {
    let org = fx.org("Crashy").await;
    let probe = Arc::new(Probe::default());

    // Uninterrupted, the hook sees every step boundary, in order, with its name.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recording: FaultHook = {
        let seen = seen.clone();
        Arc::new(move |_, index, name: &str| {
            seen.lock().expect("seen").push((index, name.to_owned()));
            false
        })
    };
    let baseline = test_engine(
        fx.fresh_store().await,
        config("base", LONG_LEASE, Some(recording)),
        probe.clone(),
    );
    let expected = baseline
        .run(test_start(org.id(), 0))
        .await
        .expect("uninterrupted run");
    assert!(!expected.replayed);
    let expected_output = expected.outcome.clone().expect("succeeded");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&expected_output).expect("json"),
        json!({ "doubled": 42, "receipt": "sent 42", "incremented": 43 })
    );
    assert_eq!(
        *seen.lock().expect("seen"),
        vec![
            (0, "double".into()),
            (1, "notify".into()),
            (2, "increment".into())
        ]
    );
    assert_eq!(probe.counts(0), [1, 1, 1]);

    for k in 0..3_u64 {
        let run = k + 1;
        let crashing = test_engine(
            fx.fresh_store().await,
            config(
                "worker",
                LONG_LEASE,
                Some(crash_once_at(i64::try_from(k).expect("small"))),
            ),
            probe.clone(),
        );
        match crashing.run(test_start(org.id(), run)).await {
            Err(StoreError::InjectedCrash) => {}
            other => panic!("expected a crash after step {k}, got {other:?}"),
        }
        let ran_before_crash: Vec<usize> = (0..3).map(|i| usize::from(i <= k)).collect();
        assert_eq!(
            probe.counts(run).to_vec(),
            ran_before_crash,
            "steps up to {k} ran, none after"
        );
        let id = engine::workflow_id(org.id(), TEST_PROCEDURE, Uuid::from_u128(u128::from(run)));
        let pending = fx
            .services
            .workflow_get(&org.caller, id)
            .await
            .expect("workflow");
        assert_eq!(
            (pending.status.as_str(), pending.steps, pending.attempts),
            ("pending", i64::try_from(k).expect("small") + 1, 1)
        );
        drop(crashing);

        // A new process with the same executor id resumes it at start-up.
        let restarted = test_engine(
            fx.fresh_store().await,
            config("worker", LONG_LEASE, None),
            probe.clone(),
        );
        assert_eq!(restarted.recover(true).await.expect("recover"), 1);
        assert_eq!(
            probe.counts(run),
            [1, 1, 1],
            "crash after step {k}: every step ran exactly once"
        );
        let replay = restarted
            .run(test_start(org.id(), run))
            .await
            .expect("replay");
        assert!(replay.replayed);
        assert_eq!(
            replay.outcome,
            Ok(expected_output.clone()),
            "the outcome is the uninterrupted one"
        );
        let done = fx
            .services
            .workflow_get(&org.caller, id)
            .await
            .expect("workflow");
        assert_eq!(
            (done.status.as_str(), done.steps, done.attempts),
            ("succeeded", 3, 2)
        );
        assert_eq!(
            restarted.recover(true).await.expect("recover"),
            0,
            "nothing is left to recover"
        );
        assert_eq!(
            probe.keys.lock().expect("probe")[&run],
            vec![format!("{id}-1")]
        );
    }

    // Dying after the external call reached the other party but before its answer was
    // journalled: the call is made again, with the same idempotency key (at least once).
    let run = 10;
    probe.die_after_call.lock().expect("probe").push(run);
    let crashing = test_engine(
        fx.fresh_store().await,
        config("worker", LONG_LEASE, None),
        probe.clone(),
    );
    assert!(matches!(
        crashing.run(test_start(org.id(), run)).await,
        Err(StoreError::InjectedCrash)
    ));
    assert_eq!(probe.counts(run), [1, 1, 0]);
    let restarted = test_engine(
        fx.fresh_store().await,
        config("worker", LONG_LEASE, None),
        probe.clone(),
    );
    assert_eq!(restarted.recover(true).await.expect("recover"), 1);
    assert_eq!(
        probe.counts(run),
        [1, 2, 1],
        "transactional steps once, the external call at most twice"
    );
    let keys = probe.keys.lock().expect("probe")[&run].clone();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        keys[0], keys[1],
        "the retried call carries the same idempotency key"
    );
    let replay = restarted
        .run(test_start(org.id(), run))
        .await
        .expect("replay");
    assert_eq!(replay.outcome, Ok(expected_output.clone()));

    // Crashing again while recovering: the second recovery resumes after the last journalled step.
    let run = 11;
    let first = test_engine(
        fx.fresh_store().await,
        config("worker", LONG_LEASE, Some(crash_once_at(0))),
        probe.clone(),
    );
    assert!(matches!(
        first.run(test_start(org.id(), run)).await,
        Err(StoreError::InjectedCrash)
    ));
    let second = test_engine(
        fx.fresh_store().await,
        config("worker", LONG_LEASE, Some(crash_once_at(1))),
        probe.clone(),
    );
    let recovered = second.recover(true).await.expect("recover");
    assert!(recovered >= 1);
    let third = test_engine(
        fx.fresh_store().await,
        config("worker", LONG_LEASE, None),
        probe.clone(),
    );
    third.recover(true).await.expect("recover");
    assert_eq!(probe.counts(run), [1, 1, 1]);
    let replay = third.run(test_start(org.id(), run)).await.expect("replay");
    assert!(replay.replayed);
    assert_eq!(replay.outcome, Ok(expected_output));
}

// -------------------------------------------------------------------------------------------------
// The real two-step workflow: job/v1/callback (insert_callback_job, link_callback).

fn callback(job_id: JobId) -> JobLifecycleCommand {
    JobLifecycleCommand::Callback(RaiseCallback {
        job_id,
        summary: None,
        description: None,
        priority: None,
        reason: Some(hestami_core::text::Reason::parse("Still dripping").expect("reason")),
    })
}

/// What an uninterrupted callback produces, without ids and times.
#[derive(Debug, PartialEq)]
struct CallbackShape {
    callback: serde_json::Value,
    links_original: bool,
    original_status: JobStatus,
    original_version: i64,
    original_event_kinds: Vec<String>,
}

fn strip(job: &Job) -> serde_json::Value {
    let mut value = serde_json::to_value(job).expect("json");
    let object = value.as_object_mut().expect("object");
    for field in [
        "id",
        "customerId",
        "propertyId",
        "callbackOf",
        "slaDeadline",
        "createdAt",
        "updatedAt",
    ] {
        object.remove(field);
    }
    value
}

async fn callbacks_of(
    s: &Services,
    fx_caller: &hestami_store::app::Caller,
    original: JobId,
) -> Vec<Job> {
    let mut found = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = PageRequest::parse(Some(100), cursor.as_deref()).expect("page");
        let result = s
            .job_list(fx_caller, JobFilter::default(), page)
            .await
            .expect("list");
        found.extend(
            result
                .items
                .into_iter()
                .filter(|j| j.callback_of == Some(original)),
        );
        cursor = result.next_cursor;
        if cursor.is_none() {
            return found;
        }
    }
}

/// Checks the callback raised for `original` happened exactly once, and returns its shape.
async fn check_exactly_once(
    s: &Services,
    org: &Org,
    original: &Job,
    completed: &Completed,
) -> CallbackShape {
    let c = &org.caller;
    let cb: Job = decode_output(completed.outcome.as_ref().expect("the callback succeeded"))
        .expect("decodes");
    assert_eq!(
        s.job_get(c, cb.id).await.expect("get"),
        cb,
        "the recorded outcome is the stored job"
    );
    let callbacks = callbacks_of(s, c, original.id).await;
    assert_eq!(
        callbacks.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![cb.id],
        "exactly one callback job"
    );
    let timeline = s.job_timeline(c, original.id).await.expect("timeline");
    let raised: Vec<_> = timeline
        .iter()
        .filter(|e| matches!(e.change, JobChange::CallbackRaised { .. }))
        .collect();
    assert_eq!(raised.len(), 1, "exactly one callback_raised event");
    assert_eq!(
        raised[0].change,
        JobChange::CallbackRaised {
            callback_job_id: cb.id
        }
    );
    let stored = s.job_get(c, original.id).await.expect("get");
    assert_eq!(
        core_job::replay(original.id, &timeline),
        Some(stored.clone())
    );
    assert_feed_is_clean(&whole_feed(s, c).await);
    CallbackShape {
        callback: strip(&cb),
        links_original: cb.callback_of == Some(original.id)
            && cb.customer_id == original.customer_id
            && cb.property_id == original.property_id,
        original_status: stored.status,
        original_version: stored.version,
        original_event_kinds: timeline
            .iter()
            .map(|e| {
                serde_json::to_value(&e.change).expect("json")["kind"]
                    .as_str()
                    .expect("kind")
                    .to_owned()
            })
            .collect(),
    }
}

async fn callback_crash_at_every_step_boundary(fx: Fixture) {
    let org = fx.org("Callbacks").await;
    let c = &org.caller;
    let s = &fx.services;

    let original = completed_job(s, c).await;
    let uninterrupted = s
        .submit(c, request(callback(original.id)))
        .await
        .expect("callback");
    let expected = check_exactly_once(s, &org, &original, &uninterrupted).await;
    assert!(expected.links_original);
    assert_eq!(
        (expected.original_status, expected.original_version),
        (JobStatus::Completed, 9)
    );

    for k in 0..2 {
        let original = completed_job(s, c).await;
        let req = request(callback(original.id));
        let crashing = fx
            .restart(config("web-1", LONG_LEASE, Some(crash_once_at(k))))
            .await;
        match crashing.submit(c, req.clone()).await {
            Err(StoreError::InjectedCrash) => {}
            other => panic!("expected a crash after step {k}, got {other:?}"),
        }
        drop(crashing);
        // Mid-way: the callback job exists (step 0 committed); the link only after step 1.
        assert_eq!(callbacks_of(s, c, original.id).await.len(), 1);
        let linked = s.job_get(c, original.id).await.expect("get").version == 9;
        assert_eq!(linked, k == 1);

        // A duplicate request waits for the pending workflow, then gives up without running it.
        let impatient = fx.services.clone().with_wait(Duration::from_millis(50));
        match impatient.submit(c, req.clone()).await {
            Err(StoreError::InProgress) => {}
            other => panic!("expected InProgress, got {other:?}"),
        }

        let restarted = fx.restart(config("web-1", LONG_LEASE, None)).await;
        assert_eq!(restarted.engine().recover(true).await.expect("recover"), 1);
        let replay = restarted.submit(c, req.clone()).await.expect("replay");
        assert!(replay.replayed);
        let shape = check_exactly_once(s, &org, &original, &replay).await;
        assert_eq!(
            shape, expected,
            "crash after step {k}: the outcome equals an uninterrupted run"
        );
        let summary = s
            .workflow_get(c, replay.workflow_id)
            .await
            .expect("workflow");
        assert_eq!(
            (summary.status.as_str(), summary.steps, summary.attempts),
            ("succeeded", 2, 2)
        );
        assert_eq!(restarted.engine().recover(true).await.expect("recover"), 0);
    }
}

async fn live_leases_are_respected_between_executors(fx: Fixture) {
    let org = fx.org("Leases").await;
    let c = &org.caller;
    let s = &fx.services;
    let lease = Duration::from_millis(300);
    let original = completed_job(s, c).await;
    let req = request(callback(original.id));

    let a = fx.restart(config("a", lease, Some(crash_once_at(0)))).await;
    assert!(matches!(
        a.submit(c, req.clone()).await,
        Err(StoreError::InjectedCrash)
    ));
    let started = std::time::Instant::now();
    let b = fx.restart(config("b", lease, None)).await;
    assert_eq!(
        b.engine().recover(false).await.expect("recover"),
        0,
        "a's lease is live"
    );
    assert_eq!(
        b.engine().recover(true).await.expect("recover"),
        0,
        "and the workflow is not b's"
    );
    let id = engine::workflow_id(org.id(), "job/v1/callback", req.idempotency_key);
    let pending = s.workflow_get(c, id).await.expect("workflow");
    assert_eq!(
        (pending.status.as_str(), pending.executor_id.as_deref()),
        ("pending", Some("a"))
    );
    assert!(
        started.elapsed() < lease,
        "the checks above ran within the lease"
    );

    // Expiry is the behaviour under test: wait past it.
    tokio::time::sleep(lease * 2).await;
    assert_eq!(
        b.engine().recover(false).await.expect("recover"),
        1,
        "an expired lease is taken over"
    );
    let summary = s.workflow_get(c, id).await.expect("workflow");
    assert_eq!(
        (
            summary.status.as_str(),
            summary.executor_id.as_deref(),
            summary.attempts
        ),
        ("succeeded", Some("b"), 2)
    );
    let replay = b.submit(c, req).await.expect("replay");
    assert!(replay.replayed);
    check_exactly_once(s, &org, &original, &replay).await;
    assert_eq!(
        a.engine().recover(true).await.expect("recover"),
        0,
        "a finds nothing left"
    );
}

async fn aborted_submission_is_recovered_exactly_once(fx: Fixture) {
    let org = fx.org("Aborts").await;
    let c = &org.caller;
    let s = &fx.services;
    let lease = Duration::from_millis(300);

    for k in 0..2 {
        let original = completed_job(s, c).await;
        let req: Request<JobLifecycleCommand> = request(callback(original.id));

        // The hook tells the test that step k committed, and holds the run there until the
        // test has aborted its task: the run is then dropped at its next await.
        let (reached_tx, mut reached_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        let go_rx = Mutex::new(go_rx);
        let hook: FaultHook = Arc::new(move |_, index, _| {
            if index == k {
                reached_tx.send(()).expect("the test listens");
                go_rx
                    .lock()
                    .expect("go")
                    .recv()
                    .expect("the test lets the run go on");
            }
            false
        });
        let a = fx.restart(config("a", lease, Some(hook))).await;
        let task = {
            let (a, caller, req) = (a.clone(), *c, req.clone());
            tokio::spawn(async move { a.submit(&caller, req).await })
        };
        reached_rx
            .recv()
            .await
            .expect("the run reached the step boundary");
        task.abort();
        go_tx.send(()).expect("the hook waits");
        let joined = task.await;
        assert!(
            joined
                .as_ref()
                .is_err_and(tokio::task::JoinError::is_cancelled),
            "the run was dropped mid-way: {joined:?}"
        );

        // Nothing runs the workflow any more, so its lease runs out and another executor takes
        // it over (a dropped run must not keep renewing its lease).
        tokio::time::sleep(lease * 2).await;
        let b = fx.restart(config("b", lease, None)).await;
        let n = b.engine().recover(false).await.expect("recover");
        let id = engine::workflow_id(org.id(), "job/v1/callback", req.idempotency_key);
        let summary = s.workflow_get(c, id).await.expect("the workflow exists");
        // Aborting the caller drops only its wait: the run has a task of its own (issue 9), so
        // it goes on once the hook lets it and records its outcome itself, and recovery has
        // nothing left to take over. What must never happen is a pending workflow that nobody
        // takes over.
        match n {
            1 => {}
            0 => assert_eq!(
                summary.status.as_str(),
                "succeeded",
                "k={k}: recovery took over nothing and the workflow is not done: {summary:?}"
            ),
            _ => panic!("k={k}: recovery took over {n} workflows: {summary:?}"),
        }
        let replay = b.submit(c, req).await.expect("replay");
        assert!(replay.replayed);
        let shape = check_exactly_once(s, &org, &original, &replay).await;
        assert!(shape.links_original);
        assert_eq!(shape.original_version, 9);
    }
}

async fn timed_out_submissions_never_duplicate(fx: Fixture) {
    let org = fx.org("Timeouts").await;
    let c = &org.caller;
    let s = &fx.services;
    let mut finished_in_time = 0;
    for (i, micros) in [0_u64, 100, 300, 1_000, 2_000, 4_000, 8_000, 16_000, 64_000]
        .into_iter()
        .enumerate()
    {
        let original = completed_job(s, c).await;
        let req = request(callback(original.id));
        let executor = format!("t{i}");
        let first = fx.restart(config(&executor, LONG_LEASE, None)).await;
        let timed =
            tokio::time::timeout(Duration::from_micros(micros), first.submit(c, req.clone())).await;
        drop(first);
        // Wherever the request was cut (before it started, mid-step, before its outcome was
        // recorded, or not at all), a restart and a retry of the same request give one callback.
        let restarted = fx.restart(config(&executor, LONG_LEASE, None)).await;
        restarted.engine().recover(true).await.expect("recover");
        let retried = restarted.submit(c, req).await.expect("retry");
        if let Ok(completed) = timed {
            let completed = completed.expect("finished in time");
            finished_in_time += 1;
            assert!(retried.replayed);
            assert_eq!(retried.outcome, completed.outcome);
        }
        check_exactly_once(s, &org, &original, &retried).await;
    }
    assert!(finished_in_time < 9, "at least one request was cut short");
}

/// Crashes `command` right after its first step commits, restarts, recovers, and returns the
/// recorded outcome. Recovery re-reads the command from the journal, so this also checks that
/// every command survives its round trip through the recorded input.
async fn crash_then_recover<C: Command + Clone + std::fmt::Debug>(
    fx: &Fixture,
    org: &Org,
    command: C,
) -> String {
    let described = format!("{command:?}");
    let req = request(command);
    let crashing = fx
        .restart(config("crashy", LONG_LEASE, Some(crash_once_at(0))))
        .await;
    match crashing.submit(&org.caller, req.clone()).await {
        Err(StoreError::InjectedCrash) => {}
        other => panic!("{described}: expected a crash, got {other:?}"),
    }
    drop(crashing);
    let restarted = fx.restart(config("crashy", LONG_LEASE, None)).await;
    assert_eq!(
        restarted.engine().recover(true).await.expect("recover"),
        1,
        "{described}"
    );
    let replay = restarted.submit(&org.caller, req).await.expect("replay");
    assert!(replay.replayed, "{described}");
    let summary = fx
        .services
        .workflow_get(&org.caller, replay.workflow_id)
        .await
        .expect("workflow");
    assert_eq!(
        (summary.status.as_str(), summary.attempts),
        ("succeeded", 2),
        "{described}"
    );
    replay
        .outcome
        .unwrap_or_else(|f| panic!("{described} was refused after recovery: {f:?}"))
}

async fn every_procedure_recovers_after_a_crash(fx: Fixture) {
    use hestami_core::customer::{Customer, Property};
    use hestami_core::org::Organization;
    use hestami_core::workforce::Technician;
    use hestami_store::app::Patch;
    use hestami_store::app::customer::{CustomerCommand, CustomerUpdate};
    use hestami_store::app::org::{OrgCommand, OrgUpdate};
    use hestami_store::app::technician::{TechnicianCommand, TechnicianUpdate};

    let org = fx.org("Recovering").await;
    let (s, c) = (&fx.services, &org.caller);
    let decode = |text: &str| -> serde_json::Value { serde_json::from_str(text).expect("json") };

    let customer: Customer =
        decode_output(&crash_then_recover(&fx, &org, new_customer("Ada")).await).expect("customer");
    assert_eq!(s.customer_get(c, customer.id).await.expect("get"), customer);
    let update = CustomerCommand::Update(CustomerUpdate {
        customer_id: customer.id,
        expected_version: Some(1),
        name: Some(name("Ada B")),
        email: Patch::Set(email("ada@example.com")),
        phone: Patch::Clear,
    });
    let updated: Customer =
        decode_output(&crash_then_recover(&fx, &org, update).await).expect("customer");
    assert_eq!(
        (updated.version, updated.email.clone()),
        (2, Some(email("ada@example.com")))
    );
    assert_eq!(s.customer_get(c, customer.id).await.expect("get"), updated);
    let property: Property =
        decode_output(&crash_then_recover(&fx, &org, new_property(customer.id)).await)
            .expect("property");
    assert_eq!(
        s.customer_list_properties(c, customer.id)
            .await
            .expect("list"),
        vec![property.clone()]
    );

    let tech: Technician = decode_output(
        &crash_then_recover(
            &fx,
            &org,
            new_technician("Pat", Some("pat@example.com"), &["plumbing"]),
        )
        .await,
    )
    .expect("technician");
    let retrain = TechnicianCommand::Update(TechnicianUpdate {
        technician_id: tech.id,
        expected_version: Some(1),
        name: None,
        email: Patch::Keep,
        phone: Patch::Keep,
        trades: Some(vec![trade("plumbing"), trade("hvac")]),
    });
    let tech: Technician =
        decode_output(&crash_then_recover(&fx, &org, retrain).await).expect("technician");
    assert_eq!(tech.version, 2);
    assert_eq!(s.technician_get(c, tech.id).await.expect("get"), tech);

    let job: Job = decode_output(
        &crash_then_recover(&fx, &org, new_job(customer.id, property.id, "plumbing")).await,
    )
    .expect("job");
    ensure_ready(s, c).await;
    let tech = ready(s, c, &tech).await;
    let job: Job =
        decode_output(&crash_then_recover(&fx, &org, schedule(job.id)).await).expect("job");
    assert_eq!(job.window, Some(window()));
    let job: Job =
        decode_output(&crash_then_recover(&fx, &org, assign(job.id, tech.id)).await).expect("job");
    let job: Job = decode_output(
        &crash_then_recover(&fx, &org, set_status(job.id, JobStatus::Dispatched)).await,
    )
    .expect("job");
    assert_eq!(
        (job.status, job.version, job.technician_id),
        (JobStatus::Dispatched, 4, Some(tech.id))
    );
    assert_eq!(s.job_get(c, job.id).await.expect("get"), job);
    let timeline = s.job_timeline(c, job.id).await.expect("timeline");
    assert_eq!(timeline.len(), 4, "one event per step, none duplicated");
    assert_eq!(core_job::replay(job.id, &timeline), Some(job.clone()));

    let other: Technician = ok(s, c, new_technician("Sam", None, &["hvac"])).await;
    let retire = TechnicianCommand::Deactivate {
        technician_id: other.id,
        expected_version: Some(1),
    };
    let retired = decode(&crash_then_recover(&fx, &org, retire).await);
    assert_eq!(
        (retired["active"].clone(), retired["version"].clone()),
        (json!(false), json!(2))
    );

    let rename = OrgCommand::Update(OrgUpdate {
        expected_version: Some(1),
        name: Some(hestami_core::text::OrgName::parse("Recovered").expect("name")),
        time_zone: Some(hestami_core::org::TimeZone::parse("Europe/Paris").expect("zone")),
        sla: Some(hestami_core::org::SlaWindows::parse(30, 300, 3000).expect("sla")),
    });
    let renamed: Organization =
        decode_output(&crash_then_recover(&fx, &org, rename).await).expect("org");
    assert_eq!(s.org_get(c).await.expect("org"), renamed);

    money_procedures_recover(&fx, &org, &job).await;
    scheduling_procedures_recover(&fx, &org, &tech).await;
    assert_feed_is_clean(&whole_feed(s, c).await);
}

/// The `job/v2` procedures, each crashed after its step and recovered: one appointment, one
/// event per change, the job following once.
async fn scheduling_procedures_recover(
    fx: &Fixture,
    org: &Org,
    lead: &hestami_core::workforce::Technician,
) {
    use hestami_core::appointment::AppointmentStatus;
    use hestami_core::workforce::Technician;
    use hestami_store::app::appointment::{
        AddAppointment, AssignTechnician, CancelAppointment, CompleteJob, CrewRole, FieldMove,
        JobSchedule, JobV2Command as V2, MoveAppointment, RescheduleAppointment,
        UnassignTechnician,
    };

    let (s, c) = (&fx.services, &org.caller);
    let helper: Technician = ok(s, c, new_technician("Hal", None, &["plumbing"])).await;
    let helper = ready(s, c, &helper).await;
    let job = requested_job(s, c).await;
    let at = |h: i64| chrono::Utc::now() + chrono::Duration::hours(h);
    let window = |a: i64| hestami_core::job::TimeWindow::parse(at(a), at(a + 2)).expect("window");
    let run = |command: V2| async move {
        decode_output::<JobSchedule>(&crash_then_recover(fx, org, command).await).expect("schedule")
    };
    let added = run(V2::AddAppointment(AddAppointment {
        job_id: job.id,
        window: window(2),
        estimated_minutes: Some(60),
        lead: Some(lead.id),
        helpers: vec![],
        sla_override: None,
        planned_start: None,
        expected_version: None,
    }))
    .await;
    let visit = added.appointments[0].id;
    let cancel_me = run(V2::AddAppointment(AddAppointment {
        job_id: job.id,
        window: window(30),
        estimated_minutes: None,
        lead: None,
        helpers: vec![],
        sla_override: None,
        planned_start: None,
        expected_version: None,
    }))
    .await;
    let second = cancel_me
        .appointments
        .iter()
        .find(|a| a.id != visit)
        .expect("the second visit")
        .id;
    run(V2::AssignTechnician(AssignTechnician {
        appointment_id: visit,
        technician_id: helper.id,
        role: CrewRole::Helper,
        expected_version: None,
    }))
    .await;
    run(V2::UnassignTechnician(UnassignTechnician {
        appointment_id: visit,
        technician_id: helper.id,
        expected_version: None,
    }))
    .await;
    run(V2::RescheduleAppointment(RescheduleAppointment {
        appointment_id: visit,
        window: window(4),
        sla_override: None,
        planned_start: None,
        expected_version: None,
    }))
    .await;
    run(V2::CancelAppointment(CancelAppointment {
        appointment_id: second,
        reason: hestami_core::text::Reason::parse("not needed").expect("reason"),
        expected_version: None,
    }))
    .await;
    for action in [
        FieldMove::Dispatch,
        FieldMove::StartTravel,
        FieldMove::Arrive,
        FieldMove::Finish,
    ] {
        run(V2::MoveAppointment(MoveAppointment {
            appointment_id: visit,
            action,
            reason: None,
            expected_version: None,
            device: None,
        }))
        .await;
    }
    let done = run(V2::Complete(CompleteJob {
        job_id: job.id,
        expected_version: None,
        signature: None,
    }))
    .await;
    assert_eq!(done.job.status, JobStatus::Completed);
    let statuses: Vec<AppointmentStatus> = done.appointments.iter().map(|a| a.status).collect();
    assert_eq!(statuses.len(), 2, "two visits, none duplicated");
    assert!(statuses.contains(&AppointmentStatus::Done));
    assert!(statuses.contains(&AppointmentStatus::Cancelled));
    // One event per change: 2 added, crew twice, reschedule, cancel, 4 field moves.
    let history = s.job_history(c, job.id).await.expect("history");
    let count = |kind: &str| {
        history
            .schedule_events
            .iter()
            .filter(|e| e.kind == kind)
            .count()
    };
    assert_eq!(
        (count("appointment_added"), count("appointment_changed")),
        (2, 8)
    );
    let visit_now = done
        .appointments
        .iter()
        .find(|a| a.id == visit)
        .expect("visit");
    assert_eq!(visit_now.version, 8, "one version per change");
}

/// The money path's procedures, each crashed after its first step and recovered.
async fn money_procedures_recover(fx: &Fixture, org: &Org, job: &Job) {
    use hestami_core::estimate::{Estimate, EstimateStatus};
    use hestami_core::invoice::{Invoice, InvoiceStatus};
    use hestami_core::pricebook::PricebookItem;
    use hestami_store::app::estimate::EstimateCommandInput as E;
    use hestami_store::app::invoice::InvoiceCommandInput as I;
    use hestami_store::app::pricebook::PricebookCommand as P;

    let (s, c) = (&fx.services, &org.caller);
    let item: PricebookItem = decode_output(
        &crash_then_recover(
            fx,
            org,
            P::CreateItem(from_json(json!({
                "name": "Drain clean",
                "details": { "kind": "service", "price": usd("150.00"),
                             "estimatedLaborHours": "1", "trade": "plumbing" }
            }))),
        )
        .await,
    )
    .expect("item");
    let tiers = P::SetMarkupTiers(from_json(json!({
        "tiers": [{ "from": "0", "to": null, "percent": "40" }], "expectedVersion": null
    })));
    crash_then_recover(fx, org, tiers).await;
    let line = json!({ "lines": [{ "source": "item", "itemId": item.id, "quantity": "1" }], "discount": null });
    let estimate: Estimate = decode_output(
        &crash_then_recover(
            fx,
            org,
            E::Generate(from_json(json!({
                "jobId": job.id, "customerId": null, "propertyId": null,
                "options": [{ "name": "Only", "request": line }],
                "validUntil": chrono::Utc::now() + chrono::Duration::days(3), "notes": null
            }))),
        )
        .await,
    )
    .expect("estimate");
    let send = E::Send(from_json(
        json!({ "estimateId": estimate.id, "expectedVersion": null }),
    ));
    crash_then_recover(fx, org, send).await;
    let approve = E::Approve(from_json(json!({
        "estimateId": estimate.id, "optionId": estimate.options[0].id, "signedBy": "Ada",
        "signature": null, "depositRequired": null, "expectedVersion": null
    })));
    let approved: Estimate =
        decode_output(&crash_then_recover(fx, org, approve).await).expect("estimate");
    assert_eq!(approved.status, EstimateStatus::Approved);
    let convert = E::ConvertToJob(from_json(json!({
        "estimateId": estimate.id, "trade": null, "summary": null, "priority": null
    })));
    crash_then_recover(fx, org, convert).await;
    let draft: Invoice = decode_output(
        &crash_then_recover(
            fx,
            org,
            I::Create(from_json(json!({
                "jobId": job.id, "from": { "from": "approved_estimate", "estimateId": null },
                "terms": null
            }))),
        )
        .await,
    )
    .expect("invoice");
    let issue = I::Issue(from_json(
        json!({ "invoiceId": draft.id, "expectedVersion": null }),
    ));
    let issued: Invoice =
        decode_output(&crash_then_recover(fx, org, issue).await).expect("invoice");
    assert_eq!(issued.number.map(|n| n.sequence()), Some(1));
    let pay = I::CollectPayment(from_json(json!({
        "invoiceId": draft.id, "amount": usd("150.00"), "method": "cash", "reference": null
    })));
    let paid: Invoice = decode_output(&crash_then_recover(fx, org, pay).await).expect("invoice");
    assert_eq!(
        (paid.status, paid.payments.len()),
        (InvoiceStatus::Paid, 1),
        "one payment, recorded once"
    );
    let refund = I::Refund(from_json(json!({
        "paymentId": paid.payments[0].id, "amount": usd("150.00"), "reason": "Goodwill"
    })));
    let refunded: Invoice =
        decode_output(&crash_then_recover(fx, org, refund).await).expect("invoice");
    assert_eq!(refunded.refunds.len(), 1);
    let void = I::Void(from_json(
        json!({ "invoiceId": draft.id, "reason": "Goodwill", "expectedVersion": null }),
    ));
    let voided: Invoice = decode_output(&crash_then_recover(fx, org, void).await).expect("invoice");
    assert_eq!(voided.status, InvoiceStatus::Void);
    assert_eq!(s.invoice_get(c, draft.id).await.expect("get"), voided);
}

/// A workflow that fails for an internal reason (the database, a bug) its first `fail_first`
/// times, after journalling one step.
fn flaky_engine(
    store: Store,
    config: EngineConfig,
    attempts: Arc<Mutex<HashMap<u64, u32>>>,
    steps: Arc<Probe>,
) -> Engine {
    Engine::builder(store, config)
        .register(
            "flaky_v1",
            move |mut ctx: WorkflowCtx, input: serde_json::Value| {
                let (attempts, steps) = (attempts.clone(), steps.clone());
                async move {
                    let run = input["run"].as_u64().expect("run");
                    let fail_first = u32::try_from(input["failFirst"].as_u64().expect("failFirst"))
                        .expect("small");
                    let p = steps.clone();
                    let value: i64 = ctx
                        .step("journalled", move |_tx| {
                            Box::pin(async move {
                                p.ran(run, "journalled");
                                Ok(7)
                            })
                        })
                        .await?;
                    let attempt = {
                        let mut attempts = attempts.lock().expect("attempts");
                        let n = attempts.entry(run).or_default();
                        *n += 1;
                        *n
                    };
                    if attempt <= fail_first {
                        return Err(StoreError::Internal(format!("attempt {attempt} failed")));
                    }
                    Ok(json!({ "value": value, "attempt": attempt }))
                }
            },
        )
        .build()
}

fn flaky_start(organization_id: OrganizationId, run: u64, fail_first: u32) -> Start {
    let input = json!({ "run": run, "failFirst": fail_first });
    Start {
        organization_id,
        actor: None,
        procedure: "test/v1/flaky".into(),
        workflow: "flaky_v1",
        idempotency_key: Uuid::from_u128(u128::from(run)),
        fingerprint: engine::fingerprint(&input),
        input,
        trace_id: None,
        wait: Duration::from_secs(10),
    }
}

async fn internal_errors_are_retried_then_recorded(fx: Fixture) {
    let org = fx.org("Flaky").await;
    let attempts = Arc::new(Mutex::new(HashMap::new()));
    let probe = Arc::new(Probe::default());
    let engine = flaky_engine(
        fx.fresh_store().await,
        config("worker", LONG_LEASE, None),
        attempts.clone(),
        probe.clone(),
    );

    // Fails once, then succeeds on recovery: the failed attempt releases its claim at once, so
    // any executor's next pass retries it, and the journalled step is not run again.
    match engine.run(flaky_start(org.id(), 1, 1)).await {
        Err(StoreError::Internal(_)) => {}
        other => panic!("expected an internal error, got {other:?}"),
    }
    let id = engine::workflow_id(org.id(), "test/v1/flaky", Uuid::from_u128(1));
    let pending = fx
        .services
        .workflow_get(&org.caller, id)
        .await
        .expect("workflow");
    assert_eq!((pending.status.as_str(), pending.attempts), ("pending", 1));
    let other = flaky_engine(
        fx.fresh_store().await,
        config("other", LONG_LEASE, None),
        attempts.clone(),
        probe.clone(),
    );
    assert_eq!(other.recover(false).await.expect("recover"), 1);
    let done = other
        .run(flaky_start(org.id(), 1, 1))
        .await
        .expect("replay");
    assert!(done.replayed);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(done.outcome.as_ref().expect("succeeded"))
            .expect("json"),
        json!({ "value": 7, "attempt": 2 })
    );
    assert_eq!(probe.count(1, "journalled"), 1);

    // Always failing: after MAX_ATTEMPTS it is recorded as an internal failure, and stays so.
    assert!(matches!(
        engine.run(flaky_start(org.id(), 2, u32::MAX)).await,
        Err(StoreError::Internal(_))
    ));
    let mut passes = 0;
    while other.recover(false).await.expect("recover") > 0 {
        passes += 1;
        assert!(passes < 20, "recovery never gave up");
    }
    let id = engine::workflow_id(org.id(), "test/v1/flaky", Uuid::from_u128(2));
    let failed = fx
        .services
        .workflow_get(&org.caller, id)
        .await
        .expect("workflow");
    assert_eq!(
        (failed.status.as_str(), failed.attempts),
        ("failed", engine::MAX_ATTEMPTS)
    );
    assert_eq!(
        failed.error.as_ref().map(|e| e.code.as_str()),
        Some("INTERNAL")
    );
    assert_eq!(
        attempts.lock().expect("attempts")[&2],
        u32::try_from(engine::MAX_ATTEMPTS).expect("small")
    );
    assert_eq!(probe.count(2, "journalled"), 1);
    let replay = engine
        .run(flaky_start(org.id(), 2, u32::MAX))
        .await
        .expect("replay");
    assert!(replay.replayed);
    assert_eq!(replay.outcome.expect_err("failed").code, "INTERNAL");
}

async fn operators_cancel_and_resume_workflows(fx: Fixture) {
    let org = fx.org("Operators").await;
    let c = &org.caller;
    let s = &fx.services;
    let original = completed_job(s, c).await;
    let req = request(callback(original.id));
    // A run that dies after its first step leaves the workflow pending.
    let crash_after_first: FaultHook = Arc::new(|_, index, _| index == 0);
    let crashing = fx
        .restart(config("ops", LONG_LEASE, Some(crash_after_first)))
        .await;
    assert!(matches!(
        crashing.submit(c, req.clone()).await,
        Err(StoreError::InjectedCrash)
    ));
    let id = engine::workflow_id(org.id(), "job/v1/callback", req.idempotency_key);
    assert_eq!(s.workflow_get(c, id).await.expect("get").status, "pending");

    // Cancelled: the original request's answer is the cancellation, and nothing recovers it.
    let cancelled: WorkflowSummary = ok(s, c, WorkflowCommand::Cancel { workflow_id: id }).await;
    assert_eq!(cancelled.status, "cancelled");
    let replay = s.submit(c, req.clone()).await.expect("replay");
    assert_eq!(failure_of(&replay).code, "WORKFLOW_CANCELLED");
    let restarted = fx.restart(config("ops", LONG_LEASE, None)).await;
    assert_eq!(restarted.engine().recover(true).await.expect("recover"), 0);
    let again = refused(s, c, WorkflowCommand::Cancel { workflow_id: id }).await;
    assert_eq!(again.code, "WORKFLOW_NOT_PENDING");

    // Resumed: pending again, the next recovery pass finishes it, the first step is not redone.
    let resumed: WorkflowSummary = ok(s, c, WorkflowCommand::Resume { workflow_id: id }).await;
    assert_eq!((resumed.status.as_str(), resumed.error), ("pending", None));
    assert_eq!(restarted.engine().recover(false).await.expect("recover"), 1);
    let done = s.submit(c, req).await.expect("replay");
    assert!(done.replayed);
    let shape = check_exactly_once(s, &org, &original, &done).await;
    assert!(shape.links_original);
    let finished = refused(s, c, WorkflowCommand::Resume { workflow_id: id }).await;
    assert_eq!(finished.code, "WORKFLOW_NOT_RESUMABLE");
    let missing = refused(
        s,
        c,
        WorkflowCommand::Cancel {
            workflow_id: hestami_core::ids::WorkflowId::from_uuid(Uuid::now_v7()),
        },
    )
    .await;
    assert_eq!(missing.code, "NOT_FOUND");
}

async fn a_run_in_progress_stops_when_cancelled(fx: Fixture) {
    let org = fx.org("Stopped").await;
    let c = &org.caller;
    let s = &fx.services;
    let original = completed_job(s, c).await;
    let req = request(callback(original.id));
    let id = engine::workflow_id(org.id(), "job/v1/callback", req.idempotency_key);

    // The run pauses after its first step (the callback job) until the test has cancelled it.
    let (reached_tx, mut reached_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    let hook: FaultHook = Arc::new(move |_, index, _| {
        if index == 0 {
            reached_tx.send(()).expect("the test listens");
            // block_in_place hands this worker's other tasks to another thread while the hook
            // waits; a plain blocking wait can strand them (the pool's, on PostgreSQL).
            tokio::task::block_in_place(|| {
                go_rx
                    .lock()
                    .expect("go")
                    .recv()
                    .expect("the test lets the run go on")
            });
        }
        false
    });
    let runner = fx.restart(config("runner", LONG_LEASE, Some(hook))).await;
    let task = {
        let (runner, caller, req) = (runner.clone(), *c, req.clone());
        tokio::spawn(async move { runner.submit(&caller, req).await })
    };
    // The hook blocks its thread: cancel from another runtime thread, then let the run go on.
    tokio::task::spawn_blocking(move || {
        let _ = reached_rx.blocking_recv();
    })
    .await
    .expect("the run reached its first step boundary");
    let cancelled: WorkflowSummary = ok(s, c, WorkflowCommand::Cancel { workflow_id: id }).await;
    assert_eq!(cancelled.status, "cancelled");
    go_tx.send(()).expect("the hook waits");

    // The run's next step finds the workflow cancelled and stops: its caller gets the
    // cancellation, and the original job is never linked to the callback job.
    let completed = task
        .await
        .expect("the run finished")
        .expect("no internal error");
    assert_eq!(failure_of(&completed).code, "WORKFLOW_CANCELLED");
    let summary = s.workflow_get(c, id).await.expect("get");
    assert_eq!((summary.status.as_str(), summary.steps), ("cancelled", 1));
    let timeline = s.job_timeline(c, original.id).await.expect("timeline");
    assert!(
        !timeline
            .iter()
            .any(|e| matches!(e.change, JobChange::CallbackRaised { .. })),
        "the second step never ran"
    );
}

/// `dispatch/v1/optimize` crashed after each of its steps (the request check, the solve, the
/// plan's storage) and recovered in a fresh process: one plan, the one the replay returns; then
/// `applyPlan` crashed after its step: the visit is led once, by the planned technician.
async fn optimization_recovers_at_every_step_boundary(fx: Fixture) {
    use hestami_core::workforce::Technician;
    use hestami_store::app::appointment::{AddAppointment, JobSchedule, JobV2Command};
    use hestami_store::app::dispatch_plan::{
        AppliedPlan, ApplyPlan, Optimize, PlanCommand, StoredPlan,
    };

    let org = fx.org("Planning").await;
    let (s, c) = (&fx.services, &org.caller);
    ensure_ready(s, c).await;
    let tech: Technician = ok(s, c, new_technician("Ana", None, &["plumbing"])).await;
    let tech = ready(s, c, &tech).await;
    // A property with coordinates: a visit is planned only where it can be driven to.
    let customer: hestami_core::customer::Customer = ok(s, c, new_customer("Geo")).await;
    let mut place = new_property(customer.id);
    if let hestami_store::app::customer::CustomerCommand::AddProperty(p) = &mut place {
        p.location = Some(hestami_core::customer::GeoPoint::parse(39.78, -89.65).expect("point"));
    }
    let property: hestami_core::customer::Property = ok(s, c, place).await;
    let job: Job = ok(s, c, new_job(customer.id, property.id, "plumbing")).await;
    let tz = chrono_tz::America::Chicago;
    let day = (chrono::Utc::now().with_timezone(&tz) + chrono::Duration::days(1)).date_naive();
    let at =
        |h: u32| hestami_core::schedule::local_to_utc(tz, day.and_hms_opt(h, 0, 0).expect("time"));
    let schedule: JobSchedule = ok(
        s,
        c,
        JobV2Command::AddAppointment(AddAppointment {
            job_id: job.id,
            window: hestami_core::job::TimeWindow::parse(at(9), at(13)).expect("window"),
            estimated_minutes: Some(60),
            lead: None,
            helpers: vec![],
            // Tomorrow morning is past the job's SLA deadline when the test runs before the
            // same local time today; the plan, not the SLA, is under test.
            sla_override: Some(
                hestami_core::text::Reason::parse("the customer asked for tomorrow")
                    .expect("reason"),
            ),
            planned_start: None,
            expected_version: None,
        }),
    )
    .await;
    let visit = schedule.appointments[0].id;
    let optimize = || {
        PlanCommand::Optimize(Optimize {
            date: day,
            technician_ids: vec![tech.id],
            appointment_ids: vec![],
            pins: vec![],
            weights: Default::default(),
            time_budget_ms: Some(100),
            seed: None,
        })
    };
    // Plans made, as the change feed records them (one row per plan stored).
    let plans = || async {
        whole_feed(s, c)
            .await
            .iter()
            .filter(|ch| ch.entity_kind == "dispatch_plan" && ch.operation == "created")
            .count()
    };
    let mut last = None;
    for k in 0..3 {
        let req = request(optimize());
        let crashing = fx
            .restart(config("planner", LONG_LEASE, Some(crash_once_at(k))))
            .await;
        match crashing.submit(c, req.clone()).await {
            Err(StoreError::InjectedCrash) => {}
            other => panic!("step {k}: expected a crash, got {other:?}"),
        }
        drop(crashing);
        let restarted = fx.restart(config("planner", LONG_LEASE, None)).await;
        assert_eq!(restarted.engine().recover(true).await.expect("recover"), 1);
        let replay = restarted.submit(c, req).await.expect("replay");
        assert!(replay.replayed, "step {k}");
        let plan: StoredPlan =
            decode_output(&replay.outcome.expect("a plan")).expect("the stored plan");
        assert_eq!(
            plans().await as i64,
            k + 1,
            "one plan per request, after a crash at step {k}"
        );
        assert_eq!(
            s.dispatch_plan(c, plan.plan_id).await.expect("stored").plan,
            plan.plan
        );
        assert_eq!(plan.plan.routes[0].stops[0].appointment_id, Some(visit));
        last = Some(plan);
    }
    let plan = last.expect("a plan");
    let applied: AppliedPlan = decode_output(
        &crash_then_recover(
            &fx,
            &org,
            PlanCommand::ApplyPlan(ApplyPlan {
                plan_id: plan.plan_id,
                partial: false,
            }),
        )
        .await,
    )
    .expect("applied");
    assert_eq!(applied.scheduled, vec![visit]);
    let now = s.job_schedule(c, job.id).await.expect("schedule");
    let a = &now.appointments[0];
    assert_eq!((a.lead, a.helpers.len()), (Some(tech.id), 0));
    assert_eq!(a.planned_start, Some(plan.plan.routes[0].stops[0].start));
    let history = s.job_history(c, job.id).await.expect("history");
    let changed = history
        .schedule_events
        .iter()
        .filter(|e| e.kind == "appointment_changed")
        .count();
    assert_eq!(changed, 2, "planned once and assigned once");
    assert_feed_is_clean(&whole_feed(s, c).await);
}
