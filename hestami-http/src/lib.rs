//! The Hestami RPC server: routing, authentication, validation, the error envelope, OpenAPI and
//! telemetry.
//!
//! This crate only translates HTTP to typed calls of `hestami_store::app::Services` and back; no
//! business rule lives here. Every procedure is `POST /api/v1/rpc/{namespace}/{version}/{name}`,
//! declared once in the [`rpc::Procedure`] table of [`v1`].

// `ApiError` carries the whole envelope (code, message, field errors, details): it is the cold
// path of one request, and boxing it would only add an allocation to every error.
#![allow(clippy::result_large_err)]

mod constraints;
pub mod error;
pub mod openapi;
pub mod rpc;
pub mod server;
pub mod telemetry;
pub mod v1;
pub mod wire;

pub use server::{AppState, ConnectionLimits, ServerConfig, router, serve, serve_with};
