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
    api_requests: IntCounterVec,
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
        let api_requests =
            IntCounterVec::new(opts(names::API_REQUESTS), &["verb", "resource"]).expect("valid metric");
        for m in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(failures.clone()),
            Box::new(duration.clone()),
            Box::new(leader.clone()),
            Box::new(tenants.clone()),
            Box::new(api_requests.clone()),
        ] {
            registry.register(m).expect("metric names are unique");
        }
        Self {
            registry,
            reconciles,
            failures,
            duration,
            leader,
            tenants,
            api_requests,
            known: Mutex::default(),
        }
    }
}

impl Metrics {
    /// Counts one request the operator's client is about to send to the Kubernetes API.
    pub fn count_api_request<B>(&self, request: &http::Request<B>) {
        let (verb, resource) = api_request_kind(request);
        self.api_requests.with_label_values(&[verb, resource.as_str()]).inc();
    }

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

/// The verb and resource (`secrets`, `mcptenants/status`) of a request to the Kubernetes API,
/// from its method, path and query, as kube-apiserver's own `apiserver_request_total` names them.
fn api_request_kind<B>(request: &http::Request<B>) -> (&'static str, String) {
    let uri = request.uri();
    let segments: Vec<&str> = uri.path().split('/').filter(|s| !s.is_empty()).collect();
    // `/api/v1/...` or `/apis/<group>/<version>/...`; anything else (`/version`) is its own path.
    let rest = match segments.first() {
        Some(&"api") => segments.get(2..),
        Some(&"apis") => segments.get(3..),
        _ => None,
    };
    let Some(mut rest) = rest else { return (verb(request, false), uri.path().to_owned()) };
    // A namespaced path: `namespaces/<ns>/<resource>...`; `namespaces/<ns>` alone is a namespace.
    if rest.first() == Some(&"namespaces") && rest.len() > 2 {
        rest = &rest[2..];
    }
    let resource = match rest {
        [] => String::new(),
        [resource] | [resource, _] => (*resource).to_owned(),
        [resource, _, sub, ..] => format!("{resource}/{sub}"),
    };
    (verb(request, rest.len() == 1), resource)
}

fn verb<B>(request: &http::Request<B>, collection: bool) -> &'static str {
    let query = request.uri().query().unwrap_or_default();
    match *request.method() {
        http::Method::GET if query.split('&').any(|p| p == "watch=true" || p == "watch=1") => "watch",
        http::Method::GET if collection => "list",
        http::Method::GET => "get",
        http::Method::POST => "create",
        http::Method::PUT => "update",
        http::Method::DELETE => "delete",
        http::Method::PATCH => {
            let apply = request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .is_some_and(|t| t.as_bytes().starts_with(b"application/apply-patch"));
            if apply { "apply" } else { "patch" }
        }
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_requests_are_named_by_verb_and_resource() {
        let kind = |method: &str, uri: &str, content_type: Option<&str>| {
            let mut request = http::Request::builder().method(method).uri(uri);
            if let Some(t) = content_type {
                request = request.header("content-type", t);
            }
            let (verb, resource) = api_request_kind(&request.body(()).expect("a request"));
            format!("{verb} {resource}")
        };
        assert_eq!(kind("GET", "/api/v1/namespaces/a/secrets/s", None), "get secrets");
        assert_eq!(kind("GET", "/api/v1/secrets?labelSelector=x&limit=500", None), "list secrets");
        assert_eq!(
            kind("GET", "/api/v1/namespaces/a/secrets?watch=true&timeoutSeconds=290", None),
            "watch secrets"
        );
        assert_eq!(kind("GET", "/api/v1/namespaces/a", None), "get namespaces");
        assert_eq!(
            kind(
                "PATCH",
                "/apis/apps/v1/namespaces/a/deployments/d?fieldManager=m",
                Some("application/apply-patch+yaml")
            ),
            "apply deployments"
        );
        assert_eq!(
            kind(
                "PATCH",
                "/apis/mcpfleet.io/v1alpha1/namespaces/a/mcptenants/t/status",
                Some("application/merge-patch+json")
            ),
            "patch mcptenants/status"
        );
        assert_eq!(kind("POST", "/api/v1/namespaces/a/events", None), "create events");
        assert_eq!(kind("PUT", "/apis/coordination.k8s.io/v1/namespaces/a/leases/l", None), "update leases");
        assert_eq!(kind("DELETE", "/apis/batch/v1/namespaces/a/jobs/j", None), "delete jobs");
        assert_eq!(kind("GET", "/version", None), "get /version");
    }

    #[test]
    fn api_requests_are_counted() {
        let m = Metrics::default();
        let request = http::Request::get("/api/v1/namespaces/a/secrets/s").body(()).expect("a request");
        m.count_api_request(&request);
        m.count_api_request(&request);
        let text = m.render();
        assert!(
            text.contains(r#"mcpfleet_operator_api_requests_total{resource="secrets",verb="get"} 2"#),
            "{text}"
        );
    }

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
        m.api_requests.with_label_values(&["get", "secrets"]).inc();
        m.set_conditions("a/x", Some(vec![("Ready".to_owned(), "True".to_owned())]));
        let mut registered: Vec<String> = m.registry.gather().iter().map(|f| f.name().to_owned()).collect();
        registered.sort();
        assert_eq!(registered, mcp_fleet_core::metrics::full_names(names::PREFIX, names::ALL));
    }
}
