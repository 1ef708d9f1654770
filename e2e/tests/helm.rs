//! The Helm chart `charts/mcp-fleet` with the pinned helm: lint and render for default and full
//! values, values the schema refuses, the CRD it installs being the generated one, alerts and the
//! dashboard reading metrics the fleet really exports; then install, upgrade with a changed CRD,
//! uninstall and reinstall on the real test API server; and least privilege: the operator binary
//! run out-of-cluster with a token of the chart's ServiceAccount passes its happy path against
//! a real PostgreSQL, and fails where a user sees it when one verb is taken away.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use mcp_fleet_e2e::operator_world::{ADMIN_SECRET, admin_login};
use mcp_fleet_e2e::{TestNamespace, WAIT, WorkspaceBin, eventually, tools};
use mcp_fleet_operator::crd::{McpTenant, McpTenantStatus, condition};
use mcp_fleet_testkit::TestDb;
use mcp_fleet_testkit::kube::{k8s_bin_dir, repo_root};
use mcp_fleet_testkit::pg::unique_name;
use mcp_fleet_testkit::process::{Guarded, free_port};
use serde_json::Value;

#[path = "support/tenant.rs"]
mod tenant;

const RELEASE: &str = "fleet";
const CRD_NAME: &str = "mcptenants.mcpfleet.io";

/// Tests that install the chart share one cluster-scoped CRD: they take turns.
static CRD_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn chart() -> PathBuf {
    repo_root().join("charts/mcp-fleet")
}

fn full_values() -> PathBuf {
    chart().join("ci/full-values.yaml")
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// The pinned Kubernetes version: helm built from source has no default to check `kubeVersion`
/// against, so offline rendering passes the version the tests' API server runs.
fn kube_version() -> String {
    let dir = k8s_bin_dir().unwrap_or_else(|e| panic!("{e}"));
    let version = std::fs::read_to_string(dir.join("kube-apiserver.version"))
        .unwrap_or_else(|e| panic!("reading the pinned kube-apiserver version in {}: {e}", dir.display()));
    version.trim().to_owned()
}

/// `helm args...` without a cluster (lint, template), its state in a scratch directory.
async fn helm_offline(args: &[&str]) -> Output {
    let dir = tokio::task::spawn_blocking(k8s_bin_dir)
        .await
        .expect("finding helm")
        .unwrap_or_else(|e| panic!("{e}"));
    let home = std::env::temp_dir().join(format!("mcpfleet-helm-{}", std::process::id()));
    let home = path_str(&home).to_owned();
    let (cache, config, data) = (format!("{home}/cache"), format!("{home}/config"), format!("{home}/data"));
    let env = [
        ("HELM_CACHE_HOME", cache.as_str()),
        ("HELM_CONFIG_HOME", config.as_str()),
        ("HELM_DATA_HOME", data.as_str()),
        ("KUBECONFIG", "/dev/null"),
    ];
    tools::run(&dir.join("helm"), args, &env, None).await
}

/// `helm template` of the chart with `extra` arguments: the manifest, or a panic with helm's words.
async fn render(extra: &[&str]) -> String {
    let kube_version = tokio::task::spawn_blocking(kube_version).await.expect("reading the version");
    let chart = chart();
    let mut args = vec!["template", RELEASE, path_str(&chart), "--namespace", "mcp-system"];
    args.extend_from_slice(&["--kube-version", &kube_version]);
    args.extend_from_slice(extra);
    let output = helm_offline(&args).await;
    tools::expect_success(Path::new("helm"), &args, output)
}

/// The objects of a multi-document manifest.
fn objects(manifest: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(manifest)
        .unwrap_or_else(|e| panic!("the manifest is not YAML: {e}\n{manifest}"))
        .into_iter()
        .filter(|v| !v.is_null())
        .collect()
}

fn kinds(objects: &[Value]) -> BTreeSet<String> {
    objects.iter().map(|o| o["kind"].as_str().unwrap_or_default().to_owned()).collect()
}

fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in the manifest: {:?}", kinds(objects)))
}

