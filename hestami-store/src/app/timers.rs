//! Durable timers: rows in the shared `timers` table saying when something is next due for an
//! organization, fired by [`Services::fire_due_timers`].
//!
//! Two kinds exist:
//!
//! - **daily scans**, one row per organization and scan ([`DAILY`]): the compliance expiry scan,
//!   the invoice overdue scan and the inventory reorder pass, each due at 06:00 in the
//!   organization's time zone;
//! - **one-shot timers**, set and removed by the workflow that owns them, in the same
//!   transaction as the change that made them due or moot: an estimate's expiry at its
//!   `validUntil` (`estimate_expiry/<id>`), a job's SLA deadline (`job_sla/<id>`, set when the
//!   job is created) and an appointment's window end (`appointment_window/<id>`, moved by a
//!   reschedule, removed once the crew arrives or the visit is cancelled).
//!
//! A pass claims due rows with a short lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so several
//! processes share the work), starts the workflow with an idempotency key derived from what is
//! due (the organization's local date, or the estimate and the deadline it holds), and only then
//! advances or removes the row — the row as it leased it, so a timer set again meanwhile keeps
//! its new time. A crash anywhere in between is repaired by a later pass: the lease
//! expires, the same key finds the same workflow, and nothing happens twice.

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use hestami_core::ids::{AgreementId, AppointmentId, EstimateId, JobId, OrganizationId};

use super::appointment::{
    CheckSla, CheckWindow, JobV2Command, SLA_TIMER_PREFIX, WINDOW_TIMER_PREFIX,
};
use super::delivery::OUTBOX_TIMER_PREFIX;
use super::estimate::{EXPIRY_TIMER_PREFIX, EstimateCommandInput, ExpireEstimate};
use super::invoice::{InvoiceCommandInput, OVERDUE_TIMER, OverdueScan};
use super::webhooks::WEBHOOK_TIMER_PREFIX;
use super::{
    Caller, Command, Completed, Request, Services, compliance_scan, maintenance, procurement,
};
use crate::db::{Backend, args};
use crate::directory::load_organization;
use crate::error::StoreError;

/// How many due timers a pass claims at a time.
pub const TIMER_BATCH: usize = 64;

/// How many timers a pass fires at once.
pub const TIMER_CONCURRENCY: usize = 4;

/// Which timers a pass takes: the scheduled work, or the relay's deliveries. Two passes over
/// one table, so that a slow SMTP server or webhook receiver never delays a scan or an SLA
/// check, and each can run at its own pace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pass {
    Timers,
    Relay,
}

impl Pass {
    /// Which timers it takes. A relay without an e-mail channel leaves outbox messages to
    /// processes that have one (they stay pending, their timers due).
    fn filter(self, mail: bool) -> String {
        let relay =
            format!("(name LIKE '{OUTBOX_TIMER_PREFIX}%' OR name LIKE '{WEBHOOK_TIMER_PREFIX}%')");
        match self {
            Self::Timers => format!("NOT {relay}"),
            Self::Relay if mail => relay,
            Self::Relay => format!("name LIKE '{WEBHOOK_TIMER_PREFIX}%'"),
        }
    }

    /// How many it claims at once. The relay claims only what it starts at once: a delivery
    /// can take a minute (an SMTP conversation, a webhook pass), so a claimed timer waiting
    /// its turn behind others could outlive its lease and be claimed again elsewhere.
    fn batch(self) -> usize {
        match self {
            Self::Timers => TIMER_BATCH,
            Self::Relay => TIMER_CONCURRENCY,
        }
    }
}

/// A timer a pass has leased.
struct ClaimedTimer {
    organization_id: OrganizationId,
    name: String,
    /// The lease it was claimed with: its row's `due_at` until it is advanced.
    lease: DateTime<Utc>,
    /// When the pass started.
    now: DateTime<Utc>,
}

/// The daily timers every organization has.
pub const DAILY: [&str; 3] = [
    compliance_scan::TIMER,
    OVERDUE_TIMER,
    procurement::REORDER_TIMER,
];

/// SQL for a row's `id` as the hyphenated text timer names use.
fn uuid_text(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "id::text",
        // SQLite keeps uuids as 16-byte blobs.
        Backend::Sqlite => {
            "lower(substr(hex(id), 1, 8) || '-' || substr(hex(id), 9, 4) || '-' || substr(hex(id), 13, 4) || '-' || \
             substr(hex(id), 17, 4) || '-' || substr(hex(id), 21, 12))"
        }
    }
}

