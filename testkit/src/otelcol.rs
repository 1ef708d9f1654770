//! A real OpenTelemetry Collector for tests: OTLP/HTTP in on a free loopback port, every span
//! written to a JSON file (the file exporter), read back as [`ExportedSpan`]s. One collector per
//! call of [`Collector::start`], in its own temporary directory, stopped and deleted with the
//! test process (see [`crate::process`]). Starts a process and reads its file.
//!
//! The binary is `$MCP_FLEET_OTELCOL`, else what `scripts/otelcol.sh` prints (which builds it
//! from the collector's Go modules on first use, about a minute cold; `make deps` does it ahead).

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand::Rng as _;
use serde_json::Value;

use crate::kube::built_by;
use crate::process::{Guarded, free_port};

const START_TIMEOUT: Duration = Duration::from_secs(30);

static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The collector binary: `$MCP_FLEET_OTELCOL`, else built (once) by `scripts/otelcol.sh`.
pub fn otelcol_binary() -> Result<PathBuf, String> {
    BINARY
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("MCP_FLEET_OTELCOL") {
                return Ok(PathBuf::from(path));
            }
            built_by("scripts/otelcol.sh")
        })
        .clone()
}

/// A running collector.
pub struct Collector {
    port: u16,
    dir: PathBuf,
    guard: Mutex<Guarded>,
}

/// One span as the collector wrote it, with the `service.name` of the program that sent it.
#[derive(Clone, Debug)]
pub struct ExportedSpan {
    pub service: String,
    pub name: String,
    /// Lower-case hex, as in W3C `traceparent`.
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    /// Attribute values as text (numbers and booleans in their JSON spelling).
    pub attributes: BTreeMap<String, String>,
    /// The names of the span's events (the log lines written inside it).
    pub events: Vec<String>,
    /// OTLP's status code: 0 unset, 1 ok, 2 error.
    pub status_code: i64,
}

impl ExportedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

impl Collector {
    /// Starts a collector and waits until its OTLP/HTTP receiver accepts connections.
    pub fn start() -> Result<Self, String> {
        let binary = otelcol_binary()?;
        let suffix: u64 = rand::rng().random();
        let dir = std::env::temp_dir().join(format!("mcpfleet-otelcol-{}-{suffix:x}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let port = free_port();
        let config = dir.join("config.yaml");
        std::fs::write(&config, config_yaml(port, &dir.join("traces.json")))
            .map_err(|e| format!("writing {}: {e}", config.display()))?;
        let log = dir.join("otelcol.log");
        let argv = [
            binary.to_str().ok_or("non-UTF-8 collector path")?,
            "--config",
            config.to_str().ok_or("non-UTF-8 temporary directory")?,
        ];
        let guard = Guarded::spawn(&argv, None, "TERM", Some(&dir), &log)
            .map_err(|e| format!("starting {}: {e}", binary.display()))?;
        let collector = Self { port, dir, guard: Mutex::new(guard) };
        collector.wait_ready(&log)?;
        Ok(collector)
    }

    fn wait_ready(&self, log: &Path) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let running = self.guard.lock().map(|mut g| g.is_running()).unwrap_or(false);
            if !running || Instant::now() > deadline {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                return Err(format!(
                    "the collector did not listen on 127.0.0.1:{} within {START_TIMEOUT:?}:\n{log}",
                    self.port
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// The OTLP/HTTP base URL (what `OTEL_EXPORTER_OTLP_ENDPOINT` would hold).
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The collector's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("otelcol.log")).unwrap_or_default()
    }

    /// Every span written so far.
    pub fn spans(&self) -> Vec<ExportedSpan> {
        let text = std::fs::read_to_string(self.dir.join("traces.json")).unwrap_or_default();
        // One export request per line; a line still being written does not parse yet.
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .flat_map(|v| parse_request(&v))
            .collect()
    }

    /// Waits until the spans written so far satisfy `done`, and returns them; the error names
    /// what had arrived by the deadline.
    pub fn wait_for_spans(
        &self,
        timeout: Duration,
        done: impl Fn(&[ExportedSpan]) -> bool,
    ) -> Result<Vec<ExportedSpan>, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if done(&spans) {
                return Ok(spans);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "the collector did not get the expected spans within {timeout:?}; it has {spans:#?}\nlog:\n{}",
                    self.log()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn config_yaml(port: u16, file: &Path) -> String {
    // No gRPC receiver and no telemetry server of its own: one port, the free one.
    format!(
        "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:{port}\n\
         exporters:\n  file:\n    path: {file}\n    flush_interval: 100ms\n\
         service:\n  telemetry:\n    metrics:\n      level: none\n\
         \x20 pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [file]\n",
        file = file.display()
    )
}

/// The spans of one OTLP/JSON `ExportTraceServiceRequest`.
fn parse_request(request: &Value) -> Vec<ExportedSpan> {
    let mut out = Vec::new();
    for resource_spans in array(&request["resourceSpans"]) {
        let service =
            attributes(&resource_spans["resource"]["attributes"]).remove("service.name").unwrap_or_default();
        for scope_spans in array(&resource_spans["scopeSpans"]) {
            for span in array(&scope_spans["spans"]) {
                out.push(ExportedSpan {
                    service: service.clone(),
                    name: text(&span["name"]),
                    trace_id: text(&span["traceId"]),
                    span_id: text(&span["spanId"]),
                    parent_span_id: text(&span["parentSpanId"]),
                    attributes: attributes(&span["attributes"]),
                    events: array(&span["events"]).iter().map(|e| text(&e["name"])).collect(),
                    status_code: span["status"]["code"].as_i64().unwrap_or(0),
                });
            }
        }
    }
    out
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// OTLP/JSON key-value pairs as text: `{"key": k, "value": {"stringValue": v}}` and the like.
fn attributes(v: &Value) -> BTreeMap<String, String> {
    array(v)
        .iter()
        .filter_map(|kv| {
            let value = kv["value"].as_object()?.values().next()?;
            let value = value.as_str().map(str::to_owned).unwrap_or_else(|| value.to_string());
            Some((text(&kv["key"]), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_export_request_reads_as_spans() {
        let line = serde_json::json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
            "scopeSpans": [{"spans": [{
                "traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
                "parentSpanId": "00f067aa0ba902b7", "name": "tools/call x",
                "attributes": [{"key": "tenant", "value": {"stringValue": "acme"}},
                               {"key": "rows", "value": {"intValue": "3"}}],
                "events": [{"name": "tool call"}], "status": {"code": 2}
            }]}]
        }]});
        let spans = parse_request(&line);
        assert_eq!(spans.len(), 1);
        let s = &spans[0];
        assert_eq!((s.service.as_str(), s.name.as_str()), ("svc", "tools/call x"));
        assert_eq!(s.parent_span_id, "00f067aa0ba902b7");
        assert_eq!(s.attribute("tenant"), Some("acme"));
        assert_eq!(s.attribute("rows"), Some("3"));
        assert_eq!((s.events.clone(), s.status_code), (vec!["tool call".to_owned()], 2));
    }
}