#[tokio::test]
async fn the_chart_lints_and_renders_with_default_and_full_values() {
    let kube_version = tokio::task::spawn_blocking(kube_version).await.unwrap();
    let chart = chart();
    let full = full_values();
    for values in [None, Some(path_str(&full))] {
        let mut args = vec!["lint", "--strict", path_str(&chart), "--kube-version", &kube_version];
        if let Some(v) = values {
            args.extend_from_slice(&["--values", v]);
        }
        let out = helm_offline(&args).await;
        let text = tools::expect_success(Path::new("helm"), &args, out);
        assert!(text.contains("0 chart(s) failed"), "{text}");
    }

    let defaults = objects(&render(&[]).await);
    let base = [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ];
    assert_eq!(kinds(&defaults), base.iter().map(|k| (*k).to_owned()).collect());

    // The operator's pods: two replicas, non-root, read-only root FS, probes on the real paths.
    let d = find(&defaults, "Deployment");
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], serde_json::json!(["ALL"]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health/live");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health/ready");
    assert!(
        c["resources"]["requests"]["memory"].is_string() && c["resources"]["limits"]["memory"].is_string()
    );
    let env: BTreeMap<&str, &Value> =
        c["env"].as_array().unwrap().iter().map(|e| (e["name"].as_str().unwrap(), e)).collect();
    // The Lease the replicas compete for is the one the leader-election Role grants, in the
    // pod's namespace.
    let lease = env["MCP_FLEET_OPERATOR_LEASE_NAME"]["value"].as_str().unwrap();
    let lease_role = defaults.iter().find(|o| o["kind"] == "Role").unwrap();
    assert_eq!(lease_role["rules"][1]["resourceNames"], serde_json::json!([lease]));
    assert_eq!(
        env["MCP_FLEET_OPERATOR_LEASE_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.namespace"
    );
    assert_eq!(env["MCP_FLEET_OPERATOR_LEADER_ELECTION"]["value"], "true");
    // The metrics Service reaches the container's metrics port.
    let svc = find(&defaults, "Service");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "metrics");
    assert_eq!(svc["spec"]["selector"], d["spec"]["selector"]["matchLabels"]);

    let full = objects(&render(&["--values", path_str(&full)]).await);
    let mut all: BTreeSet<String> = base.iter().map(|k| (*k).to_owned()).collect();
    for k in ["ConfigMap", "NetworkPolicy", "PodMonitor", "PrometheusRule", "ServiceMonitor"] {
        all.insert(k.to_owned());
    }
    assert_eq!(kinds(&full), all);
    let c = &find(&full, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    let url = c["env"].as_array().unwrap().iter().find(|e| e["name"] == "MCP_FLEET_OPERATOR_DATABASE_URL");
    assert_eq!(
        url.unwrap()["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "pg-admin", "key": "url"})
    );
    // logging.otlpEndpoint: the operator's traces go there, and its NetworkPolicy lets them out.
    let otlp = c["env"].as_array().unwrap().iter().find(|e| e["name"] == "OTEL_EXPORTER_OTLP_ENDPOINT");
    assert_eq!(otlp.unwrap()["value"], "http://otel-collector.observability:4318");
    let egress = find(&full, "NetworkPolicy")["spec"]["egress"].as_array().unwrap().clone();
    assert!(
        egress.iter().any(|rule| rule["ports"] == serde_json::json!([{"protocol": "TCP", "port": 4318}])),
        "{egress:?}"
    );
    let dashboard = find(&full, "ConfigMap");
    assert_eq!(dashboard["metadata"]["labels"]["grafana_dashboard"], "1");
    let json = dashboard["data"]["mcp-fleet.json"].as_str().expect("the dashboard JSON");
    let parsed: Value = serde_json::from_str(json).expect("the dashboard is valid JSON");
    assert_eq!(parsed["uid"], "mcp-fleet");

    // watchNamespace turns the ClusterRole into a Role in that namespace.
    let scoped = objects(&render(&["--set", "watchNamespace=retail"]).await);
    assert!(!kinds(&scoped).contains("ClusterRole"), "{:?}", kinds(&scoped));
    let roles: Vec<&Value> = scoped.iter().filter(|o| o["kind"] == "Role").collect();
    assert!(
        roles
            .iter()
            .any(|r| r["metadata"]["namespace"] == "retail" && r["rules"].as_array().unwrap().len() > 5)
    );
}

#[tokio::test]
async fn values_that_break_the_schema_fail_with_the_path_of_the_bad_value() {
    let kube_version = tokio::task::spawn_blocking(kube_version).await.unwrap();
    let chart = chart();
    let cases = [
        ("replicaCount=two", "/replicaCount", "want integer"),
        ("replicsCount=2", "additional properties 'replicsCount' not allowed", ""),
        ("logging.format=xml", "/logging/format", "'json', 'text'"),
        ("resyncInterval=5minutes", "/resyncInterval", "does not match pattern"),
        (
            "prometheusRule.rules.serverDown.severity=page",
            "/prometheusRule/rules/serverDown/severity",
            "critical",
        ),
        ("podSecurityContext.runAsNonRoot=false", "/podSecurityContext/runAsNonRoot", "must be true"),
        ("replicaCount=3,leaderElection.enabled=false", "/leaderElection/enabled", "must be true"),
        ("watchNamespace=Retail_EU", "/watchNamespace", "does not match pattern"),
    ];
    for (set, path, why) in cases {
        let args = ["template", RELEASE, path_str(&chart), "--kube-version", &kube_version, "--set", set];
        let out = helm_offline(&args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--set {set} was accepted");
        assert!(
            stderr.contains("values don't meet the specifications of the schema"),
            "--set {set}: {stderr}"
        );
        assert!(
            stderr.contains(path) && stderr.contains(why),
            "--set {set}: expected {path:?} and {why:?} in:\n{stderr}"
        );
    }

    // Combinations the schema cannot express fail in the templates, with a sentence.
    let combinations = [
        (
            "serviceAccount.create=false",
            "serviceAccount.name is required when serviceAccount.create is false",
        ),
        (
            "serviceMonitor.enabled=true,metrics.service.enabled=false",
            "serviceMonitor.enabled needs metrics.service.enabled",
        ),
    ];
    for (set, message) in combinations {
        let args = ["template", RELEASE, path_str(&chart), "--kube-version", &kube_version, "--set", set];
        let out = helm_offline(&args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && stderr.contains(message), "--set {set}: {stderr}");
    }
}

/// Numbers as f64, so that `minimum: 0.0` (crdgen) and `minimum: 0` (helm's YAML) compare equal.
fn normalise(v: Value) -> Value {
    match v {
        Value::Number(n) => serde_json::json!(n.as_f64().expect("a finite number")),
        Value::Array(a) => Value::Array(a.into_iter().map(normalise).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, normalise(v))).collect()),
        other => other,
    }
}

