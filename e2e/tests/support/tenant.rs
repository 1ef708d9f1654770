//! McpTenant objects for the end-to-end tests. Talks to the API server.

use kube::Api;
use kube::api::PostParams;
use mcp_fleet_operator::crd::McpTenant;
use serde_json::json;

/// Creates the McpTenant `name` with `spec` (JSON, as a user writes it) through `api`.
pub async fn create_tenant(api: &Api<McpTenant>, name: &str, spec: serde_json::Value) -> McpTenant {
    let t: McpTenant = serde_json::from_value(json!({
        "apiVersion": "mcpfleet.io/v1alpha1",
        "kind": "McpTenant",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("a valid McpTenant");
    api.create(&PostParams::default(), &t).await.expect("create the McpTenant")
}
