//! Notes on a job or one of its appointments (`job/v2/addNote`, `job/v2/notes`).
//!
//! Notes are append-only: one is never edited or removed, so two devices adding notes offline
//! never conflict. A note made in the field carries the device's time beside the server's.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use hestami_core::field::DeviceReport;
use hestami_core::ids::{AppointmentId, JobId, NoteId, UserId};
use hestami_core::text::Description;

use super::{Caller, Services};
use crate::db::{Row, args};
use crate::directory::parse_stored;
use crate::error::{Failure, StoreError};
use crate::store::{Operation, TenantTx, new_id};

/// `job/v2/addNote`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewNote {
    /// The job.
    pub job_id: JobId,
    /// One of its appointments, when the note is about a visit.
    pub appointment_id: Option<AppointmentId>,
    /// What was noted.
    pub body: Description,
    /// When (by the device's clock) and where, for a note made in the field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceReport>,
}

/// A note.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Note {
    /// Its id.
    pub id: NoteId,
    /// The job.
    pub job_id: JobId,
    /// The appointment, when about a visit.
    pub appointment_id: Option<AppointmentId>,
    /// What was noted.
    pub body: Description,
    /// Who wrote it.
    pub author: Option<UserId>,
    /// When and where the device says it was written.
    pub device: Option<DeviceReport>,
    /// When the server recorded it.
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, job_id, appointment_id, body, author_user_id, device, created_at";

fn decode(row: &Row) -> Result<Note, StoreError> {
    Ok(Note {
        id: NoteId::from_uuid(row.get("id")?),
        job_id: JobId::from_uuid(row.get("job_id")?),
        appointment_id: row
            .get::<Option<uuid::Uuid>>("appointment_id")?
            .map(AppointmentId::from_uuid),
        body: parse_stored(&row.get::<String>("body")?, Description::parse)?,
        author: row
            .get::<Option<uuid::Uuid>>("author_user_id")?
            .map(UserId::from_uuid),
        device: row
            .get::<Option<String>>("device")?
            .map(|d| serde_json::from_str(&d))
            .transpose()?,
        created_at: row.get("created_at")?,
    })
}

/// Adds a note: the job must exist, and the appointment, when named, must be one of its.
pub(crate) async fn add(tx: &mut TenantTx, n: NewNote) -> Result<Note, StoreError> {
    let (org, now, actor) = (tx.org(), tx.now(), tx.actor());
    super::job::load(tx, n.job_id, false).await?;
    if let Some(appointment) = n.appointment_id {
        let of_job = tx
            .fetch_optional(
                "SELECT id FROM appointments WHERE organization_id = $1 AND id = $2 AND job_id = $3",
                args![org, appointment.as_uuid(), n.job_id.as_uuid()],
            )
            .await?;
        if of_job.is_none() {
            return Err(Failure::not_found("appointment").into());
        }
    }
    let note = Note {
        id: NoteId::from_uuid(new_id()),
        job_id: n.job_id,
        appointment_id: n.appointment_id,
        body: n.body,
        author: actor,
        device: n.device,
        created_at: now,
    };
    tx.execute(
        "INSERT INTO notes (organization_id, id, job_id, appointment_id, body, author_user_id, \
         device, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![
            org,
            note.id.as_uuid(),
            note.job_id.as_uuid(),
            note.appointment_id.map(|a| a.as_uuid()),
            note.body.as_str(),
            note.author.map(|a| a.as_uuid()),
            note.device.map(|d| serde_json::to_string(&d)).transpose()?,
            now
        ],
    )
    .await?;
    tx.record_change("note", note.id.as_uuid(), 1, Operation::Created)
        .await?;
    Ok(note)
}

/// The notes of a job, oldest first (by the server's time).
pub(crate) async fn of_job(tx: &mut TenantTx, job_id: JobId) -> Result<Vec<Note>, StoreError> {
    let org = tx.org();
    tx.fetch_all(
        &format!(
            "SELECT {COLUMNS} FROM notes WHERE organization_id = $1 AND job_id = $2 \
             ORDER BY created_at, id"
        ),
        args![org, job_id.as_uuid()],
    )
    .await?
    .iter()
    .map(decode)
    .collect()
}

/// The notes with these ids (those that exist), without a scope check: the caller decides
/// what its scope may see (sync sends a note with its job).
pub(crate) async fn by_ids(tx: &mut TenantTx, ids: &[uuid::Uuid]) -> Result<Vec<Note>, StoreError> {
    tx.fetch_by_ids(
        &format!("SELECT {COLUMNS} FROM notes WHERE organization_id = $1 AND id IN"),
        ids,
    )
    .await?
    .iter()
    .map(decode)
    .collect()
}

impl Services {
    /// `job/v2/notes`: a job's notes (the job must be visible to the caller).
    pub async fn job_notes(&self, caller: &Caller, job_id: JobId) -> Result<Vec<Note>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                super::job::load(tx, job_id, false).await?;
                super::job::ensure_visible(tx, job_id).await?;
                of_job(tx, job_id).await
            })
        })
        .await
    }
}
