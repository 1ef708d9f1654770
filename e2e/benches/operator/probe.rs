//! Measurements from outside the processes: CPU time and memory from `/proc`, Prometheus text
//! from the API server (`kubectl get --raw /metrics`) and from the operator's `/metrics`.
//! Reads `/proc` and talks HTTP on loopback.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`, 100 on Linux).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// `(ppid, own CPU ticks, reaped children's CPU ticks)` of a process.
fn stat(pid: u32) -> Option<(u32, u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the parenthesised command name: state ppid ... utime(14) stime cutime cstime (1-based).
    let rest: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
    let field = |n: usize| rest.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    Some((field(4)? as u32, field(14)? + field(15)?, field(16)? + field(17)?))
}

/// CPU ticks of `pid` including the children it has reaped, plus its live children when
/// `with_children` (a postmaster's backends come and go).
pub fn cpu_ticks(pid: u32, with_children: bool) -> u64 {
    let Some((_, own, reaped)) = stat(pid) else { return 0 };
    let mut total = own + reaped;
    if with_children && let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(child) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some((_, ticks, _)) = stat(child).filter(|(ppid, _, _)| *ppid == pid) {
                total += ticks;
            }
        }
    }
    total
}

/// Busy and total ticks of the whole machine (first line of `/proc/stat`).
pub fn machine_ticks() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let values: Vec<u64> = text
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().take(8).sum();
    // idle + iowait
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// A `/proc/<pid>/status` field in KiB (`VmHWM`, `VmRSS`).
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field).and_then(|v| v.strip_prefix(':')))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// `/proc/loadavg`'s three averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Processes whose CPU time the benchmark attributes, by name.
#[derive(Clone, Debug)]
pub struct Watched {
    pub name: &'static str,
    pub pid: u32,
    /// Count live children too (PostgreSQL backends).
    pub children: bool,
}

/// CPU ticks of every watched process and of the machine at one moment.
#[derive(Clone, Debug)]
pub struct CpuSnapshot {
    pub at: std::time::Instant,
    pub per: BTreeMap<&'static str, u64>,
    pub busy: u64,
    pub total: u64,
}

pub fn cpu_snapshot(watched: &[Watched]) -> CpuSnapshot {
    let (busy, total) = machine_ticks();
    CpuSnapshot {
        at: std::time::Instant::now(),
        per: watched.iter().map(|w| (w.name, cpu_ticks(w.pid, w.children))).collect(),
        busy,
        total,
    }
}

/// CPU seconds spent between two snapshots: per watched process, by everything else on the
/// machine, and idle; plus the wall time.
#[derive(Clone, Debug, Default)]
pub struct CpuUse {
    pub wall: Duration,
    pub per: Vec<(&'static str, f64)>,
    pub others: f64,
    pub idle: f64,
}

impl CpuUse {
    pub fn between(a: &CpuSnapshot, b: &CpuSnapshot, hz: f64) -> CpuUse {
        let per: Vec<(&'static str, f64)> = b
            .per
            .iter()
            .map(|(k, v)| (*k, v.saturating_sub(a.per.get(k).copied().unwrap_or(0)) as f64 / hz))
            .collect();
        let busy = b.busy.saturating_sub(a.busy) as f64 / hz;
        let total = b.total.saturating_sub(a.total) as f64 / hz;
        let ours: f64 = per.iter().map(|(_, v)| v).sum();
        CpuUse { wall: b.at - a.at, per, others: (busy - ours).max(0.0), idle: (total - busy).max(0.0) }
    }

    pub fn get(&self, name: &str) -> f64 {
        self.per.iter().find(|(k, _)| *k == name).map(|(_, v)| *v).unwrap_or(0.0)
    }
}

/// Prometheus text: the sum of every sample of `name` whose labels include all of `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            let (label_text, value) = match rest.strip_prefix('{') {
                Some(r) => {
                    let (inside, after) = r.split_once('}')?;
                    (inside, after)
                }
                None if rest.starts_with(' ') => ("", rest),
                None => return None,
            };
            let wanted = labels
                .iter()
                .all(|(k, v)| label_text.split(',').any(|pair| pair.trim() == format!("{k}=\"{v}\"")));
            if !wanted {
                return None;
            }
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}

