//! The operator end to end: the real binary run out-of-cluster against a real kube-apiserver and
//! kube-controller-manager (no kubelet: pods never start) and a real PostgreSQL with the sample
//! stores. Each test has its own namespace, database, operator process(es) and tenant names.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Resource, ResourceExt};
use mcp_fleet_core::server_config::ServerConfigFile;
use mcp_fleet_e2e::operator_world::{ADMIN_SECRET, admin_login, install_crd, put_admin_secret};
use mcp_fleet_e2e::{BackgroundBin, TestNamespace, WAIT, WorkspaceBin, eventually};
use mcp_fleet_operator::crd::{McpTenant, McpTenantStatus, condition};
use mcp_fleet_testkit::TestDb;
use mcp_fleet_testkit::otelcol::{Collector, ExportedSpan};
use mcp_fleet_testkit::pg::unique_name;
use mcp_fleet_testkit::process::free_port;
use serde_json::json;

#[path = "support/tenant.rs"]
mod tenant;

/// One test's world: a namespace with the CRD installed, a database with the sample stores, an
/// operator role's URL in an admin Secret.
struct World {
    ns: TestNamespace,
    db: TestDb,
    admin_url: String,
}

impl World {
    async fn new(prefix: &str) -> World {
        let ns = TestNamespace::new(prefix).await;
        install_crd(&ns).await;
        let db = TestDb::from_template("e2e-operator-stores", |pool| async move {
            mcp_fleet_testkit::pg::insert_sample_stores(&pool).await;
        })
        .await;
        let admin_url = admin_login(&ns, &db).await;
        World { ns, db, admin_url }
    }

    async fn set_admin_url(&self, url: &str) {
        put_admin_secret(&self.ns, url).await;
    }

    /// Starts an operator watching this namespace (leader election on a Lease in it).
    async fn operator(&self, identity: &str, resync: &str) -> Operator {
        self.operator_with(identity, resync, &[]).await
    }

    /// [`World::operator`] with further flags.
    async fn operator_with(&self, identity: &str, resync: &str, extra: &[&str]) -> Operator {
        let bin =
            tokio::task::spawn_blocking(|| WorkspaceBin::build("mcp-fleet-operator")).await.expect("build");
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = vec![
            "--watch-namespace",
            self.ns.name(),
            "--lease-namespace",
            self.ns.name(),
            "--lease-duration",
            "4s",
            "--identity",
            identity,
            "--listen",
            &listen,
            "--resync-interval",
            resync,
            "--backoff-base",
            "500ms",
            "--backoff-max",
            "3s",
            "--server-image",
            "mcp-fleet-server:e2e",
            "--log-format",
            "text",
        ];
        args.extend_from_slice(extra);
        Operator { process: self.ns.spawn_bin(&bin, &args), port }
    }

    fn tenants(&self) -> Api<McpTenant> {
        self.ns.api()
    }

    async fn create(&self, name: &str, spec: serde_json::Value) -> McpTenant {
        tenant::create_tenant(&self.tenants(), name, spec).await
    }

    async fn patch_spec(&self, name: &str, spec: serde_json::Value) {
        self.tenants()
            .patch(name, &PatchParams::default(), &Patch::Merge(json!({"spec": spec})))
            .await
            .expect("patch the McpTenant");
    }

    /// Waits until the McpTenant's status satisfies `ok`; returns it.
    async fn wait_status(&self, name: &str, what: &str, ok: impl Fn(&McpTenantStatus) -> bool) -> McpTenant {
        let api = self.tenants();
        eventually(format!("{name}: {what}"), WAIT, || {
            let api = api.clone();
            let ok = &ok;
            async move {
                let t = api.get_opt(name).await.ok().flatten()?;
                let gen_seen = t.status.as_ref().and_then(|s| s.observed_generation) == t.metadata.generation;
                (gen_seen && t.status.as_ref().is_some_and(ok)).then_some(t)
            }
        })
        .await
    }

    async fn credentials(&self, name: &str) -> (String, String) {
        let s =
            self.ns.api::<Secret>().get(&format!("{name}-db-credentials")).await.expect("credentials Secret");
        let data = s.data.expect("Secret data");
        let text = |k: &str| String::from_utf8(data[k].0.clone()).expect("UTF-8");
        (text("username"), text("password"))
    }

    /// Store ids a login with `user`/`password` sees (row-level security at work).
    async fn visible_stores(&self, user: &str, password: &str) -> Result<Vec<i32>, String> {
        let mut conn = self.db.connect_as(user, password).await.map_err(|e| e.to_string())?;
        sqlx::query_scalar("SELECT store_id FROM retail.stores ORDER BY 1")
            .fetch_all(&mut conn)
            .await
            .map_err(|e| e.to_string())
    }

    async fn roles_of(&self, tenant: &str) -> Vec<String> {
        sqlx::query_scalar("SELECT rolname::text FROM pg_roles WHERE rolname IN ($1, $2) ORDER BY 1")
            .bind(format!("mcpt_{tenant}"))
            .bind(format!("mcpt_{tenant}_login"))
            .fetch_all(&self.db.admin)
            .await
            .expect("read pg_roles")
    }