#[tokio::test]
async fn the_chart_installs_exactly_the_generated_crd_and_keeps_it_on_uninstall() {
    let rendered = objects(&render(&[]).await);
    let mut crd = find(&rendered, "CustomResourceDefinition").clone();
    assert_eq!(crd["metadata"]["annotations"]["helm.sh/resource-policy"], "keep");
    let generated = std::fs::read_to_string(repo_root().join("crds/mcptenants.mcpfleet.io.yaml")).unwrap();
    let generated: Value = serde_saphyr::from_str(&generated).unwrap();
    let meta = crd["metadata"].as_object_mut().unwrap();
    meta.remove("labels");
    meta.remove("annotations");
    assert!(normalise(crd) == normalise(generated), "the chart's CRD differs from crds/: run `make crds`");

    // GitOps tools that do not read Helm's resource policy get their own annotation; keep stays.
    let json = r#"crds={"install":true,"annotations":{"argocd.argoproj.io/sync-options":"Delete=false,Prune=false","helm.sh/resource-policy":"delete"}}"#;
    let argo = objects(&render(&["--set-json", json]).await);
    let annotations = &find(&argo, "CustomResourceDefinition")["metadata"]["annotations"];
    assert_eq!(annotations["argocd.argoproj.io/sync-options"], "Delete=false,Prune=false");
    assert_eq!(annotations["helm.sh/resource-policy"], "keep");

    // Switched off, the chart leaves the CRD to whoever manages it.
    let without = objects(&render(&["--set", "crds.install=false"]).await);
    assert!(!kinds(&without).contains("CustomResourceDefinition"));
}

#[tokio::test]
async fn alerts_and_the_dashboard_use_metrics_the_fleet_exports() {
    let rendered = objects(&render(&["--values", path_str(&full_values())]).await);
    // Names (without `_bucket`/`_sum`/`_count`) the server and the operator export: the list in
    // core that both register (each checks that in a unit test).
    let exported: BTreeSet<String> = mcp_fleet_core::metrics::exported_names().into_iter().collect();
    assert!(
        exported.contains("mcpfleet_tool_calls_total") && exported.contains("mcpfleet_operator_leader"),
        "{exported:?}"
    );

    let rule = find(&rendered, "PrometheusRule");
    let dashboard = find(&rendered, "ConfigMap")["data"]["mcp-fleet.json"].as_str().unwrap().to_owned();
    for (what, text) in [("the alert rules", rule.to_string()), ("the dashboard", dashboard)] {
        let used: BTreeSet<String> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("mcpfleet_"))
            .map(|w| {
                let base = w.trim_end_matches("_bucket").trim_end_matches("_sum").trim_end_matches("_count");
                if exported.contains(base) { base.to_owned() } else { w.to_owned() }
            })
            .collect();
        assert!(!used.is_empty(), "{what} use no mcpfleet metric");
        let unknown: Vec<&String> = used.difference(&exported).collect();
        assert!(unknown.is_empty(), "{what} use metrics nobody exports: {unknown:?}");
    }

    // Every alert waits (`for:`) and says how bad it is.
    let mut alerts = BTreeSet::new();
    for group in rule["spec"]["groups"].as_array().unwrap() {
        for r in group["rules"].as_array().unwrap() {
            let name = r["alert"].as_str().unwrap().to_owned();
            assert!(r["for"].as_str().is_some_and(|f| !f.is_empty()), "{name} has no `for`");
            assert!(
                ["critical", "warning"].contains(&r["labels"]["severity"].as_str().unwrap_or_default()),
                "{name}: {r}"
            );
            assert_eq!(r["labels"]["team"], "platform", "{name}: additionalAlertLabels missing");
            assert!(
                r["annotations"]["summary"].is_string() && r["annotations"]["runbook_url"].is_string(),
                "{name}"
            );
            alerts.insert(name);
        }
    }
    let expected = [
        "McpFleetBackupFailed",
        "McpFleetBackupMissed",
        "McpFleetDbPoolExhausted",
        "McpFleetHighErrorRate",
        "McpFleetHighToolLatency",
        "McpFleetOperatorDown",
        "McpFleetOperatorNoLeader",
        "McpFleetReconcileFailures",
        "McpFleetServerDown",
        "McpFleetTenantNotReady",
    ];
    assert_eq!(alerts, expected.iter().map(|a| (*a).to_owned()).collect());
    // The backup alerts read kube-state-metrics through the configured selector.
    assert!(
        rule.to_string().contains(r#"kube_job_failed{job=\"kube-state-metrics\",condition=\"true\""#),
        "{rule}"
    );

    // One rule switched off is gone, the others stay.
    let fewer = objects(
        &render(&["--set", "prometheusRule.enabled=true,prometheusRule.rules.backupMissed.enabled=false"])
            .await,
    );
    let text = find(&fewer, "PrometheusRule").to_string();
    assert!(!text.contains("McpFleetBackupMissed") && text.contains("McpFleetBackupFailed"));
}

static MONITORING_CRDS: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// How long generating the Prometheus Operator CRDs may take (a cold build of controller-gen
/// from its Go module: about 2.5 minutes on two cores).
const MONITORING_CRDS_TIMEOUT: Duration = Duration::from_secs(900);

/// The Prometheus Operator CRDs (ServiceMonitor, PodMonitor, PrometheusRule) the chart's
/// monitoring objects need, from `scripts/monitoring-crds.sh` (once per pinned version, cached).
fn monitoring_crds_dir() -> PathBuf {
    MONITORING_CRDS
        .get_or_init(|| {
            let script = repo_root().join("scripts/monitoring-crds.sh");
            let mut child = Command::new("bash")
                .arg(&script)
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| format!("running {}: {e}", script.display()))?;
            let deadline = Instant::now() + MONITORING_CRDS_TIMEOUT;
            while child.try_wait().map_err(|e| e.to_string())?.is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    return Err(format!("{} took longer than {MONITORING_CRDS_TIMEOUT:?}", script.display()));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            match stdout.lines().last() {
                Some(dir) if out.status.success() => Ok(PathBuf::from(dir.trim())),
                _ => Err(format!("{} failed ({}): {stdout}", script.display(), out.status)),
            }
        })
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Installs the Prometheus Operator CRDs on the shared control plane (idempotent).
async fn install_monitoring_crds(ns: &TestNamespace) {
    let dir = tokio::task::spawn_blocking(monitoring_crds_dir).await.expect("generating the CRDs");
    ns.kubectl(&["apply", "--server-side", "--field-manager=e2e-helm", "-f", path_str(&dir)]).await;
    ns.wait_crds_established(&[
        "servicemonitors.monitoring.coreos.com",
        "podmonitors.monitoring.coreos.com",
        "prometheusrules.monitoring.coreos.com",
    ])
    .await;
    discoverable(ns, "monitoring.coreos.com", &["podmonitors", "prometheusrules", "servicemonitors"]).await;
}

