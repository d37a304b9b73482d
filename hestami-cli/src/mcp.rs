//! `hestami mcp`: the API as Model Context Protocol tools for AI agents, over stdio or streamable
//! HTTP, built on the official Rust MCP SDK (`rmcp`).
//!
//! Every procedure an authenticated caller may call is a tool, generated from the procedure table
//! and the OpenAPI document (never a hand list): its name is the procedure's with `_` for `/`
//! (`job_v1_create`), its input schema is the procedure's with the schemas it reaches under
//! `$defs`, its description the procedure's summary, roles and error codes, and its hints say
//! whether it reads or mutates. A call is the HTTP call, sent to a running server with the
//! configured token and organization: the same authentication, scope, idempotency, rate limits
//! and error envelope as any other client. A refusal is a tool error whose text is the envelope.
//! Sign-in procedures and `auth/v1/logout` are not tools: the server acts with the token it was
//! given.
//!
//! Over stdio the tools act with the configured token (`--token`). Over streamable HTTP
//! (`--listen`, at `/mcp`) each MCP request's own `Authorization` and `X-Organization-Id`
//! headers are forwarded to the API and no token is configured: every agent acts as itself, and
//! one without a token gets the API's `401`. rmcp accepts only loopback `Host` headers (DNS
//! rebinding), so the HTTP transport is for agents on the same machine or behind a proxy that
//! sets the host.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::{Context, Result};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler, ServiceExt};
use serde_json::{Map, Value, json};

/// Where the tools send their calls.
#[derive(clap::Args, Debug)]
pub struct McpArgs {
    /// The server the tools call, such as `http://127.0.0.1:8080`.
    #[arg(long, env = "HESTAMI_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Over stdio: the bearer token the tools act with (an integration token, `hestami admin
    /// create-token`). Over HTTP each request's own `Authorization` header is used instead.
    #[arg(long, env = "HESTAMI_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Over stdio: the organization the tools act in (over HTTP, each request's
    /// `X-Organization-Id`).
    #[arg(long, env = "HESTAMI_ORGANIZATION_ID")]
    organization: Option<String>,
    /// Serve MCP over streamable HTTP on this address (at `/mcp`) instead of stdio.
    #[arg(long, env = "HESTAMI_MCP_LISTEN")]
    listen: Option<String>,
}

/// Verbs of the procedures that take something away, for the `destructive` hint.
const DESTRUCTIVE: &[&str] = &[
    "remove",
    "cancel",
    "void",
    "deactivate",
    "archive",
    "revoke",
    "decline",
    "unassign",
    "refund",
];

/// One tool per callable procedure, with the procedure path each stands for.
pub fn tools() -> Vec<(Tool, String)> {
    let document: Value =
        serde_json::from_str(&hestami_http::openapi::document_json()).unwrap_or_default();
    let schemas = document["components"]["schemas"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let permissions = hestami_core::org::PERMISSIONS
        .iter()
        .chain(hestami_core::org::PERMISSIONS_V2);
    let roles: HashMap<&str, &[hestami_core::org::Role]> =
        permissions.map(|(path, roles)| (*path, *roles)).collect();
    let mut tools = Vec::new();
    for p in hestami_http::procedures() {
        let path = p.path();
        if p.public || path == "auth/v1/logout" {
            continue;
        }
        let operation = &document["paths"][format!("/api/v1/rpc/{path}")]["post"];
        let input = input_schema(
            &operation["requestBody"]["content"]["application/json"]["schema"],
            &schemas,
        );
        let mutates = input
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|f| f == "idempotencyKey"))
            || path == "sync/v1/push";
        let who = roles.get(path.as_str()).map_or_else(String::new, |r| {
            r.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
        });
        let mut description = format!(
            "{}.\n\nRoles: {who}.\nError codes: {}.",
            p.summary,
            hestami_http::openapi::error_codes(&p).join(", ")
        );
        if let Some(workflow) = p.workflow {
            description.push_str(&format!(
                "\n\nMutating (durable workflow `{workflow}`). Give `idempotencyKey` a new UUID for \
                 each new action, and send the same key again when you retry it (after a timeout \
                 or an answer you did not get): the server then answers with the first outcome \
                 instead of acting twice."
            ));
        } else if !mutates {
            description.push_str("\n\nRead-only.");
        }
        let annotations = ToolAnnotations::new()
            .read_only(!mutates)
            .destructive(mutates && DESTRUCTIVE.iter().any(|v| p.name.starts_with(v)))
            .idempotent(true)
            .open_world(false);
        let name = path.replace('/', "_");
        let tool = Tool::new(name, description, Arc::new(input)).annotate(annotations);
        tools.push((tool, path));
    }
    tools
}

