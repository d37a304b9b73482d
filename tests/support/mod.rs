//! The black-box harness: a real server on a loopback port over a fresh database, driven over
//! HTTP. `both!` runs a test once on SQLite and once on PostgreSQL.
#![allow(dead_code, clippy::unwrap_used)]

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

use hestami::core::ids::{OrganizationId, TechnicianId, UserId};
use hestami::core::org::{Currency, OrgKind, Role, TimeZone};
use hestami::core::text::{Email, OrgName};
use hestami::store::app::delivery::RelaySettings;
use hestami::store::app::payments::TestProvider;
use hestami::store::app::{Caller, Services};
use hestami::store::directory::NewOrganization;
use hestami::store::engine::EngineConfig;
use hestami::store::testing::TestDb;
use hestami::store::{Clock, Store, StoreOptions, SystemClock};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs `async fn $name(server: TestServer)` on both backends.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(server) = $crate::support::TestServer::start($crate::support::Backend::Sqlite).await {
                    super::$name(server).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(server) = $crate::support::TestServer::start($crate::support::Backend::Postgres).await {
                    super::$name(server).await;
                }
            }
        }
    )*};
}

/// Runs `async fn $name(backend: Backend)` on both backends: for tests that start a server of
/// their own (its relay, its settings) rather than take the standard one.
#[macro_export]
macro_rules! each_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::support::Backend::Sqlite).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::support::Backend::Postgres).await;
            }
        }
    )*};
}

/// A tenant: an organization and its owner's token.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub org: String,
    pub token: String,
    pub user: String,
}

pub struct TestServer {
    pub backend: Backend,
    pub base: String,
    pub db: TestDb,
    /// Connected as the owner: for administration (organizations, members, tokens).
    pub admin: Store,
    pub services: Services,
    /// The payment processor card and ACH payments go through: it approves unless scripted
    /// otherwise, and keeps a ledger of the money it moved.
    pub payments: TestProvider,
    pub a: Tenant,
    pub http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub bytes: Vec<u8>,
    pub json: Value,
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            self.status,
            String::from_utf8_lossy(&self.bytes)
        )
    }
}

impl Reply {
    /// The envelope's error code.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    /// Asserts the status and the envelope's code, and that the envelope is well formed.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "{self:?}");
        assert_eq!(self.code(), code, "{self:?}");
        assert!(self.json["error"]["type"].is_string(), "{self:?}");
        assert!(self.json["error"]["message"].is_string(), "{self:?}");
        assert!(self.json["field_errors"].is_array(), "{self:?}");
        let trace = self.json["trace_id"].as_str().unwrap_or("");
        assert_eq!(trace.len(), 32, "{self:?}");
    }

    #[track_caller]
    pub fn ok(self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{self:?}");
        self.json
    }
}

/// Fails unless `reply`'s error code (if any) is among those documented for `procedure`.
#[track_caller]
pub fn documented(procedure: &str, reply: &Reply) {
    let code = reply.code();
    if code.is_empty() {
        return;
    }
    static TABLE: std::sync::OnceLock<Vec<(String, Vec<&'static str>)>> =
        std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        hestami::http::procedures()
            .iter()
            .map(|p| (p.path(), hestami::http::openapi::error_codes(p)))
            .collect()
    });
    if let Some((_, codes)) = table.iter().find(|(path, _)| path == procedure) {
        assert!(
            codes.contains(&code),
            "{procedure} answered {code}, which its documented errors do not list ({codes:?}): {reply:?}"
        );
    }
}

