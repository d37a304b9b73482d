//! One small SQL layer over two backends.
//!
//! Every statement in this crate is written once, with `$1`-style placeholders that both
//! PostgreSQL and SQLite understand, and bound from [`Value`]s. The few places where the two
//! dialects differ (row locks, transaction start) ask the [`Backend`]. Queries are checked by the
//! conformance suite on both backends rather than by `query!` macros, which can only check
//! against one database kind per build.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Postgres, Row as _, Sqlite, Transaction};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use uuid::Uuid;

use crate::error::StoreError;

/// Which database engine a store runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite: one process, no setup.
    Sqlite,
    /// PostgreSQL with row-level security: many processes, one database.
    Postgres,
}

impl Backend {
    /// The backend a `sqlite:` or `postgres:` URL names.
    pub fn of_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::Config(format!(
                "unsupported database URL {:?}: use sqlite://PATH or postgres://…",
                redact(url)
            )))
        }
    }
}

/// A URL with its password replaced by `***`, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// How long a transaction waits for a pooled connection while the database is thought up.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long it waits while the database is known to be down (the last attempt failed to reach
/// it): each request is then a short probe, and the first that gets through closes the circuit.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// A connection pool to either backend.
#[derive(Clone, Debug)]
pub(crate) enum Pool {
    /// The pool and the queue its write transactions take turns in (see [`Pool::begin`]).
    Sqlite(SqlitePool, WriteQueue),
    Postgres(PgPool),
}

/// SQLite's writers, in the order they asked: one write transaction at a time per pool.
pub(crate) type WriteQueue = std::sync::Arc<tokio::sync::Mutex<()>>;

/// How long the first connection to PostgreSQL may take before the server's address is
/// reported as unreachable.
pub(crate) const REACH_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens and closes one connection, so that a wrong address, a server that is down or a refused
/// login fails within seconds with a message that names where it tried and what to check,
/// instead of a pool's timeout.
async fn reach(options: &PgConnectOptions) -> Result<(), StoreError> {
    use sqlx::ConnectOptions as _;
    let (host, port) = (options.get_host(), options.get_port());
    let whom = format!(
        "PostgreSQL at {host}:{port} (user {}, database {})",
        options.get_username(),
        options.get_database().unwrap_or("named after the user")
    );
    let hint = format!(
        "check that the server runs and listens there (pg_isready -h {host} -p {port}) and that the URL's user, password and database are right"
    );
    match tokio::time::timeout(REACH_TIMEOUT, options.connect()).await {
        Ok(Ok(connection)) => {
            let _ = sqlx::Connection::close(connection).await;
            Ok(())
        }
        Ok(Err(e)) => Err(StoreError::Config(format!(
            "cannot connect to {whom}: {e}; {hint}"
        ))),
        Err(_) => Err(StoreError::Config(format!(
            "no answer from {whom} within {} s; {hint}",
            REACH_TIMEOUT.as_secs()
        ))),
    }
}

