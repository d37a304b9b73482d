//! Blobs and attachments: the bytes arrive through the blob path (content-addressed, idempotent
//! by their SHA-256), then `attachment/v1/attach` (workflow `attachment_v1`) attaches a blob to a
//! job, an appointment, an estimate or an invoice, with a caption, the device's time and place,
//! and for a customer's signature the name they printed.
//!
//! A download goes through the authenticated blob path or a short-lived signed link
//! ([`Services::attachment_link`]): HMAC-SHA-256 over the organization, the blob and the expiry,
//! with a key kept in the database so that every process of a deployment accepts the links of
//! every other.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use hestami_core::blob::{AttachedTo, AttachmentKind, MediaType, Sha256Hex};
use hestami_core::field::DeviceReport;
use hestami_core::ids::{AttachmentId, JobId, OrganizationId, UserId};
use hestami_core::text::{Name, Summary};

use super::{Caller, Command, Services, Subject};
use crate::blobs::BlobStore;
use crate::db::{Row, args};
use crate::directory::parse_stored;
use crate::engine::WorkflowCtx;
use crate::error::{Failure, FailureKind, FieldError, StoreError};
use crate::store::{Operation, Scope, TenantTx, new_id};

/// The workflow of `attachment/v1/attach`.
pub const WORKFLOW: &str = "attachment_v1";

/// How long a signed download link is valid.
pub const LINK_LIFETIME: chrono::Duration = chrono::Duration::minutes(15);

/// A blob as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobInfo {
    /// The SHA-256 of its bytes.
    pub sha256: Sha256Hex,
    /// Its size.
    pub size_bytes: u64,
    /// Its type, from its bytes.
    pub media_type: MediaType,
    /// When it was first uploaded.
    pub created_at: DateTime<Utc>,
    /// Whether this upload stored it (false: the organization already had it).
    pub created: bool,
}

/// `attachment/v1/attach`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewAttachment {
    /// The uploaded blob.
    pub sha256: Sha256Hex,
    /// What it is attached to.
    pub attached_to: AttachedTo,
    /// The id of the job, appointment, estimate or invoice.
    pub subject_id: Uuid,
    /// Photo, document or signature.
    pub kind: AttachmentKind,
    /// A caption.
    pub caption: Option<Summary>,
    /// For a signature: the name the customer printed beside it.
    pub signed_by: Option<Name>,
    /// When and where, by the device, it was taken or signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceReport>,
}

/// An attachment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// Its id.
    pub id: AttachmentId,
    /// The blob.
    pub sha256: Sha256Hex,
    /// The blob's type.
    pub media_type: MediaType,
    /// The blob's size.
    pub size_bytes: u64,
    /// Photo, document or signature.
    pub kind: AttachmentKind,
    /// What it is attached to.
    pub attached_to: AttachedTo,
    /// Which one.
    pub subject_id: Uuid,
    /// The job it belongs to (the subject's job, when it has one).
    pub job_id: Option<JobId>,
    /// The caption.
    pub caption: Option<Summary>,
    /// For a signature, the printed name.
    pub signed_by: Option<Name>,
    /// When and where, by the device.
    pub device: Option<DeviceReport>,
    /// Who attached it.
    pub author: Option<UserId>,
    /// When the server recorded it.
    pub created_at: DateTime<Utc>,
}

/// The commands of `attachment_v1`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum AttachmentCommand {
    /// `attachment/v1/attach`.
    #[serde(rename = "attachment/v1/attach")]
    Attach(NewAttachment),
}

impl Command for AttachmentCommand {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        "attachment/v1/attach"
    }
    fn subject(&self) -> Option<Subject> {
        let Self::Attach(a) = self;
        Some(subject_of(a.attached_to, a.subject_id))
    }
}