    async fn warnings_about(&self, name: &str) -> Vec<Event> {
        let events = self.events_about(name).await;
        events.into_iter().filter(|e| e.type_.as_deref() == Some("Warning")).collect()
    }

    /// Waits for a Warning Event with `reason` about `name`: the operator publishes Events after
    /// the status write that a test usually waits for, so they may come a moment later.
    async fn wait_warning(&self, name: &str, reason: &str) {
        eventually(format_args!("a Warning {reason} about {name}"), WAIT, || async {
            let warnings = self.warnings_about(name).await;
            warnings.iter().any(|e| e.reason.as_deref() == Some(reason)).then_some(())
        })
        .await;
    }

    /// The Events about the McpTenant `name`. Not those about its children of the same name: the
    /// API server's own controllers write some (its ClusterIP repair loop about a new Service).
    async fn events_about(&self, name: &str) -> Vec<Event> {
        let events = self.ns.api::<Event>().list(&ListParams::default()).await.expect("list events").items;
        events
            .into_iter()
            .filter(|e| {
                e.regarding.as_ref().is_some_and(|r| {
                    r.kind.as_deref() == Some("McpTenant") && r.name.as_deref() == Some(name)
                })
            })
            .collect()
    }
}

struct Operator {
    process: BackgroundBin,
    port: u16,
}

impl Operator {
    /// The value of an un-labelled metric from `/metrics`.
    async fn metric(&self, name: &str) -> f64 {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut s =
            tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.expect("connect to /metrics");
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n").await.expect("send");
        let mut body = String::new();
        s.read_to_string(&mut body).await.expect("read");
        body.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("metric {name} not found in:\n{body}"))
    }
}

fn tenant_name() -> String {
    unique_name("t").replace('_', "-")
}

/// The smallest useful spec: `tenant` owning one store, admin connection from [`ADMIN_SECRET`].
fn one_store_spec(tenant: &str, store: &str) -> serde_json::Value {
    json!({"tenant": tenant, "stores": [store], "database": {"adminSecretRef": {"name": ADMIN_SECRET}}})
}

fn db_ready(s: &McpTenantStatus) -> bool {
    s.is_true(condition::DATABASE_READY)
}

/// `(kind/name, resourceVersion)` of every child that exists, for "nothing was written" checks.
async fn child_versions(ns: &TestNamespace, name: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    macro_rules! rv {
        ($k:ty, $n:expr) => {
            let n: String = $n;
            if let Some(o) = ns.api::<$k>().get_opt(&n).await.expect("read child") {
                out.insert(format!("{}/{n}", <$k>::kind(&())), o.resource_version().unwrap_or_default());
            }
        };
    }
    rv!(ServiceAccount, name.to_owned());
    rv!(ConfigMap, format!("{name}-config"));
    rv!(Secret, format!("{name}-db-credentials"));
    rv!(Service, name.to_owned());
    rv!(NetworkPolicy, name.to_owned());
    rv!(Ingress, name.to_owned());
    rv!(McpTenant, name.to_owned());
    // Controllers write these objects' status; compare what the operator owns instead.
    if let Some(d) = ns.api::<Deployment>().get_opt(name).await.expect("read Deployment") {
        out.insert("Deployment generation".into(), d.metadata.generation.unwrap_or_default().to_string());
        out.insert("Deployment operator fields".into(), manager_time(&d.metadata));
    }
    if let Some(h) = ns.api::<HorizontalPodAutoscaler>().get_opt(name).await.expect("read HPA") {
        out.insert("HPA generation".into(), h.metadata.generation.unwrap_or_default().to_string());
        out.insert("HPA operator fields".into(), manager_time(&h.metadata));
    }
    if let Some(c) = ns.api::<CronJob>().get_opt(&format!("{name}-backup")).await.expect("read CronJob") {
        out.insert("CronJob operator fields".into(), manager_time(&c.metadata));
    }
    out
}

