//! Appointments' timers on every backend, through the public API: a job's SLA breach is
//! recorded once across two processes and a restart; a missed window is recorded once, and
//! rescheduling or arriving disarms the window's check.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use hestami_core::appointment::AppointmentStatus;
use hestami_core::job::{Job, JobStatus, TimeWindow};
use hestami_core::workforce::Technician;
use hestami_store::app::Services;
use hestami_store::app::appointment::{
    AddAppointment, FieldMove, JobSchedule, JobV2Command, MoveAppointment, RescheduleAppointment,
};
use hestami_store::engine::EngineConfig;
use hestami_store::{Clock, Store, StoreOptions, truncate_micros};

use common::*;

on_every_backend!(
    an_sla_breach_is_recorded_once_across_processes_and_a_restart,
    a_missed_window_is_recorded_once_and_rescheduling_or_arriving_disarms_it,
    jobs_without_an_sla_timer_get_one_when_the_timers_start,
    the_reorder_pass_drafts_once_a_day_across_processes,
);

#[derive(Debug)]
struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    fn set(&self, to: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}

async fn process(fx: &Fixture, clock: &Arc<ManualClock>) -> Services {
    let store = Store::connect(
        &fx.db.app_url,
        StoreOptions {
            max_connections: 4,
            clock: clock.clone(),
        },
    )
    .await
    .expect("connect");
    Services::new(store, EngineConfig::default())
}

fn add(job: &Job, window: TimeWindow, lead: &Technician) -> JobV2Command {
    JobV2Command::AddAppointment(AddAppointment {
        job_id: job.id,
        window,
        estimated_minutes: Some(60),
        lead: Some(lead.id),
        helpers: vec![],
        sla_override: None,
        planned_start: None,
        expected_version: None,
    })
}

fn field(schedule: &JobSchedule, k: usize, action: FieldMove) -> JobV2Command {
    JobV2Command::MoveAppointment(MoveAppointment {
        appointment_id: schedule.appointments[k].id,
        action,
        reason: None,
        expected_version: None,
        device: None,
    })
}

fn hours(from: DateTime<Utc>, a: i64, b: i64) -> TimeWindow {
    TimeWindow::parse(from + Duration::hours(a), from + Duration::hours(b)).expect("window")
}

async fn sla_events(services: &Services, org: &Org, job: &Job) -> usize {
    services
        .job_history(&org.caller, job.id)
        .await
        .expect("history")
        .schedule_events
        .iter()
        .filter(|e| e.kind == "sla_breached")
        .count()
}