fn subject_of(to: AttachedTo, id: Uuid) -> Subject {
    use hestami_core::ids::{AppointmentId, EstimateId, InvoiceId};
    match to {
        AttachedTo::Job => Subject::Job(JobId::from_uuid(id)),
        AttachedTo::Appointment => Subject::Appointment(AppointmentId::from_uuid(id)),
        AttachedTo::Estimate => Subject::Estimate(EstimateId::from_uuid(id)),
        AttachedTo::Invoice => Subject::Invoice(InvoiceId::from_uuid(id)),
    }
}

pub(crate) async fn run(
    mut ctx: WorkflowCtx,
    command: AttachmentCommand,
) -> Result<Attachment, StoreError> {
    let AttachmentCommand::Attach(a) = command;
    ctx.step("attach", move |tx| Box::pin(attach(tx, a))).await
}

const COLUMNS: &str = "a.id, a.sha256, b.media_type, b.size_bytes, a.kind, a.attached_to, \
     a.subject_id, a.job_id, a.caption, a.signed_by, a.device, a.author_user_id, a.created_at";

fn decode(row: &Row) -> Result<Attachment, StoreError> {
    let corrupt = |what: &str| StoreError::Internal(format!("stored attachment has a bad {what}"));
    Ok(Attachment {
        id: AttachmentId::from_uuid(row.get("id")?),
        sha256: parse_stored(&row.get::<String>("sha256")?, Sha256Hex::parse)?,
        media_type: MediaType::parse(&row.get::<String>("media_type")?)
            .ok_or_else(|| corrupt("media type"))?,
        size_bytes: u64::try_from(row.get::<i64>("size_bytes")?).map_err(|_| corrupt("size"))?,
        kind: AttachmentKind::parse(&row.get::<String>("kind")?).ok_or_else(|| corrupt("kind"))?,
        attached_to: AttachedTo::parse(&row.get::<String>("attached_to")?)
            .ok_or_else(|| corrupt("subject kind"))?,
        subject_id: row.get("subject_id")?,
        job_id: row.get::<Option<Uuid>>("job_id")?.map(JobId::from_uuid),
        caption: row
            .get::<Option<String>>("caption")?
            .map(|c| parse_stored(&c, Summary::parse))
            .transpose()?,
        signed_by: row
            .get::<Option<String>>("signed_by")?
            .map(|c| parse_stored(&c, Name::parse))
            .transpose()?,
        device: row
            .get::<Option<String>>("device")?
            .map(|d| serde_json::from_str(&d))
            .transpose()?,
        author: row
            .get::<Option<Uuid>>("author_user_id")?
            .map(UserId::from_uuid),
        created_at: row.get("created_at")?,
    })
}

fn blob_not_found() -> Failure {
    Failure::new(
        FailureKind::NotFound,
        "BLOB_NOT_FOUND",
        "no blob with this SHA-256 was uploaded to the organization: PUT it to /api/v1/blobs/{sha256} first",
    )
}

fn type_mismatch(kind: AttachmentKind, media: MediaType) -> Failure {
    Failure::new(
        FailureKind::RuleViolation,
        "ATTACHMENT_TYPE_MISMATCH",
        format!(
            "a {} cannot be a blob of type {}",
            kind.as_str(),
            media.as_str()
        ),
    )
    .with_details(serde_json::json!({ "mediaType": media }))
}

/// The refusals of an attachment that the input alone decides (checked before the workflow,
/// so that a corrected request may reuse its key).
pub fn input_problems(a: &NewAttachment) -> Vec<FieldError> {
    let mut problems = Vec::new();
    match (a.kind, &a.signed_by) {
        (AttachmentKind::Signature, None) => problems.push(FieldError {
            field: "signedBy".into(),
            code: "required".into(),
            message: "a signature needs the name the customer printed beside it".into(),
        }),
        (AttachmentKind::Photo | AttachmentKind::Document, Some(_)) => problems.push(FieldError {
            field: "signedBy".into(),
            code: "not_allowed".into(),
            message: "only a signature has a printed name".into(),
        }),
        _ => {}
    }
    problems
}

