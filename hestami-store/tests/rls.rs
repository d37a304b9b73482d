//! Row-level security on PostgreSQL, checked with plain SQL as the `hestami_app` role the server
//! runs as: with no organization set nothing is read and nothing is written; with one set, only
//! its rows are read and only its rows are written. Every table in `TENANT_TABLES` is checked.
#![allow(clippy::unwrap_used)]

mod common;

use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, Row as _, Transaction};
use uuid::Uuid;

use hestami_core::compliance::Requirements;
use hestami_core::job::Job;
use hestami_store::app::appointment::{AddAppointment, JobSchedule, JobV2Command};
use hestami_store::app::attachments::{AttachmentCommand, NewAttachment};
use hestami_store::app::contractor::{ContractorCommand, ProfileUpdate};
use hestami_store::app::dispatch_plan::{Optimize, PlanCommand};
use hestami_store::app::field::FieldCommand;
use hestami_store::app::forms::{FormAnswers, FormCommand, TemplateDefinition};
use hestami_store::app::job::{
    DispatchCommand, JobLifecycleCommand, RaiseCallback, UpdateSchedulingSettings,
};
use hestami_store::app::notes::NewNote;
use hestami_store::app::sync::PullRequest;
use hestami_store::app::time::TimeCommand;
use hestami_store::app::workforce::{NewCertification, WorkforceCommand};
use hestami_store::app::{PageRequest, Patch, Services};
use hestami_store::{APP_ROLE, LINK_TABLES, SHARED_TABLES, TENANT_TABLES};
use sha2::Digest as _;

use common::*;

/// The column that says which organization a row belongs to.
fn org_column(table: &str) -> &'static str {
    if table == "organizations" {
        "id"
    } else {
        "organization_id"
    }
}

/// Ids of rows of one organization that a valid row of another table can point at.
#[derive(Clone, Copy, Debug)]
struct Tenant {
    org: Uuid,
    customer: Uuid,
    property: Uuid,
    job: Uuid,
    workflow: Uuid,
    technician: Uuid,
    item: Uuid,
    estimate: Uuid,
    invoice: Uuid,
    appointment: Uuid,
    form_template: Uuid,
}