/// The text of `GET <path>` on `127.0.0.1:<port>` (HTTP/1.0, body only), or `None`.
pub async fn http_get(port: u16, path: &str) -> Option<String> {
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes()).await.ok()?;
        let mut body = String::new();
        s.read_to_string(&mut body).await.ok()?;
        let (head, body) = body.split_once("\r\n\r\n")?;
        // hyper answers an HTTP/1.0 request in HTTP/1.0.
        (head.split_whitespace().nth(1) == Some("200")).then(|| body.to_owned())
    };
    tokio::time::timeout(Duration::from_secs(10), fetch).await.ok().flatten()
}

/// The operator's counters that the report uses.
#[derive(Clone, Debug, Default)]
pub struct OperatorCounters {
    pub reconciles: f64,
    pub failures: f64,
    pub reconcile_seconds: f64,
    /// The operator's own count of its API requests, by "<verb> <resource>".
    pub api_requests: BTreeMap<String, f64>,
}

const API_REQUESTS: &str = "mcpfleet_operator_api_requests_total";

impl OperatorCounters {
    pub fn parse(text: &str) -> Self {
        let mut api_requests = BTreeMap::new();
        for line in text.lines().filter_map(|l| l.strip_prefix(API_REQUESTS)?.strip_prefix('{')) {
            let Some((labels, value)) = line.split_once('}') else { continue };
            let label = |key: &str| {
                labels
                    .split(',')
                    .find_map(|pair| pair.trim().strip_prefix(key)?.strip_prefix("=\"")?.strip_suffix('"'))
            };
            if let (Some(verb), Some(resource), Ok(value)) =
                (label("verb"), label("resource"), value.trim().parse::<f64>())
            {
                api_requests.insert(format!("{verb} {resource}"), value);
            }
        }
        OperatorCounters {
            reconciles: metric_sum(text, "mcpfleet_operator_reconciles_total", &[]),
            failures: metric_sum(text, "mcpfleet_operator_reconcile_failures_total", &[]),
            reconcile_seconds: metric_sum(text, "mcpfleet_operator_reconcile_duration_seconds_sum", &[]),
            api_requests,
        }
    }

    pub fn minus(&self, before: &Self) -> Self {
        let api_requests = self
            .api_requests
            .iter()
            .map(|(kind, n)| (kind.clone(), n - before.api_requests.get(kind).copied().unwrap_or(0.0)))
            .filter(|(_, n)| *n > 0.0)
            .collect();
        OperatorCounters {
            reconciles: self.reconciles - before.reconciles,
            failures: self.failures - before.failures,
            reconcile_seconds: self.reconcile_seconds - before.reconcile_seconds,
            api_requests,
        }
    }

    /// The API requests by kind, most first, as "<n> <verb> <resource>" per tenant.
    pub fn api_requests_per(&self, tenants: f64) -> String {
        let mut kinds: Vec<(&String, &f64)> = self.api_requests.iter().collect();
        kinds.sort_by(|a, b| b.1.total_cmp(a.1));
        let shown: Vec<String> =
            kinds.iter().map(|(kind, n)| format!("{:.2} {kind}", *n / tenants.max(1.0))).collect();
        if shown.is_empty() { "none".to_owned() } else { shown.join(", ") }
    }
}

/// What the API server counted for the operator's identity. The operator runs as a
/// ServiceAccount outside `kube-system`, so API Priority and Fairness puts every request it makes
/// (and nothing else here) into the `service-accounts` flow schema.
#[derive(Clone, Copy, Debug, Default)]
pub struct ApiCounters {
    pub requests: f64,
    pub execution_seconds: f64,
    pub wait_seconds: f64,
    /// Every request to the API server, from anyone.
    pub all_requests: f64,
}

pub const OPERATOR_FLOW_SCHEMA: &str = "service-accounts";

impl ApiCounters {
    pub fn parse(text: &str) -> Self {
        let fs = [("flow_schema", OPERATOR_FLOW_SCHEMA)];
        ApiCounters {
            requests: metric_sum(text, "apiserver_flowcontrol_dispatched_requests_total", &fs),
            execution_seconds: metric_sum(text, "apiserver_flowcontrol_request_execution_seconds_sum", &fs),
            wait_seconds: metric_sum(text, "apiserver_flowcontrol_request_wait_duration_seconds_sum", &fs),
            all_requests: metric_sum(text, "apiserver_request_total", &[]),
        }
    }

    pub fn minus(self, before: Self) -> Self {
        ApiCounters {
            requests: self.requests - before.requests,
            execution_seconds: self.execution_seconds - before.execution_seconds,
            wait_seconds: self.wait_seconds - before.wait_seconds,
            all_requests: self.all_requests - before.all_requests,
        }
    }
}