/// When the operator's field manager last changed the object (server-side apply bookkeeping).
fn manager_time(meta: &ObjectMeta) -> String {
    meta.managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some("mcp-fleet-operator"))
        .map(|m| format!("{:?}:{:?}", m.operation, m.time.as_ref().map(|t| t.0)))
        .collect::<Vec<_>>()
        .join(",")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_is_created_updated_rotated_and_deleted() {
    let w = World::new("op-lifecycle").await;
    let op = w.operator("op-a", "2s").await;
    let name = "lifecycle";
    let tenant = tenant_name();
    w.create(
        name,
        json!({
            "tenant": tenant,
            "stores": ["Zava Retail Seattle"],
            "deletionPolicy": "Delete",
            "database": {"adminSecretRef": {"name": ADMIN_SECRET}},
            "auth": {"issuer": "https://issuer.example.com/realms/retail"},
            "server": {"replicas": 2},
            "ingress": {"host": "lifecycle.mcp.example.com", "tlsSecretName": "lifecycle-tls"},
            "backup": {"schedule": "0 3 * * *", "destination": "file:///backups/lifecycle"},
        }),
    )
    .await;

    // Created: roles in PostgreSQL, a password that logs in and sees exactly the tenant's store.
    let t = w.wait_status(name, "DatabaseReady", db_ready).await;
    let status = t.status.clone().expect("status");
    assert_eq!(status.store_ids, vec![1]);
    assert_eq!(status.tenant.as_deref(), Some(tenant.as_str()));
    assert_eq!(status.endpoint.as_deref(), Some("https://lifecycle.mcp.example.com/mcp"));
    assert!(t.finalizers().contains(&"mcpfleet.io/database-roles".to_owned()));
    assert_eq!(w.roles_of(&tenant).await, vec![format!("mcpt_{tenant}"), format!("mcpt_{tenant}_login")]);
    let (user, password) = w.credentials(name).await;
    assert_eq!(user, format!("mcpt_{tenant}_login"));
    assert_eq!(w.visible_stores(&user, &password).await, Ok(vec![1]));

    // Status tells the truth: no kubelet runs pods here, so the workload is not ready.
    let workload = status.condition(condition::WORKLOAD_READY).expect("WorkloadReady");
    assert_eq!((workload.status.as_str(), workload.reason.as_str()), ("False", "Progressing"));
    assert_eq!(status.condition(condition::READY).expect("Ready").status, "False");
    assert!(status.is_true(condition::BACKUP_SCHEDULED));
    assert_eq!(status.credentials_secret.as_deref(), Some("lifecycle-db-credentials"));

    // Every child exists and is owned by the McpTenant.
    let uid = t.uid().expect("uid");
    let owned = |meta: &ObjectMeta| {
        meta.owner_references.iter().flatten().any(|o| o.uid == uid && o.controller == Some(true))
    };
    assert!(owned(&w.ns.api::<ServiceAccount>().get(name).await.expect("ServiceAccount").metadata));
    assert!(owned(&w.ns.api::<Secret>().get("lifecycle-db-credentials").await.expect("Secret").metadata));
    assert!(owned(&w.ns.api::<Service>().get(name).await.expect("Service").metadata));
    assert!(owned(&w.ns.api::<PodDisruptionBudget>().get(name).await.expect("PDB").metadata));
    assert!(owned(&w.ns.api::<NetworkPolicy>().get(name).await.expect("NetworkPolicy").metadata));
    assert!(owned(&w.ns.api::<Ingress>().get(name).await.expect("Ingress").metadata));
    assert!(owned(&w.ns.api::<CronJob>().get("lifecycle-backup").await.expect("CronJob").metadata));
    let cm = w.ns.api::<ConfigMap>().get("lifecycle-config").await.expect("ConfigMap");
    assert!(owned(&cm.metadata));
    let cfg: ServerConfigFile = serde_saphyr::from_str(&cm.data.expect("data")["server.yaml"])
        .expect("the server can read its config");
    assert_eq!(cfg.tenant.as_deref(), Some(tenant.as_str()));
    assert!(cfg.auth.production);
    let db_url = cfg.database.url.expect("database url");
    assert!(db_url.starts_with(&format!("postgres://mcpt_{tenant}_login@127.0.0.1:")), "{db_url}");
    assert!(!db_url.contains(&password));
    let deployment = w.ns.api::<Deployment>().get(name).await.expect("Deployment");
    assert!(owned(&deployment.metadata));
    assert_eq!(deployment.spec.as_ref().and_then(|s| s.replicas), Some(2));
    assert!(w.ns.api::<HorizontalPodAutoscaler>().get_opt(name).await.expect("read HPA").is_none());
    let hash_before = pod_hash(&deployment);

    // Update: more stores, more replicas, no Ingress, autoscaling on.
    w.patch_spec(
        name,
        json!({"stores": ["Zava Retail Seattle", "6"], "server": {"replicas": 3}, "ingress": null}),
    )
    .await;
    let t = w.wait_status(name, "stores 1 and 6", |s| s.store_ids == vec![1, 6]).await;
    assert_eq!(w.visible_stores(&user, &password).await, Ok(vec![1, 6]), "the password survives updates");
    eventually("the Ingress to be deleted", WAIT, || async {
        w.ns.api::<Ingress>().get_opt(name).await.expect("read Ingress").is_none().then_some(())
    })
    .await;
    let deployment = w.ns.api::<Deployment>().get(name).await.expect("Deployment");
    assert_eq!(deployment.spec.as_ref().and_then(|s| s.replicas), Some(3));
    assert_eq!(
        t.status.as_ref().and_then(|s| s.endpoint.as_deref()),
        Some(format!("http://{name}.{}.svc.cluster.local:8080/mcp", w.ns.name()).as_str())
    );
    w.patch_spec(name, json!({"autoscaling": {"minReplicas": 2, "maxReplicas": 4}})).await;
    let hpa = eventually("the HPA", WAIT, || async {
        w.ns.api::<HorizontalPodAutoscaler>().get_opt(name).await.expect("read HPA")
    })
    .await;
    assert_eq!(hpa.spec.max_replicas, 4);
    // The autoscaler takes the replica count over as it was (3, inside 2..=4): no dip to the
    // API server's default of 1 when the operator stops applying the field.
    let d = eventually("the operator to hand replicas over", WAIT, || async {
        let d = w.ns.api::<Deployment>().get(name).await.expect("Deployment");
        let operator_owns = d.managed_fields().iter().any(|m| {
            m.manager.as_deref() == Some("mcp-fleet-operator")
                && m.fields_v1.as_ref().is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
        });
        (!operator_owns).then_some(d)
    })
    .await;
    assert_eq!(d.spec.as_ref().and_then(|s| s.replicas), Some(3), "the replicas the autoscaler took over");

    // Idle: resyncs (every 2 s) write nothing. The status mirrors the Deployment's status, and
    // the Deployment and HPA controllers may still be acting on the last change (CI once caught
    // the ReplicaSet controller creating a replica inside the window, a real change the status
    // followed). So a window counts only if the Deployment itself stayed still during it.
    w.wait_status(name, "generation observed", |_| true).await;
    let reconciles = || op.metric("mcpfleet_operator_reconciles_total");
    let deployment_version = || async {
        w.ns.api::<Deployment>().get(name).await.expect("Deployment").resource_version().unwrap_or_default()
    };
    let mut quiet_windows = 0;
    for _ in 0..10 {
        // The second reconcile from here began after this read of the Deployment, so it settles
        // what the Deployment said then; two more after it must write nothing.
        let deployment_before = deployment_version().await;
        let settled = reconciles().await + 2.0;
        eventually("a resync", WAIT, || async { (reconciles().await >= settled).then_some(()) }).await;
        let before = child_versions(&w.ns, name).await;
        let two_more = reconciles().await + 2.0;
        eventually("two idle resyncs", WAIT, || async { (reconciles().await >= two_more).then_some(()) })
            .await;
        let after = child_versions(&w.ns, name).await;
        if deployment_version().await != deployment_before {
            continue; // the world moved; the operator was right to follow it
        }
        assert_eq!(after, before, "an idle resync writes nothing");
        quiet_windows += 1;
        break;
    }
    assert_eq!(quiet_windows, 1, "the Deployment never stayed still for two resyncs");

    // Rotation: a new annotation value gives a new password on the tenant's other login role;
    // pods roll. The old role keeps logging in until no pod uses it: here no pod ever runs (no
    // kubelet), so it is never retired (node.rs sees the retirement after a real roll).
    w.tenants()
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"mcpfleet.io/rotate-password": "r1"}}})),
        )
        .await
        .expect("annotate");
    let (new_user, new_password) = eventually("a new password", WAIT, || async {
        let (u, p) = w.credentials(name).await;
        (p != password).then_some((u, p))
    })
    .await;
    assert_eq!(new_user, format!("{user}_b"), "the rotation moves to the second login role");
    assert_eq!(w.visible_stores(&new_user, &new_password).await, Ok(vec![1, 6]));
    assert_eq!(
        w.visible_stores(&user, &password).await,
        Ok(vec![1, 6]),
        "pods of the old rollout keep logging in while the new ones start"
    );
    let config = w.ns.api::<ConfigMap>().get(&format!("{name}-config")).await.expect("ConfigMap");
    let rendered = &config.data.expect("data")["server.yaml"];
    assert!(rendered.contains(&format!("{new_user}@")), "the new pods log in as {new_user}:\n{rendered}");
    let err =
        w.visible_stores(&new_user, &password).await.expect_err("the old password is not the new role's");
    assert!(err.contains("password authentication failed"), "{err}");
    let hash_after = pod_hash(&w.ns.api::<Deployment>().get(name).await.expect("Deployment"));
    assert_ne!(hash_before, hash_after, "the pod template changed, so pods roll");
    // Events follow the status write the test waited for.
    eventually("the PasswordRotated and RolesApplied Events", WAIT, || async {
        let reasons: Vec<String> = w.events_about(name).await.into_iter().filter_map(|e| e.reason).collect();
        ["PasswordRotated", "RolesApplied"].iter().all(|r| reasons.iter().any(|x| x == r)).then_some(())
    })
    .await;

    // Delete with deletionPolicy Delete: roles dropped, the McpTenant goes, children are collected.
    w.tenants().delete(name, &DeleteParams::default()).await.expect("delete");
    eventually("the McpTenant to be gone", WAIT, || async {
        w.tenants().get_opt(name).await.expect("read").is_none().then_some(())
    })
    .await;
    assert!(w.roles_of(&tenant).await.is_empty(), "deletionPolicy Delete drops the roles");
    eventually("the garbage collector to remove the Deployment", WAIT, || async {
        w.ns.api::<Deployment>().get_opt(name).await.expect("read").is_none().then_some(())
    })
    .await;
    drop(op);
}

