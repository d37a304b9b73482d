//! Application services: the workflows that load state, ask `hestami-core`, and save.
//!
//! Each mutating procedure is a variant of one workflow's command enum, tagged with its
//! procedure name (`customer/v1/create`), so the recorded workflow input says exactly what was
//! asked and recovery can run it again. Reads do not need the engine: they run in one read-only
//! tenant transaction. The HTTP layer and the CLI call these functions and nothing below them.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use uuid::Uuid;

use hestami_core::ids::{OrganizationId, UserId};

use self::payments::{ManualProvider, PaymentProvider};
use crate::engine::{Completed, Engine, EngineBuilder, EngineConfig, Start};
use crate::error::{Failure, FieldError, StoreError};
use crate::store::{Store, TenantTx};

pub mod appointment;
pub mod attachments;
pub mod board;
pub mod compliance_scan;
pub mod contractor;
pub mod customer;
pub mod delivery;
pub mod dispatch_plan;
pub mod eligibility;
pub mod estimate;
pub mod field;
pub mod forms;
pub mod inventory;
pub mod invoice;
pub mod job;
pub mod maintenance;
pub mod members;
pub mod notes;
pub mod org;
pub mod payments;
pub mod pricebook;
pub mod pricebook_import;
pub mod procurement;
mod scope;
pub mod sync;
pub mod technician;
pub mod time;
pub mod timers;
pub mod trades;
pub mod webhooks;
pub mod workflow;
pub mod workforce;
pub mod workorder;

/// Who is calling, for which organization. Built by the HTTP layer after authentication and the
/// membership check; the store uses no other organization id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The organization the call runs in.
    pub organization_id: OrganizationId,
    /// The user calling, when a person is.
    pub user_id: Option<UserId>,
    /// What the caller may see: everything, or a technician's own work.
    pub scope: crate::store::Scope,
}

impl Caller {
    /// A caller who sees the whole organization.
    pub fn new(organization_id: OrganizationId, user_id: Option<UserId>) -> Self {
        Self {
            organization_id,
            user_id,
            scope: crate::store::Scope::Organization,
        }
    }
}

/// What a command acts on, for a caller confined to a technician's own work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subject {
    /// A job (the caller must be on it: its technician, or on one of its appointments).
    Job(hestami_core::ids::JobId),
    /// An appointment (the caller must be on its crew).
    Appointment(hestami_core::ids::AppointmentId),
    /// A customer (of a job the caller is on).
    Customer(hestami_core::ids::CustomerId),
    /// An estimate (of a job the caller is on, or without a job of such a customer).
    Estimate(hestami_core::ids::EstimateId),
    /// An invoice (of a job the caller is on).
    Invoice(hestami_core::ids::InvoiceId),
    /// A technician (the caller must be that technician).
    Technician(hestami_core::ids::TechnicianId),
}

/// A mutating request: the command and what makes it idempotent.
#[derive(Clone, Debug)]
pub struct Request<C> {
    /// The caller's idempotency key.
    pub idempotency_key: Uuid,
    /// The fingerprint of the request as received (see [`crate::engine::fingerprint`]).
    pub fingerprint: String,
    /// The trace this request belongs to.
    pub trace_id: Option<String>,
    /// What is asked.
    pub command: C,
}

/// A command that runs as a workflow.
pub trait Command: Serialize {
    /// The versioned workflow it runs in.
    const WORKFLOW: &'static str;
    /// The API procedure it is (`customer/v1/create`).
    fn procedure(&self) -> &'static str;
    /// The job or appointment it acts on, when a technician's scope must allow it.
    fn subject(&self) -> Option<Subject> {
        None
    }
    /// Whether it may leave a timer due now (an agreement put in force): the process's timer
    /// loop is woken rather than waiting for its next minute.
    fn wakes_timers(&self) -> bool {
        false
    }
}

/// A change to an optional field: leave it, clear it, or set it. Unlike `Option<Option<T>>`, it
/// survives a round trip through the workflow journal.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Patch<T> {
    /// Leave the field as it is.
    #[default]
    Keep,
    /// Clear the field.
    Clear,
    /// Set the field.
    Set(T),
}

impl<T> Patch<T> {
    /// Applies the patch to the current value.
    pub fn apply(self, current: Option<T>) -> Option<T> {
        match self {
            Self::Keep => current,
            Self::Clear => None,
            Self::Set(v) => Some(v),
        }
    }
}

/// A page of a list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items, in id order (creation order: ids are UUIDv7).
    pub items: Vec<T>,
    /// Pass it as `cursor` to get the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// The largest page a list returns.
pub const MAX_LIMIT: u32 = 200;
/// The page size when none is asked for.
pub const DEFAULT_LIMIT: u32 = 50;

