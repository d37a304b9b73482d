//! The outbox relay: delivering what workflows decided to tell people.
//!
//! A workflow step writes an `outbox` row in its own transaction (`TenantTx::enqueue`)
//! together with a one-shot timer `outbox/<message id>` due at once; nothing is sent unless the
//! step commits. The relay's pass ([`Services::deliver_due`], several processes safe) leases
//! the timer and calls `Services::deliver_message`, which
//!
//! 1. reads the message and waits (a few seconds) while an older message to the same recipient
//!    is still pending: one customer's messages arrive in the order they were decided;
//! 2. renders it — the organization's template for its kind, or the default, plain text and
//!    HTML, with the estimate's or invoice's PDF attached where the kind says so;
//! 3. sends it through the channel, outside any transaction;
//! 4. records the attempt (`delivery_attempts`) and the message's new state in one transaction:
//!    `delivered`; or `pending` again, its timer moved by exponential backoff with jitter; or
//!    `dead` once the server refused it for good or it has failed for longer than
//!    [`RetryPolicy::give_up_after`].
//!
//! A crash between 3 and 4 sends the message again when the lease runs out, with the same
//! `Message-ID` (the outbox row's id), so the recipient's mail system sees one message.
//! `notification/v1/messages` lists messages, their state, attempt count and last error;
//! `notification/v1/redrive` puts dead ones back in the queue.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use hestami_core::ids::{CustomerId, EstimateId, InvoiceId, OrganizationId, PropertyId};

use super::{Caller, OrgSetting, Page, PageRequest, Services};
use crate::db::{Row, args};
use crate::error::{Failure, FailureKind, FieldError, StoreError};
use crate::mail::{Mailer, Outgoing};
use crate::store::TenantTx;

/// The timer that delivers one outbox message: `outbox/<message id>`.
pub const OUTBOX_TIMER_PREFIX: &str = "outbox/";

/// How long a message waits behind an older pending message to the same recipient before it
/// looks again.
const WAIT_BEHIND: i64 = 5;

/// How the relay retries a message (and a webhook its events).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The delay after the first failure; each further failure doubles it.
    pub first: Duration,
    /// The longest delay between two attempts.
    pub longest: Duration,
    /// After failing for this long, a message is dead-lettered.
    pub give_up_after: Duration,
}

impl Default for RetryPolicy {
    /// 30 s, doubling up to an hour between attempts, for up to three days.
    fn default() -> Self {
        Self {
            first: Duration::seconds(30),
            longest: Duration::hours(1),
            give_up_after: Duration::days(3),
        }
    }
}

impl RetryPolicy {
    /// The delay before attempt `failures + 1` after `failures` failures in a row: the doubled
    /// delay, capped, less a random part of up to half of it ("equal jitter"), so that messages
    /// that failed together do not all come back together.
    pub fn backoff(&self, failures: u32, jitter: f64) -> Duration {
        let doubled = self
            .first
            .checked_mul(1_i32 << failures.saturating_sub(1).min(20))
            .unwrap_or(self.longest)
            .min(self.longest);
        let millis = doubled.num_milliseconds() as f64;
        Duration::milliseconds((millis / 2.0 + millis / 2.0 * jitter.clamp(0.0, 1.0)) as i64)
    }
}

/// A random number in [0, 1) for jitter.
pub(crate) fn jitter() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

/// What the relay delivers through, and how it retries.
#[derive(Clone, Debug, Default)]
pub struct RelaySettings {
    /// The e-mail channel; without one, messages wait (pending) until a server starts with one.
    pub mailer: Option<Mailer>,
    /// Retries and dead-lettering.
    pub policy: RetryPolicy,
    /// Webhook delivery.
    pub webhooks: super::webhooks::WebhookSettings,
}

/// Who a kind of message goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// The customer the message is about (their e-mail address).
    Customer,
    /// The organization itself (its profile's contact address).
    Organization,
}

/// A document attached to a kind of message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attach {
    /// Nothing.
    Nothing,
    /// The estimate's PDF (`estimateId`, `revision` in the payload).
    Estimate,
    /// The invoice's PDF (`invoiceId` in the payload).
    Invoice,
}

/// A message's subject and bodies, with `{{variable}}` placeholders.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML body (variables are HTML-escaped in it).
    pub html: String,
}

/// A kind of message the relay delivers.
#[derive(Debug)]
pub struct MessageKind {
    /// The outbox kind (`estimate_sent`).
    pub kind: &'static str,
    /// Who receives it.
    pub audience: Audience,
    /// What is attached.
    pub attach: Attach,
    /// The variables its templates may use.
    pub variables: &'static [&'static str],
    /// The default subject.
    pub subject: &'static str,
    /// The default plain-text body.
    pub text: &'static str,
    /// The default HTML body.
    pub html: &'static str,
}

impl MessageKind {
    /// The shipped template.
    pub fn default_template(&self) -> Template {
        Template {
            subject: self.subject.to_owned(),
            text: self.text.to_owned(),
            html: self.html.to_owned(),
        }
    }
}

