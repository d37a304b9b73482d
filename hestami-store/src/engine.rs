//! The durable workflow engine: a step journal in the database (DESIGN §4.3).
//!
//! A workflow is a named, versioned async function (`job_lifecycle_v1`) made of steps. Its id is
//! derived from `(organization, procedure, idempotency key)`, so asking twice for the same thing
//! finds the same row:
//!
//! - the first request inserts the workflow row and runs it;
//! - a request with the same key and the same fingerprint gets the recorded outcome, waiting for
//!   it if the first is still running (up to its deadline, then [`StoreError::InProgress`]);
//! - a request with the same key and another fingerprint is refused
//!   ([`StoreError::IdempotencyKeyReused`]).
//!
//! A **transactional step** ([`WorkflowCtx::step`]) runs its effects and writes its journal row in
//! one database transaction, so it happens exactly once: a re-run finds the row and returns the
//! recorded output without running the step again. An **external step**
//! ([`WorkflowCtx::external`]) calls the outside world with an idempotency key derived from the
//! workflow id and records the answer afterwards: it runs at least once, and the key lets the
//! other party deduplicate.
//!
//! Pending workflows are listed in a claim queue with a lease that the running executor renews.
//! [`Engine::recover`] resumes pending workflows whose lease has expired (and, at start-up, those
//! of this executor id): they are re-run from the top, and completed steps return their journalled
//! outputs. On PostgreSQL several processes claim with `FOR UPDATE SKIP LOCKED`, and a live
//! executor's workflows are never taken because its lease never expires.

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tracing::Instrument;
use uuid::Uuid;

use hestami_core::ids::{OrganizationId, UserId, WorkflowId};

use crate::db::{Backend, Row, args};
use crate::error::{Failure, FailureKind, StoreError};
use crate::store::{Store, TenantTx};

/// A boxed future that borrows a transaction: what a step's body returns.
pub type StepFuture<'t, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 't>>;

/// A boxed workflow run.
pub type WorkflowFuture =
    Pin<Box<dyn Future<Output = Result<serde_json::Value, StoreError>> + Send>>;

type Handler = Arc<dyn Fn(WorkflowCtx, serde_json::Value) -> WorkflowFuture + Send + Sync>;

/// Decides whether to simulate a crash right after a step commits: given the workflow, the
/// step's index and its name, `true` abandons the run as a dying process would.
pub type FaultHook = Arc<dyn Fn(WorkflowId, i64, &str) -> bool + Send + Sync>;

/// Where [`EngineBuilder::commit_fault`] can stop a run: around the commit that records its
/// outcome (for most workflows the only commit of the request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommitPoint {
    /// Everything is written and the `COMMIT` is about to be sent: a crash here rolls it all back.
    BeforeCommit,
    /// The outcome is committed and the answer not sent yet.
    AfterCommit,
}

/// Decides whether to simulate a crash at a [`CommitPoint`] of a workflow's outcome.
pub type CommitFault = Arc<dyn Fn(WorkflowId, CommitPoint) -> bool + Send + Sync>;

/// How many times a workflow that fails for an internal reason is tried before it is recorded
/// as failed.
pub const MAX_ATTEMPTS: i64 = 5;

/// Derives a workflow's id from what identifies the request: the same organization, procedure
/// and idempotency key always give the same id (a UUIDv8 built from a SHA-256).
pub fn workflow_id(
    organization_id: OrganizationId,
    procedure: &str,
    idempotency_key: Uuid,
) -> WorkflowId {
    let mut hasher = Sha256::new();
    hasher.update(organization_id.as_uuid().as_bytes());
    hasher.update([0]);
    hasher.update(procedure.as_bytes());
    hasher.update([0]);
    hasher.update(idempotency_key.as_bytes());
    let digest = hasher.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    WorkflowId::from_uuid(uuid::Builder::from_custom_bytes(bytes).into_uuid())
}

/// The fingerprint of a request: a SHA-256 over its canonical JSON (object keys sorted at every
/// level, whatever order they arrived in and whatever map type serde_json was built with).
pub fn fingerprint(request: &serde_json::Value) -> String {
    let mut text = String::new();
    canonical_json(request, &mut text);
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn canonical_json(value: &serde_json::Value, out: &mut String) {
    match value {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (n, key) in keys.into_iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(key.clone()).to_string());
                out.push(':');
                canonical_json(&map[key], out);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// A request to run a workflow.
#[derive(Clone, Debug)]
pub struct Start {
    /// The organization it runs for.
    pub organization_id: OrganizationId,
    /// Who asked.
    pub actor: Option<UserId>,
    /// The procedure (`job/v1/create`); with the key, it identifies the request.
    pub procedure: String,
    /// The workflow to run (`job_lifecycle_v1`).
    pub workflow: &'static str,
    /// The caller's idempotency key.
    pub idempotency_key: Uuid,
    /// What the request was, to recognise a reused key: see [`fingerprint`].
    pub fingerprint: String,
    /// The workflow's input.
    pub input: serde_json::Value,
    /// The trace the request belongs to, recorded with the workflow.
    pub trace_id: Option<String>,
    /// How long a duplicate waits for a running first request before giving up.
    pub wait: Duration,
}

/// A workflow's recorded outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct Completed {
    /// Which workflow.
    pub workflow_id: WorkflowId,
    /// Its output as recorded (JSON text), or its recorded refusal.
    pub outcome: Result<String, Failure>,
    /// The trace id recorded when the workflow started.
    pub trace_id: Option<String>,
    /// Whether this answer was recorded by an earlier request with the same key.
    pub replayed: bool,
}

/// Settings of an [`Engine`].
#[derive(Clone)]
pub struct EngineConfig {
    /// Identifies this executor in the claim queue. Workflows left pending under this id are
    /// resumed at start-up without waiting for their lease to expire, so give each process
    /// sharing a database its own id.
    pub executor_id: String,
    /// How long a claim lasts without renewal.
    pub lease: Duration,
    /// An injected fault, for crash tests.
    pub fault: Option<FaultHook>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            executor_id: "local".into(),
            lease: Duration::from_secs(6),
            fault: None,
        }
    }
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("executor_id", &self.executor_id)
            .field("lease", &self.lease)
            .field("fault", &self.fault.is_some())
            .finish()
    }
}

