//! The Kubernetes test ground is real: a real API server (server-side apply, CEL validation,
//! server-side dry run), a real controller manager (deployments, garbage collector, CronJobs, HPA),
//! the pinned kubectl and helm, workspace binaries run out-of-cluster, and no process left behind.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, ObjectMeta, Patch, PatchParams,
    PostParams,
};
use kube::runtime::wait::{Condition, await_condition, conditions};
use kube::{Api, Resource, ResourceExt as _};
use mcp_fleet_e2e::workspace_bin::is_alive;
use mcp_fleet_e2e::{TestNamespace, WAIT, WorkspaceBin, eventually};
use serde_json::json;

const MANAGER: &str = "e2e-ground";

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "app", "image": "app:1.0.0" }] }
            }
        }
    }))
    .expect("a valid Deployment")
}

fn config_map(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta { name: Some(name.to_owned()), ..ObjectMeta::default() },
        data: Some(data.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
        ..ConfigMap::default()
    }
}

/// Waits (bounded) until `name` satisfies `condition`.
async fn wait_until<K>(api: &Api<K>, name: &str, what: &str, condition: impl Condition<K>)
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    match tokio::time::timeout(WAIT, await_condition(api.clone(), name, condition)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => panic!("watching {name} for {what}: {e}"),
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

#[tokio::test]
async fn server_side_apply_of_an_unchanged_deployment_writes_nothing() {
    let ns = TestNamespace::new("ssa").await;
    let api: Api<Deployment> = ns.api();
    let params = PatchParams::apply(MANAGER).force();
    let applied = api.patch("web", &params, &Patch::Apply(&deployment("web", 1))).await.unwrap();
    assert_eq!(applied.metadata.generation, Some(1));
    let ours = applied.managed_fields().iter().find(|m| m.manager.as_deref() == Some(MANAGER));
    assert_eq!(ours.and_then(|m| m.operation.as_deref()), Some("Apply"), "{:?}", applied.managed_fields());

    // The deployment controller writes status after creation; let it settle so that its writes are
    // not mistaken for ours.
    eventually("the deployment controller to report web's status", WAIT, || async {
        let d = api.get("web").await.ok()?;
        let status = d.status?;
        (status.observed_generation == d.metadata.generation && status.replicas == Some(1)).then_some(())
    })
    .await;

    // The same apply again changes nothing, so writes nothing. (Three tries: a controller's status
    // write landing between the read and the apply changes the version without it being ours; a
    // non-idempotent apply changes it every time.)
    let mut versions = Vec::new();
    for _ in 0..3 {
        let before = api.get("web").await.unwrap().resource_version();
        let after = api.patch("web", &params, &Patch::Apply(&deployment("web", 1))).await.unwrap();
        versions.push((before.clone(), after.resource_version()));
        if before == after.resource_version() {
            assert_eq!(after.metadata.generation, Some(1));
            break;
        }
    }
    let (before, after) = versions.last().cloned().unwrap();
    assert_eq!(
        before, after,
        "an unchanged apply wrote the object: resourceVersion before/after {versions:?}"
    );

    // A real change does write, and bumps the generation.
    let scaled = api.patch("web", &params, &Patch::Apply(&deployment("web", 2))).await.unwrap();
    assert_ne!(scaled.resource_version(), after);
    assert_eq!(scaled.metadata.generation, Some(2));
    assert_eq!(scaled.spec.and_then(|s| s.replicas), Some(2));
}

#[tokio::test]
async fn deleting_an_owner_cascades_to_what_it_owns() {
    let ns = TestNamespace::new("gc").await;
    let config_maps: Api<ConfigMap> = ns.api();
    let deployments: Api<Deployment> = ns.api();
    let replica_sets: Api<ReplicaSet> = ns.api();
    let post = PostParams::default();

    // An owner reference set by hand, the way the operator sets them on a tenant's children.
    let owner = config_maps.create(&post, &config_map("owner", &[])).await.unwrap();
    let mut child = config_map("child", &[]);
    child.metadata.owner_references = Some(vec![owner.controller_owner_ref(&()).unwrap()]);
    let child = config_maps.create(&post, &child).await.unwrap();
    config_maps.create(&post, &config_map("bystander", &[])).await.unwrap();

    // An owner reference set by a controller: the deployment controller creates a ReplicaSet.
    let web = deployments.create(&post, &deployment("web", 1)).await.unwrap();
    let web_uid = web.uid().unwrap();
    let replica_set = eventually("the deployment controller to create web's ReplicaSet", WAIT, || async {
        let list = replica_sets.list(&ListParams::default().labels("app=web")).await.ok()?;
        list.items.into_iter().find(|rs| rs.owner_references().iter().any(|o| o.uid == web_uid))
    })
    .await;

    config_maps.delete("owner", &DeleteParams::background()).await.unwrap();
    deployments.delete("web", &DeleteParams::background()).await.unwrap();

    let child_uid = child.uid().unwrap();
    wait_until(
        &config_maps,
        "child",
        "the garbage collector to delete child",
        conditions::is_deleted(&child_uid),
    )
    .await;
    let rs_name = replica_set.name_any();
    let rs_uid = replica_set.uid().unwrap();
    wait_until(
        &replica_sets,
        &rs_name,
        "the garbage collector to delete web's ReplicaSet",
        conditions::is_deleted(&rs_uid),
    )
    .await;
    assert!(
        config_maps.get_opt("bystander").await.unwrap().is_some(),
        "an object without owner was collected"
    );
}

#[tokio::test]
async fn cronjobs_and_autoscalers_are_handled_by_their_controllers() {
    let ns = TestNamespace::new("cron-hpa").await;
    let post = PostParams::default();
    let cron_jobs: Api<CronJob> = ns.api();
    let cron_job: CronJob = serde_json::from_value(json!({
        "metadata": { "name": "tick" },
        "spec": {
            "schedule": "* * * * *",
            "jobTemplate": { "spec": { "template": { "spec": {
                "restartPolicy": "Never",
                "containers": [{ "name": "tick", "image": "app:1.0.0" }]
            }}}}
        }
    }))
    .unwrap();
    let tick_uid = cron_jobs.create(&post, &cron_job).await.unwrap().uid().unwrap();
    ns.api::<Deployment>().create(&post, &deployment("web", 1)).await.unwrap();
    let autoscalers: Api<HorizontalPodAutoscaler> = ns.api();
    let autoscaler: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "scaleTargetRef": { "apiVersion": "apps/v1", "kind": "Deployment", "name": "web" },
            "minReplicas": 1, "maxReplicas": 3,
            "metrics": [{ "type": "Resource", "resource": {
                "name": "cpu", "target": { "type": "Utilization", "averageUtilization": 50 }
            }}]
        }
    }))
    .unwrap();
    autoscalers.create(&post, &autoscaler).await.unwrap();

    // The HPA controller reads the Deployment's scale; with no metrics API here it says so.
    let conditions = eventually("the HPA controller to report on web", WAIT, || async {
        let status = autoscalers.get("web").await.ok()?.status?;
        let conditions: Vec<(String, String, String)> = status
            .conditions?
            .into_iter()
            .map(|c| (c.type_, c.status, c.reason.unwrap_or_default()))
            .collect();
        conditions.iter().any(|(t, _, _)| t == "ScalingActive").then_some(conditions)
    })
    .await;
    let has = |t: &str, s: &str, r: &str| {
        conditions.iter().any(|c| (c.0.as_str(), c.1.as_str(), c.2.as_str()) == (t, s, r))
    };
    assert!(has("AbleToScale", "True", "SucceededGetScale"), "{conditions:?}");
    assert!(has("ScalingActive", "False", "FailedGetResourceMetric"), "{conditions:?}");

    // The CronJob controller starts a Job at the next minute.
    let jobs: Api<Job> = ns.api();
    eventually("the CronJob controller to start a Job for tick", Duration::from_secs(90), || async {
        let list = jobs.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find(|job| job.owner_references().iter().any(|o| o.uid == tick_uid))
    })
    .await;
}