/// Every kind of message, with its audience, attachment, variables and default template.
pub const MESSAGE_KINDS: &[MessageKind] = &[
    MessageKind {
        kind: "estimate_sent",
        audience: Audience::Customer,
        attach: Attach::Estimate,
        variables: &[
            "organizationName",
            "customerName",
            "estimateId",
            "revision",
            "validUntil",
            "options",
        ],
        subject: "Your estimate from {{organizationName}}",
        text: "Hello {{customerName}},\n\n{{organizationName}} has prepared an estimate for you, valid until {{validUntil}}:\n\n{{options}}\n\nThe estimate is attached as a PDF.\n",
        html: "<p>Hello {{customerName}},</p><p>{{organizationName}} has prepared an estimate for you, valid until {{validUntil}}:</p><p>{{options}}</p><p>The estimate is attached as a PDF.</p>",
    },
    MessageKind {
        kind: "invoice_issued",
        audience: Audience::Customer,
        attach: Attach::Invoice,
        variables: &[
            "organizationName",
            "customerName",
            "invoiceId",
            "number",
            "total",
            "dueDate",
        ],
        subject: "Invoice {{number}} from {{organizationName}}",
        text: "Hello {{customerName}},\n\nInvoice {{number}} for {{total}} is due on {{dueDate}}. It is attached as a PDF.\n",
        html: "<p>Hello {{customerName}},</p><p>Invoice {{number}} for {{total}} is due on {{dueDate}}. It is attached as a PDF.</p>",
    },
    MessageKind {
        kind: "invoice_overdue",
        audience: Audience::Customer,
        attach: Attach::Invoice,
        variables: &[
            "organizationName",
            "customerName",
            "invoiceId",
            "number",
            "balance",
            "dueDate",
            "agingBucket",
        ],
        subject: "Invoice {{number}} is overdue",
        text: "Hello {{customerName}},\n\nInvoice {{number}} was due on {{dueDate}}; {{balance}} remains to be paid. It is attached as a PDF.\n",
        html: "<p>Hello {{customerName}},</p><p>Invoice {{number}} was due on {{dueDate}}; {{balance}} remains to be paid. It is attached as a PDF.</p>",
    },
    MessageKind {
        kind: "payment_receipt",
        audience: Audience::Customer,
        attach: Attach::Invoice,
        variables: &[
            "organizationName",
            "customerName",
            "invoiceId",
            "number",
            "paymentId",
            "amount",
            "method",
            "balance",
        ],
        subject: "Payment received for invoice {{number}}",
        text: "Hello {{customerName}},\n\nThank you: we received {{amount}} ({{method}}) for invoice {{number}}. The balance is now {{balance}}.\n",
        html: "<p>Hello {{customerName}},</p><p>Thank you: we received {{amount}} ({{method}}) for invoice {{number}}. The balance is now {{balance}}.</p>",
    },
    MessageKind {
        kind: "credit_note_issued",
        audience: Audience::Customer,
        attach: Attach::Invoice,
        variables: &[
            "organizationName",
            "customerName",
            "invoiceId",
            "number",
            "creditNoteNumber",
            "total",
            "balance",
        ],
        subject: "Credit note {{creditNoteNumber}} for invoice {{number}}",
        text: "Hello {{customerName}},\n\nWe have credited {{total}} against invoice {{number}} (credit note {{creditNoteNumber}}). The balance is now {{balance}}.\n",
        html: "<p>Hello {{customerName}},</p><p>We have credited {{total}} against invoice {{number}} (credit note {{creditNoteNumber}}). The balance is now {{balance}}.</p>",
    },
    MessageKind {
        kind: "appointment_confirmed",
        audience: Audience::Customer,
        attach: Attach::Nothing,
        variables: &[
            "organizationName",
            "customerName",
            "jobId",
            "appointmentId",
            "windowStart",
            "windowEnd",
        ],
        subject: "Your visit from {{organizationName}} is booked",
        text: "Hello {{customerName}},\n\n{{organizationName}} will visit between {{windowStart}} and {{windowEnd}}.\n",
        html: "<p>Hello {{customerName}},</p><p>{{organizationName}} will visit between {{windowStart}} and {{windowEnd}}.</p>",
    },
    MessageKind {
        kind: "technician_en_route",
        audience: Audience::Customer,
        attach: Attach::Nothing,
        variables: &[
            "organizationName",
            "customerName",
            "technicianName",
            "jobId",
            "appointmentId",
            "windowStart",
            "windowEnd",
        ],
        subject: "{{organizationName}} is on the way",
        text: "Hello {{customerName}},\n\n{{technicianName}} from {{organizationName}} is on the way for your visit (window {{windowStart}} to {{windowEnd}}).\n",
        html: "<p>Hello {{customerName}},</p><p>{{technicianName}} from {{organizationName}} is on the way for your visit (window {{windowStart}} to {{windowEnd}}).</p>",
    },
    MessageKind {
        kind: "expiry_reminder",
        audience: Audience::Organization,
        attach: Attach::Nothing,
        variables: &[
            "organizationName",
            "itemKind",
            "itemId",
            "label",
            "expiresOn",
            "daysLeft",
        ],
        subject: "{{label}} expires in {{daysLeft}} days",
        text: "{{organizationName}}: the {{label}} expires on {{expiresOn}}, in {{daysLeft}} days. Renew it to keep taking work that needs it.\n",
        html: "<p>{{organizationName}}: the {{label}} expires on {{expiresOn}}, in {{daysLeft}} days. Renew it to keep taking work that needs it.</p>",
    },
    MessageKind {
        kind: "payment_unreconciled",
        audience: Audience::Organization,
        attach: Attach::Nothing,
        variables: &[
            "organizationName",
            "ledgerId",
            "invoiceId",
            "amount",
            "providerCode",
            "message",
        ],
        subject: "A payment of {{amount}} needs reconciling",
        text: "{{organizationName}}: a payment of {{amount}} for invoice {{invoiceId}} moved money that could not be applied ({{message}}). Reconcile it with the processor.\n",
        html: "<p>{{organizationName}}: a payment of {{amount}} for invoice {{invoiceId}} moved money that could not be applied ({{message}}). Reconcile it with the processor.</p>",
    },
    MessageKind {
        kind: "sla_breached",
        audience: Audience::Organization,
        attach: Attach::Nothing,
        variables: &[
            "organizationName",
            "jobId",
            "slaDeadline",
            "status",
            "priority",
        ],
        subject: "Job {{jobId}} missed its response deadline",
        text: "{{organizationName}}: job {{jobId}} ({{priority}}, {{status}}) was not reached by {{slaDeadline}}.\n",
        html: "<p>{{organizationName}}: job {{jobId}} ({{priority}}, {{status}}) was not reached by {{slaDeadline}}.</p>",
    },
    MessageKind {
        kind: "appointment_window_missed",
        audience: Audience::Organization,
        attach: Attach::Nothing,
        variables: &[
            "organizationName",
            "jobId",
            "appointmentId",
            "windowEnd",
            "status",
        ],
        subject: "A visit's arrival window closed with nobody on site",
        text: "{{organizationName}}: the window of appointment {{appointmentId}} (job {{jobId}}) ended at {{windowEnd}} with nobody on site.\n",
        html: "<p>{{organizationName}}: the window of appointment {{appointmentId}} (job {{jobId}}) ended at {{windowEnd}} with nobody on site.</p>",
    },
    MessageKind {
        kind: "purchase_order_submitted",
        audience: Audience::Organization,
        attach: Attach::Nothing,
        variables: &[
            "organizationName",
            "purchaseOrderId",
            "number",
            "supplierId",
            "supplierName",
            "supplierEmail",
            "lines",
            "total",
        ],
        subject: "Purchase order {{number}} for {{supplierName}}",
        text: "{{organizationName}}: purchase order {{number}} to {{supplierName}} ({{supplierEmail}}), {{total}}:\n\n{{lines}}\n",
        html: "<p>{{organizationName}}: purchase order {{number}} to {{supplierName}} ({{supplierEmail}}), {{total}}:</p><p>{{lines}}</p>",
    },
    MessageKind {
        kind: "agreement_payment_failed",
        audience: Audience::Organization,
        attach: Attach::Nothing,
        variables: &[
            "organizationName",
            "agreementId",
            "planName",
            "customerId",
            "invoiceId",
            "number",
            "amount",
            "attempts",
            "code",
            "suspended",
            "retryOn",
        ],
        subject: "A maintenance agreement's card was declined ({{attempts}} in a row)",
        text: "{{organizationName}}: the card of agreement {{agreementId}} ({{planName}}) was declined for invoice {{number}}, {{amount}} ({{code}}), {{attempts}} times in a row. Suspended: {{suspended}}. Next attempt: {{retryOn}}.\n",
        html: "<p>{{organizationName}}: the card of agreement {{agreementId}} ({{planName}}) was declined for invoice {{number}}, {{amount}} ({{code}}), {{attempts}} times in a row. Suspended: {{suspended}}. Next attempt: {{retryOn}}.</p>",
    },
    MessageKind {
        kind: "agreement_renewed",
        audience: Audience::Customer,
        attach: Attach::Nothing,
        variables: &[
            "organizationName",
            "customerName",
            "agreementId",
            "planName",
            "termEnd",
            "price",
            "billing",
        ],
        subject: "Your {{planName}} agreement with {{organizationName}} renews",
        text: "Hello {{customerName}},\n\nYour {{planName}} agreement renews for another term, until {{termEnd}}, at {{price}} {{billing}}.\n",
        html: "<p>Hello {{customerName}},</p><p>Your {{planName}} agreement renews for another term, until {{termEnd}}, at {{price}} {{billing}}.</p>",
    },
];

