//! Faults on the node under load, as the people running the fleet meet them: PostgreSQL
//! restarts or a server process dies while MCP clients call a tenant through the ingress; and
//! autoscaling on real CPU. Each test here stops something every tenant shares or measures the
//! node's CPU, so this file has its own fleet (its own process, see `support::fleet`) and runs
//! its tests one at a time. Each test prints one line for the fault table: the fault,
//! the load held, calls made and failed, audit records lost, and the recovery time.
// test group: node (scripts/test.sh: it holds the machine's one node)

#[allow(dead_code)] // each test binary uses its own part of the shared helpers
mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use kube::api::{Patch, PatchParams};
use mcp_fleet_e2e::{TestNamespace, WAIT, eventually};
use mcp_fleet_operator::crd::McpTenant;
use serde_json::json;
use support::fleet::Fleet;
use support::load::{ClientLoop, Loaded, assert_audited, client_loop, loaded_tenant, loaded_tenant_with};
use support::process::server_pid;
use support::wait::{self, ingress_routes_to_every_ready_pod, rolled};

static ONE_FAULT_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The server pods of tenant `name`: `(pod name, pod IP, container restarts)`.
async fn server_pods(ns: &TestNamespace, name: &str) -> Vec<(String, String, i32)> {
    wait::server_pods(ns, name)
        .await
        .into_iter()
        .map(|p| {
            let status = p.status.unwrap_or_default();
            let restarts = status.container_statuses.iter().flatten().map(|c| c.restart_count).sum();
            (p.metadata.name.unwrap_or_default(), status.pod_ip.unwrap_or_default(), restarts)
        })
        .collect()
}

/// What `GET /health/ready` of each pod answers, straight to the pod IP on the node bridge
/// (what the kubelet's readiness probe sees).
async fn readiness(pods: &[(String, String, i32)]) -> Vec<u16> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("an HTTP client");
    let mut out = Vec::new();
    for (_, ip, _) in pods {
        let r = http.get(format!("http://{ip}:8080/health/ready")).send().await;
        out.push(r.map(|r| r.status().as_u16()).unwrap_or(0));
    }
    out
}

/// Once the ingress routes tenant `t` to every Ready pod again and the calls that began before
/// that are done (the next 10, within `settle`), asserts that the 60 calls after them all
/// succeed: `what` is back to normal. Counting calls alone is no wait for the data path: a call
/// the ingress answers 503 (no endpoint yet) fails in a millisecond, so ten of them can pass
/// before Traefik has seen the pods' endpoints again (a CI run had 1 of those 60 calls fail so).
async fn no_failures_from_now(
    fleet: &Fleet,
    ns: &TestNamespace,
    t: &str,
    calls: &ClientLoop,
    settle: Duration,
    what: &str,
) {
    let admin = fleet.node.ingress_admin_port();
    eventually(format!("the ingress to route {t} to its Ready pods again"), settle, || {
        ingress_routes_to_every_ready_pod(ns, admin, t)
    })
    .await;
    calls.wait_for_calls(10, settle).await;
    let failed_before = calls.failed();
    calls.wait_for_calls(60, Duration::from_secs(120)).await;
    assert_eq!(
        calls.failed(),
        failed_before,
        "calls fail after {what}; the latest: {}",
        calls.last_failure()
    );
}