const WIDGET_RULE_MESSAGE: &str = "minReplicas must not exceed maxReplicas";

#[tokio::test]
async fn a_cel_validation_rule_rejects_a_bad_object_with_its_message() {
    let ns = TestNamespace::new("cel").await;
    let crds: Api<CustomResourceDefinition> = Api::all(ns.client());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": "widgets.ground.e2e.mcpfleet.io" },
        "spec": {
            "group": "ground.e2e.mcpfleet.io",
            "scope": "Namespaced",
            "names": { "plural": "widgets", "singular": "widget", "kind": "Widget" },
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": { "spec": {
                        "type": "object",
                        "required": ["minReplicas", "maxReplicas"],
                        "properties": {
                            "minReplicas": { "type": "integer" },
                            "maxReplicas": { "type": "integer" }
                        },
                        "x-kubernetes-validations": [{
                            "rule": "self.minReplicas <= self.maxReplicas",
                            "message": WIDGET_RULE_MESSAGE
                        }]
                    }}
                }}
            }]
        }
    }))
    .unwrap();
    crds.patch("widgets.ground.e2e.mcpfleet.io", &PatchParams::apply(MANAGER).force(), &Patch::Apply(&crd))
        .await
        .unwrap();
    wait_until(
        &crds,
        "widgets.ground.e2e.mcpfleet.io",
        "the CRD to be established",
        conditions::is_crd_established(),
    )
    .await;

    let gvk = GroupVersionKind::gvk("ground.e2e.mcpfleet.io", "v1", "Widget");
    let widgets: Api<DynamicObject> =
        Api::namespaced_with(ns.client(), ns.name(), &ApiResource::from_gvk_with_plural(&gvk, "widgets"));
    let widget = |name: &str, min: i64, max: i64| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "ground.e2e.mcpfleet.io/v1", "kind": "Widget",
            "metadata": { "name": name },
            "spec": { "minReplicas": min, "maxReplicas": max }
        }))
        .unwrap()
    };

    // Established can precede the new resource being served for a moment: retry a 404 only.
    let refused = eventually("the Widget resource to be served", WAIT, || async {
        match widgets.create(&PostParams::default(), &widget("bad", 3, 1)).await {
            Err(kube::Error::Api(status)) if status.code == 404 => None,
            other => Some(other),
        }
    })
    .await;
    match refused {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(status.message.contains(WIDGET_RULE_MESSAGE), "{}", status.message);
        }
        other => panic!("a Widget breaking the CEL rule was not refused: {other:?}"),
    }
    widgets.create(&PostParams::default(), &widget("good", 1, 3)).await.expect("a valid Widget is accepted");

    // A user applying the bad object with kubectl sees the rule's message.
    let bad = "apiVersion: ground.e2e.mcpfleet.io/v1\nkind: Widget\nmetadata:\n  name: bad\nspec:\n  minReplicas: 5\n  maxReplicas: 2\n";
    let output = ns.kubectl_output(&["apply", "-f", "-"], Some(bad)).await;
    assert!(!output.status.success(), "kubectl applied a Widget breaking the CEL rule");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(WIDGET_RULE_MESSAGE), "{stderr}");
}