/// Runs workflows durably.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    config: EngineConfig,
    handlers: HashMap<&'static str, Handler>,
    /// Workflows never recorded as failed for an internal error (see
    /// [`EngineBuilder::never_give_up`]).
    never_give_up: HashSet<&'static str>,
    /// An injected fault around the outcome's commit, for crash tests.
    commit_fault: Option<CommitFault>,
    /// Recent successes, to answer their replays without the database.
    succeeded: SucceededCache,
    finished: Notify,
}

/// The most successes [`SucceededCache`] holds; past it, it starts again empty.
const SUCCEEDED_CACHE_ENTRIES: usize = 16_384;

/// Workflows this process saw succeed, with their fingerprint, output and trace id. A success is
/// final — nothing makes a succeeded workflow pending, failed or cancelled again (an operator's
/// resume applies to failed and cancelled ones only) — so a replay found here is answered
/// exactly as the database would answer it, without a transaction. Failures are not kept: an
/// operator can resume them.
#[derive(Default)]
struct SucceededCache {
    entries: std::sync::Mutex<HashMap<WorkflowId, Arc<CachedSuccess>>>,
}

struct CachedSuccess {
    fingerprint: String,
    output: String,
    trace_id: Option<String>,
}

impl SucceededCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WorkflowId, Arc<CachedSuccess>>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, id: WorkflowId) -> Option<Arc<CachedSuccess>> {
        self.lock().get(&id).cloned()
    }

    fn put(&self, id: WorkflowId, success: CachedSuccess) {
        let mut entries = self.lock();
        if entries.len() >= SUCCEEDED_CACHE_ENTRIES {
            entries.clear();
        }
        entries.insert(id, Arc::new(success));
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.inner.handlers.keys().collect();
        names.sort();
        f.debug_struct("Engine")
            .field("config", &self.inner.config)
            .field("workflows", &names)
            .finish()
    }
}

/// Collects workflow definitions for an [`Engine`].
pub struct EngineBuilder {
    store: Store,
    config: EngineConfig,
    handlers: HashMap<&'static str, Handler>,
    never_give_up: HashSet<&'static str>,
    commit_fault: Option<CommitFault>,
}

impl EngineBuilder {
    /// Injects a fault around the commit that records a workflow's outcome: before it (the
    /// transaction rolls back, as if the process died with it open) or after it (the outcome
    /// is recorded and the answer lost). The run ends with [`StoreError::InjectedCrash`].
    pub fn commit_fault(mut self, fault: CommitFault) -> Self {
        self.commit_fault = Some(fault);
        self
    }

