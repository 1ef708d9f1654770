//! Waiting for tenants and their server pods as a user does (`kubectl wait`, a finished roll), and
//! fresh names for them. Talks to the API server.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::ListParams;
use mcp_fleet_e2e::TestNamespace;
use mcp_fleet_operator::crd::McpTenant;
use serde_json::Value;

pub const READY_TIMEOUT: &str = "240s";

/// A fresh object name: `prefix` and six random hex digits.
pub fn name(prefix: &str) -> String {
    format!("{prefix}-{:06x}", rand::random::<u32>() & 0xff_ffff)
}

/// `kubectl wait --for=condition=Ready mcpt/<name>`, as a user or a CI pipeline waits.
pub async fn wait_ready(ns: &TestNamespace, name: &str) {
    let mcpt = format!("mcpt/{name}");
    let timeout = format!("--timeout={READY_TIMEOUT}");
    let out = ns.kubectl_output(&["wait", "--for=condition=Ready", &mcpt, &timeout], None).await;
    if !out.status.success() {
        let describe = ns.kubectl_output(&["describe", &mcpt], None).await;
        let pods = ns.kubectl_output(&["get", "pods,events", "-o", "wide"], None).await;
        panic!(
            "{mcpt} did not become Ready: {}\n{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&describe.stdout),
            String::from_utf8_lossy(&pods.stdout)
        );
    }
}

/// The endpoint the tenant's status advertises (the audience of its tokens).
pub async fn endpoint(ns: &TestNamespace, name: &str) -> String {
    let t = ns.api::<McpTenant>().get(name).await.expect("get the McpTenant");
    t.status.and_then(|s| s.endpoint).expect("a Ready tenant advertises its endpoint")
}

/// The names of the server pods of tenant `name` once its roll is over: exactly `replicas` pods,
/// all Ready, all of the Deployment's current template, none terminating.
pub async fn rolled(ns: &TestNamespace, name: &str, replicas: i32) -> Option<Vec<String>> {
    let items = server_pods(ns, name).await;
    let ready = |p: &Pod| p.metadata.deletion_timestamp.is_none() && is_ready(p);
    let hash = |p: &Pod| p.labels().get("pod-template-hash").cloned();
    let d = ns.api::<Deployment>().get(name).await.expect("the tenant's Deployment");
    let s = d.status?;
    let want = Some(replicas);
    let current = s.observed_generation >= d.metadata.generation
        && s.replicas == want
        && s.updated_replicas == want
        && s.ready_replicas == want;
    let same = items.iter().all(|p| hash(p).is_some() && hash(p) == hash(&items[0]));
    (current && same && items.len() == replicas as usize && items.iter().all(ready))
        .then(|| items.iter().map(|p| p.name_any()).collect())
}

/// Whether the ingress controller routes tenant `name` to exactly its Ready server pods, as its
/// own API (`/api/http/services` on its loopback admin port) says. The controller applies an
/// EndpointSlice change a moment after the pod turns Ready (Traefik throttles its providers for
/// 2 s), so a test that takes a pod away must wait for this first: otherwise the ingress may
/// still know only the pod it removes, and no other.
pub async fn ingress_routes_to_every_ready_pod(
    ns: &TestNamespace,
    admin_port: u16,
    name: &str,
) -> Option<()> {
    let ready: BTreeSet<String> = server_pods(ns, name)
        .await
        .iter()
        .filter(|p| is_ready(p))
        .filter_map(|p| p.status.as_ref()?.pod_ip.clone())
        .collect();
    let prefix = format!("{}-{name}-", ns.name());
    let url = format!("http://127.0.0.1:{admin_port}/api/http/services?search={prefix}");
    let services: Vec<Value> = reqwest::get(&url).await.ok()?.error_for_status().ok()?.json().await.ok()?;
    let routed: BTreeSet<String> = services
        .iter()
        .filter(|s| s["name"].as_str().is_some_and(|n| n.starts_with(&prefix) && n.ends_with("@kubernetes")))
        .flat_map(|s| s["loadBalancer"]["servers"].as_array().cloned().unwrap_or_default())
        .filter_map(|server| {
            let url = server["url"].as_str()?;
            let host = url.strip_prefix("http://")?.rsplit_once(':')?.0;
            Some(host.to_owned())
        })
        .collect();
    (!ready.is_empty() && routed == ready).then_some(())
}

/// The server pods of tenant `name`, as the API server lists them.
pub async fn server_pods(ns: &TestNamespace, name: &str) -> Vec<Pod> {
    let selector = format!("app.kubernetes.io/instance={name},app.kubernetes.io/component=server");
    ns.api::<Pod>().list(&ListParams::default().labels(&selector)).await.expect("list server pods").items
}

/// Whether pod `p`'s `Ready` condition is True.
fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
