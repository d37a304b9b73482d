//! One timer pass over many maintenance agreements on PostgreSQL: how long, and how many
//! statements and transactions per agreement, beside the same writes in plain SQL.
//!
//! `ORGS` organizations (a customer, a property and a plan each, through the services) get
//! `AGREEMENTS` active agreements between them, copied in SQL from one made through the API,
//! each with its timer due a minute ago and, on that day, a visit to generate and a month to
//! bill: the first of the month for every agreement at once. One process's timer pass
//! (`Services::fire_due_timers`) then drains them. The comparison writes, per agreement and in
//! one transaction of plain SQL, a job, an invoice and the agreement's new body, from four
//! connections: the least a tick must write.
//!
//! `cargo bench --bench agreements` (PostgreSQL from HESTAMI_TEST_DATABASE_URL, skipped if
//! unreachable; `AGREEMENTS=100000 ORGS=100` by default).
#![allow(clippy::unwrap_used)]

mod support;

use std::time::Instant;

use serde_json::json;

use hestami::store::app::maintenance::{Agreement, MaintenanceCommand, Plan};
use hestami::store::{counters, new_id};
use support::{env, on_postgres, submit, tenant};

#[tokio::main]
async fn main() {
    let agreements = env("AGREEMENTS", 100_000);
    let orgs = env("ORGS", 100).max(1);
    let Some((db, admin, services)) = on_postgres("agreements").await else {
        return;
    };
    let owner = sqlx::PgPool::connect(&db.owner_url).await.unwrap();
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::America::Chicago)
        .date_naive();
    // A visit ten days out: within the 30-day lead time, so every tick generates it.
    let visit_day =
        u8::try_from(chrono::Datelike::day(&(today + chrono::Duration::days(10)))).unwrap();

    let started = Instant::now();
    let mut templates = Vec::with_capacity(orgs);
    for n in 0..orgs {
        let t = tenant(&admin, &services, n).await;
        // Its daily timers are not part of the measure.
        let plan: Plan = submit(
            &services,
            &t.caller,
            MaintenanceCommand::CreatePlan(
                serde_json::from_value(json!({
                    "name": "Comfort club", "description": null,
                    "visits": [{ "name": "Tune-up", "trade": "plumbing", "startMonth": null,
                                 "rule": { "kind": "monthly_on_day", "every": 1, "day": visit_day },
                                 "window": { "start": "09:00:00", "end": "11:00:00" },
                                 "durationMinutes": 60, "services": [] }],
                    "benefits": { "discount": null, "priority": null, "waiveTripFee": false },
                    "prices": [{ "frequency": "monthly", "amount": { "amount": "19.00", "currency": "USD" } }]
                }))
                .unwrap(),
            ),
        )
        .await;
        let draft: Agreement = submit(
            &services,
            &t.caller,
            MaintenanceCommand::CreateContract(
                serde_json::from_value(json!({
                    "customerId": t.job.customer_id, "propertyIds": [t.job.property_id],
                    "planId": plan.id, "startDate": today, "termMonths": 12, "billing": "monthly",
                    "autoRenew": true, "leadDays": 30, "cardToken": null
                }))
                .unwrap(),
            ),
        )
        .await;
        let active: Agreement = submit(
            &services,
            &t.caller,
            MaintenanceCommand::Activate(
                serde_json::from_value(json!({
                    "agreementId": draft.id, "signedBy": "Bench", "signature": null,
                    "expectedVersion": null
                }))
                .unwrap(),
            ),
        )
        .await;
        templates.push((t.caller.organization_id, active));
    }
    // The templates' own ticks, and every organization's daily scans, are not measured.
    services.fire_due_timers().await.unwrap();

    // The copies, in SQL as the owner (row-level security does not apply to it).
    let per_org = agreements / orgs;
    for (org, template) in &templates {
        for chunk in 0..per_org.div_ceil(1000) {
            let n = (per_org - chunk * 1000).min(1000);
            let mut ids = Vec::with_capacity(n);
            let mut bodies = Vec::with_capacity(n);
            let mut names = Vec::with_capacity(n);
            for _ in 0..n {
                let id = new_id();
                let body = Agreement {
                    id: hestami::core::ids::AgreementId::from_uuid(id),
                    ..template.clone()
                };
                ids.push(id);
                bodies.push(serde_json::to_string(&body).unwrap());
                names.push(format!("maintenance/{id}"));
            }
            sqlx::query(
                "INSERT INTO maintenance_agreements (organization_id, id, version, plan_id, customer_id, \
                 status, start_date, term_end, next_attention, body, created_at, updated_at) \
                 SELECT $1, u.id, $2, $3, $4, 'active', $5, $6, $7, u.body, now(), now() \
                 FROM unnest($8::uuid[], $9::text[]) AS u(id, body)",
            )
            .bind(org.as_uuid())
            .bind(template.version)
            .bind(template.plan_id.as_uuid())
            .bind(template.customer_id.as_uuid())
            .bind(template.start_date)
            .bind(template.term_end)
            .bind(template.next_attention)
            .bind(&ids)
            .bind(&bodies)
            .execute(&owner)
            .await
            .unwrap();
            sqlx::query(
                "INSERT INTO timers (organization_id, name, due_at) \
                 SELECT $1, u.name, now() - interval '1 minute' FROM unnest($2::text[]) AS u(name)",
            )
            .bind(org.as_uuid())
            .bind(&names)
            .execute(&owner)
            .await
            .unwrap();
        }
    }
    let total = per_org * orgs;
    println!(
        "{total} active agreements due in {orgs} organizations (set up in {:.1} s)",
        started.elapsed().as_secs_f64()
    );

    // One pass.
    let before = counters();
    let started = Instant::now();
    let fired = services.fire_due_timers().await.unwrap();
    let drained = started.elapsed();
    let spent = counters() - before;
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM timers WHERE due_at <= now() AND name LIKE 'maintenance/%'",
    )
    .fetch_one(&owner)
    .await
    .unwrap();
    let visits: i64 = sqlx::query_scalar("SELECT count(*) FROM maintenance_visits")
        .fetch_one(&owner)
        .await
        .unwrap();
    let billed: i64 = sqlx::query_scalar("SELECT count(*) FROM agreement_invoices")
        .fetch_one(&owner)
        .await
        .unwrap();

    // The least a tick writes, in plain SQL: a job, an invoice and the agreement, in one
    // transaction, from four connections, for as many agreements.
    let baseline = plain_sql(&owner, &templates, total).await;

    println!();
    println!("| what | result |");
    println!("| --- | --- |");
    println!(
        "| one timer pass, {total} agreements due | {fired} fired in {:.1} s ({:.0}/s); {left} still due; {visits} visits and {billed} period invoices in all |",
        drained.as_secs_f64(),
        fired as f64 / drained.as_secs_f64()
    );
    println!(
        "| per agreement | {:.1} statements, {:.1} transactions ({:.1} writing) |",
        spent.statements as f64 / fired.max(1) as f64,
        spent.transactions as f64 / fired.max(1) as f64,
        spent.write_transactions as f64 / fired.max(1) as f64
    );
    println!(
        "| plain SQL, job + invoice + agreement per transaction, 4 connections | {total} in {:.1} s ({:.0}/s) |",
        baseline,
        total as f64 / baseline
    );
}

