//! `notification/v1`: what the organization's customers and staff are told, and by which
//! template; the outbox's messages and their delivery; re-driving dead ones.
//!
//! Workflows decide to tell someone (an estimate sent, an invoice issued or overdue, a payment
//! received, a credential about to expire…) by writing an outbox message in their own
//! transaction; the relay delivers it by e-mail with the organization's template for its kind
//! (or the default), retries with backoff, and dead-letters it when it cannot.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use hestami_store::app::PageRequest;
use hestami_store::app::delivery::{
    Audience, KindTemplate, MAX_REDRIVE, NotificationCommand, OutboxMessage, Redriven, Template,
    Templates, check_kind, check_template,
};

use crate::error::ApiError;
use crate::rpc::{Ctx, Name, Procedure, mutation, query};

/// A message's subject and bodies. `{{variable}}` placeholders take the kind's variables;
/// values are HTML-escaped in `html`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessageTemplateDto {
    /// The subject line: one line, 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    pub subject: String,
    /// The plain-text body, 1 to 20,000 characters.
    #[schema(min_length = 1, max_length = 20000)]
    pub text: String,
    /// The HTML body, 1 to 20,000 characters.
    #[schema(min_length = 1, max_length = 20000)]
    pub html: String,
}

impl From<Template> for MessageTemplateDto {
    fn from(t: Template) -> Self {
        Self {
            subject: t.subject,
            text: t.text,
            html: t.html,
        }
    }
}

impl From<MessageTemplateDto> for Template {
    fn from(t: MessageTemplateDto) -> Self {
        Self {
            subject: t.subject,
            text: t.text,
            html: t.html,
        }
    }
}

/// Who receives a kind of message.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AudienceDto {
    /// The customer it is about, at their e-mail address.
    Customer,
    /// The organization, at its profile's contact address.
    Organization,
}

/// The kinds of message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageKindDto {
    /// An estimate was sent (the estimate's PDF attached).
    EstimateSent,
    /// An invoice was issued (its PDF attached).
    InvoiceIssued,
    /// An invoice is past due (its PDF attached).
    InvoiceOverdue,
    /// A payment was recorded (the invoice's PDF attached).
    PaymentReceipt,
    /// A credit note was issued against an invoice (the invoice's PDF attached).
    CreditNoteIssued,
    /// A visit was booked, with its window.
    AppointmentConfirmed,
    /// The crew set off for the visit ("on my way").
    TechnicianEnRoute,
    /// A licence, policy or certification expires in 30, 7 or 1 days.
    ExpiryReminder,
    /// A payment moved money that could not be applied.
    PaymentUnreconciled,
    /// A job was not reached within its SLA window.
    SlaBreached,
    /// A visit's arrival window closed with nobody on site.
    AppointmentWindowMissed,
    /// A purchase order was sent to its supplier (to the office, with the supplier's address).
    PurchaseOrderSubmitted,
    /// A maintenance agreement's card was declined (to the office; suspended after three).
    AgreementPaymentFailed,
    /// A maintenance agreement renewed for another term (to the customer).
    AgreementRenewed,
}

impl MessageKindDto {
    fn as_str(self) -> &'static str {
        match self {
            Self::EstimateSent => "estimate_sent",
            Self::InvoiceIssued => "invoice_issued",
            Self::InvoiceOverdue => "invoice_overdue",
            Self::PaymentReceipt => "payment_receipt",
            Self::CreditNoteIssued => "credit_note_issued",
            Self::AppointmentConfirmed => "appointment_confirmed",
            Self::TechnicianEnRoute => "technician_en_route",
            Self::ExpiryReminder => "expiry_reminder",
            Self::PaymentUnreconciled => "payment_unreconciled",
            Self::SlaBreached => "sla_breached",
            Self::AppointmentWindowMissed => "appointment_window_missed",
            Self::PurchaseOrderSubmitted => "purchase_order_submitted",
            Self::AgreementPaymentFailed => "agreement_payment_failed",
            Self::AgreementRenewed => "agreement_renewed",
        }
    }
}

