//! Time tracking over HTTP, on SQLite and on PostgreSQL: a technician punches a week from the
//! field (with the device's times), the timesheet splits regular and overtime by the
//! organization's rule, the week is submitted and approved, and a later punch into it needs a
//! reason and is recorded.
#![allow(clippy::unwrap_used)]

mod support;

use chrono::{Datelike, Duration, NaiveDate, TimeZone};
use serde_json::{Value, json};

use hestami::core::org::Role;
use support::{Tenant, TestServer, key};

both!(
    a_week_is_punched_split_submitted_approved_and_reopened_with_a_reason,
    each_visit_counts_its_travel_and_time_on_site_by_the_devices_clock,
);

/// Last week's Monday in Chicago (the fixture organization's zone): a week wholly past.
fn last_monday() -> NaiveDate {
    let today = chrono::Utc::now()
        .with_timezone(&chrono_tz::America::Chicago)
        .date_naive();
    today - Duration::days(i64::from(today.weekday().num_days_from_monday()) + 7)
}

fn local(day: NaiveDate, hour: u32, minute: u32) -> String {
    chrono_tz::America::Chicago
        .from_local_datetime(&day.and_hms_opt(hour, minute, 0).unwrap())
        .single()
        .unwrap()
        .with_timezone(&chrono::Utc)
        .to_rfc3339()
}

async fn punch(s: &TestServer, who: &Tenant, tech: &Value, kind: &str, at: &str) -> support::Reply {
    s.call_as(
        who,
        "technician/v1/punch",
        json!({ "idempotencyKey": key(), "technicianId": tech["id"], "kind": kind,
                "device": { "deviceTime": at } }),
    )
    .await
}