/// An organization with a row in every tenant table, made through the services.
async fn populated(fx: &Fixture, name: &str) -> (Org, Tenant) {
    let s = &fx.services;
    let org = fx.org(name).await;
    let job = completed_job(s, &org.caller).await;
    let _: Job = ok(
        s,
        &org.caller,
        JobLifecycleCommand::Callback(RaiseCallback {
            job_id: job.id,
            summary: None,
            description: None,
            priority: None,
            reason: None,
        }),
    )
    .await;
    // The onboarding and workforce tables: a profile, requirements, a certification that lapses
    // in a week, time off, and the day's expiry scan (which writes its reminder to the outbox).
    let c = &org.caller;
    let technician = job
        .technician_id
        .expect("the completed job has a technician");
    let _: serde_json::Value = ok(
        s,
        c,
        ContractorCommand::UpdateProfile(ProfileUpdate {
            expected_version: None,
            legal_name: Patch::Set(common::name("Legal Name LLC")),
            trade_names: None,
            tax_id: Patch::Keep,
            contact_email: Patch::Keep,
            contact_phone: Patch::Keep,
            time_zone: None,
            w9_received_on: Patch::Keep,
        }),
    )
    .await;
    let _: serde_json::Value = ok(
        s,
        c,
        ContractorCommand::SetRequirements {
            requirements: Requirements::default_table(),
            expected_version: None,
        },
    )
    .await;
    let _: serde_json::Value = ok(
        s,
        c,
        ContractorCommand::SetTrades {
            trades: hestami_core::trade::TradeCatalogue::default_catalogue(),
            expected_version: None,
        },
    )
    .await;
    // The scan works in the organization's local date (the fixture organization is in Chicago).
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::America::Chicago)
        .date_naive();
    let _: serde_json::Value = ok(
        s,
        c,
        WorkforceCommand::AddCertification {
            technician_id: technician,
            certification: NewCertification {
                name: common::name("Backflow Tester"),
                issuer: common::name("State Board"),
                number: None,
                expires_on: Some(today + chrono::Duration::days(7)),
                trades: vec![],
            },
        },
    )
    .await;
    let _: serde_json::Value = ok(
        s,
        c,
        WorkforceCommand::AddTimeOff {
            technician_id: technician,
            start: chrono::Utc::now() + chrono::Duration::days(40),
            end: chrono::Utc::now() + chrono::Duration::days(41),
            reason: None,
        },
    )
    .await;
    // The money tables: an item and its revision, the pricing settings, an estimate revised,
    // approved and handed to the job, actuals, an invoice issued and paid.
    let money = money_path(s, c, &job).await;
    // The credit note tables: goodwill refunded on the paid invoice.
    let _: serde_json::Value = ok(
        s,
        c,
        from_json::<hestami_store::app::invoice::InvoiceCommandInput>(serde_json::json!({
            "procedure": "invoice/v1/creditNote",
            "input": { "invoiceId": money.invoice.id, "expectedVersion": null,
                       "refundPaymentId": money.invoice.payments[0].id,
                       "request": { "lines": [], "reason": "Goodwill",
                                    "adjustments": [{ "description": "Goodwill", "amount": usd("1.00") }] } }
        })),
    )
    .await;
    // The stock tables: a material received into a warehouse.
    let material: hestami_core::pricebook::PricebookItem = ok(
        s,
        c,
        hestami_store::app::pricebook::PricebookCommand::CreateItem(from_json(serde_json::json!({
            "name": "Copper fitting",
            "details": { "kind": "material", "sku": "CU-12", "unit": "each", "cost": usd("3.00"),
                         "pricing": { "rule": "explicit", "price": usd("9.50") } }
        }))),
    )
    .await;
    let warehouse: serde_json::Value = ok(
        s,
        c,
        from_json::<hestami_store::app::inventory::InventoryCommand>(serde_json::json!({
            "procedure": "inventory/v1/createLocation",
            "input": { "kind": "warehouse", "name": "Main", "technicianId": null, "allowNegative": false }
        })),
    )
    .await;
    let _: serde_json::Value = ok(
        s,
        c,
        from_json::<hestami_store::app::inventory::InventoryCommand>(serde_json::json!({
            "procedure": "inventory/v1/receive",
            "input": { "itemId": material.id, "locationId": warehouse["id"], "quantity": "5",
                       "unitCost": null }
        })),
    )
    .await;
    // The procurement tables: a hold for the job, a transfer in transit, a supplier of the
    // material with a reorder point, and an order received and billed.
    let inventory = |procedure: &str, input: serde_json::Value| {
        from_json::<hestami_store::app::inventory::InventoryCommand>(
            serde_json::json!({ "procedure": procedure, "input": input }),
        )
    };
    let procurement = |procedure: &str, input: serde_json::Value| {
        from_json::<hestami_store::app::procurement::ProcurementCommand>(
            serde_json::json!({ "procedure": procedure, "input": input }),
        )
    };
    let heater: hestami_core::pricebook::PricebookItem = ok(
        s,
        c,
        hestami_store::app::pricebook::PricebookCommand::CreateItem(from_json(serde_json::json!({
            "name": "Water heater",
            "details": { "kind": "material", "sku": "WH-50", "unit": "each", "cost": usd("600.00"),
                         "pricing": { "rule": "explicit", "price": usd("1100.00") } }
        }))),
    )
    .await;
    for (procedure, input) in [
        (
            "inventory/v1/setTracking",
            serde_json::json!({ "itemId": heater.id, "tracking": "serial" }),
        ),
        (
            "inventory/v1/receive",
            serde_json::json!({ "itemId": heater.id, "locationId": warehouse["id"], "quantity": "1",
                                "unitCost": null, "units": { "serials": ["WH-0001"] } }),
        ),
    ] {
        let _: serde_json::Value = ok(s, c, inventory(procedure, input)).await;
    }
    let _: serde_json::Value = ok(
        s,
        c,
        inventory(
            "inventory/v1/reserve",
            serde_json::json!({ "jobId": job.id, "itemId": material.id, "locationId": warehouse["id"],
                                "quantity": "1" }),
        ),
    )
    .await;
    let shelf: serde_json::Value = ok(
        s,
        c,
        inventory(
            "inventory/v1/createLocation",
            serde_json::json!({ "kind": "warehouse", "name": "Annex", "technicianId": null,
                                "allowNegative": false }),
        ),
    )
    .await;
    let _: serde_json::Value = ok(
        s,
        c,
        inventory(
            "inventory/v1/transfer",
            serde_json::json!({ "itemId": material.id, "fromLocationId": warehouse["id"],
                                "toLocationId": shelf["id"], "quantity": "1", "inTransit": true }),
        ),
    )
    .await;
    let supplier: serde_json::Value = ok(
        s,
        c,
        procurement(
            "inventory/v1/createSupplier",
            serde_json::json!({ "name": "Ferguson", "contactName": null, "email": null, "phone": null,
                                "paymentTermsDays": 30 }),
        ),
    )
    .await;
    let _: serde_json::Value = ok(
        s,
        c,
        procurement(
            "inventory/v1/setSupplierItem",
            serde_json::json!({ "supplierId": supplier["id"], "itemId": material.id, "partNumber": null,
                                "packSize": null, "lastPrice": null, "leadTimeDays": 2, "preferred": true }),
        ),
    )
    .await;
    let _: serde_json::Value = ok(
        s,
        c,
        procurement(
            "inventory/v1/setReorderPoint",
            serde_json::json!({ "itemId": material.id, "locationId": warehouse["id"],
                                "level": { "min": "2", "max": "10" }, "sourceLocationId": null }),
        ),
    )
    .await;
    let order: serde_json::Value = ok(
        s,
        c,
        procurement(
            "inventory/v1/createPurchaseOrder",
            serde_json::json!({ "supplierId": supplier["id"], "locationId": warehouse["id"], "jobId": null,
                                "lines": [{ "itemId": material.id, "quantity": "4", "unitCost": null }] }),
        ),
    )
    .await;
    for (procedure, input) in [
        (
            "inventory/v1/submitPurchaseOrder",
            serde_json::json!({ "purchaseOrderId": order["id"] }),
        ),
        (
            "inventory/v1/receivePurchaseOrder",
            serde_json::json!({ "purchaseOrderId": order["id"], "locationId": null,
                                "lines": [{ "line": 1, "quantity": "4" }], "allowOverReceipt": false }),
        ),
        (
            "inventory/v1/recordSupplierBill",
            serde_json::json!({ "purchaseOrderId": order["id"], "number": "B-1",
                                "lines": [{ "line": 1, "quantity": "4", "unitCost": usd("3.00") }] }),
        ),
    ] {
        let _: serde_json::Value = ok(s, c, procurement(procedure, input)).await;
    }
    // The maintenance tables: a plan, an agreement on it from today, active; the timer pass
    // below generates its first visits and bills its first period.
    let maintenance = |procedure: &str, input: serde_json::Value| {
        from_json::<hestami_store::app::maintenance::MaintenanceCommand>(
            serde_json::json!({ "procedure": procedure, "input": input }),
        )
    };
    let plan: serde_json::Value = ok(
        s,
        c,
        maintenance(
            "maintenance/v1/createPlan",
            serde_json::json!({ "name": "Weekly pool care", "description": null,
                "visits": [{ "name": "Pool service", "trade": "plumbing", "startMonth": null,
                             "rule": { "kind": "weekly", "every": 1, "weekday": "Mon" },
                             "window": { "start": "09:00:00", "end": "10:00:00" },
                             "durationMinutes": 45, "services": [] }],
                "benefits": { "discount": null, "priority": null, "waiveTripFee": false },
                "prices": [{ "frequency": "monthly", "amount": usd("120.00") }] }),
        ),
    )
    .await;
    let agreement: serde_json::Value = ok(
        s,
        c,
        maintenance(
            "maintenance/v1/createContract",
            serde_json::json!({ "customerId": job.customer_id, "propertyIds": [job.property_id],
                                "planId": plan["id"], "startDate": today, "termMonths": 12,
                                "billing": "monthly", "autoRenew": true, "leadDays": 14 }),
        ),
    )
    .await;
    let _: serde_json::Value = ok(
        s,
        c,
        maintenance(
            "maintenance/v1/activate",
            serde_json::json!({ "agreementId": agreement["id"], "signedBy": "Ada",
                                "signature": null, "expectedVersion": null }),
        ),
    )
    .await;
    s.fire_due_timers().await.expect("the expiry scan");
    assert!(
        !s.outbox(c).await.expect("outbox").is_empty(),
        "the scan wrote a reminder"
    );
    // The scheduling tables: a visit with its lead (and its events), and the settings.
    let visit_job = requested_job(s, c).await;
    let start = chrono::Utc::now() + chrono::Duration::hours(2);
    let booked: JobSchedule = ok(
        s,
        c,
        JobV2Command::AddAppointment(AddAppointment {
            job_id: visit_job.id,
            window: hestami_core::job::TimeWindow::parse(start, start + chrono::Duration::hours(1))
                .expect("window"),
            estimated_minutes: None,
            lead: Some(technician),
            helpers: vec![],
            sla_override: None,
            planned_start: None,
            expected_version: None,
        }),
    )
    .await;
    let _: serde_json::Value = ok(
        s,
        c,
        DispatchCommand::UpdateSettings(UpdateSchedulingSettings {
            settings: hestami_core::dispatch::board::SchedulingSettings::default(),
            expected_version: None,
        }),
    )
    .await;
    // A plan of the visit's day.
    let _: serde_json::Value = ok(
        s,
        c,
        PlanCommand::Optimize(Optimize {
            date: start
                .with_timezone(&chrono_tz::America::Chicago)
                .date_naive(),
            technician_ids: vec![],
            appointment_ids: vec![],
            pins: vec![],
            weights: Default::default(),
            time_budget_ms: Some(100),
            seed: None,
        }),
    )
    .await;
    // The field tables: a position report and a note.
    let _: serde_json::Value = ok(
        s,
        c,
        FieldCommand::ReportLocation {
            technician_id: technician,
            device_time: chrono::Utc::now(),
            location: hestami_core::field::Fix::parse(41.9, -87.6, Some(5.0)).expect("fix"),
        },
    )
    .await;
    let _: serde_json::Value = ok(
        s,
        c,
        JobV2Command::AddNote(NewNote {
            job_id: visit_job.id,
            appointment_id: Some(booked.appointments[0].id),
            body: hestami_core::text::Description::parse("Gate code 4412").expect("body"),
            device: None,
        }),
    )
    .await;
    // A photo: the blob uploaded, then attached to the visit.
    let photo = b"\x89PNG\r\n\x1a\n rls fixture".to_vec();
    let name = hestami_core::blob::Sha256Hex::from_digest(&sha2::Sha256::digest(&photo).into());
    let blobs = hestami_store::blobs::BlobStore::local(std::env::temp_dir().join("hestami-blobs"))
        .expect("a blob directory");
    s.blob_put(c, &blobs, name.clone(), photo.into(), 1 << 20)
        .await
        .expect("an upload");
    let _: serde_json::Value = ok(
        s,
        c,
        AttachmentCommand::Attach(NewAttachment {
            sha256: name,
            attached_to: hestami_core::blob::AttachedTo::Appointment,
            subject_id: booked.appointments[0].id.as_uuid(),
            kind: hestami_core::blob::AttachmentKind::Photo,
            caption: None,
            signed_by: None,
            device: None,
        }),
    )
    .await;
    // A checklist and an answer on the visit.
    let question = |key: &str| hestami_core::form::Question {
        key: hestami_core::form::QuestionKey::parse(key).expect("key"),
        label: hestami_core::text::Summary::parse("Checked").expect("label"),
        kind: hestami_core::form::QuestionKind::YesNo,
        required: true,
    };
    let template: hestami_core::form::FormTemplate = ok(
        s,
        c,
        FormCommand::DefineTemplate(TemplateDefinition {
            template_id: None,
            expected_version: None,
            name: common::name("Safety checklist"),
            trade: None,
            required_before_completion: false,
            questions: vec![question("checked")],
        }),
    )
    .await;
    let _: serde_json::Value = ok(
        s,
        c,
        FormCommand::Answer(FormAnswers {
            job_id: visit_job.id,
            appointment_id: Some(booked.appointments[0].id),
            template_id: template.id,
            template_version: 1,
            answers: vec![(
                hestami_core::form::QuestionKey::parse("checked").expect("key"),
                hestami_core::form::AnswerValue::YesNo(true),
            )],
            device: None,
        }),
    )
    .await;
    // Time: a punch, the week submitted, the overtime rule set.
    let _: serde_json::Value = ok(
        s,
        c,
        TimeCommand::Punch {
            technician_id: technician,
            kind: hestami_core::timesheet::PunchKind::ClockIn,
            device: None,
            reason: None,
        },
    )
    .await;
    let _: serde_json::Value = ok(
        s,
        c,
        TimeCommand::Submit {
            technician_id: technician,
            week: chrono::Utc::now().date_naive(),
            expected_version: None,
        },
    )
    .await;
    let _: serde_json::Value = ok(
        s,
        c,
        TimeCommand::SetOvertimeRule {
            rule: hestami_core::timesheet::OvertimeRule::default(),
        },
    )
    .await;
    // A device's first sync records what it was sent.
    let pulled = s
        .sync_pull(
            c,
            PullRequest {
                device_id: Uuid::new_v4(),
                cursor: None,
                limit: 200,
            },
        )
        .await
        .expect("a first sync");
    assert!(!pulled.changes.is_empty());
    let page = PageRequest::parse(Some(1), None).expect("page");
    let workflow = s
        .workflow_list(&org.caller, None, None, page)
        .await
        .expect("workflows")
        .items[0]
        .id;
    let tenant = Tenant {
        org: org.id().as_uuid(),
        customer: job.customer_id.as_uuid(),
        property: job.property_id.as_uuid(),
        job: job.id.as_uuid(),
        workflow: workflow.as_uuid(),
        technician: technician.as_uuid(),
        item: money.labor_item.id.as_uuid(),
        estimate: money.estimate.id.as_uuid(),
        invoice: money.invoice.id.as_uuid(),
        appointment: booked.appointments[0].id.as_uuid(),
        form_template: template.id.as_uuid(),
    };
    (org, tenant)
}

