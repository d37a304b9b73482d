//! `hestami mcp`: the API as Model Context Protocol tools for AI agents, over stdio, built on the
//! official Rust MCP SDK (`rmcp`).
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
    /// The bearer token the tools act with (an integration token, `hestami admin create-token`).
    #[arg(long, env = "HESTAMI_TOKEN")]
    token: String,
    /// The organization the tools act in.
    #[arg(long, env = "HESTAMI_ORGANIZATION_ID")]
    organization: Option<String>,
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

struct Hestami {
    tools: Vec<Tool>,
    paths: HashMap<String, String>,
    http: reqwest::Client,
    url: String,
    token: String,
    organization: Option<String>,
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
        Ok(ListToolsResult::with_all_items(self.tools.clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let path = self
            .paths
            .get(request.name.as_ref())
            .ok_or_else(|| ErrorData::invalid_params(format!("no tool {}", request.name), None))?;
        let body = Value::Object(request.arguments.unwrap_or_default());
        let mut call = self
            .http
            .post(format!("{}/api/v1/rpc/{path}", self.url))
            .bearer_auth(&self.token)
            .json(&body);
        if let Some(org) = &self.organization {
            call = call.header("X-Organization-Id", org);
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
    let server = Hestami {
        tools,
        paths,
        http: reqwest::Client::new(),
        url: args.url.trim_end_matches('/').to_owned(),
        token: args.token,
        organization: args.organization,
    };
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .context("starting the MCP session on stdio")?;
    running.waiting().await.context("serving MCP")?;
    Ok(())
}