/// The kind named `kind`.
pub fn message_kind(kind: &str) -> Option<&'static MessageKind> {
    MESSAGE_KINDS.iter().find(|k| k.kind == kind)
}

/// Whose messages go out in order: one customer's, or the organization's own.
pub(crate) fn ordering_key(kind: &str, payload: &serde_json::Value) -> String {
    match (
        message_kind(kind).map(|k| k.audience),
        payload["customerId"].as_str(),
    ) {
        (Some(Audience::Customer), Some(customer)) => format!("customer/{customer}"),
        _ => "organization".to_owned(),
    }
}

/// The placeholders in a template text, in order; an error names a malformed one.
fn placeholders(text: &str) -> Result<Vec<&str>, String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "a `{{` is not closed by `}}`".to_owned())?;
        let name = after[..end].trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "`{{{{{}}}}}` is not a variable name",
                &after[..end]
            ));
        }
        names.push(name);
        rest = &after[end + 2..];
    }
    Ok(names)
}

/// Fills a template text; values are HTML-escaped when `html`.
fn fill(text: &str, values: &BTreeMap<String, String>, html: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let value = values.get(after[..end].trim()).map_or("", String::as_str);
        if html {
            for c in value.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '"' => out.push_str("&quot;"),
                    '\'' => out.push_str("&#39;"),
                    '\n' => out.push_str("<br>"),
                    c => out.push(c),
                }
            }
        } else {
            out.push_str(value);
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// The longest subject and body a template may have.
pub const MAX_SUBJECT_CHARS: usize = 200;
/// The longest text or HTML body.
pub const MAX_BODY_CHARS: usize = 20_000;

/// The kind named `kind`, or a validation failure naming the field.
pub fn check_kind(kind: &str) -> Result<&'static MessageKind, Failure> {
    message_kind(kind).ok_or_else(|| {
        Failure::validation(vec![FieldError {
            field: "kind".into(),
            code: "unknown_kind".into(),
            message: format!(
                "kind is one of {}",
                MESSAGE_KINDS
                    .iter()
                    .map(|k| k.kind)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }])
    })
}

/// Checks a template for `kind`: lengths, and only the kind's variables.
pub fn check_template(kind: &str, template: &Template) -> Result<(), Failure> {
    let spec = check_kind(kind)?;
    let mut errors = Vec::new();
    let parts = [
        ("template.subject", &template.subject, MAX_SUBJECT_CHARS),
        ("template.text", &template.text, MAX_BODY_CHARS),
        ("template.html", &template.html, MAX_BODY_CHARS),
    ];
    for (field, text, max) in parts {
        let chars = text.chars().count();
        if chars == 0 || chars > max {
            errors.push(FieldError {
                field: field.into(),
                code: "invalid_length".into(),
                message: format!("{field} is 1 to {max} characters"),
            });
            continue;
        }
        if field == "template.subject" && text.chars().any(char::is_control) {
            errors.push(FieldError {
                field: field.into(),
                code: "invalid_characters".into(),
                message: "the subject is one line, without control characters".into(),
            });
        }
        match placeholders(text) {
            Err(message) => errors.push(FieldError {
                field: field.into(),
                code: "invalid_placeholder".into(),
                message,
            }),
            Ok(names) => {
                for name in names {
                    if !spec.variables.contains(&name) {
                        errors.push(FieldError {
                            field: field.into(),
                            code: "unknown_variable".into(),
                            message: format!(
                                "{{{{{name}}}}} is not a variable of {kind}; it has {}",
                                spec.variables.join(", ")
                            ),
                        });
                    }
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Failure::validation(errors))
    }
}

/// The organization's templates: kind → template, for the kinds it has changed.
pub(crate) const TEMPLATES: OrgSetting = OrgSetting {
    table: "notification_settings",
    column: "templates",
    entity: "notification_settings",
};

/// One kind's template as the organization has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KindTemplate {
    /// The kind.
    pub kind: String,
    /// Who receives it.
    pub audience: Audience,
    /// Whether the estimate's or invoice's PDF is attached.
    pub attachment: Option<String>,
    /// The variables it may use.
    pub variables: Vec<String>,
    /// Whether it is the shipped default (the organization has not changed it).
    pub is_default: bool,
    /// The template.
    pub template: Template,
}

/// Every kind's template, and the settings' version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Templates {
    /// The version of the organization's templates (0: all defaults).
    pub version: i64,
    /// One per kind.
    pub kinds: Vec<KindTemplate>,
}

async fn load_templates(
    tx: &mut TenantTx,
    lock: bool,
) -> Result<(i64, BTreeMap<String, Template>), StoreError> {
    Ok(TEMPLATES.load(tx, lock).await?.unwrap_or_default())
}

fn templates_view(version: i64, own: &BTreeMap<String, Template>) -> Templates {
    Templates {
        version,
        kinds: MESSAGE_KINDS
            .iter()
            .map(|k| KindTemplate {
                kind: k.kind.to_owned(),
                audience: k.audience,
                attachment: match k.attach {
                    Attach::Nothing => None,
                    Attach::Estimate => Some("estimate".to_owned()),
                    Attach::Invoice => Some("invoice".to_owned()),
                },
                variables: k.variables.iter().map(|v| (*v).to_owned()).collect(),
                is_default: !own.contains_key(k.kind),
                template: own
                    .get(k.kind)
                    .cloned()
                    .unwrap_or_else(|| k.default_template()),
            })
            .collect(),
    }
}

/// A message in the outbox and what became of it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutboxMessage {
    /// Its id: the e-mail's `Message-ID`.
    pub id: Uuid,
    /// Its kind.
    pub kind: String,
    /// What the workflow recorded.
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

const MESSAGE_COLUMNS: &str = "id, kind, payload, status, attempts, recipient, last_error, workflow_id, created_at, \
                               delivered_at, dead_at";

fn decode_message(row: &Row) -> Result<OutboxMessage, StoreError> {
    Ok(OutboxMessage {
        id: row.get("id")?,
        kind: row.get("kind")?,
        payload: serde_json::from_str(&row.get::<String>("payload")?)?,
        status: row.get("status")?,
        attempts: row.get::<i64>("attempts")? as i32,
        recipient: row.get("recipient")?,
        last_error: row.get("last_error")?,
        workflow_id: row.get("workflow_id")?,
        created_at: row.get("created_at")?,
        delivered_at: row.get("delivered_at")?,
        dead_at: row.get("dead_at")?,
    })
}

/// The workflow of notification settings and operators' actions on the outbox.
pub const WORKFLOW: &str = "notification_v1";

/// `notification/v1` commands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "procedure", content = "input")]
pub enum NotificationCommand {
    /// `notification/v1/setTemplate`: the organization's template for a kind, or the default
    /// again (`template: None`).
    #[serde(rename = "notification/v1/setTemplate")]
    SetTemplate {
        /// The kind.
        kind: String,
        /// The template; `None` goes back to the default.
        template: Option<Template>,
        /// Fail with `VERSION_CONFLICT` unless the templates are at this version.
        expected_version: Option<i64>,
    },
    /// `notification/v1/redrive`: dead messages are pending again and go out at once.
    #[serde(rename = "notification/v1/redrive")]
    Redrive {
        /// Which messages.
        message_ids: Vec<Uuid>,
    },
}

impl super::Command for NotificationCommand {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        match self {
            Self::SetTemplate { .. } => "notification/v1/setTemplate",
            Self::Redrive { .. } => "notification/v1/redrive",
        }
    }
}

