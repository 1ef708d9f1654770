//! The Helm chart `charts/mcp-fleet` with the pinned helm: lint and render for default and full
//! values, values the schema refuses, the CRD it installs being the generated one, alerts and the
//! dashboard reading metrics the fleet really exports; then install, upgrade with a changed CRD,
//! uninstall and reinstall on the real test API server.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use mcp_fleet_e2e::{TestNamespace, WAIT, eventually, tools};
use mcp_fleet_testkit::kube::{k8s_bin_dir, repo_root};
use serde_json::Value;

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

    // Switched off, the chart leaves the CRD to whoever manages it.
    let without = objects(&render(&["--set", "crds.install=false"]).await);
    assert!(!kinds(&without).contains("CustomResourceDefinition"));
}

/// Metric names (without `_bucket`/`_sum`/`_count`) the operator exports, from its registry.
fn operator_metric_names() -> BTreeSet<String> {
    let m = mcp_fleet_operator::metrics::Metrics::default();
    m.failures.with_label_values(&["apply_failed"]).inc();
    m.set_conditions("ns/t", Some(vec![("Ready".to_owned(), "False".to_owned())]));
    m.render()
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect()
}

/// Metric names the server defines: `<prefix>_<name>` for every `...::new("<name>", ...)` in
/// server/src/metrics.rs (the server crate is not a dependency of these tests).
fn server_metric_names() -> BTreeSet<String> {
    let src = std::fs::read_to_string(repo_root().join("server/src/metrics.rs"))
        .expect("read server/src/metrics.rs");
    assert!(
        src.contains(r#"Registry::new_custom(Some("mcpfleet".into())"#),
        "the server's metric prefix changed"
    );
    src.split("::new(\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(|n| format!("mcpfleet_{n}"))
        .collect()
}

#[tokio::test]
async fn alerts_and_the_dashboard_use_metrics_the_fleet_exports() {
    let rendered = objects(&render(&["--values", path_str(&full_values())]).await);
    let exported: BTreeSet<String> =
        operator_metric_names().into_iter().chain(server_metric_names()).collect();
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
    ns.kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "crd/servicemonitors.monitoring.coreos.com",
        "crd/podmonitors.monitoring.coreos.com",
        "crd/prometheusrules.monitoring.coreos.com",
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

    // Install with everything on: the API server accepts every object (the monitoring ones
    // against the real Prometheus Operator schemas) and the CRD is established.
    let out = ns
        .helm(&["install", RELEASE, path_str(&chart), "--values", path_str(&full), "--timeout", "60s"])
        .await;
    assert!(out.contains("STATUS: deployed"), "{out}");
    ns.kubectl(&["wait", "--for=condition=Established", "--timeout=60s", &format!("crd/{CRD_NAME}")]).await;
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

    // Installing the same release again adopts the kept CRD and brings it to the chart's version.
    let out = ns.helm(&["install", RELEASE, path_str(&chart), "--timeout", "60s"]).await;
    assert!(out.contains("STATUS: deployed"), "{out}");
    assert_eq!(short_names(&ns).await, ["mcpt"]);
    ns.helm(&["uninstall", RELEASE, "--wait", "--timeout", "60s"]).await;

    ns.kubectl(&["delete", "mcptenant", "seattle", "--wait", "--timeout=60s"]).await;
    ns.kubectl(&["delete", "crd", CRD_NAME, "--wait", "--timeout=60s"]).await;
}