/// A validated page request: how many, and after which id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// How many items at most.
    pub limit: u32,
    /// Only items after this id.
    pub after: Option<Uuid>,
}

impl PageRequest {
    /// Parses `limit` (1 to [`MAX_LIMIT`], default [`DEFAULT_LIMIT`]) and an opaque `cursor`.
    pub fn parse(limit: Option<u32>, cursor: Option<&str>) -> Result<Self, Failure> {
        let mut errors = Vec::new();
        let limit = limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            errors.push(FieldError {
                field: "limit".into(),
                code: "out_of_range".into(),
                message: format!("limit is between 1 and {MAX_LIMIT}"),
            });
        }
        let after = match cursor {
            None => None,
            Some(c) => match c
                .strip_prefix("c1.")
                .and_then(|hex| Uuid::try_parse(hex).ok())
            {
                Some(id) => Some(id),
                None => {
                    errors.push(FieldError {
                        field: "cursor".into(),
                        code: "invalid_cursor".into(),
                        message: "the cursor is not one this server returned".into(),
                    });
                    None
                }
            },
        };
        if errors.is_empty() {
            Ok(Self { limit, after })
        } else {
            Err(Failure::validation(errors))
        }
    }

    /// Builds the page from up to `limit + 1` fetched items: the extra one only says there is more.
    pub(crate) fn page<T>(&self, mut items: Vec<T>, id_of: impl Fn(&T) -> Uuid) -> Page<T> {
        let more = items.len() > self.limit as usize;
        items.truncate(self.limit as usize);
        let next_cursor = if more {
            items
                .last()
                .map(|last| format!("c1.{}", id_of(last).simple()))
        } else {
            None
        };
        Page { items, next_cursor }
    }
}

/// The services: every procedure of the API as a typed function.
#[derive(Clone, Debug)]
pub struct Services {
    engine: Engine,
    wait: Duration,
    relay: Arc<delivery::RelaySettings>,
    /// Wakes [`Services::spawn_timer_loop`] early.
    timers_due: Arc<tokio::sync::Notify>,
}

/// Workflows that, once started, must finish: never failed for an internal error, never
/// cancelled by an operator (their external steps may have moved money).
pub const MUST_FINISH: &[&str] = &[invoice::WORKFLOW, maintenance::WORKFLOW];

/// Registers every workflow of the application on `builder`, with the [`ManualProvider`] for
/// card and ACH payments (which refuses them).
pub fn register_all(builder: EngineBuilder) -> EngineBuilder {
    register_all_with(builder, Arc::new(ManualProvider))
}

/// Registers every workflow of the application on `builder`; card and ACH payments go through
/// `processor`.
pub fn register_all_with(
    builder: EngineBuilder,
    processor: Arc<dyn PaymentProvider>,
) -> EngineBuilder {
    let charges = processor.clone();
    builder
        .register(pricebook::WORKFLOW, pricebook::run)
        .register(estimate::WORKFLOW, estimate::run)
        .register(invoice::WORKFLOW, move |ctx, command| {
            invoice::run(ctx, command, processor.clone())
        })
        .never_give_up(MUST_FINISH[0])
        .register(org::WORKFLOW, org::run)
        .register(customer::WORKFLOW, customer::run)
        .register(technician::WORKFLOW, technician::run_any)
        .register(contractor::WORKFLOW, contractor::run)
        .register(compliance_scan::WORKFLOW, compliance_scan::run)
        .register(workflow::WORKFLOW, workflow::run)
        .register(job::WORKFLOW, job::run)
        .register(job::DISPATCH_WORKFLOW, job::run_dispatch)
        .register(appointment::WORKFLOW, appointment::run)
        .register(dispatch_plan::WORKFLOW, dispatch_plan::run)
        .register(attachments::WORKFLOW, attachments::run)
        .register(forms::WORKFLOW, forms::run)
        .register(delivery::WORKFLOW, delivery::run)
        .register(webhooks::WORKFLOW, webhooks::run)
        .register(members::WORKFLOW, members::run)
        .register(inventory::WORKFLOW, inventory::run)
        .register(procurement::WORKFLOW, procurement::run)
        .register(workorder::WORKFLOW, workorder::run)
        .register(maintenance::WORKFLOW, move |ctx, command| {
            maintenance::run(ctx, command, charges.clone())
        })
        // A tick charges cards through the invoice path's external steps.
        .never_give_up(MUST_FINISH[1])
}

impl Services {
    /// An engine with every application workflow registered, and the services over it. Card and
    /// ACH payments are refused ([`ManualProvider`]); see [`Services::with_processor`].
    pub fn new(store: Store, config: EngineConfig) -> Self {
        Self::with_processor(store, config, Arc::new(ManualProvider))
    }