/// A row for `table` that is valid for `target` (every reference points at one of its rows,
/// every key is fresh), as SQL and its bound ids. `None` when the table is not known here, which
/// fails the test: a new tenant table needs a row of its own below.
fn valid_insert(table: &str, t: &Tenant) -> Option<(&'static str, Vec<Uuid>)> {
    let fresh = Uuid::now_v7();
    Some(match table {
        "organizations" => (
            "INSERT INTO organizations (id, version, kind, name, time_zone, currency, sla_emergency_minutes, \
             sla_urgent_minutes, sla_routine_minutes, created_at, updated_at) \
             VALUES ($1, 1, 'contractor', 'Intruder', 'UTC', 'USD', 120, 1440, 4320, now(), now())",
            vec![t.org],
        ),
        "feed_counters" => (
            "INSERT INTO feed_counters (organization_id, last_seq) VALUES ($1, 0)",
            vec![t.org],
        ),
        "change_feed" => (
            "INSERT INTO change_feed (organization_id, seq, entity_kind, entity_id, version, operation, \
             actor_user_id, workflow_id, at) VALUES ($1, 1000000, 'customer', $2, 1, 'created', NULL, NULL, now())",
            vec![t.org, fresh],
        ),
        "customers" => (
            "INSERT INTO customers (organization_id, id, version, name, email, phone, created_at, updated_at) \
             VALUES ($1, $2, 1, 'Intruder', NULL, NULL, now(), now())",
            vec![t.org, fresh],
        ),
        "properties" => (
            "INSERT INTO properties (organization_id, id, customer_id, version, line1, line2, city, region, \
             postal_code, country, lat, lon, created_at, updated_at) \
             VALUES ($1, $2, $3, 1, '1 Main St', NULL, 'Springfield', 'IL', '62701', 'US', NULL, NULL, now(), now())",
            vec![t.org, fresh, t.customer],
        ),
        "technicians" => (
            "INSERT INTO technicians (organization_id, id, version, name, email, phone, trades, active, \
             created_at, updated_at) VALUES ($1, $2, 1, 'Intruder', NULL, NULL, '[]', true, now(), now())",
            vec![t.org, fresh],
        ),
        "jobs" => (
            "INSERT INTO jobs (organization_id, id, version, status, held_from, customer_id, property_id, trade, \
             priority, summary, description, window_start, window_end, technician_id, sla_deadline, \
             visit_started_at, completed_at, callback_of, created_at, updated_at) \
             VALUES ($1, $2, 1, 'requested', NULL, $3, $4, 'plumbing', 'routine', 'Intruder', NULL, NULL, NULL, \
             NULL, now(), NULL, NULL, NULL, now(), now())",
            vec![t.org, fresh, t.customer, t.property],
        ),
        "job_events" => (
            "INSERT INTO job_events (organization_id, job_id, version, change, from_status, to_status, \
             actor_user_id, reason, at) VALUES ($1, $2, 1000000, '{}', NULL, 'requested', NULL, NULL, now())",
            vec![t.org, t.job],
        ),
        "workflows" => (
            "INSERT INTO workflows (organization_id, id, name, procedure, idempotency_key, fingerprint, input, \
             status, output, error, trace_id, actor_user_id, executor_id, attempts, created_at, updated_at, \
             completed_at) VALUES ($1, $2, 'intruder_v1', 'intruder/v1/x', $2, 'fp', '{}', 'pending', NULL, NULL, \
             NULL, NULL, NULL, 1, now(), now(), NULL)",
            vec![t.org, fresh],
        ),
        "workflow_steps" => (
            "INSERT INTO workflow_steps (organization_id, workflow_id, step_index, name, output, created_at) \
             VALUES ($1, $2, 1000000, 'intruder', 'null', now())",
            vec![t.org, t.workflow],
        ),
        "contractor_profiles" => (
            "INSERT INTO contractor_profiles (organization_id, version, legal_name, trade_names, tax_id, \
             contact_email, contact_phone, created_at, updated_at) VALUES ($1, 1, 'x', '[]', NULL, NULL, NULL, now(), now()) \
             ON CONFLICT (organization_id) DO UPDATE SET legal_name = 'Intruder'",
            vec![t.org],
        ),
        "licenses" => (
            "INSERT INTO licenses (organization_id, id, version, trade, country, region, locality, number, issued_on, \
             expires_on, document_ref, status, created_at, updated_at) VALUES ($1, $2, 1, 'plumbing', 'US', 'IL', NULL, \
             'X-1', NULL, '2040-01-01', NULL, 'verified', now(), now())",
            vec![t.org, fresh],
        ),
        "insurance_policies" => (
            "INSERT INTO insurance_policies (organization_id, id, version, kind, carrier, policy_number, \
             per_occurrence_limit, aggregate_limit, effective_on, expires_on, created_at, updated_at) VALUES ($1, $2, 1, \
             'general_liability', 'X', 'X', '9000000', '9000000', '2020-01-01', '2040-01-01', now(), now())",
            vec![t.org, fresh],
        ),
        "compliance_requirements" => (
            "INSERT INTO compliance_requirements (organization_id, version, rules, updated_at) VALUES ($1, 1, '{}', now()) \
             ON CONFLICT (organization_id) DO UPDATE SET rules = '{\"rules\": []}'",
            vec![t.org],
        ),
        "service_area_sets" => (
            "INSERT INTO service_area_sets (organization_id, id, technician_id, version, areas, created_at) \
             VALUES ($1, $2, NULL, 1000000, '[]', now())",
            vec![t.org, fresh],
        ),
        "technician_certifications" => (
            "INSERT INTO technician_certifications (organization_id, id, technician_id, version, name, issuer, number, \
             expires_on, trades, created_at, updated_at) VALUES ($1, $2, $3, 1, 'X', 'X', NULL, NULL, '[]', now(), now())",
            vec![t.org, fresh, t.technician],
        ),
        "technician_shifts" => (
            "INSERT INTO technician_shifts (organization_id, technician_id, effective_from, spans, created_at) \
             VALUES ($1, $2, '1999-01-01', '[]', now())",
            vec![t.org, t.technician],
        ),
        "technician_time_off" => (
            "INSERT INTO technician_time_off (organization_id, id, technician_id, starts_at, ends_at, reason, created_at) \
             VALUES ($1, $2, $3, now(), now() + interval '1 hour', NULL, now())",
            vec![t.org, fresh, t.technician],
        ),
        "outbox" => (
            "INSERT INTO outbox (organization_id, id, kind, payload, workflow_id, created_at) \
             VALUES ($1, $2, 'intruder', '{}', NULL, now())",
            vec![t.org, fresh],
        ),
        "pricebook_items" => (
            "INSERT INTO pricebook_items (organization_id, id, revision, kind, name, category, sku, lookup_key, \
             search_text, archived, body, created_at, updated_at) VALUES ($1, $2, 1, 'service', 'Intruder', NULL, \
             NULL, $2::text, 'intruder', false, '{}', now(), now())",
            vec![t.org, fresh],
        ),
        "pricebook_item_revisions" => (
            "INSERT INTO pricebook_item_revisions (organization_id, item_id, revision, body, created_at) \
             VALUES ($1, $2, 1000000, '{}', now())",
            vec![t.org, t.item],
        ),
        "pricing_settings" => (
            "INSERT INTO pricing_settings (organization_id, version, markup_tiers, tax_rates, updated_at) \
             VALUES ($1, 1, '[]', '[]', now()) ON CONFLICT (organization_id) DO UPDATE SET tax_rates = '[]'",
            vec![t.org],
        ),
        "estimates" => (
            "INSERT INTO estimates (organization_id, id, version, revision, status, job_id, customer_id, \
             property_id, valid_until, body, created_at, updated_at) VALUES ($1, $2, 1, 1, 'draft', $3, $4, $5, \
             now(), '{}', now(), now())",
            vec![t.org, fresh, t.job, t.customer, t.property],
        ),
        "estimate_revisions" => (
            "INSERT INTO estimate_revisions (organization_id, estimate_id, revision, body) \
             VALUES ($1, $2, 1000000, '{}')",
            vec![t.org, t.estimate],
        ),
        "estimate_events" => (
            "INSERT INTO estimate_events (organization_id, estimate_id, version, body, at) \
             VALUES ($1, $2, 1000000, '{}', now())",
            vec![t.org, t.estimate],
        ),
        "invoice_sequences" => (
            "INSERT INTO invoice_sequences (organization_id, last_value) VALUES ($1, 0) \
             ON CONFLICT (organization_id) DO UPDATE SET last_value = invoice_sequences.last_value",
            vec![t.org],
        ),
        "credit_note_sequences" => (
            "INSERT INTO credit_note_sequences (organization_id, last_value) VALUES ($1, 0) \
             ON CONFLICT (organization_id) DO UPDATE SET last_value = credit_note_sequences.last_value",
            vec![t.org],
        ),
        "credit_notes" => (
            "INSERT INTO credit_notes (organization_id, id, invoice_id, number, total, issue_date, refund_id, at) \
             VALUES ($1, $2, $3, (random() * 1e15)::bigint, '1.00', current_date, NULL, now())",
            vec![t.org, fresh, t.invoice],
        ),
        "stock_locations" => (
            "INSERT INTO stock_locations (organization_id, id, version, kind, name, technician_id, allow_negative, \
             created_at, updated_at) VALUES ($1, $2, 1, 'warehouse', 'Intruder', NULL, false, now(), now())",
            vec![t.org, fresh],
        ),
        "stock_balances" => (
            "WITH l AS (INSERT INTO stock_locations (organization_id, id, version, kind, name, technician_id, \
             allow_negative, created_at, updated_at) VALUES ($1, $2, 1, 'warehouse', 'Shelf', NULL, false, now(), \
             now()) RETURNING id) \
             INSERT INTO stock_balances (organization_id, item_id, location_id, on_hand, updated_at) \
             SELECT $1, $3, l.id, '0', now() FROM l",
            vec![t.org, fresh, t.item],
        ),
        "stock_ledger" => (
            "WITH l AS (INSERT INTO stock_locations (organization_id, id, version, kind, name, technician_id, \
             allow_negative, created_at, updated_at) VALUES ($1, $2, 1, 'warehouse', 'Bin', NULL, false, now(), \
             now()) RETURNING id) \
             INSERT INTO stock_ledger (organization_id, id, item_id, location_id, kind, delta, unit_cost, \
             on_hand_after, job_id, counterpart_id, reason, actor_user_id, at) \
             SELECT $1, $2, $3, l.id, 'receipt', '1', '1.00', '1', NULL, NULL, NULL, NULL, now() FROM l",
            vec![t.org, fresh, t.item],
        ),
        "stock_costs" => (
            "INSERT INTO stock_costs (organization_id, item_id, on_hand, average) VALUES ($1, $2, '0', '1.00') \
             ON CONFLICT (organization_id, item_id) DO UPDATE SET on_hand = stock_costs.on_hand",
            vec![t.org, t.item],
        ),
        "stock_reservations" => (
            "WITH l AS (INSERT INTO stock_locations (organization_id, id, version, kind, name, technician_id, \
             allow_negative, created_at, updated_at) VALUES ($1, $2, 1, 'warehouse', 'Held', NULL, false, now(), \
             now()) RETURNING id), \
             b AS (INSERT INTO stock_balances (organization_id, item_id, location_id, on_hand, updated_at) \
             SELECT $1, $3, l.id, '0', now() FROM l RETURNING location_id) \
             INSERT INTO stock_reservations (organization_id, item_id, location_id, job_id, quantity, updated_at) \
             SELECT $1, $3, b.location_id, $4, '1', now() FROM b",
            vec![t.org, fresh, t.item, t.job],
        ),
        "stock_transfers" => (
            "WITH l AS (INSERT INTO stock_locations (organization_id, id, version, kind, name, technician_id, \
             allow_negative, created_at, updated_at) VALUES ($1, $2, 1, 'warehouse', 'Dock', NULL, false, now(), \
             now()) RETURNING id) \
             INSERT INTO stock_transfers (organization_id, id, version, item_id, from_location_id, to_location_id, \
             quantity, status, reorder_date, created_at, updated_at) \
             SELECT $1, $2, 1, $3, l.id, l.id, '1', 'draft', NULL, now(), now() FROM l",
            vec![t.org, fresh, t.item],
        ),
        "stock_items" => (
            "INSERT INTO stock_items (organization_id, item_id, version, tracking, updated_at) \
             VALUES ($1, $2, 1, 'none', now()) ON CONFLICT (organization_id, item_id) DO UPDATE SET version = stock_items.version",
            vec![t.org, t.item],
        ),
        "stock_serials" => (
            "INSERT INTO stock_serials (organization_id, item_id, serial, status, updated_at) \
             VALUES ($1, $2, 'X-' || $3::text, 'removed', now())",
            vec![t.org, t.item, fresh],
        ),
        "suppliers" => (
            "INSERT INTO suppliers (organization_id, id, version, name, payment_terms_days, created_at, updated_at) \
             VALUES ($1, $2, 1, 'Intruder', 30, now(), now())",
            vec![t.org, fresh],
        ),
        "supplier_items" => (
            "WITH s AS (INSERT INTO suppliers (organization_id, id, version, name, payment_terms_days, created_at, \
             updated_at) VALUES ($1, $2, 1, 'Intruder', 30, now(), now()) RETURNING id) \
             INSERT INTO supplier_items (organization_id, supplier_id, item_id, preferred, updated_at) \
             SELECT $1, s.id, $3, false, now() FROM s",
            vec![t.org, fresh, t.item],
        ),
        "reorder_points" => (
            "WITH l AS (INSERT INTO stock_locations (organization_id, id, version, kind, name, technician_id, \
             allow_negative, created_at, updated_at) VALUES ($1, $2, 1, 'warehouse', 'Min', NULL, false, now(), \
             now()) RETURNING id) \
             INSERT INTO reorder_points (organization_id, id, version, item_id, location_id, min, max, updated_at) \
             SELECT $1, $2, 1, $3, l.id, '1', '2', now() FROM l",
            vec![t.org, fresh, t.item],
        ),
        "purchase_order_sequences" => (
            "INSERT INTO purchase_order_sequences (organization_id, last_value) VALUES ($1, 0) \
             ON CONFLICT (organization_id) DO UPDATE SET last_value = purchase_order_sequences.last_value",
            vec![t.org],
        ),
        "purchase_orders" | "purchase_order_lines" | "supplier_bills" => (
            "WITH s AS (INSERT INTO suppliers (organization_id, id, version, name, payment_terms_days, created_at, \
             updated_at) VALUES ($1, $2, 1, 'Intruder', 30, now(), now()) RETURNING id), \
             l AS (INSERT INTO stock_locations (organization_id, id, version, kind, name, technician_id, \
             allow_negative, created_at, updated_at) VALUES ($1, $2, 1, 'warehouse', 'PO', NULL, false, now(), \
             now()) RETURNING id), \
             o AS (INSERT INTO purchase_orders (organization_id, id, version, number, supplier_id, location_id, \
             status, created_at, updated_at) SELECT $1, $2, 1, 'PO-X' || $2::text, s.id, l.id, 'draft', now(), now() \
             FROM s, l RETURNING id), \
             ln AS (INSERT INTO purchase_order_lines (organization_id, purchase_order_id, line, item_id, quantity, \
             unit_cost, received, billed) SELECT $1, o.id, 1, $3, '1', '1', '0', '0' FROM o RETURNING purchase_order_id) \
             INSERT INTO supplier_bills (organization_id, id, purchase_order_id, number, lines, total, mismatches, \
             created_at) SELECT $1, $2, ln.purchase_order_id, 'B', '[]', '0', '[]', now() FROM ln",
            vec![t.org, fresh, t.item],
        ),
        "maintenance_plans" => (
            "INSERT INTO maintenance_plans (organization_id, id, version, name, active, body, created_at, updated_at) \
             VALUES ($1, $2, 1, 'Intruder ' || $2::text, true, '{}', now(), now())",
            vec![t.org, fresh],
        ),
        "maintenance_agreements" | "maintenance_visits" | "agreement_invoices" => (
            "WITH p AS (INSERT INTO maintenance_plans (organization_id, id, version, name, active, body, created_at, \
             updated_at) VALUES ($1, $2, 1, 'Intruder ' || $2::text, true, '{}', now(), now()) RETURNING id), \
             a AS (INSERT INTO maintenance_agreements (organization_id, id, version, plan_id, customer_id, status, \
             start_date, term_end, next_attention, body, created_at, updated_at) SELECT $1, $2, 1, p.id, $3, 'draft', \
             '2027-01-01', '2028-01-01', NULL, '{}', now(), now() FROM p RETURNING id), \
             v AS (INSERT INTO maintenance_visits (organization_id, agreement_id, slot, revision, occurrence, \
             property_id, due_on, job_id, generated_on, late, created_at) SELECT $1, a.id, 0, 0, 0, $4, '2027-01-04', \
             $5, '2026-12-05', false, now() FROM a RETURNING agreement_id) \
             INSERT INTO agreement_invoices (organization_id, agreement_id, period_start, period_end, invoice_id, \
             created_at) SELECT $1, v.agreement_id, '2027-01-01', '2027-02-01', $6, now() FROM v",
            vec![t.org, fresh, t.customer, t.property, t.job, t.invoice],
        ),
        "invoices" => (
            "INSERT INTO invoices (organization_id, id, version, status, job_id, customer_id, number, issue_date, \
             due_date, total, balance, body, created_at, updated_at) VALUES ($1, $2, 1, 'draft', $3, $4, NULL, NULL, \
             NULL, '0', '0', '{}', now(), now())",
            vec![t.org, fresh, t.job, t.customer],
        ),
        "invoice_events" => (
            "INSERT INTO invoice_events (organization_id, invoice_id, version, body, at) \
             VALUES ($1, $2, 1000000, '{}', now())",
            vec![t.org, t.invoice],
        ),
        "payments" => (
            "INSERT INTO payments (organization_id, id, invoice_id, kind, payment_id, state, amount, method, \
             reference, provider, provider_ref, at) VALUES ($1, $2, $3, 'payment', NULL, 'pending', '1.00', 'cash', \
             NULL, 'manual', NULL, now())",
            vec![t.org, fresh, t.invoice],
        ),
        "job_actuals" => (
            "INSERT INTO job_actuals (organization_id, id, job_id, line, recorded_at) VALUES ($1, $2, $3, '{}', now())",
            vec![t.org, fresh, t.job],
        ),
        "job_planned_work" => (
            "INSERT INTO job_planned_work (organization_id, job_id, estimate_id, body, created_at) \
             VALUES ($1, $2, $3, '{}', now()) ON CONFLICT (organization_id, job_id) DO UPDATE SET body = '{}'",
            vec![t.org, t.job, t.estimate],
        ),
        "trade_catalogues" => (
            "INSERT INTO trade_catalogues (organization_id, version, trades, updated_at) VALUES ($1, 1, '[\"plumbing\"]', now()) \
             ON CONFLICT (organization_id) DO UPDATE SET trades = '[\"hvac\"]'",
            vec![t.org],
        ),
        "appointments" => (
            "INSERT INTO appointments (organization_id, id, job_id, version, status, held_from, window_start, \
             window_end, estimated_minutes, missed_window_end, created_at, updated_at) VALUES ($1, $2, $3, 1, \
             'scheduled', NULL, now(), now() + interval '1 hour', 60, NULL, now(), now())",
            vec![t.org, fresh, t.job],
        ),
        "appointment_crew" => (
            "INSERT INTO appointment_crew (organization_id, appointment_id, technician_id, role, position) \
             VALUES ($1, $2, $3, 'helper', 1000000) \
             ON CONFLICT (organization_id, appointment_id, technician_id) DO UPDATE SET position = 1000000",
            vec![t.org, t.appointment, t.technician],
        ),
        "schedule_events" => (
            "INSERT INTO schedule_events (organization_id, id, job_id, appointment_id, kind, data, actor_user_id, \
             reason, at) VALUES ($1, $2, $3, NULL, 'intruder', '{}', NULL, NULL, now())",
            vec![t.org, fresh, t.job],
        ),
        "scheduling_settings" => (
            "INSERT INTO scheduling_settings (organization_id, version, settings, updated_at) VALUES ($1, 1, '{}', now()) \
             ON CONFLICT (organization_id) DO UPDATE SET settings = '{}'",
            vec![t.org],
        ),
        "dispatch_plans" => (
            "INSERT INTO dispatch_plans (organization_id, id, day, status, plan, reads, created_at, applied_at) \
             VALUES ($1, $2, '2031-06-02', 'proposed', '{}', '{}', now(), NULL)",
            vec![t.org, fresh],
        ),
        "time_punches" => (
            "INSERT INTO time_punches (organization_id, id, technician_id, kind, at, device, received_at, \
             actor_user_id, reason) VALUES ($1, $2, $3, 'clock_in', now(), NULL, now(), NULL, NULL)",
            vec![t.org, fresh, t.technician],
        ),
        "timesheets" => (
            "INSERT INTO timesheets (organization_id, technician_id, week, version, status, updated_at) \
             VALUES ($1, $2, '1999-01-04', 1, 'open', now()) ON CONFLICT DO NOTHING",
            vec![t.org, t.technician],
        ),
        "timesheet_events" => (
            // The week the fixture submitted (its Monday, by the UTC date).
            "INSERT INTO timesheet_events (organization_id, id, technician_id, week, kind, reason, \
             actor_user_id, at) VALUES ($1, $2, $3, date_trunc('week', now() AT TIME ZONE 'UTC')::date, \
             'submitted', NULL, NULL, now())",
            vec![t.org, fresh, t.technician],
        ),
        "overtime_rules" => (
            "INSERT INTO overtime_rules (organization_id, version, daily_minutes, weekly_minutes, updated_at) \
             VALUES ($1, 1, 480, 2400, now()) ON CONFLICT (organization_id) DO UPDATE SET daily_minutes = 480",
            vec![t.org],
        ),
        "sync_sent" => (
            "INSERT INTO sync_sent (organization_id, user_id, device_id, entity_kind, entity_id, tombstoned_seq) \
             VALUES ($1, $2, $2, 'job', $3, NULL) ON CONFLICT DO NOTHING",
            vec![t.org, fresh, t.job],
        ),
        "blobs" => (
            "INSERT INTO blobs (organization_id, sha256, size_bytes, media_type, uploaded_by, created_at) \
             VALUES ($1, md5($2::text) || md5($2::text), 3, 'image/png', NULL, now())",
            vec![t.org, fresh],
        ),
        "attachments" => (
            // The fixture's photo (the same bytes in every organization).
            "INSERT INTO attachments (organization_id, id, sha256, kind, attached_to, subject_id, job_id, \
             caption, signed_by, device, author_user_id, created_at) \
             VALUES ($1, $2, '9bd70609c0bb70c86cf961f50ea7ae4c421b4f5b78f0d1148b7fa6f01c70a7ba', 'photo', 'job', $3, $3, NULL, NULL, NULL, NULL, now())",
            vec![t.org, fresh, t.job],
        ),
        "form_templates" => (
            "INSERT INTO form_templates (organization_id, id, version, name, trade, \
             required_before_completion, questions, created_by, created_at) \
             VALUES ($1, $2, 1, 'Intruder', NULL, false, '[]', NULL, now())",
            vec![t.org, fresh],
        ),
        "form_answers" => (
            "INSERT INTO form_answers (organization_id, id, job_id, appointment_id, template_id, \
             template_version, question_key, answer, device, author_user_id, created_at) \
             VALUES ($1, $2, $3, NULL, $4, 1, 'checked', '{\"type\":\"yes_no\",\"value\":true}', \
             NULL, NULL, now())",
            vec![t.org, fresh, t.job, t.form_template],
        ),
        "notes" => (
            "INSERT INTO notes (organization_id, id, job_id, appointment_id, body, author_user_id, device, \
             created_at) VALUES ($1, $2, $3, NULL, 'intruder', NULL, NULL, now())",
            vec![t.org, fresh, t.job],
        ),
        "technician_positions" => (
            "INSERT INTO technician_positions (organization_id, technician_id, id, device_time, received_at, \
             lat, lon, accuracy_m, source) VALUES ($1, $2, $3, now(), now(), 41.9, -87.6, 10, 'report')",
            vec![t.org, t.technician, fresh],
        ),
        "technician_last_positions" => (
            "INSERT INTO technician_last_positions (organization_id, technician_id, device_time, received_at, \
             lat, lon, accuracy_m) VALUES ($1, $2, now(), now(), 41.9, -87.6, 10) \
             ON CONFLICT (organization_id, technician_id) DO UPDATE SET lat = 41.8",
            vec![t.org, t.technician],
        ),
        _ => return None,
    })
}

