//! Offline sync, pull side (`sync/v1/pull`): a device catches up with what changed while it was
//! away, within what its caller may see.
//!
//! - **A first pull** (no cursor) reads the feed's position first, then pages a snapshot: every
//!   open job the caller may see (a technician's own), each with its appointments, customer,
//!   property and notes, and a technician's own record. Anything that changes while the snapshot
//!   is paged is in the feed after that position, so the device gets it next: the snapshot plus
//!   the feed from its position is consistent.
//! - **Later pulls** page the change feed from the cursor. Each change is turned into the
//!   **current snapshot** of what it touched (a job with its appointments; a customer; a
//!   property; a note; the technician), or, when that is no longer visible to the caller (a job
//!   reassigned to someone else, a customer whose jobs all left the caller's scope), a
//!   **tombstone**.
//! - **Only what the device was sent can be tombstoned.** The server keeps, per user and device,
//!   the entities it sent (`sync_sent`). An entity out of scope that the device never had yields
//!   nothing, so a technician learns no id of another's work. A tombstone is recorded with the
//!   feed position that produced it, and a pull from an earlier cursor (the answer was lost)
//!   produces it again: a repeated pull gives the same answer.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use hestami_core::customer::{Customer, Property};
use hestami_core::ids::{CustomerId, JobId, PropertyId, TechnicianId};
use hestami_core::workforce::Technician;

use super::appointment::JobSchedule;
use super::notes::Note;
use super::{Caller, Services};
use crate::db::args;
use crate::error::{FailureKind, StoreError};
use crate::store::{Scope, TenantTx};

/// The most entries a page asks for.
pub const MAX_SYNC_LIMIT: u32 = 500;

/// Where a device is in its sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncCursor {
    /// Paging the first snapshot: the feed position it was taken at, and the last job sent.
    Snapshot {
        /// The feed position the snapshot started at.
        seq: i64,
        /// The last job of the previous page.
        after: Option<JobId>,
    },
    /// Following the feed from this position.
    Feed {
        /// The last feed position delivered.
        seq: i64,
    },
}

impl SyncCursor {
    /// The cursor's wire form: `snap.<seq>.<job id or ->` or `feed.<seq>`.
    pub fn encode(&self) -> String {
        match self {
            Self::Snapshot { seq, after } => format!(
                "snap.{seq}.{}",
                after.map_or_else(|| "-".to_owned(), |a| a.as_uuid().simple().to_string())
            ),
            Self::Feed { seq } => format!("feed.{seq}"),
        }
    }

    /// Reads a cursor written by [`SyncCursor::encode`].
    pub fn decode(raw: &str) -> Option<Self> {
        let mut parts = raw.split('.');
        let cursor = match (parts.next()?, parts.next()?.parse::<i64>().ok()?) {
            ("feed", seq) if seq >= 0 => Self::Feed { seq },
            ("snap", seq) if seq >= 0 => {
                let after = match parts.next()? {
                    "-" => None,
                    id => Some(JobId::from_uuid(Uuid::parse_str(id).ok()?)),
                };
                Self::Snapshot { seq, after }
            }
            _ => return None,
        };
        parts.next().is_none().then_some(cursor)
    }
}

/// `sync/v1/pull`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequest {
    /// The device (its installation id): what it was sent is kept per device.
    pub device_id: Uuid,
    /// Where it is; `None` for a first sync.
    pub cursor: Option<SyncCursor>,
    /// At most this many jobs (snapshot) or feed rows (feed) a page.
    pub limit: u32,
}

/// An entity's current state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum SyncEntity {
    /// A job with its appointments.
    Job(Box<JobSchedule>),
    /// A customer.
    Customer(Box<Customer>),
    /// A property.
    Property(Box<Property>),
    /// A note.
    Note(Box<Note>),
    /// A photo, document or signature on a job or one of its visits (the bytes are fetched
    /// from the blob path).
    Attachment(Box<super::attachments::Attachment>),
    /// The caller's own technician record.
    Technician(Box<Technician>),
}

