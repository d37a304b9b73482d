//! The router: one RPC route, the OpenAPI document, and the middleware that gives every
//! response a trace id and every error the envelope.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

use hestami_core::ids::OrganizationId;
use hestami_core::org::is_permitted;
use hestami_store::app::{Caller, Services};

use crate::error::ApiError;
use crate::rpc::{Ctx, Procedure};
use crate::telemetry::adopt_parent;

/// Server settings.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// How long a request may take before it is answered with `503`.
    pub request_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// What every request shares.
#[derive(Clone, Debug)]
pub struct AppState {
    services: Services,
    procedures: Arc<HashMap<(String, String, String), Procedure>>,
    openapi: Arc<String>,
    config: ServerConfig,
}

impl AppState {
    /// The state for a router over `services`.
    pub fn new(services: Services, config: ServerConfig) -> Self {
        let procedures = crate::v1::procedures()
            .into_iter()
            .map(|p| {
                (
                    (
                        p.namespace.to_owned(),
                        p.version.to_owned(),
                        p.name.to_owned(),
                    ),
                    p,
                )
            })
            .collect();
        Self {
            services,
            procedures: Arc::new(procedures),
            openapi: Arc::new(crate::openapi::document_json()),
            config,
        }
    }
}

/// The trace id of the request being served, set by the outermost middleware.
#[derive(Clone, Debug)]
struct TraceId(String);

/// Builds the router.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit;
    let timeout = state.config.request_timeout;
    Router::new()
        .route(
            "/api/v1/rpc/{namespace}/{version}/{procedure}",
            post(dispatch),
        )
        .route("/api/v1/openapi.json", get(openapi))
        .route(
            "/health",
            get(|| async { axum::Json(serde_json::json!({ "status": "ok" })) }),
        )
        .fallback(not_found)
        .with_state(state)
        // Outermost last: trace wraps everything, then the envelope turns whatever the layers
        // inside it answered (panic, body limit, timeout, routing) into the error envelope.
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(body_limit))
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(middleware::from_fn(envelope_framework_errors))
        .layer(middleware::from_fn(trace))
}

/// Opens the request's span, adopts the caller's `traceparent`, and stamps `x-trace-id`.
async fn trace(mut request: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "rpc",
        rpc.namespace = tracing::field::Empty,
        rpc.procedure = tracing::field::Empty,
        rpc.version = tracing::field::Empty,
        organization.id = tracing::field::Empty,
        workflow.id = tracing::field::Empty,
        outcome = tracing::field::Empty,
        http.status = tracing::field::Empty,
        http.path = %request.uri().path(),
    );
    let trace_id = adopt_parent(&span, request.headers());
    request.extensions_mut().insert(TraceId(trace_id.clone()));
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    span.record("http.status", status.as_u16());
    span.record(
        "outcome",
        if status.is_success() {
            "ok"
        } else {
            crate::error::kind_of(status)
        },
    );
    if let Ok(value) = HeaderValue::from_str(&trace_id) {
        response.headers_mut().insert("x-trace-id", value);
    }
    response
}

/// Turns any error response the framework made itself (404 route, 405 method, 413 body,
/// timeouts, panics) into the envelope. Responses that already are JSON are left alone.
async fn envelope_framework_errors(request: Request, next: Next) -> Response {
    let trace_id = request
        .extensions()
        .get::<TraceId>()
        .map(|t| t.0.clone())
        .unwrap_or_default();
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !status.is_client_error() && !status.is_server_error() || is_json {
        return response;
    }
    let error = match status {
        StatusCode::NOT_FOUND => ApiError::new(status, "NOT_FOUND", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => ApiError::new(
            status,
            "METHOD_NOT_ALLOWED",
            "procedures are called with POST",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(status, "PAYLOAD_TOO_LARGE", "the request body is too large")
        }
        StatusCode::SERVICE_UNAVAILABLE => ApiError::new(
            status,
            "UNAVAILABLE",
            "the request took too long; retry later",
        ),
        s if s.is_server_error() => ApiError::internal(&format!("framework answered {s}")),
        s => ApiError::new(
            s,
            "BAD_REQUEST",
            s.canonical_reason().unwrap_or("bad request"),
        ),
    };
    error.into_response_with(&trace_id)
}

async fn not_found(request: Request) -> Response {
    let trace_id = request
        .extensions()
        .get::<TraceId>()
        .map(|t| t.0.clone())
        .unwrap_or_default();
    ApiError::new(
        StatusCode::NOT_FOUND,
        "NOT_FOUND",
        format!("no route {}", request.uri().path()),
    )
    .into_response_with(&trace_id)
}

async fn openapi(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi.as_str().to_owned(),
    )
        .into_response()
}