/// What `notification/v1/redrive` did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Redriven {
    /// The messages, pending again.
    pub messages: Vec<OutboxMessage>,
}

/// The most messages one re-drive takes.
pub const MAX_REDRIVE: usize = 100;

pub(crate) async fn run(
    mut ctx: crate::engine::WorkflowCtx,
    command: NotificationCommand,
) -> Result<serde_json::Value, StoreError> {
    ctx.step("notification", move |tx| {
        Box::pin(async move {
            match command {
                NotificationCommand::SetTemplate {
                    kind,
                    template,
                    expected_version,
                } => {
                    match &template {
                        Some(template) => check_template(&kind, template)?,
                        None => {
                            check_kind(&kind)?;
                        }
                    }
                    let (version, mut own) = load_templates(tx, true).await?;
                    super::check_version("notification templates", expected_version, version)?;
                    match template {
                        Some(template) => own.insert(kind, template),
                        None => own.remove(&kind),
                    };
                    let version = TEMPLATES.save(tx, version, &own).await?;
                    Ok(serde_json::to_value(templates_view(version, &own))?)
                }
                NotificationCommand::Redrive { message_ids } => {
                    let (org, now) = (tx.org(), tx.now());
                    let mut messages = Vec::with_capacity(message_ids.len());
                    for id in message_ids {
                        let lock = tx.for_update();
                        let row = tx
                            .fetch_optional(
                                &format!("SELECT status FROM outbox WHERE organization_id = $1 AND id = $2{lock}"),
                                args![org, id],
                            )
                            .await?
                            .ok_or_else(|| Failure::not_found("message"))?;
                        let status: String = row.get("status")?;
                        if status != "dead" {
                            return Err(Failure::new(
                                FailureKind::Conflict,
                                "MESSAGE_NOT_DEAD",
                                format!("only a dead message can be re-driven; {id} is {status}"),
                            )
                            .into());
                        }
                        tx.execute(
                            "UPDATE outbox SET status = 'pending', dead_at = NULL, failing_since = NULL \
                             WHERE organization_id = $1 AND id = $2",
                            args![org, id],
                        )
                        .await?;
                        tx.arm_timer(&format!("{OUTBOX_TIMER_PREFIX}{id}"), now)
                            .await?;
                        let row = tx
                            .fetch_one(
                                &format!("SELECT {MESSAGE_COLUMNS} FROM outbox WHERE organization_id = $1 AND id = $2"),
                                args![org, id],
                            )
                            .await?;
                        messages.push(decode_message(&row)?);
                    }
                    Ok(serde_json::to_value(Redriven { messages })?)
                }
            }
        })
    })
    .await
}