/// The tenant tables this file knows how to populate and how to build a valid row for. A table
/// added to `TENANT_TABLES` without an entry in [`valid_insert`] is still checked, with a minimal
/// row (row-level security refuses a row before its NOT NULL and other constraints are checked)
/// and without the positive control; add it to `valid_insert` and to the fixture for the rest.
fn row_for(table: &str, t: &Tenant) -> (String, Vec<Uuid>, bool) {
    match valid_insert(table, t) {
        Some((sql, ids)) => (sql.to_owned(), ids, true),
        None => {
            eprintln!("note: {table} has no valid row in tests/rls.rs; checking a minimal one");
            let col = org_column(table);
            (
                format!("INSERT INTO {table} ({col}) VALUES ($1)"),
                vec![t.org],
                false,
            )
        }
    }
}

/// Whether the fixture puts rows of both organizations in `table`.
fn populated_by_fixture(table: &str) -> bool {
    valid_insert(
        table,
        &Tenant {
            org: Uuid::nil(),
            customer: Uuid::nil(),
            property: Uuid::nil(),
            job: Uuid::nil(),
            workflow: Uuid::nil(),
            technician: Uuid::nil(),
            item: Uuid::nil(),
            estimate: Uuid::nil(),
            invoice: Uuid::nil(),
            appointment: Uuid::nil(),
            form_template: Uuid::nil(),
        },
    )
    .is_some()
}

