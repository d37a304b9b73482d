//! The store's errors, and the failures a workflow records.
//!
//! Two kinds of things go wrong. A [`Failure`] is an answer: the request was understood and
//! refused (not found, a version conflict, a rule). It is recorded with the workflow, so a replay
//! of the same idempotency key returns the same refusal. A [`StoreError`] that is not a failure
//! (the database is down, a bug) is not an answer: the workflow stays pending and recovery runs
//! it again later.

use serde::{Deserialize, Serialize};

/// What kind of refusal a [`Failure`] is; the HTTP layer maps each to one status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The input is malformed or out of range (400).
    Validation,
    /// The caller may not do this (403).
    Forbidden,
    /// No such resource in this organization (404).
    NotFound,
    /// The resource is not in a state that allows this (409).
    Conflict,
    /// A business rule is not met (422).
    RuleViolation,
    /// The request failed for an internal reason, repeatedly, and was given up (500).
    Internal,
    /// The credentials presented are not valid (401): a password, a refresh token or an
    /// invitation code. Only sign-in answers it; it is never recorded with a workflow.
    Unauthenticated,
    /// Too many attempts; `details.retryAfterSeconds` says when to try again (429).
    RateLimited,
}

/// One problem with one input field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The JSON path of the field, such as `address.postalCode`.
    pub field: String,
    /// A stable snake_case code.
    pub code: String,
    /// A sentence for a person.
    pub message: String,
}

impl FieldError {
    /// A problem with `field`, from a core parse refusal.
    pub fn new(field: impl Into<String>, invalid: &hestami_core::Invalid) -> Self {
        Self {
            field: field.into(),
            code: invalid.code.to_owned(),
            message: invalid.message.clone(),
        }
    }
}

/// A refusal: the request was understood and the answer is no.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// Which kind of refusal.
    pub kind: FailureKind,
    /// A stable UPPER_SNAKE code such as `JOB_INVALID_TRANSITION`.
    pub code: String,
    /// A sentence for a person.
    pub message: String,
    /// The fields at fault, for validation failures.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub field_errors: Vec<FieldError>,
    /// Structured data about the refusal (the current version, the failed rules…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl Failure {
    /// A refusal of the given kind.
    pub fn new(kind: FailureKind, code: &str, message: impl Into<String>) -> Self {
        Self {
            kind,
            code: code.to_owned(),
            message: message.into(),
            field_errors: Vec::new(),
            details: None,
        }
    }

    /// `404 NOT_FOUND` for a kind of resource ("customer", "job").
    pub fn not_found(what: &str) -> Self {
        Self::new(
            FailureKind::NotFound,
            "NOT_FOUND",
            format!("{what} not found"),
        )
    }

    /// `400 VALIDATION_FAILED` with the fields at fault.
    pub fn validation(field_errors: Vec<FieldError>) -> Self {
        Self {
            field_errors,
            ..Self::new(
                FailureKind::Validation,
                "VALIDATION_FAILED",
                "the request is not valid",
            )
        }
    }

    /// `400 VALIDATION_FAILED` naming one field.
    pub fn invalid_field(
        field: impl Into<String>,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::validation(vec![FieldError {
            field: field.into(),
            code: code.into(),
            message: message.into(),
        }])
    }

    /// `409 VERSION_CONFLICT`: the caller's `expectedVersion` is stale.
    pub fn version_conflict(what: &str, expected: i64, current: i64) -> Self {
        Self {
            details: Some(serde_json::json!({ "currentVersion": current })),
            ..Self::new(
                FailureKind::Conflict,
                "VERSION_CONFLICT",
                format!("the {what} is at version {current}, not {expected}"),
            )
        }
    }

    /// A domain refusal: `409` when it is a conflict with the resource's state, `422` when a
    /// rule is not met.
    pub fn refusal(state_conflict: bool, code: &str, message: impl Into<String>) -> Self {
        let kind = if state_conflict {
            FailureKind::Conflict
        } else {
            FailureKind::RuleViolation
        };
        Self::new(kind, code, message)
    }

    /// Attaches structured details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
}

/// Anything that stops a store operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A refusal, to be reported to the caller (and recorded by the workflow).
    #[error("{}: {}", .0.code, .0.message)]
    Failure(Failure),
    /// The database failed or is unreachable. (The cause is in the message and not also a
    /// `source`, so that an error chain does not print it twice.)
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// A migration failed.
    #[error("migration error: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    /// The store was configured wrongly.
    #[error("configuration error: {0}")]
    Config(String),
    /// Something that must not happen happened (corrupt data, a broken invariant).
    #[error("internal error: {0}")]
    Internal(String),
    /// A fault injected by a test (a simulated crash): the workflow is abandoned as a dying
    /// process would abandon it.
    #[error("injected crash")]
    InjectedCrash,
    /// Another run of the same workflow finished it first; its recorded outcome stands.
    #[error("the workflow was finished by another run")]
    Superseded,
    /// The workflow was refused with a `400` before any step committed, and its claim was
    /// dropped rather than recorded: the request may be sent again, corrected or not.
    #[error("the workflow's refusal was not recorded")]
    Forgotten,
    /// The same idempotency key was used with a different request.
    #[error("the idempotency key was already used with a different request")]
    IdempotencyKeyReused,
    /// A request with the same idempotency key is still running.
    #[error("a request with this idempotency key is still in progress")]
    InProgress,
    /// A party outside the store (a payment provider) gave no answer. Not an answer either: the
    /// workflow stays pending, and a retry with the same idempotency key (or recovery) finishes
    /// it, the external call deduplicated on its key.
    #[error("{code}: {message}")]
    Unavailable {
        /// A stable UPPER_SNAKE code, such as `PAYMENT_PROVIDER_UNAVAILABLE`.
        code: &'static str,
        /// A sentence for a person.
        message: String,
    },
}

impl From<Failure> for StoreError {
    fn from(f: Failure) -> Self {
        Self::Failure(f)
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        Self::Internal(format!("JSON: {e}"))
    }
}

impl StoreError {
    /// Whether the database could not be reached or dropped the connection (it is down,
    /// restarting, out of connections, or the pool waited too long for one): an answer of
    /// `503`, safe to retry, never a `500`.
    pub fn is_unavailable(&self) -> bool {
        let Self::Database(e) = self else {
            return false;
        };
        match e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                // Class 08: connection exception; 57P01–57P03: the server is shutting down,
                // crashed or starting up; 53300: too many connections.
                code.starts_with("08")
                    || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
            }),
            _ => false,
        }
    }

    /// Whether the database refused a row because it names a row that does not exist.
    pub fn is_foreign_key_violation(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(e)) if e.is_foreign_key_violation())
    }

    /// Whether the database refused a row because it would break a unique constraint.
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Database(sqlx::Error::Database(e)) if e.is_unique_violation())
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        Self::Migrate(e)
    }
}
