//! The names of the Prometheus metrics the fleet exports, with their help text: what the Helm
//! chart's alert rules and dashboard may use. The server and the operator register exactly these
//! (each checks it in a test), and the chart's test reads them from here. Pure data.

/// A metric: its name without the prefix, and its help text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metric {
    pub name: &'static str,
    pub help: &'static str,
}

impl Metric {
    const fn new(name: &'static str, help: &'static str) -> Self {
        Self { name, help }
    }
}

/// The MCP server's metrics (registry prefix [`server::PREFIX`]).
pub mod server {
    use super::Metric;

    pub const PREFIX: &str = "mcpfleet";

    pub const HTTP_REQUESTS: Metric =
        Metric::new("http_requests_total", "HTTP requests by route and status code");
    pub const TOOL_CALLS: Metric =
        Metric::new("tool_calls_total", "MCP tool calls by tool and outcome (ok, error, rejected, denied)");
    pub const TOOL_DURATION: Metric = Metric::new("tool_duration_seconds", "Time to answer a tool call");
    pub const QUERY_DURATION: Metric =
        Metric::new("query_duration_seconds", "Time PostgreSQL spent on a tool's query");
    pub const REJECTED_QUERIES: Metric =
        Metric::new("rejected_queries_total", "Queries refused before reaching the database, by reason");
    pub const ERRORS: Metric = Metric::new("errors_total", "Errors by kind");
    pub const RATE_LIMITED: Metric = Metric::new(
        "rate_limited_total",
        "Tool calls refused because their caller was over its share, by kind (concurrency, rate)",
    );
    pub const INFLIGHT_REQUESTS: Metric =
        Metric::new("inflight_requests", "MCP requests being served now (an autoscaling signal)");
    pub const POOL_CONNECTIONS: Metric =
        Metric::new("db_pool_connections", "Database pool connections by state (in_use, idle)");
    pub const POOL_MAX: Metric = Metric::new("db_pool_max_connections", "Configured largest pool size");
    pub const AUDIT_RECORDS: Metric =
        Metric::new("audit_records_total", "Audit records by fate (written, lost at shutdown)");
    pub const EMBEDDINGS_CIRCUIT: Metric = Metric::new(
        "embeddings_circuit_state",
        "The remote embeddings provider's circuit breaker: 1 for its current state (closed, open, half_open), 0 for the others",
    );

    pub const ALL: &[Metric] = &[
        HTTP_REQUESTS,
        TOOL_CALLS,
        TOOL_DURATION,
        QUERY_DURATION,
        REJECTED_QUERIES,
        ERRORS,
        RATE_LIMITED,
        INFLIGHT_REQUESTS,
        POOL_CONNECTIONS,
        POOL_MAX,
        AUDIT_RECORDS,
        EMBEDDINGS_CIRCUIT,
    ];
}

/// The operator's metrics (registry prefix [`operator::PREFIX`]).
pub mod operator {
    use super::Metric;

    pub const PREFIX: &str = "mcpfleet_operator";

    pub const RECONCILES: Metric = Metric::new("reconciles_total", "Reconciles started");
    pub const RECONCILE_FAILURES: Metric =
        Metric::new("reconcile_failures_total", "Reconciles that failed, by reason");
    pub const RECONCILE_DURATION: Metric =
        Metric::new("reconcile_duration_seconds", "Time one reconcile took");
    pub const LEADER: Metric = Metric::new("leader", "1 while this replica holds the leader lease");
    pub const TENANTS: Metric = Metric::new("tenants", "McpTenants by condition and status");
    pub const API_REQUESTS: Metric = Metric::new(
        "api_requests_total",
        "Requests sent to the Kubernetes API, by verb (get, list, watch, create, apply, patch, update, delete) and resource",
    );

    pub const ALL: &[Metric] =
        &[RECONCILES, RECONCILE_FAILURES, RECONCILE_DURATION, LEADER, TENANTS, API_REQUESTS];
}

/// The full names (`<prefix>_<name>`) of `metrics`, sorted.
pub fn full_names(prefix: &str, metrics: &[Metric]) -> Vec<String> {
    let mut names: Vec<String> = metrics.iter().map(|m| format!("{prefix}_{}", m.name)).collect();
    names.sort();
    names
}

/// Every exported metric's full name, server's and operator's.
pub fn exported_names() -> Vec<String> {
    let mut names = full_names(server::PREFIX, server::ALL);
    names.extend(full_names(operator::PREFIX, operator::ALL));
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_prefixed() {
        let mut names = exported_names();
        assert!(names.contains(&"mcpfleet_tool_calls_total".to_owned()));
        assert!(names.contains(&"mcpfleet_operator_leader".to_owned()));
        let count = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), count);
    }
}