/// Waits until API discovery lists `resources` of `group`: it can lag a moment behind a CRD's
/// Established condition, and helm and kubectl map kinds through discovery.
async fn discoverable(ns: &TestNamespace, group: &str, resources: &[&str]) {
    eventually(format!("discovery to serve {resources:?} of {group}"), WAIT, || async {
        let out = ns.kubectl_output(&["api-resources", "--api-group", group, "-o", "name"], None).await;
        let listed = String::from_utf8_lossy(&out.stdout).into_owned();
        resources.iter().all(|r| listed.lines().any(|l| l.split('.').next() == Some(*r))).then_some(())
    })
    .await;
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy's directory");
    for entry in std::fs::read_dir(from).expect("read the chart") {
        let entry = entry.expect("a directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a chart file");
        }
    }
}

/// A copy of the chart, version 0.1.1, whose CRD has one more short name (`mcpten`): what a
/// release with a changed CRD looks like.
fn chart_with_a_changed_crd() -> PathBuf {
    let suffix: u64 = rand::random();
    let dir = std::env::temp_dir().join(format!("mcpfleet-chart-{}-{suffix:x}", std::process::id()));
    copy_dir(&chart(), &dir);
    let crd = dir.join("files/crds/mcptenants.mcpfleet.io.yaml");
    let text = std::fs::read_to_string(&crd).expect("read the CRD");
    assert!(text.contains("    shortNames:\n    - mcpt\n"), "the CRD's shortNames moved");
    std::fs::write(
        &crd,
        text.replace("    shortNames:\n    - mcpt\n", "    shortNames:\n    - mcpt\n    - mcpten\n"),
    )
    .expect("write the CRD");
    let meta = dir.join("Chart.yaml");
    let text = std::fs::read_to_string(&meta).expect("read Chart.yaml");
    std::fs::write(&meta, text.replace("\nversion: 0.1.0\n", "\nversion: 0.1.1\n"))
        .expect("write Chart.yaml");
    dir
}

/// `helm args...` in `ns` whether it succeeds or not (`TestNamespace::helm` panics on failure).
async fn helm_output_in(ns: &TestNamespace, args: &[&str]) -> Output {
    let home = ns.plane().run_dir().join("helm");
    let home = path_str(&home).to_owned();
    let (cache, config, data) = (format!("{home}/cache"), format!("{home}/config"), format!("{home}/data"));
    let env = [
        ("KUBECONFIG", path_str(ns.kubeconfig())),
        ("HELM_NAMESPACE", ns.name()),
        ("HELM_CACHE_HOME", cache.as_str()),
        ("HELM_CONFIG_HOME", config.as_str()),
        ("HELM_DATA_HOME", data.as_str()),
    ];
    tools::run(&ns.plane().bin("helm"), args, &env, None).await
}

