//! The blob path beside the RPC route: `PUT /api/v1/blobs/{sha256}` uploads bytes named by their
//! SHA-256, `GET /api/v1/blobs/{sha256}` downloads them, with a bearer token and
//! `X-Organization-Id` or with the query of a signed link from `attachment/v1/downloadLink`.
//!
//! An upload is idempotent by content: the same bytes under the same name answer the same blob,
//! `201` the first time and `200` after. The name is checked against the bytes and the type is
//! read from the bytes; a wrong name, a type off the allowlist or a body over the limit is
//! refused before anything is stored.

use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;

use hestami_core::blob::{MediaType, Sha256Hex};
use hestami_core::ids::OrganizationId;

use crate::error::ApiError;
use crate::server::{AppState, PeerAddress, TraceId, authorize};
use crate::v1::attachment::MediaTypeDto;

/// What an upload answers.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BlobDto {
    /// The SHA-256 of the bytes.
    pub sha256: String,
    /// Their size.
    pub size_bytes: u64,
    /// Their type, read from the bytes.
    pub media_type: MediaTypeDto,
    /// When the organization first uploaded them.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The query of a signed link (all three, or none for a download with a token).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkQuery {
    organization_id: Option<String>,
    expires: Option<String>,
    signature: Option<String>,
}

/// The request's trace id and the client's address.
fn context(request: &Request) -> (String, Option<std::net::IpAddr>) {
    let trace_id = request
        .extensions()
        .get::<TraceId>()
        .map(|t| t.0.clone())
        .unwrap_or_default();
    let peer = request.extensions().get::<PeerAddress>().map(|p| p.0);
    (trace_id, peer)
}

fn parse_name(raw: &str) -> Result<Sha256Hex, ApiError> {
    Sha256Hex::parse(raw).map_err(|e| ApiError::field("sha256", e.code, e.message))
}

async fn caller_for(
    state: &AppState,
    procedure: &str,
    headers: &HeaderMap,
    peer: Option<std::net::IpAddr>,
    trace_id: &str,
) -> Result<hestami_store::app::Caller, ApiError> {
    let (namespace, rest) = procedure.split_once('/').unwrap_or_default();
    let (version, name) = rest.split_once('/').unwrap_or_default();
    let procedure = state
        .procedures
        .get(&(namespace.to_owned(), version.to_owned(), name.to_owned()))
        .ok_or_else(|| ApiError::internal(&format!("no procedure {procedure}")))?;
    let ctx = authorize(state, procedure, headers, peer, trace_id).await?;
    ctx.caller().cloned()
}

async fn read_all(request: Request, limit: u64, timeout: Duration) -> Result<Bytes, ApiError> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    match tokio::time::timeout(timeout, axum::body::to_bytes(request.into_body(), limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("a blob may be at most {limit} bytes"),
        )),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "REQUEST_TIMEOUT",
            format!("the blob did not arrive within {} s", timeout.as_secs()),
        )),
    }
}

/// `PUT /api/v1/blobs/{sha256}`.
pub(crate) async fn upload(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let (trace_id, peer) = context(&request);
    let result = async {
        let caller = caller_for(&state, "attachment/v1/attach", &headers, peer, &trace_id).await?;
        let sha = parse_name(&name)?;
        let max = state.config.max_blob_bytes;
        // The whole upload has `blob_timeout`; the body's arrival gets it less a second, so a
        // stalled body is answered `408` rather than cut off by the route's `503`.
        let wait = state
            .config
            .blob_timeout
            .saturating_sub(std::time::Duration::from_secs(1));
        let bytes = read_all(request, max, wait).await?;
        let info = state
            .services
            .blob_put(&caller, &state.config.blobs, sha, bytes, max)
            .await?;
        let status = if info.created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        let body = BlobDto {
            sha256: info.sha256.to_string(),
            size_bytes: info.size_bytes,
            media_type: info.media_type.into(),
            created_at: info.created_at,
        };
        Ok::<_, ApiError>((status, axum::Json(body)).into_response())
    }
    .await;
    result.unwrap_or_else(|e| e.into_response_with(&trace_id))
}

/// `GET /api/v1/blobs/{sha256}`.
pub(crate) async fn download(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(link): Query<LinkQuery>,
    headers: HeaderMap,
    request: Request,
) -> Response {
    let (trace_id, peer) = context(&request);
    let result = async {
        let sha = parse_name(&name)?;
        // A signature makes it a link (whatever else is missing, an incomplete link is simply
        // not a valid one); without one, the token decides.
        let found = match &link.signature {
            None => {
                let caller =
                    caller_for(&state, "attachment/v1/list", &headers, peer, &trace_id).await?;
                state
                    .services
                    .blob_get(&caller, &state.config.blobs, sha.clone())
                    .await?
            }
            Some(signature) => {
                let org = link
                    .organization_id
                    .as_deref()
                    .and_then(|o| uuid::Uuid::try_parse(o).ok())
                    .map(OrganizationId::from_uuid);
                let expires = link.expires.as_deref().and_then(|e| e.parse::<i64>().ok());
                let found = match (org, expires) {
                    (Some(org), Some(expires)) => {
                        state
                            .services
                            .blob_by_link(&state.config.blobs, org, sha.clone(), expires, signature)
                            .await?
                    }
                    _ => None,
                };
                found.ok_or_else(|| {
                    ApiError::new(
                        StatusCode::NOT_FOUND,
                        "NOT_FOUND",
                        "the link is not valid or has expired",
                    )
                })?
            }
        };
        Ok::<_, ApiError>(blob_response(&sha, found.0, found.1))
    }
    .await;
    result.unwrap_or_else(|e| e.into_response_with(&trace_id))
}

fn blob_response(sha: &Sha256Hex, media: MediaType, bytes: Bytes) -> Response {
    let mut response = (StatusCode::OK, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(media.as_str()),
    );
    // The bytes never change under their name; they are private to the organization.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{sha}\"")) {
        headers.insert(header::ETAG, etag);
    }
    response
}
