//! Version 2 of the wire contract, beside version 1 (whose procedures keep working unchanged):
//! only the namespaces whose contract changed. `job/v2` models a job's visits as appointments
//! with crews (workflow `job_lifecycle_v2`).

pub mod job;

/// Every v2 procedure.
pub fn procedures() -> Vec<crate::rpc::Procedure> {
    job::procedures()
}
