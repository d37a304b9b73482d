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
use hestami_store::blobs::BlobStore;

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
    /// How long reading a request's body may take, once its head has arrived, before it is
    /// answered with `408` (a client that announced a body and stalled).
    pub body_read_timeout: Duration,
    /// Where uploaded blobs (photos, documents, signatures) are kept.
    pub blobs: BlobStore,
    /// The largest blob accepted, in bytes.
    pub max_blob_bytes: u64,
    /// How long a blob upload or download may take (a phone on a slow link sends 25 MiB in
    /// minutes); the procedures keep `request_timeout`.
    pub blob_timeout: Duration,
    /// Requests a second per token and per organization (none by default here; `hestami
    /// serve` applies [`RateLimits::SERVE`](crate::limits::RateLimits::SERVE)).
    pub rate_limits: crate::limits::RateLimits,
}

impl ServerConfig {
    /// The default settings, with blobs kept in `blobs`.
    pub fn with_blobs(blobs: BlobStore) -> Self {
        Self {
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(60),
            body_read_timeout: Duration::from_secs(30),
            blobs,
            max_blob_bytes: hestami_core::blob::DEFAULT_MAX_BYTES,
            blob_timeout: Duration::from_secs(600),
            rate_limits: crate::limits::RateLimits::default(),
        }
    }
}

impl Default for ServerConfig {
    /// Blobs go to `hestami-blobs` in the system's temporary directory (see
    /// [`ServerConfig::with_blobs`] for anything that must outlive the machine's temporary
    /// files).
    fn default() -> Self {
        Self::with_blobs(
            BlobStore::local(std::env::temp_dir().join("hestami-blobs"))
                .expect("the temporary directory is writable"),
        )
    }
}

/// Limits on connections, applied by [`serve_with`] before any request is read.
#[derive(Clone, Debug)]
pub struct ConnectionLimits {
    /// How long a client has to send a request's head (its request line and headers), on a new
    /// connection and between requests on a kept-alive one; then the connection is closed.
    pub header_read_timeout: Duration,
    /// The most connections open at once; one more is answered `503` and closed.
    pub max_connections: usize,
    /// The most connections open at once from one client address.
    pub max_connections_per_address: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_connections_per_address: 256,
        }
    }
}

/// What every request shares.
#[derive(Clone, Debug)]
pub struct AppState {
    pub(crate) services: Services,
    pub(crate) procedures: Arc<HashMap<(String, String, String), Procedure>>,
    openapi: Arc<String>,
    pub(crate) config: ServerConfig,
    pub(crate) limiter: Arc<crate::limits::Limiter>,
}

impl AppState {
    /// The state for a router over `services`.
    pub fn new(services: Services, config: ServerConfig) -> Self {
        let procedures = crate::procedures()
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
            limiter: Arc::new(crate::limits::Limiter::new(config.rate_limits)),
            config,
        }
    }
}

/// The address of the client at the other end of the connection, set by [`serve_with`] (a
/// router served another way has none, and the per-address sign-in limit then does not apply).
#[derive(Clone, Copy, Debug)]
pub struct PeerAddress(pub std::net::IpAddr);

/// The trace id of the request being served, set by the outermost middleware.
#[derive(Clone, Debug)]
pub(crate) struct TraceId(pub(crate) String);