#[tokio::test]
async fn a_postgresql_restart_under_load_fails_calls_clearly_and_loses_no_audit_record() {
    let _one = ONE_FAULT_AT_A_TIME.lock().await;
    let fleet = Fleet::shared().await;
    let ns = fleet.namespace("pg-restart").await;
    let Loaded { name: t, calls, .. } =
        loaded_tenant(fleet, &ns, "pgrestart", "Zava Retail Kirkland", 3).await;
    let pods = server_pods(&ns, &t).await;

    let pg = fleet.pg;
    tokio::task::spawn_blocking(move || pg.stop()).await.expect("a blocking task").expect("stop PostgreSQL");
    let stopped = Instant::now();
    // Every server notices on its own: readiness 503 (so the Service stops sending it calls).
    eventually("every server pod to say it is not ready", Duration::from_secs(60), || async {
        readiness(&pods).await.iter().all(|s| *s == 503).then_some(())
    })
    .await;
    calls.wait_for_calls(20, Duration::from_secs(120)).await; // the loop meets the outage
    tokio::task::spawn_blocking(move || pg.start_again())
        .await
        .expect("a blocking task")
        .expect("start PostgreSQL");
    let down_for = stopped.elapsed();
    let restarted = Instant::now();
    // Back without a pod restart: the same pods turn Ready again.
    eventually("both server pods Ready again", Duration::from_secs(120), || async {
        let now = rolled(&ns, &t, 2).await?;
        (now.len() == pods.len() && pods.iter().all(|(p, _, _)| now.contains(p))).then_some(())
    })
    .await;
    let recovery = restarted.elapsed();
    // Once calls that began during the outage are done, every call succeeds again.
    no_failures_from_now(fleet, &ns, &t, &calls, Duration::from_secs(120), "PostgreSQL is back").await;

    let report = calls.stop().await;
    eprintln!("{}", report.line("PostgreSQL stopped and started under load"));
    eprintln!(
        "fault table: PostgreSQL restart (down {down_for:.1?}) | {:.1} calls/s | {} made | {} failed | audit lost: see below | Ready again {recovery:.1?} after the start",
        report.calls_per_second(),
        report.made,
        report.failed
    );
    assert!(report.failed > 0, "the loop met the outage: {report:?}");
    // Each failure says what happened and that a retry helps: no hang, no internals. With every
    // pod unready the ingress answers 503 (the Service is known, nothing can serve it now).
    for why in report.reasons.keys() {
        let clear = why.contains("try again") || why.contains("retry") || why.starts_with("HTTP 503");
        assert!(clear, "an unclear failure during the outage: {why}");
    }
    assert!(report.slowest < Duration::from_secs(35), "a call hung past the request timeout: {report:?}");
    for (pod, _, restarts) in server_pods(&ns, &t).await {
        assert_eq!(restarts, 0, "{pod} was restarted (a liveness kill?)");
    }
    assert_audited(fleet, &report.ok_ids).await;
    eprintln!("audit: all {} successful calls recorded, 0 lost", report.ok_ids.len());
}

/// Kills the server process of pod `uid` with SIGKILL, from the host, as the kernel's OOM
/// killer or a crash would end it: the process whose cgroup is the pod's and whose name is the
/// server's. Returns its host PID.
fn kill_server_of_pod(uid: &str) -> i32 {
    let pid = server_pid(uid);
    let pid_text = pid.to_string();
    let killed = std::process::Command::new("kill").args(["-KILL", &pid_text]).status().expect("run kill");
    assert!(killed.success(), "kill -KILL {pid}");
    pid
}

#[tokio::test]
async fn a_server_pod_killed_under_load_costs_only_the_calls_in_flight_on_it() {
    let _one = ONE_FAULT_AT_A_TIME.lock().await;
    let fleet = Fleet::shared().await;
    let ns = fleet.namespace("pod-kill").await;
    let clients = 3;
    let Loaded { name: t, calls, .. } =
        loaded_tenant(fleet, &ns, "podkill", "Zava Retail Bellevue", clients).await;

    let pods = wait::server_pods(&ns, &t).await;
    let victim = &pods[0];
    let (victim_name, uid) = (victim.metadata.name.clone().unwrap_or_default(), victim.metadata.uid.clone());
    let uid = uid.expect("a pod uid");
    let pid = tokio::task::spawn_blocking(move || kill_server_of_pod(&uid)).await.expect("a blocking task");
    let killed = Instant::now();
    // The kubelet restarts the container in place; the pod turns Ready again.
    eventually(format!("{victim_name} restarted and Ready"), Duration::from_secs(120), || async {
        let restarted = server_pods(&ns, &t).await.into_iter().any(|(p, _, r)| p == victim_name && r == 1);
        (restarted && rolled(&ns, &t, 2).await.is_some()).then_some(())
    })
    .await;
    let recovery = killed.elapsed();
    no_failures_from_now(fleet, &ns, &t, &calls, Duration::from_secs(60), "the pod is back").await;

    let report = calls.stop().await;
    eprintln!("{}", report.line(&format!("server process {pid} of {victim_name} killed under load")));
    eprintln!(
        "fault table: server pod killed (SIGKILL) | {:.1} calls/s | {} made | {} failed | audit lost: 0 (asserted) | Ready again {recovery:.1?} after the kill",
        report.calls_per_second(),
        report.made,
        report.failed
    );
    // The ingress retries a call whose connection to the dead pod is refused (`connect-retry` in
    // scripts/node.sh; without it 28 of 277 calls failed), so only calls in flight on the killed
    // pod fail: at most one per client.
    assert!(
        report.failed <= clients as u64,
        "at most the calls in flight on the killed pod fail ({clients} clients): {:?}",
        report.reasons
    );
    // An answer leaves only once its audit record is committed (group commit, no linger), so
    // the kill loses no record of a call the clients saw succeed.
    assert_audited(fleet, &report.ok_ids).await;
    eprintln!("audit: all {} successful calls recorded, 0 lost", report.ok_ids.len());
}