/// One kind's template.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct KindTemplateDto {
    /// The kind.
    pub kind: String,
    /// Who receives it.
    pub audience: AudienceDto,
    /// `estimate` or `invoice` when that document's PDF is attached.
    pub attachment: Option<String>,
    /// The variables its templates may use.
    pub variables: Vec<String>,
    /// Whether it is the shipped default.
    pub is_default: bool,
    /// The template in use.
    pub template: MessageTemplateDto,
}

/// Every kind's template.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TemplatesDto {
    /// The version of the organization's templates (0: all defaults); pass it as
    /// `expectedVersion`.
    pub version: i64,
    /// One per kind.
    pub kinds: Vec<KindTemplateDto>,
}

fn kind_dto(k: KindTemplate) -> KindTemplateDto {
    KindTemplateDto {
        kind: k.kind,
        audience: match k.audience {
            Audience::Customer => AudienceDto::Customer,
            Audience::Organization => AudienceDto::Organization,
        },
        attachment: k.attachment,
        variables: k.variables,
        is_default: k.is_default,
        template: k.template.into(),
    }
}

impl From<Templates> for TemplatesDto {
    fn from(t: Templates) -> Self {
        Self {
            version: t.version,
            kinds: t.kinds.into_iter().map(kind_dto).collect(),
        }
    }
}

/// `notification/v1/setTemplate`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetTemplateInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// Which kind.
    pub kind: MessageKindDto,
    /// The organization's template; `null` goes back to the default.
    pub template: Option<MessageTemplateDto>,
    /// Fail with `VERSION_CONFLICT` unless the templates are at this version.
    pub expected_version: Option<i64>,
}

mutating!(SetTemplateInput, RedriveInput);

fn set_template(i: SetTemplateInput) -> Result<NotificationCommand, ApiError> {
    let kind = i.kind.as_str();
    let template = i.template.map(Template::from);
    match &template {
        Some(t) => check_template(kind, t)?,
        None => {
            check_kind(kind)?;
        }
    }
    Ok(NotificationCommand::SetTemplate {
        kind: kind.to_owned(),
        template,
        expected_version: i.expected_version,
    })
}

/// A message's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatusDto {
    /// Waiting to be delivered (or retried).
    Pending,
    /// Accepted by the recipient's server.
    Delivered,
    /// Given up: refused for good, or failing for too long; `redrive` sends it again.
    Dead,
}

/// `notification/v1/messages`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MessagesInput {
    /// Only messages in this state.
    pub status: Option<MessageStatusDto>,
    /// Page size, 1 to 200 (default 50).
    pub limit: Option<u32>,
    /// `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// A message and its delivery.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageDto {
    /// Its id (the e-mail's `Message-ID`).
    pub id: Uuid,
    /// Its kind.
    pub kind: String,
    /// What the workflow recorded.
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    /// pending, delivered or dead.
    pub status: String,
    /// Attempts so far.
    pub attempts: i32,
    /// The address it was last sent to.
    pub recipient: Option<String>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The workflow that decided it.
    pub workflow_id: Option<Uuid>,
    /// When it was decided.
    pub created_at: DateTime<Utc>,
    /// When it was delivered.
    pub delivered_at: Option<DateTime<Utc>>,
    /// When it was dead-lettered.
    pub dead_at: Option<DateTime<Utc>>,
}

impl From<OutboxMessage> for MessageDto {
    fn from(m: OutboxMessage) -> Self {
        Self {
            id: m.id,
            kind: m.kind,
            payload: m.payload,
            status: m.status,
            attempts: m.attempts,
            recipient: m.recipient,
            last_error: m.last_error,
            workflow_id: m.workflow_id,
            created_at: m.created_at,
            delivered_at: m.delivered_at,
            dead_at: m.dead_at,
        }
    }
}

/// A page of messages.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessagePage {
    /// The messages, oldest first.
    pub items: Vec<MessageDto>,
    /// Pass it as `cursor` for the next page; absent on the last.
    pub next_cursor: Option<String>,
}

