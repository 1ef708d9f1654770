//! The control plane's own floor for N McpTenants, measured in the same run as the operator: what
//! the API server, etcd and the controllers cost for the same objects the operator writes, with
//! no operator at all. The benchmark's client creates the McpTenants as in the operator's round
//! (8 at a time); as each is created, one of `concurrency` writers (the operator's concurrency)
//! applies the children the operator would build for it, rendered with the operator's own pure
//! `validate::plan` and `build`, in the operator's order and under its field manager, then its
//! status. No PostgreSQL, no watches, no reads. Starts nothing; talks to the API server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use mcp_fleet_e2e::TestNamespace;
use mcp_fleet_operator::build::{Children, build};
use mcp_fleet_operator::controller::status::{
    Observation, Verdict, backup_verdict, desired_status, observe_workload,
};
use mcp_fleet_operator::crd::McpTenant;
use mcp_fleet_operator::resources::{Credentials, MANAGER};
use mcp_fleet_operator::validate::{Defaults, Plan, plan};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::CREATE_PARALLELISM;

/// How long the floor took for `n` McpTenants: from the first create to the last status write.
pub async fn run(
    ns: &TestNamespace,
    n: usize,
    concurrency: usize,
    admin_url: &str,
    prefix: &str,
) -> Duration {
    let defaults = Defaults {
        server_image: crate::world::SERVER_IMAGE.into(),
        cluster_domain: "cluster.local".into(),
        admin_url: None,
    };
    let tenants: Api<McpTenant> = ns.api();
    let (created_tx, created_rx) = tokio::sync::mpsc::channel::<McpTenant>(n.max(1));
    let created_rx = Arc::new(tokio::sync::Mutex::new(created_rx));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(1));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CREATE_PARALLELISM {
        let (tenants, next, tx, prefix) =
            (tenants.clone(), next.clone(), created_tx.clone(), prefix.to_owned());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i > n {
                    break;
                }
                let t = crate::tenant_object(i, &prefix);
                let created =
                    bounded("creating an McpTenant", tenants.create(&PostParams::default(), &t)).await;
                tx.send(created).await.expect("a floor writer is listening");
            }
        });
    }
    drop(created_tx);
    for _ in 0..concurrency {
        let (client, rx, defaults, url) =
            (ns.client(), created_rx.clone(), defaults.clone(), admin_url.to_owned());
        tasks.spawn(async move {
            loop {
                let Some(t) = rx.lock().await.recv().await else { break };
                let plan = plan(&t, &defaults, &url).expect("the benchmark's McpTenant is valid");
                write_all(&client, &t, &plan).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a floor task");
    }
    started.elapsed()
}

/// The operator's writes for one McpTenant: its seven children in order, then its status.
async fn write_all(client: &Client, t: &McpTenant, plan: &Plan) {
    let creds = Credentials {
        login: plan.tenant.login_role(),
        password: mcp_fleet_core::tenant::generate_password(),
        rotated_for: None,
    };
    let Children {
        service_account,
        credentials,
        config_map,
        service,
        deployment,
        disruption_budget,
        network_policy,
        ..
    } = build(plan, &creds);
    apply(client, service_account.object.as_ref().expect("a ServiceAccount")).await;
    apply(client, &credentials).await;
    apply(client, &config_map).await;
    apply(client, &service).await;
    let deployment = apply(client, &deployment).await;
    apply(client, &disruption_budget).await;
    apply(client, network_policy.object.as_ref().expect("a NetworkPolicy")).await;

    let mut obs = Observation {
        generation: t.metadata.generation,
        tenant: Some(plan.tenant.to_string()),
        database: Some(Verdict::ok("RolesApplied", "roles applied")),
        endpoint: Some(plan.endpoint()),
        credentials_secret: Some(credentials.name_any()),
        backup: Some(backup_verdict(plan)),
        last_backup: Some(None),
        ..Observation::default()
    };
    observe_workload(&mut obs, &deployment);
    let status = desired_status(None, &obs, &Time(k8s_openapi::jiff::Timestamp::now()));
    let patch = serde_json::json!({
        "apiVersion": McpTenant::api_version(&()),
        "kind": McpTenant::kind(&()),
        "status": status,
    });
    let api: Api<McpTenant> = Api::namespaced(client.clone(), &t.namespace().unwrap_or_default());
    let params = PatchParams::apply(MANAGER).force();
    bounded("writing a status", api.patch_status(&t.name_any(), &params, &Patch::Apply(&patch))).await;
}

async fn apply<K>(client: &Client, obj: &K) -> K
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + Serialize
        + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), &obj.namespace().unwrap_or_default());
    let params = PatchParams::apply(MANAGER).force();
    bounded("applying a child", api.patch(&obj.name_any(), &params, &Patch::Apply(obj))).await
}

/// `request`'s answer; panics after 60 s or on an error (the floor must write everything).
async fn bounded<T>(what: &str, request: impl Future<Output = Result<T, kube::Error>>) -> T {
    tokio::time::timeout(Duration::from_secs(60), request)
        .await
        .unwrap_or_else(|_| panic!("{what} took over 60 s"))
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}
