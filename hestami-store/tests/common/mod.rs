//! Helpers shared by the store's test binaries: fresh databases on either backend, typed
//! submissions, and builders for valid commands.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use chrono::{DateTime, TimeZone as _, Utc};
use serde::de::DeserializeOwned;
use uuid::Uuid;

use hestami_core::customer::{Address, CountryCode, Customer, PostalCode, Property};
use hestami_core::ids::{CustomerId, JobId, OrganizationId, PropertyId, TechnicianId, UserId};
use hestami_core::job::{Job, JobStatus, NewJob, Priority, TimeWindow};
use hestami_core::org::{Currency, OrgKind, TimeZone};
use hestami_core::text::{Email, Name, OrgName, Summary, TradeCode};
use hestami_core::workforce::Technician;
use hestami_store::app::customer::{CustomerCommand, NewCustomer, NewProperty};
use hestami_store::app::job::{
    AssignTech, DispatchCommand, JobLifecycleCommand, ScheduleJob, UpdateStatus,
};
use hestami_store::app::technician::{NewTechnician, TechnicianCommand};
use hestami_store::app::workflow::Change;
use hestami_store::app::{Caller, Command, Request, Services};
use hestami_store::directory::NewOrganization;
use hestami_store::engine::{self, Completed, EngineConfig};
use hestami_store::testing::TestDb;
use hestami_store::{Clock, Failure, Store, StoreOptions, SystemClock};

/// Runs each named `async fn NAME(fx: Fixture)` once on SQLite and once on PostgreSQL, as the
/// tests `sqlite::NAME` and `postgres::NAME`. A PostgreSQL test is skipped when the server is
/// unreachable, unless `HESTAMI_REQUIRE_POSTGRES=1`, where it fails.
#[allow(unused_macros)]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(fx) = crate::common::Fixture::new(crate::common::Kind::Sqlite).await {
                        super::$name(fx).await;
                    }
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(fx) = crate::common::Fixture::new(crate::common::Kind::Postgres).await {
                        super::$name(fx).await;
                    }
                }
            )*
        }
    };
}

/// Which backend a fixture runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh migrated database, a store connected to it the way the server connects (as
/// `hestami_app` on PostgreSQL) and the services over it.
pub struct Fixture {
    pub services: Services,
    pub store: Store,
    pub kind: Kind,
    // Last, so the pools above are dropped before the database is.
    pub db: TestDb,
}

impl Fixture {
    pub async fn new(kind: Kind) -> Option<Self> {
        Self::with_clock(kind, Arc::new(SystemClock)).await
    }

    pub async fn with_clock(kind: Kind, clock: Arc<dyn Clock>) -> Option<Self> {
        let db = match kind {
            Kind::Sqlite => TestDb::sqlite().await.expect("a fresh SQLite database"),
            Kind::Postgres => TestDb::postgres().await?,
        };
        let store = connect(&db, clock).await;
        let services = Services::new(store.clone(), EngineConfig::default());
        Some(Self {
            services,
            store,
            kind,
            db,
        })
    }

    /// A new store (a new pool, as a new process would have) over the same database.
    pub async fn fresh_store(&self) -> Store {
        connect(&self.db, Arc::new(SystemClock)).await
    }

    /// New services, over a new store, with the given engine settings: a restarted process.
    pub async fn restart(&self, config: EngineConfig) -> Services {
        Services::new(self.fresh_store().await, config)
    }

    /// Creates a contractor organization through the directory and returns its owner as
    /// caller.
    pub async fn org(&self, name: &str) -> Org {
        self.org_of_kind(name, OrgKind::Contractor).await
    }

    /// Creates an organization of `kind` through the directory and returns its owner as caller.
    pub async fn org_of_kind(&self, name: &str, kind: OrgKind) -> Org {
        let slug: String = name.chars().filter(char::is_ascii_alphanumeric).collect();
        let email = format!(
            "owner-{}-{}@example.com",
            slug.to_lowercase(),
            Uuid::new_v4().simple()
        );
        create_org_of_kind(&self.store, name, &email, kind).await
    }
}