/// What one delivery attempt came to.
enum Attempt {
    Delivered {
        recipient: String,
    },
    Failed {
        permanent: bool,
        error: String,
        recipient: Option<String>,
    },
}

/// A message as read for delivery.
struct Pending {
    kind: String,
    payload: serde_json::Value,
    ordering_key: Option<String>,
    created_at: DateTime<Utc>,
    attempts: i64,
    failing_since: Option<DateTime<Utc>>,
}

/// The plain value of a payload field as a template shows it: money as `1234.50 USD`, a time
/// in the organization's zone.
fn show(value: &serde_json::Value, tz: chrono_tz::Tz) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => match DateTime::parse_from_rfc3339(s) {
            Ok(at) if s.len() > 10 => at
                .with_timezone(&tz)
                .format("%Y-%m-%d %H:%M %Z")
                .to_string(),
            _ => s.clone(),
        },
        serde_json::Value::Object(o) => match (o.get("amount"), o.get("currency")) {
            (Some(serde_json::Value::String(a)), Some(serde_json::Value::String(c))) => {
                format!("{a} {c}")
            }
            _ => value.to_string(),
        },
        other => other.to_string(),
    }
}

impl Services {
    /// The outbox's messages, by id, optionally only those in `status`.
    pub async fn outbox_messages(
        &self,
        caller: &Caller,
        status: Option<String>,
        page: PageRequest,
    ) -> Result<Page<OutboxMessage>, StoreError> {
        self.read(caller, move |tx| {
            Box::pin(async move {
                let org = tx.org();
                let rows = tx
                    .fetch_all(
                        &format!(
                            "SELECT {MESSAGE_COLUMNS} FROM outbox WHERE organization_id = $1 \
                             AND ($2 IS NULL OR id > $2) AND ($3 IS NULL OR status = $3) ORDER BY id LIMIT $4"
                        ),
                        args![org, page.after, status, i64::from(page.limit) + 1],
                    )
                    .await?;
                let items = rows.iter().map(decode_message).collect::<Result<Vec<_>, _>>()?;
                Ok(page.page(items, |m| m.id))
            })
        })
        .await
    }

    /// `notification/v1/templates`: every kind's template (the organization's or the default).
    pub async fn notification_templates(&self, caller: &Caller) -> Result<Templates, StoreError> {
        self.read(caller, |tx| {
            Box::pin(async move {
                let (version, own) = load_templates(tx, false).await?;
                Ok(templates_view(version, &own))
            })
        })
        .await
    }