async fn short_names(ns: &TestNamespace) -> Vec<String> {
    let crds: Api<CustomResourceDefinition> = Api::all(ns.client());
    crds.get(CRD_NAME).await.expect("the CRD exists").spec.names.short_names.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_upgrade_with_a_changed_crd_uninstall_and_reinstall() {
    let _turn = CRD_LOCK.lock().await;
    let ns = TestNamespace::new("helm-install").await;
    install_monitoring_crds(&ns).await;
    let (chart, full) = (chart(), full_values());

    // The namespace enforces the `restricted` Pod Security Standard, as a hardened cluster does.
    let labels =
        ["pod-security.kubernetes.io/enforce=restricted", "pod-security.kubernetes.io/warn=restricted"];
    for label in labels {
        ns.kubectl(&["label", "namespace", ns.name(), label]).await;
    }

    // Install with everything on: the API server accepts every object (the monitoring ones
    // against the real Prometheus Operator schemas) and the CRD is established.
    let args = ["install", RELEASE, path_str(&chart), "--values", path_str(&full), "--timeout", "60s"];
    let out = helm_output_in(&ns, &args).await;
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && stdout.contains("STATUS: deployed"), "{stdout}\n{stderr}");
    assert!(!stderr.contains("PodSecurity"), "the operator's pods break the restricted standard:\n{stderr}");
    // The ReplicaSet controller creates both pods (nothing runs them here): admission let them in.
    let pods: Api<Pod> = ns.api();
    eventually("two operator pods admitted under the restricted standard", WAIT, || async {
        let list =
            pods.list(&ListParams::default().labels("app.kubernetes.io/component=operator")).await.ok()?;
        (list.items.len() == 2).then_some(())
    })
    .await;
    ns.wait_crds_established(&[CRD_NAME]).await;
    discoverable(&ns, "mcpfleet.io", &["mcptenants"]).await;
    let manifest = ns.helm(&["get", "manifest", RELEASE]).await;
    let released: BTreeSet<String> = objects(&manifest)
        .iter()
        .map(|o| format!("{} {}", o["kind"].as_str().unwrap(), o["metadata"]["name"].as_str().unwrap()))
        .collect();
    assert_eq!(released.len(), 14, "{released:?}");
    let listed = ns
        .kubectl_with_stdin(
            &["get", "-f", "-", "--no-headers", "-o", "custom-columns=K:.kind,N:.metadata.name"],
            Some(&manifest),
        )
        .await;
    let found: BTreeSet<String> =
        listed.lines().map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ")).collect();
    assert_eq!(found, released);

    // The CRD serves McpTenants: the minimal example is accepted and listed by its short name.
    let example = std::fs::read_to_string(repo_root().join("examples/mcptenant-minimal.yaml"))
        .unwrap()
        .replace("namespace: retail", &format!("namespace: {}", ns.name()));
    ns.kubectl_with_stdin(&["apply", "-f", "-"], Some(&example)).await;
    assert_eq!(ns.kubectl(&["get", "mcpt", "-o", "name"]).await.trim(), "mcptenant.mcpfleet.io/seattle");

    // `helm upgrade` with a changed CRD changes the CRD on the API server.
    let changed = tokio::task::spawn_blocking(chart_with_a_changed_crd).await.unwrap();
    let out = ns
        .helm(&["upgrade", RELEASE, path_str(&changed), "--values", path_str(&full), "--timeout", "60s"])
        .await;
    assert!(out.contains("REVISION: 2"), "{out}");
    assert_eq!(short_names(&ns).await, ["mcpt", "mcpten"]);
    let by_new_name = eventually("the new short name to be served", WAIT, || async {
        let out = ns.kubectl_output(&["get", "mcpten", "-o", "name"], None).await;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    })
    .await;
    assert_eq!(by_new_name, "mcptenant.mcpfleet.io/seattle");
    std::fs::remove_dir_all(&changed).ok();

    // `helm uninstall` removes the operator and its RBAC but keeps the CRD, so tenants stay.
    let out = ns.helm(&["uninstall", RELEASE, "--wait", "--timeout", "60s"]).await;
    assert!(out.contains("kept due to the resource policy") && out.contains(CRD_NAME), "{out}");
    let operator = format!("{RELEASE}-mcp-fleet-operator");
    assert!(
        ns.api::<Deployment>().get_opt(&operator).await.unwrap().is_none(),
        "the operator Deployment stayed"
    );
    let roles: Api<ClusterRole> = Api::all(ns.client());
    assert!(roles.get_opt(&operator).await.unwrap().is_none(), "the ClusterRole stayed");
    assert!(ns.kubectl(&["get", "mcpt", "seattle", "-o", "name"]).await.contains("seattle"));

    // One release owns the CRD: a second release elsewhere is refused with a message naming it,
    // and installs with crds.install=false.
    let other = TestNamespace::new("helm-second").await;
    let args = ["install", "second", path_str(&chart), "--timeout", "60s"];
    let refused = helm_output_in(&other, &args).await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "a second release took over the CRD");
    assert!(stderr.contains(CRD_NAME) && stderr.contains("ownership"), "{stderr}");
    other
        .helm(&["install", "second", path_str(&chart), "--set", "crds.install=false", "--timeout", "60s"])
        .await;
    other.helm(&["uninstall", "second", "--wait", "--timeout", "60s"]).await;

    // Installing the same release again adopts the kept CRD and brings it to the chart's version.
    let out = ns.helm(&["install", RELEASE, path_str(&chart), "--timeout", "60s"]).await;
    assert!(out.contains("STATUS: deployed"), "{out}");
    assert_eq!(short_names(&ns).await, ["mcpt"]);
    ns.helm(&["uninstall", RELEASE, "--wait", "--timeout", "60s"]).await;

    ns.kubectl(&["delete", "mcptenant", "seattle", "--wait", "--timeout=60s"]).await;
    ns.kubectl(&["delete", "crd", CRD_NAME, "--wait", "--timeout=60s"]).await;
}

/// The operator binary run out-of-cluster as the chart's ServiceAccount (a token from
/// `kubectl create token`), the way its pods would run it.
struct OperatorAsServiceAccount {
    _guard: Guarded,
    dir: PathBuf,
}