/// Builds the router.
pub fn router(state: AppState) -> Router {
    let body_limit = state.config.body_limit;
    let timeout = state.config.request_timeout;
    // A blob's body may be far larger than a procedure's: each route has its own limit.
    let blob_limit = usize::try_from(state.config.max_blob_bytes)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let blobs = Router::new()
        .route(
            "/api/v1/blobs/{sha256}",
            axum::routing::put(crate::blobs::upload).get(crate::blobs::download),
        )
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            state.config.blob_timeout,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(blob_limit));
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
        .route("/ready", get(ready))
        .route(
            "/metrics/db",
            get(|| async { axum::Json(hestami_store::counters()) }),
        )
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(body_limit))
        .merge(blobs)
        .fallback(not_found)
        .with_state(state)
        // Outermost last: trace wraps everything, then the envelope turns whatever the layers
        // inside it answered (panic, body limit, timeout, routing) into the error envelope.
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
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let started = std::time::Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    // One line per request at INFO: what, how it ended, how long, and the trace to look up.
    tracing::info!(
        parent: &span,
        method = %method,
        path = %path,
        status = status.as_u16(),
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        trace_id = %trace_id,
        "request"
    );
    span.record("http.status", status.as_u16());
    span.record(
        "outcome",
        if status.is_success() {
            "ok"
        } else {
            crate::error::kind_of(status)
        },
    );
    // A replayed refusal already carries the trace id recorded with it, in its body and in this
    // header alike: the trace of the request that decided the answer.
    if !response.headers().contains_key("x-trace-id")
        && let Ok(value) = HeaderValue::from_str(&trace_id)
    {
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
        StatusCode::REQUEST_TIMEOUT => ApiError::new(
            status,
            "REQUEST_TIMEOUT",
            "the request body did not arrive in time",
        ),
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

/// Readiness, for a load balancer: `200` when the database answers, `503` (with the envelope
/// and `Retry-After`) when it does not. `/health` is liveness: it answers while the process does.
async fn ready(State(state): State<AppState>, request: Request) -> Response {
    let trace_id = request
        .extensions()
        .get::<TraceId>()
        .map(|t| t.0.clone())
        .unwrap_or_default();
    match state.services.store().ping().await {
        Ok(()) => axum::Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(e) => ApiError::from(e).into_response_with(&trace_id),
    }
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
    let procedure = state
        .procedures
        .get(&(namespace.clone(), version.clone(), name.clone()))
        .cloned();
    let handler_trace_id = trace_id.clone();
    let peer = request.extensions().get::<PeerAddress>().map(|p| p.0);
    // The request is served in a task of its own: a client that hangs up does not cancel it
    // half-way. It runs to its end (a mutation's outcome is recorded) and its answer is dropped.
    let served = tokio::spawn(
        async move {
            let procedure = procedure.ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "UNKNOWN_PROCEDURE",
                    format!("no procedure {namespace}/{version}/{name}"),
                )
            })?;
            let ctx = authorize(&state, &procedure, &headers, peer, &handler_trace_id).await?;
            let body = read_body(
                request,
                state.config.body_limit,
                state.config.body_read_timeout,
            )
            .await?;
            procedure.call(ctx, body).await
        }
        .instrument(span),
    )
    .await;
    let result = served.unwrap_or_else(|e| Err(ApiError::internal(&e)));
    match result {
        Ok(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(error) => error.into_response_with(&trace_id),
    }
}

async fn read_body(
    request: Request<Body>,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    if let Some(ct) = request.headers().get(header::CONTENT_TYPE)
        && !is_json_media_type(ct.to_str().unwrap_or_default())
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            "send the body as application/json (optionally with charset=utf-8)",
        ));
    }
    match tokio::time::timeout(timeout, axum::body::to_bytes(request.into_body(), limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("the body exceeds {limit} bytes"),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "REQUEST_TIMEOUT",
            format!(
                "the request body did not arrive within {} s",
                timeout.as_secs()
            ),
        )),
    }
}

/// Whether a `Content-Type` is `application/json`, as RFC 9110 §8.3.1 reads it: type and
/// subtype compared without regard to case, optional whitespace around parameters, and the one
/// parameter JSON knows, `charset`, only as `utf-8` (RFC 8259 §8.1). `application/json-patch+json`
/// and other `+json` types are other media types, with other meanings, and are refused.
pub fn is_json_media_type(value: &str) -> bool {
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return false;
    }
    parts.all(|parameter| {
        let Some((name, value)) = parameter.split_once('=') else {
            return false;
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        name.trim().eq_ignore_ascii_case("charset") && value.eq_ignore_ascii_case("utf-8")
    })
}

/// The organization a request names in `X-Organization-Id`.
fn organization_header(headers: &HeaderMap) -> Result<OrganizationId, ApiError> {
    let raw = headers.get("x-organization-id").ok_or_else(|| {
        ApiError::field(
            "X-Organization-Id",
            "required",
            "send X-Organization-Id: <organization id>",
        )
    })?;
    raw.to_str()
        .ok()
        .and_then(|v| uuid::Uuid::try_parse(v.trim()).ok())
        .map(OrganizationId::from_uuid)
        .ok_or_else(|| {
            ApiError::field(
                "X-Organization-Id",
                "invalid_uuid",
                "the organization id is not a UUID",
            )
        })
}

