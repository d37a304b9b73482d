//! The daily compliance expiry scan (`compliance_expiry_scan_v1`), started by a durable timer.
//!
//! Each organization has a row in the `timers` table saying when its next scan is due (06:00 in
//! its own time zone). A pass of [`Services::fire_due_timers`] claims due rows with a short
//! lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL, so several processes share the work), starts
//! the scan with an idempotency key derived from the organization's local date, and only then
//! moves the row to the next day. A crash anywhere in between is repaired by the next pass:
//! the lease expires, the same key finds the same workflow, and the day is scanned exactly once.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use hestami_core::compliance::{lapsed, reminders_due};
use hestami_core::schedule::local_to_utc;

use super::contractor::{load_all_certifications, load_licenses, load_policies};
use super::{Caller, Command, Services};
use crate::db::args;
use crate::engine::WorkflowCtx;
use crate::error::StoreError;
use crate::store::{Operation, TenantTx};

/// The workflow.
pub const WORKFLOW: &str = "compliance_expiry_scan_v1";
/// The timer that starts it.
pub const TIMER: &str = "compliance_expiry_scan";
const PROCEDURE: &str = "timer/compliance_expiry_scan";

/// Scan the organization's licences, policies and certifications as of `date`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanCommand {
    /// The organization's local date the scan is for.
    pub date: NaiveDate,
}

impl Command for ScanCommand {
    const WORKFLOW: &'static str = WORKFLOW;
    fn procedure(&self) -> &'static str {
        PROCEDURE
    }
}

/// What one scan did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScanReport {
    /// The date scanned.
    pub date: NaiveDate,
    /// Reminders written to the outbox (30, 7 and 1 days before an expiry).
    pub reminders: u32,
    /// Items newly marked lapsed.
    pub lapsed: u32,
}

/// The idempotency key of the scan of `date`: the same date always gives the same workflow.
pub fn scan_key(date: NaiveDate) -> Uuid {
    let digest = Sha256::digest(format!("{TIMER}/{date}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

pub(crate) async fn run(
    mut ctx: WorkflowCtx,
    command: ScanCommand,
) -> Result<ScanReport, StoreError> {
    ctx.step("scan_expiries", move |tx| Box::pin(scan(tx, command.date)))
        .await
}

async fn scan(tx: &mut TenantTx, date: NaiveDate) -> Result<ScanReport, StoreError> {
    let org = tx.org();
    let now = tx.now();
    let mut report = ScanReport {
        date,
        reminders: 0,
        lapsed: 0,
    };
    let licenses = load_licenses(tx).await?;
    let policies = load_policies(tx).await?;
    let certifications = load_all_certifications(tx).await?;
    let mut items: Vec<(&str, &str, Uuid, String, NaiveDate)> = Vec::new();
    for l in &licenses {
        items.push((
            "license",
            "licenses",
            l.id.as_uuid(),
            format!("{} licence {}", l.trade, l.number),
            l.expires_on,
        ));
    }
    for p in &policies {
        items.push((
            "insurance",
            "insurance_policies",
            p.id.as_uuid(),
            format!("{} policy {}", p.kind.as_str(), p.policy_number),
            p.expires_on,
        ));
    }
    for (tech, c) in &certifications {
        if let Some(expires_on) = c.expires_on {
            items.push((
                "certification",
                "technician_certifications",
                c.id.as_uuid(),
                format!("certification {} of technician {tech}", c.name),
                expires_on,
            ));
        }
    }
    for (kind, table, id, label, expires_on) in items {
        if let Some(days) = reminders_due(date, expires_on) {
            let payload = serde_json::json!({
                "itemKind": kind, "itemId": id, "label": label, "expiresOn": expires_on, "daysLeft": days,
            });
            tx.enqueue("expiry_reminder", &payload).await?;
            report.reminders += 1;
        }
        if lapsed(date, expires_on) {
            let row = tx
                .fetch_optional(
                    &format!(
                        "UPDATE {table} SET lapsed_at = $1, version = version + 1, updated_at = $1 \
                         WHERE organization_id = $2 AND id = $3 AND lapsed_at IS NULL RETURNING version"
                    ),
                    args![now, org, id],
                )
                .await?;
            if let Some(row) = row {
                tx.record_change(kind, id, row.get("version")?, Operation::Updated)
                    .await?;
                report.lapsed += 1;
            }
        }
    }
    Ok(report)
}

/// When the scan after `now` is due: 06:00 local on the next day.
pub(crate) fn next_due(tz: chrono_tz::Tz, now: DateTime<Utc>) -> DateTime<Utc> {
    let tomorrow = now.with_timezone(&tz).date_naive() + Duration::days(1);
    local_to_utc(tz, tomorrow.and_hms_opt(6, 0, 0).unwrap_or_default())
}

impl Services {
    /// The outbox rows of the caller's organization, oldest first (reminders waiting to go out).
    pub async fn outbox(
        &self,
        caller: &Caller,
    ) -> Result<Vec<(String, serde_json::Value)>, StoreError> {
        self.read(caller, |tx| {
            Box::pin(async move {
                let org = tx.org();
                let rows = tx
                    .fetch_all(
                        "SELECT kind, payload FROM outbox WHERE organization_id = $1 ORDER BY created_at, id",
                        args![org],
                    )
                    .await?;
                rows.iter()
                    .map(|r| Ok((r.get::<String>("kind")?, serde_json::from_str(&r.get::<String>("payload")?)?)))
                    .collect()
            })
        })
        .await
    }
}