async fn connect(db: &TestDb, clock: Arc<dyn Clock>) -> Store {
    Store::connect(
        &db.app_url,
        StoreOptions {
            max_connections: 8,
            clock,
        },
    )
    .await
    .expect("connecting to the test database")
}

/// An organization and its owner.
#[derive(Clone, Debug)]
pub struct Org {
    pub caller: Caller,
    pub user_id: UserId,
    pub token: String,
    pub owner_email: Email,
}

impl Org {
    pub fn id(&self) -> OrganizationId {
        self.caller.organization_id
    }
}

pub async fn create_org(store: &Store, name: &str, owner_email: &str) -> Org {
    create_org_of_kind(store, name, owner_email, OrgKind::Contractor).await
}

pub async fn create_org_of_kind(
    store: &Store,
    name: &str,
    owner_email: &str,
    kind: OrgKind,
) -> Org {
    let owner_email = email(owner_email);
    let created = store
        .create_organization(NewOrganization {
            name: OrgName::parse(name).expect("valid org name"),
            kind,
            time_zone: TimeZone::parse("America/Chicago").expect("valid zone"),
            currency: Currency::parse("USD").expect("valid currency"),
            owner_email: owner_email.clone(),
        })
        .await
        .expect("creating an organization");
    Org {
        caller: Caller {
            organization_id: created.organization_id,
            user_id: Some(created.user_id),
            scope: Default::default(),
        },
        user_id: created.user_id,
        token: created.token,
        owner_email,
    }
}

// ---------------------------------------------------------------------------------------------
// Submitting commands

/// A request with a fresh idempotency key and the command's own fingerprint.
pub fn request<C: Command>(command: C) -> Request<C> {
    request_with_key(Uuid::new_v4(), command)
}

pub fn request_with_key<C: Command>(idempotency_key: Uuid, command: C) -> Request<C> {
    let fingerprint =
        engine::fingerprint(&serde_json::to_value(&command).expect("commands serialize"));
    Request {
        idempotency_key,
        fingerprint,
        trace_id: None,
        command,
    }
}

/// Submits with a fresh key; a refusal is returned as `Err`, anything else that goes wrong panics.
pub async fn submit<C: Command>(
    services: &Services,
    caller: &Caller,
    command: C,
) -> Result<String, Failure> {
    let procedure = command.procedure();
    let completed = services
        .submit(caller, request(command))
        .await
        .unwrap_or_else(|e| panic!("{procedure} did not run to an outcome: {e:?}"));
    assert!(!completed.replayed, "a fresh key must not replay");
    completed.outcome
}

/// Submits and decodes a successful outcome.
pub async fn ok<T: DeserializeOwned, C: Command + std::fmt::Debug>(
    services: &Services,
    caller: &Caller,
    command: C,
) -> T {
    let described = format!("{command:?}");
    match submit(services, caller, command).await {
        Ok(text) => serde_json::from_str(&text).expect("the recorded output decodes"),
        Err(failure) => panic!("{described} was refused: {failure:?}"),
    }
}

/// Submits and returns the recorded refusal.
pub async fn refused<C: Command + std::fmt::Debug>(
    services: &Services,
    caller: &Caller,
    command: C,
) -> Failure {
    let described = format!("{command:?}");
    match submit(services, caller, command).await {
        Ok(text) => panic!("{described} was accepted: {text}"),
        Err(failure) => failure,
    }
}

/// The refusal inside a completed workflow.
pub fn failure_of(completed: &Completed) -> &Failure {
    completed
        .outcome
        .as_ref()
        .expect_err("the workflow was expected to record a refusal")
}

// ---------------------------------------------------------------------------------------------
// Builders

pub fn email(raw: &str) -> Email {
    Email::parse(raw).expect("valid e-mail")
}

pub fn name(raw: &str) -> Name {
    Name::parse(raw).expect("valid name")
}

pub fn trade(raw: &str) -> TradeCode {
    TradeCode::parse(raw).expect("valid trade")
}

pub fn summary(raw: &str) -> Summary {
    Summary::parse(raw).expect("valid summary")
}