/// Authenticates the bearer token, resolves `X-Organization-Id`, checks the membership and the
/// role's permission: all before any handler runs.
pub(crate) async fn authorize(
    state: &AppState,
    procedure: &Procedure,
    headers: &HeaderMap,
    peer: Option<std::net::IpAddr>,
    trace_id: &str,
) -> Result<Ctx, ApiError> {
    let unauthenticated =
        |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", message);
    if procedure.public {
        return Ok(Ctx {
            services: state.services.clone(),
            user_id: None,
            token: None,
            caller: None,
            role: None,
            peer,
            trace_id: trace_id.to_owned(),
            limiter: None,
        });
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // The scheme name is case-insensitive (RFC 9110 §11.1).
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| unauthenticated("send Authorization: Bearer <token>"))?;
    // Read before the token is checked, refused after it: an unknown token is `401` whatever
    // the organization header says.
    let organization_id = procedure.org_scoped.then(|| organization_header(headers));
    let (user_id, role) = state
        .services
        .store()
        .authorize(token, organization_id.clone().and_then(Result::ok))
        .await?
        .ok_or_else(|| unauthenticated("the token is unknown, expired or revoked"))?;
    // Counted once the token is known to be good (an unknown one is `401`, not a bucket) and
    // before anything is read or written for it. The organization's bucket only for its
    // members: a stranger naming it (and refused `403`) must not spend its rate.
    let member_of = match (&organization_id, role) {
        (Some(Ok(org)), Some(_)) => Some(org.as_uuid()),
        _ => None,
    };
    state.limiter.take(token, member_of, 1)?;
    let mut ctx = Ctx {
        services: state.services.clone(),
        user_id: Some(user_id),
        token: Some(crate::rpc::Bearer(token.to_owned())),
        caller: None,
        role: None,
        peer,
        trace_id: trace_id.to_owned(),
        limiter: Some(state.limiter.clone()),
    };
    let Some(organization_id) = organization_id else {
        return Ok(ctx);
    };
    let organization_id = organization_id?;
    tracing::Span::current().record("organization.id", tracing::field::display(organization_id));
    let role = role.ok_or_else(|| {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "NOT_A_MEMBER",
            "you are not a member of this organization",
        )
    })?;
    if !is_permitted(role, &procedure.path()) {
        return Err(hestami_store::directory::forbidden(role, &procedure.path()).into());
    }
    // A technician sees and moves only their own work: the jobs and appointments of the
    // technician record linked to their user.
    let scope = if role == hestami_core::org::Role::Technician {
        state
            .services
            .technician_scope(organization_id, user_id)
            .await?
    } else {
        hestami_store::Scope::Organization
    };
    ctx.caller = Some(Caller {
        organization_id,
        user_id: Some(user_id),
        scope,
    });
    ctx.role = Some(role);
    Ok(ctx)
}

/// Serves `router` on `listener` with the default [`ConnectionLimits`] until `shutdown`
/// resolves, then drains in-flight requests.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, router, ConnectionLimits::default(), shutdown).await
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves, then drains in-flight
/// requests.
///
/// A connection over either cap gets a `503` envelope with `Retry-After` and is closed before
/// anything is read from it. A client that does not finish sending a request's head within
/// the header-read timeout is disconnected.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use tower::ServiceExt as _;

    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let open = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let per_address = Arc::new(std::sync::Mutex::new(HashMap::new()));
    tokio::pin!(shutdown);
    loop {
        let (stream, address) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            refuse(stream, "the server has too many open connections");
            continue;
        };
        let Some(slot) = AddressSlot::take(
            &per_address,
            address.ip(),
            limits.max_connections_per_address,
        ) else {
            refuse(stream, "too many open connections from your address");
            continue;
        };
        let peer = PeerAddress(address.ip());
        let service = router
            .clone()
            .map_request(move |request: Request<hyper::body::Incoming>| {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(peer);
                request
            });
        let service = hyper_util::service::TowerToHyperService::new(service);
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        let header_read_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            // hyper's header timeout starts with the first byte of a head; a client that
            // connects and sends nothing at all is held to the same limit here.
            let mut first = [0u8; 1];
            if !matches!(
                tokio::time::timeout(header_read_timeout, stream.peek(&mut first)).await,
                Ok(Ok(1))
            ) {
                drop((permit, slot));
                return;
            }
            let connection = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .into_owned();
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop((permit, slot));
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Answers a connection over a cap with `503` and closes it, without reading from it or
/// waiting on it: a client that does not read its answer loses nothing but the answer.
fn refuse(stream: tokio::net::TcpStream, message: &str) {
    let envelope = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "TOO_MANY_CONNECTIONS",
        message,
    )
    .envelope(&crate::telemetry::random_trace_id());
    let body = serde_json::to_string(&envelope).unwrap_or_default();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(response.as_bytes());
}

/// One connection's place in its address's count; given back when dropped.
struct AddressSlot {
    counts: Arc<std::sync::Mutex<HashMap<std::net::IpAddr, usize>>>,
    address: std::net::IpAddr,
}

impl AddressSlot {
    fn take(
        counts: &Arc<std::sync::Mutex<HashMap<std::net::IpAddr, usize>>>,
        address: std::net::IpAddr,
        limit: usize,
    ) -> Option<Self> {
        let mut map = counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = map.entry(address).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(Self {
            counts: counts.clone(),
            address,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut map = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = map.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.address);
            }
        }
    }
}