    /// Renders a message of the caller's organization as it would go out now: recipient,
    /// subject, bodies and attachment. `Err(Failed)` when it cannot go out.
    async fn compose(
        &self,
        caller: &Caller,
        id: Uuid,
        message: &Pending,
    ) -> Result<Result<Outgoing, Attempt>, StoreError> {
        let Some(spec) = message_kind(&message.kind) else {
            return Ok(Err(Attempt::Failed {
                permanent: true,
                error: format!("no channel delivers {} messages", message.kind),
                recipient: None,
            }));
        };
        let payload = message.payload.clone();
        self.read(caller, move |tx| {
            Box::pin(async move {
                let organization = crate::directory::load_organization(tx, false).await?;
                let profile = super::contractor::load_profile(tx, false).await?;
                let tz = organization.time_zone.tz();
                let (_, own) = load_templates(tx, false).await?;
                let template = own
                    .get(spec.kind)
                    .cloned()
                    .unwrap_or_else(|| spec.default_template());
                let mut values = BTreeMap::new();
                if let Some(fields) = payload.as_object() {
                    for (name, value) in fields {
                        values.insert(name.clone(), show(value, tz));
                    }
                }
                values.insert(
                    "organizationName".into(),
                    organization.name.as_str().to_owned(),
                );
                let parse_id = |field: &str| {
                    payload[field]
                        .as_str()
                        .and_then(|s| Uuid::try_parse(s).ok())
                };
                let mut to_name = None;
                let to = match spec.audience {
                    Audience::Organization => profile
                        .contact_email
                        .as_ref()
                        .map(|e| e.as_str().to_owned()),
                    Audience::Customer => {
                        let Some(customer_id) = parse_id("customerId") else {
                            return Ok(Err(Attempt::Failed {
                                permanent: true,
                                error: "the message names no customer".into(),
                                recipient: None,
                            }));
                        };
                        let customer =
                            super::customer::load(tx, CustomerId::from_uuid(customer_id), false)
                                .await?;
                        values.insert("customerName".into(), customer.name.as_str().to_owned());
                        to_name = Some(customer.name.as_str().to_owned());
                        customer.email.as_ref().map(|e| e.as_str().to_owned())
                    }
                };
                let Some(to) = to else {
                    let whose = match spec.audience {
                        Audience::Customer => "the customer has no e-mail address",
                        Audience::Organization => {
                            "the organization's profile has no contact e-mail address"
                        }
                    };
                    return Ok(Err(Attempt::Failed {
                        permanent: true,
                        error: whose.into(),
                        recipient: None,
                    }));
                };
                if let Some(options) = payload["options"].as_array() {
                    let lines: Vec<String> = options
                        .iter()
                        .map(|o| {
                            format!(
                                "{}: {}",
                                o["name"].as_str().unwrap_or(""),
                                show(&o["total"], tz)
                            )
                        })
                        .collect();
                    values.insert("options".into(), lines.join("\n"));
                }
                if let Some(valid_until) = payload["validUntil"]
                    .as_str()
                    .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
                {
                    values.insert(
                        "validUntil".into(),
                        valid_until
                            .with_timezone(&tz)
                            .format("%Y-%m-%d")
                            .to_string(),
                    );
                }
                let attachment = match spec.attach {
                    Attach::Nothing => None,
                    Attach::Estimate => {
                        let Some(estimate_id) = parse_id("estimateId") else {
                            return Ok(Err(Attempt::Failed {
                                permanent: true,
                                error: "the message names no estimate".into(),
                                recipient: Some(to),
                            }));
                        };
                        let revision = payload["revision"].as_i64();
                        let (name, bytes) =
                            estimate_pdf(tx, EstimateId::from_uuid(estimate_id), revision).await?;
                        Some((name, bytes))
                    }
                    Attach::Invoice => {
                        let Some(invoice_id) = parse_id("invoiceId") else {
                            return Ok(Err(Attempt::Failed {
                                permanent: true,
                                error: "the message names no invoice".into(),
                                recipient: Some(to),
                            }));
                        };
                        Some(invoice_pdf(tx, InvoiceId::from_uuid(invoice_id)).await?)
                    }
                };
                Ok(Ok(Outgoing {
                    id,
                    to,
                    to_name,
                    from_name: organization.name.as_str().to_owned(),
                    reply_to: profile
                        .contact_email
                        .as_ref()
                        .map(|e| e.as_str().to_owned()),
                    subject: fill(&template.subject, &values, false),
                    text: fill(&template.text, &values, false),
                    html: fill(&template.html, &values, true),
                    attachment,
                }))
            })
        })
        .await
    }

    /// Delivers one outbox message (the timer `outbox/<id>` is due); returns when to try again
    /// (`None`: the timer is done — delivered, dead, or waiting for a channel).
    pub(crate) async fn deliver_message(
        &self,
        organization_id: OrganizationId,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let caller = Caller::new(organization_id, None);
        // A relay without a channel does not claim messages (`Pass::filter`); called anyway, it
        // leaves the message for one that has.
        let Some(mailer) = self.relay.mailer.clone() else {
            return Ok(Some(now + Duration::minutes(5)));
        };
        let pending = self
            .read(&caller, move |tx| {
                Box::pin(async move {
                    let org = tx.org();
                    let Some(row) = tx
                        .fetch_optional(
                            "SELECT kind, payload, ordering_key, created_at, attempts, failing_since FROM outbox \
                             WHERE organization_id = $1 AND id = $2 AND status = 'pending'",
                            args![org, id],
                        )
                        .await?
                    else {
                        return Ok(None);
                    };
                    let message = Pending {
                        kind: row.get("kind")?,
                        payload: serde_json::from_str(&row.get::<String>("payload")?)?,
                        ordering_key: row.get("ordering_key")?,
                        created_at: row.get("created_at")?,
                        attempts: row.get("attempts")?,
                        failing_since: row.get("failing_since")?,
                    };
                    // An older message to the same recipient goes first.
                    let key = message
                        .ordering_key
                        .clone()
                        .unwrap_or_else(|| ordering_key(&message.kind, &message.payload));
                    let older = tx
                        .fetch_optional(
                            "SELECT id FROM outbox WHERE organization_id = $1 AND status = 'pending' \
                             AND COALESCE(ordering_key, 'organization') = $2 \
                             AND (created_at < $3 OR (created_at = $3 AND id < $4)) LIMIT 1",
                            args![org, key, message.created_at, id],
                        )
                        .await?;
                    Ok(Some((message, older.is_some())))
                })
            })
            .await?;
        let Some((message, behind)) = pending else {
            return Ok(None);
        };
        if behind {
            return Ok(Some(now + Duration::seconds(WAIT_BEHIND)));
        }
        let attempt = match self.compose(&caller, id, &message).await {
            Ok(Ok(outgoing)) => match mailer.send(&outgoing).await {
                Ok(()) => Attempt::Delivered {
                    recipient: outgoing.to,
                },
                Err(e) => Attempt::Failed {
                    permanent: e.permanent,
                    error: e.message,
                    recipient: Some(outgoing.to),
                },
            },
            Ok(Err(refused)) => refused,
            // The estimate or invoice is gone, or the store failed: try again later.
            Err(e) => Attempt::Failed {
                permanent: false,
                error: e.to_string(),
                recipient: None,
            },
        };
        self.record_attempt(&caller, id, &message, now, attempt)
            .await
    }

