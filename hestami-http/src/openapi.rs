//! The OpenAPI 3.1 document, generated from the procedure table and the wire types.
//!
//! A committed copy lives in `hestami-http/openapi/v1.json`; a test fails when the generated
//! document differs from it (regenerate with `cargo run -p hestami-cli -- openapi >
//! hestami-http/openapi/v1.json`).

use std::collections::BTreeMap;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, PathItem};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::ComponentsBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Ref, RefOr,
};
use utoipa::{PartialSchema, ToSchema};

use crate::error::{COMMON_ERRORS, ErrorEnvelope};

/// The document.
pub fn document() -> OpenApi {
    let mut schemas = Vec::new();
    let mut paths = PathsBuilder::new();
    let envelope_name = {
        schemas.push((ErrorEnvelope::name().into_owned(), ErrorEnvelope::schema()));
        ErrorEnvelope::schemas(&mut schemas);
        ErrorEnvelope::name().into_owned()
    };
    let mut procedures = crate::procedures();
    procedures.sort_by_key(|p| p.path());
    for p in procedures {
        let input = (p.input)(&mut schemas);
        let output = (p.output)(&mut schemas);
        let codes = error_codes(&p);
        let description = format!(
            "{}{}\n\nError codes: {}.",
            p.summary,
            match (p.workflow, p.public, p.namespace) {
                (Some(w), _, _) => format!(
                    "\n\nMutating: requires `idempotencyKey`; runs the durable workflow `{w}`."
                ),
                (None, true, _) =>
                    "\n\nPublic: called without a token. Sign-in is not a workflow: \
                     its answer holds secrets, which are never recorded, and it is safe to repeat."
                        .to_owned(),
                (None, false, "auth") => "\n\nEnds a session; safe to repeat.".to_owned(),
                (None, false, "sync") if p.name == "push" => {
                    "\n\nRuns each item as the call it is (each mutating procedure its own \
                     workflow, under the caller's role and scope); safe to replay."
                        .to_owned()
                }
                (None, false, "sync") => "\n\nRead-only (it records, per device, what it \
                     sent, so that only what a device holds is ever tombstoned)."
                    .to_owned(),
                (None, false, _) => "\n\nRead-only.".to_owned(),
            },
            codes.join(", ")
        );
        let json = |name: &str| {
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(name)))
                .build()
        };
        let error = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .content("application/json", json(&envelope_name))
                .build()
        };
        let mut op = OperationBuilder::new()
            .operation_id(Some(format!("{}.{}.{}", p.namespace, p.version, p.name)))
            .summary(Some(p.summary))
            .description(Some(description))
            .tag(p.namespace)
            .request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(utoipa::openapi::Required::True))
                    .content("application/json", json(&input))
                    .build(),
            ))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("the result")
                    .content("application/json", json(&output))
                    .build(),
            )
            .response(
                "400",
                error("validation: malformed JSON, a wrong type, a missing or unknown field"),
            )
            .response(
                "401",
                error("unauthenticated: no, unknown, expired or revoked token"),
            )
            .response(
                "403",
                error("forbidden: not a member, or the role may not call this procedure"),
            )
            .response(
                "404",
                error("not_found: no such resource in this organization, or no such procedure"),
            );
        if p.workflow.is_some() {
            op = op
                .response("409", error("conflict: a state or version conflict, or the same idempotency key still in progress"))
                .response("422", error("rule_violation: a business rule, or an idempotency key reused with another body"));
        }
        // A read that refuses by a business rule (a job without a window to judge in, an
        // unknown trade) answers 422 with the codes it declares.
        let rules: Vec<&str> = p
            .errors
            .iter()
            .copied()
            .filter(|c| *c != "NOT_FOUND")
            .collect();
        if p.workflow.is_none() && !p.public && !rules.is_empty() {
            op = op.response(
                "422",
                error(&format!("rule_violation: {}", rules.join(", "))),
            );
        }
        let retry_after = || {
            let mut header = utoipa::openapi::header::Header::new(
                utoipa::openapi::Object::with_type(utoipa::openapi::Type::Integer),
            );
            header.description = Some("seconds to wait before retrying".into());
            header
        };
        let retry_later = |what: &str| {
            ResponseBuilder::new()
                .description(what)
                .header("Retry-After", retry_after())
                .content("application/json", json(&envelope_name))
                .build()
        };
        if !p.public {
            op = op.response(
                "429",
                retry_later("rate_limited: RATE_LIMITED, too many requests for the token or the organization (details.limit); details.retryAfterSeconds and Retry-After say when to retry"),
            );
        }
        if p.public {
            // Sign-in: the credentials are in the body, and password attempts are limited.
            op = op
                .security(SecurityRequirement::default())
                .response(
                    "422",
                    error("rule_violation: ORGANIZATION_REQUIRED, a member of several organizations must name one"),
                )
                .response(
                    "429",
                    retry_later("rate_limited: RATE_LIMITED, too many password attempts for the account or the address; details.retryAfterSeconds says when to retry"),
                );
        }
        op = op
            .response(
                "405",
                error("validation: METHOD_NOT_ALLOWED, a procedure is called with POST"),
            )
            .response(
                "408",
                retry_later("unavailable: REQUEST_TIMEOUT, the body did not arrive in time"),
            )
            .response(
                "413",
                error("validation: PAYLOAD_TOO_LARGE, the body exceeds 1 MiB"),
            )
            .response(
                "415",
                error("validation: UNSUPPORTED_MEDIA_TYPE, the body is not application/json (charset utf-8 if named)"),
            )
            .response("500", error("internal"))
            .response(
                "503",
                retry_later("unavailable: the database or an outside party did not answer, the request took too long, or the server has too many connections (TOO_MANY_CONNECTIONS)"),
            );
        if p.org_scoped {
            op = op.parameter(
                utoipa::openapi::path::ParameterBuilder::new()
                    .name("X-Organization-Id")
                    .parameter_in(utoipa::openapi::path::ParameterIn::Header)
                    .required(utoipa::openapi::Required::True)
                    .description(Some("the organization the call runs in"))
                    .schema(Some(
                        utoipa::openapi::ObjectBuilder::new()
                            .schema_type(utoipa::openapi::schema::Type::String)
                            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                                utoipa::openapi::KnownFormat::Uuid,
                            ))),
                    )),
            );
        }
        let path = format!("/api/v1/rpc/{}/{}/{}", p.namespace, p.version, p.name);
        paths = paths.path(path, PathItem::new(HttpMethod::Post, op.build()));
    }
    paths = paths.path(
        "/api/v1/blobs/{sha256}",
        blob_path(&mut schemas, &envelope_name),
    );
    // Several types may register the same nested schema; keep one of each, sorted by name. Two
    // different types under one name would leave one of them undocumented: refuse that.
    let mut unique: BTreeMap<String, RefOr<utoipa::openapi::schema::Schema>> = BTreeMap::new();
    for (name, schema) in schemas {
        if let Some(seen) = unique.get(&name) {
            let same = serde_json::to_value(seen).ok() == serde_json::to_value(&schema).ok();
            assert!(
                same,
                "two different types are both named {name} in the document"
            );
        }
        unique.insert(name, schema);
    }
    let schemas = unique;
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Hestami Contractor Ops")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Every procedure is POST /api/v1/rpc/{namespace}/{version}/{procedure} with a JSON body. \
                     Errors use one envelope: {error: {code, type, message}, field_errors, trace_id}.",
                ))
                .build(),
        )
        .servers(Some(vec![
            utoipa::openapi::server::ServerBuilder::new()
                .url("http://127.0.0.1:8080")
                .description(Some(
                    "`hestami serve` with its default --listen; a deployment serves the same paths at its own origin",
                ))
                .build(),
        ]))
        .paths(paths.build())
        .components(Some(components))
        .security(Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]))
        .build()
}