impl SyncEntity {
    fn key(&self) -> (&'static str, Uuid) {
        match self {
            Self::Job(s) => ("job", s.job.id.as_uuid()),
            Self::Customer(c) => ("customer", c.id.as_uuid()),
            Self::Property(p) => ("property", p.id.as_uuid()),
            Self::Note(n) => ("note", n.id.as_uuid()),
            Self::Attachment(a) => ("attachment", a.id.as_uuid()),
            Self::Technician(t) => ("technician", t.id.as_uuid()),
        }
    }
}

/// Something the device has that it must drop.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Tombstone {
    /// `job` (with its appointments, notes and attachments), `customer`, `property`, `note`,
    /// `attachment` or `technician`.
    pub kind: String,
    /// Which.
    pub id: Uuid,
    /// `out_of_scope` (no longer the caller's to see, such as a job reassigned to someone else)
    /// or `deleted`.
    pub reason: String,
}

/// One page of a sync.
#[derive(Clone, Debug, PartialEq)]
pub struct Pull {
    /// The current state of what changed (or of the snapshot's page), in order.
    pub changes: Vec<SyncEntity>,
    /// What the device must drop.
    pub removed: Vec<Tombstone>,
    /// Where to continue from.
    pub cursor: SyncCursor,
    /// Whether another page is ready now (pull again at once).
    pub more: bool,
}