    /// Registers a workflow under its versioned name. Its input is deserialized from the
    /// recorded JSON, and its output is recorded as JSON.
    pub fn register<I, O, F, Fut>(mut self, name: &'static str, run: F) -> Self
    where
        I: DeserializeOwned + Send + 'static,
        O: Serialize + Send + 'static,
        F: Fn(WorkflowCtx, I) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<O, StoreError>> + Send + 'static,
    {
        let run = Arc::new(run);
        let handler: Handler = Arc::new(move |ctx, input| {
            let run = run.clone();
            Box::pin(async move {
                let input: I = serde_json::from_value(input).map_err(|e| {
                    StoreError::Internal(format!("workflow input does not parse: {e}"))
                })?;
                let output = run(ctx, input).await?;
                Ok(serde_json::to_value(output)?)
            })
        });
        assert!(
            self.handlers.insert(name, handler).is_none(),
            "workflow {name} registered twice"
        );
        self
    }

    /// Marks a workflow that must finish: an internal error never records it as failed after
    /// [`MAX_ATTEMPTS`] (it stays pending and is retried), because giving up part-way could
    /// abandon an effect an external step already had — money a payment provider moved.
    pub fn never_give_up(mut self, name: &'static str) -> Self {
        self.never_give_up.insert(name);
        self
    }

    /// Builds the engine.
    pub fn build(self) -> Engine {
        Engine {
            inner: Arc::new(Inner {
                store: self.store,
                config: self.config,
                handlers: self.handlers,
                never_give_up: self.never_give_up,
                commit_fault: self.commit_fault,
                succeeded: SucceededCache::default(),
                finished: Notify::new(),
            }),
        }
    }
}

/// Inserts a new request's workflow row, unless its key is taken.
const CLAIM: &str = "INSERT INTO workflows (organization_id, id, name, procedure, idempotency_key, \
     fingerprint, input, status, trace_id, actor_user_id, executor_id, attempts, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10, 1, $11, $11) ON CONFLICT DO NOTHING";

/// What a new request found when it claimed its key.
enum Claim {
    /// The workflow row is inserted in the transaction, which is not committed yet.
    Owned(TenantTx),
    /// Another request's row, committed: its fingerprint, status and outcome.
    Existing(Row),
}

/// What a run holds between its steps (shared by the engine and the run's [`WorkflowCtx`]).
///
/// A transactional step's transaction is left open when the step is done: what comes next
/// decides when it commits. The outcome is written into it (one commit for the last step and the
/// outcome), and for a new request it also holds the claim (one commit for a one-step workflow:
/// claim, effects, journal, change feed and outcome). Only when another step follows, or an
/// external call, is it committed on its own — with a claim-queue row if the workflow has none
/// yet, so that recovery finds it.
#[derive(Default)]
struct RunState {
    /// The open transaction of the last step (or of the claim).
    open: Option<TenantTx>,
    /// Whether the workflow row is committed. A new request's claim is not, until the first
    /// commit; until then a crash leaves nothing, and the client's retry runs afresh.
    durable: bool,
    /// Whether the workflow has a claim-queue row (committed, or in `open`).
    queued: bool,
    /// Renews the lease while the run goes on, once the workflow is queued.
    heartbeat: Option<AbortOnDrop>,
    /// A new request: what its claim inserts, to claim again after a refused first step rolled
    /// the claim back with the step's effects.
    start: Option<Arc<Start>>,
    /// The claim rolled back and another request took the key meanwhile: its outcome stands.
    lost: bool,
    /// The journal row of the step whose transaction is `open`, written with whatever commits
    /// it: with the outcome in one statement on PostgreSQL, or before the commit otherwise.
    journal: Option<JournalRow>,
}

/// A step's journal row, not written yet.
struct JournalRow {
    index: i64,
    name: String,
    output: String,
}

/// Writes a step's journal row in `tx`.
async fn write_journal(
    tx: &mut TenantTx,
    id: WorkflowId,
    row: &JournalRow,
) -> Result<(), StoreError> {
    let now = tx.now();
    tx.execute(
        "INSERT INTO workflow_steps (organization_id, workflow_id, step_index, name, output, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
        args![tx.org(), id.as_uuid(), row.index, row.name.as_str(), row.output.as_str(), now],
    )
    .await?;
    Ok(())
}

type SharedRun = Arc<std::sync::Mutex<RunState>>;

fn lock_run(run: &SharedRun) -> std::sync::MutexGuard<'_, RunState> {
    // Nothing panics while holding it; a poisoned lock still holds consistent state.
    run.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Engine {
    /// Starts describing an engine with no workflows registered.
    pub fn builder(store: Store, config: EngineConfig) -> EngineBuilder {
        EngineBuilder {
            store,
            config,
            handlers: HashMap::new(),
            never_give_up: HashSet::new(),
            commit_fault: None,
        }
    }

    /// The store it runs against.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The names of the registered workflows, sorted.
    pub fn workflow_names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.inner.handlers.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// Runs a workflow, or returns the outcome recorded for the same request.
    ///
    /// The run happens in a task of its own: a caller that goes away (an HTTP client that hangs
    /// up, a timeout around this future) does not cancel it half-way. It runs to its end, its
    /// outcome is recorded, and a retry with the same key finds that outcome instead of a lease to
    /// wait out. No transaction is ever abandoned between `BEGIN` and `COMMIT` by a dropped
    /// future.
    pub async fn run(&self, start: Start) -> Result<Completed, StoreError> {
        if !self.inner.handlers.contains_key(start.workflow) {
            return Err(StoreError::Internal(format!(
                "no workflow named {}",
                start.workflow
            )));
        }
        let id = workflow_id(
            start.organization_id,
            &start.procedure,
            start.idempotency_key,
        );
        if let Some(hit) = self.inner.succeeded.get(id) {
            if hit.fingerprint != start.fingerprint {
                return Err(StoreError::IdempotencyKeyReused);
            }
            return Ok(Completed {
                workflow_id: id,
                outcome: Ok(hit.output.clone()),
                trace_id: hit.trace_id.clone(),
                replayed: true,
            });
        }
        let span =
            tracing::info_span!("workflow", workflow.id = %id, workflow.name = start.workflow);
        let engine = self.clone();
        let start = Arc::new(start);
        tokio::spawn(
            async move {
                // A run whose refusal was not recorded (a `400`, see `finish`) dropped its
                // claim: a duplicate that was waiting for it claims the key afresh and gets its
                // own answer.
                // Each try either runs the workflow itself or finds another run's row, so this
                // ends; the bound is only a guard.
                let mut tries = 0;
                loop {
                    match engine.run_claimed(id, &start).await {
                        Err(StoreError::Forgotten) if tries < 16 => tries += 1,
                        other => return other,
                    }
                }
            }
            .instrument(span),
        )
        .await
        .map_err(|e| StoreError::Internal(format!("the workflow's task failed: {e}")))?
    }

    async fn run_claimed(
        &self,
        id: WorkflowId,
        start: &Arc<Start>,
    ) -> Result<Completed, StoreError> {
        match self.claim_new(id, start).await? {
            Claim::Owned(tx) => {
                let run = Arc::new(std::sync::Mutex::new(RunState {
                    open: Some(tx),
                    start: Some(Arc::clone(start)),
                    ..RunState::default()
                }));
                let outcome = self
                    .execute(
                        id,
                        start.organization_id,
                        start.workflow,
                        start.actor,
                        start.input.clone(),
                        run,
                    )
                    .await?;
                if let Ok(output) = &outcome {
                    self.remember(id, &start.fingerprint, output, &start.trace_id);
                }
                Ok(Completed {
                    workflow_id: id,
                    outcome,
                    trace_id: start.trace_id.clone(),
                    replayed: false,
                })
            }
            Claim::Existing(row) => {
                if row.get::<String>("fingerprint")? != start.fingerprint {
                    return Err(StoreError::IdempotencyKeyReused);
                }
                if let Some(outcome) = recorded_outcome(&row)? {
                    let trace_id = row.get("trace_id")?;
                    if let Ok(output) = &outcome {
                        self.remember(id, &start.fingerprint, output, &trace_id);
                    }
                    return Ok(Completed {
                        workflow_id: id,
                        outcome,
                        trace_id,
                        replayed: true,
                    });
                }
                // A retry of a request whose run gave up (its lease released after an error, or
                // expired with a dead process): take it over now rather than wait for the
                // recovery loop. A live run's lease is left alone.
                if self.claim_stalled(id).await? {
                    self.resume(id, start.organization_id).await?;
                }
                self.wait_for(start.organization_id, id, start.wait).await
            }
        }
    }

    /// Keeps a success for its replays (see `SucceededCache`).
    fn remember(&self, id: WorkflowId, fingerprint: &str, output: &str, trace_id: &Option<String>) {
        self.inner.succeeded.put(
            id,
            CachedSuccess {
                fingerprint: fingerprint.to_owned(),
                output: output.to_owned(),
                trace_id: trace_id.clone(),
            },
        );
    }

    /// Claims the request's key: inserts the workflow row in a transaction that the run then
    /// goes on in, or finds the row of an earlier request with the same key. On PostgreSQL a
    /// duplicate arriving while the first request's transaction is open waits on its row and
    /// then reads what it committed; on SQLite the write lock already orders them.
    async fn claim_new(&self, id: WorkflowId, start: &Start) -> Result<Claim, StoreError> {
        let store = &self.inner.store;
        let mut tx = store
            .tenant_as(start.organization_id, true, start.actor, Some(id))
            .await?;
        let values = self.claim_values(&tx, id, start);
        const EXISTING: &str =
            "fingerprint, name, status, output, error, trace_id, input, actor_user_id";
        if self.inner.store.backend() == Backend::Postgres {
            // One round trip either way: the insert, or the row that stood in its way. The
            // statement's snapshot predates a conflicting insert it waited for, so that row can
            // be invisible here; the plain read below then sees it.
            let row = tx
                .fetch_one(
                    &format!(
                        "WITH claim AS ({CLAIM} RETURNING id) \
                         SELECT (SELECT count(*) FROM claim) AS claimed, w.{} \
                         FROM (SELECT 1) AS one LEFT JOIN workflows w ON w.organization_id = $1 AND w.id = $2",
                        EXISTING.replace(", ", ", w.")
                    ),
                    values,
                )
                .await?;
            if row.get::<i64>("claimed")? == 1 {
                tx.mark_written();
                return Ok(Claim::Owned(tx));
            }
            if row.get::<Option<String>>("fingerprint")?.is_some() {
                tx.commit().await?;
                return Ok(Claim::Existing(row));
            }
        } else if tx.execute(CLAIM, values).await? == 1 {
            return Ok(Claim::Owned(tx));
        }
        // The row that stood in our way may have been rolled back or forgotten since (a `400`):
        // claim afresh.
        let row = tx
            .fetch_optional(
                &format!("SELECT {EXISTING} FROM workflows WHERE organization_id = $1 AND id = $2"),
                args![tx.org(), id.as_uuid()],
            )
            .await?
            .ok_or(StoreError::Forgotten)?;
        tx.commit().await?;
        Ok(Claim::Existing(row))
    }

    /// The values [`CLAIM`] inserts for a request.
    fn claim_values(&self, tx: &TenantTx, id: WorkflowId, start: &Start) -> Vec<crate::db::Value> {
        args![
            tx.org(),
            id.as_uuid(),
            start.workflow,
            start.procedure.as_str(),
            start.idempotency_key,
            start.fingerprint.as_str(),
            start.input.to_string(),
            start.trace_id.clone(),
            start.actor.map(|a| a.as_uuid()),
            self.inner.config.executor_id.as_str(),
            tx.now()
        ]
    }

    /// Claims a new request's key again, after its first step's refusal rolled the claim back
    /// with the step's effects (rolling back the whole transaction costs a refusal one more
    /// transaction; a savepoint would cost every request one more round trip). The run goes on
    /// in the new transaction; if another request took the key meanwhile, the run is `lost`.
    async fn reclaim(&self, run: &SharedRun, id: WorkflowId) -> Result<(), StoreError> {
        let Some(start) = lock_run(run).start.clone() else {
            return Ok(());
        };
        let mut tx = self
            .inner
            .store
            .tenant_as(start.organization_id, true, start.actor, Some(id))
            .await?;
        let values = self.claim_values(&tx, id, &start);
        if tx.execute(CLAIM, values).await? == 1 {
            lock_run(run).open = Some(tx);
        } else {
            lock_run(run).lost = true;
        }
        Ok(())
    }

    /// Makes what a run has done so far durable: commits its open transaction, with a
    /// claim-queue row if the workflow has none yet. With `live`, the row's lease runs from now
    /// and a heartbeat renews it while the run goes on; otherwise the lease is already over, so
    /// that the next recovery pass retries the workflow.
    async fn flush(&self, run: &SharedRun, id: WorkflowId, live: bool) -> Result<(), StoreError> {
        let (open, queued, journal) = {
            let mut state = lock_run(run);
            (state.open.take(), state.queued, state.journal.take())
        };
        let Some(mut tx) = open else { return Ok(()) };
        if let Some(journal) = &journal {
            write_journal(&mut tx, id, journal).await?;
        }
        if !queued {
            let now = tx.now();
            let lease_until = if live { now + self.lease() } else { now };
            tx.execute(
                "INSERT INTO workflow_queue (workflow_id, organization_id, name, executor_id, lease_expires_at) \
                 SELECT id, organization_id, name, $3, $4 FROM workflows WHERE organization_id = $1 AND id = $2",
                args![
                    tx.org(),
                    id.as_uuid(),
                    self.inner.config.executor_id.as_str(),
                    lease_until
                ],
            )
            .await?;
        }
        tx.commit().await?;
        let mut state = lock_run(run);
        state.durable = true;
        if !queued {
            state.queued = true;
            if live {
                state.heartbeat = Some(AbortOnDrop(self.spawn_heartbeat(id)));
            }
        }
        Ok(())
    }

    fn lease(&self) -> ChronoDuration {
        ChronoDuration::from_std(self.inner.config.lease).unwrap_or(ChronoDuration::seconds(30))
    }

    /// Runs a workflow this executor has claimed, records its outcome and returns it. An
    /// internal error leaves it pending for recovery (or records it as failed after
    /// [`MAX_ATTEMPTS`]); an injected crash abandons it untouched. A new request's run that
    /// fails before anything of it was committed leaves nothing: its client's retry runs afresh.
    async fn execute(
        &self,
        id: WorkflowId,
        organization_id: OrganizationId,
        name: &str,
        actor: Option<UserId>,
        input: serde_json::Value,
        run: SharedRun,
    ) -> Result<Result<String, Failure>, StoreError> {
        let handler = self
            .inner
            .handlers
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::Internal(format!("no workflow named {name}")))?;
        let ctx = WorkflowCtx {
            engine: self.clone(),
            organization_id,
            id,
            actor,
            next_step: 0,
            run: run.clone(),
        };
        // A resumed run's workflow is queued already: its lease is renewed from the start. The
        // heartbeat stops when the run ends, and also when this future is dropped mid-way (a
        // cancelled request): otherwise the orphaned heartbeat would keep renewing the lease of a
        // workflow nobody runs, and no other executor would ever recover it.
        {
            let mut state = lock_run(&run);
            if state.queued {
                state.heartbeat = Some(AbortOnDrop(self.spawn_heartbeat(id)));
            }
        }
        let result = handler(ctx, input).await;
        drop(lock_run(&run).heartbeat.take());
        match result {
            Ok(value) => {
                self.finish(&run, organization_id, id, Ok(value.to_string()))
                    .await
            }
            Err(StoreError::Failure(failure)) => {
                self.finish(&run, organization_id, id, Err(failure)).await
            }
            Err(StoreError::InjectedCrash) => {
                drop(lock_run(&run).open.take());
                Err(StoreError::InjectedCrash)
            }
            Err(StoreError::Superseded) => {
                drop(lock_run(&run).open.take());
                let mut tx = self.inner.store.tenant(organization_id, false).await?;
                let row = load_row(&mut tx, id).await?;
                tx.commit().await?;
                recorded_outcome(&row)?.ok_or_else(|| {
                    StoreError::Internal("superseded by a run that recorded nothing".into())
                })
            }
            Err(error) => {
                // What the run did so far (its claim, its journalled steps) is committed, released
                // for the next recovery pass. If that fails too and nothing was ever committed,
                // there is nothing to retry: the error goes back to the client, whose retry runs
                // afresh.
                let flushed = self.flush(&run, id, false).await;
                if !lock_run(&run).durable {
                    tracing::warn!(workflow.id = %id, error = %error, "request failed before anything was committed");
                    return Err(error);
                }
                if let Err(e) = flushed {
                    tracing::warn!(workflow.id = %id, error = %e, "committing a failed run's steps failed");
                }
                let attempts = self.release(organization_id, id).await.unwrap_or(0);
                // An outside party (a payment provider) that did not answer: the workflow waits
                // for it however long it takes. Recording a failure here could abandon money it
                // already moved; each retry asks again with the same key.
                if matches!(error, StoreError::Unavailable { .. }) {
                    tracing::warn!(workflow.id = %id, attempts, error = %error, "waiting for an outside party");
                    return Err(error);
                }
                tracing::error!(workflow.id = %id, attempts, error = %error, "workflow failed");
                if attempts >= MAX_ATTEMPTS && !self.inner.never_give_up.contains(name) {
                    let failure = Failure::new(
                        FailureKind::Internal,
                        "INTERNAL",
                        "the request failed repeatedly for an internal reason",
                    );
                    return self.finish(&run, organization_id, id, Err(failure)).await;
                }
                Err(error)
            }
        }
    }

