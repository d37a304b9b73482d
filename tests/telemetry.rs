//! Telemetry: each RPC is a span with its namespace, procedure, version, organization, workflow
//! and outcome, workflow steps are its children, and the trace id in `x-trace-id` and in the
//! error envelope is the span's. Its own test binary, because it installs the global subscriber.
#![allow(clippy::unwrap_used)]

mod support;

use opentelemetry::Value as OtelValue;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::json;
use tracing_subscriber::layer::SubscriberExt;

use support::{Backend, TestServer, key};

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| match &kv.value {
            OtelValue::String(s) => s.to_string(),
            other => other.to_string(),
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_spans_carry_the_procedure_and_the_envelope_trace_id() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber =
        tracing_subscriber::registry().with(hestami::http::telemetry::otel_layer(&provider));
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let s = TestServer::start(Backend::Sqlite).await.unwrap();
    let created = s
        .call(
            "customer/v1/create",
            json!({ "idempotencyKey": key(), "name": "Traced" }),
        )
        .await;
    let created_trace = created.headers["x-trace-id"].to_str().unwrap().to_owned();
    let created = created.ok();
    let refused = s
        .call(
            "customer/v1/get",
            json!({ "customerId": uuid::Uuid::now_v7() }),
        )
        .await;
    refused.assert_error(404, "NOT_FOUND");
    let envelope_trace = refused.json["trace_id"].as_str().unwrap().to_owned();
    assert_eq!(
        refused.headers["x-trace-id"].to_str().unwrap(),
        envelope_trace
    );
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let rpc = |procedure: &str| {
        spans
            .iter()
            .find(|s| {
                s.name == "rpc"
                    && attribute(s, "rpc.namespace")
                        .zip(attribute(s, "rpc.procedure"))
                        .map(|(n, p)| format!("{n}/v1/{p}"))
                        .as_deref()
                        == Some(procedure)
            })
            .unwrap_or_else(|| panic!("no rpc span for {procedure}"))
    };
    let create = rpc("customer/v1/create");
    assert_eq!(create.span_context.trace_id().to_string(), created_trace);
    assert_eq!(
        attribute(create, "rpc.namespace").as_deref(),
        Some("customer")
    );
    assert_eq!(
        attribute(create, "rpc.procedure").as_deref(),
        Some("create")
    );
    assert_eq!(attribute(create, "rpc.version").as_deref(), Some("v1"));
    assert_eq!(attribute(create, "organization.id"), Some(s.a.org.clone()));
    assert_eq!(attribute(create, "outcome").as_deref(), Some("ok"));
    let workflow_id = attribute(create, "workflow.id").expect("workflow.id recorded");
    let recorded = s
        .call("workflow/v1/get", json!({ "workflowId": workflow_id }))
        .await
        .ok();
    assert_eq!(recorded["procedure"], "customer/v1/create");
    assert_eq!(recorded["traceId"].as_str(), Some(created_trace.as_str()));
    let step = spans
        .iter()
        .find(|s| s.name == "workflow.step")
        .expect("a step span");
    assert_eq!(
        step.span_context.trace_id(),
        create.span_context.trace_id(),
        "steps are in the RPC's trace"
    );
    assert!(created["id"].is_string());

    let get = rpc("customer/v1/get");
    assert_eq!(
        get.span_context.trace_id().to_string(),
        envelope_trace,
        "the envelope's trace id is the span's"
    );
    assert_eq!(attribute(get, "outcome").as_deref(), Some("not_found"));

    // One log line per request, in its span: method, path, status, duration and trace id.
    let line = get
        .events
        .iter()
        .find(|e| e.name == "request")
        .expect("the request's log line");
    let field = |key: &str| {
        line.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(field("method").as_deref(), Some("POST"));
    assert_eq!(
        field("path").as_deref(),
        Some("/api/v1/rpc/customer/v1/get")
    );
    assert_eq!(field("status").as_deref(), Some("404"));
    assert_eq!(field("trace_id"), Some(envelope_trace.clone()));
    assert!(field("duration_ms").is_some());
}