async fn dispatch(
    State(state): State<AppState>,
    Path((namespace, version, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    request: Request<Body>,
) -> Response {
    let trace_id = request
        .extensions()
        .get::<TraceId>()
        .map(|t| t.0.clone())
        .unwrap_or_default();
    let span = tracing::Span::current();
    span.record("rpc.namespace", namespace.as_str());
    span.record("rpc.version", version.as_str());
    span.record("rpc.procedure", name.as_str());
    let result = async {
        let procedure = state
            .procedures
            .get(&(namespace.clone(), version.clone(), name.clone()))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "UNKNOWN_PROCEDURE",
                    format!("no procedure {namespace}/{version}/{name}"),
                )
            })?;
        let ctx = authorize(&state, procedure, &headers, &trace_id).await?;
        let body = read_body(request, state.config.body_limit).await?;
        procedure.call(ctx, body).await
    }
    .await;
    match result {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => error.into_response_with(&trace_id),
    }
}

async fn read_body(request: Request<Body>, limit: usize) -> Result<Bytes, ApiError> {
    if let Some(ct) = request.headers().get(header::CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or_default();
        if !ct.starts_with("application/json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "send the body as application/json",
            ));
        }
    }
    axum::body::to_bytes(request.into_body(), limit)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                format!("the body exceeds {limit} bytes"),
            )
        })
}

/// Authenticates the bearer token, resolves `X-Organization-Id`, checks the membership and the
/// role's permission: all before any handler runs.
async fn authorize(
    state: &AppState,
    procedure: &Procedure,
    headers: &HeaderMap,
    trace_id: &str,
) -> Result<Ctx, ApiError> {
    let unauthenticated =
        |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message);
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme name is case-insensitive (RFC 9110 §11.1).
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthenticated("send Authorization: Bearer <token>"))?;
    let store = state.services.store();
    let user_id = store
        .authenticate(token)
        .await?
        .ok_or_else(|| unauthenticated("the token is unknown, expired or revoked"))?;
    let mut ctx = Ctx {
        services: state.services.clone(),
        user_id,
        caller: None,
        trace_id: trace_id.to_owned(),
    };
    if !procedure.org_scoped {
        return Ok(ctx);
    }
    let raw = headers.get("x-organization-id").ok_or_else(|| {
        ApiError::field(
            "X-Organization-Id",
            "required",
            "send X-Organization-Id: <organization id>",
        )
    })?;
    let organization_id = raw
        .to_str()
        .ok()
        .and_then(|v| uuid::Uuid::try_parse(v.trim()).ok())
        .map(OrganizationId::from_uuid)
        .ok_or_else(|| {
            ApiError::field(
                "X-Organization-Id",
                "invalid_uuid",
                "the organization id is not a UUID",
            )
        })?;
    tracing::Span::current().record("organization.id", tracing::field::display(organization_id));
    let role = store
        .role_of(user_id, organization_id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                "NOT_A_MEMBER",
                "you are not a member of this organization",
            )
        })?;
    if !is_permitted(role, &procedure.path()) {
        return Err(hestami_store::directory::forbidden(role, &procedure.path()).into());
    }
    ctx.caller = Some(Caller {
        organization_id,
        user_id: Some(user_id),
    });
    Ok(ctx)
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