#[tokio::test]
async fn kubectl_and_the_api_client_see_the_same_cluster() {
    let ns = TestNamespace::new("kubectl").await;
    let config_maps: Api<ConfigMap> = ns.api();
    config_maps.create(&PostParams::default(), &config_map("from-api", &[("colour", "blue")])).await.unwrap();

    let colour = ns.kubectl(&["get", "configmap", "from-api", "-o", "jsonpath={.data.colour}"]).await;
    assert_eq!(colour, "blue");
    let namespaces = ns.kubectl(&["get", "namespaces", "-o", "name"]).await;
    assert!(namespaces.lines().any(|l| l == format!("namespace/{}", ns.name())), "{namespaces}");

    let manifest =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-kubectl\ndata:\n  shape: round\n";
    ns.kubectl_with_stdin(&["apply", "-f", "-"], Some(manifest)).await;
    let from_kubectl = config_maps.get("from-kubectl").await.unwrap();
    assert_eq!(from_kubectl.data, Some(BTreeMap::from([("shape".to_owned(), "round".to_owned())])));
}

#[tokio::test]
async fn a_helm_template_passes_a_server_side_dry_run_and_creates_nothing() {
    let ns = TestNamespace::new("helm").await;
    let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/tiny-chart");
    let manifest =
        ns.helm(&["template", "demo", chart, "--namespace", ns.name(), "--set", "greeting=hi"]).await;
    assert!(manifest.contains("greeting: \"hi\""), "{manifest}");

    let applied =
        ns.kubectl_with_stdin(&["apply", "--dry-run=server", "-f", "-", "-o", "name"], Some(&manifest)).await;
    let mut names: Vec<&str> = applied.lines().collect();
    names.sort_unstable();
    assert_eq!(names, ["configmap/demo-tiny", "deployment.apps/demo-tiny"], "{applied}");
    let config_maps: Api<ConfigMap> = ns.api();
    assert!(config_maps.get_opt("demo-tiny").await.unwrap().is_none(), "a dry run created the ConfigMap");

    // The API server validates: a negative replica count is refused (no client-side check would).
    let bad = ns.helm(&["template", "demo", chart, "--namespace", ns.name(), "--set", "replicas=-1"]).await;
    let output = ns.kubectl_output(&["apply", "--dry-run=server", "-f", "-"], Some(&bad)).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a Deployment with replicas -1 passed the dry run");
    assert!(stderr.contains("spec.replicas") && stderr.contains("greater than or equal to 0"), "{stderr}");
}