/// A stable idempotency key for `what` (`invoice_overdue_scan/2026-11-27`).
pub fn timer_key(what: &str) -> Uuid {
    let digest = Sha256::digest(what.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// What a due timer row means.
enum Due {
    /// A daily scan of the organization.
    Daily(&'static str),
    /// An estimate's expiry.
    EstimateExpiry(EstimateId),
    /// A job's SLA deadline.
    JobSla(JobId),
    /// The end of an appointment's window.
    AppointmentWindow(AppointmentId),
    /// An outbox message to deliver.
    Outbox(Uuid),
    /// A webhook subscription to feed.
    Webhook(Uuid),
    /// A maintenance agreement needing attention.
    Agreement(AgreementId),
    /// A name this version does not know (left alone).
    Unknown,
}

fn classify(name: &str) -> Due {
    if let Some(daily) = DAILY.iter().find(|d| **d == name) {
        return Due::Daily(daily);
    }
    let id = |prefix: &str| {
        name.strip_prefix(prefix)
            .and_then(|id| Uuid::try_parse(id).ok())
    };
    if let Some(id) = id(EXPIRY_TIMER_PREFIX) {
        Due::EstimateExpiry(EstimateId::from_uuid(id))
    } else if let Some(id) = id(SLA_TIMER_PREFIX) {
        Due::JobSla(JobId::from_uuid(id))
    } else if let Some(id) = id(WINDOW_TIMER_PREFIX) {
        Due::AppointmentWindow(AppointmentId::from_uuid(id))
    } else if let Some(id) = id(OUTBOX_TIMER_PREFIX) {
        Due::Outbox(id)
    } else if let Some(id) = id(WEBHOOK_TIMER_PREFIX) {
        Due::Webhook(id)
    } else if let Some(id) = maintenance::timer_agreement(name) {
        Due::Agreement(id)
    } else {
        Due::Unknown
    }
}

impl Services {
    /// Makes sure every organization has its daily timers (those created before a timer existed
    /// included). Idempotent.
    pub async fn ensure_timers(&self) -> Result<(), StoreError> {
        let store = self.store();
        let mut tx = store.shared(true).await?;
        for timer in DAILY {
            // `WHERE TRUE`: SQLite reads `ON CONFLICT` after a bare `SELECT … FROM t` as a
            // join's `ON`; a WHERE clause ends the SELECT (documented in SQLite's UPSERT notes).
            tx.execute(
                "INSERT INTO timers (organization_id, name, due_at) \
                 SELECT DISTINCT organization_id, $1, $2 FROM memberships WHERE TRUE ON CONFLICT DO NOTHING",
                args![timer, store.now()],
            )
            .await?;
        }
        let organizations = tx
            .fetch_all(
                "SELECT DISTINCT organization_id FROM memberships WHERE TRUE",
                args![],
            )
            .await?;
        tx.commit().await?;
        // Every job nobody has reached has its SLA timer, those created before SLA timers
        // existed included (a job's timer is set when it is created; this repairs the rest).
        for row in organizations {
            let org = OrganizationId::from_uuid(row.get("organization_id")?);
            let mut tx = store.tenant(org, true).await?;
            let jobs = tx
                .fetch_all(
                    &format!(
                        "SELECT id, sla_deadline FROM jobs WHERE organization_id = $1 \
                         AND status IN {} AND visit_started_at IS NULL AND sla_breached_at IS NULL",
                        super::job::not_yet_reached_sql()
                    ),
                    args![org.as_uuid()],
                )
                .await?;
            // Pending messages and active subscriptions have their timers (repairing any a
            // crash or an older version lost).
            tx.execute(
                &format!(
                    "INSERT INTO timers (organization_id, name, due_at) \
                     SELECT organization_id, '{OUTBOX_TIMER_PREFIX}' || {id}, $2 FROM outbox \
                     WHERE organization_id = $1 AND status = 'pending' ON CONFLICT DO NOTHING",
                    id = uuid_text(store.backend())
                ),
                args![org.as_uuid(), store.now()],
            )
            .await?;
            tx.execute(
                &format!(
                    "INSERT INTO timers (organization_id, name, due_at) \
                     SELECT organization_id, '{WEBHOOK_TIMER_PREFIX}' || {id}, $2 FROM webhook_subscriptions \
                     WHERE organization_id = $1 AND active ON CONFLICT DO NOTHING",
                    id = uuid_text(store.backend())
                ),
                args![org.as_uuid(), store.now()],
            )
            .await?;
            for chunk in jobs.chunks(300) {
                let mut sql =
                    String::from("INSERT INTO timers (organization_id, name, due_at) VALUES ");
                let mut values = args![org.as_uuid()];
                for (k, job) in chunk.iter().enumerate() {
                    let id: Uuid = job.get("id")?;
                    let due: DateTime<Utc> = job.get("sla_deadline")?;
                    if k > 0 {
                        sql.push_str(", ");
                    }
                    sql.push_str(&format!("($1, ${}, ${})", 2 * k + 2, 2 * k + 3));
                    values.extend(args![format!("{SLA_TIMER_PREFIX}{id}"), due]);
                }
                sql.push_str(" ON CONFLICT DO NOTHING");
                tx.execute(&sql, values).await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// Fires every timer that is due, each once however many processes call this at once, and
    /// returns how many were fired. It claims them [`TIMER_BATCH`] at a time and fires up to
    /// [`TIMER_CONCURRENCY`] at once, until none is due (or a whole batch failed: a later pass
    /// retries those once their lease runs out). The bound leaves most of the connection pool to
    /// requests while a morning's scans drain.
    pub async fn fire_due_timers(&self) -> Result<usize, StoreError> {
        self.pass(Pass::Timers).await
    }

    /// The relay's pass: delivers due outbox messages and feeds due webhook subscriptions (the
    /// timers `outbox/…` and `webhook/…`, which [`Services::fire_due_timers`] leaves alone), on
    /// the same terms — leased, several processes safe; returns how many it handled.
    pub async fn deliver_due(&self) -> Result<usize, StoreError> {
        self.pass(Pass::Relay).await
    }

    async fn pass(&self, pass: Pass) -> Result<usize, StoreError> {
        let mut fired = 0;
        loop {
            let due = self.claim_due_timers(pass).await?;
            let claimed = due.len();
            let semaphore = std::sync::Arc::new(tokio::sync::Semaphore::new(TIMER_CONCURRENCY));
            let mut tasks = tokio::task::JoinSet::new();
            for timer in due {
                let (services, semaphore) = (self.clone(), semaphore.clone());
                tasks.spawn(async move {
                    let _permit = semaphore.acquire_owned().await;
                    services.fire_claimed(timer).await
                });
            }
            let mut fired_now = 0;
            while let Some(joined) = tasks.join_next().await {
                match joined {
                    Ok(Ok(true)) => fired_now += 1,
                    Ok(Ok(false)) => {}
                    Ok(Err(e)) => tracing::warn!(error = %e, "advancing a fired timer failed"),
                    Err(e) => tracing::warn!(error = %e, "a timer's task failed"),
                }
            }
            fired += fired_now;
            if claimed < pass.batch() || fired_now == 0 {
                return Ok(fired);
            }
        }
    }

    /// Claims up to [`TIMER_BATCH`] due timers with a five-minute lease (`FOR UPDATE SKIP
    /// LOCKED` on PostgreSQL, so that several processes share the work).
    async fn claim_due_timers(&self, pass: Pass) -> Result<Vec<ClaimedTimer>, StoreError> {
        let store = self.store();
        let now = store.now();
        let mut tx = store.shared(true).await?;
        let lock = match store.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let rows = tx
            .fetch_all(
                &format!(
                    "SELECT organization_id, name FROM timers WHERE due_at <= $1 AND {which} \
                     ORDER BY due_at LIMIT {batch}{lock}",
                    which = pass.filter(self.relay().mailer.is_some()),
                    batch = pass.batch()
                ),
                args![now],
            )
            .await?;
        let lease = now + Duration::minutes(5);
        let mut due = Vec::with_capacity(rows.len());
        let mut keys: Vec<(Uuid, String)> = Vec::with_capacity(rows.len());
        for row in rows {
            keys.push((row.get("organization_id")?, row.get("name")?));
        }
        // A short lease, in one statement for the batch: if this process dies, another pass
        // takes the rows in five minutes.
        for chunk in keys.chunks(100) {
            let mut sql =
                String::from("UPDATE timers SET due_at = $1 WHERE (organization_id, name) IN (");
            let mut values = args![lease];
            for (k, (org, name)) in chunk.iter().enumerate() {
                if k > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("(${}, ${})", 2 * k + 2, 2 * k + 3));
                values.extend(args![*org, name.as_str()]);
            }
            sql.push(')');
            tx.execute(&sql, values).await?;
        }
        tx.commit().await?;
        for (org, name) in keys {
            due.push(ClaimedTimer {
                organization_id: OrganizationId::from_uuid(org),
                name,
                lease,
                now,
            });
        }
        Ok(due)
    }

    /// Fires one claimed timer and then advances or removes its row; whether it fired.
    async fn fire_claimed(&self, timer: ClaimedTimer) -> Result<bool, StoreError> {
        let ClaimedTimer {
            organization_id,
            name,
            lease,
            now,
        } = timer;
        let caller = Caller {
            organization_id,
            user_id: None,
            scope: Default::default(),
        };
        let next = match self.fire(&caller, &name, now).await {
            Ok(next) => next,
            Err(e) => {
                // This timer's lease expires and a later pass retries it; the others claimed
                // with it still run now.
                tracing::warn!(organization.id = %organization_id, timer = %name, error = %e, "timer failed");
                return Ok(false);
            }
        };
        // Only the row as this pass leased it: a workflow that set the timer again
        // meanwhile (an estimate revised and sent again) keeps its new due time.
        let mut tx = self.store().shared(true).await?;
        match next {
            Some(at) => {
                tx.execute(
                    "UPDATE timers SET due_at = $1 WHERE organization_id = $2 AND name = $3 AND due_at = $4",
                    args![at, organization_id.as_uuid(), name, lease],
                )
                .await?
            }
            None => {
                tx.execute(
                    "DELETE FROM timers WHERE organization_id = $1 AND name = $2 AND due_at = $3",
                    args![organization_id.as_uuid(), name, lease],
                )
                .await?
            }
        };
        tx.commit().await?;
        Ok(true)
    }

    /// Runs what a timer is for; returns when it is next due (`None`: remove it).
    async fn fire(
        &self,
        caller: &Caller,
        name: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        match classify(name) {
            Due::Daily(timer) => {
                let tz = self
                    .read(caller, |tx| Box::pin(load_organization(tx, false)))
                    .await?
                    .time_zone
                    .tz();
                let date = now.with_timezone(&tz).date_naive();
                if timer == compliance_scan::TIMER {
                    let command = compliance_scan::ScanCommand { date };
                    self.fire_once(caller, compliance_scan::scan_key(date), command)
                        .await?;
                } else if timer == procurement::REORDER_TIMER {
                    let command =
                        procurement::ProcurementCommand::Reorder(procurement::ReorderPass { date });
                    self.fire_once(caller, timer_key(&format!("{timer}/{date}")), command)
                        .await?;
                } else {
                    let command = InvoiceCommandInput::OverdueScan(OverdueScan { date });
                    self.fire_once(caller, timer_key(&format!("{timer}/{date}")), command)
                        .await?;
                }
                Ok(Some(compliance_scan::next_due(tz, now)))
            }
            Due::EstimateExpiry(estimate_id) => {
                // Keyed by the deadline the estimate holds (not the row's due time, which the
                // lease overwrites): a retry after a crash finds the same workflow, and an
                // estimate sent again with a new deadline gets a new one.
                let valid_until = match self.estimate_get(caller, estimate_id, None).await {
                    Ok(estimate) => estimate.valid_until,
                    Err(StoreError::Failure(_)) => return Ok(None),
                    Err(e) => return Err(e),
                };
                let key = timer_key(&format!("{name}/{}", valid_until.timestamp_micros()));
                let command = EstimateCommandInput::Expire(ExpireEstimate { estimate_id });
                // A refusal (answered, revised, not yet due after a revise moved the deadline)
                // is an answer too: the timer is done either way.
                self.fire_once(caller, key, command).await?;
                Ok(None)
            }
            Due::JobSla(job_id) => {
                // Most jobs are reached in time: a read says so without a workflow. Otherwise
                // the check runs (a job's deadline never moves: one key per job) and records a
                // breach only if nobody has reached the job; either way the timer is done.
                let may_breach = self
                    .read(caller, move |tx| {
                        Box::pin(super::appointment::sla_may_breach(tx, job_id))
                    })
                    .await?;
                if !may_breach {
                    return Ok(None);
                }
                let command = JobV2Command::CheckSla(CheckSla { job_id });
                self.fire_once(caller, timer_key(name), command).await?;
                Ok(None)
            }
            Due::AppointmentWindow(appointment_id) => {
                // Keyed by the window end the appointment holds now: a rescheduled visit gets a
                // new check for its new window; the old one is never fired.
                let window_end = self
                    .read(caller, move |tx| {
                        Box::pin(super::appointment::open_window_end(tx, appointment_id))
                    })
                    .await?;
                let Some(window_end) = window_end else {
                    return Ok(None);
                };
                if window_end > now {
                    return Ok(Some(window_end));
                }
                let key = timer_key(&format!("{name}/{}", window_end.timestamp_micros()));
                let command = JobV2Command::CheckWindow(CheckWindow {
                    appointment_id,
                    window_end,
                });
                self.fire_once(caller, key, command).await?;
                Ok(None)
            }
            Due::Agreement(agreement_id) => {
                // Keyed by the agreement's version and the local date: two processes firing at
                // once share one workflow; a tick of a later date or after a change is a new one,
                // and finds only what is left (the agreement's row is locked and its cursors
                // say what is generated and billed).
                let state = self
                    .read(caller, move |tx| {
                        Box::pin(maintenance::timer_state(tx, agreement_id))
                    })
                    .await?;
                let Some((version, attention)) = state else {
                    return Ok(None);
                };
                let tz = self
                    .read(caller, |tx| Box::pin(load_organization(tx, false)))
                    .await?
                    .time_zone
                    .tz();
                let date = now.with_timezone(&tz).date_naive();
                if attention > date {
                    return Ok(Some(maintenance::fire_at(tz, attention)));
                }
                let key = timer_key(&format!("{name}/{version}/{date}"));
                let command =
                    maintenance::MaintenanceCommand::Tick(maintenance::Tick { agreement_id, date });
                if let Err(failure) = self.fire_once(caller, key, command).await?.outcome {
                    // A refusal would be answered the same all day (the key holds it): try
                    // again tomorrow, under a new key, rather than every pass.
                    tracing::warn!(agreement.id = %agreement_id, code = %failure.code, error = %failure.message, "an agreement's tick was refused; retrying tomorrow");
                    return Ok(Some(compliance_scan::next_due(tz, now)));
                }
                let after = self
                    .read(caller, move |tx| {
                        Box::pin(maintenance::timer_state(tx, agreement_id))
                    })
                    .await?;
                // A tick leaves the agreement's attention after `date`; if it did not (a rule
                // this version gets wrong), the next morning rather than every pass.
                Ok(after.map(|(_, attention)| {
                    if attention > date {
                        maintenance::fire_at(tz, attention)
                    } else {
                        tracing::warn!(agreement.id = %agreement_id, %attention, "an agreement still needs attention after its tick; retrying tomorrow");
                        compliance_scan::next_due(tz, now)
                    }
                }))
            }
            Due::Outbox(id) => self.deliver_message(caller.organization_id, id, now).await,
            Due::Webhook(id) => self.deliver_webhooks(caller.organization_id, id, now).await,
            Due::Unknown => {
                tracing::warn!(timer = %name, "a timer this version does not know; leaving it");
                Ok(Some(now + Duration::days(1)))
            }
        }
    }

    /// Submits `command` under `key`: every process firing the same timer shares its workflow.
    async fn fire_once<C: Command>(
        &self,
        caller: &Caller,
        key: Uuid,
        command: C,
    ) -> Result<Completed, StoreError> {
        let request = Request {
            idempotency_key: key,
            fingerprint: key.to_string(),
            trace_id: None,
            command,
        };
        self.submit(caller, request).await
    }

    /// Fires due timers every `every` (and when a request in this process left one due now)
    /// until the task is aborted.
    pub fn spawn_timer_loop(&self, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let services = self.clone();
        tokio::spawn(async move {
            if let Err(e) = services.ensure_timers().await {
                tracing::warn!(error = %e, "creating timers failed");
            }
            loop {
                if let Err(e) = services.fire_due_timers().await {
                    tracing::warn!(error = %e, "timer pass failed");
                }
                // Every `every`, or as soon as a request left a timer due now.
                tokio::select! {
                    () = tokio::time::sleep(every) => {}
                    () = services.timers_due().notified() => {}
                }
            }
        })
    }

    /// Runs the relay's pass every `every` until the task is aborted.
    pub fn spawn_relay_loop(&self, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let services = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = services.deliver_due().await {
                    tracing::warn!(error = %e, "relay pass failed");
                }
                tokio::time::sleep(every).await;
            }
        })
    }
}