impl Pool {
    pub(crate) async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        Self::connect_checked(url, max_connections, true).await
    }

    /// Like [`Pool::connect`]; on SQLite, `foreign_keys` says whether the connections enforce
    /// foreign keys. Migrations run without: SQLite changes a column's constraints only by
    /// rebuilding its table (a new one, the rows copied, the old one dropped, the new one
    /// renamed), which enforcement forbids while other tables refer to it, and the pragma
    /// cannot change inside the transaction a migration runs in. The migrator checks the
    /// foreign keys itself afterwards.
    pub(crate) async fn connect_checked(
        url: &str,
        max_connections: u32,
        foreign_keys: bool,
    ) -> Result<Self, StoreError> {
        match Backend::of_url(url)? {
            Backend::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .busy_timeout(Duration::from_secs(30))
                    .foreign_keys(foreign_keys);
                let pool = SqlitePoolOptions::new()
                    .max_connections(max_connections)
                    .connect_with(options)
                    .await?;
                Ok(Self::Sqlite(pool, WriteQueue::default()))
            }
            Backend::Postgres => {
                let options = PgConnectOptions::from_str(url)?;
                reach(&options).await?;
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    .connect_with(options)
                    .await?;
                Ok(Self::Postgres(pool))
            }
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Self::Sqlite(..) => Backend::Sqlite,
            Self::Postgres(_) => Backend::Postgres,
        }
    }

    /// Begins a transaction. On SQLite a write transaction takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a deferred one that reads first and writes later can fail with
    /// SQLITE_BUSY when another writer got there in between, and no busy timeout helps then.
    ///
    /// `begin_with` is not cancellation-safe in sqlx-sqlite 0.8: dropped after the `BEGIN` ran but
    /// before it returned the transaction (it awaits once more, to check the statement), it
    /// returns the connection to the pool inside an open write transaction that nobody will
    /// end, and every other writer then waits on its lock. So it runs in a task of its own: if
    /// the caller goes away, the task still finishes, and dropping its transaction rolls back.
    ///
    /// On PostgreSQL, `organization` confines the transaction to an organization for row-level
    /// security (`app.organization_id`), set in the same round trip as `BEGIN`.
    pub(crate) async fn begin(
        &self,
        write: bool,
        organization: Option<Uuid>,
    ) -> Result<Tx, StoreError> {
        Ok(match self {
            Self::Sqlite(pool, queue) if write => {
                // The process's writers queue here, first come first served, before they take a
                // connection. SQLite has one write lock; without the queue, writers that find it
                // taken sleep in the busy handler with growing back-off and retry, and under
                // load some wait hundreds of milliseconds while others get through (the p99 and
                // the lost throughput of eight writers, benches/RESULTS.md). Another process on
                // the same file still meets the busy handler.
                let turn = queue.clone().lock_owned().await;
                let pool = pool.clone();
                let begun = tokio::spawn(async move { pool.begin_with("BEGIN IMMEDIATE").await })
                    .await
                    .map_err(|e| {
                        StoreError::Internal(format!("beginning a transaction failed: {e}"))
                    })??;
                let mut tx = Tx::new(TxInner::Sqlite(begun));
                tx.turn = Some(turn);
                tx
            }
            Self::Sqlite(pool, _) => Tx::new(TxInner::Sqlite(pool.begin().await?)),
            // sqlx-postgres 0.8 counts a transaction as begun only when `BEGIN`'s reply has
            // arrived: dropped before that, the connection goes back to the pool inside a
            // transaction nobody knows of, and its next user's `BEGIN` ("there is already a
            // transaction in progress") and `COMMIT` run inside it. In a task of its own, `BEGIN`
            // always finishes, and the transaction is either handed over or rolled back.
            Self::Postgres(pool) => {
                let pool = pool.clone();
                // One simple-protocol message, two statements: the id is a formatted `Uuid`,
                // so nothing from outside reaches the text.
                let begun = tokio::spawn(async move {
                    match organization {
                        Some(org) => {
                            pool.begin_with(format!(
                                "BEGIN; SELECT set_config('app.organization_id', '{org}', true)"
                            ))
                            .await
                        }
                        None => pool.begin().await,
                    }
                })
                .await
                .map_err(|e| {
                    StoreError::Internal(format!("beginning a transaction failed: {e}"))
                })??;
                Tx::new(TxInner::Postgres(begun))
            }
        })
    }

    pub(crate) async fn close(&self) {
        match self {
            Self::Sqlite(pool, _) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

/// A value bound to a placeholder.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    Uuid(Option<Uuid>),
    Text(Option<String>),
    Int(Option<i64>),
    Float(Option<f64>),
    Bool(Option<bool>),
    Time(Option<DateTime<Utc>>),
    Date(Option<NaiveDate>),
}

impl From<Uuid> for Value {
    fn from(v: Uuid) -> Self {
        Self::Uuid(Some(v))
    }
}
impl From<Option<Uuid>> for Value {
    fn from(v: Option<Uuid>) -> Self {
        Self::Uuid(v)
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Self::Text(Some(v))
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Self::Text(Some(v.to_owned()))
    }
}
impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Self {
        Self::Text(v)
    }
}
impl From<Option<&str>> for Value {
    fn from(v: Option<&str>) -> Self {
        Self::Text(v.map(str::to_owned))
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Self::Int(Some(v))
    }
}
impl From<Option<i64>> for Value {
    fn from(v: Option<i64>) -> Self {
        Self::Int(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Self::Float(Some(v))
    }
}

impl From<Option<f64>> for Value {
    fn from(v: Option<f64>) -> Self {
        Self::Float(v)
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Self::Bool(Some(v))
    }
}
impl From<Option<bool>> for Value {
    fn from(v: Option<bool>) -> Self {
        Self::Bool(v)
    }
}
impl From<DateTime<Utc>> for Value {
    fn from(v: DateTime<Utc>) -> Self {
        Self::Time(Some(v))
    }
}
impl From<NaiveDate> for Value {
    fn from(v: NaiveDate) -> Self {
        Self::Date(Some(v))
    }
}
impl From<Option<NaiveDate>> for Value {
    fn from(v: Option<NaiveDate>) -> Self {
        Self::Date(v)
    }
}
impl From<Option<DateTime<Utc>>> for Value {
    fn from(v: Option<DateTime<Utc>>) -> Self {
        Self::Time(v)
    }
}

/// Builds a `Vec<Value>` from anything convertible: `args![org, id, "name"]`.
macro_rules! args {
    ($($v:expr),* $(,)?) => { vec![$($crate::db::Value::from($v)),*] };
}
pub(crate) use args;

/// How many ids one `IN (…)` list binds (well under either backend's limit on bound values).
pub(crate) const MAX_IDS_PER_STATEMENT: usize = 1000;

/// Appends `ids` to `values` and returns their placeholders (`$first, $first+1, …`) for an
/// `IN (…)` list.
pub(crate) fn placeholders(values: &mut Vec<Value>, ids: &[uuid::Uuid], first: usize) -> String {
    let mut out = Vec::with_capacity(ids.len());
    for (n, id) in ids.iter().enumerate() {
        values.push((*id).into());
        out.push(format!("${}", first + n));
    }
    out.join(", ")
}

/// SQLite keeps times as text; a fixed-width format keeps text order equal to time order, so
/// `<` and `ORDER BY` on time columns mean the same on both backends.
fn sqlite_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

macro_rules! bind_all {
    ($query:expr, $args:expr, $time:expr) => {{
        let mut q = $query;
        for v in $args {
            q = match v {
                Value::Uuid(v) => q.bind(v),
                Value::Text(v) => q.bind(v),
                Value::Int(v) => q.bind(v),
                Value::Float(v) => q.bind(v),
                Value::Bool(v) => q.bind(v),
                Value::Time(v) => q.bind($time(v)),
                Value::Date(v) => q.bind(v),
            };
        }
        q
    }};
}

type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;
type PgQuery<'q> = sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>;

fn sqlite_query(sql: &str, args: Vec<Value>) -> SqliteQuery<'_> {
    bind_all!(sqlx::query(sql), args, |v: Option<DateTime<Utc>>| v
        .map(sqlite_time))
}