#[tokio::test]
async fn a_workspace_binary_runs_out_of_cluster_against_the_api_server() {
    let ns = TestNamespace::new("bin").await;
    let probe = tokio::task::spawn_blocking(|| WorkspaceBin::build("e2e-probe")).await.unwrap();
    let config_maps: Api<ConfigMap> = ns.api();

    // Run to completion.
    let uid = ns.run_bin(&probe, &["apply-configmap", ns.name(), "from-binary", "written-by=probe"]).await;
    let written = config_maps.get("from-binary").await.unwrap();
    assert_eq!(written.uid().as_deref(), Some(uid.trim()));
    assert_eq!(written.data, Some(BTreeMap::from([("written-by".to_owned(), "probe".to_owned())])));
    assert!(written.managed_fields().iter().any(|m| m.manager.as_deref() == Some("e2e-probe")));

    // Run in the background, like the operator, and stop it gracefully.
    let mut holder = ns.spawn_bin(&probe, &["hold-configmap", ns.name(), "held"]);
    eventually("the background probe to create configmap held", WAIT, || async {
        config_maps.get_opt("held").await.ok().flatten()
    })
    .await;
    assert!(holder.is_running(), "the probe exited early:\n{}", holder.log());
    let log = holder.stop(Duration::from_secs(30)).await;
    assert!(log.contains("released configmap"), "{log}");
    assert!(config_maps.get_opt("held").await.unwrap().is_none(), "SIGTERM did not reach the probe:\n{log}");
}

/// The control plane started by a test process goes away with it, even when it is SIGKILLed.
#[test]
fn the_control_plane_dies_with_the_test_process() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_e2e-probe"))
        .arg("control-plane")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(dir) = line.strip_prefix("run-dir ") {
                let _ = tx.send(PathBuf::from(dir));
            }
        }
    });
    let run_dir = match rx.recv_timeout(Duration::from_secs(240)) {
        Ok(dir) => dir,
        Err(e) => {
            let _ = child.kill();
            panic!("the probe did not start a control plane: {e}");
        }
    };
    let pids: Vec<(String, u32)> = std::fs::read_to_string(run_dir.join("pids"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' ').map(|(name, pid)| (name.to_owned(), pid.parse().unwrap())))
        .collect();
    let names: Vec<&str> = pids.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["etcd", "kube-apiserver", "kube-controller-manager"]);
    assert!(pids.iter().all(|(_, pid)| is_alive(*pid)), "{pids:?}");

    child.kill().unwrap(); // SIGKILL: no destructor, no exit handler runs in the probe
    child.wait().unwrap();

    let deadline = Instant::now() + WAIT;
    loop {
        let alive: Vec<_> = pids.iter().filter(|(_, pid)| is_alive(*pid)).collect();
        if alive.is_empty() && !run_dir.exists() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{WAIT:?} after the test process died: still running {alive:?}, run dir exists: {}",
            run_dir.exists()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