impl OperatorAsServiceAccount {
    async fn start(ns: &TestNamespace, service_account: &str, lease: &str, extra: &[&str]) -> Self {
        let token = ns.kubectl(&["create", "token", service_account, "--duration=1h"]).await;
        let view = |path: &'static str| async move {
            ns.kubectl(&[
                "config",
                "view",
                "--raw",
                "-o",
                &format!("jsonpath={{.clusters[0].cluster.{path}}}"),
            ])
            .await
        };
        let server = view("server").await;
        let ca = view("certificate-authority-data").await;
        let suffix: u64 = rand::random();
        let dir = std::env::temp_dir().join(format!("mcpfleet-sa-{}-{suffix:x}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the operator's directory");
        let kubeconfig = dir.join("kubeconfig");
        let config = serde_json::json!({
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": {"server": server.trim(), "certificate-authority-data": ca.trim()}}],
            "users": [{"name": service_account, "user": {"token": token.trim()}}],
            "contexts": [{"name": "sa", "context": {"cluster": "test", "user": service_account}}],
            "current-context": "sa",
        });
        // JSON is YAML: kubeconfig loaders read it as is.
        std::fs::write(&kubeconfig, config.to_string()).expect("write the kubeconfig");
        let bin =
            tokio::task::spawn_blocking(|| WorkspaceBin::build("mcp-fleet-operator")).await.expect("build");
        let env_kubeconfig = format!("KUBECONFIG={}", path_str(&kubeconfig));
        let listen = format!("127.0.0.1:{}", free_port());
        let mut argv = vec![
            "env",
            env_kubeconfig.as_str(),
            path_str(bin.path()),
            "--lease-namespace",
            ns.name(),
            "--lease-name",
            lease,
            "--lease-duration",
            "4s",
            "--identity",
            "rbac-probe",
            "--listen",
            &listen,
            "--resync-interval",
            "30s",
            "--backoff-base",
            "300ms",
            "--backoff-max",
            "2s",
            "--server-image",
            "mcp-fleet-server:e2e",
            "--log-format",
            "text",
        ];
        argv.extend_from_slice(extra);
        let guard = Guarded::spawn(&argv, None, "TERM", None, &dir.join("log"))
            .unwrap_or_else(|e| panic!("starting the operator: {e}"));
        OperatorAsServiceAccount { _guard: guard, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for OperatorAsServiceAccount {
    fn drop(&mut self) {
        // The guard stops the process; its log goes with the directory.
        std::fs::remove_dir_all(&self.dir).ok();
    }
}

/// A database with the sample stores and a role of the operator's group; its URL in Secret
/// [`ADMIN_SECRET`] of `ns`.
async fn database_for(ns: &TestNamespace) -> TestDb {
    let db = TestDb::from_template("e2e-helm-stores", |pool| async move {
        for name in ["Zava Retail Seattle", "Zava Retail Bellevue"] {
            sqlx::query("INSERT INTO retail.stores (store_name, is_online) VALUES ($1, false)")
                .bind(name)
                .execute(&pool)
                .await
                .expect("insert a store");
        }
    })
    .await;
    admin_login(ns, &db).await;
    db
}

fn tenant_spec(tenant: &str) -> Value {
    serde_json::json!({
        "tenant": tenant,
        "stores": ["Zava Retail Seattle"],
        "deletionPolicy": "Delete",
        "database": {"adminSecretRef": {"name": ADMIN_SECRET}},
        "auth": {"issuer": "https://issuer.example.com/realms/retail"},
        "ingress": {"host": "shop.mcp.example.com", "tlsSecretName": "shop-tls"},
        "backup": {"schedule": "0 3 * * *", "destination": "file:///backups/shop"},
    })
}

/// Waits until the McpTenant's status, for its current generation, satisfies `ok`.
async fn wait_status(ns: &TestNamespace, name: &str, what: &str, ok: impl Fn(&McpTenantStatus) -> bool) {
    let api = ns.api::<McpTenant>();
    eventually(format!("{name}: {what}"), WAIT, || {
        let (api, ok) = (api.clone(), &ok);
        async move {
            let t = api.get_opt(name).await.ok().flatten()?;
            let seen = t.status.as_ref().and_then(|s| s.observed_generation) == t.metadata.generation;
            (seen && t.status.as_ref().is_some_and(ok)).then_some(())
        }
    })
    .await;
}

async fn delete_tenant(ns: &TestNamespace, name: &str) {
    let api = ns.api::<McpTenant>();
    api.delete(name, &DeleteParams::default()).await.expect("delete the McpTenant");
    eventually(format!("McpTenant {name} to be gone (finalizer removed)"), WAIT, || async {
        api.get_opt(name).await.expect("read the McpTenant").is_none().then_some(())
    })
    .await;
}

/// `rules` without `verb` on `resource`.
fn without(rules: &[PolicyRule], resource: &str, verb: &str) -> Vec<PolicyRule> {
    let mut rules = rules.to_vec();
    let rule = rules
        .iter_mut()
        .find(|r| r.resources.iter().flatten().any(|x| x == resource) && r.verbs.iter().any(|v| v == verb))
        .unwrap_or_else(|| panic!("the chart grants no {verb} on {resource}"));
    let others: Vec<String> = rule.resources.iter().flatten().filter(|x| *x != resource).cloned().collect();
    let mut reduced = rule.clone();
    reduced.resources = Some(vec![resource.to_owned()]);
    reduced.verbs.retain(|v| v != verb);
    if others.is_empty() {
        *rule = reduced;
    } else {
        rule.resources = Some(others);
        rules.push(reduced);
    }
    // A rule needs at least one verb.
    rules.retain(|r| !r.verbs.is_empty());
    rules
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_works_with_the_charts_rbac_and_fails_without_one_verb() {
    let _turn = CRD_LOCK.lock().await;
    let ns = TestNamespace::new("helm-rbac").await;
    let chart = chart();
    ns.helm(&["install", RELEASE, path_str(&chart), "--timeout", "60s"]).await;
    ns.wait_crds_established(&[CRD_NAME]).await;
    discoverable(&ns, "mcpfleet.io", &["mcptenants"]).await;
    let db = database_for(&ns).await;
    let operator_name = format!("{RELEASE}-mcp-fleet-operator");
    // All namespaces, like the chart's default (a ClusterRole).
    let op = OperatorAsServiceAccount::start(&ns, &operator_name, &operator_name, &[]).await;

    // The happy path with the chart's RBAC and nothing else: roles in PostgreSQL, every child,
    // status, Events, the Lease; then an update that deletes a child and creates another; then
    // deletion through the finalizer.
    let tenant = unique_name("t").replace('_', "-");
    tenant::create_tenant(&ns.api(), "shop", tenant_spec(&tenant)).await;
    wait_status(&ns, "shop", "DatabaseReady and BackupScheduled", |s| {
        s.is_true(condition::DATABASE_READY) && s.is_true(condition::BACKUP_SCHEDULED)
    })
    .await;
    let roles: Vec<String> =
        sqlx::query_scalar("SELECT rolname::text FROM pg_roles WHERE rolname LIKE $1 ORDER BY 1")
            .bind(format!("mcpt_{tenant}%"))
            .fetch_all(&db.admin)
            .await
            .unwrap();
    assert_eq!(roles, [format!("mcpt_{tenant}"), format!("mcpt_{tenant}_login")]);
    let names = ns
        .kubectl(&[
            "get",
            "serviceaccount,secret,configmap,service,deployment,poddisruptionbudget,networkpolicy,ingress,cronjob",
            "-l",
            "app.kubernetes.io/instance=shop",
            "-o",
            "name",
        ])
        .await;
    let mut names: Vec<&str> = names.lines().collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "configmap/shop-config",
            "cronjob.batch/shop-backup",
            "deployment.apps/shop",
            "ingress.networking.k8s.io/shop",
            "networkpolicy.networking.k8s.io/shop",
            "poddisruptionbudget.policy/shop",
            "secret/shop-db-credentials",
            "service/shop",
            "serviceaccount/shop",
        ]
    );
    let events = ns
        .kubectl(&["get", "events.events.k8s.io", "--field-selector", "regarding.name=shop", "-o", "name"])
        .await;
    assert!(!events.trim().is_empty(), "no Events about the McpTenant");
    let lease = ns.api::<Lease>().get(&operator_name).await.expect("the leader Lease");
    assert_eq!(lease.spec.and_then(|s| s.holder_identity).as_deref(), Some("rbac-probe"));

    ns.api::<McpTenant>()
        .patch(
            "shop",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"ingress": null, "autoscaling": {"minReplicas": 2, "maxReplicas": 3}}})),
        )
        .await
        .expect("patch the McpTenant");
    eventually("the Ingress to go and the HPA to come", WAIT, || async {
        let ingress = ns.api::<Ingress>().get_opt("shop").await.expect("read the Ingress");
        let hpa = ns.api::<HorizontalPodAutoscaler>().get_opt("shop").await.expect("read the HPA");
        (ingress.is_none() && hpa.is_some()).then_some(())
    })
    .await;
    delete_tenant(&ns, "shop").await;
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname LIKE $1")
        .bind(format!("mcpt_{tenant}%"))
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert_eq!(left, 0, "deletionPolicy Delete dropped the roles");
    let log = op.log();
    assert!(!log.contains("forbidden"), "the chart's RBAC refused something on the happy path:\n{log}");

    // Each verb below is needed: without it the operator fails where a user sees it, and it
    // recovers once the verb is back.
    let roles_api: Api<ClusterRole> = Api::all(ns.client());
    let granted = roles_api.get(&operator_name).await.expect("the chart's ClusterRole");
    let rules = granted.rules.clone().expect("rules");
    let cases = [
        ("configmaps", "create", "the ConfigMap is never created"),
        ("mcptenants/status", "patch", "status stays empty"),
        ("secrets", "get", "an admin Secret not read before cannot be read"),
    ];
    for (i, (resource, verb, symptom)) in cases.into_iter().enumerate() {
        let mut reduced = granted.clone();
        reduced.rules = Some(without(&rules, resource, verb));
        reduced.metadata.resource_version = None;
        roles_api
            .replace(&operator_name, &PostParams::default(), &reduced)
            .await
            .expect("reduce the ClusterRole");
        let name = format!("probe-{i}");
        let mut spec = tenant_spec(&unique_name("t").replace('_', "-"));
        if resource == "secrets" {
            // The operator reads Secrets it has not read before, or that changed since; it does
            // not read a new tenant's credentials Secret, which it creates. A second admin Secret:
            let secrets = ns.api::<Secret>();
            let mut copy = secrets.get(ADMIN_SECRET).await.expect("the admin Secret");
            copy.metadata = ObjectMeta { name: Some(format!("{name}-admin")), ..ObjectMeta::default() };
            secrets.create(&PostParams::default(), &copy).await.expect("a second admin Secret");
            spec["database"]["adminSecretRef"]["name"] = format!("{name}-admin").into();
        }
        let seen = op.log().len();
        tenant::create_tenant(&ns.api(), &name, spec).await;
        let needle = format!("cannot {verb} resource \\\"{resource}\\\"");
        let plain = format!("cannot {verb} resource \"{resource}\"");
        eventually(format!("the operator to be refused {verb} on {resource}"), WAIT, || async {
            let log = op.log();
            let new = &log[seen.min(log.len())..];
            (new.contains(&needle) || new.contains(&plain)).then_some(())
        })
        .await;
        let t = ns.api::<McpTenant>().get(&name).await.expect("the McpTenant");
        let ready = t
            .status
            .as_ref()
            .is_some_and(|s| s.is_true(condition::DATABASE_READY) && s.is_true(condition::READY));
        assert!(!ready, "{symptom}: yet {name} is Ready");
        match resource {
            "configmaps" => assert!(
                ns.api::<ConfigMap>().get_opt(&format!("{name}-config")).await.unwrap().is_none(),
                "{symptom}"
            ),
            "mcptenants/status" => assert!(t.status.is_none(), "{symptom}: {:?}", t.status),
            _ => {
                assert!(!t.status.as_ref().is_some_and(|s| s.is_true(condition::DATABASE_READY)), "{symptom}")
            }
        }
        let mut restored = granted.clone();
        restored.metadata.resource_version = None;
        roles_api
            .replace(&operator_name, &PostParams::default(), &restored)
            .await
            .expect("restore the ClusterRole");
        wait_status(&ns, &name, "DatabaseReady once the verb is back", |s| {
            s.is_true(condition::DATABASE_READY)
        })
        .await;
        delete_tenant(&ns, &name).await;
    }

    drop(op);

    // watchNamespace: the ClusterRole becomes a Role in that namespace, and it is enough for an
    // operator that watches only there.
    let chart_args =
        ["upgrade", RELEASE, path_str(&chart), "--set", &format!("watchNamespace={}", ns.name())];
    ns.helm(&chart_args).await;
    assert!(roles_api.get_opt(&operator_name).await.unwrap().is_none(), "the ClusterRole stayed");
    let op = OperatorAsServiceAccount::start(
        &ns,
        &operator_name,
        &operator_name,
        &["--watch-namespace", ns.name()],
    )
    .await;
    tenant::create_tenant(&ns.api(), "scoped", tenant_spec(&unique_name("t").replace('_', "-"))).await;
    wait_status(&ns, "scoped", "DatabaseReady with a namespaced Role", |s| {
        s.is_true(condition::DATABASE_READY) && s.is_true(condition::BACKUP_SCHEDULED)
    })
    .await;
    delete_tenant(&ns, "scoped").await;
    let log = op.log();
    assert!(!log.contains("forbidden"), "the namespaced Role refused something:\n{log}");
    drop(op);

    ns.helm(&["uninstall", RELEASE, "--wait", "--timeout", "60s"]).await;
    ns.kubectl(&["delete", "crd", CRD_NAME, "--wait", "--timeout=60s"]).await;
}