    fn spawn_heartbeat(&self, id: WorkflowId) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        let every = self.inner.config.lease / 3;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = engine.renew(id).await {
                    tracing::warn!(workflow.id = %id, error = %e, "lease renewal failed");
                }
            }
        })
    }

    async fn renew(&self, id: WorkflowId) -> Result<(), StoreError> {
        let store = &self.inner.store;
        let mut tx = store.shared(true).await?;
        tx.execute(
            "UPDATE workflow_queue SET lease_expires_at = $1 WHERE workflow_id = $2 AND executor_id = $3",
            args![store.now() + self.lease(), id.as_uuid(), self.inner.config.executor_id.as_str()],
        )
        .await?;
        tx.commit().await
    }

    /// Gives up the claim so that recovery retries soon; returns the attempts made so far.
    async fn release(
        &self,
        organization_id: OrganizationId,
        id: WorkflowId,
    ) -> Result<i64, StoreError> {
        let store = &self.inner.store;
        let mut tx = store.tenant(organization_id, true).await?;
        let now = tx.now();
        // Only this executor's own claim: a run whose lease expired under it must not expire
        // the lease of the run that took over.
        tx.execute(
            "UPDATE workflow_queue SET lease_expires_at = $1 WHERE workflow_id = $2 AND executor_id = $3",
            args![now, id.as_uuid(), self.inner.config.executor_id.as_str()],
        )
        .await?;
        let row = tx
            .fetch_one(
                "SELECT attempts FROM workflows WHERE organization_id = $1 AND id = $2",
                args![tx.org(), id.as_uuid()],
            )
            .await?;
        tx.commit().await?;
        row.get("attempts")
    }

    /// Records a run's outcome: in the run's open transaction when it has one (the last step's,
    /// or a new request's claim), so that they commit together; otherwise in a transaction of its
    /// own.
    async fn finish(
        &self,
        run: &SharedRun,
        organization_id: OrganizationId,
        id: WorkflowId,
        outcome: Result<String, Failure>,
    ) -> Result<Result<String, Failure>, StoreError> {
        let (open, durable, queued, mut journal) = {
            let mut state = lock_run(run);
            (
                state.open.take(),
                state.durable,
                state.queued,
                state.journal.take(),
            )
        };
        let refused = matches!(&outcome, Err(f) if f.kind == FailureKind::Validation);
        let mut tx = match open {
            // Nothing of a refused new request was ever committed: rolling back forgets it, and
            // the key stays free for the corrected request.
            Some(tx) if refused && !durable => {
                drop(tx);
                return Ok(outcome);
            }
            Some(tx) => tx,
            // Another request took the key while this run's claim was rolled back: the
            // caller's retry loop finds its row and answers with its outcome.
            None if !durable && lock_run(run).lost => return Err(StoreError::Forgotten),
            None if !durable => {
                return Err(StoreError::Internal(
                    "the run lost its transaction before recording anything".into(),
                ));
            }
            None => self.inner.store.tenant(organization_id, true).await?,
        };
        let now = tx.now();
        if refused {
            // `forget` counts the journal: the open step's row must be there.
            if let Some(journal) = journal.take() {
                write_journal(&mut tx, id, &journal).await?;
            }
        }
        if refused && forget(&mut tx, id).await? {
            tx.commit().await?;
            self.inner.finished.notify_waiters();
            return Ok(outcome);
        }
        let (status, output, error) = match &outcome {
            Ok(text) => ("succeeded", Some(text.clone()), None),
            Err(failure) => ("failed", None, Some(serde_json::to_string(failure)?)),
        };
        const RECORD: &str = "UPDATE workflows SET status = $1, output = $2, error = $3, updated_at = $4, \
             completed_at = $4 WHERE organization_id = $5 AND id = $6 AND status = 'pending'";
        let mut values = args![status, output, error, now, tx.org(), id.as_uuid()];
        let updated = match journal {
            // The last step's journal row and the outcome in one statement.
            // The last step's journal row, its change-feed rows and the outcome in one
            // statement: the feed counter's lock is then held only for the commit.
            Some(journal) if self.inner.store.backend() == Backend::Postgres => {
                values.extend(args![journal.index, journal.name, journal.output]);
                let feed = match tx.take_feed_ctes(10) {
                    Some((ctes, feed_values)) => {
                        values.extend(feed_values);
                        format!(", {ctes}")
                    }
                    None => String::new(),
                };
                tx.mark_written();
                tx.execute(
                    &format!(
                        "WITH journal AS (INSERT INTO workflow_steps (organization_id, workflow_id, \
                         step_index, name, output, created_at) VALUES ($5, $6, $7, $8, $9, $4)){feed} {RECORD}"
                    ),
                    values,
                )
                .await?
            }
            Some(journal) => {
                write_journal(&mut tx, id, &journal).await?;
                tx.execute(RECORD, values).await?
            }
            None => tx.execute(RECORD, values).await?,
        };
        if queued {
            tx.execute(
                "DELETE FROM workflow_queue WHERE workflow_id = $1",
                args![id.as_uuid()],
            )
            .await?;
        }
        let recorded = if updated == 1 {
            outcome
        } else {
            // Someone else recorded an outcome first (a recovered duplicate run): theirs stands.
            let row = load_row(&mut tx, id).await?;
            recorded_outcome(&row)?
                .ok_or_else(|| StoreError::Internal("workflow neither pending nor done".into()))?
        };
        let fault = |point| {
            self.inner
                .commit_fault
                .as_ref()
                .is_some_and(|hook| hook(id, point))
        };
        if fault(CommitPoint::BeforeCommit) {
            return Err(StoreError::InjectedCrash);
        }
        tx.commit().await?;
        self.inner.finished.notify_waiters();
        if fault(CommitPoint::AfterCommit) {
            return Err(StoreError::InjectedCrash);
        }
        Ok(recorded)
    }

    async fn wait_for(
        &self,
        organization_id: OrganizationId,
        id: WorkflowId,
        wait: Duration,
    ) -> Result<Completed, StoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.inner.finished.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let mut tx = self.inner.store.tenant(organization_id, false).await?;
            let row = load_row(&mut tx, id).await?;
            let lease = tx
                .fetch_optional(
                    "SELECT lease_expires_at FROM workflow_queue WHERE workflow_id = $1",
                    args![id.as_uuid()],
                )
                .await?;
            tx.commit().await?;
            if let Some(outcome) = recorded_outcome(&row)? {
                let trace_id = row.get("trace_id")?;
                return Ok(Completed {
                    workflow_id: id,
                    outcome,
                    trace_id,
                    replayed: true,
                });
            }
            // The run we wait for lost its lease (its process died, or its client went away
            // before runs had tasks of their own): take it over now, as a retry would.
            let expired = match lease {
                Some(row) => row.get::<DateTime<Utc>>("lease_expires_at")? < self.inner.store.now(),
                None => false,
            };
            if expired && self.claim_stalled(id).await? {
                self.resume(id, organization_id).await?;
                continue;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(StoreError::InProgress);
            }
            // Woken at once by a finish in this process; the poll covers other processes.
            let poll = (deadline - now).min(Duration::from_millis(50));
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// Resumes pending workflows: those whose lease has expired and, when `own` is set (at
    /// start-up), those left by this executor id. Runs each to its end and returns how many it
    /// ran.
    pub async fn recover(&self, own: bool) -> Result<usize, StoreError> {
        let mut total = 0;
        loop {
            let claimed = self.claim_expired(own).await?;
            if claimed.is_empty() {
                return Ok(total);
            }
            let mut failed = false;
            for (id, organization_id) in claimed {
                total += 1;
                match self.resume(id, organization_id).await {
                    Ok(()) | Err(StoreError::InjectedCrash) => {}
                    Err(e) => {
                        tracing::error!(workflow.id = %id, error = %e, "recovery failed");
                        failed = true;
                    }
                }
            }
            // The rest of the batch ran (a workflow waiting on a provider does not hold up the
            // others it was claimed with); a failed one's lease was released, so stop this pass
            // rather than claim it again at once: a later pass retries it.
            if failed {
                return Ok(total);
            }
        }
    }

    /// Claims one pending workflow if its lease has run out; whether it did.
    async fn claim_stalled(&self, id: WorkflowId) -> Result<bool, StoreError> {
        let store = &self.inner.store;
        let mut tx = store.shared(true).await?;
        let now = store.now();
        let claimed = tx
            .execute(
                "UPDATE workflow_queue SET executor_id = $1, lease_expires_at = $2 \
                 WHERE workflow_id = $3 AND lease_expires_at < $4",
                args![
                    self.inner.config.executor_id.as_str(),
                    now + self.lease(),
                    id.as_uuid(),
                    now
                ],
            )
            .await?;
        tx.commit().await?;
        Ok(claimed == 1)
    }

    async fn claim_expired(
        &self,
        own: bool,
    ) -> Result<Vec<(WorkflowId, OrganizationId)>, StoreError> {
        let store = &self.inner.store;
        let mut tx = store.shared(true).await?;
        let now = store.now();
        let me = self.inner.config.executor_id.as_str();
        let lock = match store.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let rows = tx
            .fetch_all(
                &format!(
                    "SELECT workflow_id, organization_id FROM workflow_queue \
                     WHERE lease_expires_at < $1 OR (executor_id = $2 AND $3) \
                     ORDER BY lease_expires_at LIMIT 16{lock}"
                ),
                args![now, me, own],
            )
            .await?;
        let mut claimed = Vec::with_capacity(rows.len());
        for row in rows {
            let id: Uuid = row.get("workflow_id")?;
            tx.execute(
                "UPDATE workflow_queue SET executor_id = $1, lease_expires_at = $2 WHERE workflow_id = $3",
                args![me, now + self.lease(), id],
            )
            .await?;
            claimed.push((
                WorkflowId::from_uuid(id),
                OrganizationId::from_uuid(row.get("organization_id")?),
            ));
        }
        tx.commit().await?;
        Ok(claimed)
    }

    async fn resume(
        &self,
        id: WorkflowId,
        organization_id: OrganizationId,
    ) -> Result<(), StoreError> {
        let store = &self.inner.store;
        let mut tx = store.tenant(organization_id, true).await?;
        let row = match load_row(&mut tx, id).await {
            Err(StoreError::Forgotten) => None,
            other => Some(other?),
        };
        let status: String = match &row {
            Some(row) => row.get("status")?,
            None => "forgotten".into(),
        };
        if status != "pending" {
            tx.execute(
                "DELETE FROM workflow_queue WHERE workflow_id = $1",
                args![id.as_uuid()],
            )
            .await?;
            tx.commit().await?;
            return Ok(());
        }
        tx.execute(
            "UPDATE workflows SET attempts = attempts + 1, executor_id = $1, updated_at = $2 \
             WHERE organization_id = $3 AND id = $4",
            args![
                self.inner.config.executor_id.as_str(),
                tx.now(),
                tx.org(),
                id.as_uuid()
            ],
        )
        .await?;
        tx.commit().await?;
        let Some(row) = row else {
            return Ok(());
        };
        let name: String = row.get("name")?;
        let input: serde_json::Value = serde_json::from_str(&row.get::<String>("input")?)?;
        let actor = row
            .get::<Option<Uuid>>("actor_user_id")?
            .map(UserId::from_uuid);
        let run = Arc::new(std::sync::Mutex::new(RunState {
            durable: true,
            queued: true,
            ..RunState::default()
        }));
        let Some((&name, _)) = self.inner.handlers.get_key_value(name.as_str()) else {
            let failure = Failure::new(
                FailureKind::Internal,
                "INTERNAL",
                format!("no workflow named {name}"),
            );
            return self
                .finish(&run, organization_id, id, Err(failure))
                .await
                .map(|_| ());
        };
        let span = tracing::info_span!("workflow.recover", workflow.id = %id, workflow.name = name);
        self.execute(id, organization_id, name, actor, input, run)
            .instrument(span)
            .await
            .map(|_| ())
    }

    fn fault(&self, id: WorkflowId, index: i64, name: &str) -> Result<(), StoreError> {
        match &self.inner.config.fault {
            Some(hook) if hook(id, index, name) => Err(StoreError::InjectedCrash),
            _ => Ok(()),
        }
    }

    /// Runs recovery every `every` until the returned task is aborted: the server's background
    /// loop that picks up the workflows of executors that died.
    pub fn spawn_recovery_loop(&self, every: Duration) -> tokio::task::JoinHandle<()> {
        let engine = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Err(e) = engine.recover(false).await {
                    tracing::warn!(error = %e, "recovery pass failed");
                }
            }
        })
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn load_row(tx: &mut TenantTx, id: WorkflowId) -> Result<Row, StoreError> {
    let org = tx.org();
    tx.fetch_optional(
        "SELECT name, status, output, error, trace_id, input, actor_user_id FROM workflows \
         WHERE organization_id = $1 AND id = $2",
        args![org, id.as_uuid()],
    )
    .await?
    .ok_or(StoreError::Forgotten)
}

