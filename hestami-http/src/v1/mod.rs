//! Version 1 of the wire contract: one module per namespace, each with its DTOs, conversions
//! and procedure declarations. The DTOs are frozen once `v1.0.0` is released; the domain types
//! underneath may change, and the conversions here absorb it.

use crate::rpc::Procedure;

/// Implements [`crate::rpc::Mutating`] for inputs with an `idempotency_key` field.
macro_rules! mutating {
    ($($t:ty),*) => {$(
        impl crate::rpc::Mutating for $t {
            fn idempotency_key(&self) -> uuid::Uuid {
                self.idempotency_key
            }
        }
    )*};
}

pub mod auth;
pub mod customer;
pub mod dispatch;
pub mod job;
pub mod org;
pub mod technician;
pub mod workflow;

/// Every v1 procedure.
pub fn procedures() -> Vec<Procedure> {
    [
        auth::procedures(),
        org::procedures(),
        customer::procedures(),
        technician::procedures(),
        job::procedures(),
        dispatch::procedures(),
        workflow::procedures(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// An empty input: `{}` (or `{}` with nothing but unknown fields refused).
#[derive(Debug, Clone, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Empty {}