#[tokio::test]
async fn the_operator_accepts_every_setting_the_chart_passes() {
    let rendered =
        objects(&render(&["--values", path_str(&full_values()), "--set", "watchNamespace=retail"]).await);
    let container = &find(&rendered, "Deployment")["spec"]["template"]["spec"]["containers"][0];
    let bin = tokio::task::spawn_blocking(|| WorkspaceBin::build("mcp-fleet-operator")).await.unwrap();
    let help =
        tools::expect_success(bin.path(), &["--help"], tools::run(bin.path(), &["--help"], &[], None).await);

    // What the pod would see: literal values, and stand-ins for values from the downward API
    // and the admin Secret.
    let mut env: Vec<(String, String)> = Vec::new();
    for e in container["env"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap().to_owned();
        let value = match (&e["value"], &e["valueFrom"]) {
            (Value::String(v), _) => v.clone(),
            (_, from) if from["fieldRef"]["fieldPath"] == "metadata.namespace" => "mcp-system".to_owned(),
            (_, from) if from["fieldRef"]["fieldPath"] == "metadata.name" => "operator-0".to_owned(),
            (_, from) if from["secretKeyRef"].is_object() => "postgres://op@127.0.0.1:1/zava".to_owned(),
            other => panic!("{name}: unexpected env source {other:?}"),
        };
        if name.starts_with("MCP_FLEET_OPERATOR_") {
            assert!(
                help.contains(&format!("[env: {name}=")) || help.contains(&format!("[env: {name}]")),
                "the chart sets {name}, which the operator does not read"
            );
        }
        env.push((name, value));
    }
    assert!(env.iter().any(|(n, v)| n == "MCP_FLEET_OPERATOR_WATCH_NAMESPACE" && v == "retail"));
    // Every value parses: the operator gets past its configuration and stops only because there
    // is no API server to talk to.
    env.push(("KUBECONFIG".to_owned(), "/nonexistent/kubeconfig".to_owned()));
    let env: Vec<(&str, &str)> = env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let out = tools::run(bin.path(), &[], &env, None).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("no Kubernetes API"), "the operator refused the chart's settings:\n{stderr}");
}