/// Drops the claim of a workflow refused with a `400` before any step committed, so that the
/// key stays free for the corrected request: nothing happened, so there is nothing to record.
/// Whether it did. A workflow that journalled a step keeps its refusal like any other.
async fn forget(tx: &mut TenantTx, id: WorkflowId) -> Result<bool, StoreError> {
    let org = tx.org();
    // Lock the row first, as every step does: another run of the workflow (a lease that expired
    // under a live executor) cannot journal a step between the count and the delete.
    let lock = format!(
        "SELECT status FROM workflows WHERE organization_id = $1 AND id = $2{}",
        tx.for_update()
    );
    if tx
        .fetch_optional(&lock, args![org, id.as_uuid()])
        .await?
        .is_none()
    {
        return Ok(false);
    }
    let steps: i64 = tx
        .fetch_one(
            "SELECT COUNT(*) AS n FROM workflow_steps WHERE organization_id = $1 AND workflow_id = $2",
            args![org, id.as_uuid()],
        )
        .await?
        .get("n")?;
    if steps > 0 {
        return Ok(false);
    }
    let deleted = tx
        .execute(
            "DELETE FROM workflows WHERE organization_id = $1 AND id = $2 AND status = 'pending'",
            args![org, id.as_uuid()],
        )
        .await?;
    if deleted == 1 {
        tx.execute(
            "DELETE FROM workflow_queue WHERE workflow_id = $1",
            args![id.as_uuid()],
        )
        .await?;
    }
    Ok(deleted == 1)
}

