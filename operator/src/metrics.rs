//! Prometheus metrics of the operator (served at `/metrics`), named as
//! `mcp_fleet_core::metrics::operator` lists them. No I/O.

use std::collections::HashMap;
use std::sync::Mutex;

use mcp_fleet_core::metrics::{Metric, operator as names};
use prometheus::{
    Encoder as _, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// The conditions counted by `mcpfleet_operator_tenants`.
const COUNTED: [&str; 4] = ["Ready", "DatabaseReady", "WorkloadReady", "BackupScheduled"];

pub struct Metrics {
    registry: Registry,
    pub reconciles: IntCounter,
    pub failures: IntCounterVec,
    pub duration: Histogram,
    pub leader: IntGauge,
    tenants: IntGaugeVec,
    /// Last known condition statuses per McpTenant (namespace/name), to recompute the gauge.
    known: Mutex<HashMap<String, Vec<(String, String)>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = Registry::new_custom(Some(names::PREFIX.into()), None).expect("valid prefix");
        let opts = |m: Metric| Opts::new(m.name, m.help);
        let reconciles = IntCounter::with_opts(opts(names::RECONCILES)).expect("valid metric");
        let failures =
            IntCounterVec::new(opts(names::RECONCILE_FAILURES), &["reason"]).expect("valid metric");
        let duration = Histogram::with_opts(
            HistogramOpts::new(names::RECONCILE_DURATION.name, names::RECONCILE_DURATION.help)
                .buckets(vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
        )
        .expect("valid metric");
        let leader = IntGauge::with_opts(opts(names::LEADER)).expect("valid metric");
        let tenants = IntGaugeVec::new(opts(names::TENANTS), &["condition", "status"]).expect("valid metric");
        for m in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(failures.clone()),
            Box::new(duration.clone()),
            Box::new(leader.clone()),
            Box::new(tenants.clone()),
        ] {
            registry.register(m).expect("metric names are unique");
        }
        Self { registry, reconciles, failures, duration, leader, tenants, known: Mutex::default() }
    }
}

impl Metrics {
    /// Records the conditions of one McpTenant (`None`: it is gone) and refreshes the gauge.
    pub fn set_conditions(&self, key: &str, conditions: Option<Vec<(String, String)>>) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        match conditions {
            Some(c) => known.insert(key.to_owned(), c),
            None => known.remove(key),
        };
        self.tenants.reset();
        for cond in COUNTED {
            for status in ["True", "False", "Unknown"] {
                self.tenants.with_label_values(&[cond, status]).set(0);
            }
        }
        for conds in known.values() {
            for (t, s) in conds.iter().filter(|(t, _)| COUNTED.contains(&t.as_str())) {
                self.tenants.with_label_values(&[t.as_str(), s.as_str()]).inc();
            }
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenants_are_counted_by_condition() {
        let m = Metrics::default();
        let c = |r: &str| {
            Some(vec![("Ready".to_owned(), r.to_owned()), ("Stalled".to_owned(), "True".to_owned())])
        };
        m.set_conditions("a/x", c("True"));
        m.set_conditions("a/y", c("False"));
        m.set_conditions("a/z", c("False"));
        let text = m.render();
        assert!(text.contains(r#"mcpfleet_operator_tenants{condition="Ready",status="False"} 2"#), "{text}");
        assert!(text.contains(r#"mcpfleet_operator_tenants{condition="Ready",status="True"} 1"#), "{text}");
        assert!(!text.contains("Stalled"));
        m.set_conditions("a/y", None);
        assert!(m.render().contains(r#"mcpfleet_operator_tenants{condition="Ready",status="False"} 1"#));
    }

    #[test]
    fn the_registry_holds_exactly_the_metrics_core_names() {
        let m = Metrics::default();
        // A labelled family is gathered once it has a child.
        m.failures.with_label_values(&["apply_failed"]).inc();
        m.set_conditions("a/x", Some(vec![("Ready".to_owned(), "True".to_owned())]));
        let mut registered: Vec<String> = m.registry.gather().iter().map(|f| f.name().to_owned()).collect();
        registered.sort();
        assert_eq!(registered, mcp_fleet_core::metrics::full_names(names::PREFIX, names::ALL));
    }
}