pub fn at(hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2031, 3, 4, hour, 0, 0)
        .single()
        .expect("valid time")
}

pub fn window() -> TimeWindow {
    TimeWindow::parse(at(9), at(12)).expect("valid window")
}

pub fn new_customer(n: &str) -> CustomerCommand {
    CustomerCommand::Create(NewCustomer {
        name: name(n),
        email: None,
        phone: None,
    })
}

pub fn new_property(customer_id: CustomerId) -> CustomerCommand {
    CustomerCommand::AddProperty(NewProperty {
        customer_id,
        address: Address {
            line1: name("1 Main St"),
            line2: None,
            city: name("Springfield"),
            region: name("IL"),
            postal_code: PostalCode::parse("62701").expect("valid postal code"),
            country: CountryCode::parse("US").expect("valid country"),
        },
        access_notes: None,
        location: None,
    })
}

pub fn new_technician(n: &str, mail: Option<&str>, trades: &[&str]) -> TechnicianCommand {
    TechnicianCommand::Create(NewTechnician {
        name: name(n),
        email: mail.map(email),
        phone: None,
        trades: trades.iter().map(|t| trade(t)).collect(),
    })
}

pub fn new_job(
    customer_id: CustomerId,
    property_id: PropertyId,
    trade_code: &str,
) -> JobLifecycleCommand {
    JobLifecycleCommand::Create(NewJob {
        customer_id,
        property_id,
        trade: trade(trade_code),
        priority: Priority::Urgent,
        summary: summary("Leaking water heater"),
        description: None,
        callback_of: None,
        min_skill_level: Default::default(),
        required_certifications: vec![],
    })
}

pub fn schedule(job_id: JobId) -> JobLifecycleCommand {
    JobLifecycleCommand::Schedule(ScheduleJob {
        job_id,
        window: window(),
        expected_version: None,
    })
}

pub fn set_status(job_id: JobId, status: JobStatus) -> JobLifecycleCommand {
    JobLifecycleCommand::UpdateStatus(UpdateStatus {
        job_id,
        status,
        reason: None,
        expected_version: None,
    })
}

pub fn assign(job_id: JobId, technician_id: TechnicianId) -> DispatchCommand {
    DispatchCommand::AssignTech(AssignTech {
        job_id,
        technician_id,
        expected_version: None,
    })
}

/// A customer with one property.
pub async fn customer_with_property(
    services: &Services,
    caller: &Caller,
    n: &str,
) -> (Customer, Property) {
    let customer: Customer = ok(services, caller, new_customer(n)).await;
    let property: Property = ok(services, caller, new_property(customer.id)).await;
    (customer, property)
}

/// A plumbing job in `requested`.
pub async fn requested_job(services: &Services, caller: &Caller) -> Job {
    let (customer, property) = customer_with_property(services, caller, "Ada Customer").await;
    ok(
        services,
        caller,
        new_job(customer.id, property.id, "plumbing"),
    )
    .await
}

/// A plumbing job taken through the whole happy path to `completed` by a fresh technician.
pub async fn completed_job(services: &Services, caller: &Caller) -> Job {
    let job = requested_job(services, caller).await;
    let tech: Technician = ok(
        services,
        caller,
        new_technician("Pat Plumber", None, &["plumbing"]),
    )
    .await;
    ensure_ready(services, caller).await;
    let tech = ready(services, caller, &tech).await;
    work_to_completed(services, caller, job.id, &tech).await
}

/// Schedules job `id`, assigns it to `tech` (ready) and works it to `completed`.
pub async fn work_to_completed(
    services: &Services,
    caller: &Caller,
    id: JobId,
    tech: &Technician,
) -> Job {
    let _: Job = ok(services, caller, schedule(id)).await;
    let _: Job = ok(services, caller, assign(id, tech.id)).await;
    let mut last = None;
    for status in [
        JobStatus::Dispatched,
        JobStatus::EnRoute,
        JobStatus::OnSite,
        JobStatus::InProgress,
        JobStatus::Completed,
    ] {
        last = Some(ok(services, caller, set_status(id, status)).await);
    }
    let last: Job = last.expect("walked");
    assert_eq!(last.status, JobStatus::Completed);
    last
}

