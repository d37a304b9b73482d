//! `estimate/v1/pdf` and `invoice/v1/pdf`: the documents a customer receives, rendered on
//! demand from the records (the same renderer the e-mails attach).

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_core::ids::{EstimateId, InvoiceId};
use hestami_store::app::delivery::RenderedDocument;

use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, query};

/// `estimate/v1/pdf`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EstimatePdfInput {
    /// Which estimate (its current revision).
    pub estimate_id: Uuid,
}

/// `invoice/v1/pdf`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InvoicePdfInput {
    /// Which invoice.
    pub invoice_id: Uuid,
}

/// A rendered PDF.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PdfDto {
    /// A file name for it.
    pub file_name: String,
    /// `application/pdf`.
    pub content_type: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// The SHA-256 of its bytes, in hex.
    pub sha256: String,
    /// The PDF, in base64.
    pub content_base64: String,
}

impl From<RenderedDocument> for PdfDto {
    fn from(d: RenderedDocument) -> Self {
        Self {
            file_name: d.file_name,
            content_type: "application/pdf".to_owned(),
            size_bytes: d.bytes.len() as u64,
            sha256: Sha256::digest(&d.bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            content_base64: base64::engine::general_purpose::STANDARD.encode(&d.bytes),
        }
    }
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        query(
            Name {
                namespace: "estimate",
                version: "v1",
                name: "pdf",
                summary: "The estimate as a PDF, as the customer receives it: every option's lines, taxes and totals, and the approval with its signature once captured",
                errors: &["NOT_FOUND"],
            },
            |ctx: Ctx, i: EstimatePdfInput| async move {
                Ok::<_, ApiError>(PdfDto::from(
                    ctx.services
                        .estimate_pdf(ctx.caller()?, EstimateId::from_uuid(i.estimate_id))
                        .await?,
                ))
            },
        ),
        query(
            Name {
                namespace: "invoice",
                version: "v1",
                name: "pdf",
                summary: "The invoice as a PDF, as the customer receives it: lines, taxes, totals, payments and the balance due",
                errors: &["NOT_FOUND"],
            },
            |ctx: Ctx, i: InvoicePdfInput| async move {
                Ok::<_, ApiError>(PdfDto::from(
                    ctx.services
                        .invoice_pdf(ctx.caller()?, InvoiceId::from_uuid(i.invoice_id))
                        .await?,
                ))
            },
        ),
    ]
}