/// `PUT` and `GET /api/v1/blobs/{sha256}`: the binary path beside the RPC route.
fn blob_path(
    schemas: &mut Vec<(String, RefOr<utoipa::openapi::schema::Schema>)>,
    envelope: &str,
) -> PathItem {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::{ObjectBuilder, Required, schema::Type};
    schemas.push((
        crate::blobs::BlobDto::name().into_owned(),
        crate::blobs::BlobDto::schema(),
    ));
    crate::blobs::BlobDto::schemas(schemas);
    let json = |name: &str| {
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(name)))
            .build()
    };
    let error = |what: &str| {
        ResponseBuilder::new()
            .description(what)
            .content("application/json", json(envelope))
            .build()
    };
    let binary = || {
        ContentBuilder::new()
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .content_media_type("application/octet-stream"),
            ))
            .build()
    };
    let string_param = |name: &str,
                        place: ParameterIn,
                        required: bool,
                        description: &str,
                        pattern: Option<&str>| {
        let mut schema = ObjectBuilder::new().schema_type(Type::String);
        if let Some(p) = pattern {
            schema = schema.pattern(Some(p));
        }
        ParameterBuilder::new()
            .name(name)
            .parameter_in(place)
            .required(if required {
                Required::True
            } else {
                Required::False
            })
            .description(Some(description))
            .schema(Some(schema))
            .build()
    };
    let sha = string_param(
        "sha256",
        ParameterIn::Path,
        true,
        "the SHA-256 of the blob's bytes, 64 hexadecimal digits",
        Some("^[0-9a-fA-F]{64}$"),
    );
    let uuid = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";
    let common = |op: OperationBuilder| {
        op.tag("blob")
            .response("401", error("unauthenticated: no, unknown, expired or revoked token"))
            .response("403", error("forbidden: not a member, or the role may not attach (upload) or list (download)"))
            .response("408", error("unavailable: REQUEST_TIMEOUT, the body did not arrive in time"))
            .response("429", error("rate_limited: RATE_LIMITED, too many requests for the token or the organization; details.retryAfterSeconds and Retry-After say when to retry"))
            .response("500", error("internal"))
            .response("503", error("unavailable: the database or the blob store (BLOB_STORE_UNAVAILABLE) did not answer"))
    };
    let upload = common(
        OperationBuilder::new()
            .operation_id(Some("blob.upload"))
            .summary(Some("Upload a blob (photo, document, signature) named by the SHA-256 of its bytes"))
            .description(Some(
                "Idempotent by content: the same bytes answer the same blob (201 the first time, 200 after). \
                 The SHA-256 in the path must be the body's; the type is read from the bytes (JPEG, PNG, WebP, \
                 HEIC or PDF), never from a name or Content-Type. Allowed to the roles that may call \
                 attachment/v1/attach. Then attach it with attachment/v1/attach.\n\nError codes: \
                 VALIDATION_FAILED (digest_mismatch, invalid_sha256), BLOB_TYPE_NOT_ALLOWED, PAYLOAD_TOO_LARGE, \
                 UNAUTHENTICATED, NOT_A_MEMBER, FORBIDDEN, RATE_LIMITED, BLOB_STORE_UNAVAILABLE.",
            ))
            .parameter(sha.clone())
            .parameter(string_param("X-Organization-Id", ParameterIn::Header, true, "the organization the blob belongs to", Some(uuid)))
            .request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content("application/octet-stream", binary())
                    .build(),
            ))
            .response("200", ResponseBuilder::new().description("the organization already had these bytes").content("application/json", json(&crate::blobs::BlobDto::name())).build())
            .response("201", ResponseBuilder::new().description("stored").content("application/json", json(&crate::blobs::BlobDto::name())).build())
            .response("400", error("validation: the SHA-256 is malformed or not the body's (digest_mismatch), or the bytes are not an allowed type (BLOB_TYPE_NOT_ALLOWED)"))
            .response("413", error("validation: PAYLOAD_TOO_LARGE, the blob exceeds the server's limit (25 MiB by default)")),
    );
    let download = common(
        OperationBuilder::new()
            .operation_id(Some("blob.download"))
            .summary(Some("Download a blob, with a token or through a signed link"))
            .description(Some(
                "With a bearer token and X-Organization-Id (roles that may call attachment/v1/list; a technician only \
                 what they uploaded or what is attached to their jobs), or with the query of a link from \
                 attachment/v1/downloadLink and no token (a `signature` makes it a link: a link missing a part is not valid). The answer is the bytes, with their type.\n\nError codes: \
                 VALIDATION_FAILED, NOT_FOUND, UNAUTHENTICATED, NOT_A_MEMBER, FORBIDDEN, RATE_LIMITED (with a token), BLOB_STORE_UNAVAILABLE.",
            ))
            .parameter(sha)
            .parameter(string_param("X-Organization-Id", ParameterIn::Header, false, "the organization, when downloading with a token", Some(uuid)))
            .parameter(string_param("organizationId", ParameterIn::Query, false, "a signed link's organization", Some(uuid)))
            .parameter(string_param("expires", ParameterIn::Query, false, "a signed link's expiry (Unix seconds)", Some("^[0-9]{1,18}$")))
            .parameter(string_param("signature", ParameterIn::Query, false, "a signed link's signature", Some("^[0-9a-f]{64}$")))
            .response(
                "200",
                ResponseBuilder::new()
                    .description("the bytes")
                    .content("image/jpeg", binary())
                    .content("image/png", binary())
                    .content("image/webp", binary())
                    .content("image/heic", binary())
                    .content("application/pdf", binary())
                    .build(),
            )
            .response("400", error("validation: a malformed SHA-256, or no X-Organization-Id with a token"))
            .response("404", error("not_found: no such blob in the organization, not visible to the caller, or a link that is not valid or has expired")),
    );
    let mut item = PathItem::new(HttpMethod::Put, upload.build());
    item.get = Some(download.build());
    item
}