async fn insert(
    tx: &mut Transaction<'static, Postgres>,
    sql: &str,
    ids: &[Uuid],
) -> Result<u64, sqlx::Error> {
    let mut query = sqlx::query(sql);
    for id in ids {
        query = query.bind(*id);
    }
    query.execute(&mut **tx).await.map(|r| r.rows_affected())
}

/// Begins a transaction as the app role, with `org` set transaction-locally (`Some("")` sets
/// the empty string, `None` sets nothing).
async fn begin(app: &PgPool, org: Option<&str>) -> Transaction<'static, Postgres> {
    let mut tx = app.begin().await.expect("begin");
    if let Some(org) = org {
        sqlx::query("SELECT set_config('app.organization_id', $1, true)")
            .bind(org)
            .execute(&mut *tx)
            .await
            .expect("set_config");
    }
    tx
}

#[track_caller]
fn assert_rls_refused<T: std::fmt::Debug>(result: Result<T, sqlx::Error>, what: &str) {
    match result {
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42501") => {}
        other => panic!("{what}: expected a row-level security refusal (42501), got {other:?}"),
    }
}

async fn count(
    executor: &mut Transaction<'static, Postgres>,
    sql: &str,
    bind: Option<Uuid>,
) -> i64 {
    let mut query = sqlx::query(sql);
    if let Some(id) = bind {
        query = query.bind(id);
    }
    query
        .fetch_one(&mut **executor)
        .await
        .expect(sql)
        .get::<i64, _>(0)
}