#[tokio::test]
async fn the_examples_fit_the_chart_and_a_tenant_endpoint() {
    // The Argo CD Application's values pass the chart's schema and keep the CRD under Argo CD.
    let app = std::fs::read_to_string(repo_root().join("examples/argocd-application.yaml")).unwrap();
    let app: Value = serde_saphyr::from_str(&app).unwrap();
    let source = &app["spec"]["source"];
    assert!(repo_root().join(source["path"].as_str().unwrap()).join("Chart.yaml").is_file());
    let suffix: u64 = rand::random();
    let values = std::env::temp_dir().join(format!("mcpfleet-argo-values-{suffix:x}.json"));
    std::fs::write(&values, source["helm"]["valuesObject"].to_string()).unwrap();
    let rendered = objects(&render(&["--values", path_str(&values)]).await);
    std::fs::remove_file(&values).ok();
    let crd = find(&rendered, "CustomResourceDefinition");
    assert_eq!(crd["metadata"]["annotations"]["argocd.argoproj.io/sync-options"], "Delete=false,Prune=false");
    assert!(kinds(&rendered).contains("PrometheusRule"));

    // The client configurations are JSON and reach a tenant's MCP endpoint with a bearer token.
    let vscode: Value =
        serde_json::from_str(&std::fs::read_to_string(repo_root().join("examples/vscode-mcp.json")).unwrap())
            .unwrap();
    for (_, server) in vscode["servers"].as_object().unwrap() {
        assert_eq!(server["type"], "http");
        assert!(server["url"].as_str().unwrap().ends_with("/mcp"), "{server}");
        assert!(server["headers"]["Authorization"].as_str().unwrap().starts_with("Bearer "));
    }
    let claude: Value = serde_json::from_str(
        &std::fs::read_to_string(repo_root().join("examples/claude-desktop-config.json")).unwrap(),
    )
    .unwrap();
    for (_, server) in claude["mcpServers"].as_object().unwrap() {
        let args: Vec<&str> =
            server["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
        assert!(args.iter().any(|a| a.starts_with("https://") && a.ends_with("/mcp")), "{args:?}");
        assert!(server["env"]["AUTH_HEADER"].as_str().unwrap().starts_with("Bearer "));
    }
}