async fn a_week_is_punched_split_submitted_approved_and_reopened_with_a_reason(s: TestServer) {
    let f = s.fixture().await;
    let ana = f.tech.clone();
    let token = s.member(&s.a, "ana@a.example", Role::Technician).await;
    let me = Tenant {
        token,
        ..s.a.clone()
    };
    s.link(&me, &ana).await;
    let monday = last_monday();
    let tuesday = monday + Duration::days(1);
    // Monday: 07:00 to 17:30 with a 30-minute lunch (10 h worked); Tuesday 08:00 to 16:00.
    for (kind, at) in [
        ("clock_in", local(monday, 7, 0)),
        ("break_start", local(monday, 12, 0)),
        ("break_end", local(monday, 12, 30)),
        ("clock_out", local(monday, 17, 30)),
        ("clock_in", local(tuesday, 8, 0)),
        ("clock_out", local(tuesday, 16, 0)),
    ] {
        let punched = punch(&s, &me, &ana, kind, &at).await.ok();
        assert_eq!(punched["week"], json!(monday.to_string()));
    }
    // The clock refuses what cannot follow, and what is earlier than the last punch.
    punch(&s, &me, &ana, "clock_out", &local(tuesday, 17, 0))
        .await
        .assert_error(409, "PUNCH_NOT_ALLOWED");
    punch(&s, &me, &ana, "clock_in", &local(tuesday, 15, 0))
        .await
        .assert_error(409, "PUNCH_OUT_OF_ORDER");

    let week = json!({ "week": monday.to_string() });
    let sheet = s
        .call_as(&me, "technician/v1/timesheet", week.clone())
        .await
        .ok();
    assert_eq!(sheet["status"], "open");
    assert_eq!(sheet["clock"], "off");
    let day =
        |sheet: &Value, n: usize, what: &str| sheet["days"][n]["minutes"][what].as_i64().unwrap();
    assert_eq!(day(&sheet, 0, "workedMinutes"), 600);
    assert_eq!(day(&sheet, 0, "breakMinutes"), 30);
    assert_eq!(day(&sheet, 0, "regularMinutes"), 480);
    assert_eq!(day(&sheet, 0, "overtimeMinutes"), 120);
    assert_eq!(day(&sheet, 1, "workedMinutes"), 480);
    assert_eq!(sheet["total"]["workedMinutes"], 1080);
    assert_eq!(sheet["total"]["overtimeMinutes"], 120);
    assert_eq!(sheet["punches"].as_array().unwrap().len(), 6);

    // A weekly-only rule: Monday's ten hours are all regular.
    s.mutate(
        "technician/v1/setOvertimeRule",
        json!({ "dailyMinutes": null, "weeklyMinutes": 2400 }),
    )
    .await;
    let weekly = s
        .call(
            "technician/v1/timesheet",
            json!({ "technicianId": ana["id"], "week": monday.to_string() }),
        )
        .await
        .ok();
    assert_eq!(day(&weekly, 0, "overtimeMinutes"), 0);
    s.call(
        "technician/v1/setOvertimeRule",
        json!({ "idempotencyKey": key(), "dailyMinutes": 0, "weeklyMinutes": 2400 }),
    )
    .await
    .assert_error(400, "VALIDATION_FAILED");

    // Submitted by her, approved by the owner (not by her).
    let change = |version: i64| {
        json!({ "idempotencyKey": key(), "technicianId": ana["id"], "week": monday.to_string(),
                "expectedVersion": version })
    };
    let submitted = s
        .call_as(&me, "technician/v1/submitTimesheet", change(0))
        .await
        .ok();
    assert_eq!(
        (submitted["status"].as_str(), submitted["version"].as_i64()),
        (Some("submitted"), Some(1))
    );
    s.call_as(&me, "technician/v1/approveTimesheet", change(1))
        .await
        .assert_error(403, "FORBIDDEN");
    s.call("technician/v1/approveTimesheet", change(0))
        .await
        .assert_error(409, "VERSION_CONFLICT");
    let approved = s
        .call("technician/v1/approveTimesheet", change(1))
        .await
        .ok();
    assert_eq!(approved["status"], "approved");

    // A forgotten Wednesday morning: into an approved week only with a reason, which reopens it
    // and is recorded with who and when.
    let wednesday = monday + Duration::days(2);
    punch(&s, &me, &ana, "clock_in", &local(wednesday, 8, 0))
        .await
        .assert_error(409, "TIMESHEET_APPROVED");
    s.call_as(
        &me,
        "technician/v1/punch",
        json!({ "idempotencyKey": key(), "technicianId": ana["id"], "kind": "clock_in",
                "device": { "deviceTime": local(wednesday, 8, 0) },
                "reason": "Forgot to clock in at the supply house" }),
    )
    .await
    .ok();
    punch(&s, &me, &ana, "clock_out", &local(wednesday, 9, 0))
        .await
        .ok();
    let reopened = s
        .call_as(&me, "technician/v1/timesheet", week.clone())
        .await
        .ok();
    assert_eq!(reopened["status"], "open");
    let events: Vec<&str> = reopened["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(events, vec!["submitted", "approved", "reopened"]);
    assert_eq!(
        reopened["events"][2]["reason"],
        "Forgot to clock in at the supply house"
    );
    assert_eq!(day(&reopened, 2, "workedMinutes"), 60);

    // Others' timesheets are not hers; another organization's are not found.
    let bob = s
        .mutate(
            "technician/v1/create",
            json!({ "name": "Bob", "trades": ["plumbing"] }),
        )
        .await;
    s.call_as(
        &me,
        "technician/v1/timesheet",
        json!({ "technicianId": bob["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    punch(&s, &me, &bob, "clock_in", &local(wednesday, 10, 0))
        .await
        .assert_error(404, "NOT_FOUND");
    let b = s.new_tenant("Org B", "owner-b@example.com").await;
    s.call_as(
        &b,
        "technician/v1/timesheet",
        json!({ "technicianId": ana["id"] }),
    )
    .await
    .assert_error(404, "NOT_FOUND");
}

async fn each_visit_counts_its_travel_and_time_on_site_by_the_devices_clock(s: TestServer) {
    let f = s.fixture().await;
    let me = Tenant {
        token: s.member(&s.a, "ana@a.example", Role::Technician).await,
        ..s.a.clone()
    };
    s.link(&me, &f.tech).await;
    let j = s.job(&f).await;
    let now = chrono::Utc::now();
    let window = (now + Duration::hours(1), now + Duration::hours(3));
    let schedule = s
        .mutate(
            "job/v2/addAppointment",
            json!({ "jobId": j["id"], "windowStart": window.0.to_rfc3339(),
                    "windowEnd": window.1.to_rfc3339(), "leadTechnicianId": f.tech["id"] }),
        )
        .await;
    let visit = &schedule["appointments"][0];
    s.mutate(
        "job/v2/moveAppointment",
        json!({ "appointmentId": visit["id"], "action": "dispatch" }),
    )
    .await;
    // Made offline over the last two hours, sent now: the device's times count.
    let ago = |minutes: i64| (now - Duration::minutes(minutes)).to_rfc3339();
    for (action, at) in [
        ("start_travel", ago(120)),
        ("arrive", ago(95)),
        ("finish", ago(5)),
    ] {
        s.call_as(
            &me,
            "job/v2/moveAppointment",
            json!({ "idempotencyKey": key(), "appointmentId": visit["id"], "action": action,
                    "device": { "deviceTime": at } }),
        )
        .await
        .ok();
    }
    let local_start = (now - Duration::minutes(120))
        .with_timezone(&chrono_tz::America::Chicago)
        .date_naive();
    let sheet = s
        .call_as(
            &me,
            "technician/v1/timesheet",
            json!({ "week": local_start.to_string() }),
        )
        .await
        .ok();
    let visits = sheet["visits"].as_array().unwrap();
    assert_eq!(visits.len(), 1, "{sheet}");
    assert_eq!(visits[0]["appointmentId"], visit["id"]);
    assert_eq!(visits[0]["travelMinutes"], 25);
    assert_eq!(visits[0]["onSiteMinutes"], 90);
    assert_eq!(visits[0]["date"], local_start.to_string());
}