/// The job of the subject (when it has one), `404` when the subject does not exist (whatever
/// the scope).
async fn subject_job(
    tx: &mut TenantTx,
    to: AttachedTo,
    id: Uuid,
) -> Result<Option<JobId>, StoreError> {
    if to == AttachedTo::Job {
        super::job::load(tx, JobId::from_uuid(id), false).await?;
        return Ok(Some(JobId::from_uuid(id)));
    }
    let org = tx.org();
    let table = match to {
        AttachedTo::Appointment => "appointments",
        AttachedTo::Estimate => "estimates",
        _ => "invoices",
    };
    let row = tx
        .fetch_optional(
            &format!("SELECT job_id FROM {table} WHERE organization_id = $1 AND id = $2 LIMIT 1"),
            args![org, id],
        )
        .await?
        .ok_or_else(|| Failure::not_found(to.as_str()))?;
    Ok(row.get::<Option<Uuid>>("job_id")?.map(JobId::from_uuid))
}

/// The job of the subject (when it has one), `404` when the subject does not exist or the
/// transaction's scope may not attach to it (a technician attaches to their own visits).
async fn job_of_subject(
    tx: &mut TenantTx,
    to: AttachedTo,
    id: Uuid,
) -> Result<Option<JobId>, StoreError> {
    let job = subject_job(tx, to, id).await?;
    match to {
        AttachedTo::Job => super::job::ensure_visible(tx, JobId::from_uuid(id)).await?,
        _ => super::visible_subject(tx, subject_of(to, id)).await?,
    }
    Ok(job)
}

async fn blob(tx: &mut TenantTx, sha: &Sha256Hex) -> Result<Option<BlobInfo>, StoreError> {
    let org = tx.org();
    tx.fetch_optional(
        "SELECT sha256, size_bytes, media_type, created_at FROM blobs \
         WHERE organization_id = $1 AND sha256 = $2",
        args![org, sha.as_str()],
    )
    .await?
    .map(|row| {
        Ok(BlobInfo {
            sha256: sha.clone(),
            size_bytes: u64::try_from(row.get::<i64>("size_bytes")?)
                .map_err(|_| StoreError::Internal("negative blob size".into()))?,
            media_type: MediaType::parse(&row.get::<String>("media_type")?)
                .ok_or_else(|| StoreError::Internal("unknown stored media type".into()))?,
            created_at: row.get("created_at")?,
            created: false,
        })
    })
    .transpose()
}

/// Attaches a blob: the blob must have been uploaded to the organization, be of a type the kind
/// accepts, and the subject must exist and be visible.
pub(crate) async fn attach(tx: &mut TenantTx, a: NewAttachment) -> Result<Attachment, StoreError> {
    let (org, now, actor) = (tx.org(), tx.now(), tx.actor());
    let job_id = job_of_subject(tx, a.attached_to, a.subject_id).await?;
    // Checked before the workflow too (`Services::check_attachable`); here for callers of the
    // store that skip it.
    let blob = blob(tx, &a.sha256).await?.ok_or_else(blob_not_found)?;
    if !a.kind.accepts(blob.media_type) {
        return Err(type_mismatch(a.kind, blob.media_type).into());
    }
    let attachment = Attachment {
        id: AttachmentId::from_uuid(new_id()),
        sha256: a.sha256,
        media_type: blob.media_type,
        size_bytes: blob.size_bytes,
        kind: a.kind,
        attached_to: a.attached_to,
        subject_id: a.subject_id,
        job_id,
        caption: a.caption,
        signed_by: a.signed_by,
        device: a.device,
        author: actor,
        created_at: now,
    };
    tx.execute(
        "INSERT INTO attachments (organization_id, id, sha256, kind, attached_to, subject_id, \
         job_id, caption, signed_by, device, author_user_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        args![
            org,
            attachment.id.as_uuid(),
            attachment.sha256.as_str(),
            attachment.kind.as_str(),
            attachment.attached_to.as_str(),
            attachment.subject_id,
            attachment.job_id.map(|j| j.as_uuid()),
            attachment.caption.as_ref().map(|c| c.as_str().to_owned()),
            attachment.signed_by.as_ref().map(|c| c.as_str().to_owned()),
            attachment
                .device
                .map(|d| serde_json::to_string(&d))
                .transpose()?,
            actor.map(|a| a.as_uuid()),
            now
        ],
    )
    .await?;
    tx.record_change("attachment", attachment.id.as_uuid(), 1, Operation::Created)
        .await?;
    Ok(attachment)
}

