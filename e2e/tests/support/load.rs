//! A client loop for the day-2 tests: a few MCP clients calling one tool through the ingress,
//! over and over, while a test rolls, scales or breaks something. Bounded in calls and in time,
//! paced, and only ever sent to the node's ingress on loopback. Every call is counted, and every
//! failure is kept with its reason, so a test reports what a user of the tenant would have seen.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mcp_fleet_e2e::{TestNamespace, WAIT, eventually};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::fleet::{Fleet, ingress_host};
use super::tenant::create_tenant;
use super::wait::{endpoint, ingress_routes_to_every_ready_pod, name, rolled, wait_ready};

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
    /// The `x-request-id` of every call that succeeded (what its audit record carries).
    pub ok_ids: Vec<String>,
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

/// One client's part of a [`Report`].
#[derive(Default)]
struct Tally {
    failed: u64,
    reasons: BTreeMap<String, u64>,
    slowest: Duration,
    ok_ids: Vec<String>,
}

pub struct ClientLoop {
    stop: Arc<AtomicBool>,
    made: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    /// What the latest failed call came back with.
    last_failure: Arc<Mutex<String>>,
    tasks: JoinSet<Tally>,
    started: Instant,
}

impl ClientLoop {
    pub fn start(target: Target, bounds: Bounds) -> ClientLoop {
        let stop = Arc::new(AtomicBool::new(false));
        let made = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let last_failure = Arc::new(Mutex::new(String::new()));
        let target = Arc::new(target);
        let started = Instant::now();
        let run = format!("load-{:08x}", rand::random::<u32>());
        let mut tasks = JoinSet::new();
        for client in 0..bounds.clients {
            let (stop, made, target, run) = (stop.clone(), made.clone(), target.clone(), run.clone());
            let (failed, last_failure) = (failed.clone(), last_failure.clone());
            let (max_calls, max_time, pause) = (bounds.max_calls, bounds.max_time, bounds.pause);
            tasks.spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .expect("an HTTP client");
                let mut tally = Tally::default();
                let mut id = 0u64;
                // At most `clients - 1` calls past `max_calls`: each client checks before its call.
                while !stop.load(Ordering::Relaxed)
                    && made.load(Ordering::Relaxed) < max_calls
                    && started.elapsed() < max_time
                {
                    id += 1;
                    let request_id = format!("{run}-{client}-{id}");
                    let t0 = Instant::now();
                    let outcome = call(&http, &target, id, &request_id).await;
                    made.fetch_add(1, Ordering::Relaxed);
                    tally.slowest = tally.slowest.max(t0.elapsed());
                    match outcome {
                        Ok(()) => tally.ok_ids.push(request_id),
                        Err(why) => {
                            let why: String = why.chars().take(160).collect();
                            *last_failure.lock().expect("the last failure") = why.clone();
                            failed.fetch_add(1, Ordering::Relaxed);
                            tally.failed += 1;
                            *tally.reasons.entry(why).or_insert(0) += 1;
                        }
                    }
                    tokio::time::sleep(pause).await; // pacing between calls, not a wait for an event
                }
                tally
            });
        }
        ClientLoop { stop, made, failed, last_failure, tasks, started }
    }

    /// Calls answered (or failed) so far.
    pub fn made(&self) -> u64 {
        self.made.load(Ordering::Relaxed)
    }

    /// Calls failed so far.
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// What the latest failed call came back with (empty if none failed).
    pub fn last_failure(&self) -> String {
        self.last_failure.lock().expect("the last failure").clone()
    }

    /// Waits (bounded by `within`) until `n` more calls have been answered or failed.
    pub async fn wait_for_calls(&self, n: u64, within: Duration) {
        let target = self.made() + n;
        eventually(format!("{n} more calls"), within, || async { (self.made() >= target).then_some(()) })
            .await;
    }

    /// Stops the clients (each finishes its call) and reports.
    pub async fn stop(mut self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        let elapsed = self.started.elapsed();
        let mut all = Tally::default();
        while let Some(joined) = self.tasks.join_next().await {
            let t = joined.expect("a client task");
            all.failed += t.failed;
            all.slowest = all.slowest.max(t.slowest);
            all.ok_ids.extend(t.ok_ids);
            for (why, n) in t.reasons {
                *all.reasons.entry(why).or_insert(0) += n;
            }
        }
        let Tally { failed, reasons, slowest, ok_ids } = all;
        Report { made: self.made.load(Ordering::Relaxed), failed, reasons, elapsed, slowest, ok_ids }
    }
}

/// One stateless `tools/call` POST; `Err` with what a user would see unless it is a successful
/// tool result.
async fn call(http: &reqwest::Client, t: &Target, id: u64, request_id: &str) -> Result<(), String> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": t.tool, "arguments": t.arguments}});
    let response = http
        .post(&t.url)
        .header("host", &t.host)
        .header("authorization", format!("Bearer {}", t.token))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-11-25")
        .header("x-request-id", request_id)
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

