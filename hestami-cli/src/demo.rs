//! `hestami demo`: a newcomer's first look. A throw-away SQLite database, the real server on a
//! loopback port, and a job driven over HTTP from creation through an estimate, the work, an
//! invoice and its payments to closed.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use hestami_core::org::{Currency, OrgKind, TimeZone};
use hestami_core::text::{Email, OrgName};
use hestami_store::app::Services;
use hestami_store::directory::NewOrganization;
use hestami_store::engine::EngineConfig;
use hestami_store::{Store, StoreOptions};

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    org: String,
}

impl Client {
    async fn call(&self, procedure: &str, mut body: Value) -> Result<Value> {
        if procedure_mutates(procedure) {
            body["idempotencyKey"] = json!(uuid::Uuid::new_v4());
        }
        let response = self
            .http
            .post(format!("{}/api/v1/rpc/{procedure}", self.base))
            .bearer_auth(&self.token)
            .header("X-Organization-Id", &self.org)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("calling {procedure}"))?;
        let status = response.status();
        let value: Value = response
            .json()
            .await
            .with_context(|| format!("reading {procedure}'s answer"))?;
        if !status.is_success() {
            bail!("{procedure} answered {status}: {value}");
        }
        Ok(value)
    }
}

fn procedure_mutates(procedure: &str) -> bool {
    hestami_http::procedures()
        .iter()
        .any(|p| p.path() == procedure && p.workflow.is_some())
}