struct Setup {
    fx: Fixture,
    owner: PgPool,
    app: PgPool,
    a: Tenant,
    b: Tenant,
    /// An organization row with nothing else: the one place a feed counter can be inserted.
    bare: Tenant,
}

async fn setup() -> Option<Setup> {
    let fx = Fixture::new(Kind::Postgres).await?;
    let (_, a) = populated(&fx, "Tenant A").await;
    let (_, b) = populated(&fx, "Tenant B").await;
    let owner = PgPool::connect(&fx.db.owner_url)
        .await
        .expect("owner connection");
    let app = PgPoolOptions::new()
        .max_connections(2)
        .connect(&fx.db.app_url)
        .await
        .expect("app connection");
    let bare_org = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO organizations (id, version, kind, name, time_zone, currency, sla_emergency_minutes, \
         sla_urgent_minutes, sla_routine_minutes, created_at, updated_at) \
         VALUES ($1, 1, 'contractor', 'Bare', 'UTC', 'USD', 120, 1440, 4320, now(), now())",
    )
    .bind(bare_org)
    .execute(&owner)
    .await
    .expect("a bare organization");
    let bare = Tenant { org: bare_org, ..b };
    Some(Setup {
        fx,
        owner,
        app,
        a,
        b,
        bare,
    })
}

/// The organization a valid insert into `table` is stamped with: B for most tables; a fresh id
/// for organizations (B's id is taken) and the bare organization for feed counters (B has one).
fn target(setup: &Setup, table: &str) -> Tenant {
    match table {
        "organizations" => Tenant {
            org: Uuid::now_v7(),
            ..setup.b
        },
        "feed_counters" => setup.bare,
        _ => setup.b,
    }
}