fn pg_query(sql: &str, args: Vec<Value>) -> PgQuery<'_> {
    bind_all!(sqlx::query(sql), args, |v: Option<DateTime<Utc>>| v)
}

/// How much work the database was asked for, by every store in this process: what
/// `GET /metrics/db` reports and what the round-trip tests count.
#[derive(Debug, Default)]
struct Counters {
    transactions: AtomicU64,
    write_transactions: AtomicU64,
    statements: AtomicU64,
}

/// A reading of the process's counters ([`counters`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CounterReading {
    /// Transactions begun.
    pub transactions: u64,
    /// Transactions committed after changing at least one row.
    pub write_transactions: u64,
    /// Statements sent inside transactions (`BEGIN` and `COMMIT` not included).
    pub statements: u64,
}

impl std::ops::Sub for CounterReading {
    type Output = Self;
    fn sub(self, earlier: Self) -> Self {
        Self {
            transactions: self.transactions - earlier.transactions,
            write_transactions: self.write_transactions - earlier.write_transactions,
            statements: self.statements - earlier.statements,
        }
    }
}

static COUNTERS: Counters = Counters {
    transactions: AtomicU64::new(0),
    write_transactions: AtomicU64::new(0),
    statements: AtomicU64::new(0),
};

/// The process-wide counters as they stand.
pub fn counters() -> CounterReading {
    CounterReading {
        transactions: COUNTERS.transactions.load(Ordering::Relaxed),
        write_transactions: COUNTERS.write_transactions.load(Ordering::Relaxed),
        statements: COUNTERS.statements.load(Ordering::Relaxed),
    }
}

/// Whether a statement changes rows when it affects or returns any.
fn is_write(sql: &str) -> bool {
    let head = sql.trim_start().get(..6).unwrap_or_default();
    ["INSERT", "UPDATE", "DELETE"]
        .iter()
        .any(|w| head.eq_ignore_ascii_case(w))
}