    /// Like [`Services::new`], with card and ACH payments going through `processor`.
    pub fn with_processor(
        store: Store,
        config: EngineConfig,
        processor: Arc<dyn PaymentProvider>,
    ) -> Self {
        let engine = register_all_with(Engine::builder(store, config), processor).build();
        Self {
            engine,
            wait: Duration::from_secs(30),
            relay: Arc::default(),
            timers_due: Arc::default(),
        }
    }

    /// The services over an engine built by the caller (with [`register_all`] or
    /// [`register_all_with`] and, in tests, injected faults).
    pub fn from_engine(engine: Engine) -> Self {
        Self {
            engine,
            wait: Duration::from_secs(30),
            relay: Arc::default(),
            timers_due: Arc::default(),
        }
    }

    /// Sets how long a duplicate request waits for the first one before it gets
    /// [`StoreError::InProgress`].
    pub fn with_wait(mut self, wait: Duration) -> Self {
        self.wait = wait;
        self
    }

    /// Sets what the outbox relay and webhooks deliver through (by default: no e-mail channel,
    /// webhooks to public addresses only).
    pub fn with_relay(mut self, relay: delivery::RelaySettings) -> Self {
        self.relay = Arc::new(relay);
        self
    }

    /// The engine (recovery, operations).
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The store.
    pub fn store(&self) -> &Store {
        self.engine.store()
    }

    /// Runs a mutating command through its workflow (or returns the recorded outcome of the same
    /// request).
    pub async fn submit<C: Command>(
        &self,
        caller: &Caller,
        request: Request<C>,
    ) -> Result<Completed, StoreError> {
        let procedure = request.command.procedure();
        if let (crate::store::Scope::Technician(_), Some(subject)) =
            (caller.scope, request.command.subject())
        {
            // A technician acts only on their own work; anything else is not found, as another
            // organization's ids are.
            self.read(caller, move |tx| Box::pin(visible_subject(tx, subject)))
                .await?;
        }
        let input = serde_json::to_value(&request.command)?;
        let wakes = request.command.wakes_timers();
        let completed = self
            .engine
            .run(Start {
                organization_id: caller.organization_id,
                actor: caller.user_id,
                procedure: procedure.to_owned(),
                workflow: C::WORKFLOW,
                idempotency_key: request.idempotency_key,
                fingerprint: request.fingerprint,
                input,
                trace_id: request.trace_id,
                wait: self.wait,
            })
            .await?;
        if wakes && completed.outcome.is_ok() {
            self.timers_due.notify_one();
        }
        Ok(completed)
    }

    /// Wakes this process's timer loop now.
    pub(crate) fn timers_due(&self) -> &tokio::sync::Notify {
        &self.timers_due
    }

    /// What a member with the `technician` role may see: the work of the technician linked to
    /// their user (none when no active technician is).
    pub async fn technician_scope(
        &self,
        organization_id: OrganizationId,
        user_id: UserId,
    ) -> Result<crate::store::Scope, StoreError> {
        let caller = Caller::new(organization_id, Some(user_id));
        let linked = self
            .read(&caller, move |tx| {
                Box::pin(technician::linked_to(tx, user_id))
            })
            .await?;
        Ok(crate::store::Scope::Technician(linked))
    }

    /// Runs `body` in one read-only transaction of the caller's organization.
    pub(crate) async fn read<T, F>(&self, caller: &Caller, body: F) -> Result<T, StoreError>
    where
        F: for<'t> FnOnce(&'t mut TenantTx) -> crate::engine::StepFuture<'t, T>,
    {
        let mut tx = self.store().tenant(caller.organization_id, false).await?;
        tx.set_scope(caller.scope);
        let value = body(&mut tx).await?;
        tx.commit().await?;
        Ok(value)
    }
}

/// `404` unless the transaction's scope may see `subject`.
pub(crate) async fn visible_subject(tx: &mut TenantTx, subject: Subject) -> Result<(), StoreError> {
    match subject {
        Subject::Job(id) => job::ensure_visible(tx, id).await,
        Subject::Appointment(id) => scope::ensure_appointment(tx, id).await,
        Subject::Customer(id) => scope::ensure_customer(tx, id).await,
        Subject::Estimate(id) => scope::ensure_estimate(tx, id).await,
        Subject::Invoice(id) => scope::ensure_invoice(tx, id).await,
        Subject::Technician(id) => match tx.scope() {
            crate::store::Scope::Technician(Some(own)) if own == id => Ok(()),
            crate::store::Scope::Organization => Ok(()),
            crate::store::Scope::Technician(_) => Err(Failure::not_found("technician").into()),
        },
    }
}

