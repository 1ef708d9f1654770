//! Traces: the real server binary, pointed at a real OpenTelemetry Collector, exports one span
//! per tool call under the caller's W3C `traceparent`, with the validation and the database
//! query as its children; spans still queued at SIGTERM are flushed before the process exits;
//! and a collector that is not there costs no call anything.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use mcp_fleet_testkit::TestDb;
use mcp_fleet_testkit::otelcol::{Collector, ExportedSpan};
use serde_json::json;
use support::{Tenant, call, client, embedded_db, tenant};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN_ID: &str = "00f067aa0ba902b7";
const REQUEST_ID: &str = "otel-test-request";

/// The server binary with traces going to `endpoint`, batched every `batch_delay_ms`.
struct ServerProcess {
    child: Child,
    url: String,
    _lines: Receiver<String>,
}

impl ServerProcess {
    fn start(db: &TestDb, t: &Tenant, endpoint: &str, batch_delay_ms: u32) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcp-fleet-server"))
            .args(["serve", "--auth", "none", "--listen", "127.0.0.1:0", "--log-format", "text"])
            .args(["--tenant", t.name.as_str(), "--otlp-endpoint", endpoint])
            .env("MCP_FLEET_DATABASE_URL", db.url_as(&t.name.login_role(), "").replace(":@", "@"))
            .env("MCP_FLEET_DATABASE_PASSWORD", &t.password)
            .env("OTEL_BSP_SCHEDULE_DELAY", batch_delay_ms.to_string())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the server");
        let stderr = child.stderr.take().expect("stderr was piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("server: {line}");
                let _ = tx.send(line);
            }
        });
        let url = loop {
            let line = lines.recv_timeout(Duration::from_secs(60)).expect("the server starts");
            if let Some(u) = line.strip_prefix("mcp-fleet-server: listening on ") {
                break u.to_owned();
            }
        };
        Self { child, url, _lines: lines }
    }

    /// SIGTERM, then the exit status (within 30 s).
    async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().expect("run kill");
        assert!(sent.success(), "kill -TERM {pid}");
        let wait = tokio::task::spawn_blocking(move || self.child.wait());
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .expect("the server exits within 30 s of SIGTERM")
            .expect("join")
            .expect("wait for the server")
    }
}

fn named<'a>(spans: &'a [ExportedSpan], name: &str) -> Vec<&'a ExportedSpan> {
    spans.iter().filter(|s| s.name == name).collect()
}

#[tokio::test]
async fn a_tool_call_is_traced_under_the_callers_span_and_flushed_at_sigterm() {
    let collector = Collector::start().expect("an OpenTelemetry Collector (scripts/otelcol.sh)");
    let db = embedded_db().await;
    let t = tenant(&db, &[1]).await;
    // Batches wait a minute: only the flush at shutdown can bring them to the collector in time.
    let server = ServerProcess::start(&db, &t, &collector.endpoint(), 60_000);
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN_ID}-01");
    let c = client(&server.url, &[("traceparent", &traceparent), ("x-request-id", REQUEST_ID)]).await;
    let (err, text) = call(
        &c,
        "execute_sales_query",
        json!({ "postgresql_query": "SELECT count(*) AS n FROM retail.orders" }),
    )
    .await;
    assert!(!err, "{text}");
    let (err, text) =
        call(&c, "execute_sales_query", json!({ "postgresql_query": "DELETE FROM retail.orders" })).await;
    assert!(err, "a DELETE must be refused: {text}");
    c.cancel().await.expect("client stops");
    assert!(collector.spans().is_empty(), "nothing is exported before the batch delay or shutdown");

    let status = server.terminate().await;
    assert!(status.success(), "exit status {status}");
    let spans = collector
        .wait_for_spans(Duration::from_secs(10), |s| named(s, "tools/call execute_sales_query").len() == 2)
        .expect("both tool calls' spans, flushed at shutdown");

    let calls = named(&spans, "tools/call execute_sales_query");
    for call in &calls {
        assert_eq!(call.service, "mcp-fleet-server");
        assert_eq!(call.trace_id, TRACE_ID, "the caller's trace continues: {call:?}");
        assert_eq!(call.parent_span_id, CALLER_SPAN_ID, "a child of the caller's span: {call:?}");
        assert_eq!(call.attribute("tenant"), Some(t.name.as_str()), "{call:?}");
        assert_eq!(call.attribute("request_id"), Some(REQUEST_ID), "{call:?}");
        assert_eq!(call.attribute("tool"), Some("execute_sales_query"), "{call:?}");
    }
    // The answered call: validated, then run in the database, both under its span; its log line
    // is one of its events.
    let answered = calls.iter().find(|s| s.status_code != 2).expect("the SELECT's span is not an error");
    assert!(answered.events.iter().any(|e| e == "tool call"), "{answered:?}");
    let children = |parent: &ExportedSpan| -> Vec<String> {
        spans.iter().filter(|s| s.parent_span_id == parent.span_id).map(|s| s.name.clone()).collect()
    };
    assert_eq!(children(answered), ["validate sql", "SELECT retail"], "{spans:#?}");
    let query = named(&spans, "SELECT retail");
    assert_eq!(query.len(), 1, "only the answered call reached the database: {spans:#?}");
    assert_eq!(query[0].trace_id, TRACE_ID);
    assert_eq!(query[0].attribute("db.system.name"), Some("postgresql"));
    // The refused call: an error span, validated and never sent to the database.
    let refused = calls.iter().find(|s| s.status_code == 2).expect("the DELETE's span is an error");
    assert_eq!(children(refused), ["validate sql"], "{spans:#?}");
}

#[tokio::test]
async fn a_missing_collector_costs_no_call_anything() {
    let db = embedded_db().await;
    let t = tenant(&db, &[1]).await;
    // Nothing listens there: batches leave every 50 ms and fail (after the exporter's retries)
    // while the calls run and at shutdown.
    let nowhere = format!("http://127.0.0.1:{}", mcp_fleet_testkit::process::free_port());
    let server = ServerProcess::start(&db, &t, &nowhere, 50);
    let c = client(&server.url, &[]).await;
    for _ in 0..5 {
        let (err, text) = call(
            &c,
            "execute_sales_query",
            json!({ "postgresql_query": "SELECT count(*) AS n FROM retail.stores" }),
        )
        .await;
        assert!(!err, "{text}");
    }
    c.cancel().await.expect("client stops");
    let status = server.terminate().await;
    assert!(status.success(), "exit status {status}");
}