async fn messages(ctx: Ctx, i: MessagesInput) -> Result<MessagePage, ApiError> {
    let page = PageRequest::parse(i.limit, i.cursor.as_deref())?;
    let status = i.status.map(|s| {
        match s {
            MessageStatusDto::Pending => "pending",
            MessageStatusDto::Delivered => "delivered",
            MessageStatusDto::Dead => "dead",
        }
        .to_owned()
    });
    let page = ctx
        .services
        .outbox_messages(ctx.caller()?, status, page)
        .await?;
    Ok(MessagePage {
        items: page.items.into_iter().map(Into::into).collect(),
        next_cursor: page.next_cursor,
    })
}

/// `notification/v1/redrive`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RedriveInput {
    /// Makes the call idempotent.
    pub idempotency_key: Uuid,
    /// The dead messages to send again (1 to 100, distinct).
    #[schema(min_items = 1, max_items = 100)]
    pub message_ids: Vec<Uuid>,
}

fn redrive(i: RedriveInput) -> Result<NotificationCommand, ApiError> {
    if i.message_ids.is_empty() || i.message_ids.len() > MAX_REDRIVE {
        return Err(ApiError::field(
            "messageIds",
            "invalid_length",
            format!("messageIds lists 1 to {MAX_REDRIVE} messages"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(k) = i.message_ids.iter().position(|id| !seen.insert(*id)) {
        return Err(ApiError::field(
            format!("messageIds[{k}]"),
            "duplicate",
            "each message is listed once",
        ));
    }
    Ok(NotificationCommand::Redrive {
        message_ids: i.message_ids,
    })
}

/// The re-driven messages.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RedrivenDto {
    /// The messages, pending again.
    pub messages: Vec<MessageDto>,
}

pub(crate) fn procedures() -> Vec<Procedure> {
    vec![
        query(
            Name {
                namespace: "notification",
                version: "v1",
                name: "templates",
                summary: "Every kind of message with its audience, attachment, variables and the template in use (the organization's or the default)",
                errors: &[],
            },
            |ctx: Ctx, _: super::Empty| async move {
                Ok(TemplatesDto::from(
                    ctx.services.notification_templates(ctx.caller()?).await?,
                ))
            },
        ),
        mutation(
            Name {
                namespace: "notification",
                version: "v1",
                name: "setTemplate",
                summary: "Set the organization's template for a kind of message (subject, plain text, HTML with the kind's {{variables}}), or go back to the default with null",
                errors: &["VERSION_CONFLICT"],
            },
            set_template,
            <TemplatesDto as From<Templates>>::from,
        ),
        query(
            Name {
                namespace: "notification",
                version: "v1",
                name: "messages",
                summary: "The outbox: every message decided, its state, attempts and last error, oldest first",
                errors: &[],
            },
            messages,
        ),
        mutation(
            Name {
                namespace: "notification",
                version: "v1",
                name: "redrive",
                summary: "Send dead messages again: they are pending once more and the relay takes them at once",
                errors: &["NOT_FOUND", "MESSAGE_NOT_DEAD"],
            },
            redrive,
            |r: Redriven| RedrivenDto {
                messages: r.messages.into_iter().map(Into::into).collect(),
            },
        ),
    ]
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_names_every_kind_the_relay_delivers() {
        let wire = [
            MessageKindDto::EstimateSent,
            MessageKindDto::InvoiceIssued,
            MessageKindDto::InvoiceOverdue,
            MessageKindDto::PaymentReceipt,
            MessageKindDto::CreditNoteIssued,
            MessageKindDto::AppointmentConfirmed,
            MessageKindDto::TechnicianEnRoute,
            MessageKindDto::ExpiryReminder,
            MessageKindDto::PaymentUnreconciled,
            MessageKindDto::SlaBreached,
            MessageKindDto::AppointmentWindowMissed,
            MessageKindDto::PurchaseOrderSubmitted,
            MessageKindDto::AgreementPaymentFailed,
            MessageKindDto::AgreementRenewed,
        ];
        let kinds: Vec<&str> = hestami_store::app::delivery::MESSAGE_KINDS
            .iter()
            .map(|k| k.kind)
            .collect();
        assert_eq!(wire.map(MessageKindDto::as_str).to_vec(), kinds);
        for kind in wire {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
    }
}