#[tokio::test]
async fn the_app_role_is_unprivileged_and_every_tenant_table_forces_rls() {
    let Some(setup) = setup().await else { return };
    let mut tx = begin(&setup.app, None).await;
    let row = sqlx::query("SELECT current_user::text, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        .fetch_one(&mut *tx)
        .await
        .expect("role");
    assert_eq!(row.get::<String, _>(0), APP_ROLE);
    assert!(!row.get::<bool, _>(1), "the app role is a superuser");
    assert!(!row.get::<bool, _>(2), "the app role bypasses RLS");
    let owned = count(
        &mut tx,
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)",
        None,
    )
    .await;
    assert_eq!(
        owned, 0,
        "the app role owns tables (owners can disable RLS)"
    );

    // It cannot switch RLS off, for itself or for a table.
    assert_rls_refused(
        sqlx::query("ALTER TABLE customers DISABLE ROW LEVEL SECURITY")
            .execute(&mut *tx)
            .await,
        "ALTER TABLE as the app role",
    );
    drop(tx);
    let mut tx = begin(&setup.app, Some(&setup.a.org.to_string())).await;
    sqlx::query("SET LOCAL row_security = off")
        .execute(&mut *tx)
        .await
        .expect("set row_security");
    assert_rls_refused(
        sqlx::query("SELECT count(*) FROM customers")
            .fetch_one(&mut *tx)
            .await,
        "reading with row_security off",
    );
    drop(tx);

    for table in TENANT_TABLES {
        let row = sqlx::query(
            "SELECT c.relrowsecurity, c.relforcerowsecurity, \
             (SELECT count(*) FROM pg_policies p WHERE p.schemaname = 'public' AND p.tablename = c.relname \
              AND p.qual LIKE '%app.organization_id%' AND p.with_check LIKE '%app.organization_id%') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relname = $1 AND c.relkind = 'r'",
        )
        .bind(*table)
        .fetch_optional(&setup.owner)
        .await
        .expect("pg_class")
        .unwrap_or_else(|| panic!("tenant table {table} does not exist"));
        assert!(
            row.get::<bool, _>(0),
            "{table}: row-level security is not enabled"
        );
        assert!(
            row.get::<bool, _>(1),
            "{table}: row-level security is not forced"
        );
        assert!(
            row.get::<i64, _>(2) >= 1,
            "{table}: no policy on app.organization_id with a WITH CHECK"
        );
    }

    // Every link table forces a policy that names both of its organizations.
    for table in LINK_TABLES {
        let row = sqlx::query(
            "SELECT c.relrowsecurity, c.relforcerowsecurity, \
             (SELECT count(*) FROM pg_policies p WHERE p.schemaname = 'public' AND p.tablename = c.relname \
              AND p.qual LIKE '%hoa_organization_id%' AND p.qual LIKE '%contractor_organization_id%' \
              AND p.with_check LIKE '%hoa_organization_id%' \
              AND p.with_check LIKE '%contractor_organization_id%') \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = 'public' AND c.relname = $1 AND c.relkind = 'r'",
        )
        .bind(*table)
        .fetch_optional(&setup.owner)
        .await
        .expect("pg_class")
        .unwrap_or_else(|| panic!("link table {table} does not exist"));
        assert!(row.get::<bool, _>(0), "{table}: RLS is not enabled");
        assert!(row.get::<bool, _>(1), "{table}: RLS is not forced");
        assert!(
            row.get::<i64, _>(2) >= 1,
            "{table}: no policy on both organizations with a WITH CHECK"
        );
    }

    // Every table that holds an organization id is either a tenant table or a known shared one,
    // and every table the app role can use is one of the three kinds.
    let tables: Vec<(String, bool, bool)> = sqlx::query(
        "SELECT c.relname::text, \
           EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'organization_id' \
                   AND NOT a.attisdropped), \
           has_table_privilege($1, c.oid, 'SELECT') \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')",
    )
    .bind(APP_ROLE)
    .fetch_all(&setup.owner)
    .await
    .expect("tables")
    .iter()
    .map(|r| (r.get(0), r.get(1), r.get(2)))
    .collect();
    assert!(tables.len() >= TENANT_TABLES.len() + SHARED_TABLES.len());
    for (table, has_org, app_reads) in &tables {
        let known =
            TENANT_TABLES.contains(&table.as_str()) || SHARED_TABLES.contains(&table.as_str());
        let link = LINK_TABLES.contains(&table.as_str());
        assert!(
            !*app_reads || known || link,
            "the app role can read {table}, which is neither a tenant, a link nor a shared table"
        );
        assert!(
            !*has_org || known,
            "{table} has organization_id but is not a tenant table"
        );
    }
    for table in TENANT_TABLES.iter().chain(LINK_TABLES).chain(SHARED_TABLES) {
        assert!(
            tables.iter().any(|(t, _, reads)| t == table && *reads),
            "the app role cannot use {table}"
        );
    }
}

/// A vendor link between A (as the association) and B (as the contractor), written as A with
/// plain SQL: both read it and may change it; with no organization set, or as a third one,
/// nothing is read, nothing is changed, and no link between others can be written.
#[tokio::test]
async fn a_link_row_is_read_and_written_by_exactly_its_two_organizations() {
    let Some(setup) = setup().await else { return };
    let (a, b, third) = (
        setup.a.org.to_string(),
        setup.b.org.to_string(),
        setup.bare.org.to_string(),
    );
    let link = Uuid::now_v7();
    let insert_link = |hoa: Uuid, contractor: Uuid, id: Uuid| {
        sqlx::query(
            "INSERT INTO vendor_links (id, hoa_organization_id, contractor_organization_id, version, \
             status, body, created_at, updated_at) VALUES ($1, $2, $3, 1, 'invited', '{}', now(), now())",
        )
        .bind(id)
        .bind(hoa)
        .bind(contractor)
    };
    let mut tx = begin(&setup.app, Some(&a)).await;
    insert_link(setup.a.org, setup.b.org, link)
        .execute(&mut *tx)
        .await
        .expect("the association writes its link");
    tx.commit().await.expect("commit");

    let visible = "SELECT count(*) FROM vendor_links WHERE id = $1";
    for (org, seen) in [(Some(&a), 1), (Some(&b), 1), (Some(&third), 0), (None, 0)] {
        let mut tx = begin(&setup.app, org.map(String::as_str)).await;
        assert_eq!(count(&mut tx, visible, Some(link)).await, seen, "{org:?}");
        let changed = sqlx::query("UPDATE vendor_links SET version = version + 1 WHERE id = $1")
            .bind(link)
            .execute(&mut *tx)
            .await
            .expect("update")
            .rows_affected();
        assert_eq!(changed, seen as u64, "{org:?} changing the link");
        tx.rollback().await.expect("rollback");
    }
    // A third organization cannot write a link between two others, nor move one to itself.
    let mut tx = begin(&setup.app, Some(&third)).await;
    assert_rls_refused(
        insert_link(setup.a.org, setup.b.org, Uuid::now_v7())
            .execute(&mut *tx)
            .await,
        "a link between others",
    );
    drop(tx);
    let mut tx = begin(&setup.app, Some(&b)).await;
    assert_rls_refused(
        sqlx::query(
            "UPDATE vendor_links SET hoa_organization_id = $2, contractor_organization_id = $3 \
             WHERE id = $1",
        )
        .bind(link)
        .bind(setup.bare.org)
        .bind(setup.a.org)
        .execute(&mut *tx)
        .await,
        "moving a link away from both of its organizations",
    );
}

