//! Hestami Contractor Ops, for embedding: the domain ([`core`]), persistence and the durable
//! workflow engine ([`store`]), and the RPC server ([`http`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use hestami::store::{Store, StoreOptions, app::Services, engine::EngineConfig};
//! let url = "sqlite://hestami.db";
//! Store::migrate(url).await?;
//! let services = Services::new(Store::connect(url, StoreOptions::default()).await?, EngineConfig::default());
//! let router = hestami::http::router(hestami::http::AppState::new(services, Default::default()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! hestami::http::serve(listener, router, std::future::pending()).await?;
//! # Ok(()) }
//! ```

pub use hestami_core as core;
pub use hestami_http as http;
pub use hestami_store as store;