fn recorded_outcome(row: &Row) -> Result<Option<Result<String, Failure>>, StoreError> {
    let status: String = row.get("status")?;
    Ok(match status.as_str() {
        "succeeded" => Some(Ok(row
            .get::<Option<String>>("output")?
            .unwrap_or_else(|| "null".into()))),
        "failed" | "cancelled" => {
            let error: Option<String> = row.get("error")?;
            let failure = match error {
                Some(text) => serde_json::from_str(&text)?,
                None => Failure::new(
                    FailureKind::Conflict,
                    "WORKFLOW_CANCELLED",
                    "the workflow was cancelled",
                ),
            };
            Some(Err(failure))
        }
        _ => None,
    })
}

/// What a running workflow uses to take its steps.
pub struct WorkflowCtx {
    engine: Engine,
    organization_id: OrganizationId,
    id: WorkflowId,
    actor: Option<UserId>,
    next_step: i64,
    run: SharedRun,
}

impl WorkflowCtx {
    /// The workflow's id.
    pub fn workflow_id(&self) -> WorkflowId {
        self.id
    }

    /// The organization it runs for.
    pub fn organization_id(&self) -> OrganizationId {
        self.organization_id
    }

    /// Who started it.
    pub fn actor(&self) -> Option<UserId> {
        self.actor
    }