/// What one pull is building: the entities, the tombstones, and the device's sent set.
struct Page {
    device: Uuid,
    changes: Vec<SyncEntity>,
    removed: Vec<Tombstone>,
    /// The jobs this page already brought up to date (many changes touch one job), and whether
    /// each is visible.
    synced_jobs: std::collections::HashMap<JobId, bool>,
    /// The entities of `changes`, for a constant-time `has`.
    keys: std::collections::HashSet<(&'static str, Uuid)>,
    /// Entities sent whose `sync_sent` rows are not written yet: written together by `flush`.
    unrecorded: Vec<(&'static str, Uuid)>,
}

/// How many `sync_sent` rows one statement writes (5 values each, well under either backend's
/// limit on bound values).
const SENT_ROWS_PER_STATEMENT: usize = 500;

impl Page {
    /// Whether this page already carries the entity.
    fn has(&self, kind: &'static str, id: Uuid) -> bool {
        self.keys.contains(&(kind, id))
    }

    /// Adds an entity (once a page); it is recorded as sent by the next [`Page::flush`], in the
    /// page's transaction.
    async fn send(&mut self, _tx: &mut TenantTx, entity: SyncEntity) -> Result<(), StoreError> {
        let (kind, id) = entity.key();
        if !self.keys.insert((kind, id)) {
            return Ok(());
        }
        self.unrecorded.push((kind, id));
        self.changes.push(entity);
        Ok(())
    }

    /// Records the entities sent since the last flush, many rows a statement.
    async fn flush(&mut self, tx: &mut TenantTx) -> Result<(), StoreError> {
        let (org, user) = (tx.org(), actor(tx));
        for chunk in self.unrecorded.chunks(SENT_ROWS_PER_STATEMENT) {
            let mut values = args![org, user, self.device];
            let rows: Vec<String> = chunk
                .iter()
                .enumerate()
                .map(|(n, (kind, id))| {
                    values.push((*kind).into());
                    values.push((*id).into());
                    format!("($1, $2, $3, ${}, ${}, NULL)", 4 + 2 * n, 5 + 2 * n)
                })
                .collect();
            tx.execute(
                &format!(
                    "INSERT INTO sync_sent (organization_id, user_id, device_id, entity_kind, \
                     entity_id, tombstoned_seq) VALUES {} \
                     ON CONFLICT (organization_id, user_id, device_id, entity_kind, entity_id) \
                     DO UPDATE SET tombstoned_seq = NULL",
                    rows.join(", ")
                ),
                values,
            )
            .await?;
        }
        self.unrecorded.clear();
        Ok(())
    }

    /// Whether the device was sent the entity and has not been told to drop it before
    /// `cursor` (a tombstone recorded after it is produced again: its answer may have been lost).
    async fn holds(
        &self,
        tx: &mut TenantTx,
        kind: &'static str,
        id: Uuid,
        cursor: i64,
    ) -> Result<bool, StoreError> {
        if self.has(kind, id) {
            return Ok(true);
        }
        let (org, user) = (tx.org(), actor(tx));
        let row = tx
            .fetch_optional(
                "SELECT tombstoned_seq FROM sync_sent WHERE organization_id = $1 AND user_id = $2 \
                 AND device_id = $3 AND entity_kind = $4 AND entity_id = $5",
                args![org, user, self.device, kind, id],
            )
            .await?;
        Ok(match row {
            None => false,
            Some(row) => row
                .get::<Option<i64>>("tombstoned_seq")?
                .is_none_or(|at| at > cursor),
        })
    }

    /// Tombstones an entity the device holds, at feed position `seq`.
    async fn drop_entity(
        &mut self,
        tx: &mut TenantTx,
        kind: &'static str,
        id: Uuid,
        reason: &str,
        cursor: i64,
        seq: i64,
    ) -> Result<(), StoreError> {
        if self.removed.iter().any(|t| t.kind == kind && t.id == id)
            || !self.holds(tx, kind, id, cursor).await?
        {
            return Ok(());
        }
        // What this page sent must be on record before it is tombstoned.
        self.flush(tx).await?;
        let (org, user) = (tx.org(), actor(tx));
        tx.execute(
            "UPDATE sync_sent SET tombstoned_seq = $1 WHERE organization_id = $2 AND user_id = $3 \
             AND device_id = $4 AND entity_kind = $5 AND entity_id = $6 AND tombstoned_seq IS NULL",
            args![seq, org, user, self.device, kind, id],
        )
        .await?;
        self.removed.push(Tombstone {
            kind: kind.to_owned(),
            id,
            reason: reason.to_owned(),
        });
        Ok(())
    }
}

fn actor(tx: &TenantTx) -> Option<Uuid> {
    tx.actor().map(|a| a.as_uuid())
}

/// `Ok(None)` for a not-found refusal, the value otherwise.
fn found<T>(r: Result<T, StoreError>) -> Result<Option<T>, StoreError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(StoreError::Failure(f)) if f.kind == FailureKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// A job as the caller may see it, or `None` when it does not exist or is out of scope.
async fn visible_job(tx: &mut TenantTx, id: JobId) -> Result<Option<JobSchedule>, StoreError> {
    found(super::appointment::schedule(tx, id).await)
}

/// Sends a job, and, the first time, its customer, property and notes.
async fn send_job(
    tx: &mut TenantTx,
    page: &mut Page,
    schedule: JobSchedule,
    cursor: i64,
) -> Result<(), StoreError> {
    let job_id = schedule.job.id;
    let (customer_id, property_id) = (schedule.job.customer_id, schedule.job.property_id);
    let first = !page.holds(tx, "job", job_id.as_uuid(), cursor).await?;
    page.send(tx, SyncEntity::Job(Box::new(schedule))).await?;
    if first {
        // Many jobs share a customer and property: read each once a page.
        if !page.has("customer", customer_id.as_uuid()) {
            let customer = super::customer::load(tx, customer_id, false).await?;
            page.send(tx, SyncEntity::Customer(Box::new(customer)))
                .await?;
        }
        if !page.has("property", property_id.as_uuid()) {
            let property = super::customer::load_property(tx, customer_id, property_id).await?;
            page.send(tx, SyncEntity::Property(Box::new(property)))
                .await?;
        }
        for note in super::notes::of_job(tx, job_id).await? {
            page.send(tx, SyncEntity::Note(Box::new(note))).await?;
        }
        for attachment in super::attachments::of_job(tx, job_id).await? {
            page.send(tx, SyncEntity::Attachment(Box::new(attachment)))
                .await?;
        }
    }
    Ok(())
}

/// Tombstones a job the device holds, and its customer and property when they are no longer
/// visible either.
async fn drop_job(
    tx: &mut TenantTx,
    page: &mut Page,
    id: JobId,
    cursor: i64,
    seq: i64,
) -> Result<(), StoreError> {
    let org = tx.org();
    let row = tx
        .fetch_optional(
            "SELECT customer_id, property_id FROM jobs WHERE organization_id = $1 AND id = $2",
            args![org, id.as_uuid()],
        )
        .await?;
    let reason = if row.is_some() {
        "out_of_scope"
    } else {
        "deleted"
    };
    page.drop_entity(tx, "job", id.as_uuid(), reason, cursor, seq)
        .await?;
    if let Some(row) = row {
        let customer = CustomerId::from_uuid(row.get("customer_id")?);
        if found(super::scope::ensure_customer(tx, customer).await)?.is_none() {
            page.drop_entity(tx, "customer", customer.as_uuid(), reason, cursor, seq)
                .await?;
            let property: Uuid = row.get("property_id")?;
            page.drop_entity(tx, "property", property, reason, cursor, seq)
                .await?;
        }
    }
    Ok(())
}

/// The first snapshot's next page.
async fn snapshot_page(
    tx: &mut TenantTx,
    page: &mut Page,
    seq: i64,
    after: Option<JobId>,
    limit: u32,
) -> Result<SyncCursor, StoreError> {
    let org = tx.org();
    if after.is_none() {
        // A first sync starts afresh: the device holds nothing yet.
        tx.execute(
            "DELETE FROM sync_sent WHERE organization_id = $1 AND user_id = $2 AND device_id = $3",
            args![org, actor(tx), page.device],
        )
        .await?;
        if let Scope::Technician(Some(own)) = tx.scope() {
            let technician = super::technician::load(tx, own, false).await?;
            page.send(tx, SyncEntity::Technician(Box::new(technician)))
                .await?;
        }
    }
    // The open jobs the caller may see, after `after`, in id order. Written per scope so that
    // each branch is an index range over open jobs only (the partial indexes of migration 0014):
    // the generic scope condition, an OR over a subquery, read every job of a million.
    let after_id = after.map_or(Uuid::nil(), |a| a.as_uuid());
    const OPEN: &str = "j.status NOT IN ('closed', 'cancelled')";
    let (sql, values) = match tx.scope() {
        Scope::Organization => (
            format!(
                "SELECT j.id FROM jobs j WHERE j.organization_id = $1 AND {OPEN} AND j.id > $2 \
                 ORDER BY j.id LIMIT $3"
            ),
            args![org, after_id, i64::from(limit)],
        ),
        Scope::Technician(Some(own)) => (
            format!(
                "SELECT id FROM (\
                 SELECT j.id FROM jobs j WHERE j.organization_id = $1 AND j.technician_id = $4 \
                 AND {OPEN} AND j.id > $2 \
                 UNION \
                 SELECT j.id FROM appointment_crew c \
                 JOIN appointments a ON a.organization_id = c.organization_id AND a.id = c.appointment_id \
                 JOIN jobs j ON j.organization_id = a.organization_id AND j.id = a.job_id \
                 WHERE c.organization_id = $1 AND c.technician_id = $4 AND {OPEN} AND j.id > $2\
                 ) v ORDER BY id LIMIT $3"
            ),
            args![org, after_id, i64::from(limit), own.as_uuid()],
        ),
        Scope::Technician(None) => (
            "SELECT id FROM jobs WHERE 1 = 0 AND organization_id = $1 AND id > $2 LIMIT $3"
                .to_owned(),
            args![org, after_id, i64::from(limit)],
        ),
    };
    let rows = tx.fetch_all(&sql, values).await?;
    let mut last = after;
    for row in &rows {
        let id = JobId::from_uuid(row.get("id")?);
        if let Some(schedule) = visible_job(tx, id).await? {
            send_job(tx, page, schedule, seq).await?;
        }
        last = Some(id);
    }
    Ok(if rows.len() < limit as usize {
        SyncCursor::Feed { seq }
    } else {
        SyncCursor::Snapshot { seq, after: last }
    })
}

/// The feed's next page from `cursor`.
async fn feed_page(
    tx: &mut TenantTx,
    page: &mut Page,
    cursor: i64,
    limit: u32,
) -> Result<(SyncCursor, bool), StoreError> {
    let org = tx.org();
    let rows = tx
        .fetch_all(
            "SELECT seq, entity_kind, entity_id FROM change_feed WHERE organization_id = $1 \
             AND seq > $2 ORDER BY seq LIMIT $3",
            args![org, cursor, i64::from(limit)],
        )
        .await?;
    // The page's notes and attachments, each read once for the whole page.
    let of_kind = |wanted: &str| -> Result<Vec<Uuid>, StoreError> {
        let mut ids = Vec::new();
        for row in &rows {
            if row.get::<String>("entity_kind")? == wanted {
                ids.push(row.get::<Uuid>("entity_id")?);
            }
        }
        Ok(ids)
    };
    let (note_ids, attachment_ids) = (of_kind("note")?, of_kind("attachment")?);
    let mut notes: std::collections::HashMap<Uuid, super::notes::Note> =
        super::notes::by_ids(tx, &note_ids)
            .await?
            .into_iter()
            .map(|n| (n.id.as_uuid(), n))
            .collect();
    let mut attachments: std::collections::HashMap<Uuid, super::attachments::Attachment> =
        super::attachments::by_ids(tx, &attachment_ids)
            .await?
            .into_iter()
            .map(|a| (a.id.as_uuid(), a))
            .collect();
    let mut last = cursor;
    for row in &rows {
        let seq: i64 = row.get("seq")?;
        let kind: String = row.get("entity_kind")?;
        let id: Uuid = row.get("entity_id")?;
        last = seq;
        match kind.as_str() {
            "job" => {
                sync_job(tx, page, JobId::from_uuid(id), cursor, seq).await?;
            }
            "appointment" => {
                let job = tx
                    .fetch_optional(
                        "SELECT job_id FROM appointments WHERE organization_id = $1 AND id = $2",
                        args![org, id],
                    )
                    .await?;
                if let Some(job) = job {
                    let job_id = JobId::from_uuid(job.get("job_id")?);
                    sync_job(tx, page, job_id, cursor, seq).await?;
                }
            }
            // Read with the page's other notes; sent when its job is the caller's to see.
            "note" => {
                if let Some(note) = notes.remove(&id)
                    && sync_job(tx, page, note.job_id, cursor, seq).await?
                {
                    page.send(tx, SyncEntity::Note(Box::new(note))).await?;
                }
            }
            // The same; an estimate's or invoice's attachment is not field data.
            "attachment" => {
                if let Some(a) = attachments.remove(&id)
                    && let Some(job) = a.job_id
                    && matches!(
                        a.attached_to,
                        hestami_core::blob::AttachedTo::Job
                            | hestami_core::blob::AttachedTo::Appointment
                    )
                    && sync_job(tx, page, job, cursor, seq).await?
                {
                    page.send(tx, SyncEntity::Attachment(Box::new(a))).await?;
                }
            }
            "customer" => {
                let customer = CustomerId::from_uuid(id);
                match found(super::scope::ensure_customer(tx, customer).await)? {
                    Some(()) => {
                        let c = super::customer::load(tx, customer, false).await?;
                        page.send(tx, SyncEntity::Customer(Box::new(c))).await?;
                    }
                    None => {
                        page.drop_entity(tx, "customer", id, "out_of_scope", cursor, seq)
                            .await?;
                    }
                }
            }
            "property" => {
                let owner = tx
                    .fetch_optional(
                        "SELECT customer_id FROM properties WHERE organization_id = $1 AND id = $2",
                        args![org, id],
                    )
                    .await?;
                let customer = owner
                    .map(|r| r.get::<Uuid>("customer_id").map(CustomerId::from_uuid))
                    .transpose()?;
                let visible = match customer {
                    Some(c) => found(super::scope::ensure_customer(tx, c).await)?.map(|()| c),
                    None => None,
                };
                match visible {
                    Some(c) => {
                        let p = super::customer::load_property(tx, c, PropertyId::from_uuid(id))
                            .await?;
                        page.send(tx, SyncEntity::Property(Box::new(p))).await?;
                    }
                    None => {
                        page.drop_entity(tx, "property", id, "out_of_scope", cursor, seq)
                            .await?;
                    }
                }
            }
            "technician" => {
                if let Scope::Technician(Some(own)) = tx.scope()
                    && own == TechnicianId::from_uuid(id)
                {
                    let technician = super::technician::load(tx, own, false).await?;
                    page.send(tx, SyncEntity::Technician(Box::new(technician)))
                        .await?;
                }
            }
            _ => {}
        }
    }
    let more = rows.len() == limit as usize;
    Ok((SyncCursor::Feed { seq: last }, more))
}

/// A job touched by a change: its current state if visible, else its tombstone.
async fn sync_job(
    tx: &mut TenantTx,
    page: &mut Page,
    id: JobId,
    cursor: i64,
    seq: i64,
) -> Result<bool, StoreError> {
    // The job's state is read at the end of the page's reads anyway: once a page is enough.
    if let Some(visible) = page.synced_jobs.get(&id) {
        return Ok(*visible);
    }
    let visible = match visible_job(tx, id).await? {
        Some(schedule) => {
            send_job(tx, page, schedule, cursor).await?;
            true
        }
        None => {
            drop_job(tx, page, id, cursor, seq).await?;
            false
        }
    };
    page.synced_jobs.insert(id, visible);
    Ok(visible)
}

impl Services {
    /// `sync/v1/pull`: one page of a device's sync (see the module's docs).
    pub async fn sync_pull(
        &self,
        caller: &Caller,
        request: PullRequest,
    ) -> Result<Pull, StoreError> {
        if caller.user_id.is_none() {
            return Err(StoreError::Internal("a sync needs a user".into()));
        }
        let mut tx = self
            .store()
            .tenant_as(caller.organization_id, true, caller.user_id, None)
            .await?;
        tx.set_scope(caller.scope);
        let mut page = Page {
            device: request.device_id,
            changes: Vec::new(),
            removed: Vec::new(),
            synced_jobs: std::collections::HashMap::new(),
            keys: std::collections::HashSet::new(),
            unrecorded: Vec::new(),
        };
        let (cursor, more) = match request.cursor {
            None => {
                let org = tx.org();
                let seq: i64 = tx
                    .fetch_optional(
                        "SELECT last_seq FROM feed_counters WHERE organization_id = $1",
                        args![org],
                    )
                    .await?
                    .map(|r| r.get("last_seq"))
                    .transpose()?
                    .unwrap_or(0);
                // Whether the snapshot is done or not, pull again: the feed from its position
                // may hold changes already.
                let next = snapshot_page(&mut tx, &mut page, seq, None, request.limit).await?;
                (next, true)
            }
            Some(SyncCursor::Snapshot { seq, after }) => {
                let next = snapshot_page(&mut tx, &mut page, seq, after, request.limit).await?;
                (next, true)
            }
            Some(SyncCursor::Feed { seq }) => {
                feed_page(&mut tx, &mut page, seq, request.limit).await?
            }
        };
        page.flush(&mut tx).await?;
        tx.commit().await?;
        Ok(Pull {
            changes: page.changes,
            removed: page.removed,
            cursor,
            more,
        })
    }
}

impl Services {
    /// Whether `device` of the caller was sent the job (named, or the job of `appointment`):
    /// a move the device queued offline on work no longer the caller's is then told apart from
    /// an id it never had (see `sync/v1/push`).
    pub async fn sync_held(
        &self,
        caller: &Caller,
        device: Uuid,
        job: Option<JobId>,
        appointment: Option<hestami_core::ids::AppointmentId>,
    ) -> Result<bool, StoreError> {
        let Some(user) = caller.user_id else {
            return Ok(false);
        };
        let unscoped = Caller {
            scope: Scope::Organization,
            ..*caller
        };
        self.read(&unscoped, move |tx| {
            Box::pin(async move {
                let org = tx.org();
                let job = match (job, appointment) {
                    (Some(job), _) => Some(job.as_uuid()),
                    (None, Some(a)) => tx
                        .fetch_optional(
                            "SELECT job_id FROM appointments WHERE organization_id = $1 AND id = $2",
                            args![org, a.as_uuid()],
                        )
                        .await?
                        .map(|r| r.get::<Uuid>("job_id"))
                        .transpose()?,
                    (None, None) => None,
                };
                let Some(job) = job else { return Ok(false) };
                Ok(tx
                    .fetch_optional(
                        "SELECT 1 AS held FROM sync_sent WHERE organization_id = $1 AND user_id = $2 \
                         AND device_id = $3 AND entity_kind = 'job' AND entity_id = $4",
                        args![org, user.as_uuid(), device, job],
                    )
                    .await?
                    .is_some())
            })
        })
        .await
    }
}
