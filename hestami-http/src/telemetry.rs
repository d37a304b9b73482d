//! Tracing and OpenTelemetry (DESIGN §6).
//!
//! Every RPC is a span named `rpc` with its namespace, procedure, version, organization,
//! workflow and outcome; workflow steps are child spans (the store opens them). The span's
//! OpenTelemetry trace id is the one in `x-trace-id` and in every error envelope. An incoming
//! W3C `traceparent` makes the span a child of the caller's trace. Spans are exported over OTLP
//! (HTTP) when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; otherwise the provider still assigns trace
//! ids, so responses carry them either way.

use axum::http::HeaderMap;
use opentelemetry::propagation::Extractor;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Keeps the tracer provider alive; flushes pending spans when dropped.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// The provider, for flushing in tests.
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// The tracing layer that turns spans into OpenTelemetry spans, for a given provider.
pub fn otel_layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + use<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("hestami"))
}

/// The log filter when `RUST_LOG` is not set.
pub const DEFAULT_FILTER: &str = "info,sqlx::postgres::notice=warn";

/// Installs the global subscriber: logs to stderr (filtered by `RUST_LOG`, default [`DEFAULT_FILTER`]), and
/// OpenTelemetry spans, exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
///
/// # Errors
/// When the OTLP exporter cannot be built or a global subscriber is already installed.
pub fn init(service_name: &str) -> Result<Telemetry, String> {
    let mut builder = SdkTracerProvider::builder().with_resource(
        opentelemetry_sdk::Resource::builder()
            .with_service_name(service_name.to_owned())
            .build(),
    );
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some() {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .map_err(|e| format!("cannot build the OTLP exporter: {e}"))?;
        builder = builder.with_batch_exporter(exporter);
    }
    let provider = builder.build();
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    // PostgreSQL's notices ("relation … already exists, skipping" on every start's migration)
    // are the database talking to itself: shown only from RUST_LOG=debug (warnings still are).
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    Registry::default()
        .with(otel_layer(&provider))
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                .with_writer(std::io::stderr)
                .with_filter(filter),
        )
        .try_init()
        .map_err(|e| format!("cannot install the tracing subscriber: {e}"))?;
    Ok(Telemetry { provider })
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Makes `span` a child of the trace named by the request's `traceparent`, if any, and returns
/// the span's trace id as 32 hex digits: the OpenTelemetry one when a layer is installed, else
/// the caller's (from `traceparent`), else a fresh random one (an embedding program that set up
/// no tracing still gets trace ids that match its callers').
pub fn adopt_parent(span: &tracing::Span, headers: &HeaderMap) -> String {
    use opentelemetry::propagation::TextMapPropagator as _;
    let parent = opentelemetry_sdk::propagation::TraceContextPropagator::new()
        .extract(&HeaderExtractor(headers));
    let parent_trace = parent.span().span_context().clone();
    if parent_trace.is_valid() {
        let _ = span.set_parent(parent);
    }
    let own = span.context().span().span_context().clone();
    if own.is_valid() {
        own.trace_id().to_string()
    } else if parent_trace.is_valid() {
        parent_trace.trace_id().to_string()
    } else {
        random_trace_id()
    }
}

/// A fresh trace id, 32 hex digits, for an answer given outside any request's span.
pub(crate) fn random_trace_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}