fn pod_hash(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get("mcpfleet.io/config-hash").cloned())
        .expect("the pod template carries the config hash")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_reconcile_is_a_span_at_the_otlp_endpoint_flushed_at_sigterm() {
    let collector = Collector::start().expect("an OpenTelemetry Collector (scripts/otelcol.sh)");
    let w = World::new("op-otel").await;
    let endpoint = collector.endpoint();
    let op = w.operator_with("op-a", "1m", &["--otlp-endpoint", &endpoint]).await;
    let tenant = tenant_name();
    w.create("traced", one_store_spec(&tenant, "2")).await;
    w.wait_status("traced", "DatabaseReady", db_ready).await;
    // The batch delay (5 s) has likely not passed: the spans leave at the graceful stop.
    op.process.stop(WAIT).await;
    let is_reconcile = |s: &ExportedSpan| s.name == "reconcile" && s.attribute("name") == Some("traced");
    let spans = collector
        .wait_for_spans(Duration::from_secs(10), |s| s.iter().any(|s| is_reconcile(s) && s.status_code != 2))
        .expect("the reconcile spans");
    let ok = spans.iter().find(|s| is_reconcile(s) && s.status_code != 2).expect("a successful reconcile");
    assert_eq!(ok.service, "mcp-fleet-operator");
    assert_eq!(ok.attribute("namespace"), Some(w.ns.name()), "{ok:?}");
    assert_eq!(ok.attribute("outcome"), Some("ok"), "{ok:?}");
    assert!(ok.parent_span_id.is_empty(), "a reconcile starts its own trace: {ok:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_keeps_the_roles_after_the_tenant_is_deleted() {
    let w = World::new("op-retain").await;
    let _op = w.operator("op-a", "1m").await;
    let tenant = tenant_name();
    w.create("kept", one_store_spec(&tenant, "3")).await;
    w.wait_status("kept", "DatabaseReady", db_ready).await;
    let (user, password) = w.credentials("kept").await;
    w.tenants().delete("kept", &DeleteParams::default()).await.expect("delete");
    eventually("the McpTenant to be gone", WAIT, || async {
        w.tenants().get_opt("kept").await.expect("read").is_none().then_some(())
    })
    .await;
    assert_eq!(w.roles_of(&tenant).await.len(), 2, "deletionPolicy Retain (the default) keeps the roles");
    assert_eq!(w.visible_stores(&user, &password).await, Ok(vec![3]), "and the login still works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_specs_are_rejected_by_the_api_server_with_readable_messages() {
    let ns = TestNamespace::new("op-cel").await;
    install_crd(&ns).await;
    let cases = [
        (json!({"stores": []}), "stores must list at least one store id or name"),
        (
            json!({"stores": ["1"], "autoscaling": {"minReplicas": 5, "maxReplicas": 2}}),
            "minReplicas must not exceed maxReplicas",
        ),
        (
            json!({"stores": ["1"], "backup": {"schedule": "every day", "destination": "file:///b"}}),
            "5-field cron",
        ),
        (
            json!({"stores": ["1"], "backup": {"schedule": "@daily", "destination": "file:///b", "retention": {"keepLast": 0}}}),
            "keepLast must be greater than 0",
        ),
        (json!({"stores": ["1"], "ingress": {"className": "nginx"}}), "ingress.host is required"),
        (json!({"stores": ["1"], "deletionPolicy": "Snapshot"}), "deletionPolicy Snapshot needs spec.backup"),
        (json!({"stores": ["1"], "tenant": "Bad_Name"}), "tenant must be 1-40 lowercase letters"),
    ];
    let api: Api<McpTenant> = ns.api();
    for (i, (spec, message)) in cases.into_iter().enumerate() {
        let t: McpTenant = serde_json::from_value(json!({
            "apiVersion": "mcpfleet.io/v1alpha1", "kind": "McpTenant",
            "metadata": {"name": format!("bad-{i}")}, "spec": spec,
        }))
        .expect("shape");
        let err = api.create(&PostParams::default(), &t).await.expect_err("the API server refuses it");
        assert!(err.to_string().contains(message), "case {i}: expected {message:?} in {err}");
    }
    // The tenant name is immutable once set.
    let ok: McpTenant = serde_json::from_value(json!({
        "apiVersion": "mcpfleet.io/v1alpha1", "kind": "McpTenant",
        "metadata": {"name": "fine"}, "spec": {"stores": ["1"], "tenant": "fine"},
    }))
    .expect("shape");
    api.create(&PostParams::default(), &ok).await.expect("a valid McpTenant is accepted");
    let err = api
        .patch("fine", &PatchParams::default(), &Patch::Merge(json!({"spec": {"tenant": "other"}})))
        .await
        .expect_err("renaming the tenant is refused");
    assert!(err.to_string().contains("tenant is immutable"), "{err}");
    // kubectl shows the printer columns.
    let table = ns.kubectl(&["get", "mcpt"]).await;
    let header = table.lines().next().unwrap_or_default();
    for col in ["NAME", "READY", "STORES", "REPLICAS", "ENDPOINT", "AGE"] {
        assert!(header.contains(col), "{header}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_database_is_reported_and_recovers_when_the_secret_is_fixed() {
    let w = World::new("op-outage").await;
    let closed = format!("postgres://nobody:pw@127.0.0.1:{}/{}", free_port(), w.db.name);
    w.set_admin_url(&closed).await;
    let _op = w.operator("op-a", "1m").await;
    let tenant = tenant_name();
    w.create("outage", one_store_spec(&tenant, "2")).await;
    let t = w
        .wait_status("outage", "DatabaseReady=False", |s| {
            s.condition(condition::DATABASE_READY).is_some_and(|c| c.status == "False")
        })
        .await;
    let c =
        t.status.as_ref().and_then(|s| s.condition(condition::DATABASE_READY)).cloned().expect("condition");
    assert_eq!(c.reason, "DatabaseUnreachable", "{c:?}");
    assert!(!c.message.contains("pw@"), "no credentials in the status: {}", c.message);
    assert!(w.roles_of(&tenant).await.is_empty());
    w.wait_warning("outage", "DatabaseUnreachable").await;

    // The Secret watch brings the fix in without waiting for a resync.
    w.set_admin_url(&w.admin_url.clone()).await;
    w.wait_status("outage", "DatabaseReady", db_ready).await;
    let (user, password) = w.credentials("outage").await;
    assert_eq!(w.visible_stores(&user, &password).await, Ok(vec![2]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_the_api_server_refuses_is_reported_and_retried_until_it_is_allowed() {
    let w = World::new("op-quota").await;
    // A namespace quota that allows no Service: the API server's quota admission refuses it.
    let quota: k8s_openapi::api::core::v1::ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "no-services"},
        "spec": {"hard": {"services": "0"}},
    }))
    .expect("a valid ResourceQuota");
    let quotas = w.ns.api::<k8s_openapi::api::core::v1::ResourceQuota>();
    quotas.create(&PostParams::default(), &quota).await.expect("create the quota");
    let _op = w.operator("op-a", "1m").await;
    let tenant = tenant_name();
    w.create("quota", one_store_spec(&tenant, "3")).await;
    let t = w
        .wait_status("quota", "WorkloadReady=False (ApplyForbidden)", |s| {
            s.condition(condition::WORKLOAD_READY).is_some_and(|c| c.reason == "ApplyForbidden")
        })
        .await;
    let status = t.status.expect("status");
    let c = status.condition(condition::WORKLOAD_READY).expect("WorkloadReady");
    assert_eq!(c.status, "False");
    assert!(c.message.starts_with("applying Service quota: "), "{}", c.message);
    assert!(c.message.contains("quota"), "the API server's reason is kept: {}", c.message);
    assert_eq!(status.condition(condition::READY).map(|c| c.status.as_str()), Some("False"));
    // The database part is done and said so; only the workload waits.
    assert!(db_ready(&status), "{status:?}");
    w.wait_warning("quota", "ApplyForbidden").await;
    assert!(w.ns.api::<Deployment>().get_opt("quota").await.expect("read").is_none());

    // The quota goes; the backoff retry applies the rest without a spec change.
    quotas.delete("no-services", &DeleteParams::default()).await.expect("delete the quota");
    w.wait_status("quota", "the workload applied", |s| {
        s.condition(condition::WORKLOAD_READY).is_some_and(|c| c.reason != "ApplyForbidden")
    })
    .await;
    assert!(w.ns.api::<Service>().get_opt("quota").await.expect("read").is_some());
    assert!(w.ns.api::<Deployment>().get_opt("quota").await.expect("read").is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_changed_or_deleted_by_someone_else_are_repaired_at_once() {
    let w = World::new("op-drift").await;
    // A resync far beyond this test: every repair below comes from a watch.
    let _op = w.operator("op-a", "10m").await;
    let tenant = tenant_name();
    w.create("drift", one_store_spec(&tenant, "5")).await;
    w.wait_status("drift", "DatabaseReady", db_ready).await;
    let soon = Duration::from_secs(20);
    let pdbs = w.ns.api::<PodDisruptionBudget>();
    eventually("the PDB", WAIT, || async { pdbs.get_opt("drift").await.expect("read PDB") }).await;

    // Someone edits the PDB's spec: the operator's value comes back.
    pdbs.patch("drift", &PatchParams::default(), &Patch::Merge(json!({"spec": {"maxUnavailable": 3}})))
        .await
        .expect("patch the PDB");
    eventually("the PDB's maxUnavailable back at 1", soon, || async {
        let p = pdbs.get("drift").await.expect("read PDB");
        let max = p.spec.and_then(|s| s.max_unavailable);
        (max == Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(1))).then_some(())
    })
    .await;

    // Someone deletes children: they come back.
    pdbs.delete("drift", &DeleteParams::default()).await.expect("delete the PDB");
    let deployments = w.ns.api::<Deployment>();
    deployments.delete("drift", &DeleteParams::default()).await.expect("delete the Deployment");
    eventually("the PDB re-created", soon, || async {
        pdbs.get_opt("drift").await.expect("read PDB").filter(|p| p.metadata.deletion_timestamp.is_none())
    })
    .await;
    eventually("the Deployment re-created", soon, || async {
        deployments.get_opt("drift").await.expect("read").filter(|d| d.metadata.deletion_timestamp.is_none())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_restart_converges_without_duplicates_or_a_new_password() {
    let w = World::new("op-restart").await;
    let first = w.operator("op-a", "1m").await;
    let tenant = tenant_name();
    w.create("restart", one_store_spec(&tenant, "7")).await;
    // Stop the operator as soon as the credentials exist (mid-way through the first reconcile).
    eventually("the credentials Secret", WAIT, || async {
        w.ns.api::<Secret>().get_opt("restart-db-credentials").await.expect("read").map(|_| ())
    })
    .await;
    first.process.stop(Duration::from_secs(20)).await;
    let (_, password) = w.credentials("restart").await;
    let _second = w.operator("op-b", "1m").await;
    let t = w.wait_status("restart", "DatabaseReady", db_ready).await;
    assert_eq!(t.status.as_ref().map(|s| s.store_ids.clone()), Some(vec![7]));
    assert_eq!(w.credentials("restart").await.1, password, "a restart keeps the password");
    let (user, _) = w.credentials("restart").await;
    assert_eq!(w.visible_stores(&user, &password).await, Ok(vec![7]));
    let secrets =
        w.ns.api::<Secret>().list(&ListParams::default().labels("app.kubernetes.io/instance=restart")).await;
    assert_eq!(secrets.expect("list").items.len(), 1, "one credentials Secret");
    assert_eq!(w.ns.api::<Deployment>().list(&ListParams::default()).await.expect("list").items.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_replicas_only_the_leader_writes_and_the_other_takes_over() {
    let w = World::new("op-leader").await;
    let a = w.operator("replica-a", "1m").await;
    // Let replica-a take the lease before replica-b starts, so the roles are known.
    let lease = eventually("replica-a to lead", WAIT, || async {
        let l = w.ns.api::<Lease>().get_opt("mcp-fleet-operator").await.expect("read Lease")?;
        let holder = l.spec.as_ref()?.holder_identity.clone()?;
        (holder == "replica-a").then_some(l)
    })
    .await;
    assert!(lease.spec.is_some());
    let b = w.operator("replica-b", "1m").await;
    // The Lease is written before the gauge is set: wait for the gauge too.
    eventually("replica-a's leader gauge", WAIT, || async {
        (a.metric("mcpfleet_operator_leader").await == 1.0).then_some(())
    })
    .await;
    eventually("replica-b to serve metrics", WAIT, || async {
        tokio::net::TcpStream::connect(("127.0.0.1", b.port)).await.ok().map(|_| ())
    })
    .await;
    assert_eq!(b.metric("mcpfleet_operator_leader").await, 0.0, "replica-b waits for the lease");

    let spec = |store: &str| one_store_spec(&tenant_name(), store);
    w.create("first", spec("4")).await;
    w.wait_status("first", "DatabaseReady", db_ready).await;
    assert_eq!(b.metric("mcpfleet_operator_reconciles_total").await, 0.0, "the standby reconciles nothing");
    // Events are written beside the status, not before it: wait for them.
    let instances: Vec<String> = eventually("events about first", WAIT, || async {
        let found: Vec<String> =
            w.events_about("first").await.into_iter().filter_map(|e| e.reporting_instance).collect();
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert!(!instances.is_empty() && instances.iter().all(|i| i == "replica-a"), "{instances:?}");

    // The leader stops (and releases the lease): replica-b takes over.
    a.process.stop(Duration::from_secs(20)).await;
    w.create("second", spec("5")).await;
    w.wait_status("second", "DatabaseReady", db_ready).await;
    let instances: Vec<String> = eventually("events about second", WAIT, || async {
        let found: Vec<String> =
            w.events_about("second").await.into_iter().filter_map(|e| e.reporting_instance).collect();
        (!found.is_empty()).then_some(found)
    })
    .await;
    assert!(!instances.is_empty() && instances.iter().all(|i| i == "replica-b"), "{instances:?}");
    assert_eq!(b.metric("mcpfleet_operator_leader").await, 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_waits_for_the_final_backup_before_dropping_the_roles() {
    let w = World::new("op-snapshot").await;
    let op = w.operator("op-a", "1m").await;
    let tenant = tenant_name();
    w.create(
        "snap",
        json!({
            "tenant": tenant, "stores": ["8"], "deletionPolicy": "Snapshot",
            "database": {"adminSecretRef": {"name": ADMIN_SECRET}},
            "backup": {"schedule": "@daily", "destination": "file:///backups/snap", "retention": {"keepLast": 3}},
        }),
    )
    .await;
    w.wait_status("snap", "DatabaseReady", db_ready).await;
    w.tenants().delete("snap", &DeleteParams::default()).await.expect("delete");

    // The final backup Job runs the server image's backup command; no kubelet here, so it never
    // finishes, and the roles must stay while it has not succeeded.
    let jobs = w.ns.api::<k8s_openapi::api::batch::v1::Job>();
    let job = eventually("the final backup Job", Duration::from_secs(30), || async {
        jobs.get_opt("snap-final-backup").await.expect("read Job")
    })
    .await;
    let args =
        job.spec.and_then(|s| s.template.spec).map(|p| p.containers[0].args.clone().unwrap_or_default());
    assert_eq!(
        args.unwrap_or_default()[..5],
        ["backup", "--config", "/etc/mcp-fleet/server.yaml", "--to", "file:///backups/snap"]
    );
    // The operator looks at the unfinished Job again (it retries every 5 s) and keeps the roles.
    let reconciles = || op.metric("mcpfleet_operator_reconciles_total");
    let next = reconciles().await + 1.0;
    eventually("another look at the Job", WAIT, || async { (reconciles().await >= next).then_some(()) })
        .await;
    assert_eq!(w.roles_of(&tenant).await.len(), 2, "roles stay until the final backup succeeded");
    assert!(w.tenants().get_opt("snap").await.expect("read").is_some(), "the finalizer holds the McpTenant");

    // A user who gives up on the snapshot switches the policy; the roles then go.
    w.patch_spec("snap", json!({"deletionPolicy": "Delete"})).await;
    eventually("the McpTenant to be gone", WAIT, || async {
        w.tenants().get_opt("snap").await.expect("read").is_none().then_some(())
    })
    .await;
    assert!(w.roles_of(&tenant).await.is_empty());
}

/// A finished backup Job as the CronJob would leave it (no kubelet runs it here, so its status is
/// written the way the Job controller would).
async fn finished_backup_job(w: &World, tenant_object: &str, job: &str, completed: &str) {
    let api = w.ns.api::<k8s_openapi::api::batch::v1::Job>();
    let j: k8s_openapi::api::batch::v1::Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job, "labels": {
            "app.kubernetes.io/instance": tenant_object,
            "app.kubernetes.io/component": "backup",
            "app.kubernetes.io/managed-by": "mcp-fleet-operator",
        }},
        "spec": {"suspend": true, "template": {"spec": {
            "restartPolicy": "Never", "containers": [{"name": "backup", "image": "mcp-fleet-server:e2e"}]}}},
    }))
    .expect("a valid Job");
    api.create(&PostParams::default(), &j).await.expect("create Job");
    let cond = |t: &str| json!({"type": t, "status": "True", "lastProbeTime": completed, "lastTransitionTime": completed});
    let status = json!({"status": {
        "startTime": "2026-01-01T00:00:00Z", "completionTime": completed, "succeeded": 1,
        "conditions": [cond("SuccessCriteriaMet"), cond("Complete")],
    }});
    api.patch_status(job, &PatchParams::default(), &Patch::Merge(status)).await.expect("complete the Job");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_backup_is_the_newest_successful_backup_job() {
    let w = World::new("op-backup").await;
    let _op = w.operator("op-a", "1m").await;
    w.create(
        "bk",
        json!({
            "tenant": tenant_name(), "stores": ["2"],
            "database": {"adminSecretRef": {"name": ADMIN_SECRET}},
            "backup": {"schedule": "30 2 * * *", "destination": "s3://backups/bk", "suspend": true},
        }),
    )
    .await;
    let t = w.wait_status("bk", "DatabaseReady", db_ready).await;
    let scheduled = t.status.as_ref().and_then(|s| s.condition(condition::BACKUP_SCHEDULED)).cloned();
    assert_eq!(scheduled.map(|c| (c.status, c.reason)), Some(("False".into(), "Suspended".into())));
    assert_eq!(t.status.as_ref().and_then(|s| s.last_backup.clone()), None);
    let cron = w.ns.api::<CronJob>().get("bk-backup").await.expect("CronJob");
    assert_eq!(cron.spec.suspend, Some(true));

    finished_backup_job(&w, "bk", "bk-backup-1", "2026-11-20T03:00:00Z").await;
    finished_backup_job(&w, "bk", "bk-backup-2", "2026-11-21T03:00:00Z").await;
    let t = w
        .wait_status("bk", "lastBackup", |s| {
            s.last_backup.as_ref().is_some_and(|t| t.0.to_string() == "2026-11-21T03:00:00Z")
        })
        .await;
    assert!(t.status.is_some());
    w.patch_spec("bk", json!({"backup": {"suspend": false}})).await;
    w.wait_status("bk", "BackupScheduled", |s| s.is_true(condition::BACKUP_SCHEDULED)).await;
    let cron = w.ns.api::<CronJob>().get("bk-backup").await.expect("CronJob");
    assert_eq!(cron.spec.suspend, Some(false));
}
