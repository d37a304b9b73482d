//! The Hestami RPC server: routing, authentication, validation, the error envelope, OpenAPI and
//! telemetry.
//!
//! This crate only translates HTTP to typed calls of `hestami_store::app::Services` and back; no
//! business rule lives here. Every procedure is `POST /api/v1/rpc/{namespace}/{version}/{name}`,
//! declared once in the [`rpc::Procedure`] tables of [`v1`] and [`v2`] ([`procedures`]).

// `ApiError` carries the whole envelope (code, message, field errors, details): it is the cold
// path of one request, and boxing it would only add an allocation to every error.
#![allow(clippy::result_large_err)]

/// Implements [`rpc::Mutating`] for inputs with an `idempotency_key` field.
macro_rules! mutating {
    ($($t:ty),* $(,)?) => {$(
        impl crate::rpc::Mutating for $t {
            fn idempotency_key(&self) -> uuid::Uuid {
                self.idempotency_key
            }
        }
    )*};
}

pub mod blobs;
mod constraints;
pub mod contract;
pub mod error;
pub mod limits;
pub mod openapi;
pub mod rpc;
pub mod server;
pub mod telemetry;
pub mod v1;
pub mod v2;
pub mod wire;

pub use server::{AppState, ConnectionLimits, ServerConfig, router, serve, serve_with};

/// Every procedure of every version.
pub fn procedures() -> Vec<rpc::Procedure> {
    let mut all = v1::procedures();
    all.extend(v2::procedures());
    all
}
