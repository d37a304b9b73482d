//! Embedding Hestami as a library: no HTTP, just the services over an embedded SQLite file.
//!
//! `cargo run --example embed` creates an organization, a customer with a property, and a job,
//! moves the job through the engine (each call a durable workflow), shows that the same
//! idempotency key returns the recorded outcome instead of creating a second job, and prints the
//! organization's change feed.

use hestami::core::customer::{Address, CountryCode, Customer, PostalCode, Property};
use hestami::core::job::{Job, JobStatus, NewJob, Priority};
use hestami::core::org::{Currency, OrgKind, TimeZone};
use hestami::core::text::{Email, Name, OrgName, Summary, TradeCode};
use hestami::store::app::customer::{CustomerCommand, NewCustomer, NewProperty};
use hestami::store::app::job::{JobLifecycleCommand, UpdateStatus};
use hestami::store::app::{Caller, Command, Request, Services, decode_output};
use hestami::store::directory::NewOrganization;
use hestami::store::engine::EngineConfig;
use hestami::store::{Store, StoreOptions};

type Error = Box<dyn std::error::Error>;

async fn run<C: Command, T: serde::de::DeserializeOwned>(
    services: &Services,
    caller: &Caller,
    key: uuid::Uuid,
    command: C,
) -> Result<T, Error> {
    let request = Request {
        idempotency_key: key,
        fingerprint: key.to_string(),
        trace_id: None,
        command,
    };
    let completed = services.submit(caller, request).await?;
    let text = completed
        .outcome
        .map_err(|f| format!("{}: {}", f.code, f.message))?;
    Ok(decode_output(&text)?)
}

fn parse<T>(r: Result<T, hestami::core::Invalid>) -> Result<T, Error> {
    r.map_err(|e| e.to_string().into())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let path = std::env::temp_dir().join(format!(
        "hestami-embed-{}.db",
        uuid::Uuid::new_v4().simple()
    ));
    let url = format!("sqlite://{}", path.display());
    Store::migrate(&url).await?;
    let store = Store::connect(&url, StoreOptions::default()).await?;
    let org = store
        .create_organization(NewOrganization {
            name: parse(OrgName::parse("Embedded HVAC"))?,
            kind: OrgKind::Contractor,
            time_zone: parse(TimeZone::parse("Europe/London"))?,
            currency: parse(Currency::parse("GBP"))?,
            owner_email: parse(Email::parse("owner@embedded.example"))?,
        })
        .await?;
    let services = Services::new(store, EngineConfig::default());
    let caller = Caller {
        organization_id: org.organization_id,
        user_id: Some(org.user_id),
        scope: Default::default(),
    };

    let customer: Customer = run(
        &services,
        &caller,
        uuid::Uuid::new_v4(),
        CustomerCommand::Create(NewCustomer {
            name: parse(Name::parse("Charles Babbage"))?,
            email: None,
            phone: None,
        }),
    )
    .await?;
    let property: Property = run(
        &services,
        &caller,
        uuid::Uuid::new_v4(),
        CustomerCommand::AddProperty(NewProperty {
            customer_id: customer.id,
            address: Address {
                line1: parse(Name::parse("1 Difference Engine Row"))?,
                line2: None,
                city: parse(Name::parse("London"))?,
                region: parse(Name::parse("Greater London"))?,
                postal_code: parse(PostalCode::parse("SW1A 1AA"))?,
                country: parse(CountryCode::parse("GB"))?,
            },
            access_notes: None,
            location: None,
        }),
    )
    .await?;
    let new_job = NewJob {
        customer_id: customer.id,
        property_id: property.id,
        trade: parse(TradeCode::parse("hvac"))?,
        priority: Priority::Emergency,
        summary: parse(Summary::parse("No heat"))?,
        description: None,
        callback_of: None,
        min_skill_level: Default::default(),
        required_certifications: vec![],
    };
    let key = uuid::Uuid::new_v4();
    let job: Job = run(
        &services,
        &caller,
        key,
        JobLifecycleCommand::Create(new_job.clone()),
    )
    .await?;
    let again: Job = run(
        &services,
        &caller,
        key,
        JobLifecycleCommand::Create(new_job),
    )
    .await?;
    assert_eq!(job.id, again.id, "the same key returns the recorded job");
    println!(
        "job {} created once ({}), respond by {}",
        job.id, job.status, job.sla_deadline
    );

    let held: Job = run(
        &services,
        &caller,
        uuid::Uuid::new_v4(),
        JobLifecycleCommand::UpdateStatus(UpdateStatus {
            job_id: job.id,
            status: JobStatus::OnHold,
            reason: None,
            expected_version: Some(1),
        }),
    )
    .await?;
    println!(
        "job {} is {} (held from {:?}), version {}",
        held.id,
        held.status,
        held.held_from.map(|s| s.as_str()),
        held.version
    );

    for change in services.changes(&caller, 0, 100).await? {
        println!(
            "feed #{:<2} {:<12} {} v{} {}",
            change.seq, change.entity_kind, change.entity_id, change.version, change.operation
        );
    }
    services.store().close().await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    Ok(())
}