/// The whole change feed of the caller's organization, paging through it.
pub async fn whole_feed(services: &Services, caller: &Caller) -> Vec<Change> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = services
            .changes(caller, after, 100)
            .await
            .expect("reading the change feed");
        let Some(last) = page.last() else { return all };
        after = last.seq;
        all.extend(page);
    }
}

/// The feed's sequence numbers are exactly 1..=n and no aggregate version appears twice.
pub fn assert_feed_is_clean(feed: &[Change]) {
    let seqs: Vec<i64> = feed.iter().map(|c| c.seq).collect();
    let expected: Vec<i64> = (1..=i64::try_from(feed.len()).expect("small")).collect();
    assert_eq!(
        seqs, expected,
        "the change feed has gaps or is out of order"
    );
    let mut seen = std::collections::HashSet::new();
    for change in feed {
        assert!(
            seen.insert((change.entity_kind.clone(), change.entity_id, change.version)),
            "the change feed holds {} {} version {} twice",
            change.entity_kind,
            change.entity_id,
            change.version
        );
    }
}

/// Gives a technician shifts around the clock, so that any window fits.
pub async fn ready(services: &Services, caller: &Caller, tech: &Technician) -> Technician {
    hestami_store::testing::fixtures::around_the_clock(services, caller, tech.id)
        .await
        .expect("setting shifts")
        .technician
}

/// Makes the organization compliant for plumbing and hvac in Illinois and gives it a service
/// area covering the fixture property's postal code, unless it already has service areas: what
/// scheduling and assignment check before anything else.
pub async fn ensure_ready(services: &Services, caller: &Caller) {
    let areas = services
        .contractor_service_areas(caller)
        .await
        .expect("service areas");
    if areas.version > 0 {
        return;
    }
    hestami_store::testing::fixtures::make_ready(
        services,
        caller,
        "US",
        "IL",
        &["plumbing", "hvac"],
        &["62701"],
    )
    .await
    .expect("making the organization ready for work");
}

// ---------------------------------------------------------------------------------------------
// The money path

/// A value of a command type from JSON (the commands' own serde forms are their contract).
pub fn from_json<T: DeserializeOwned>(value: serde_json::Value) -> T {
    serde_json::from_value(value).expect("a valid command body")
}

/// `{"amount": "…", "currency": "USD"}`.
pub fn usd(amount: &str) -> serde_json::Value {
    serde_json::json!({ "amount": amount, "currency": "USD" })
}

/// What [`money_path`] made.
#[derive(Clone, Debug)]
pub struct MoneyPath {
    pub labor_item: hestami_core::pricebook::PricebookItem,
    pub estimate: hestami_core::estimate::Estimate,
    pub invoice: hestami_core::invoice::Invoice,
}

