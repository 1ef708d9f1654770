//! Prometheus metrics of one server: requests, tool calls by tool and outcome, query latency,
//! pool use, rejected queries and errors. Each server owns its registry, so tests stay isolated.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub tool_calls: IntCounterVec,
    pub tool_duration: HistogramVec,
    pub query_duration: HistogramVec,
    pub rejected_queries: IntCounterVec,
    pub errors: IntCounterVec,
    pub inflight_requests: IntGauge,
    pub pool_connections: IntGaugeVec,
    pub pool_max: IntGauge,
    pub audit_records: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("mcpfleet".into()), None).expect("static registry prefix is valid");
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status code"),
            &["route", "status"],
        )
        .expect("valid metric");
        let tool_calls = IntCounterVec::new(
            Opts::new("tool_calls_total", "MCP tool calls by tool and outcome (ok, error, rejected, denied)"),
            &["tool", "outcome"],
        )
        .expect("valid metric");
        let tool_duration = HistogramVec::new(
            HistogramOpts::new("tool_duration_seconds", "Time to answer a tool call")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["tool"],
        )
        .expect("valid metric");
        let query_duration = HistogramVec::new(
            HistogramOpts::new("query_duration_seconds", "Time PostgreSQL spent on a tool's query")
                .buckets(LATENCY_BUCKETS.to_vec()),
            &["tool"],
        )
        .expect("valid metric");
        let rejected_queries = IntCounterVec::new(
            Opts::new("rejected_queries_total", "Queries refused before reaching the database, by reason"),
            &["reason"],
        )
        .expect("valid metric");
        let errors =
            IntCounterVec::new(Opts::new("errors_total", "Errors by kind"), &["kind"]).expect("valid metric");
        let inflight_requests =
            IntGauge::new("inflight_requests", "MCP requests being served now (an autoscaling signal)")
                .expect("valid metric");
        let pool_connections = IntGaugeVec::new(
            Opts::new("db_pool_connections", "Database pool connections by state (in_use, idle)"),
            &["state"],
        )
        .expect("valid metric");
        let pool_max =
            IntGauge::new("db_pool_max_connections", "Configured largest pool size").expect("valid metric");
        let audit_records = IntCounterVec::new(
            Opts::new("audit_records_total", "Audit records by fate (written, lost at shutdown)"),
            &["state"],
        )
        .expect("valid metric");
        for c in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(tool_calls.clone()),
            Box::new(tool_duration.clone()),
            Box::new(query_duration.clone()),
            Box::new(rejected_queries.clone()),
            Box::new(errors.clone()),
            Box::new(inflight_requests.clone()),
            Box::new(pool_connections.clone()),
            Box::new(pool_max.clone()),
            Box::new(audit_records.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Self {
            registry,
            http_requests,
            tool_calls,
            tool_duration,
            query_duration,
            rejected_queries,
            errors,
            inflight_requests,
            pool_connections,
            pool_max,
            audit_records,
        }
    }

    /// Records the pool's state, then renders every metric in the text exposition format.
    pub fn render(&self, pool: &sqlx::PgPool) -> String {
        let size = i64::from(pool.size());
        let idle = i64::try_from(pool.num_idle()).unwrap_or(i64::MAX);
        self.pool_connections.with_label_values(&["idle"]).set(idle);
        self.pool_connections.with_label_values(&["in_use"]).set((size - idle).max(0));
        self.pool_max.set(i64::from(pool.options().get_max_connections()));
        let mut buf = Vec::new();
        if TextEncoder::new().encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