/// Autoscaling on real CPU. Three MCP clients through the ingress push the server's CPU above
/// the HPA's target (50 % of its 50m request); metrics-server (15 s resolution) reports it, and
/// the HPA scales the tenant up from `minReplicas` 1. When the load drops to one call a second,
/// the HPA scales back to 1 once the tenant's scale-down window has passed
/// (`scaleDownStabilizationSeconds: 15`; Kubernetes' default is 300 s). No call fails on the way
/// up or down. It measures CPU, so it too has the node to itself.
#[tokio::test]
async fn the_hpa_scales_a_tenant_up_under_load_and_back_down_when_it_drops() {
    let _one = ONE_FAULT_AT_A_TIME.lock().await;
    let fleet = Fleet::shared().await;
    let ns = fleet.namespace("hpa").await;
    let autoscaling = json!({"minReplicas": 1, "maxReplicas": 3, "targetCpuUtilizationPercentage": 50,
                             "scaleDownStabilizationSeconds": 15});
    let Loaded { name: t, calls, .. } =
        loaded_tenant_with(fleet, &ns, "scaling", "Zava Retail Redmond", 3, 1, |spec| {
            spec["autoscaling"] = autoscaling;
        })
        .await;
    let hpas: Api<HorizontalPodAutoscaler> = ns.api();
    let deployments: Api<Deployment> = ns.api();
    let cpu = |h: &HorizontalPodAutoscaler| {
        h.status
            .as_ref()?
            .current_metrics
            .as_ref()?
            .iter()
            .find_map(|m| m.resource.as_ref()?.current.average_utilization)
    };

    let loaded = Instant::now();
    let (replicas, utilization) =
        eventually("the HPA to scale the tenant up", Duration::from_secs(240), || async {
            let hpa = hpas.get(&t).await.ok()?;
            let ready = deployments.get(&t).await.ok()?.status?.ready_replicas.unwrap_or(0);
            (ready >= 2).then(|| (ready, cpu(&hpa)))
        })
        .await;
    let up_in = loaded.elapsed();
    let heavy = calls.stop().await;
    eprintln!(
        "{}",
        heavy.line(&format!("load until {replicas} Ready replicas (CPU {utilization:?} % of request)"))
    );

    let light = client_loop(fleet, &ns, &t, 1, Duration::from_secs(1)).await;
    let dropped = Instant::now();
    eventually("the HPA to scale the tenant back to 1", Duration::from_secs(240), || rolled(&ns, &t, 1))
        .await;
    let down_in = dropped.elapsed();
    let light = light.stop().await;
    eprintln!("{}", light.line("one call a second while the HPA scales down"));
    eprintln!(
        "fault table: HPA up and down (real CPU) | {:.1} calls/s, then 1/s | {} made | {} failed | audit lost: 0 (asserted) | {replicas} Ready {up_in:.1?} after the load began; 1 again {down_in:.1?} after it dropped",
        heavy.calls_per_second(),
        heavy.made + light.made,
        heavy.failed + light.failed
    );
    assert_eq!(
        heavy.failed + light.failed,
        0,
        "no call fails while the HPA scales: {:?} {:?}",
        heavy.reasons,
        light.reasons
    );
    assert_audited(fleet, &[heavy.ok_ids, light.ok_ids].concat()).await;
}

