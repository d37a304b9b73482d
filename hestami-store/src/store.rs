//! The store handle, the clock, migrations and the tenant transaction.
//!
//! [`TenantTx`] is the only way this crate runs SQL against tenant tables: it is created for one
//! organization, and on PostgreSQL its first statement sets `app.organization_id`
//! transaction-locally, so row-level security confines every later statement to that
//! organization (and a pooled connection carries nothing over to its next user). On SQLite,
//! which has no RLS, every statement written against a `TenantTx` names the organization itself,
//! and the composite keys do the rest.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use uuid::Uuid;

use hestami_core::ids::{OrganizationId, UserId, WorkflowId};

use crate::db::{Backend, Pool, Row, Tx, Value, args, redact};
use crate::error::StoreError;

/// The source of the current time. The store reads time only through this, so tests can move
/// it.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now, in UTC, to the microsecond (the precision both backends store).
    fn now(&self) -> DateTime<Utc>;
}

/// The system clock, truncated to microseconds.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        truncate_micros(Utc::now())
    }
}

/// Drops sub-microsecond precision, so a time survives a round trip through either database.
pub fn truncate_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = t.timestamp_subsec_nanos();
    t - chrono::Duration::nanoseconds(i64::from(nanos % 1_000))
}

/// Mints a new time-ordered id (UUIDv7).
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// Options for [`Store::connect`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// The largest number of pooled connections.
    pub max_connections: u32,
    /// Where the time comes from.
    pub clock: Arc<dyn Clock>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            clock: Arc::new(SystemClock),
        }
    }
}

/// A connection to the database, shared by everything that runs against it.
#[derive(Clone, Debug)]
pub struct Store {
    pool: Pool,
    clock: Arc<dyn Clock>,
    /// Set while the database is known to be unreachable: transactions then give up on a
    /// connection after [`crate::db::PROBE_TIMEOUT`] instead of the full acquire timeout.
    down: Arc<std::sync::atomic::AtomicBool>,
    /// The key that signs download links, once read (see `blobs.rs`).
    pub(crate) link_key: Arc<tokio::sync::OnceCell<Vec<u8>>>,
}

/// The role the server connects as on PostgreSQL: it owns nothing, has no `BYPASSRLS`, and
/// holds only the grants [`Store::migrate`] gives it.
pub const APP_ROLE: &str = "hestami_app";

/// Tenant tables: each has `organization_id` and, on PostgreSQL, forced row-level security.
pub const TENANT_TABLES: &[&str] = &[
    "organizations",
    "feed_counters",
    "change_feed",
    "customers",
    "properties",
    "technicians",
    "jobs",
    "job_events",
    "workflows",
    "workflow_steps",
    "contractor_profiles",
    "licenses",
    "insurance_policies",
    "compliance_requirements",
    "service_area_sets",
    "technician_certifications",
    "technician_shifts",
    "technician_time_off",
    "outbox",
    "pricebook_items",
    "pricebook_item_revisions",
    "pricing_settings",
    "estimates",
    "estimate_revisions",
    "estimate_events",
    "invoice_sequences",
    "invoices",
    "invoice_events",
    "payments",
    "job_actuals",
    "job_planned_work",
    "trade_catalogues",
    "appointments",
    "appointment_crew",
    "schedule_events",
    "scheduling_settings",
    "dispatch_plans",
    "technician_positions",
    "technician_last_positions",
    "notes",
    "sync_sent",
    "time_punches",
    "timesheets",
    "timesheet_events",
    "overtime_rules",
    "blobs",
    "attachments",
    "form_templates",
    "form_answers",
    "delivery_attempts",
    "notification_settings",
    "webhook_subscriptions",
    "webhook_deliveries",
    "credit_note_sequences",
    "credit_notes",
    "stock_locations",
    "stock_ledger",
    "stock_balances",
    "stock_costs",
    "stock_reservations",
    "stock_transfers",
    "suppliers",
    "supplier_items",
    "reorder_points",
    "purchase_order_sequences",
    "purchase_orders",
    "purchase_order_lines",
    "supplier_bills",
    "stock_items",
    "stock_serials",
    "maintenance_plans",
    "maintenance_agreements",
    "maintenance_visits",
    "agreement_invoices",
    "hoa_properties",
    "vendor_requirements",
];

