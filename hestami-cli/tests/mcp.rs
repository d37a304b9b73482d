//! `hestami mcp` with a real MCP client (the rmcp SDK's client, from crates.io) against a real
//! server on a fresh SQLite database: the tools are listed with their schemas and hints, a read
//! answers, a mutation called twice with one key acts once, and a refusal is a tool error that
//! carries the envelope.
#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_hestami");

/// A `hestami serve` on a fresh SQLite database, killed when dropped.
struct Server {
    child: Child,
    url: String,
    token: String,
    organization: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn server() -> Server {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("mcp.db").display());
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        out.stdout
    };
    run(&["migrate", "--database-url", &db]);
    let created: Value = serde_json::from_slice(&run(&[
        "admin",
        "create-org",
        "--database-url",
        &db,
        "--name",
        "MCP",
        "--timezone",
        "America/Chicago",
        "--currency",
        "USD",
        "--owner-email",
        "mcp@example.com",
        "--json",
    ]))
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let blobs = dir.path().join("blobs");
    let child = Command::new(BIN)
        .args([
            "serve",
            "--skip-migrate",
            "--database-url",
            &db,
            "--listen",
            &listen,
        ])
        .arg("--blob-store")
        .arg(&blobs)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://{listen}");
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http
            .get(format!("{url}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Server {
        child,
        url,
        token: created["token"].as_str().unwrap().to_owned(),
        organization: created["organizationId"].as_str().unwrap().to_owned(),
        _dir: dir,
    }
}

fn arguments(value: Value) -> serde_json::Map<String, Value> {
    value.as_object().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_lists_the_tools_and_calls_a_read_and_a_mutation_twice() {
    let s = server().await;
    let command = tokio::process::Command::new(BIN).configure(|c| {
        c.arg("mcp")
            .env("HESTAMI_URL", &s.url)
            .env("HESTAMI_TOKEN", &s.token)
            .env("HESTAMI_ORGANIZATION_ID", &s.organization);
    });
    let client = ().serve(TokioChildProcess::new(command).unwrap()).await.unwrap();

    // Every procedure a token may call, generated from the procedure table.
    let tools = client.list_all_tools().await.unwrap();
    let callable = hestami_http::procedures()
        .into_iter()
        .filter(|p| !p.public && p.path() != "auth/v1/logout")
        .count();
    assert_eq!(tools.len(), callable);
    let tool = |name: &str| {
        let t = tools.iter().find(|t| t.name == name).unwrap();
        serde_json::to_value(t).unwrap()
    };
    let create = tool("customer_v1_create");
    assert!(
        create["inputSchema"]["required"]
            .as_array()
            .unwrap()
            .contains(&json!("idempotencyKey")),
        "{create}"
    );
    assert_eq!(create["annotations"]["readOnlyHint"], false);
    let description = create["description"].as_str().unwrap();
    assert!(
        description.contains("send the same key again"),
        "{description}"
    );
    assert!(description.contains("VALIDATION_FAILED"), "{description}");
    assert_eq!(
        tool("customer_v1_list")["annotations"]["readOnlyHint"],
        true
    );
    assert_eq!(
        tool("invoice_v1_void")["annotations"]["destructiveHint"],
        true
    );
    // Nested inputs carry the schemas they reach.
    let property = tool("customer_v1_addProperty");
    assert!(property["inputSchema"]["$defs"].is_object(), "{property}");

    // A mutation called twice with one key: one customer.
    let key = uuid::Uuid::new_v4().to_string();
    let call = |name: &str, args: Value| {
        client
            .call_tool(CallToolRequestParams::new(name.to_owned()).with_arguments(arguments(args)))
    };
    let first = call(
        "customer_v1_create",
        json!({ "idempotencyKey": key, "name": "Ada Lovelace" }),
    )
    .await
    .unwrap();
    let again = call(
        "customer_v1_create",
        json!({ "idempotencyKey": key, "name": "Ada Lovelace" }),
    )
    .await
    .unwrap();
    let (first, again) = (
        serde_json::to_value(first).unwrap(),
        serde_json::to_value(again).unwrap(),
    );
    assert_ne!(first["isError"], true, "{first}");
    assert_eq!(
        first["structuredContent"]["id"], again["structuredContent"]["id"],
        "{first} {again}"
    );
    let listed = serde_json::to_value(call("customer_v1_list", json!({})).await.unwrap()).unwrap();
    let items = listed["structuredContent"]["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["name"], "Ada Lovelace");

    // A refusal is a tool error with the envelope.
    let missing = serde_json::to_value(
        call(
            "customer_v1_get",
            json!({ "customerId": uuid::Uuid::new_v4() }),
        )
        .await
        .unwrap(),
    )
    .unwrap();
    assert_eq!(missing["isError"], true, "{missing}");
    let envelope: Value =
        serde_json::from_str(missing["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(envelope["error"]["code"], "NOT_FOUND");

    client.cancel().await.unwrap();
}

/// `hestami mcp --listen`, reached over streamable HTTP by the SDK's HTTP client: each agent
/// acts with the token it sends, and one without a token gets the API's refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_over_http_acts_with_its_own_token() {
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;

    let s = server().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let mut gateway = Command::new(BIN)
        .args(["mcp", "--url", &s.url, "--listen", &listen])
        .env_remove("HESTAMI_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(&listen).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let endpoint = format!("http://{listen}/mcp");
    let connect = |token: Option<&str>| {
        let mut headers = std::collections::HashMap::new();
        headers.insert(
            http::HeaderName::from_static("x-organization-id"),
            http::HeaderValue::from_str(&s.organization).unwrap(),
        );
        let mut config =
            StreamableHttpClientTransportConfig::with_uri(endpoint.clone()).custom_headers(headers);
        if let Some(token) = token {
            config = config.auth_header(token.to_owned());
        }
        ().serve(StreamableHttpClientTransport::from_config(config))
    };

    let agent = connect(Some(&s.token)).await.unwrap();
    let tools = agent.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "customer_v1_create"));
    let key = uuid::Uuid::new_v4().to_string();
    let create = || {
        agent.call_tool(
            CallToolRequestParams::new("customer_v1_create".to_owned()).with_arguments(arguments(
                json!({ "idempotencyKey": key, "name": "Grace Hopper" }),
            )),
        )
    };
    let first = serde_json::to_value(create().await.unwrap()).unwrap();
    let again = serde_json::to_value(create().await.unwrap()).unwrap();
    assert_ne!(first["isError"], true, "{first}");
    assert_eq!(
        first["structuredContent"]["id"],
        again["structuredContent"]["id"]
    );
    agent.cancel().await.unwrap();

    // No token: the API's own 401, as a tool error.
    let stranger = connect(None).await.unwrap();
    let refused = serde_json::to_value(
        stranger
            .call_tool(
                CallToolRequestParams::new("customer_v1_list".to_owned())
                    .with_arguments(arguments(json!({}))),
            )
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(refused["isError"], true, "{refused}");
    let envelope: Value =
        serde_json::from_str(refused["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(envelope["error"]["code"], "UNAUTHENTICATED");
    stranger.cancel().await.unwrap();
    let _ = gateway.kill();
    let _ = gateway.wait();
}