/// The SHA-256 of `bytes` in hex: a blob's name.
pub fn sha(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

pub fn key() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl TestServer {
    pub async fn start(backend: Backend) -> Option<Self> {
        Self::start_with(
            backend,
            hestami::http::ServerConfig::default(),
            hestami::http::ConnectionLimits::default(),
        )
        .await
    }

    /// A server with its own settings and connection limits.
    pub async fn start_with(
        backend: Backend,
        config: hestami::http::ServerConfig,
        limits: hestami::http::ConnectionLimits,
    ) -> Option<Self> {
        Self::start_relaying(backend, config, limits, RelaySettings::default()).await
    }

    /// A server whose outbox relay and webhooks deliver through `relay`.
    pub async fn start_relaying(
        backend: Backend,
        config: hestami::http::ServerConfig,
        limits: hestami::http::ConnectionLimits,
        relay: RelaySettings,
    ) -> Option<Self> {
        Self::start_full(backend, config, limits, relay, Arc::new(SystemClock)).await
    }

    /// A server whose store reads the time from `clock` (a simulated year in seconds: the test
    /// moves the clock and runs the timer pass, `services.fire_due_timers()`).
    pub async fn start_at(backend: Backend, clock: Arc<dyn Clock>) -> Option<Self> {
        Self::start_full(
            backend,
            hestami::http::ServerConfig::default(),
            hestami::http::ConnectionLimits::default(),
            RelaySettings::default(),
            clock,
        )
        .await
    }

    async fn start_full(
        backend: Backend,
        config: hestami::http::ServerConfig,
        limits: hestami::http::ConnectionLimits,
        relay: RelaySettings,
        clock: Arc<dyn Clock>,
    ) -> Option<Self> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let db = match backend {
            Backend::Sqlite => TestDb::sqlite().await.expect("a SQLite test database"),
            Backend::Postgres => TestDb::postgres().await?,
        };
        let admin = Store::connect(
            &db.owner_url,
            StoreOptions {
                max_connections: 4,
                ..Default::default()
            },
        )
        .await
        .expect("connect as owner");
        let app = Store::connect(
            &db.app_url,
            StoreOptions {
                clock,
                ..Default::default()
            },
        )
        .await
        .expect("connect as the app role");
        let payments = TestProvider::new();
        let services =
            Services::with_processor(app, EngineConfig::default(), Arc::new(payments.clone()))
                .with_wait(Duration::from_secs(20))
                .with_relay(relay);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let router = hestami::http::router(hestami::http::AppState::new(services.clone(), config));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(hestami::http::serve_with(listener, router, limits, async {
            let _ = stopped.await;
        }));
        let mut server = Self {
            backend,
            base,
            db,
            admin,
            services,
            payments,
            a: Tenant {
                org: String::new(),
                token: String::new(),
                user: String::new(),
            },
            http: reqwest::Client::new(),
            stop: Some(stop),
        };
        server.a = server.new_tenant("Org A", "owner-a@example.com").await;
        Some(server)
    }

    pub async fn new_tenant(&self, name: &str, owner: &str) -> Tenant {
        self.new_tenant_of_kind(name, owner, OrgKind::Contractor)
            .await
    }

    /// A new organization of `kind` and its owner's token.
    pub async fn new_tenant_of_kind(&self, name: &str, owner: &str, kind: OrgKind) -> Tenant {
        let created = self
            .admin
            .create_organization(NewOrganization {
                name: OrgName::parse(name).unwrap(),
                kind,
                time_zone: TimeZone::parse("America/Chicago").unwrap(),
                currency: Currency::parse("USD").unwrap(),
                owner_email: Email::parse(owner).unwrap(),
            })
            .await
            .expect("create an organization");
        Tenant {
            org: created.organization_id.to_string(),
            token: created.token,
            user: created.user_id.to_string(),
        }
    }

    /// A token for a new member of `tenant` with `role`.
    pub async fn member(&self, tenant: &Tenant, email: &str, role: Role) -> String {
        let email = Email::parse(email).unwrap();
        let org = OrganizationId::from_uuid(uuid::Uuid::parse_str(&tenant.org).unwrap());
        self.admin
            .add_member(org, &email, role)
            .await
            .expect("add a member");
        self.admin
            .create_token(&email, None, None)
            .await
            .expect("issue a token")
            .token
    }

    /// Links `member`'s user to `technician` (as org A's owner): a member with the technician
    /// role then sees and moves that technician's work. Returns the user's id.
    pub async fn link(&self, member: &Tenant, technician: &Value) -> Value {
        let who = self.call_as(member, "auth/v1/whoami", json!({})).await.ok();
        self.mutate(
            "technician/v1/linkUser",
            json!({ "technicianId": technician["id"], "userId": who["user"]["id"] }),
        )
        .await;
        who["user"]["id"].clone()
    }

    pub async fn send(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        Self::reply(request.send().await.expect("the server answers")).await
    }

    pub async fn reply(response: reqwest::Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("a body").to_vec();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            bytes,
            json,
        }
    }

    /// `PUT /api/v1/blobs/{name}` with `bytes`, as `who`.
    pub async fn put_blob(&self, who: &Tenant, name: &str, bytes: Vec<u8>) -> Reply {
        let response = self
            .http
            .put(format!("{}/api/v1/blobs/{name}", self.base))
            .header("authorization", format!("Bearer {}", who.token))
            .header("x-organization-id", &who.org)
            .header("content-type", "text/plain") // ignored: the type is read from the bytes
            .body(bytes)
            .send()
            .await
            .expect("the server answers");
        Self::reply(response).await
    }

    /// Calls a procedure as `tenant`'s owner. Every error code an answer carries must be one
    /// the OpenAPI document lists for that procedure: the end-to-end suites are the check that
    /// the documented errors never fall behind what the server answers.
    pub async fn call_as(&self, tenant: &Tenant, procedure: &str, body: Value) -> Reply {
        let auth = format!("Bearer {}", tenant.token);
        let reply = self
            .send(
                &format!("/api/v1/rpc/{procedure}"),
                &[("authorization", &auth), ("x-organization-id", &tenant.org)],
                serde_json::to_vec(&body).unwrap(),
            )
            .await;
        documented(procedure, &reply);
        reply
    }

    /// Calls a procedure as org A's owner.
    pub async fn call(&self, procedure: &str, body: Value) -> Reply {
        self.call_as(&self.a, procedure, body).await
    }

    /// Calls a mutating procedure with a fresh idempotency key and expects 200.
    pub async fn mutate(&self, procedure: &str, mut body: Value) -> Value {
        body["idempotencyKey"] = json!(key());
        self.call(procedure, body).await.ok()
    }

    /// A customer with a property, and a plumbing technician.
    pub async fn fixture(&self) -> Fixture {
        let customer = self
            .mutate("customer/v1/create", json!({ "name": "Ada Lovelace" }))
            .await;
        let property = self
            .mutate(
                "customer/v1/addProperty",
                json!({ "customerId": customer["id"], "address": { "line1": "1 Main St", "city": "Chicago",
                        "region": "IL", "postalCode": "60601", "country": "US" } }),
            )
            .await;
        let tech = self
            .mutate(
                "technician/v1/create",
                json!({ "name": "Grace", "trades": ["plumbing"] }),
            )
            .await;
        self.make_ready(&self.a).await;
        let tech = self.around_the_clock(&tech).await;
        Fixture {
            customer,
            property,
            tech,
        }
    }

    pub fn caller(tenant: &Tenant) -> Caller {
        Caller {
            organization_id: OrganizationId::from_uuid(uuid::Uuid::parse_str(&tenant.org).unwrap()),
            user_id: Some(UserId::from_uuid(
                uuid::Uuid::parse_str(&tenant.user).unwrap(),
            )),
            scope: Default::default(),
        }
    }

    /// Makes `tenant` compliant for plumbing, electrical and hvac in Illinois, serving 60601
    /// (the fixture property's postal code), unless it has service areas already.
    pub async fn make_ready(&self, tenant: &Tenant) {
        let caller = Self::caller(tenant);
        if self
            .services
            .contractor_service_areas(&caller)
            .await
            .unwrap()
            .version
            > 0
        {
            return;
        }
        hestami::store::testing::fixtures::make_ready(
            &self.services,
            &caller,
            "US",
            "IL",
            &["plumbing", "electrical", "hvac"],
            &["60601"],
        )
        .await
        .expect("making the organization ready for work");
    }

    /// Gives an organization A technician shifts around the clock; returns it as it is now.
    pub async fn around_the_clock(&self, tech: &Value) -> Value {
        let id =
            TechnicianId::from_uuid(uuid::Uuid::parse_str(tech["id"].as_str().unwrap()).unwrap());
        hestami::store::testing::fixtures::around_the_clock(
            &self.services,
            &Self::caller(&self.a),
            id,
        )
        .await
        .expect("setting shifts");
        self.call("technician/v1/get", json!({ "technicianId": tech["id"] }))
            .await
            .ok()
    }

    /// A job in requested, for the fixture's customer.
    pub async fn job(&self, f: &Fixture) -> Value {
        self.mutate(
            "job/v1/create",
            json!({ "customerId": f.customer["id"], "propertyId": f.property["id"], "trade": "plumbing",
                    "priority": "urgent", "summary": "Leaking water heater" }),
        )
        .await
    }

    /// Schedules `job` in [`TestServer::window`] and assigns `technician` to it (as org A's
    /// owner, both expected to succeed).
    pub async fn schedule_and_assign(&self, job: &Value, technician: &Value) {
        let (start, end) = Self::window();
        self.mutate(
            "job/v1/schedule",
            json!({ "jobId": job["id"], "windowStart": start, "windowEnd": end }),
        )
        .await;
        self.mutate(
            "dispatch/v1/assignTech",
            json!({ "jobId": job["id"], "technicianId": technician["id"] }),
        )
        .await;
    }

    /// Moves `job` through `statuses` with `job/v1/updateStatus` (as org A's owner, each
    /// expected to succeed); [`TO_COMPLETED`] takes a scheduled, assigned job to `completed`.
    pub async fn move_job(&self, job: &Value, statuses: &[&str]) {
        for status in statuses {
            self.mutate(
                "job/v1/updateStatus",
                json!({ "jobId": job["id"], "status": status }),
            )
            .await;
        }
    }

    /// A valid window starting tomorrow.
    pub fn window() -> (String, String) {
        let start = chrono::Utc::now() + chrono::Duration::days(1);
        (
            start.to_rfc3339(),
            (start + chrono::Duration::hours(2)).to_rfc3339(),
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub struct Fixture {
    pub customer: Value,
    pub property: Value,
    pub tech: Value,
}

/// The statuses a scheduled, assigned job goes through to `completed`.
pub const TO_COMPLETED: [&str; 5] = [
    "dispatched",
    "en_route",
    "on_site",
    "in_progress",
    "completed",
];