/// Link tables: rows shared by exactly two organizations, an association and a contractor, each
/// naming both. PostgreSQL's policy admits a row when either id is the transaction's
/// organization; on SQLite the store names both in every statement.
pub const LINK_TABLES: &[&str] = &["vendor_links"];

/// Tables the application role may use that are not tenant tables: the directory, read before
/// an organization is chosen, and the engine's claim queue and timers, which hold ids, leases
/// and due times only.
pub const SHARED_TABLES: &[&str] = &[
    "users",
    "memberships",
    "api_tokens",
    "user_invites",
    "devices",
    "refresh_tokens",
    "auth_throttle",
    "workflow_queue",
    "timers",
    "server_keys",
];

static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");
static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl Store {
    /// Connects to `url` (`sqlite://PATH` or `postgres://…`). Does not migrate.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Self, StoreError> {
        let pool = Pool::connect(url, options.max_connections).await?;
        Ok(Self {
            pool,
            clock: options.clock,
            down: Arc::default(),
            link_key: Arc::default(),
        })
    }

    /// Brings the schema at `url` up to date, connected as its owner. On PostgreSQL it then
    /// creates the [`APP_ROLE`] role if it is missing and grants it exactly what the server
    /// needs.
    pub async fn migrate(url: &str) -> Result<(), StoreError> {
        let pool = Pool::connect_checked(url, 1, false).await?;
        let result = match &pool {
            Pool::Sqlite(p, _) => match SQLITE_MIGRATIONS.run(p).await {
                Ok(()) => foreign_key_check(p).await,
                Err(e) => Err(e.into()),
            },
            Pool::Postgres(p) => match POSTGRES_MIGRATIONS.run(p).await {
                Ok(()) => grant_app_role(p).await,
                Err(e) => Err(e.into()),
            },
        };
        pool.close().await;
        result
    }

    /// Which backend this store runs on.
    pub fn backend(&self) -> Backend {
        self.pool.backend()
    }

    /// Tokens recently authorized (see [`Store::authorize`]): one cache for every store of the
    /// process, so that a revocation through any of them is seen by all at once.
    pub(crate) fn auth_cache(&self) -> &'static crate::directory::AuthCache {
        crate::directory::auth_cache()
    }

    /// The current time, from the store's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Opens a transaction confined to `organization_id`.
    pub(crate) async fn tenant(
        &self,
        organization_id: OrganizationId,
        write: bool,
    ) -> Result<TenantTx, StoreError> {
        self.tenant_as(organization_id, write, None, None).await
    }

    /// Opens a transaction confined to `organization_id`, recording `actor` and `workflow` on
    /// the change-feed rows it appends.
    pub(crate) async fn tenant_as(
        &self,
        organization_id: OrganizationId,
        write: bool,
        actor: Option<UserId>,
        workflow: Option<WorkflowId>,
    ) -> Result<TenantTx, StoreError> {
        let tx = self.begin(write, Some(organization_id.as_uuid())).await?;
        Ok(TenantTx {
            tx,
            organization_id,
            scope: Scope::Organization,
            actor,
            workflow,
            now: self.now(),
            feed: Vec::new(),
        })
    }

    /// Opens a transaction on the shared tables (directory, claim queue).
    pub(crate) async fn shared(&self, write: bool) -> Result<Tx, StoreError> {
        self.begin(write, None).await
    }

    /// Begins a transaction, failing fast while the database is known to be down. The circuit
    /// opens when a transaction cannot reach the database and closes when one does: every
    /// request made meanwhile is a short probe, answered `503` within the probe timeout rather
    /// than after waiting the whole acquire timeout.
    async fn begin(&self, write: bool, organization: Option<Uuid>) -> Result<Tx, StoreError> {
        use std::sync::atomic::Ordering;
        let result = if self.down.load(Ordering::Relaxed) {
            match tokio::time::timeout(
                crate::db::PROBE_TIMEOUT,
                self.pool.begin(write, organization),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => Err(StoreError::Database(sqlx::Error::PoolTimedOut)),
            }
        } else {
            self.pool.begin(write, organization).await
        };
        match &result {
            Ok(_) => self.down.store(false, Ordering::Relaxed),
            Err(e) if e.is_unavailable() => self.down.store(true, Ordering::Relaxed),
            Err(_) => {}
        }
        result
    }

    /// Whether the database answers now: a transaction that runs `SELECT 1`. What `/ready`
    /// reports.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut tx = self.begin(false, None).await?;
        tx.fetch_one("SELECT 1 AS one", Vec::new()).await?;
        tx.commit().await
    }
}