/// Takes a completed job through the money path: a labour item, markup tiers and a tax rate
/// for Illinois, an estimate with two options (one revised once), sent, approved and handed
/// to the job, actuals recorded, an invoice from the approved estimate, issued and paid in
/// cash. Asserts the job ends `paid`.
pub async fn money_path(services: &Services, caller: &Caller, job: &Job) -> MoneyPath {
    use hestami_core::estimate::Estimate;
    use hestami_core::invoice::{Invoice, InvoiceStatus};
    use hestami_core::pricebook::PricebookItem;
    use hestami_store::app::estimate::EstimateCommandInput as E;
    use hestami_store::app::invoice::InvoiceCommandInput as I;
    use hestami_store::app::pricebook::PricebookCommand as P;
    use serde_json::json;

    let labor_item: PricebookItem = ok(
        services,
        caller,
        P::CreateItem(from_json(json!({
            "name": "Plumber labour",
            "details": { "kind": "labor", "trade": "plumbing",
                "rates": [{ "skillLevel": 1, "hourly": usd("95.00") }],
                "overtimeMultiplier": "1.5", "afterHoursMultiplier": "2" }
        }))),
    )
    .await;
    let _: serde_json::Value = ok(
        services,
        caller,
        P::SetMarkupTiers(from_json(json!({
            "tiers": [{ "from": "0", "to": "100", "percent": "50" }, { "from": "100", "to": null, "percent": "25" }],
            "expectedVersion": null
        }))),
    )
    .await;
    let _: serde_json::Value = ok(
        services,
        caller,
        P::SetTaxRates(from_json(json!({
            "rates": [{ "jurisdiction": { "country": "US", "region": "IL" }, "name": "Illinois sales tax",
                "percent": "6.25", "taxable": { "service": true, "material": true, "labor": false, "equipment": true } }],
            "expectedVersion": null
        }))),
    )
    .await;
    let line = |hours: &str| {
        json!({ "lines": [{ "source": "item", "itemId": labor_item.id, "skillLevel": 1, "quantity": hours },
                          { "source": "custom", "description": "Valve", "unitPrice": usd("40.00"), "kind": "material", "quantity": "1" }],
                "discount": null })
    };
    let valid_until = chrono::Utc::now() + chrono::Duration::days(30);
    let draft: Estimate = ok(
        services,
        caller,
        E::Generate(from_json(json!({
            "jobId": job.id, "customerId": null, "propertyId": null,
            "options": [{ "name": "Good", "request": line("1") }, { "name": "Best", "request": line("2") }],
            "validUntil": valid_until, "notes": null
        }))),
    )
    .await;
    let revised: Estimate = ok(
        services,
        caller,
        E::Revise(from_json(json!({
            "estimateId": draft.id, "expectedVersion": draft.version,
            "options": [{ "name": "Good", "request": line("1.5") }, { "name": "Best", "request": line("2") }],
            "validUntil": valid_until, "notes": null
        }))),
    )
    .await;
    assert_eq!(revised.revision, 2);
    let _: Estimate = ok(
        services,
        caller,
        E::Send(from_json(
            json!({ "estimateId": draft.id, "expectedVersion": null }),
        )),
    )
    .await;
    let option = revised.options[0].id;
    let estimate: Estimate = ok(
        services,
        caller,
        E::Approve(from_json(json!({
            "estimateId": draft.id, "optionId": option, "signedBy": "Ada Customer",
            "signature": null, "depositRequired": null, "expectedVersion": null
        }))),
    )
    .await;
    let _: serde_json::Value = ok(
        services,
        caller,
        E::ConvertToJob(from_json(json!({
            "estimateId": estimate.id, "trade": null, "summary": null, "priority": null
        }))),
    )
    .await;
    let _: serde_json::Value = ok(
        services,
        caller,
        JobLifecycleCommand::RecordActuals(from_json(json!({
            "jobId": job.id,
            "lines": [{ "source": "item", "itemId": labor_item.id, "skillLevel": 1, "quantity": "1.25" }]
        }))),
    )
    .await;
    let draft_invoice: Invoice = ok(
        services,
        caller,
        I::Create(from_json(json!({
            "jobId": job.id, "from": { "from": "approved_estimate", "estimateId": null }, "terms": null
        }))),
    )
    .await;
    assert_eq!(draft_invoice.total(), estimate.options[0].quote.total);
    let issued: Invoice = ok(
        services,
        caller,
        I::Issue(from_json(
            json!({ "invoiceId": draft_invoice.id, "expectedVersion": null }),
        )),
    )
    .await;
    assert_eq!(
        services.job_get(caller, job.id).await.expect("job").status,
        JobStatus::Invoiced
    );
    let invoice: Invoice = ok(
        services,
        caller,
        I::CollectPayment(from_json(json!({
            "invoiceId": issued.id, "amount": { "amount": issued.balance().amount().to_string(), "currency": "USD" },
            "method": "cash", "reference": "Receipt 7"
        }))),
    )
    .await;
    assert_eq!(invoice.status, InvoiceStatus::Paid);
    assert_eq!(
        services.job_get(caller, job.id).await.expect("job").status,
        JobStatus::Paid
    );
    MoneyPath {
        labor_item,
        estimate,
        invoice,
    }
}