async fn an_sla_breach_is_recorded_once_across_processes_and_a_restart(fx: Fixture) {
    let start = truncate_micros(Utc::now());
    let clock = Arc::new(ManualClock(Mutex::new(start)));
    let first = process(&fx, &clock).await;
    let second = process(&fx, &clock).await;
    let org = fx.org("Timely").await;
    let c = &org.caller;
    ensure_ready(&first, c).await;
    let tech: Technician = ok(&first, c, new_technician("Sam", None, &["plumbing"])).await;
    let tech = ready(&first, c, &tech).await;

    // Waiting: nobody is booked. Reached: on site before its deadline. Cancelled: called off.
    let waiting = requested_job(&first, c).await;
    let reached = requested_job(&first, c).await;
    let cancelled = requested_job(&first, c).await;
    let booked: JobSchedule = ok(&first, c, add(&reached, hours(start, 1, 3), &tech)).await;
    for action in [
        FieldMove::Dispatch,
        FieldMove::StartTravel,
        FieldMove::Arrive,
    ] {
        let _: JobSchedule = ok(&first, c, field(&booked, 0, action)).await;
    }
    let _: Job = ok(&first, c, set_status(cancelled.id, JobStatus::Cancelled)).await;

    // Before the deadline nothing is breached.
    assert_eq!(first.fire_due_timers().await.expect("pass"), 0);

    // Past it, two processes fire at once: one breach, for the waiting job only.
    clock.set(waiting.sla_deadline.max(cancelled.sla_deadline) + Duration::minutes(1));
    let (x, y) = tokio::join!(first.fire_due_timers(), second.fire_due_timers());
    x.expect("first pass");
    y.expect("second pass");
    let breaches = |services: Services| async move {
        services
            .outbox(c)
            .await
            .expect("outbox")
            .into_iter()
            .filter(|(kind, _)| kind == "sla_breached")
            .map(|(_, payload)| payload["jobId"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        breaches(first.clone()).await,
        [waiting.id.to_string()],
        "one breach, for the job nobody reached"
    );
    assert_eq!(sla_events(&first, &org, &waiting).await, 1);
    assert_eq!(sla_events(&first, &org, &reached).await, 0);
    let seen = first.job_schedule(c, waiting.id).await.expect("job");
    assert_eq!(seen.sla_breached_at, Some(clock.now()));

    // A restarted process finds nothing left to do; a timer row put back (a crash before the
    // pass removed it) replays the recorded check and repeats nothing.
    drop(first);
    let third = process(&fx, &clock).await;
    assert_eq!(third.fire_due_timers().await.expect("pass"), 0);
    let put_back = reset_timer(&fx, &format!("job_sla/{}", waiting.id)).await;
    assert_eq!(put_back, 0, "the fired timer was removed");
    insert_timer(&fx, &org, &format!("job_sla/{}", waiting.id)).await;
    assert_eq!(third.fire_due_timers().await.expect("pass"), 1);
    assert_eq!(breaches(third.clone()).await.len(), 1, "still one breach");
    assert_eq!(sla_events(&third, &org, &waiting).await, 1);
}

async fn a_missed_window_is_recorded_once_and_rescheduling_or_arriving_disarms_it(fx: Fixture) {
    let start = truncate_micros(Utc::now());
    let clock = Arc::new(ManualClock(Mutex::new(start)));
    let services = process(&fx, &clock).await;
    let org = fx.org("Windows").await;
    let c = &org.caller;
    ensure_ready(&services, c).await;
    let tech: Technician = ok(&services, c, new_technician("Lou", None, &["plumbing"])).await;
    let tech = ready(&services, c, &tech).await;
    let moved = requested_job(&services, c).await;
    let arrived = requested_job(&services, c).await;
    let booked: JobSchedule = ok(&services, c, add(&moved, hours(start, 1, 3), &tech)).await;
    let on_site: JobSchedule = ok(&services, c, add(&arrived, hours(start, 4, 5), &tech)).await;
    for action in [
        FieldMove::Dispatch,
        FieldMove::StartTravel,
        FieldMove::Arrive,
    ] {
        let _: JobSchedule = ok(&services, c, field(&on_site, 0, action)).await;
    }
    // Held once the crew arrived (waiting for parts): still not a missed window.
    let _: JobSchedule = ok(
        &services,
        c,
        JobV2Command::MoveAppointment(MoveAppointment {
            appointment_id: on_site.appointments[0].id,
            action: FieldMove::Hold,
            reason: Some(hestami_core::text::Reason::parse("parts").expect("reason")),
            expected_version: None,
            device: None,
        }),
    )
    .await;
    // Rescheduled before its first window closed: the first window's check never fires.
    let later: JobSchedule = ok(
        &services,
        c,
        JobV2Command::RescheduleAppointment(RescheduleAppointment {
            appointment_id: booked.appointments[0].id,
            window: hours(start, 6, 8),
            sla_override: None,
            planned_start: None,
            expected_version: Some(booked.appointments[0].version),
        }),
    )
    .await;
    assert_eq!(later.appointments[0].status, AppointmentStatus::Scheduled);
    let missed = |services: Services| async move {
        services
            .outbox(c)
            .await
            .expect("outbox")
            .into_iter()
            .filter(|(kind, _)| kind == "appointment_window_missed")
            .count()
    };
    clock.set(start + Duration::hours(5) + Duration::minutes(1));
    services.fire_due_timers().await.expect("pass");
    assert_eq!(
        missed(services.clone()).await,
        0,
        "rescheduled, and arrived"
    );

    // Past the new window with nobody there: recorded once.
    clock.set(start + Duration::hours(8) + Duration::minutes(1));
    services.fire_due_timers().await.expect("pass");
    services.fire_due_timers().await.expect("again");
    assert_eq!(missed(services.clone()).await, 1);
    let history = services.job_history(c, moved.id).await.expect("history");
    let kinds: Vec<&str> = history
        .schedule_events
        .iter()
        .map(|e| e.kind.as_str())
        .collect();
    assert!(kinds.contains(&"window_missed"), "{kinds:?}");
}

async fn jobs_without_an_sla_timer_get_one_when_the_timers_start(fx: Fixture) {
    let start = truncate_micros(Utc::now());
    let clock = Arc::new(ManualClock(Mutex::new(start)));
    let services = process(&fx, &clock).await;
    let org = fx.org("Upgraded").await;
    let c = &org.caller;
    let older = requested_job(&services, c).await;
    // A job from before SLA timers existed: its row is gone.
    let name = format!("job_sla/{}", older.id);
    assert_eq!(delete_timer(&fx, &name).await, 1);
    services.ensure_timers().await.expect("timers");
    services.ensure_timers().await.expect("again: nothing new");
    clock.set(older.sla_deadline + Duration::minutes(1));
    services.fire_due_timers().await.expect("pass");
    assert_eq!(
        sla_events(&services, &org, &older).await,
        1,
        "watched after all"
    );
    // A breached job is not given its timer again.
    services.ensure_timers().await.expect("timers");
    assert_eq!(delete_timer(&fx, &name).await, 0);
}

/// Deletes a timer row as the owner; how many rows it removed.
async fn delete_timer(fx: &Fixture, name: &str) -> u64 {
    owner_execute(
        fx,
        "DELETE FROM timers WHERE name = $1",
        &[Bind::Text(name)],
    )
    .await
}

/// Sets a timer's due time far in the past, as the owner; how many rows it touched.
async fn reset_timer(fx: &Fixture, name: &str) -> u64 {
    owner_execute(
        fx,
        "UPDATE timers SET due_at = $1 WHERE name = $2",
        &[Bind::LongAgo, Bind::Text(name)],
    )
    .await
}

/// Puts a timer row back, due long ago, as the owner.
async fn insert_timer(fx: &Fixture, org: &Org, name: &str) -> u64 {
    owner_execute(
        fx,
        "INSERT INTO timers (due_at, name, organization_id) VALUES ($1, $2, $3)",
        &[
            Bind::LongAgo,
            Bind::Text(name),
            Bind::Id(org.id().as_uuid()),
        ],
    )
    .await
}

/// A value bound to an owner statement.
enum Bind<'a> {
    /// Ten years ago.
    LongAgo,
    Text(&'a str),
    Id(uuid::Uuid),
}

/// Runs `sql` as the database owner (past row-level security); how many rows it touched.
async fn owner_execute(fx: &Fixture, sql: &str, binds: &[Bind<'_>]) -> u64 {
    let long_ago = Utc::now() - Duration::days(3650);
    match fx.kind {
        Kind::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&fx.db.owner_url)
                .await
                .expect("connect");
            let mut q = sqlx::query(sql);
            for b in binds {
                q = match b {
                    Bind::LongAgo => {
                        q.bind(long_ago.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
                    }
                    Bind::Text(t) => q.bind(*t),
                    Bind::Id(id) => q.bind(*id),
                };
            }
            let n = q.execute(&pool).await.expect("execute").rows_affected();
            pool.close().await;
            n
        }
        Kind::Postgres => {
            let pool = sqlx::PgPool::connect(&fx.db.owner_url)
                .await
                .expect("connect");
            let mut q = sqlx::query(sql);
            for b in binds {
                q = match b {
                    Bind::LongAgo => q.bind(long_ago),
                    Bind::Text(t) => q.bind(*t),
                    Bind::Id(id) => q.bind(*id),
                };
            }
            let n = q.execute(&pool).await.expect("execute").rows_affected();
            pool.close().await;
            n
        }
    }
}

/// The daily reorder pass, fired by two processes at once and again later the same day, drafts
/// one purchase order per preferred supplier and one replenishment transfer for the truck; the
/// next day orders nothing more (what was ordered is on its way), and an order called off is
/// ordered again the day after.
async fn the_reorder_pass_drafts_once_a_day_across_processes(fx: Fixture) {
    use hestami_store::app::inventory::InventoryCommand as V;
    use hestami_store::app::procurement::{OrderFilter, ProcurementCommand as P};
    let start = truncate_micros(Utc::now());
    let clock = Arc::new(ManualClock(Mutex::new(start)));
    let first = process(&fx, &clock).await;
    let second = process(&fx, &clock).await;
    let org = fx.org("Reorders").await;
    let c = &org.caller;
    let tech: Technician = ok(&first, c, new_technician("Sam", None, &["plumbing"])).await;
    let v = |procedure: &str, input: serde_json::Value| -> V {
        from_json(serde_json::json!({ "procedure": procedure, "input": input }))
    };
    let p = |procedure: &str, input: serde_json::Value| -> P {
        from_json(serde_json::json!({ "procedure": procedure, "input": input }))
    };
    let mut items = Vec::new();
    for (name, sku) in [
        ("Pipe", "P-1"),
        ("Valve", "V-1"),
        ("Filter", "F-1"),
        ("Tape", "T-1"),
    ] {
        let item: hestami_core::pricebook::PricebookItem = ok(
            &first,
            c,
            hestami_store::app::pricebook::PricebookCommand::CreateItem(from_json(serde_json::json!({
                "name": name,
                "details": { "kind": "material", "sku": sku, "unit": "each", "cost": usd("2.00"),
                             "pricing": { "rule": "explicit", "price": usd("5.00") } }
            }))),
        )
        .await;
        items.push(item.id);
    }
    let [pipe, valve, filter, tape] = [items[0], items[1], items[2], items[3]];
    let warehouse: serde_json::Value = ok(
        &first,
        c,
        v(
            "inventory/v1/createLocation",
            serde_json::json!({ "kind": "warehouse", "name": "Main", "technicianId": null, "allowNegative": false }),
        ),
    )
    .await;
    let truck: serde_json::Value = ok(
        &first,
        c,
        v(
            "inventory/v1/createLocation",
            serde_json::json!({ "kind": "truck", "name": "Van", "technicianId": tech.id, "allowNegative": false }),
        ),
    )
    .await;
    let supplier = |name: &str| {
        p(
            "inventory/v1/createSupplier",
            serde_json::json!({ "name": name, "contactName": null, "email": "orders@example.com",
                                "phone": null, "paymentTermsDays": 30 }),
        )
    };
    let x: serde_json::Value = ok(&first, c, supplier("Ferguson")).await;
    let y: serde_json::Value = ok(&first, c, supplier("Grainger")).await;
    for (supplier, item, pack) in [(&x, pipe, Some("6")), (&x, valve, None), (&y, filter, None)] {
        let _: serde_json::Value = ok(
            &first,
            c,
            p(
                "inventory/v1/setSupplierItem",
                serde_json::json!({ "supplierId": supplier["id"], "itemId": item, "partNumber": null,
                                    "packSize": pack, "lastPrice": null, "leadTimeDays": 3, "preferred": true }),
            ),
        )
        .await;
    }
    for (item, location, min, max, source) in [
        (pipe, &warehouse, "5", "10", None),
        (valve, &warehouse, "2", "4", None),
        (filter, &warehouse, "1", "3", None),
        (tape, &truck, "2", "5", Some(&warehouse)),
    ] {
        let _: serde_json::Value = ok(
            &first,
            c,
            p(
                "inventory/v1/setReorderPoint",
                serde_json::json!({ "itemId": item, "locationId": location["id"],
                                    "level": { "min": min, "max": max },
                                    "sourceLocationId": source.map(|s| &s["id"]) }),
            ),
        )
        .await;
    }
    let page = || hestami_store::app::PageRequest::parse(Some(50), None).expect("page");
    let orders = |services: Services| async move {
        services
            .purchase_orders(c, OrderFilter::default(), page())
            .await
            .expect("orders")
            .items
    };
    let drafted_transfers = |services: Services| async move {
        services
            .inventory_transfers(c, None, page())
            .await
            .expect("transfers")
            .items
    };

    // The next morning, two processes fire at once.
    clock.set(start + Duration::hours(25));
    let (a, b) = tokio::join!(first.fire_due_timers(), second.fire_due_timers());
    a.expect("first pass");
    b.expect("second pass");
    let drafted = orders(first.clone()).await;
    assert_eq!(
        drafted.len(),
        2,
        "one order per preferred supplier: {drafted:?}"
    );
    let lines = |o: &hestami_store::app::procurement::PurchaseOrder| -> Vec<(hestami_core::ids::PricebookItemId, String)> {
        o.lines
            .iter()
            .map(|l| (l.item_id, l.quantity.get().to_string()))
            .collect()
    };
    let of = |supplier: &serde_json::Value| {
        drafted
            .iter()
            .find(|o| o.supplier_id.to_string() == supplier["id"].as_str().unwrap_or_default())
            .expect("an order for the supplier")
            .clone()
    };
    assert_eq!(
        lines(&of(&x)),
        [(pipe, "12".to_owned()), (valve, "4".to_owned())],
        "up to max, in whole packs"
    );
    assert_eq!(lines(&of(&y)), [(filter, "3".to_owned())]);
    assert!(
        drafted
            .iter()
            .all(|o| o.status.as_str() == "draft" && o.reorder_date.is_some())
    );
    let transfers = drafted_transfers(first.clone()).await;
    assert_eq!(transfers.len(), 1);
    assert_eq!(
        (
            transfers[0].item_id,
            transfers[0].quantity.get().to_string()
        ),
        (tape, "5".to_owned())
    );

    // Again the same day, and the next day: nothing more (it is on its way).
    assert_eq!(second.fire_due_timers().await.expect("pass"), 0);
    clock.set(start + Duration::hours(49));
    let (a, b) = tokio::join!(first.fire_due_timers(), second.fire_due_timers());
    a.expect("first pass");
    b.expect("second pass");
    assert_eq!(orders(second.clone()).await.len(), 2);
    assert_eq!(drafted_transfers(second.clone()).await.len(), 1);

    // Called off: the day after, it is ordered again.
    let _: serde_json::Value = ok(
        &first,
        c,
        p(
            "inventory/v1/cancelPurchaseOrder",
            serde_json::json!({ "purchaseOrderId": of(&y).id, "reason": "wrong supplier" }),
        ),
    )
    .await;
    clock.set(start + Duration::hours(73));
    let (a, b) = tokio::join!(first.fire_due_timers(), second.fire_due_timers());
    a.expect("first pass");
    b.expect("second pass");
    let after = orders(first.clone()).await;
    assert_eq!(after.len(), 3, "the called-off order is drafted again");
    assert_eq!(lines(&after[2]), [(filter, "3".to_owned())]);
}