    /// The store, for what an external step reads on its own (a read-only transaction opened
    /// and closed inside the step).
    pub fn store(&self) -> Store {
        self.engine.inner.store.clone()
    }

    /// Runs a transactional step: `body`'s effects and the step's journal row commit together,
    /// so the step happens exactly once. If the journal already holds this step (a re-run after
    /// a crash), `body` is not run and the recorded output is returned. A refusal from `body`
    /// rolls its effects back.
    ///
    /// The step's transaction is left open for what follows (see `RunState`): the workflow's
    /// outcome commits in it if this was the last step, and the first step of a new request
    /// runs in the transaction that holds the claim. With a fault hook set, every step commits on
    /// its own before the hook is asked, so that a test can stop at each boundary.
    pub async fn step<T, F>(&mut self, name: &str, body: F) -> Result<T, StoreError>
    where
        T: Serialize + DeserializeOwned + Send,
        F: for<'t> FnOnce(&'t mut TenantTx) -> StepFuture<'t, T> + Send,
    {
        let index = self.next_step;
        self.next_step += 1;
        let span = tracing::info_span!("workflow.step", step.name = name, step.index = index);
        let engine = self.engine.clone();
        let run = self.run.clone();
        let (org, id, actor) = (self.organization_id, self.id, self.actor);
        let output = async move {
            // A new request's first step goes on in the claim's transaction: the row was just
            // inserted there, so no other run can have journalled anything.
            let claim = {
                let mut state = lock_run(&run);
                if state.durable { None } else { state.open.take() }
            };
            let fresh = claim.is_some();
            let mut tx = match claim {
                Some(tx) => tx,
                None => {
                    engine.flush(&run, id, true).await?;
                    engine.inner.store.tenant_as(org, true, actor, Some(id)).await?
                }
            };
            if !fresh {
                // Lock the workflow row first: two runs of one workflow (a lease that expired
                // under a live executor) take their steps one at a time, and a run that finds the
                // workflow already finished stops instead of acting on it.
                let status_sql = format!(
                    "SELECT status FROM workflows WHERE organization_id = $1 AND id = $2{}",
                    tx.for_update()
                );
                let status = tx.fetch_optional(&status_sql, args![org.as_uuid(), id.as_uuid()]).await?;
                if status.map(|r| r.get::<String>("status")).transpose()?.as_deref() != Some("pending") {
                    return Err(StoreError::Superseded);
                }
                let journalled = tx
                    .fetch_optional(
                        "SELECT output FROM workflow_steps WHERE organization_id = $1 AND workflow_id = $2 \
                         AND step_index = $3",
                        args![org.as_uuid(), id.as_uuid(), index],
                    )
                    .await?;
                if let Some(row) = journalled {
                    let value = serde_json::from_str::<T>(&row.get::<String>("output")?)?;
                    lock_run(&run).open = Some(tx);
                    return Ok((value, false));
                }
            }
            let value = match body(&mut tx).await {
                Ok(value) => value,
                Err(error) => {
                    // Rolls back the step's effects, and with a new request's first step its
                    // claim too: claimed again, the run goes on as if only the step had.
                    drop(tx);
                    if fresh && let Err(e) = engine.reclaim(&run, id).await {
                        tracing::warn!(workflow.id = %id, error = %e, "claiming again after a refused step failed");
                    }
                    return Err(error);
                }
            };
            let journal = JournalRow {
                index,
                name: name.to_owned(),
                output: serde_json::to_string(&value)?,
            };
            {
                let mut state = lock_run(&run);
                state.open = Some(tx);
                state.journal = Some(journal);
            }
            if engine.inner.config.fault.is_some() {
                engine.flush(&run, id, true).await?;
            }
            Ok::<(T, bool), StoreError>((value, true))
        }
        .instrument(span)
        .await?;
        // Only a step that ran now is a boundary to crash at; a replayed one already was.
        if output.1 {
            self.engine.fault(self.id, index, name)?;
        }
        Ok(output.0)
    }

    /// Runs an external step: `call` is given an idempotency key derived from the workflow id and
    /// the step's index (stable across re-runs) and its answer is journalled afterwards. If the
    /// journal already holds the answer, `call` is not made again. A crash between the call and
    /// the journal write makes the call again, with the same key, so the other party must
    /// deduplicate on it.
    pub async fn external<T, F, Fut>(&mut self, name: &str, call: F) -> Result<T, StoreError>
    where
        T: Serialize + DeserializeOwned + Send,
        F: FnOnce(String) -> Fut + Send,
        Fut: Future<Output = Result<T, StoreError>> + Send,
    {
        let index = self.next_step;
        self.next_step += 1;
        let span = tracing::info_span!(
            "workflow.external_step",
            step.name = name,
            step.index = index
        );
        let store = self.engine.inner.store.clone();
        let (org, id) = (self.organization_id, self.id);
        // What the run did so far is committed, and the workflow queued, before the call: the
        // outside world must never hear of a request the database has forgotten.
        self.engine.flush(&self.run, id, true).await?;
        let output = async move {
            let select = "SELECT output FROM workflow_steps WHERE organization_id = $1 AND workflow_id = $2 \
                          AND step_index = $3";
            let mut tx = store.tenant(org, false).await?;
            let journalled = tx.fetch_optional(select, args![org.as_uuid(), id.as_uuid(), index]).await?;
            // Not called out for a workflow that an operator cancelled or another run finished.
            let status = tx
                .fetch_optional(
                    "SELECT status FROM workflows WHERE organization_id = $1 AND id = $2",
                    args![org.as_uuid(), id.as_uuid()],
                )
                .await?;
            tx.commit().await?;
            if let Some(row) = journalled {
                return Ok((serde_json::from_str::<T>(&row.get::<String>("output")?)?, false));
            }
            if status.map(|r| r.get::<String>("status")).transpose()?.as_deref() != Some("pending") {
                return Err(StoreError::Superseded);
            }
            let value = call(format!("{id}-{index}")).await?;
            let mut tx = store.tenant(org, true).await?;
            let now = tx.now();
            let inserted = tx
                .execute(
                    "INSERT INTO workflow_steps (organization_id, workflow_id, step_index, name, output, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    args![org.as_uuid(), id.as_uuid(), index, name, serde_json::to_string(&value)?, now],
                )
                .await?;
            let value = if inserted == 1 {
                value
            } else {
                let row = tx.fetch_one(select, args![org.as_uuid(), id.as_uuid(), index]).await?;
                serde_json::from_str::<T>(&row.get::<String>("output")?)?
            };
            tx.commit().await?;
            Ok::<(T, bool), StoreError>((value, true))
        }
        .instrument(span)
        .await?;
        if output.1 {
            self.engine.fault(self.id, index, name)?;
        }
        Ok(output.0)
    }
}

/// The status of a workflow, as operators see it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowSummary {
    /// Its id.
    pub id: WorkflowId,
    /// Its versioned name.
    pub name: String,
    /// The procedure that started it.
    pub procedure: String,
    /// The caller's idempotency key.
    pub idempotency_key: Uuid,
    /// pending, succeeded, failed or cancelled.
    pub status: String,
    /// How many times it was started.
    pub attempts: i64,
    /// The executor that ran it last.
    pub executor_id: Option<String>,
    /// The refusal, when it failed.
    pub error: Option<Failure>,
    /// How many steps it has journalled.
    pub steps: i64,
    /// The trace it started in.
    pub trace_id: Option<String>,
    /// When it started.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it finished.
    pub completed_at: Option<DateTime<Utc>>,
}
