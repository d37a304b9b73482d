//! `attachment/v1`: attach an uploaded blob (see `PUT /api/v1/blobs/{sha256}`) to a job,
//! appointment, estimate or invoice; list a subject's attachments; get a short-lived signed
//! download link.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::blob::{AttachedTo, AttachmentKind, MediaType, Sha256Hex};
use hestami_core::ids::AttachmentId;
use hestami_core::text::{Name as PersonName, Summary};
use hestami_store::app::attachments::{Attachment, AttachmentCommand, NewAttachment};

use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, mutation_async, query, validate};
use crate::v1::technician::{DeviceReportDto, FixDto};

/// What an attachment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKindDto {
    /// A photo (an image).
    Photo,
    /// A document (a PDF or an image).
    Document,
    /// A customer's signature (an image), with `signedBy`.
    Signature,
}

/// What an attachment is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttachedToDto {
    /// A job.
    Job,
    /// An appointment (a visit).
    Appointment,
    /// An estimate.
    Estimate,
    /// An invoice.
    Invoice,
}

/// The blob types accepted, detected from the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum MediaTypeDto {
    /// JPEG.
    #[serde(rename = "image/jpeg")]
    Jpeg,
    /// PNG.
    #[serde(rename = "image/png")]
    Png,
    /// WebP.
    #[serde(rename = "image/webp")]
    Webp,
    /// HEIC.
    #[serde(rename = "image/heic")]
    Heic,
    /// PDF.
    #[serde(rename = "application/pdf")]
    Pdf,
}

impl From<MediaType> for MediaTypeDto {
    fn from(m: MediaType) -> Self {
        match m {
            MediaType::Jpeg => Self::Jpeg,
            MediaType::Png => Self::Png,
            MediaType::Webp => Self::Webp,
            MediaType::Heic => Self::Heic,
            MediaType::Pdf => Self::Pdf,
        }
    }
}

fn kind(k: AttachmentKindDto) -> AttachmentKind {
    match k {
        AttachmentKindDto::Photo => AttachmentKind::Photo,
        AttachmentKindDto::Document => AttachmentKind::Document,
        AttachmentKindDto::Signature => AttachmentKind::Signature,
    }
}

fn kind_dto(k: AttachmentKind) -> AttachmentKindDto {
    match k {
        AttachmentKind::Photo => AttachmentKindDto::Photo,
        AttachmentKind::Document => AttachmentKindDto::Document,
        AttachmentKind::Signature => AttachmentKindDto::Signature,
    }
}

fn attached_to(t: AttachedToDto) -> AttachedTo {
    match t {
        AttachedToDto::Job => AttachedTo::Job,
        AttachedToDto::Appointment => AttachedTo::Appointment,
        AttachedToDto::Estimate => AttachedTo::Estimate,
        AttachedToDto::Invoice => AttachedTo::Invoice,
    }
}

fn attached_to_dto(t: AttachedTo) -> AttachedToDto {
    match t {
        AttachedTo::Job => AttachedToDto::Job,
        AttachedTo::Appointment => AttachedToDto::Appointment,
        AttachedTo::Estimate => AttachedToDto::Estimate,
        AttachedTo::Invoice => AttachedToDto::Invoice,
    }
}

/// `attachment/v1/attach`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttachInput {
    /// Makes the call idempotent (a device queuing photos offline gives each its own key).
    pub idempotency_key: Uuid,
    /// The SHA-256 of a blob already uploaded to the organization (64 hexadecimal digits).
    pub sha256: String,
    /// What it is attached to.
    pub attached_to: AttachedToDto,
    /// The id of that job, appointment, estimate or invoice.
    pub subject_id: Uuid,
    /// Photo and signature take images; a document takes a PDF or an image.
    pub kind: AttachmentKindDto,
    /// A caption.
    pub caption: Option<String>,
    /// For a signature (and only then): the name the customer printed beside it.
    pub signed_by: Option<String>,
    /// When (by the device's clock) and where it was taken or signed.
    pub device: Option<DeviceReportDto>,
}

mutating!(AttachInput);

/// An attachment.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentDto {
    /// Its id.
    pub id: Uuid,
    /// The blob's SHA-256 (download it from `/api/v1/blobs/{sha256}`).
    pub sha256: String,
    /// The blob's type, read from its bytes.
    pub media_type: MediaTypeDto,
    /// The blob's size in bytes.
    pub size_bytes: u64,
    /// What it is.
    pub kind: AttachmentKindDto,
    /// What it is attached to.
    pub attached_to: AttachedToDto,
    /// Which one.
    pub subject_id: Uuid,
    /// The job it belongs to, when its subject has one.
    pub job_id: Option<Uuid>,
    /// The caption.
    pub caption: Option<String>,
    /// For a signature, the name the customer printed.
    pub signed_by: Option<String>,
    /// When the device says it was taken or signed.
    pub device_time: Option<DateTime<Utc>>,
    /// Where the device was.
    pub location: Option<FixDto>,
    /// Who attached it.
    pub author_user_id: Option<Uuid>,
    /// When the server recorded it.
    pub created_at: DateTime<Utc>,
}