/// Writes, per agreement, a job copied from the template's first visit, an invoice copied from
/// its first period's, and its body, in one transaction; four connections. Seconds taken.
async fn plain_sql(
    owner: &sqlx::PgPool,
    templates: &[(hestami::core::ids::OrganizationId, Agreement)],
    total: usize,
) -> f64 {
    let columns = |table: &'static str| async move {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns WHERE table_name = $1 \
             ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(owner)
        .await
        .unwrap();
        names
    };
    let copy = |table: &str, names: &[String], extra: &str| {
        let list = names.join(", ");
        let select = names
            .iter()
            .map(|c| match c.as_str() {
                "id" => "$3".to_owned(),
                "number" => "NULL".to_owned(),
                other => other.to_owned(),
            })
            .collect::<Vec<_>>()
            .join(", ");
        format!(
            "INSERT INTO {table} ({list}) SELECT {select} FROM {table} WHERE organization_id = $1 AND id = $2{extra}"
        )
    };
    let job_sql = copy("jobs", &columns("jobs").await, "");
    let invoice_sql = copy("invoices", &columns("invoices").await, "");
    let mut sources = Vec::new();
    for (org, agreement) in templates {
        let job: uuid::Uuid = sqlx::query_scalar(
            "SELECT job_id FROM maintenance_visits WHERE organization_id = $1 AND agreement_id = $2 LIMIT 1",
        )
        .bind(org.as_uuid())
        .bind(agreement.id.as_uuid())
        .fetch_one(owner)
        .await
        .unwrap();
        let invoice: uuid::Uuid = sqlx::query_scalar(
            "SELECT invoice_id FROM agreement_invoices WHERE organization_id = $1 AND agreement_id = $2 LIMIT 1",
        )
        .bind(org.as_uuid())
        .bind(agreement.id.as_uuid())
        .fetch_one(owner)
        .await
        .unwrap();
        sources.push((org.as_uuid(), agreement.id.as_uuid(), job, invoice));
    }
    let sources = std::sync::Arc::new(sources);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..4 {
        let (owner, sources, job_sql, invoice_sql) = (
            owner.clone(),
            sources.clone(),
            job_sql.clone(),
            invoice_sql.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut k = w;
            while k < total {
                let (org, agreement, job, invoice) = sources[k % sources.len()];
                let mut tx = owner.begin().await.unwrap();
                sqlx::query(&job_sql)
                    .bind(org)
                    .bind(job)
                    .bind(new_id())
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query(&invoice_sql)
                    .bind(org)
                    .bind(invoice)
                    .bind(new_id())
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                sqlx::query(
                    "UPDATE maintenance_agreements SET updated_at = now() WHERE organization_id = $1 AND id = $2",
                )
                .bind(org)
                .bind(agreement)
                .execute(&mut *tx)
                .await
                .unwrap();
                tx.commit().await.unwrap();
                k += 4;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed().as_secs_f64()
}