/// The attachments of a subject, oldest first.
pub(crate) async fn of_subject(
    tx: &mut TenantTx,
    to: AttachedTo,
    id: Uuid,
) -> Result<Vec<Attachment>, StoreError> {
    let org = tx.org();
    tx.fetch_all(
        &format!(
            "SELECT {COLUMNS} FROM attachments a JOIN blobs b ON b.organization_id = a.organization_id \
             AND b.sha256 = a.sha256 WHERE a.organization_id = $1 AND a.attached_to = $2 \
             AND a.subject_id = $3 ORDER BY a.created_at, a.id"
        ),
        args![org, to.as_str(), id],
    )
    .await?
    .iter()
    .map(decode)
    .collect()
}

/// Every attachment of a job: the job's own and its appointments', oldest first.
pub(crate) async fn of_job(tx: &mut TenantTx, job: JobId) -> Result<Vec<Attachment>, StoreError> {
    let org = tx.org();
    tx.fetch_all(
        &format!(
            "SELECT {COLUMNS} FROM attachments a JOIN blobs b ON b.organization_id = a.organization_id \
             AND b.sha256 = a.sha256 WHERE a.organization_id = $1 AND a.job_id = $2 \
             AND a.attached_to IN ('job', 'appointment') ORDER BY a.created_at, a.id"
        ),
        args![org, job.as_uuid()],
    )
    .await?
    .iter()
    .map(decode)
    .collect()
}

/// The attachments with these ids (those that exist), without a scope check: the caller
/// decides what its scope may see (sync sends an attachment with its job).
pub(crate) async fn by_ids(tx: &mut TenantTx, ids: &[Uuid]) -> Result<Vec<Attachment>, StoreError> {
    tx.fetch_by_ids(
        &format!(
            "SELECT {COLUMNS} FROM attachments a JOIN blobs b \
             ON b.organization_id = a.organization_id AND b.sha256 = a.sha256 \
             WHERE a.organization_id = $1 AND a.id IN"
        ),
        ids,
    )
    .await?
    .iter()
    .map(decode)
    .collect()
}

/// One attachment, `404` unless it exists and its subject is visible.
pub(crate) async fn load(tx: &mut TenantTx, id: AttachmentId) -> Result<Attachment, StoreError> {
    let org = tx.org();
    let found = tx
        .fetch_optional(
            &format!(
                "SELECT {COLUMNS} FROM attachments a JOIN blobs b \
                 ON b.organization_id = a.organization_id AND b.sha256 = a.sha256 \
                 WHERE a.organization_id = $1 AND a.id = $2"
            ),
            args![org, id.as_uuid()],
        )
        .await?
        .as_ref()
        .map(decode)
        .transpose()?
        .ok_or_else(|| Failure::not_found("attachment"))?;
    // An attachment of something out of the caller's scope is no attachment of theirs.
    match readable(tx, found.attached_to, found.subject_id, found.job_id).await {
        Err(StoreError::Failure(f)) if f.kind == FailureKind::NotFound => {
            Err(Failure::not_found("attachment").into())
        }
        other => other.map(|()| found),
    }
}