    /// Records an attempt and the message's new state; returns when to try again.
    async fn record_attempt(
        &self,
        caller: &Caller,
        id: Uuid,
        message: &Pending,
        now: DateTime<Utc>,
        attempt: Attempt,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let policy = self.relay.policy;
        let number = message.attempts + 1;
        let failing_since = message.failing_since.unwrap_or(now);
        let mut tx = self.store().tenant(caller.organization_id, true).await?;
        let org = tx.org();
        let (outcome, detail, next, recipient) = match attempt {
            Attempt::Delivered { recipient } => ("delivered", None, None, Some(recipient)),
            Attempt::Failed {
                permanent,
                error,
                recipient,
            } => {
                if permanent || now - failing_since >= policy.give_up_after {
                    ("dead", Some(error), None, recipient)
                } else {
                    let delay = policy.backoff(number as u32, jitter());
                    ("retry", Some(error), Some(now + delay), recipient)
                }
            }
        };
        tx.execute(
            "INSERT INTO delivery_attempts (organization_id, message_id, attempt, at, outcome, detail) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            args![org, id, number, now, outcome, detail.clone()],
        )
        .await?;
        let sql = match outcome {
            "delivered" => {
                "UPDATE outbox SET status = 'delivered', delivered_at = $1, attempts = $2, recipient = $3, \
                 last_error = $4, failing_since = NULL WHERE organization_id = $5 AND id = $6 AND status = 'pending'"
            }
            "dead" => {
                "UPDATE outbox SET status = 'dead', dead_at = $1, attempts = $2, recipient = COALESCE($3, recipient), \
                 last_error = $4, failing_since = NULL WHERE organization_id = $5 AND id = $6 AND status = 'pending'"
            }
            _ => {
                "UPDATE outbox SET failing_since = $1, attempts = $2, recipient = COALESCE($3, recipient), \
                 last_error = $4 WHERE organization_id = $5 AND id = $6 AND status = 'pending'"
            }
        };
        let at = if outcome == "retry" {
            failing_since
        } else {
            now
        };
        tx.execute(sql, args![at, number, recipient, detail, org, id])
            .await?;
        if outcome != "retry" {
            // The next message to the same recipient was waiting behind this one: it is due now.
            let key = message
                .ordering_key
                .clone()
                .unwrap_or_else(|| ordering_key(&message.kind, &message.payload));
            if let Some(row) = tx
                .fetch_optional(
                    "SELECT id FROM outbox WHERE organization_id = $1 AND status = 'pending' \
                     AND COALESCE(ordering_key, 'organization') = $2 ORDER BY created_at, id LIMIT 1",
                    args![org, key],
                )
                .await?
            {
                let next: Uuid = row.get("id")?;
                // Only a timer waiting its turn (due within `WAIT_BEHIND`), never one another
                // pass holds (its lease puts it minutes ahead): that pass sees the turn come.
                tx.execute(
                    "UPDATE timers SET due_at = $1 WHERE organization_id = $2 AND name = $3 \
                     AND due_at > $1 AND due_at <= $4",
                    args![
                        now,
                        org,
                        format!("{OUTBOX_TIMER_PREFIX}{next}"),
                        now + Duration::seconds(WAIT_BEHIND)
                    ],
                )
                .await?;
            }
        }
        tx.commit().await?;
        if outcome == "dead" {
            tracing::warn!(organization.id = %caller.organization_id, message.id = %id, kind = %message.kind, "a message was dead-lettered");
        }
        Ok(next)
    }
}

/// The PDF of an estimate (the revision a message names, or the current one) and its file name.
pub(crate) async fn estimate_pdf(
    tx: &mut TenantTx,
    id: EstimateId,
    revision: Option<i64>,
) -> Result<(String, Vec<u8>), StoreError> {
    let mut estimate = super::estimate::load(tx, id, false).await?;
    if let Some(revision) = revision
        && revision != i64::from(estimate.revision)
    {
        let org = tx.org();
        if let Some(row) = tx
            .fetch_optional(
                "SELECT body FROM estimate_revisions WHERE organization_id = $1 AND estimate_id = $2 AND revision = $3",
                args![org, id.as_uuid(), revision],
            )
            .await?
        {
            estimate = super::decode_body(&row)?;
        }
    }
    let organization = crate::directory::load_organization(tx, false).await?;
    let profile = super::contractor::load_profile(tx, false).await?;
    let customer = super::customer::load(tx, estimate.customer_id, false).await?;
    let property = property_of(tx, estimate.customer_id, Some(estimate.property_id)).await?;
    let document = crate::documents::estimate_document(
        &organization,
        &profile,
        &customer,
        property.as_ref(),
        &estimate,
    );
    Ok((
        format!("estimate-{}-r{}.pdf", estimate.id, estimate.revision),
        crate::documents::render_pdf(&document),
    ))
}

