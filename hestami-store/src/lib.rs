//! Hestami persistence: PostgreSQL with row-level security, embedded SQLite, migrations, and the
//! durable workflow engine.
//!
//! - [`Store`] connects to either backend; [`Store::migrate`] brings a schema up to date and, on
//!   PostgreSQL, sets up the unprivileged `hestami_app` role the server runs as.
//! - Tenant data is only reachable through [`TenantTx`], a transaction confined to one
//!   organization (row-level security on PostgreSQL, the organization in every statement on
//!   SQLite). No public function runs SQL without one.
//! - [`engine::Engine`] runs workflows made of journalled steps: exactly-once transactional
//!   steps, at-least-once external steps, idempotency keys, recovery after a crash.
//! - [`app::Services`] are the application's procedures, each mutating one a workflow.
//!
//! ```no_run
//! # async fn demo() -> Result<(), hestami_store::StoreError> {
//! use hestami_store::{Store, StoreOptions, app::Services, engine::EngineConfig};
//! let url = "sqlite://hestami.db";
//! Store::migrate(url).await?;
//! let store = Store::connect(url, StoreOptions::default()).await?;
//! let services = Services::new(store, EngineConfig::default());
//! services.engine().recover(true).await?; // resume what a previous run left pending
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod app;
pub mod blobs;
mod db;
pub mod directory;
pub mod documents;
pub mod engine;
mod error;
pub mod mail;
pub mod sessions;
mod store;
pub mod testing;

pub use db::{Backend, CounterReading, counters, redact};
pub use error::{Failure, FailureKind, FieldError, StoreError};
pub use store::{
    APP_ROLE, Clock, LINK_TABLES, Operation, SHARED_TABLES, Scope, Store, StoreOptions,
    SystemClock, TENANT_TABLES, TenantTx, derive_app_url, new_id, truncate_micros,
};