/// `404` unless the caller may read the attachments of the subject: a visit's with its job (a
/// technician on any visit of a job sees every visit's photos, as a pull and the day show them),
/// the others as the subject itself.
async fn readable(
    tx: &mut TenantTx,
    to: AttachedTo,
    id: Uuid,
    job: Option<JobId>,
) -> Result<(), StoreError> {
    match (to, job) {
        (AttachedTo::Appointment, Some(job)) => super::job::ensure_visible(tx, job).await,
        _ => super::visible_subject(tx, subject_of(to, id)).await,
    }
}

/// The latest signature on a job (its own or one of its visits'), for its invoice.
pub(crate) async fn job_signature(
    tx: &mut TenantTx,
    job: JobId,
) -> Result<Option<Attachment>, StoreError> {
    Ok(of_job(tx, job)
        .await?
        .into_iter()
        .rev()
        .find(|a| a.kind == AttachmentKind::Signature))
}

/// Whether the transaction's scope may download the blob: the whole organization may; a
/// technician may download what they uploaded and what is attached to a job they are on.
async fn may_download(
    tx: &mut TenantTx,
    sha: &Sha256Hex,
    user: Option<UserId>,
) -> Result<bool, StoreError> {
    if tx.scope() == Scope::Organization {
        return Ok(true);
    }
    let org = tx.org();
    if let Some(user) = user
        && tx
            .fetch_optional(
                "SELECT 1 AS mine FROM blobs WHERE organization_id = $1 AND sha256 = $2 \
                 AND uploaded_by = $3",
                args![org, sha.as_str(), user.as_uuid()],
            )
            .await?
            .is_some()
    {
        return Ok(true);
    }
    // Attached to a job, or the photo answering a form question on one.
    let as_answer = serde_json::to_string(&hestami_core::form::AnswerValue::Photo(sha.clone()))?;
    let jobs = tx
        .fetch_all(
            "SELECT job_id FROM attachments WHERE organization_id = $1 AND sha256 = $2 \
             AND job_id IS NOT NULL UNION SELECT job_id FROM form_answers \
             WHERE organization_id = $1 AND answer = $3",
            args![org, sha.as_str(), as_answer],
        )
        .await?;
    for row in jobs {
        let job = JobId::from_uuid(row.get("job_id")?);
        match super::job::ensure_visible(tx, job).await {
            Ok(()) => return Ok(true),
            Err(StoreError::Failure(f)) if f.kind == FailureKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(false)
}

/// The problem with an upload's bytes, before anything is stored.
fn check_upload(claimed: &Sha256Hex, bytes: &[u8], max_bytes: u64) -> Result<MediaType, Failure> {
    if bytes.len() as u64 > max_bytes {
        return Err(Failure::new(
            FailureKind::Validation,
            "PAYLOAD_TOO_LARGE",
            format!("a blob may be at most {max_bytes} bytes"),
        ));
    }
    let digest: [u8; 32] = Sha256::digest(bytes).into();
    let actual = Sha256Hex::from_digest(&digest);
    if &actual != claimed {
        return Err(Failure::validation(vec![FieldError {
            field: "sha256".into(),
            code: "digest_mismatch".into(),
            message: format!("the body's SHA-256 is {actual}, not the one in the path"),
        }]));
    }
    MediaType::sniff(bytes).ok_or_else(|| {
        Failure::new(
            FailureKind::Validation,
            "BLOB_TYPE_NOT_ALLOWED",
            format!(
                "the bytes are none of the allowed types ({}); the type is read from the bytes, not the name",
                MediaType::ALL.map(MediaType::as_str).join(", ")
            ),
        )
    })
}

fn link_signature(key: &[u8], org: OrganizationId, sha: &Sha256Hex, expires: i64) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(format!("{org}:{sha}:{expires}").as_bytes());
    let digest: [u8; 32] = mac.finalize().into_bytes().into();
    Sha256Hex::from_digest(&digest).to_string()
}

/// A signed download link's parts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DownloadLink {
    /// The path (with its query) to `GET`, relative to the server.
    pub url: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

impl Services {
    /// Stores an upload: checks its size, its SHA-256 against the claimed one and its type
    /// against the allowlist, then stores the bytes (unless the organization already has
    /// them) and records the blob. Idempotent by content.
    pub async fn blob_put(
        &self,
        caller: &Caller,
        store: &BlobStore,
        claimed: Sha256Hex,
        bytes: Bytes,
        max_bytes: u64,
    ) -> Result<BlobInfo, StoreError> {
        // Hashing 25 MiB takes tens of milliseconds: off the runtime's worker threads.
        let media = {
            let (claimed, bytes) = (claimed.clone(), bytes.clone());
            tokio::task::spawn_blocking(move || check_upload(&claimed, &bytes, max_bytes))
                .await
                .map_err(|e| StoreError::Internal(format!("the upload check failed: {e}")))??
        };
        if let Some(existing) = self
            .read(caller, |tx| {
                let claimed = claimed.clone();
                Box::pin(async move { blob(tx, &claimed).await })
            })
            .await?
        {
            // The row outlives bytes lost with a store (a cleared directory, another machine's
            // disk): the same bytes put them back.
            if !store.exists(caller.organization_id, &claimed).await? {
                store.put(caller.organization_id, &claimed, bytes).await?;
            }
            return Ok(existing);
        }
        let size = bytes.len() as u64;
        store.put(caller.organization_id, &claimed, bytes).await?;
        let mut tx = self
            .store()
            .tenant_as(caller.organization_id, true, caller.user_id, None)
            .await?;
        let now = tx.now();
        let inserted = tx
            .execute(
                "INSERT INTO blobs (organization_id, sha256, size_bytes, media_type, uploaded_by, \
                 created_at) VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (organization_id, sha256) DO NOTHING",
                args![
                    caller.organization_id.as_uuid(),
                    claimed.as_str(),
                    i64::try_from(size).unwrap_or(i64::MAX),
                    media.as_str(),
                    caller.user_id.map(|u| u.as_uuid()),
                    now
                ],
            )
            .await?;
        let mut info = blob(&mut tx, &claimed)
            .await?
            .ok_or_else(|| StoreError::Internal("the blob row vanished".into()))?;
        tx.commit().await?;
        info.created = inserted == 1;
        Ok(info)
    }

    /// A blob's type and bytes for the caller, `404` when the organization has no such blob or
    /// the caller's scope may not see it.
    pub async fn blob_get(
        &self,
        caller: &Caller,
        store: &BlobStore,
        sha: Sha256Hex,
    ) -> Result<(MediaType, Bytes), StoreError> {
        let user = caller.user_id;
        let info = self
            .read(caller, |tx| {
                let sha = sha.clone();
                Box::pin(async move {
                    let info = blob(tx, &sha).await?;
                    match info {
                        Some(info) if may_download(tx, &sha, user).await? => Ok(info),
                        _ => Err(Failure::not_found("blob").into()),
                    }
                })
            })
            .await?;
        let bytes = store
            .get(caller.organization_id, &sha)
            .await?
            .ok_or_else(|| StoreError::Internal(format!("blob {sha} has a row and no bytes")))?;
        Ok((info.media_type, bytes))
    }

    /// Whether the caller may attach the blob as `kind`: it was uploaded to the organization,
    /// the caller may download it (a technician cannot attach, and so reach, a blob of work
    /// that is not theirs), and its type suits the kind. A blob never changes once stored, so
    /// this runs before the workflow: a refusal here leaves the idempotency key unspent, and
    /// the request may be sent again once the bytes are up.
    pub async fn check_attachable(
        &self,
        caller: &Caller,
        sha: &Sha256Hex,
        kind: AttachmentKind,
    ) -> Result<(), StoreError> {
        let user = caller.user_id;
        let info = self
            .read(caller, |tx| {
                let sha = sha.clone();
                Box::pin(async move {
                    match blob(tx, &sha).await? {
                        Some(info) if may_download(tx, &sha, user).await? => Ok(Some(info)),
                        _ => Ok(None),
                    }
                })
            })
            .await?;
        let Some(info) = info else {
            return Err(blob_not_found().into());
        };
        if kind.accepts(info.media_type) {
            Ok(())
        } else {
            Err(type_mismatch(kind, info.media_type).into())
        }
    }

    /// `attachment/v1/list`: the attachments of a visible subject.
    pub async fn attachment_list(
        &self,
        caller: &Caller,
        to: AttachedTo,
        id: Uuid,
    ) -> Result<Vec<Attachment>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let job = subject_job(tx, to, id).await?;
                readable(tx, to, id, job).await?;
                of_subject(tx, to, id).await
            })
        })
        .await
    }

    /// `attachment/v1/downloadLink`: a link to the attachment's blob that works without a
    /// token for [`LINK_LIFETIME`].
    pub async fn attachment_link(
        &self,
        caller: &Caller,
        id: AttachmentId,
    ) -> Result<DownloadLink, StoreError> {
        let attachment = self.read(caller, move |tx| Box::pin(load(tx, id))).await?;
        let key = self.store().link_key().await?;
        let expires_at = self.store().now() + LINK_LIFETIME;
        let expires = expires_at.timestamp();
        let org = caller.organization_id;
        let signature = link_signature(&key, org, &attachment.sha256, expires);
        Ok(DownloadLink {
            url: format!(
                "/api/v1/blobs/{}?organizationId={org}&expires={expires}&signature={signature}",
                attachment.sha256
            ),
            expires_at: chrono::DateTime::from_timestamp(expires, 0).unwrap_or(expires_at),
        })
    }

    /// The blob a signed link names, when the link is genuine and has not expired; `None`
    /// otherwise (the caller answers `404` without saying which).
    pub async fn blob_by_link(
        &self,
        store: &BlobStore,
        org: OrganizationId,
        sha: Sha256Hex,
        expires: i64,
        signature: &str,
    ) -> Result<Option<(MediaType, Bytes)>, StoreError> {
        let key = self.store().link_key().await?;
        let expected = link_signature(&key, org, &sha, expires);
        let genuine: bool = expected.len() == signature.len()
            && expected
                .bytes()
                .zip(signature.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !genuine || self.store().now().timestamp() > expires {
            return Ok(None);
        }
        let mut tx = self.store().tenant(org, false).await?;
        let info = blob(&mut tx, &sha).await?;
        tx.commit().await?;
        let Some(info) = info else { return Ok(None) };
        Ok(store
            .get(org, &sha)
            .await?
            .map(|bytes| (info.media_type, bytes)))
    }
}

impl Services {
    /// The customer's signature an invoice shows: one attached to the invoice itself, else the
    /// latest taken on its job (at completion, or on one of its visits).
    pub async fn invoice_signature(
        &self,
        caller: &Caller,
        invoice: hestami_core::ids::InvoiceId,
    ) -> Result<Option<Attachment>, StoreError> {
        self.read(caller, move |tx| Box::pin(invoice_signature(tx, invoice)))
            .await
    }
}

/// The customer's signature an invoice shows (see [`Services::invoice_signature`]).
pub(crate) async fn invoice_signature(
    tx: &mut TenantTx,
    invoice: hestami_core::ids::InvoiceId,
) -> Result<Option<Attachment>, StoreError> {
    let job = job_of_subject(tx, AttachedTo::Invoice, invoice.as_uuid()).await?;
    let own = of_subject(tx, AttachedTo::Invoice, invoice.as_uuid())
        .await?
        .into_iter()
        .rev()
        .find(|a| a.kind == AttachmentKind::Signature);
    match (own, job) {
        (Some(own), _) => Ok(Some(own)),
        (None, Some(job)) => job_signature(tx, job).await,
        (None, None) => Ok(None),
    }
}