/// The input schema with every schema it reaches under `$defs`.
fn input_schema(reference: &Value, schemas: &Map<String, Value>) -> Map<String, Value> {
    const PREFIX: &str = "#/components/schemas/";
    fn rewrite(value: &mut Value, reached: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get_mut("$ref")
                    && let Some(name) = r.strip_prefix(PREFIX).map(str::to_owned)
                {
                    *r = format!("#/$defs/{name}");
                    reached.push(name);
                }
                map.values_mut().for_each(|v| rewrite(v, reached));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| rewrite(v, reached)),
            _ => {}
        }
    }
    let root = reference["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix(PREFIX))
        .unwrap_or_default();
    let mut top = schemas.get(root).cloned().unwrap_or_else(|| json!({}));
    let mut pending = Vec::new();
    rewrite(&mut top, &mut pending);
    let mut defs = Map::new();
    while let Some(name) = pending.pop() {
        if defs.contains_key(&name) {
            continue;
        }
        let mut schema = schemas.get(&name).cloned().unwrap_or_else(|| json!({}));
        rewrite(&mut schema, &mut pending);
        defs.insert(name, schema);
    }
    let mut object = match top {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    object.insert("type".into(), json!("object"));
    if !defs.is_empty() {
        object.insert("$defs".into(), Value::Object(defs));
    }
    object
}

#[derive(Clone)]
struct Hestami {
    tools: Arc<Vec<Tool>>,
    paths: Arc<HashMap<String, String>>,
    http: reqwest::Client,
    url: String,
    /// The token and organization of stdio; `None` over HTTP, where each request brings its own.
    identity: Option<(String, Option<String>)>,
}

impl ServerHandler for Hestami {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("hestami", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Hestami Contractor Ops: a contractor's jobs, customers, technicians, dispatch, \
                 estimates, invoices and payments. Each tool is one API procedure. Mutating tools \
                 need an idempotencyKey (a UUID): reuse it when retrying the same action.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools.to_vec()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let path = self
            .paths
            .get(request.name.as_ref())
            .ok_or_else(|| ErrorData::invalid_params(format!("no tool {}", request.name), None))?;
        let body = Value::Object(request.arguments.unwrap_or_default());
        let mut call = self
            .http
            .post(format!("{}/api/v1/rpc/{path}", self.url))
            .json(&body);
        match (
            &self.identity,
            context.extensions.get::<http::request::Parts>(),
        ) {
            (Some((token, organization)), _) => {
                call = call.bearer_auth(token);
                if let Some(org) = organization {
                    call = call.header("X-Organization-Id", org);
                }
            }
            // Over HTTP: the agent's own credentials, as it sent them.
            (None, Some(parts)) => {
                for name in ["authorization", "x-organization-id"] {
                    if let Some(value) = parts.headers.get(name) {
                        call = call.header(name, value.clone());
                    }
                }
            }
            (None, None) => {}
        }
        let response = call.send().await.map_err(|e| {
            ErrorData::internal_error(format!("the server did not answer: {e}"), None)
        })?;
        let ok = response.status().is_success();
        let text = response
            .text()
            .await
            .map_err(|e| ErrorData::internal_error(format!("the answer was cut off: {e}"), None))?;
        let result = if ok {
            let mut result = CallToolResult::success(vec![ContentBlock::text(text.clone())]);
            if let Ok(value @ Value::Object(_)) = serde_json::from_str::<Value>(&text) {
                result.structured_content = Some(value);
            }
            result
        } else {
            // The envelope, as the HTTP client would get it: code, message, fields, trace id.
            CallToolResult::error(vec![ContentBlock::text(text)])
        };
        Ok(result.into())
    }
}

/// Serves the tools on stdin and stdout until the client goes away.
pub async fn run(args: McpArgs) -> Result<()> {
    let (tools, paths): (Vec<Tool>, HashMap<String, String>) = tools()
        .into_iter()
        .map(|(tool, path)| {
            let name = tool.name.to_string();
            (tool, (name, path))
        })
        .unzip();
    let mut server = Hestami {
        tools: Arc::new(tools),
        paths: Arc::new(paths),
        http: reqwest::Client::new(),
        url: args.url.trim_end_matches('/').to_owned(),
        identity: None,
    };
    if let Some(listen) = args.listen {
        return serve_http(server, &listen).await;
    }
    let token = args
        .token
        .context("over stdio the tools need a token: --token or HESTAMI_TOKEN")?;
    server.identity = Some((token, args.organization));
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .context("starting the MCP session on stdio")?;
    running.waiting().await.context("serving MCP")?;
    Ok(())
}

/// Serves the tools over streamable HTTP at `/mcp` until interrupted.
async fn serve_http(server: Hestami, listen: &str) -> Result<()> {
    use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
    use rmcp::transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService,
    };
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let router = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    eprintln!(
        "hestami MCP listening on http://{}/mcp",
        listener.local_addr()?
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving MCP over HTTP")?;
    Ok(())
}
