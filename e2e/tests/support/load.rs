//! A client loop for the day-2 tests: a few MCP clients calling one tool through the ingress,
//! over and over, while a test rolls, scales or breaks something. Bounded in calls and in time,
//! paced, and only ever sent to the node's ingress on loopback. Every call is counted, and every
//! failure is kept with its reason, so a test reports what a user of the tenant would have seen.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::task::JoinSet;

/// Where and what the loop calls.
pub struct Target {
    /// `http://127.0.0.1:<ingress port>/mcp`.
    pub url: String,
    /// The tenant's Ingress host.
    pub host: String,
    pub token: String,
    pub tool: &'static str,
    pub arguments: Value,
}

/// Bounds of one loop: it stops at whichever comes first.
pub struct Bounds {
    pub clients: usize,
    pub max_calls: u64,
    pub max_time: Duration,
    /// Each client waits this long between its calls (pacing, so that the 2 cores also run the
    /// pods being rolled).
    pub pause: Duration,
}

/// What a user of the tenant saw.
#[derive(Debug)]
pub struct Report {
    pub made: u64,
    pub failed: u64,
    /// Failure reason → count (the first 160 characters of what came back).
    pub reasons: BTreeMap<String, u64>,
    pub elapsed: Duration,
    /// The longest call.
    pub slowest: Duration,
}

impl Report {
    pub fn calls_per_second(&self) -> f64 {
        self.made as f64 / self.elapsed.as_secs_f64().max(1e-3)
    }

    /// One line for the test's output (and the note's table).
    pub fn line(&self, what: &str) -> String {
        format!(
            "{what}: {} calls in {:.1?} ({:.1}/s), {} failed {:?}, slowest {:.2?}",
            self.made,
            self.elapsed,
            self.calls_per_second(),
            self.failed,
            self.reasons,
            self.slowest
        )
    }
}

pub struct ClientLoop {
    stop: Arc<AtomicBool>,
    made: Arc<AtomicU64>,
    tasks: JoinSet<(u64, BTreeMap<String, u64>, Duration)>,
    started: Instant,
}

impl ClientLoop {
    pub fn start(target: Target, bounds: Bounds) -> ClientLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let made = Arc::new(AtomicU64::new(0));
        let target = Arc::new(target);
        let started = Instant::now();
        let mut tasks = JoinSet::new();
        for client in 0..bounds.clients {
            let (stop, made, target) = (stop.clone(), made.clone(), target.clone());
            let (max_calls, max_time, pause) = (bounds.max_calls, bounds.max_time, bounds.pause);
            tasks.spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .expect("an HTTP client");
                let (mut failed, mut reasons, mut slowest) = (0u64, BTreeMap::new(), Duration::ZERO);
                let mut id = 0u64;
                // At most `clients - 1` calls past `max_calls`: each client checks before its call.
                while !stop.load(Ordering::Relaxed)
                    && made.load(Ordering::Relaxed) < max_calls
                    && started.elapsed() < max_time
                {
                    id += 1;
                    let t0 = Instant::now();
                    let outcome = call(&http, &target, client as u64 * 1_000_000 + id).await;
                    made.fetch_add(1, Ordering::Relaxed);
                    slowest = slowest.max(t0.elapsed());
                    if let Err(why) = outcome {
                        failed += 1;
                        *reasons.entry(why.chars().take(160).collect()).or_insert(0) += 1;
                    }
                    tokio::time::sleep(pause).await; // pacing between calls, not a wait for an event
                }
                (failed, reasons, slowest)
            });
        }
        ClientLoop { stop, made, tasks, started }
    }

    /// Calls answered (or failed) so far.
    pub fn made(&self) -> u64 {
        self.made.load(Ordering::Relaxed)
    }

    /// Stops the clients (each finishes its call) and reports.
    pub async fn stop(mut self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let elapsed = self.started.elapsed();
        let (mut failed, mut reasons, mut slowest) = (0, BTreeMap::new(), Duration::ZERO);
        while let Some(joined) = self.tasks.join_next().await {
            let (f, r, s) = joined.expect("a client task");
            failed += f;
            slowest = slowest.max(s);
            for (why, n) in r {
                *reasons.entry(why).or_insert(0) += n;
            }
        }
        Report { made: self.made.load(Ordering::Relaxed), failed, reasons, elapsed, slowest }
    }
}

/// One stateless `tools/call` POST; `Err` with what a user would see unless it is a successful
/// tool result.
async fn call(http: &reqwest::Client, t: &Target, id: u64) -> Result<(), String> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": t.tool, "arguments": t.arguments}});
    let response = http
        .post(&t.url)
        .header("host", &t.host)
        .header("authorization", format!("Bearer {}", t.token))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| format!("reading the body: {e}"))?;
    if !status.is_success() {
        return Err(format!("HTTP {status}: {text}"));
    }
    let v: Value = serde_json::from_str(&text).map_err(|_| format!("not JSON: {text}"))?;
    if let Some(e) = v.get("error") {
        return Err(format!("JSON-RPC error: {e}"));
    }
    match v["result"]["isError"].as_bool() {
        Some(false) => Ok(()),
        _ => Err(format!("tool error: {}", v["result"]["content"][0]["text"])),
    }
}