#[tokio::test]
async fn with_no_organization_set_nothing_is_read_and_nothing_is_written() {
    let Some(setup) = setup().await else { return };
    for table in TENANT_TABLES {
        let col = org_column(table);
        // The rows exist, for both organizations.
        let mut owner = setup.owner.begin().await.expect("owner tx");
        let must_exist: &[Tenant] = if populated_by_fixture(table) {
            &[setup.a, setup.b]
        } else {
            &[]
        };
        for tenant in must_exist.iter().copied() {
            let n = count(
                &mut owner,
                &format!("SELECT count(*) FROM {table} WHERE {col} = $1"),
                Some(tenant.org),
            )
            .await;
            assert!(
                n > 0,
                "{table} has no rows for {}: the fixture must populate every table",
                tenant.org
            );
        }
        drop(owner);

        // Unset, and set to the empty string (what a pooled connection reads back), are the same.
        for setting in [None, Some("")] {
            let mut tx = begin(&setup.app, setting).await;
            let seen = count(&mut tx, &format!("SELECT count(*) FROM {table}"), None).await;
            assert_eq!(
                seen, 0,
                "{table} with setting {setting:?}: rows are visible"
            );
            let updated = sqlx::query(&format!("UPDATE {table} SET {col} = {col}"))
                .execute(&mut *tx)
                .await;
            assert_eq!(
                updated.expect("update").rows_affected(),
                0,
                "{table}: rows were updated"
            );
            let deleted = sqlx::query(&format!("DELETE FROM {table}"))
                .execute(&mut *tx)
                .await;
            assert_eq!(
                deleted.expect("delete").rows_affected(),
                0,
                "{table}: rows were deleted"
            );
            drop(tx);

            let t = target(&setup, table);
            let (sql, ids, _) = row_for(table, &t);
            let mut tx = begin(&setup.app, setting).await;
            assert_rls_refused(
                insert(&mut tx, &sql, &ids).await,
                &format!("INSERT into {table} with {setting:?}"),
            );
            drop(tx);
            let mut tx = begin(&setup.app, setting).await;
            let copied = sqlx::query(&format!("INSERT INTO {table} SELECT * FROM {table}"))
                .execute(&mut *tx)
                .await;
            assert_eq!(
                copied.expect("insert select").rows_affected(),
                0,
                "{table}: copied rows it cannot see"
            );
            drop(tx);
        }

        // The same row is accepted with its own organization set: the refusal above was RLS.
        let t = target(&setup, table);
        let (sql, ids, valid) = row_for(table, &t);
        if !valid {
            continue;
        }
        let mut tx = begin(&setup.app, Some(&t.org.to_string())).await;
        assert_eq!(
            insert(&mut tx, &sql, &ids)
                .await
                .expect("a valid row for its own organization"),
            1,
            "{table}"
        );
        tx.rollback().await.expect("rollback");
    }
}

#[tokio::test]
async fn with_an_organization_set_only_its_rows_are_read_and_written() {
    let Some(setup) = setup().await else { return };
    let (a, b) = (setup.a, setup.b);
    for table in TENANT_TABLES {
        let col = org_column(table);
        let mut owner = setup.owner.begin().await.expect("owner tx");
        let a_rows = count(
            &mut owner,
            &format!("SELECT count(*) FROM {table} WHERE {col} = $1"),
            Some(a.org),
        )
        .await;
        let b_rows = count(
            &mut owner,
            &format!("SELECT count(*) FROM {table} WHERE {col} = $1"),
            Some(b.org),
        )
        .await;
        drop(owner);
        assert!(
            !populated_by_fixture(table) || (a_rows > 0 && b_rows > 0),
            "{table}: the fixture must populate every table it knows"
        );

        let mut tx = begin(&setup.app, Some(&a.org.to_string())).await;
        let visible: Vec<Uuid> = sqlx::query(&format!("SELECT {col} FROM {table}"))
            .fetch_all(&mut *tx)
            .await
            .expect("select")
            .iter()
            .map(|r| r.get(0))
            .collect();
        assert_eq!(
            visible.len(),
            usize::try_from(a_rows).expect("count"),
            "{table}: A sees all of its rows"
        );
        assert!(
            visible.iter().all(|org| *org == a.org),
            "{table}: A sees another organization's rows"
        );
        let asked_for_b = count(
            &mut tx,
            &format!("SELECT count(*) FROM {table} WHERE {col} = $1"),
            Some(b.org),
        )
        .await;
        assert_eq!(asked_for_b, 0, "{table}: B's rows are visible to A");
        let touched = sqlx::query(&format!(
            "UPDATE {table} SET {col} = {col} WHERE {col} = $1"
        ))
        .bind(b.org)
        .execute(&mut *tx)
        .await
        .expect("update");
        assert_eq!(touched.rows_affected(), 0, "{table}: A updated B's rows");
        let deleted = sqlx::query(&format!("DELETE FROM {table} WHERE {col} = $1"))
            .bind(b.org)
            .execute(&mut *tx)
            .await;
        assert_eq!(
            deleted.expect("delete").rows_affected(),
            0,
            "{table}: A deleted B's rows"
        );
        drop(tx);

        // Writing a row stamped with another organization is refused, as is moving A's rows there.
        let t = target(&setup, table);
        let (sql, ids, _) = row_for(table, &t);
        let mut tx = begin(&setup.app, Some(&a.org.to_string())).await;
        assert_rls_refused(
            insert(&mut tx, &sql, &ids).await,
            &format!("INSERT into {table} for another org"),
        );
        drop(tx);
        if a_rows == 0 {
            continue;
        }
        let mut tx = begin(&setup.app, Some(&a.org.to_string())).await;
        let moved = sqlx::query(&format!("UPDATE {table} SET {col} = $1 WHERE {col} = $2"))
            .bind(b.org)
            .bind(a.org)
            .execute(&mut *tx)
            .await;
        assert_rls_refused(moved, &format!("moving A's {table} rows to B"));
        drop(tx);
    }

    // B's rows are all still there.
    for table in TENANT_TABLES.iter().filter(|t| populated_by_fixture(t)) {
        let col = org_column(table);
        let mut owner = setup.owner.begin().await.expect("owner tx");
        let n = count(
            &mut owner,
            &format!("SELECT count(*) FROM {table} WHERE {col} = $1"),
            Some(b.org),
        )
        .await;
        assert!(n > 0, "{table}: B's rows are gone");
    }
}

#[tokio::test]
async fn a_pooled_connection_forgets_the_organization_at_commit() {
    let Some(setup) = setup().await else { return };
    let one = PgPoolOptions::new()
        .max_connections(1)
        .connect(&setup.fx.db.app_url)
        .await
        .expect("connect");
    let mut tx = begin(&one, Some(&setup.a.org.to_string())).await;
    assert!(count(&mut tx, "SELECT count(*) FROM customers", None).await > 0);
    tx.commit().await.expect("commit");

    // The same connection, next transaction: the setting reads back as '' and nothing is visible.
    let mut tx = begin(&one, None).await;
    let setting: Option<String> =
        sqlx::query("SELECT current_setting('app.organization_id', true)")
            .fetch_one(&mut *tx)
            .await
            .expect("setting")
            .get(0);
    assert_eq!(setting.as_deref(), Some(""));
    assert_eq!(
        count(&mut tx, "SELECT count(*) FROM customers", None).await,
        0
    );
    let t = target(&setup, "customers");
    let (sql, ids) = valid_insert("customers", &t).expect("insert");
    assert_rls_refused(
        insert(&mut tx, sql, &ids).await,
        "INSERT on a reused connection",
    );
}

#[tokio::test]
async fn the_services_work_as_the_app_role() {
    // The conformance suite runs the services as the app role; here the data made by them is
    // checked to be invisible across organizations through the services themselves too.
    let Some(setup) = setup().await else { return };
    let s: &Services = &setup.fx.services;
    let a_caller = hestami_store::app::Caller {
        organization_id: hestami_core::ids::OrganizationId::from_uuid(setup.a.org),
        user_id: None,
        scope: Default::default(),
    };
    let page = PageRequest::parse(None, None).expect("page");
    let customers = s.customer_list(&a_caller, page, None).await.expect("list");
    assert!(!customers.items.is_empty());
    assert!(
        customers
            .items
            .iter()
            .all(|c| c.id.as_uuid() != setup.b.customer)
    );
    let feed = whole_feed(s, &a_caller).await;
    assert_feed_is_clean(&feed);
    let job = hestami_core::ids::JobId::from_uuid(setup.b.job);
    assert!(
        matches!(s.job_get(&a_caller, job).await, Err(hestami_store::StoreError::Failure(f)) if f.code == "NOT_FOUND")
    );
}
