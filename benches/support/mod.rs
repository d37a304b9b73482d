//! What the benchmarks share: an organization with a customer, a property and a job to create.
#![allow(dead_code)]

pub mod server;

use hestami::core::customer::{Address, CountryCode, PostalCode};
use hestami::core::job::{NewJob, Priority};
use hestami::core::org::{Currency, OrgKind, TimeZone};
use hestami::core::text::{Email, Name, OrgName, Summary, TradeCode};
use hestami::store::Store;
use hestami::store::app::customer::{CustomerCommand, NewCustomer, NewProperty};
use hestami::store::app::{Caller, Services};
use hestami::store::directory::NewOrganization;

/// A fresh PostgreSQL database for the benchmark `bench`: the test database (dropped with it),
/// a store over its owner role (the directory's side: creating organizations) and the services
/// over its application role. `None`, said, when PostgreSQL is unreachable.
pub async fn on_postgres(
    bench: &str,
) -> Option<(hestami::store::testing::TestDb, Store, Services)> {
    use hestami::store::StoreOptions;
    let Some(db) = hestami::store::testing::TestDb::postgres().await else {
        println!("{bench}: PostgreSQL unreachable, skipped");
        return None;
    };
    let admin = Store::connect(&db.owner_url, StoreOptions::default())
        .await
        .unwrap();
    let store = Store::connect(&db.app_url, StoreOptions::default())
        .await
        .unwrap();
    let services = Services::new(store, hestami::store::engine::EngineConfig::default());
    Some((db, admin, services))
}

/// The `q` quantile (0.5, 0.99) of `sorted` durations, in milliseconds.
pub fn quantile(sorted: &[std::time::Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 * q) as usize).min(sorted.len().saturating_sub(1));
    sorted.get(i).copied().unwrap_or_default().as_secs_f64() * 1e3
}

/// A count from the environment (`PHOTOS=100`), or `default` when unset or not a number.
pub fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// splitmix64: a small deterministic generator, so that every run sees the same data.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    /// The next 64 bits.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A number in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// A number in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// An organization's owner and a job to create in it.
pub struct Tenant {
    pub caller: Caller,
    pub job: NewJob,
}

/// Creates a contractor organization in Chicago, in dollars, and returns its owner as caller,
/// with the owner's bearer token.
pub async fn owner(admin: &Store, name: &str, email: &str) -> (Caller, String) {
    let created = admin
        .create_organization(NewOrganization {
            name: OrgName::parse(name).unwrap(),
            kind: OrgKind::Contractor,
            time_zone: TimeZone::parse("America/Chicago").unwrap(),
            currency: Currency::parse("USD").unwrap(),
            owner_email: Email::parse(email).unwrap(),
        })
        .await
        .unwrap();
    let caller = Caller {
        organization_id: created.organization_id,
        user_id: Some(created.user_id),
        scope: Default::default(),
    };
    (caller, created.token)
}

/// Creates organization `n` with a customer and a property.
pub async fn tenant(admin: &Store, services: &Services, n: usize) -> Tenant {
    let (caller, _) = owner(
        admin,
        &format!("Bench {n}"),
        &format!("bench{n}@example.com"),
    )
    .await;
    let customer: hestami::core::customer::Customer = submit(
        services,
        &caller,
        CustomerCommand::Create(NewCustomer {
            name: Name::parse("Bench").unwrap(),
            email: None,
            phone: None,
        }),
    )
    .await;
    let property: hestami::core::customer::Property = submit(
        services,
        &caller,
        CustomerCommand::AddProperty(NewProperty {
            customer_id: customer.id,
            address: Address {
                line1: Name::parse("1 Main St").unwrap(),
                line2: None,
                city: Name::parse("Chicago").unwrap(),
                region: Name::parse("IL").unwrap(),
                postal_code: PostalCode::parse("60601").unwrap(),
                country: CountryCode::parse("US").unwrap(),
            },
            access_notes: None,
            location: None,
        }),
    )
    .await;
    let job = NewJob {
        customer_id: customer.id,
        property_id: property.id,
        trade: TradeCode::parse("plumbing").unwrap(),
        priority: Priority::Routine,
        summary: Summary::parse("Benchmark job").unwrap(),
        description: None,
        callback_of: None,
        min_skill_level: Default::default(),
        required_certifications: vec![],
    };
    Tenant { caller, job }
}

/// Submits a setup command and decodes its output.
pub async fn submit<C: hestami::store::app::Command, T: serde::de::DeserializeOwned>(
    services: &Services,
    caller: &Caller,
    command: C,
) -> T {
    hestami::store::testing::fixtures::submit(services, caller, command)
        .await
        .expect("setup command")
}
