//! `hestami demo`: a newcomer's first look. A throw-away SQLite database, the real server on a
//! loopback port, and a job driven over HTTP from creation to completed.

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
    hestami_http::v1::procedures()
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
            println!(
                "refused    {procedure}: {}",
                envelope["error"]["code"].as_str().unwrap_or(&text)
            );
            let details = &envelope["error"]["details"];
            let reasons = details["reasons"]
                .as_array()
                .or(details["failedRules"].as_array());
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
    let outcome = story(&client).await;
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
    println!("scheduled for {start}\n");

    // The technician has no shifts yet: assignment runs every eligibility rule.
    refusal(
        c,
        "dispatch/v1/assignTech",
        json!({ "jobId": job_id, "technicianId": tech["id"] }),
    )
    .await?;
    let weekly: Vec<_> = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .iter()
        .map(|d| json!({ "weekday": d, "start": "07:00", "end": "19:00" }))
        .collect();
    c.call(
        "technician/v1/setShifts",
        json!({ "technicianId": tech["id"], "effectiveFrom": today - chrono::Duration::days(1), "weekly": weekly }),
    )
    .await?;
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
    // A refusal, to show the envelope: a completed job cannot go back on the road.
    let refusal = c
        .call(
            "job/v1/updateStatus",
            json!({ "jobId": job_id, "status": "en_route" }),
        )
        .await;
    if let Err(e) = refusal {
        println!("refused, as it should be: {e}\n");
    }
    let timeline = c
        .call("job/v1/timeline", json!({ "jobId": job_id }))
        .await?;
    println!("timeline of job {}", job_id.as_str().unwrap_or_default());
    for event in timeline["events"].as_array().into_iter().flatten() {
        let what = match event["kind"].as_str() {
            Some("transitioned") => event["action"].as_str().unwrap_or_default().to_owned(),
            Some(kind) => kind.to_owned(),
            None => String::new(),
        };
        println!(
            "  v{:<2} {:<28} {:<12} → {:<12} {}",
            event["version"],
            event["at"].as_str().unwrap_or_default(),
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
    Ok(())
}