/// Every error code a procedure may answer: its own, the common ones, and a mutation's
/// idempotency codes.
pub fn error_codes(p: &crate::rpc::Procedure) -> Vec<&'static str> {
    let mut codes: Vec<&str> = p.errors.to_vec();
    codes.extend(COMMON_ERRORS.iter().filter(|c| !p.errors.contains(c)));
    if p.workflow.is_some() {
        codes.extend(["IDEMPOTENCY_KEY_REUSED", "IDEMPOTENCY_REQUEST_IN_PROGRESS"]);
    }
    codes
}

/// The document as pretty JSON with a trailing newline: exactly the committed file's bytes.
///
/// The constraints the server applies to inputs are written into the input schemas on the way
/// (see `constraints`).
pub fn document_json() -> String {
    let mut value = match serde_json::to_value(document()) {
        Ok(value) => value,
        Err(e) => return format!("{{\"error\": \"{e}\"}}\n"),
    };
    crate::constraints::constrain(&mut value);
    let mut text =
        serde_json::to_string_pretty(&value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    /// The committed document is the generated one. To accept a change of the contract:
    /// `UPDATE_OPENAPI=1 cargo test -p hestami-http openapi`.
    #[test]
    fn committed_openapi_matches_the_generated_document() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi/v1.json");
        let generated = super::document_json();
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).expect("write the committed document");
        }
        let committed =
            std::fs::read_to_string(&path).expect("hestami-http/openapi/v1.json exists");
        assert!(
            committed == generated,
            "hestami-http/openapi/v1.json is stale: run UPDATE_OPENAPI=1 cargo test -p hestami-http openapi"
        );
    }

    fn refs(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| refs(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves() {
        let doc: serde_json::Value =
            serde_json::from_str(&super::document_json()).expect("valid JSON");
        let mut all = Vec::new();
        refs(&doc, &mut all);
        assert!(all.len() > 40);
        for r in all {
            let name = r.trim_start_matches("#/components/schemas/");
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "dangling {r}"
            );
        }
    }

    #[test]
    fn every_procedure_is_documented_with_its_schemas() {
        let doc: serde_json::Value =
            serde_json::from_str(&super::document_json()).expect("valid JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let schemas = doc["components"]["schemas"].as_object().expect("schemas");
        for p in crate::procedures() {
            let op = &doc["paths"][format!("/api/v1/rpc/{}/{}/{}", p.namespace, p.version, p.name)]
                ["post"];
            let input = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .expect("input ref");
            let output = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .expect("output ref");
            for reference in [input, output] {
                let name = reference.trim_start_matches("#/components/schemas/");
                assert!(
                    schemas.contains_key(name),
                    "{} refers to missing {name}",
                    p.path()
                );
            }
            assert!(
                op["description"]
                    .as_str()
                    .is_some_and(|d| d.contains("Error codes:")),
                "{}",
                p.path()
            );
            if p.workflow.is_some() {
                let required =
                    schemas[input.trim_start_matches("#/components/schemas/")]["required"]
                        .to_string();
                assert!(
                    required.contains("idempotencyKey"),
                    "{} does not require idempotencyKey",
                    p.path()
                );
            }
        }
    }
}