/// kube-apiserver restarted under load: SIGTERM, then started again with the same flags
/// (`scripts/control-plane.sh restart-apiserver`). The tenant's callers see no failure: the data
/// path (Traefik, kube-proxy's rules, the pods, PostgreSQL) does not go through the API server.
/// The operator, its watches reconnected, converges a change made after the restart: the pods
/// roll to it, still without a failed call.
#[tokio::test]
async fn a_kube_apiserver_restart_fails_no_call_and_a_change_after_it_converges() {
    let _one = ONE_FAULT_AT_A_TIME.lock().await;
    let fleet = Fleet::shared().await;
    let ns = fleet.namespace("apiserver").await;
    let Loaded { name: t, pods, calls } =
        loaded_tenant(fleet, &ns, "apirestart", "Zava Retail Tacoma", 3).await;

    let script = mcp_fleet_testkit::kube::repo_root().join("scripts/control-plane.sh");
    let cp_dir = fleet.plane.run_dir().join("cp");
    let before = calls.made();
    let restarted = Instant::now();
    let out = tokio::process::Command::new("bash")
        .arg(&script)
        .arg("restart-apiserver")
        .arg(&cp_dir)
        .output()
        .await
        .expect("run control-plane.sh restart-apiserver");
    assert!(out.status.success(), "restart-apiserver: {}", String::from_utf8_lossy(&out.stderr));
    let api_back = restarted.elapsed();
    let during = calls.made() - before;

    // The controllers on the data path must see changes again before a roll can be seamless: the
    // EndpointSlice controller and the ingress controller each list and watch again only after a
    // backoff (client-go's reflectors: up to 30 s, jittered up to twice that, after the failures
    // of the outage). Until then the ingress keeps routing to pods that a roll has taken away. A
    // canary Service and Ingress over the tenant's pods, made after the restart, answers through
    // the ingress once both have caught up.
    let caught_up = data_path_caught_up(fleet, &ns, &t).await;

    // A change made after that: a new log level, which rolls the pods.
    let tenants = ns.api::<McpTenant>();
    let patch = json!({"spec": {"server": {"logLevel": "debug"}}});
    eventually("the McpTenant patched through the restarted API server", Duration::from_secs(60), || async {
        tenants.patch(&t, &PatchParams::default(), &Patch::Merge(&patch)).await.ok()
    })
    .await;
    let changed = Instant::now();
    eventually("the pods to roll to the change", WAIT * 4, || async {
        rolled(&ns, &t, 2).await.filter(|now| now.iter().all(|p| !pods.contains(p)))
    })
    .await;
    let converged = changed.elapsed();
    let report = calls.stop().await;
    eprintln!(
        "{}",
        report.line(&format!("kube-apiserver restarted ({during} calls while it stopped and started)"))
    );
    eprintln!(
        "fault table: kube-apiserver restart | {:.1} calls/s | {} made | {} failed | audit lost: 0 (asserted) | API ready again {api_back:.1?} after the SIGTERM; endpoints and ingress caught up {caught_up:.1?} later; a change then rolled in {converged:.1?}",
        report.calls_per_second(),
        report.made,
        report.failed
    );
    assert!(during > 0, "the clients kept calling while the API server restarted");
    // Before the canary wait, one CI run had 3 of 1608 calls hang to the client's 60 s timeout,
    // one per client: the change had rolled the pods away while the ingress still routed to them.
    assert_eq!(report.failed, 0, "no call fails across the API server restart and the roll after it");
    assert_audited(fleet, &report.ok_ids).await;
}

/// Applies a canary Service and Ingress over tenant `t`'s server pods and waits until a request
/// through the ingress reaches one of them: the EndpointSlice controller has made the canary's
/// slice and the ingress controller has seen both. How long that took.
async fn data_path_caught_up(fleet: &Fleet, ns: &TestNamespace, t: &str) -> Duration {
    let started = Instant::now();
    let host = format!("canary-{t}.mcp.test");
    let manifest = format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: canary-{t}}}
spec:
  selector: {{app.kubernetes.io/instance: {t}, app.kubernetes.io/component: server}}
  ports: [{{port: 8080, targetPort: 8080}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: canary-{t}}}
spec:
  rules:
    - host: {host}
      http:
        paths:
          - {{path: /, pathType: Prefix, backend: {{service: {{name: canary-{t}, port: {{number: 8080}}}}}}}}
"#
    );
    eventually("the canary applied through the restarted API server", Duration::from_secs(60), || async {
        ns.kubectl_output(&["apply", "-f", "-"], Some(&manifest)).await.status.success().then_some(())
    })
    .await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("an HTTP client");
    let url = format!("http://127.0.0.1:{}/health/ready", fleet.node.ingress_port());
    eventually("the canary to answer through the ingress", Duration::from_secs(180), || async {
        let r = http.get(&url).header("host", &host).send().await.ok()?;
        (r.status() == reqwest::StatusCode::OK).then_some(())
    })
    .await;
    started.elapsed()
}
