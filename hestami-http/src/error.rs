//! `ApiError` and the error envelope (DESIGN §5.1).
//!
//! Every error, from every procedure and from the framework itself, leaves the server as the
//! same envelope. Internal causes are logged with the trace id and never returned: the client
//! gets `INTERNAL` and the trace id to quote.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use hestami_store::{Failure, FailureKind, FieldError, StoreError};

/// The envelope's `error` object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorBody {
    /// A stable UPPER_SNAKE code, such as `JOB_INVALID_TRANSITION`.
    pub code: String,
    /// validation, unauthenticated, forbidden, not_found, conflict, rule_violation,
    /// rate_limited, unavailable or internal.
    #[serde(rename = "type")]
    pub kind: String,
    /// A sentence for a person.
    pub message: String,
    /// Structured data about the refusal, when there is some (the current version, the allowed
    /// states, the failed rules).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

/// One field at fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldErrorBody {
    /// The JSON path of the field, such as `address.postalCode` or `lines[2].quantity`.
    pub field: String,
    /// A stable snake_case code.
    pub code: String,
    /// A sentence for a person.
    pub message: String,
}

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// What went wrong.
    pub error: ErrorBody,
    /// The fields at fault (validation errors); empty otherwise.
    pub field_errors: Vec<FieldErrorBody>,
    /// The trace to quote when asking about this error.
    pub trace_id: String,
}

/// An error on its way to becoming a response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The code.
    pub code: String,
    /// The message.
    pub message: String,
    /// The fields at fault.
    pub field_errors: Vec<FieldErrorBody>,
    /// Structured details.
    pub details: Option<serde_json::Value>,
    /// The trace id recorded with a replayed failure, rendered instead of the current one.
    pub recorded_trace_id: Option<String>,
}

/// The envelope `type` for a status.
///
/// The request could not be taken as sent (`validation`): `400`, `405` (a procedure is called
/// with `POST`), `413` (the body is too large) and `415` (the body is not `application/json`).
/// The server could not answer now; retry later (`unavailable`): `408` (the body did not arrive
/// in time) and `503`. The rest have one status each.
pub fn kind_of(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 | 405 | 413 | 415 => "validation",
        401 => "unauthenticated",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        422 => "rule_violation",
        429 => "rate_limited",
        408 | 503 => "unavailable",
        _ => "internal",
    }
}

/// The statuses the server answers with and their envelope `type`, in the order the README
/// lists them; a test checks this table against [`kind_of`] and the README.
pub const STATUS_TYPES: &[(u16, &str)] = &[
    (400, "validation"),
    (401, "unauthenticated"),
    (403, "forbidden"),
    (404, "not_found"),
    (405, "validation"),
    (408, "unavailable"),
    (409, "conflict"),
    (413, "validation"),
    (415, "validation"),
    (422, "rule_violation"),
    (429, "rate_limited"),
    (500, "internal"),
    (503, "unavailable"),
];

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            field_errors: Vec::new(),
            details: None,
            recorded_trace_id: None,
        }
    }

    /// `400 VALIDATION_FAILED` with the fields at fault.
    pub fn validation(field_errors: Vec<FieldErrorBody>) -> Self {
        Self {
            field_errors,
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "VALIDATION_FAILED",
                "the request is not valid",
            )
        }
    }

    /// `400` for one field.
    pub fn field(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        Self::validation(vec![FieldErrorBody {
            field: field.into(),
            code: code.to_owned(),
            message: message.into(),
        }])
    }

    /// `500 INTERNAL`, logging the cause (which is never returned).
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "an internal error occurred",
        )
    }

    /// The envelope for this error.
    pub fn envelope(&self, trace_id: &str) -> ErrorEnvelope {
        ErrorEnvelope {
            error: ErrorBody {
                code: self.code.clone(),
                kind: kind_of(self.status).to_owned(),
                message: self.message.clone(),
                details: self.details.clone(),
            },
            field_errors: self.field_errors.clone(),
            trace_id: self
                .recorded_trace_id
                .clone()
                .unwrap_or_else(|| trace_id.to_owned()),
        }
    }

    /// The response: status and envelope.
    ///
    /// A `503` or `408` carries `Retry-After: 1`; a `429` the seconds its details name. A replayed refusal carries the trace id recorded
    /// with it in `x-trace-id` as well as in its body: one response, one trace id.
    pub fn into_response_with(self, trace_id: &str) -> Response {
        let envelope = self.envelope(trace_id);
        let body = serde_json::to_vec(&envelope).unwrap_or_else(|_| b"{}".to_vec());
        let mut response = (
            self.status,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        let headers = response.headers_mut();
        if matches!(self.status.as_u16(), 408 | 503) {
            headers.insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("1"),
            );
        }
        // A `429` says when: the seconds in its details, in the header too.
        if let Some(seconds) = self
            .details
            .as_ref()
            .and_then(|d| d.get("retryAfterSeconds"))
            .and_then(serde_json::Value::as_u64)
        {
            headers.insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        if self.recorded_trace_id.is_some()
            && let Ok(value) = axum::http::HeaderValue::from_str(&envelope.trace_id)
        {
            headers.insert("x-trace-id", value);
        }
        response
    }
}

impl From<Failure> for ApiError {
    fn from(f: Failure) -> Self {
        let status = match f.kind {
            FailureKind::Validation => StatusCode::BAD_REQUEST,
            FailureKind::Forbidden => StatusCode::FORBIDDEN,
            FailureKind::NotFound => StatusCode::NOT_FOUND,
            FailureKind::Conflict => StatusCode::CONFLICT,
            FailureKind::RuleViolation => StatusCode::UNPROCESSABLE_ENTITY,
            FailureKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            FailureKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            FailureKind::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        };
        Self {
            status,
            code: f.code,
            message: f.message,
            field_errors: f.field_errors.into_iter().map(field_body).collect(),
            details: f.details,
            recorded_trace_id: None,
        }
    }
}

fn field_body(e: FieldError) -> FieldErrorBody {
    FieldErrorBody {
        field: e.field,
        code: e.code,
        message: e.message,
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Failure(f) => f.into(),
            StoreError::IdempotencyKeyReused => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "IDEMPOTENCY_KEY_REUSED",
                "this idempotency key was already used with a different request",
            ),
            StoreError::InProgress => Self::new(
                StatusCode::CONFLICT,
                "IDEMPOTENCY_REQUEST_IN_PROGRESS",
                "a request with this idempotency key is still in progress; retrying later is safe",
            ),
            e if e.is_unavailable() => {
                tracing::error!(error = %e, "database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "UNAVAILABLE",
                    "the database is unavailable; retry later",
                )
            }
            StoreError::Unavailable { code, message } => {
                tracing::warn!(code, message = %message, "an outside party did not answer");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    code,
                    format!("{message}; retrying with the same idempotency key is safe"),
                )
            }
            other => Self::internal(&other),
        }
    }
}

/// The codes every procedure may answer with, whatever it does.
pub const COMMON_ERRORS: &[&str] = &[
    "VALIDATION_FAILED",
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "NOT_A_MEMBER",
    "PAYLOAD_TOO_LARGE",
    "UNSUPPORTED_MEDIA_TYPE",
    "METHOD_NOT_ALLOWED",
    "REQUEST_TIMEOUT",
    "RATE_LIMITED",
    "INTERNAL",
    "UNAVAILABLE",
];