enum TxInner {
    Sqlite(Transaction<'static, Sqlite>),
    Postgres(Transaction<'static, Postgres>),
}

/// An open transaction on either backend. Dropped without [`Tx::commit`], it rolls back.
pub(crate) struct Tx {
    inner: TxInner,
    /// Whether a statement changed a row: a commit then counts as a write transaction.
    wrote: bool,
    /// A SQLite write transaction's turn in its pool's [`WriteQueue`], given up when it ends.
    /// Declared after `inner`, so dropped after it: the rollback is queued first.
    turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Tx {
    fn new(inner: TxInner) -> Self {
        COUNTERS.transactions.fetch_add(1, Ordering::Relaxed);
        Self {
            inner,
            wrote: false,
            turn: None,
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self.inner {
            TxInner::Sqlite(_) => Backend::Sqlite,
            TxInner::Postgres(_) => Backend::Postgres,
        }
    }

    /// Counts this transaction as a write, for a statement whose writes [`is_write`] cannot
    /// see (a `WITH … AS (INSERT …)` that returns rows whether it inserted or not).
    pub(crate) fn mark_written(&mut self) {
        self.wrote = true;
    }

    fn count(&mut self, sql: &str, changed: bool) {
        COUNTERS.statements.fetch_add(1, Ordering::Relaxed);
        if changed && is_write(sql) {
            self.wrote = true;
        }
    }

    pub(crate) async fn execute(&mut self, sql: &str, args: Vec<Value>) -> Result<u64, StoreError> {
        let n = match &mut self.inner {
            TxInner::Sqlite(tx) => sqlite_query(sql, args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            TxInner::Postgres(tx) => pg_query(sql, args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        };
        self.count(sql, n > 0);
        Ok(n)
    }

    pub(crate) async fn fetch_all(
        &mut self,
        sql: &str,
        args: Vec<Value>,
    ) -> Result<Vec<Row>, StoreError> {
        let rows: Vec<Row> = match &mut self.inner {
            TxInner::Sqlite(tx) => sqlite_query(sql, args)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            TxInner::Postgres(tx) => pg_query(sql, args)
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
        };
        self.count(sql, !rows.is_empty());
        Ok(rows)
    }

    pub(crate) async fn fetch_optional(
        &mut self,
        sql: &str,
        args: Vec<Value>,
    ) -> Result<Option<Row>, StoreError> {
        let row = match &mut self.inner {
            TxInner::Sqlite(tx) => sqlite_query(sql, args)
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::Sqlite),
            TxInner::Postgres(tx) => pg_query(sql, args)
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::Postgres),
        };
        self.count(sql, row.is_some());
        Ok(row)
    }

    pub(crate) async fn fetch_one(
        &mut self,
        sql: &str,
        args: Vec<Value>,
    ) -> Result<Row, StoreError> {
        self.fetch_optional(sql, args)
            .await?
            .ok_or_else(|| StoreError::Internal(format!("expected a row from: {sql}")))
    }

    /// Commits. The `COMMIT` runs in a task of its own, so that a caller that goes away while it
    /// is in flight cannot leave the connection between a `COMMIT` sent and a `ROLLBACK` queued
    /// behind it: the transaction ends one way, and the connection returns to the pool idle.
    pub(crate) async fn commit(self) -> Result<(), StoreError> {
        let wrote = self.wrote;
        tokio::spawn(async move {
            // The turn is held until the commit is done.
            let _turn = self.turn;
            match self.inner {
                TxInner::Sqlite(tx) => tx.commit().await,
                TxInner::Postgres(tx) => tx.commit().await,
            }
        })
        .await
        .map_err(|e| StoreError::Internal(format!("committing failed: {e}")))??;
        if wrote {
            COUNTERS.write_transactions.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// ` FOR UPDATE` on PostgreSQL, where a read that precedes a write must lock its row;
    /// nothing on SQLite, whose write transactions already hold the database's write lock.
    pub(crate) fn for_update(&self) -> &'static str {
        match self.inner {
            TxInner::Sqlite(_) => "",
            TxInner::Postgres(_) => " FOR UPDATE",
        }
    }
}

/// A row from either backend.
pub(crate) enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

/// A type both backends can decode.
pub(crate) trait Column:
    for<'r> sqlx::Decode<'r, Sqlite>
    + sqlx::Type<Sqlite>
    + for<'r> sqlx::Decode<'r, Postgres>
    + sqlx::Type<Postgres>
{
}
impl<T> Column for T where
    T: for<'r> sqlx::Decode<'r, Sqlite>
        + sqlx::Type<Sqlite>
        + for<'r> sqlx::Decode<'r, Postgres>
        + sqlx::Type<Postgres>
{
}

impl Row {
    pub(crate) fn get<T: Column>(&self, column: &str) -> Result<T, StoreError> {
        Ok(match self {
            Self::Sqlite(row) => row.try_get(column)?,
            Self::Postgres(row) => row.try_get(column)?,
        })
    }
}
