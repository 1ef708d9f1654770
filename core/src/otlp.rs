//! OTLP trace export for the server and the operator: the spans of their `tracing` setup, sent
//! over OTLP/HTTP (protobuf) to a collector, and the W3C trace context of an incoming request.
//! Spans are queued and exported in batches from the SDK's own thread: a slow or absent collector
//! costs a dropped span, never a blocked or failed call. Does network I/O from that thread.

use std::marker::PhantomData;

use opentelemetry::KeyValue;
use opentelemetry::propagation::{Extractor, TextMapPropagator as _};
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::registry::LookupSpan;

/// The path of the traces signal under an OTLP/HTTP base URL.
const TRACES_PATH: &str = "/v1/traces";

/// The trace exporter of one program. Keep it for the program's lifetime, then [`shutdown`] it.
///
/// [`shutdown`]: OtlpTraces::shutdown
pub struct OtlpTraces {
    provider: SdkTracerProvider,
    service: &'static str,
}

impl OtlpTraces {
    /// Starts exporting to `endpoint`, the collector's OTLP/HTTP base URL (what
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` holds, e.g. `http://otel-collector:4318`; `/v1/traces` is
    /// appended unless it is there). `service` and `version` name the program in the resource.
    /// Batching follows the SDK's `OTEL_BSP_*` environment variables. Installs ring as the
    /// process's rustls provider if none is yet (the exporter's HTTP client needs one).
    pub fn start(endpoint: &str, service: &'static str, version: &'static str) -> Result<Self, String> {
        use opentelemetry_otlp::WithExportConfig as _;
        let url = traces_url(endpoint)?;
        let _ = rustls::crypto::ring::default_provider().install_default();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_endpoint(url.clone())
            .build()
            .map_err(|e| format!("OTLP exporter for {url}: {e}"))?;
        let resource = Resource::builder()
            .with_service_name(service)
            .with_attribute(KeyValue::new("service.version", version))
            .build();
        let provider =
            SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build();
        Ok(Self { provider, service })
    }

    /// The `tracing` layer that turns this program's spans (those of the `mcp_fleet*` crates, at
    /// INFO and finer) into OpenTelemetry spans, with the events inside them as span events.
    pub fn layer<S>(&self) -> Box<dyn Layer<S> + Send + Sync + 'static>
    where
        S: tracing::Subscriber + for<'span> LookupSpan<'span> + Send + Sync,
    {
        let own = Targets::new()
            .with_target("mcp_fleet_server", tracing::Level::INFO)
            .with_target("mcp_fleet_operator", tracing::Level::INFO)
            .with_target("mcp_fleet_core", tracing::Level::INFO);
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer(self.service))
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(own)
            .boxed()
    }

    /// Exports what is queued and stops the exporter (waits for the collector, up to the SDK's
    /// export timeout). Blocking: call it off the async runtime's worker threads.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("{}: flushing traces at shutdown: {e}", self.service);
        }
    }
}

/// The traces URL under an OTLP/HTTP base URL.
pub fn traces_url(endpoint: &str) -> Result<String, String> {
    let base = endpoint.trim().trim_end_matches('/');
    if !(base.starts_with("http://") || base.starts_with("https://")) {
        return Err(format!("OTLP endpoint {endpoint:?} is not an http:// or https:// URL"));
    }
    Ok(if base.ends_with(TRACES_PATH) { base.to_owned() } else { format!("{base}{TRACES_PATH}") })
}

/// Makes `span` a child of the caller's span, when `header` (a case-insensitive lookup of the
/// request's headers) yields a valid W3C `traceparent` (and, with it, `tracestate`). Call it
/// before the span is first entered; without a valid header the span keeps its place.
pub fn continue_trace<'h>(span: &tracing::Span, header: impl Fn(&str) -> Option<&'h str>) {
    let parent = TraceContextPropagator::new().extract(&HeaderLookup(header, PhantomData));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Header lookup for the propagator (the marker ties the values' lifetime to the lookup's).
struct HeaderLookup<'h, F>(F, PhantomData<&'h str>);

impl<'h, F: Fn(&str) -> Option<&'h str>> Extractor for HeaderLookup<'h, F> {
    fn get(&self, key: &str) -> Option<&str> {
        (self.0)(key)
    }
    fn keys(&self) -> Vec<&str> {
        // The W3C propagator only asks for its two headers by name.
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_traces_path_is_appended_once() {
        assert_eq!(traces_url("http://c:4318").unwrap(), "http://c:4318/v1/traces");
        assert_eq!(traces_url("http://c:4318/").unwrap(), "http://c:4318/v1/traces");
        assert_eq!(traces_url("https://c/v1/traces").unwrap(), "https://c/v1/traces");
        assert!(traces_url("c:4317").is_err());
    }
}