/// Calls a procedure that must be refused, and prints the refusal with its reasons.
async fn refusal(c: &Client, procedure: &str, body: Value) -> Result<()> {
    match c.call(procedure, body).await {
        Ok(v) => bail!("{procedure} was expected to be refused, and answered {v}"),
        Err(e) => {
            let text = e.to_string();
            let envelope: Value = text
                .split_once(": ")
                .and_then(|(_, json)| serde_json::from_str(json).ok())
                .unwrap_or(Value::Null);
            let code = envelope["error"]["code"].as_str().unwrap_or(&text);
            let details = &envelope["error"]["details"];
            let reasons = details["reasons"]
                .as_array()
                .or(details["failedRules"].as_array());
            match envelope["error"]["message"].as_str() {
                Some(message) if reasons.is_none() => {
                    println!("refused    {procedure}: {code} ({message})");
                }
                _ => println!("refused    {procedure}: {code}"),
            }
            for reason in reasons.into_iter().flatten() {
                println!(
                    "           - {}: {}",
                    reason["code"].as_str().unwrap_or_default(),
                    reason["message"].as_str().unwrap_or_default()
                );
            }
            Ok(())
        }
    }
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

pub(crate) async fn run() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("hestami-demo-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let url = format!("sqlite://{}", dir.join("demo.db").display());
    let result = drive(&url).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn drive(url: &str) -> Result<()> {
    Store::migrate(url).await?;
    let store = Store::connect(url, StoreOptions::default()).await?;
    let created = store
        .create_organization(NewOrganization {
            name: OrgName::parse("Demo Plumbing & Heating").map_err(anyhow::Error::msg)?,
            kind: OrgKind::Contractor,
            time_zone: TimeZone::parse("America/Chicago").map_err(anyhow::Error::msg)?,
            currency: Currency::parse("USD").map_err(anyhow::Error::msg)?,
            owner_email: Email::parse("owner@demo.example").map_err(anyhow::Error::msg)?,
        })
        .await?;
    let services = Services::new(store, EngineConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let router = hestami_http::router(hestami_http::AppState::new(
        services.clone(),
        hestami_http::ServerConfig::default(),
    ));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hestami_http::serve(listener, router, async {
        let _ = stopped.await;
    }));
    println!("Hestami demo: a throw-away SQLite database and the real server at {base}\n");
    let client = Client {
        http: reqwest::Client::new(),
        base,
        token: created.token,
        org: created.organization_id.to_string(),
    };
    let outcome = match story(&client).await {
        Ok(()) => agreement(&client, &services).await,
        Err(e) => Err(e),
    };
    let _ = stop.send(());
    let _ = server.await;
    services.store().close().await;
    outcome
}

async fn story(c: &Client) -> Result<()> {
    let customer = c
        .call(
            "customer/v1/create",
            json!({ "name": "Ada Lovelace", "email": "ada@example.com" }),
        )
        .await?;
    println!(
        "customer   {} {}",
        text(&customer, "id"),
        text(&customer, "name")
    );
    let property = c
        .call(
            "customer/v1/addProperty",
            json!({ "customerId": customer["id"], "address": { "line1": "12 Analytical Way", "city": "Chicago",
                    "region": "IL", "postalCode": "60601", "country": "US" }, "location": { "lat": 41.8857, "lon": -87.6229 } }),
        )
        .await?;
    println!(
        "property   {} {}",
        text(&property, "id"),
        property["address"]["line1"].as_str().unwrap_or_default()
    );
    let tech = c
        .call(
            "technician/v1/create",
            json!({ "name": "Grace Hopper", "trades": ["plumbing", "gas_fitting"] }),
        )
        .await?;
    println!("technician {} {}", text(&tech, "id"), text(&tech, "name"));
    let job = c
        .call(
            "job/v1/create",
            json!({ "customerId": customer["id"], "propertyId": property["id"], "trade": "plumbing",
                    "priority": "urgent", "summary": "Leaking water heater" }),
        )
        .await?;
    println!(
        "job        {} {} (respond by {})\n",
        text(&job, "id"),
        text(&job, "summary"),
        text(&job, "slaDeadline")
    );
    let job_id = job["id"].clone();
    let items = pricebook(c).await?;
    estimate(c, &job_id, &items).await?;
    // Tomorrow 16:00-18:00 UTC: mid-morning in Chicago, inside the shifts set below.
    let start = (chrono::Utc::now() + chrono::Duration::days(1))
        .date_naive()
        .and_hms_opt(16, 0, 0)
        .map(|t| t.and_utc())
        .unwrap_or_else(chrono::Utc::now);
    let schedule = json!({ "jobId": job_id, "windowStart": start, "windowEnd": start + chrono::Duration::hours(2) });

    // A new contractor is not allowed to work yet: every reason comes back at once.
    refusal(c, "job/v1/schedule", schedule.clone()).await?;
    let today = chrono::Utc::now().date_naive();
    let license = c
        .call(
            "contractor/v1/addLicense",
            json!({ "trade": "plumbing", "jurisdiction": { "country": "US", "region": "IL" }, "number": "PL-055-000123",
                    "expiresOn": today - chrono::Duration::days(3) }),
        )
        .await?;
    c.call(
        "contractor/v1/verifyLicense",
        json!({ "licenseId": license["id"], "status": "verified" }),
    )
    .await?;
    c.call(
        "contractor/v1/addInsurance",
        json!({ "kind": "general_liability", "carrier": "Prairie Mutual", "policyNumber": "GL-2031-77",
                "perOccurrenceLimit": "1000000.00", "aggregateLimit": "2000000.00",
                "effectiveOn": today - chrono::Duration::days(30), "expiresOn": today + chrono::Duration::days(335) }),
    )
    .await?;
    c.call(
        "contractor/v1/setServiceAreas",
        json!({ "areas": [{ "kind": "postalCodes", "postalCodes": ["60601", "60602", "60603"] }] }),
    )
    .await?;
    println!(
        "added a plumbing licence (which expired three days ago), liability insurance and a service area"
    );
    refusal(c, "job/v1/schedule", schedule.clone()).await?;
    let renewed = c
        .call(
            "contractor/v1/updateLicense",
            json!({ "licenseId": license["id"], "expiresOn": today + chrono::Duration::days(700) }),
        )
        .await?;
    c.call(
        "contractor/v1/verifyLicense",
        json!({ "licenseId": renewed["id"], "status": "verified" }),
    )
    .await?;
    println!("renewed and re-verified the licence\n");
    c.call("job/v1/schedule", schedule).await?;
    println!("scheduled for {}\n", local(&json!(start)));

    // The technician has no shifts yet: assignment runs every eligibility rule.
    refusal(
        c,
        "dispatch/v1/assignTech",
        json!({ "jobId": job_id, "technicianId": tech["id"] }),
    )
    .await?;
    seven_to_seven(c, &tech, today).await?;
    c.call(
        "technician/v1/setSkills",
        json!({ "technicianId": tech["id"], "skills": [{ "trade": "plumbing", "level": 4 }] }),
    )
    .await?;
    let ranked = c
        .call("dispatch/v1/eligibleTechs", json!({ "jobId": job_id }))
        .await?;
    for candidate in ranked["candidates"].as_array().into_iter().flatten() {
        println!(
            "candidate  {} eligible={} {}",
            candidate["technicianId"].as_str().unwrap_or_default(),
            candidate["eligible"],
            candidate["reasons"]
        );
    }
    c.call(
        "dispatch/v1/assignTech",
        json!({ "jobId": job_id, "technicianId": tech["id"] }),
    )
    .await?;
    println!("assigned {}\n", text(&tech, "name"));
    for status in [
        "dispatched",
        "en_route",
        "on_site",
        "in_progress",
        "completed",
    ] {
        c.call(
            "job/v1/updateStatus",
            json!({ "jobId": job_id, "status": status }),
        )
        .await?;
    }
    println!("visit      dispatched → en_route → on_site → in_progress → completed");
    // A completed job cannot go back on the road.
    refusal(
        c,
        "job/v1/updateStatus",
        json!({ "jobId": job_id, "status": "en_route" }),
    )
    .await?;
    println!();
    bill(c, &job_id).await?;
    let timeline = c
        .call("job/v1/timeline", json!({ "jobId": job_id }))
        .await?;
    println!("\ntimeline of job {}", job_id.as_str().unwrap_or_default());
    for event in timeline["events"].as_array().into_iter().flatten() {
        let what = match event["kind"].as_str() {
            Some("transitioned") => event["action"].as_str().unwrap_or_default().to_owned(),
            Some(kind) => kind.to_owned(),
            None => String::new(),
        };
        println!(
            "  v{:<2} {:<28} {:<12} → {:<12} {}",
            event["version"].as_i64().unwrap_or_default(),
            local(&event["at"]),
            event["from"].as_str().unwrap_or("-"),
            event["to"].as_str().unwrap_or_default(),
            what
        );
    }
    let final_job = c.call("job/v1/get", json!({ "jobId": job_id })).await?;
    println!(
        "\nfinal state: {} (version {}); next: {}",
        text(&final_job, "status"),
        final_job["version"],
        final_job["allowedNext"]
    );
    dispatch_day(c, &customer, &property, &tech, start).await?;
    optimize_day(c, &customer).await
}

/// A maintenance agreement: a plan, a customer's agreement on it signed today, and the timer
/// pass (`hestami serve` runs it every minute, and at once after a signature) generating its
/// first visit and billing its first month.
async fn agreement(c: &Client, services: &Services) -> Result<()> {
    println!("\n— a maintenance agreement —\n");
    let plan = c
        .call(
            "maintenance/v1/createPlan",
            json!({ "name": "Water heater care",
                    "visits": [{ "name": "Flush and inspect", "trade": "plumbing",
                                 "rule": { "kind": "monthly_on_day", "every": 6, "day": 28 },
                                 "window": { "start": "09:00", "end": "11:00" }, "durationMinutes": 60 }],
                    "benefits": { "discountPercent": "10", "priority": "urgent", "waiveTripFee": true },
                    "prices": { "monthly": "12.00", "annually": "129.00" } }),
        )
        .await?;
    let customer = c
        .call(
            "customer/v1/create",
            json!({ "name": "Charles Babbage", "email": "charles@example.com" }),
        )
        .await?;
    let property = c
        .call(
            "customer/v1/addProperty",
            json!({ "customerId": customer["id"], "address": { "line1": "1 Difference Engine Row",
                    "city": "Chicago", "region": "IL", "postalCode": "60601", "country": "US" } }),
        )
        .await?;
    let today = chrono::Utc::now()
        .with_timezone(&chicago_zone()?.tz())
        .date_naive();
    let draft = c
        .call(
            "maintenance/v1/createContract",
            json!({ "customerId": customer["id"], "propertyIds": [property["id"]], "planId": plan["id"],
                    "startDate": today, "termMonths": 12, "billing": "monthly", "autoRenew": true,
                    "leadDays": 35 }),
        )
        .await?;
    let active = c
        .call(
            "maintenance/v1/activate",
            json!({ "agreementId": draft["id"], "signedBy": "Charles Babbage" }),
        )
        .await?;
    println!(
        "agreement  {} on \"{}\": {} from {}, renews on {}, {} {} a month",
        text(&active, "id"),
        text(&plan, "name"),
        text(&active, "status"),
        text(&active, "startDate"),
        text(&active, "renewsOn"),
        text(&active, "price"),
        text(&active, "currency")
    );
    let fired = services.fire_due_timers().await?;
    let visits = c
        .call(
            "maintenance/v1/visits",
            json!({ "agreementId": active["id"] }),
        )
        .await?;
    println!("timer pass: {fired} timers fired");
    for visit in visits["items"].as_array().into_iter().flatten() {
        println!(
            "  visit due {} → job {} ({}), generated {}",
            text(visit, "dueOn"),
            text(visit, "jobId"),
            text(visit, "jobStatus"),
            text(visit, "generatedOn")
        );
    }
    let invoices = c
        .call(
            "maintenance/v1/invoices",
            json!({ "agreementId": active["id"] }),
        )
        .await?;
    for period in invoices["items"].as_array().into_iter().flatten() {
        let invoice = c
            .call(
                "invoice/v1/get",
                json!({ "invoiceId": period["invoiceId"] }),
            )
            .await?;
        println!(
            "  invoice {} for {} to {}: {} ({})",
            text(&invoice, "number"),
            text(period, "periodStart"),
            text(period, "periodEnd"),
            invoice["quote"]["total"].as_str().unwrap_or_default(),
            invoice["quote"]["lines"][0]["description"]
                .as_str()
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// The demo organization's zone.
fn chicago_zone() -> Result<TimeZone> {
    TimeZone::parse("America/Chicago").map_err(anyhow::Error::msg)
}

/// A time the server answered (RFC 3339, in UTC) as the organization reads it: its local date,
/// time and zone in Chicago. Anything else is shown as it came.
fn local(value: &Value) -> String {
    let Some(raw) = value.as_str() else {
        return value.to_string();
    };
    match (chrono::DateTime::parse_from_rfc3339(raw), chicago_zone()) {
        (Ok(t), Ok(zone)) => t
            .with_timezone(&zone.tz())
            .format("%Y-%m-%d %H:%M %Z")
            .to_string(),
        _ => raw.to_owned(),
    }
}

/// `day` in Chicago at `h`:00, as RFC 3339.
fn chicago(day: chrono::NaiveDate, h: u32) -> Result<String> {
    let local = day.and_hms_opt(h, 0, 0).context("an hour of the day")?;
    Ok(hestami_core::schedule::local_to_utc(chicago_zone()?.tz(), local).to_rfc3339())
}

/// The optimizer's side: four technicians and fourteen visits two days out, planned within a
/// second, shown beside a greedy dispatcher's day, and applied.
async fn optimize_day(c: &Client, customer: &Value) -> Result<()> {
    println!("\n— an optimized day —\n");
    let day = (chrono::Utc::now().with_timezone(&chicago_zone()?.tz()) + chrono::Duration::days(2))
        .date_naive();
    let mut techs = Vec::new();
    for (k, name) in [
        "Dorothy Vaughan",
        "Mary Jackson",
        "Annie Easley",
        "Evelyn Boyd",
    ]
    .iter()
    .enumerate()
    {
        let tech = c
            .call(
                "technician/v1/create",
                json!({ "name": name, "trades": ["plumbing"] }),
            )
            .await?;
        seven_to_seven(c, &tech, chrono::Utc::now().date_naive()).await?;
        c.call(
            "technician/v1/setHomeBase",
            json!({ "technicianId": tech["id"],
                    "homeBase": { "lat": 41.80 + 0.05 * k as f64, "lon": -87.75 + 0.04 * (k % 2) as f64 } }),
        )
        .await?;
        techs.push(tech);
    }
    for i in 0..14u32 {
        let (lat, lon) = (
            41.78 + 0.013 * f64::from((i * 7) % 13),
            -87.78 + 0.011 * f64::from((i * 5) % 11),
        );
        let property = c
            .call(
                "customer/v1/addProperty",
                json!({ "customerId": customer["id"], "address": { "line1": format!("{} Lake St", 100 + i),
                        "city": "Chicago", "region": "IL", "postalCode": "60601", "country": "US" },
                        "location": { "lat": lat, "lon": lon } }),
            )
            .await?;
        let job = c
            .call(
                "job/v1/create",
                json!({ "customerId": customer["id"], "propertyId": property["id"], "trade": "plumbing",
                        "priority": "routine", "summary": "Annual service" }),
            )
            .await?;
        let start = 8 + 2 * (i % 4);
        c.call(
            "job/v2/addAppointment",
            json!({ "jobId": job["id"], "windowStart": chicago(day, start)?, "windowEnd": chicago(day, start + 4)?,
                    "estimatedMinutes": 45 + 15 * (i % 3) }),
        )
        .await?;
    }
    let ids: Vec<&Value> = techs.iter().map(|t| &t["id"]).collect();
    let plan = c
        .call(
            "dispatch/v1/optimize",
            json!({ "date": day, "technicianIds": ids, "timeBudgetMs": 1000 }),
        )
        .await?;
    for route in plan["routes"].as_array().into_iter().flatten() {
        let name = techs
            .iter()
            .find(|t| t["id"] == route["technicianId"])
            .map(|t| text(t, "name"))
            .unwrap_or_default();
        println!(
            "  {name:<18} {:.1} km, {:.0} min driving",
            route["travelKm"].as_f64().unwrap_or_default(),
            route["travelMinutes"].as_f64().unwrap_or_default()
        );
        for stop in route["stops"].as_array().into_iter().flatten() {
            let why = match stop["why"]["nextBest"].as_object() {
                Some(n) => format!(
                    "next best +{:.1} km",
                    n["extraKm"].as_f64().unwrap_or_default()
                ),
                None => "nobody else fits".into(),
            };
            println!(
                "    {}  {:>5.1} km leg, slack {:>4.0} min, {why}",
                local(&stop["start"]),
                stop["legKm"].as_f64().unwrap_or_default(),
                stop["slackMinutes"].as_f64().unwrap_or_default()
            );
        }
    }
    println!(
        "\n  {:<10} {:>9} {:>10} {:>9} {:>10}",
        "", "scheduled", "km", "late", "overtime"
    );
    for (what, k) in [("optimized", &plan["kpis"]), ("greedy", &plan["greedy"])] {
        println!(
            "  {what:<10} {:>6}/{:<2} {:>10.1} {:>9} {:>10.0}",
            k["scheduled"].as_u64().unwrap_or_default(),
            k["visits"].as_u64().unwrap_or_default(),
            k["travelKm"].as_f64().unwrap_or_default(),
            k["lateVisits"].as_u64().unwrap_or_default(),
            k["overtimeMinutes"].as_f64().unwrap_or_default()
        );
    }
    let applied = c
        .call("dispatch/v1/applyPlan", json!({ "planId": plan["planId"] }))
        .await?;
    println!(
        "\napplied    {} visit(s) scheduled with their technician and planned start",
        applied["scheduled"].as_array().map_or(0, Vec::len)
    );
    Ok(())
}

/// Shifts from 07:00 to 19:00 every day, from yesterday on.
async fn seven_to_seven(c: &Client, tech: &Value, today: chrono::NaiveDate) -> Result<()> {
    let weekly: Vec<_> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| json!({ "weekday": d, "start": "07:00", "end": "19:00" }))
        .collect();
    c.call(
        "technician/v1/setShifts",
        json!({ "technicianId": tech["id"], "effectiveFrom": today - chrono::Duration::days(1), "weekly": weekly }),
    )
    .await?;
    Ok(())
}

/// The dispatcher's side of the demo's day: a helper, booking slots, a visit with a crew, and
/// the board of that day.
async fn dispatch_day(
    c: &Client,
    customer: &Value,
    property: &Value,
    grace: &Value,
    first_visit: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    println!("\n— the dispatch board —\n");
    let helper = c
        .call(
            "technician/v1/create",
            json!({ "name": "Katherine Johnson", "trades": ["plumbing"] }),
        )
        .await?;
    seven_to_seven(c, &helper, chrono::Utc::now().date_naive()).await?;
    for (tech, lat, lon) in [(grace, 41.9484, -87.6553), (&helper, 41.8240, -87.6710)] {
        c.call(
            "technician/v1/setHomeBase",
            json!({ "technicianId": tech["id"], "homeBase": { "lat": lat, "lon": lon } }),
        )
        .await?;
    }
    let job = c
        .call(
            "job/v1/create",
            json!({ "customerId": customer["id"], "propertyId": property["id"], "trade": "plumbing",
                    "priority": "routine", "summary": "Replace the water heater" }),
        )
        .await?;
    let day = first_visit.date_naive();
    let slots = c
        .call(
            "dispatch/v1/suggestSlots",
            json!({ "jobId": job["id"], "fromDate": day, "lookaheadDays": 2, "count": 3 }),
        )
        .await?;
    for option in slots["options"].as_array().into_iter().flatten() {
        println!(
            "slot       {} → {}  {}  {}",
            local(&option["window"]["start"]),
            local(&option["window"]["end"]),
            option["technicianId"].as_str().unwrap_or_default(),
            option["reasons"]
        );
    }
    // Two hours after the first job's visit, with a crew of two.
    let start = first_visit + chrono::Duration::hours(2);
    let booked = c
        .call(
            "job/v2/addAppointment",
            json!({ "jobId": job["id"], "windowStart": start, "windowEnd": start + chrono::Duration::hours(1),
                    "estimatedMinutes": 45, "leadTechnicianId": grace["id"], "helperIds": [helper["id"]] }),
        )
        .await?;
    println!(
        "booked     {} with a crew of two; job {}",
        local(&json!(start)),
        text(&booked["job"], "status")
    );
    let board = c.call("dispatch/v1/board", json!({ "date": day })).await?;
    println!("\nboard of {day} ({})", text(&board, "timeZone"));
    for row in board["technicians"].as_array().into_iter().flatten() {
        let today = &row["days"][0];
        println!(
            "  {:<18} {} visit(s), {} min on site, {} min travel",
            text(row, "name"),
            today["load"]["visits"],
            today["load"]["bookedMinutes"],
            today["load"]["travelMinutes"]
        );
        for stop in today["stops"].as_array().into_iter().flatten() {
            let leg = match stop["leg"].as_object() {
                Some(l) => format!(
                    "{} km, {} min from {}",
                    l["km"],
                    l["minutes"],
                    l["from"].as_str().unwrap_or_default()
                ),
                None => "no leg".into(),
            };
            println!(
                "    {} → {}  {:<8} {:<9} {:<28} {leg}; flags {}",
                local(&stop["window"]["start"]),
                local(&stop["window"]["end"]),
                text(stop, "role"),
                text(stop, "status"),
                text(stop, "summary"),
                stop["flags"]
            );
        }
    }
    println!(
        "  waiting: {} job(s) without a visit",
        board["unassigned"]["jobs"].as_array().map_or(0, Vec::len)
    );
    Ok(())
}

/// The job's current status.
async fn job_status(c: &Client, job_id: &Value) -> Result<String> {
    let job = c.call("job/v1/get", json!({ "jobId": job_id })).await?;
    Ok(text(&job, "status"))
}

/// A quote's totals on one line: subtotal, tax, total and the discount (if any).
fn totals(quote: &Value) -> String {
    let discount = match quote["discount"].as_str() {
        Some(d) if d.trim_start_matches(['0', '.']).is_empty() => String::new(),
        Some(d) => format!("  ({d} off before tax)"),
        None => String::new(),
    };
    format!(
        "subtotal {:>8}  tax {:>5}  total {:>8}{discount}",
        text(quote, "subtotal"),
        text(quote, "taxTotal"),
        text(quote, "total"),
    )
}

/// Three items (a flat-rate service, a material marked up on cost, a plumber's hourly rate) and
/// Illinois's sales tax on materials, which applies to the demo property in Chicago.
async fn pricebook(c: &Client) -> Result<Items> {
    let service = c
        .call(
            "pricebook/v1/createItem",
            json!({ "name": "Water heater install", "category": "Water heaters",
                    "details": { "kind": "service", "price": "1249.99", "estimatedLaborHours": "4",
                                 "trade": "plumbing" } }),
        )
        .await?;
    let material = c
        .call(
            "pricebook/v1/createItem",
            json!({ "name": "Copper fitting", "details": { "kind": "material", "sku": "cu-12",
                    "unit": "each", "cost": "3.333", "pricing": { "rule": "markup", "percent": "100" } } }),
        )
        .await?;
    let labor = c
        .call(
            "pricebook/v1/createItem",
            json!({ "name": "Plumber", "details": { "kind": "labor", "trade": "plumbing",
                    "rates": [{ "skillLevel": 2, "hourly": "85.00" }],
                    "overtimeMultiplier": "1.5", "afterHoursMultiplier": "2" } }),
        )
        .await?;
    let settings = c
        .call(
            "pricebook/v1/setTaxRates",
            json!({ "rates": [{ "jurisdiction": { "country": "US", "region": "IL" },
                    "name": "Illinois sales tax", "percent": "6.25",
                    "taxable": { "service": false, "material": true, "labor": false,
                                 "equipment": false } }] }),
        )
        .await?;
    println!(
        "pricebook  {} {} flat; {} at cost {} + {} %; {} {}/h at level 2",
        text(&service, "name"),
        service["details"]["price"].as_str().unwrap_or_default(),
        text(&material, "name"),
        material["details"]["cost"].as_str().unwrap_or_default(),
        material["details"]["pricing"]["percent"]
            .as_str()
            .unwrap_or_default(),
        text(&labor, "name"),
        labor["details"]["rates"][0]["hourly"]
            .as_str()
            .unwrap_or_default(),
    );
    let rate = &settings["taxRates"][0];
    println!(
        "tax        {} {} % on materials in US-IL",
        text(rate, "name"),
        text(rate, "percent")
    );
    Ok(Items {
        service: service["id"].clone(),
        material: material["id"].clone(),
        labor: labor["id"].clone(),
    })
}

/// The ids of the demo's pricebook items.
struct Items {
    service: Value,
    material: Value,
    labor: Value,
}

/// Good, better and best for the job, sent; the customer approves Better, and converting hands
/// it to the job as its planned work.
async fn estimate(c: &Client, job_id: &Value, items: &Items) -> Result<()> {
    let good = json!([
        { "itemId": items.service, "quantity": "1" },
        { "itemId": items.material, "quantity": "4" },
    ]);
    let better = json!([
        { "itemId": items.service, "quantity": "1" },
        { "itemId": items.material, "quantity": "10" },
        { "itemId": items.labor, "quantity": "3", "skillLevel": 2 },
    ]);
    let best = json!([
        { "itemId": items.service, "quantity": "1" },
        { "itemId": items.material, "quantity": "10" },
        { "itemId": items.labor, "quantity": "3", "skillLevel": 2, "laborTime": "after_hours" },
    ]);
    let valid_until = chrono::Utc::now() + chrono::Duration::days(14);
    let estimate = c
        .call(
            "estimate/v1/generate",
            json!({ "jobId": job_id, "validUntil": valid_until, "notes": "Includes haul-away",
                    "options": [
                        { "name": "Good", "lines": good },
                        { "name": "Better", "lines": better },
                        { "name": "Best", "lines": best,
                          "discount": { "type": "amount", "amount": "50.00" } },
                    ] }),
        )
        .await?;
    let sent = c
        .call(
            "estimate/v1/send",
            json!({ "estimateId": estimate["id"], "expectedVersion": estimate["version"] }),
        )
        .await?;
    println!(
        "estimate   {} for the job: {} options, {}, valid until {}",
        text(&sent, "id"),
        sent["options"].as_array().map_or(0, Vec::len),
        text(&sent, "status"),
        valid_until.date_naive()
    );
    let options = sent["options"].as_array().cloned().unwrap_or_default();
    for option in &options {
        println!(
            "           {:<7} {} lines  {}",
            text(option, "name"),
            option["quote"]["lines"].as_array().map_or(0, Vec::len),
            totals(&option["quote"])
        );
    }
    let chosen = options
        .iter()
        .find(|o| o["name"] == "Better")
        .context("the estimate has a Better option")?;
    let approved = c
        .call(
            "estimate/v1/approve",
            json!({ "estimateId": sent["id"], "optionId": chosen["id"], "signedBy": "Ada Lovelace",
                    "signature": "typed: Ada Lovelace" }),
        )
        .await?;
    println!(
        "approved   {} ({}), signed by {}",
        text(chosen, "name"),
        chosen["quote"]["total"].as_str().unwrap_or_default(),
        approved["approval"]["signedBy"]
            .as_str()
            .unwrap_or_default()
    );
    let converted = c
        .call(
            "estimate/v1/convertToJob",
            json!({ "estimateId": sent["id"] }),
        )
        .await?;
    let planned = &converted["plannedWork"];
    println!(
        "converted  the {} option is job {}'s planned work ({} lines, {})\n",
        text(planned, "optionName"),
        text(&converted["job"], "id"),
        planned["lines"].as_array().map_or(0, Vec::len),
        text(planned, "total")
    );
    Ok(())
}

/// The invoice from the approved estimate, issued; part paid in cash, a card refused (the demo
/// has no card processor), the rest by cheque; then the job is closed.
async fn bill(c: &Client, job_id: &Value) -> Result<()> {
    let draft = c
        .call(
            "invoice/v1/create",
            json!({ "jobId": job_id, "from": { "from": "approved_estimate" }, "netDays": 15 }),
        )
        .await?;
    let quote = &draft["quote"];
    println!(
        "invoice    draft from the approved estimate: {}",
        totals(quote)
    );
    for tax in quote["taxLines"].as_array().into_iter().flatten() {
        println!(
            "           {} {} % of {} = {}",
            text(tax, "name"),
            text(tax, "percent"),
            text(tax, "taxableBase"),
            text(tax, "tax")
        );
    }
    let issued = c
        .call("invoice/v1/issue", json!({ "invoiceId": draft["id"] }))
        .await?;
    println!(
        "issued     {} on {}, due {}; balance {}; job {}",
        text(&issued, "number"),
        text(&issued, "issueDate"),
        text(&issued, "dueDate"),
        text(&issued, "balance"),
        job_status(c, job_id).await?
    );
    let pay = |amount: &str, method: &str, reference: Option<&str>| {
        json!({ "invoiceId": issued["id"], "amount": amount, "method": method,
                "reference": reference })
    };
    let part = c
        .call("invoice/v1/collectPayment", pay("500.00", "cash", None))
        .await?;
    println!(
        "payment    500.00 cash; balance {}; invoice {}; job {}",
        text(&part, "balance"),
        text(&part, "status"),
        job_status(c, job_id).await?
    );
    let rest = text(&part, "balance");
    refusal(
        c,
        "invoice/v1/collectPayment",
        pay(&rest, "card", Some("tok_visa")),
    )
    .await?;
    let paid = c
        .call(
            "invoice/v1/collectPayment",
            pay(&rest, "check", Some("cheque 1042")),
        )
        .await?;
    println!(
        "payment    {rest} check; balance {}; invoice {}; job {}",
        text(&paid, "balance"),
        text(&paid, "status"),
        job_status(c, job_id).await?
    );
    let closed = c
        .call(
            "job/v1/updateStatus",
            json!({ "jobId": job_id, "status": "closed" }),
        )
        .await?;
    println!("close      job {}", text(&closed, "status"));
    Ok(())
}