impl From<Attachment> for AttachmentDto {
    fn from(a: Attachment) -> Self {
        Self {
            id: a.id.as_uuid(),
            sha256: a.sha256.to_string(),
            media_type: a.media_type.into(),
            size_bytes: a.size_bytes,
            kind: kind_dto(a.kind),
            attached_to: attached_to_dto(a.attached_to),
            subject_id: a.subject_id,
            job_id: a.job_id.map(|j| j.as_uuid()),
            caption: a.caption.map(|c| c.as_str().to_owned()),
            signed_by: a.signed_by.map(|c| c.as_str().to_owned()),
            device_time: a.device.map(|d| d.device_time),
            location: a.device.and_then(|d| d.location).map(Into::into),
            author_user_id: a.author.map(|u| u.as_uuid()),
            created_at: a.created_at,
        }
    }
}

/// An attachment's fields as they arrive, wherever they arrive (`attachment/v1/attach`, or
/// `job/v2/complete`'s signature).
pub(crate) struct AttachmentFields<'a> {
    pub sha256: &'a str,
    pub attached_to: AttachedTo,
    pub subject_id: Uuid,
    pub kind: AttachmentKind,
    pub caption: Option<&'a str>,
    pub signed_by: Option<&'a str>,
    pub device: Option<&'a DeviceReportDto>,
}

/// Parses an attachment's fields, reporting each problem at `prefix` + the field's name.
pub(crate) fn parse_attachment(
    v: &mut crate::rpc::Validator,
    prefix: &str,
    f: AttachmentFields<'_>,
) -> Option<NewAttachment> {
    let sha = v.check(&format!("{prefix}sha256"), Sha256Hex::parse(f.sha256));
    let caption = v.optional(&format!("{prefix}caption"), f.caption, Summary::parse);
    let signed_by = v.optional(&format!("{prefix}signedBy"), f.signed_by, PersonName::parse);
    let device = DeviceReportDto::parse_optional(f.device, v, &format!("{prefix}device"));
    let attachment = NewAttachment {
        sha256: sha?,
        attached_to: f.attached_to,
        subject_id: f.subject_id,
        kind: f.kind,
        caption: caption?,
        signed_by: signed_by?,
        device: device?,
    };
    for problem in hestami_store::app::attachments::input_problems(&attachment) {
        v.fail(
            &format!("{prefix}{}", problem.field),
            &problem.code,
            &problem.message,
        );
    }
    Some(attachment)
}

fn convert_attach(i: AttachInput) -> Result<AttachmentCommand, ApiError> {
    validate(|v| {
        parse_attachment(
            v,
            "",
            AttachmentFields {
                sha256: &i.sha256,
                attached_to: attached_to(i.attached_to),
                subject_id: i.subject_id,
                kind: kind(i.kind),
                caption: i.caption.as_deref(),
                signed_by: i.signed_by.as_deref(),
                device: i.device.as_ref(),
            },
        )
        .map(AttachmentCommand::Attach)
    })
}

/// Parses the input, then checks the blob (uploaded, reachable by the caller, of a type the
/// kind takes) before the workflow: a blob never changes once stored, and a refusal here does not
/// spend the key (the device uploads the bytes and sends the same request again).
async fn checked_attach(ctx: Ctx, i: AttachInput) -> Result<AttachmentCommand, ApiError> {
    let command = convert_attach(i)?;
    let AttachmentCommand::Attach(a) = &command;
    ctx.services
        .check_attachable(ctx.caller()?, &a.sha256, a.kind)
        .await?;
    Ok(command)
}

/// `attachment/v1/list`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListAttachmentsInput {
    /// What the attachments are attached to.
    pub attached_to: AttachedToDto,
    /// Its id.
    pub subject_id: Uuid,
}

/// `attachment/v1/list`'s result.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentsOutput {
    /// Oldest first.
    pub attachments: Vec<AttachmentDto>,
}

async fn list(ctx: Ctx, i: ListAttachmentsInput) -> Result<AttachmentsOutput, ApiError> {
    let found = ctx
        .services
        .attachment_list(ctx.caller()?, attached_to(i.attached_to), i.subject_id)
        .await?;
    Ok(AttachmentsOutput {
        attachments: found.into_iter().map(Into::into).collect(),
    })
}

/// `attachment/v1/downloadLink`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DownloadLinkInput {
    /// The attachment.
    pub attachment_id: Uuid,
}

/// A link that downloads the attachment's blob without a token until it expires.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DownloadLinkOutput {
    /// The path and query to `GET` on this server.
    pub url: String,
    /// When the link stops working (15 minutes from now).
    pub expires_at: DateTime<Utc>,
}

async fn download_link(ctx: Ctx, i: DownloadLinkInput) -> Result<DownloadLinkOutput, ApiError> {
    let link = ctx
        .services
        .attachment_link(ctx.caller()?, AttachmentId::from_uuid(i.attachment_id))
        .await?;
    Ok(DownloadLinkOutput {
        url: link.url,
        expires_at: link.expires_at,
    })
}

fn name(name: &'static str, summary: &'static str, errors: &'static [&'static str]) -> Name {
    Name {
        namespace: "attachment",
        version: "v1",
        name,
        summary,
        errors,
    }
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        mutation_async(
            name(
                "attach",
                "Attach an uploaded blob (photo, document or signature) to a job, appointment, estimate or invoice",
                &["NOT_FOUND", "BLOB_NOT_FOUND", "ATTACHMENT_TYPE_MISMATCH"],
            ),
            checked_attach,
            |a: Attachment| AttachmentDto::from(a),
        ),
        query(
            name(
                "list",
                "The attachments of a job, appointment, estimate or invoice, oldest first",
                &["NOT_FOUND"],
            ),
            list,
        ),
        query(
            name(
                "downloadLink",
                "A signed link that downloads an attachment's blob without a token for 15 minutes",
                &["NOT_FOUND"],
            ),
            download_link,
        ),
    ]
}