/// A tenant's spec for the day-2 tests: two replicas, and a per-caller share large enough for a
/// client loop (the default, 120 calls a minute, would refuse it after a minute).
fn loaded_tenant_spec(fleet: &Fleet, name: &str, stores: &[&str]) -> Value {
    let mut spec = fleet.tenant_spec(name, stores);
    spec["server"]["replicas"] = json!(2);
    spec["limits"] =
        json!({"perSubject": {"maxConcurrent": 64, "requestsPerMinute": 100000, "burst": 100000}});
    spec
}

/// A client loop of `clients` MCP clients counting the tenant's orders through the ingress, each
/// pausing `pause` between its calls.
pub async fn client_loop(
    fleet: &Fleet,
    ns: &TestNamespace,
    name: &str,
    clients: usize,
    pause: Duration,
) -> ClientLoop {
    let token = fleet.token(&endpoint(ns, name).await, name, "analyst");
    let target = Target {
        url: format!("http://127.0.0.1:{}/mcp", fleet.node.ingress_port()),
        host: ingress_host(name),
        token,
        tool: "execute_sales_query",
        arguments: json!({"postgresql_query": "SELECT count(*) AS n FROM retail.orders"}),
    };
    let bounds = Bounds { clients, max_calls: 50_000, max_time: Duration::from_secs(600), pause };
    // The ingress routes once it has seen the Ingress and its endpoints: wait for an answer
    // first (a refusal before that is the route appearing, not what the test looks at).
    fleet.first_answer_through_ingress(&target.host, &target.token, "get_current_utc_date", json!({})).await;
    ClientLoop::start(target, bounds)
}

/// Waits (bounded, 60 s) until every call in `ok_ids` has its row in `audit.tool_calls`, as the
/// superuser sees the trail; panics with how many are missing.
pub async fn assert_audited(fleet: &Fleet, ok_ids: &[String]) {
    let missing = unaudited(fleet, ok_ids).await;
    assert_eq!(missing, 0, "{missing} of {} successful calls have no audit record after 60 s", ok_ids.len());
}

/// How many calls of `ok_ids` still have no row in `audit.tool_calls` once every record that
/// is coming has come (waits up to 60 s for them).
pub async fn unaudited(fleet: &Fleet, ok_ids: &[String]) -> usize {
    let mut conn = fleet.connect().await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(DISTINCT request_id) FROM audit.tool_calls WHERE request_id = ANY($1)",
        )
        .bind(ok_ids)
        .fetch_one(&mut conn)
        .await
        .expect("count audit records");
        let missing = ok_ids.len() - n as usize;
        if missing == 0 || Instant::now() > deadline {
            return missing;
        }
        tokio::time::sleep(Duration::from_millis(500)).await; // polling interval
    }
}

/// A tenant under load, ready for a day-2 step.
pub struct Loaded {
    pub name: String,
    /// Its two Ready server pods.
    pub pods: Vec<String>,
    pub calls: ClientLoop,
}

/// Creates a tenant `<prefix>-xxxxxx` owning `store` with two replicas, waits until it is Ready
/// with both pods Ready, and starts `clients` MCP clients calling it through the ingress; returns
/// once their first 30 calls all succeeded.
pub async fn loaded_tenant(
    fleet: &Fleet,
    ns: &TestNamespace,
    prefix: &str,
    store: &str,
    clients: usize,
) -> Loaded {
    loaded_tenant_with(fleet, ns, prefix, store, clients, 2, |_| {}).await
}

/// As [`loaded_tenant`], with the spec changed by `edit` first (autoscaling, say), and
/// `replicas` Ready pods before the clients start.
pub async fn loaded_tenant_with(
    fleet: &Fleet,
    ns: &TestNamespace,
    prefix: &str,
    store: &str,
    clients: usize,
    replicas: i32,
    edit: impl FnOnce(&mut Value),
) -> Loaded {
    let t = name(prefix);
    let mut spec = loaded_tenant_spec(fleet, &t, &[store]);
    edit(&mut spec);
    create_tenant(&ns.api(), &t, spec).await;
    wait_ready(ns, &t).await;
    let pods =
        eventually(format!("{replicas} Ready server pods"), WAIT * 4, || rolled(ns, &t, replicas)).await;
    let admin = fleet.node.ingress_admin_port();
    eventually(format!("the ingress to route {t} to its {replicas} pods"), WAIT, || {
        ingress_routes_to_every_ready_pod(ns, admin, &t)
    })
    .await;
    let calls = client_loop(fleet, ns, &t, clients, Duration::from_millis(20)).await;
    calls.wait_for_calls(30, Duration::from_secs(60)).await;
    assert_eq!(calls.failed(), 0, "calls succeed before anything happens to {t}");
    Loaded { name: t, pods, calls }
}