/// Refuses a SQLite database whose rows break a foreign key (migrations run without
/// enforcement: see [`Pool::connect_checked`]).
async fn foreign_key_check(pool: &sqlx::SqlitePool) -> Result<(), StoreError> {
    let broken = sqlx::query("PRAGMA foreign_key_check")
        .fetch_all(pool)
        .await?;
    if broken.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "the migrated database has {} rows that break a foreign key",
            broken.len()
        )))
    }
}

async fn grant_app_role(pool: &sqlx::PgPool) -> Result<(), StoreError> {
    // Several databases on one cluster may be migrated at once (tests do), and roles are
    // cluster-wide: a concurrent CREATE ROLE can fail with unique_violation as well as
    // duplicate_object, so both mean "already there".
    sqlx::query(&format!(
        "DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
                CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
            END IF;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END $$"
    ))
    .execute(pool)
    .await?;
    let mut grants = vec![
        format!(
            "DO $$ BEGIN EXECUTE format('GRANT CONNECT ON DATABASE %I TO {APP_ROLE}', current_database()); END $$"
        ),
        format!("GRANT USAGE ON SCHEMA public TO {APP_ROLE}"),
    ];
    for table in TENANT_TABLES.iter().chain(LINK_TABLES).chain(SHARED_TABLES) {
        grants.push(format!(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}"
        ));
    }
    for grant in grants {
        // GRANT on a shared catalog row can also race between databases; retry once.
        if let Err(first) = sqlx::query(&grant).execute(pool).await {
            tracing::debug!(error = %first, "retrying grant");
            sqlx::query(&grant).execute(pool).await?;
        }
    }
    Ok(())
}

/// The URL the server uses on PostgreSQL: the owner's URL with the user replaced by
/// [`APP_ROLE`] and the password dropped (trust or peer authentication for the app role, or set
/// `--app-database-url` with a password of your own). SQLite URLs are returned unchanged.
pub fn derive_app_url(owner_url: &str) -> Result<String, StoreError> {
    if Backend::of_url(owner_url)? == Backend::Sqlite {
        return Ok(owner_url.to_owned());
    }
    let Some((scheme, rest)) = owner_url.split_once("://") else {
        return Err(StoreError::Config(format!(
            "not a URL: {}",
            redact(owner_url)
        )));
    };
    let host_and_path = match rest.rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    Ok(format!("{scheme}://{APP_ROLE}@{host_and_path}"))
}

/// A transaction confined to one organization: the only way tenant tables are touched.
pub struct TenantTx {
    tx: Tx,
    organization_id: OrganizationId,
    /// What the caller may see (reads on behalf of a caller only).
    scope: Scope,
    actor: Option<UserId>,
    workflow: Option<WorkflowId>,
    now: DateTime<Utc>,
    /// Change-feed rows recorded in this transaction, written just before it commits.
    feed: Vec<FeedRow>,
}

/// What a caller may see of its organization.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Scope {
    /// Everything (every role but `technician`).
    #[default]
    Organization,
    /// Only the work of this technician: the jobs and appointments they are on. A member with
    /// the `technician` role whose user is linked to no technician sees none (`None`).
    Technician(Option<hestami_core::ids::TechnicianId>),
}

/// A change-feed row waiting for its transaction's commit.
struct FeedRow {
    entity_kind: String,
    entity_id: Uuid,
    version: i64,
    operation: Operation,
}

/// Takes `$2` sequence numbers from the organization's (`$1`) feed counter and returns the last.
/// The counter row exists from the organization's creation; the upsert covers organizations
/// from before counters.
const COUNTER: &str = "INSERT INTO feed_counters (organization_id, last_seq) VALUES ($1, $2) \
     ON CONFLICT (organization_id) DO UPDATE SET last_seq = feed_counters.last_seq + excluded.last_seq \
     RETURNING last_seq";

/// The most change-feed rows PostgreSQL writes in the statement that takes their numbers.
const FEED_ROWS_PER_STATEMENT: usize = 100;

/// What happened to an aggregate, as the change feed records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// It was created.
    Created,
    /// Its fields changed.
    Updated,
    /// It was removed.
    Deleted,
    /// It moved through its state machine.
    Transitioned,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Updated => "updated",
            Self::Deleted => "deleted",
            Self::Transitioned => "transitioned",
        }
    }
}