/// Decodes a recorded output into the type the procedure returns.
pub fn decode_output<T: DeserializeOwned>(text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Internal(format!("recorded output does not parse: {e}")))
}

/// Checks an `expectedVersion` against the current one.
pub(crate) fn check_version(
    what: &str,
    expected: Option<i64>,
    current: i64,
) -> Result<(), StoreError> {
    match expected {
        Some(expected) if expected != current => {
            Err(Failure::version_conflict(what, expected, current).into())
        }
        _ => Ok(()),
    }
}

/// A domain value kept as JSON in a row's `body` column (pricebook items, estimates,
/// invoices).
pub(crate) fn decode_body<T: DeserializeOwned>(row: &crate::db::Row) -> Result<T, StoreError> {
    Ok(serde_json::from_str(&row.get::<String>("body")?)?)
}

/// The `body` of the row of `table` with this id in the transaction's organization (locked
/// when `lock`); `404` naming `what` when there is none.
pub(crate) async fn load_body<T: DeserializeOwned>(
    tx: &mut TenantTx,
    table: &'static str,
    id: Uuid,
    lock: bool,
    what: &str,
) -> Result<T, StoreError> {
    let sql = format!(
        "SELECT body FROM {table} WHERE organization_id = $1 AND id = $2{}",
        if lock { tx.for_update() } else { "" }
    );
    let org = tx.org();
    let row = tx.fetch_optional(&sql, crate::db::args![org, id]).await?;
    row.map(|r| decode_body(&r))
        .transpose()?
        .ok_or_else(|| Failure::not_found(what).into())
}

/// Appends an aggregate's event, as JSON, to its event table (`estimate_events` keyed by
/// `estimate_id`, `invoice_events` by `invoice_id`).
pub(crate) async fn insert_event_body<E: Serialize>(
    tx: &mut TenantTx,
    table: &'static str,
    id_column: &'static str,
    id: Uuid,
    version: i64,
    event: &E,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), StoreError> {
    let org = tx.org();
    tx.execute(
        &format!(
            "INSERT INTO {table} (organization_id, {id_column}, version, body, at) VALUES ($1, $2, $3, $4, $5)"
        ),
        crate::db::args![org, id, version, serde_json::to_string(event)?, at],
    )
    .await?;
    Ok(())
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub(crate) fn like_pattern(query: &str) -> String {
    let mut escaped = String::with_capacity(query.len() + 2);
    escaped.push('%');
    for c in query.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped.push('%');
    escaped
}

/// A document an organization holds one of (its requirement table, its trade catalogue): JSON in
/// one column of a table keyed by the organization, with a version. No row means the shipped
/// default, version 0.
pub(crate) struct OrgSetting {
    /// The table.
    pub table: &'static str,
    /// The JSON column.
    pub column: &'static str,
    /// The change feed's entity kind.
    pub entity: &'static str,
}

impl OrgSetting {
    /// The organization's document and its version, or `None` for the default; locked with
    /// `lock`.
    pub(crate) async fn load<T: DeserializeOwned>(
        &self,
        tx: &mut TenantTx,
        lock: bool,
    ) -> Result<Option<(i64, T)>, StoreError> {
        let sql = format!(
            "SELECT version, {} AS body FROM {} WHERE organization_id = $1{}",
            self.column,
            self.table,
            if lock { tx.for_update() } else { "" }
        );
        let org = tx.org();
        match tx.fetch_optional(&sql, crate::db::args![org]).await? {
            None => Ok(None),
            Some(row) => Ok(Some((row.get("version")?, decode_body(&row)?))),
        }
    }

    /// Replaces the document at `current` version with `value`, records the change, and returns
    /// the new version.
    pub(crate) async fn save<T: Serialize>(
        &self,
        tx: &mut TenantTx,
        current: i64,
        value: &T,
    ) -> Result<i64, StoreError> {
        let (org, now, version) = (tx.org(), tx.now(), current + 1);
        let text = serde_json::to_string(value)?;
        let sql = if current == 0 {
            format!(
                "INSERT INTO {} (organization_id, version, {}, updated_at) VALUES ($1, $2, $3, $4)",
                self.table, self.column
            )
        } else {
            format!(
                "UPDATE {} SET version = $2, {} = $3, updated_at = $4 WHERE organization_id = $1",
                self.table, self.column
            )
        };
        tx.execute(&sql, crate::db::args![org, version, text, now])
            .await?;
        tx.record_change(self.entity, org, version, crate::store::Operation::Updated)
            .await?;
        Ok(version)
    }
}