/// The PDF of an invoice and its file name.
pub(crate) async fn invoice_pdf(
    tx: &mut TenantTx,
    id: InvoiceId,
) -> Result<(String, Vec<u8>), StoreError> {
    let invoice = super::invoice::load(tx, id, false).await?;
    let organization = crate::directory::load_organization(tx, false).await?;
    let profile = super::contractor::load_profile(tx, false).await?;
    let customer = super::customer::load(tx, invoice.customer_id, false).await?;
    let property_id = match invoice.job_id {
        Some(job_id) => Some(super::job::load(tx, job_id, false).await?.property_id),
        None => None,
    };
    let property = property_of(tx, invoice.customer_id, property_id).await?;
    let mut document = crate::documents::invoice_document(
        &organization,
        &profile,
        &customer,
        property.as_ref(),
        &invoice,
    );
    // The customer's signature, when one was captured (on the invoice, or on its job's visit):
    // who signed and when, and the image's digest, which names its blob.
    if let Some(signature) = super::attachments::invoice_signature(tx, id).await? {
        let tz = organization.time_zone.tz();
        document.footer.push(format!(
            "Signed by {} on {} (signature image sha256 {})",
            signature
                .signed_by
                .as_ref()
                .map_or("the customer", |n| n.as_str()),
            signature
                .created_at
                .with_timezone(&tz)
                .format("%Y-%m-%d %H:%M %Z"),
            &signature.sha256.as_str()[..16]
        ));
    }
    let name = match &invoice.number {
        Some(number) => format!("invoice-{number}.pdf"),
        None => format!("invoice-draft-{}.pdf", invoice.id),
    };
    Ok((name, crate::documents::render_pdf(&document)))
}

async fn property_of(
    tx: &mut TenantTx,
    customer: CustomerId,
    property: Option<PropertyId>,
) -> Result<Option<hestami_core::customer::Property>, StoreError> {
    match property {
        None => Ok(None),
        Some(id) => match super::customer::load_property(tx, customer, id).await {
            Ok(p) => Ok(Some(p)),
            Err(StoreError::Failure(_)) => Ok(None),
            Err(e) => Err(e),
        },
    }
}

/// A rendered document: `estimate/v1/pdf`, `invoice/v1/pdf`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderedDocument {
    /// The file name.
    pub file_name: String,
    /// The PDF.
    pub bytes: Vec<u8>,
}

impl Services {
    /// `estimate/v1/pdf`: the estimate's current revision as the customer receives it.
    pub async fn estimate_pdf(
        &self,
        caller: &Caller,
        id: EstimateId,
    ) -> Result<RenderedDocument, StoreError> {
        let (file_name, bytes) = self
            .read(caller, move |tx| Box::pin(estimate_pdf(tx, id, None)))
            .await?;
        Ok(RenderedDocument { file_name, bytes })
    }

    /// `invoice/v1/pdf`: the invoice as the customer receives it.
    pub async fn invoice_pdf(
        &self,
        caller: &Caller,
        id: InvoiceId,
    ) -> Result<RenderedDocument, StoreError> {
        let (file_name, bytes) = self
            .read(caller, move |tx| Box::pin(invoice_pdf(tx, id)))
            .await?;
        Ok(RenderedDocument { file_name, bytes })
    }

    /// The relay's settings.
    pub fn relay(&self) -> &Arc<RelaySettings> {
        &self.relay
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn every_default_template_uses_only_its_variables() {
        for kind in MESSAGE_KINDS {
            check_template(kind.kind, &kind.default_template())
                .unwrap_or_else(|e| panic!("{}: {e:?}", kind.kind));
        }
    }

    #[test]
    fn unknown_variables_and_broken_placeholders_are_refused_by_field() {
        let template = Template {
            subject: "Hi {{customerName}}".into(),
            text: "{{secret}}".into(),
            html: "{{customerName".into(),
        };
        let Err(failure) = check_template("estimate_sent", &template) else {
            panic!("accepted");
        };
        let fields: Vec<_> = failure
            .field_errors
            .iter()
            .map(|e| (e.field.as_str(), e.code.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                ("template.text", "unknown_variable"),
                ("template.html", "invalid_placeholder")
            ]
        );
    }

    #[test]
    fn values_are_escaped_in_html_only() {
        let values = BTreeMap::from([("customerName".to_owned(), "<b>Tom & Jerry</b>".to_owned())]);
        assert_eq!(
            fill("Hi {{customerName}}!", &values, false),
            "Hi <b>Tom & Jerry</b>!"
        );
        assert_eq!(
            fill("Hi {{ customerName }}!", &values, true),
            "Hi &lt;b&gt;Tom &amp; Jerry&lt;/b&gt;!"
        );
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(1, 1.0), Duration::seconds(30));
        assert_eq!(policy.backoff(1, 0.0), Duration::seconds(15));
        assert_eq!(policy.backoff(3, 1.0), Duration::seconds(120));
        assert_eq!(policy.backoff(30, 1.0), Duration::hours(1));
        let j = jitter();
        assert!((0.0..1.0).contains(&j));
    }
}