impl TenantTx {
    /// The organization this transaction is confined to.
    pub fn organization_id(&self) -> OrganizationId {
        self.organization_id
    }

    /// What the caller may see (`Organization` for a workflow's steps and internal reads).
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// Confines the reads of this transaction to what `scope` may see.
    pub(crate) fn set_scope(&mut self, scope: Scope) {
        self.scope = scope;
    }

    /// The organization id as a bindable value.
    pub(crate) fn org(&self) -> Uuid {
        self.organization_id.as_uuid()
    }

    /// The time this transaction started, from the store's clock: every row it writes shares it.
    pub fn now(&self) -> DateTime<Utc> {
        self.now
    }

    /// The workflow this transaction is a step of, if any.
    pub fn workflow_id(&self) -> Option<WorkflowId> {
        self.workflow
    }

    /// Who is acting, when a person is.
    pub fn actor(&self) -> Option<UserId> {
        self.actor
    }

    /// The database transaction under the tenant handle, for the directory's shared tables.
    pub(crate) fn inner(&mut self) -> &mut Tx {
        &mut self.tx
    }

    pub(crate) fn for_update(&self) -> &'static str {
        self.tx.for_update()
    }

    /// See `db::Tx::mark_written`.
    pub(crate) fn mark_written(&mut self) {
        self.tx.mark_written();
    }

    pub(crate) async fn execute(&mut self, sql: &str, args: Vec<Value>) -> Result<u64, StoreError> {
        self.tx.execute(sql, args).await
    }

    pub(crate) async fn fetch_all(
        &mut self,
        sql: &str,
        args: Vec<Value>,
    ) -> Result<Vec<Row>, StoreError> {
        self.tx.fetch_all(sql, args).await
    }

    /// The rows of the organization whose id is one of `ids`: `select` is the statement up to
    /// its `IN (…)` list, which is appended (`$1` is the organization), a bounded number of ids
    /// a statement.
    pub(crate) async fn fetch_by_ids(
        &mut self,
        select: &str,
        ids: &[Uuid],
    ) -> Result<Vec<Row>, StoreError> {
        let mut rows = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(crate::db::MAX_IDS_PER_STATEMENT) {
            let mut values = vec![Value::from(self.organization_id.as_uuid())];
            let list = crate::db::placeholders(&mut values, chunk, 2);
            rows.extend(
                self.fetch_all(&format!("{select} ({list})"), values)
                    .await?,
            );
        }
        Ok(rows)
    }

    pub(crate) async fn fetch_optional(
        &mut self,
        sql: &str,
        args: Vec<Value>,
    ) -> Result<Option<Row>, StoreError> {
        self.tx.fetch_optional(sql, args).await
    }

    pub(crate) async fn fetch_one(
        &mut self,
        sql: &str,
        args: Vec<Value>,
    ) -> Result<Row, StoreError> {
        self.tx.fetch_one(sql, args).await
    }

    /// Sets the organization's timer `name` to fire at `due_at`, whether or not it was armed.
    pub(crate) async fn arm_timer(
        &mut self,
        name: &str,
        due_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.tx
            .execute(
                "INSERT INTO timers (organization_id, name, due_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (organization_id, name) DO UPDATE SET due_at = excluded.due_at",
                args![self.org(), name, due_at],
            )
            .await?;
        Ok(())
    }

    /// Removes the organization's timer `name`, if it is armed.
    pub(crate) async fn disarm_timer(&mut self, name: &str) -> Result<(), StoreError> {
        self.tx
            .execute(
                "DELETE FROM timers WHERE organization_id = $1 AND name = $2",
                args![self.org(), name],
            )
            .await?;
        Ok(())
    }

    /// Writes a message to the organization's outbox, to be delivered after this transaction
    /// commits (and only if it does).
    pub(crate) async fn enqueue(
        &mut self,
        kind: &str,
        payload: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let id = new_id();
        let args = args![
            self.org(),
            id,
            kind,
            payload.to_string(),
            self.workflow.map(|w| w.as_uuid()),
            self.now,
            crate::app::delivery::ordering_key(kind, payload)
        ];
        self.tx
            .execute(
                "INSERT INTO outbox (organization_id, id, kind, payload, workflow_id, created_at, ordering_key) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                args,
            )
            .await?;
        // The relay's timer, due at once: the message goes out as soon as this commits.
        let timer = format!("{}{id}", crate::app::delivery::OUTBOX_TIMER_PREFIX);
        self.tx
            .execute(
                "INSERT INTO timers (organization_id, name, due_at) VALUES ($1, $2, $3)",
                args![self.org(), timer, self.now],
            )
            .await?;
        Ok(())
    }

    /// Appends one row to the organization's change feed, in this transaction. The row is
    /// written, and its sequence number taken, just before the transaction commits (see
    /// [`TenantTx::commit`]).
    pub(crate) async fn record_change(
        &mut self,
        entity_kind: &str,
        entity_id: Uuid,
        version: i64,
        operation: Operation,
    ) -> Result<(), StoreError> {
        self.record_changes(entity_kind, &[(entity_id, version, operation)])
            .await
    }

    /// Appends a row per change (see [`TenantTx::record_change`]).
    pub(crate) async fn record_changes(
        &mut self,
        entity_kind: &str,
        changes: &[(Uuid, i64, Operation)],
    ) -> Result<(), StoreError> {
        self.feed.extend(
            changes
                .iter()
                .map(|&(entity_id, version, operation)| FeedRow {
                    entity_kind: entity_kind.to_owned(),
                    entity_id,
                    version,
                    operation,
                }),
        );
        Ok(())
    }

    /// The statement that writes `rows` to the change feed, in two parts: the common table
    /// expression `feed_rows(k, …) AS (VALUES …)` and the `INSERT … SELECT … FROM feed_rows`
    /// that numbers them `base + k`. Parameters are numbered from `$first`: the organization,
    /// then `second`, the actor, the workflow and the time, then four per row. On PostgreSQL
    /// `second` is the number of rows and `base` is taken from a `counter` expression the caller
    /// adds; on SQLite `second` is the base itself.
    fn feed_statement(
        &self,
        rows: &[FeedRow],
        first: usize,
        second: i64,
        postgres: bool,
    ) -> (String, String, Vec<crate::db::Value>) {
        let p = |k: usize| format!("${}", first + k);
        let mut values = crate::db::args![
            self.org(),
            second,
            self.actor.map(|a| a.as_uuid()),
            self.workflow.map(|w| w.as_uuid()),
            self.now
        ];
        // PostgreSQL types a VALUES list's parameters as text unless told.
        let casts: [&str; 5] = if postgres {
            ["::bigint", "::text", "::uuid", "::bigint", "::text"]
        } else {
            [""; 5]
        };
        let mut values_sql = String::new();
        for (k, row) in rows.iter().enumerate() {
            let base = 5 + 4 * k;
            if k > 0 {
                values_sql.push_str(", ");
            }
            values_sql.push_str(&format!(
                "({}{}, {}{}, {}{}, {}{}, {}{})",
                k + 1,
                casts[0],
                p(base),
                casts[1],
                p(base + 1),
                casts[2],
                p(base + 2),
                casts[3],
                p(base + 3),
                casts[4]
            ));
            values.extend(crate::db::args![
                row.entity_kind.as_str(),
                row.entity_id,
                row.version,
                row.operation.as_str()
            ]);
        }
        let rows_cte = format!(
            "feed_rows(k, entity_kind, entity_id, version, operation) AS (VALUES {values_sql})"
        );
        let (base, from) = if postgres {
            (
                format!("counter.last_seq - {}", p(1)),
                "counter CROSS JOIN feed_rows",
            )
        } else {
            (p(1), "feed_rows")
        };
        let insert = format!(
            "INSERT INTO change_feed (organization_id, seq, entity_kind, entity_id, version, \
             operation, actor_user_id, workflow_id, at) \
             SELECT {org}, {base} + feed_rows.k, feed_rows.entity_kind, feed_rows.entity_id, \
             feed_rows.version, feed_rows.operation, {actor}, {workflow}, {at} FROM {from}",
            org = p(0),
            actor = p(2),
            workflow = p(3),
            at = p(4),
        );
        (rows_cte, insert, values)
    }

    /// PostgreSQL: the common table expressions that take the rows' sequence numbers from the
    /// counter and write them (`feed_rows`, `counter`, `feed`), with their parameters numbered
    /// from `$first`.
    fn feed_ctes(&self, rows: &[FeedRow], first: usize) -> (String, Vec<crate::db::Value>) {
        let n = i64::try_from(rows.len()).unwrap_or(i64::MAX);
        let (rows_cte, insert, values) = self.feed_statement(rows, first, n, true);
        let ctes = format!(
            "{rows_cte}, counter AS (INSERT INTO feed_counters (organization_id, last_seq) \
             VALUES (${org}, ${n}) ON CONFLICT (organization_id) DO UPDATE SET last_seq = \
             feed_counters.last_seq + excluded.last_seq RETURNING last_seq), feed AS ({insert})",
            org = first,
            n = first + 1,
        );
        (ctes, values)
    }

    /// PostgreSQL: hands over the change-feed rows recorded so far as common table expressions
    /// (see [`TenantTx::feed_ctes`]), for a statement that writes them together with other
    /// rows; `None` when there are none, on SQLite, or when there are too many for one
    /// statement (they are then written at commit).
    pub(crate) fn take_feed_ctes(
        &mut self,
        first: usize,
    ) -> Option<(String, Vec<crate::db::Value>)> {
        if self.feed.is_empty()
            || self.feed.len() > FEED_ROWS_PER_STATEMENT
            || self.tx.backend() != Backend::Postgres
        {
            return None;
        }
        let rows = std::mem::take(&mut self.feed);
        self.tx.mark_written();
        Some(self.feed_ctes(&rows, first))
    }

    /// Writes the change-feed rows recorded in this transaction, with consecutive sequence
    /// numbers taken by one increment of the organization's counter per statement (a batch that
    /// bumped the counter once per row would update one row thousands of times in a
    /// transaction, which PostgreSQL does ever more slowly).
    ///
    /// The increment locks the counter row until commit, which is what keeps a cursor reader
    /// from ever skipping a row (ARCHITECTURE.md, "The change feed"); it is the transaction's
    /// last statement, so one organization's writers wait for each other only for the commit.
    async fn write_feed(&mut self) -> Result<(), StoreError> {
        let rows = std::mem::take(&mut self.feed);
        for chunk in rows.chunks(FEED_ROWS_PER_STATEMENT) {
            self.write_feed_rows(chunk).await?;
        }
        Ok(())
    }

    async fn write_feed_rows(&mut self, rows: &[FeedRow]) -> Result<(), StoreError> {
        let org = self.org();
        let n = i64::try_from(rows.len())
            .map_err(|_| StoreError::Internal("too many changes in one statement".into()))?;
        if self.tx.backend() == Backend::Postgres {
            // The increment and the rows in one statement.
            let (ctes, values) = self.feed_ctes(rows, 1);
            self.tx.mark_written();
            self.tx
                .execute(&format!("WITH {ctes} SELECT 1"), values)
                .await?;
            return Ok(());
        }
        // SQLite: no data-modifying CTE; the counter, then the rows.
        let last: i64 = self
            .tx
            .fetch_one(COUNTER, crate::db::args![org, n])
            .await?
            .get("last_seq")?;
        let (rows_cte, insert, values) = self.feed_statement(rows, 1, last - n, false);
        self.tx
            .execute(&format!("WITH {rows_cte} {insert}"), values)
            .await?;
        Ok(())
    }

    /// Writes the change-feed rows recorded in the transaction, then commits.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        self.write_feed().await?;
        self.tx.commit().await
    }
}

#[cfg(test)]
mod documented_tables {
    /// ARCHITECTURE.md lists the tenant and shared tables; the lists must not drift.
    #[test]
    fn architecture_lists_every_tenant_and_shared_table() {
        let doc = include_str!("../../ARCHITECTURE.md");
        let tenant_list = doc
            .split("**Tenant tables** are the ones in `hestami_store::TENANT_TABLES`")
            .nth(1)
            .and_then(|rest| rest.split("**Shared tables**").next())
            .unwrap_or_default();
        let listed: Vec<&str> = tenant_list
            .lines()
            .filter_map(|l| l.strip_prefix("- `"))
            .filter_map(|l| l.split('`').next())
            .collect();
        assert_eq!(
            listed,
            super::TENANT_TABLES,
            "ARCHITECTURE.md's tenant tables"
        );
        let shared = doc
            .split("**Shared tables** are the ones in `hestami_store::SHARED_TABLES`:")
            .nth(1)
            .and_then(|rest| rest.split('.').next())
            .unwrap_or_default();
        for table in super::SHARED_TABLES {
            assert!(
                shared.contains(&format!("`{table}`")),
                "{table} is not listed as shared"
            );
        }
    }
}
