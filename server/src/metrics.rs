//! Prometheus metrics of one server: requests, tool calls by tool and outcome, query latency,
//! pool use, rejected queries, errors, calls refused for fair sharing and the embeddings circuit
//! breaker. Names and help texts come from `mcp_fleet_core::metrics::server`, the list the
//! chart's alerts and dashboard are checked against. Each server owns its registry, so tests stay isolated.

use mcp_fleet_core::metrics::{Metric, server as names};

use crate::embed::CircuitState;
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
    pub rate_limited: IntCounterVec,
    pub inflight_requests: IntGauge,
    pub pool_connections: IntGaugeVec,
    pub pool_max: IntGauge,
    pub audit_records: IntCounterVec,
    pub embeddings_circuit: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some(names::PREFIX.into()), None).expect("static registry prefix is valid");
        let http_requests =
            IntCounterVec::new(opts(names::HTTP_REQUESTS), &["route", "status"]).expect("valid metric");
        let tool_calls =
            IntCounterVec::new(opts(names::TOOL_CALLS), &["tool", "outcome"]).expect("valid metric");
        let tool_duration =
            HistogramVec::new(histogram(names::TOOL_DURATION), &["tool"]).expect("valid metric");
        let query_duration =
            HistogramVec::new(histogram(names::QUERY_DURATION), &["tool"]).expect("valid metric");
        let rejected_queries =
            IntCounterVec::new(opts(names::REJECTED_QUERIES), &["reason"]).expect("valid metric");
        let errors = IntCounterVec::new(opts(names::ERRORS), &["kind"]).expect("valid metric");
        let rate_limited = IntCounterVec::new(opts(names::RATE_LIMITED), &["kind"]).expect("valid metric");
        let inflight_requests = IntGauge::with_opts(opts(names::INFLIGHT_REQUESTS)).expect("valid metric");
        let pool_connections =
            IntGaugeVec::new(opts(names::POOL_CONNECTIONS), &["state"]).expect("valid metric");
        let pool_max = IntGauge::with_opts(opts(names::POOL_MAX)).expect("valid metric");
        let audit_records = IntCounterVec::new(opts(names::AUDIT_RECORDS), &["state"]).expect("valid metric");
        let embeddings_circuit =
            IntGaugeVec::new(opts(names::EMBEDDINGS_CIRCUIT), &["state"]).expect("valid metric");
        for c in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(tool_calls.clone()),
            Box::new(tool_duration.clone()),
            Box::new(query_duration.clone()),
            Box::new(rejected_queries.clone()),
            Box::new(errors.clone()),
            Box::new(rate_limited.clone()),
            Box::new(inflight_requests.clone()),
            Box::new(pool_connections.clone()),
            Box::new(pool_max.clone()),
            Box::new(audit_records.clone()),
            Box::new(embeddings_circuit.clone()),
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
            rate_limited,
            inflight_requests,
            pool_connections,
            pool_max,
            audit_records,
            embeddings_circuit,
        }
    }

    /// Records the pool's state and the embeddings circuit breaker's (a remote provider has
    /// one), then renders every metric in the text exposition format.
    pub fn render(&self, pool: &sqlx::PgPool, circuit: Option<CircuitState>) -> String {
        if let Some(now) = circuit {
            for state in CircuitState::ALL {
                self.embeddings_circuit.with_label_values(&[state.as_str()]).set(i64::from(state == now));
            }
        }
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

fn opts(m: Metric) -> Opts {
    Opts::new(m.name, m.help)
}

fn histogram(m: Metric) -> HistogramOpts {
    HistogramOpts::new(m.name, m.help).buckets(LATENCY_BUCKETS.to_vec())
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registry_holds_exactly_the_metrics_core_names() {
        let m = Metrics::new();
        // A labelled family is gathered once it has a child.
        m.http_requests.with_label_values(&["/mcp", "200"]).inc();
        m.tool_calls.with_label_values(&["t", "ok"]).inc();
        m.tool_duration.with_label_values(&["t"]).observe(0.1);
        m.query_duration.with_label_values(&["t"]).observe(0.1);
        m.rejected_queries.with_label_values(&["r"]).inc();
        m.errors.with_label_values(&["k"]).inc();
        m.rate_limited.with_label_values(&["rate"]).inc();
        m.pool_connections.with_label_values(&["idle"]).set(0);
        m.audit_records.with_label_values(&["written"]).inc();
        m.embeddings_circuit.with_label_values(&["closed"]).set(1);
        let mut registered: Vec<String> = m.registry.gather().iter().map(|f| f.name().to_owned()).collect();
        registered.sort();
        assert_eq!(registered, mcp_fleet_core::metrics::full_names(names::PREFIX, names::ALL));
    }
}
