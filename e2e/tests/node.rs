//! The fleet on a real node, as a user meets it: the operator installed with `helm install` runs as
//! pods, every tenant's server runs as a pod from the images built here (`scripts/images.sh`), and
//! MCP clients reach tenants through the ingress controller with bearer tokens. One node, one
//! PostgreSQL, one seeded database and one operator install serve the tests of this file (see
//! `support::fleet`); each test has its own namespace and its own stores.
// test group: node (scripts/test.sh: it holds the machine's one node)

#[allow(dead_code)] // each test binary uses its own part of the shared helpers
mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{EvictParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use mcp_fleet_core::server_config::ServerConfigFile;
use mcp_fleet_e2e::{TestNamespace, WAIT, eventually};
use mcp_fleet_operator::crd::McpTenant;
use serde_json::{Value, json};
use support::fleet::{BUCKET, Fleet, OPERATOR, ingress_host, store_id};
use support::load::{Loaded, assert_audited, client_loop, loaded_tenant};
use support::process::{peak_rss_mib, server_pid};
use support::wait::{READY_TIMEOUT, endpoint, name, rolled, wait_ready};

async fn apply_tenant(ns: &TestNamespace, name: &str, spec: Value) -> McpTenant {
    support::tenant::create_tenant(&ns.api(), name, spec).await
}

/// The holder of the operator's Lease.
async fn leader(fleet: &Fleet) -> String {
    let leases: Api<Lease> = Api::namespaced(fleet.plane.client().await, &fleet.operator_namespace);
    let lease = leases.get(OPERATOR).await.expect("the operator's Lease");
    lease.spec.and_then(|s| s.holder_identity).unwrap_or_default()
}

#[tokio::test]
async fn the_chart_runs_the_operator_as_two_pods_with_one_leader() {
    let fleet = Fleet::shared().await;
    let ns = &fleet.operator_namespace;
    let pods: Api<Pod> = Api::namespaced(fleet.plane.client().await, ns);
    let selector = "app.kubernetes.io/name=mcp-fleet,app.kubernetes.io/component=operator";
    let list = pods.list(&ListParams::default().labels(selector)).await.unwrap();
    let names: Vec<String> = list.items.iter().map(|p| p.name_any()).collect();
    assert_eq!(list.items.len(), 2, "two operator replicas: {names:?}");
    for pod in &list.items {
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        assert_eq!(phase, Some("Running"), "{}", pod.name_any());
        let spec = pod.spec.as_ref().unwrap();
        assert_eq!(spec.service_account_name.as_deref(), Some(OPERATOR), "only the chart's RBAC");
        assert_eq!(
            spec.containers[0].image.as_deref(),
            Some(fleet.node.image("mcp-fleet-operator").as_str())
        );
    }
    let holder = leader(fleet).await;
    assert!(names.contains(&holder), "the Lease holder {holder:?} is one of {names:?}");
    // Each replica's metrics, read through the API server's pod proxy: exactly one leads.
    let mut leading = Vec::new();
    for pod in &names {
        let path = format!("/api/v1/namespaces/{ns}/pods/{pod}:8080/proxy/metrics");
        let metrics = fleet.kubectl(&["get", "--raw", &path]).await;
        let gauge = metrics
            .lines()
            .find(|l| l.starts_with("mcpfleet_operator_leader"))
            .unwrap_or_else(|| panic!("no leader gauge in {pod}'s metrics"));
        if gauge.trim_end().ends_with(" 1") {
            leading.push(pod.clone());
        }
    }
    assert_eq!(leading, [holder], "exactly the Lease holder says it leads");
}

#[tokio::test]
async fn a_tenant_becomes_ready_with_its_server_running_as_a_pod() {
    let fleet = Fleet::shared().await;
    let ns = fleet.namespace("ready").await;
    let t = name("seattle");
    let started = Instant::now();
    apply_tenant(&ns, &t, fleet.tenant_spec(&t, &["Zava Retail Seattle"])).await;
    wait_ready(&ns, &t).await;
    eprintln!("{t}: kubectl apply to Ready in {:.1?}", started.elapsed());

    // What `kubectl get mcpt` shows a user.
    let table = ns.kubectl(&["get", "mcpt", &t]).await;
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "STORES", "REPLICAS", "ENDPOINT", "AGE"], "{table}");
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[1], "True", "{table}");
    assert_eq!(row[4], format!("http://{}/mcp", ingress_host(&t)), "{table}");

    // The server pod passed its probes, as the non-root user of the image, with a read-only root.
    let pods =
        ns.api::<Pod>().list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={t}"))).await;
    let pods = pods.unwrap().items;
    let server = pods.iter().find(|p| p.name_any().starts_with(&t)).expect("a server pod");
    let status = server.status.as_ref().unwrap();
    let ready = status.conditions.as_ref().unwrap().iter().any(|c| c.type_ == "Ready" && c.status == "True");
    assert!(ready, "the server pod is Ready: {status:?}");
    let c = &server.spec.as_ref().unwrap().containers[0];
    assert_eq!(c.image.as_deref(), Some(fleet.server_image.as_str()));
    let pod = server.name_any();
    let uid = ns.kubectl(&["exec", &pod, "--", "id", "-u"]).await;
    assert_eq!(uid.trim(), "65532", "the image's non-root user");
    let write = ns.kubectl_output(&["exec", &pod, "--", "touch", "/usr/local/bin/x"], None).await;
    assert!(!write.status.success(), "the root filesystem is read-only");
    assert!(String::from_utf8_lossy(&write.stderr).contains("Read-only file system"));

    // Scaled to two replicas, the PodDisruptionBudget lets a drain take one server pod at a time:
    // the first eviction is allowed, a second one at once is refused with 429, and once the
    // replacement is Ready the other pod may go.
    let patch = json!({"spec": {"server": {"replicas": 2}}});
    ns.api::<McpTenant>().patch(&t, &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap();
    // The scale changes the server's config (its share of the connection limit), so the pods roll
    // first: wait until exactly two Ready pods remain and the budget has seen them.
    let pdbs = ns.api::<PodDisruptionBudget>();
    let pods = ns.api::<Pod>();
    let settled = || async {
        let names = rolled(&ns, &t, 2).await?;
        let status = pdbs.get(&t).await.expect("the tenant's PodDisruptionBudget").status?;
        (status.current_healthy == Some(2) && status.disruptions_allowed == Some(1)).then_some(names)
    };
    let names = eventually("two Ready server pods, one disruption allowed", WAIT * 4, settled).await;
    // kube's client retries a 429 until the budget allows it (within seconds here, once the
    // replacement is Ready): the refusal itself is what a drain sees, so evict without retries.
    let mut config = fleet.plane.config().await;
    config.default_retry = false;
    let evictions: Api<Pod> = Api::namespaced(kube::Client::try_from(config).unwrap(), ns.name());
    let first = evictions.evict(&names[0], &EvictParams::default()).await;
    let second = evictions.evict(&names[1], &EvictParams::default()).await;
    first.expect("the first eviction keeps the budget");
    match second {
        Err(kube::Error::Api(e)) => {
            assert_eq!(e.code, 429, "{e:?}");
            assert!(e.message.contains("disruption budget"), "{}", e.message);
        }
        other => panic!("a second eviction at once would break the budget, yet: {other:?}"),
    }
    let now = eventually("the replacement Ready, one disruption allowed again", WAIT * 4, settled).await;
    assert!(now.contains(&names[1]) && !now.contains(&names[0]), "{names:?} -> {now:?}");
    pods.evict(&names[1], &EvictParams::default())
        .await
        .expect("with the replacement Ready, the other may go");
}

#[tokio::test]
async fn clients_reach_two_tenants_through_the_ingress_and_each_sees_only_its_rows() {
    let fleet = Fleet::shared().await;
    let ns = fleet.namespace("ingress").await;
    let tenants = [
        (name("bellevue"), vec!["Zava Retail Bellevue"]),
        (name("south"), vec!["Zava Retail Tacoma", "Zava Retail Spokane"]),
    ];
    for (i, (t, stores)) in tenants.iter().enumerate() {
        let mut spec = fleet.tenant_spec(t, stores);
        if i == 0 {
            // The first takes hostile queries below: the memory limit of
            // examples/mcptenant-full.yaml, and a per-caller share that a client loop fits in.
            spec["server"]["resources"]["limits"] = json!({"memory": "1Gi"});
            spec["limits"] =
                json!({"perSubject": {"maxConcurrent": 64, "requestsPerMinute": 100000, "burst": 100000}});
        }
        apply_tenant(&ns, t, spec).await;
    }
    let per_store = json!({"postgresql_query": "SELECT store_id, count(*) AS n FROM retail.orders GROUP BY store_id ORDER BY store_id"});
    for (t, stores) in &tenants {
        wait_ready(&ns, t).await;
        let token = fleet.token(&endpoint(&ns, t).await, t, "analyst");
        // The ingress routes as soon as it has seen the Ingress and its endpoints.
        let reply = fleet
            .first_answer_through_ingress(&ingress_host(t), &token, "execute_sales_query", per_store.clone())
            .await;
        assert!(reply.tools.contains(&"execute_sales_query".to_owned()), "{:?}", reply.tools);
        let seen: Vec<(i64, i64)> =
            reply.rows().iter().map(|r| (r[0].as_i64().unwrap(), r[1].as_i64().unwrap())).collect();
        let truth = fleet.orders_per_store(stores).await;
        assert!(!truth.is_empty() && truth.iter().all(|(_, n)| *n > 0), "the seed gave {t}'s stores orders");
        assert_eq!(seen, truth, "{t} sees exactly its own stores' orders");
    }
    // The heaviest queries a model can send (a 500 MB value, a cross join of 480k x 480k rows, an
    // endless recursion), all at once, under a 1 GiB memory limit, while another caller of the
    // same tenant keeps calling: they come back cut or timed out, the other caller's calls all
    // succeed, the pod keeps running without a restart, and the next call is answered as before.
    let (a_name, a_stores) = &tenants[0];
    let token = fleet.token(&endpoint(&ns, a_name).await, a_name, "analyst");
    let host = ingress_host(a_name);
    let others = client_loop(fleet, &ns, a_name, 1, Duration::from_millis(50)).await;
    let hostile = [
        "SELECT repeat('x', 500000000) AS big",
        "SELECT a.* FROM retail.order_items a CROSS JOIN retail.order_items b",
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n FROM r",
    ];
    let before = others.made();
    let hostile_call = |sql: &str| {
        fleet.call_through_ingress(&host, &token, "execute_sales_query", json!({"postgresql_query": sql}))
    };
    let (big, cross, recursive) =
        tokio::join!(hostile_call(hostile[0]), hostile_call(hostile[1]), hostile_call(hostile[2]));
    let replies = [big, cross, recursive];
    let meanwhile = others.made() - before;
    others.wait_for_calls(20, Duration::from_secs(60)).await;
    let others = others.stop().await;
    eprintln!(
        "{}",
        others.line(&format!("another caller, {meanwhile} calls while three hostile queries ran"))
    );
    assert!(meanwhile > 0, "the other caller's calls went on while the hostile ones ran");
    assert_eq!(others.failed, 0, "the tenant's other caller is still answered: {:?}", others.reasons);
    for (sql, r) in hostile.iter().zip(replies) {
        // Cut to the budget, or (on a busy machine, where building 500 MB takes PostgreSQL longer
        // than the tenant's statement timeout) ended by the timeout with a message that says so.
        let head: String = r.text.chars().take(300).collect();
        let v: Value = serde_json::from_str(&r.text).unwrap_or_else(|e| panic!("{sql}: {e}: {head}"));
        let timed_out = r.is_error && v["err"].as_str().is_some_and(|e| e.contains("statement timeout"));
        assert!(timed_out || v["truncated"] == json!(true), "{sql}: {head}");
    }
    let r = fleet.call_through_ingress(&host, &token, "execute_sales_query", per_store.clone()).await;
    let seen: Vec<(i64, i64)> =
        r.rows().iter().map(|r| (r[0].as_i64().unwrap(), r[1].as_i64().unwrap())).collect();
    assert_eq!(seen, fleet.orders_per_store(a_stores).await, "answered as before");
    let selector = format!("app.kubernetes.io/instance={a_name}");
    for pod in ns.api::<Pod>().list(&ListParams::default().labels(&selector)).await.unwrap().items {
        let restarts: i32 = pod
            .status
            .and_then(|s| s.container_statuses)
            .into_iter()
            .flatten()
            .map(|c| c.restart_count)
            .sum();
        let pod_name = pod.metadata.name.unwrap_or_default();
        assert_eq!(restarts, 0, "{pod_name} restarted");
        // The server's own peak, read on the host: the budget holds it far below the limit.
        let uid = pod.metadata.uid.expect("a pod uid");
        let peak = tokio::task::spawn_blocking(move || peak_rss_mib(server_pid(&uid))).await.unwrap();
        eprintln!("{pod_name}: server peak RSS {peak} MiB after the hostile queries (limit 1024 MiB)");
        assert!(peak < 512, "{pod_name}'s server peaked at {peak} MiB, more than half its 1 GiB limit");
    }

    // metrics-server sees the server pods (what an HPA scales on): their CPU and memory.
    let top = eventually("metrics for the server pods", Duration::from_secs(90), || async {
        let out = ns.kubectl_output(&["top", "pod", "-l", &selector, "--no-headers"], None).await;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && text.contains("Mi")).then_some(text)
    })
    .await;
    eprintln!("{a_name}'s server pods after the calls (kubectl top: NAME CPU MEMORY): {}", top.trim());

    // A token for one tenant is refused at the other's endpoint.
    let (a, b) = (&tenants[0].0, &tenants[1].0);
    let wrong = fleet.token(&endpoint(&ns, b).await, a, "analyst");
    let url = format!("http://127.0.0.1:{}/mcp", fleet.node.ingress_port());
    let status = reqwest_status(&url, &ingress_host(b), &wrong).await;
    assert_eq!(status, 401, "a token naming {a} is refused by {b}'s server");
}

/// The HTTP status of an MCP `initialize` POST (no MCP client: only the refusal matters).
async fn reqwest_status(url: &str, host: &str, token: &str) -> u16 {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "e2e", "version": "0"}}});
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", url])
        .args(["-H", &format!("Host: {host}"), "-H", &format!("Authorization: Bearer {token}")])
        .args(["-H", "Content-Type: application/json", "-H", "Accept: application/json, text/event-stream"])
        .args(["--data", &body.to_string()])
        .output()
        .await
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0)
}

#[tokio::test]
async fn a_shared_mode_server_becomes_ready_as_a_pod_and_isolates_tenants() {
    let fleet = Fleet::shared().await;
    let ns = fleet.namespace("shared").await;
    // Two tenants served by one gateway: their roles and stores, made as the operator would.
    let tenants = [(name("kirkland"), "Zava Retail Kirkland"), (name("online"), "Zava Retail Online")];
    for (t, store) in &tenants {
        let verifier = mcp_fleet_core::tenant::scram_verifier(&mcp_fleet_core::tenant::generate_password());
        fleet
            .superuser(&format!(
                "SELECT tenancy.apply_tenant('{t}', ARRAY['{store}'], '{verifier}', 10, 5000)"
            ))
            .await;
    }
    let gateway = mcp_fleet_testkit::pg::unique_name("gw");
    let password = mcp_fleet_core::tenant::generate_password();
    fleet
        .superuser(&format!(
            "CREATE ROLE {gateway} LOGIN NOINHERIT PASSWORD '{password}' IN ROLE mcpfleet_gateway"
        ))
        .await;

    // examples/shared-gateway.yaml as a user would adapt it: their database, issuer, host, image.
    let host = ingress_host(&name("gateway"));
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/shared-gateway.yaml"))
            .unwrap();
    let mut docs: Vec<Value> = serde_saphyr::from_multiple(&example).expect("the example parses");
    for doc in &mut docs {
        doc["metadata"]["namespace"] = json!(ns.name());
        match doc["kind"].as_str().unwrap() {
            "ConfigMap" => {
                let mut cfg: ServerConfigFile =
                    serde_saphyr::from_str(doc["data"]["server.yaml"].as_str().unwrap())
                        .expect("the example's server.yaml is a valid server config");
                cfg.public_url = Some(format!("http://{host}/mcp"));
                cfg.allowed_hosts.push(host.clone());
                cfg.database.url = Some(fleet.pg.pod_url(&gateway, "", &fleet.db).replace(":@", "@"));
                cfg.auth.issuer = Some(fleet.issuer_url.clone());
                cfg.auth.ca_file = Some("/etc/mcp-fleet/auth-ca/ca.crt".into());
                doc["data"]["server.yaml"] = json!(serde_saphyr::to_string(&cfg).unwrap());
            }
            "Deployment" => {
                let pod = &mut doc["spec"]["template"]["spec"];
                pod["containers"][0]["image"] = json!(fleet.server_image);
                pod["containers"][0]["volumeMounts"].as_array_mut().unwrap().push(
                    json!({"name": "auth-ca", "mountPath": "/etc/mcp-fleet/auth-ca", "readOnly": true}),
                );
                pod["volumes"].as_array_mut().unwrap().push(
                    json!({"name": "auth-ca", "configMap": {"name": support::fleet::ISSUER_CA_CONFIG_MAP}}),
                );
                doc["spec"]["replicas"] = json!(1);
            }
            "Ingress" => doc["spec"]["rules"][0]["host"] = json!(host),
            _ => {}
        }
    }
    let secret = Secret {
        metadata: kube::api::ObjectMeta { name: Some("mcp-gateway-db".into()), ..Default::default() },
        string_data: Some([("password".to_owned(), password.clone())].into()),
        ..Secret::default()
    };
    ns.api::<Secret>().create(&PostParams::default(), &secret).await.unwrap();
    let manifests =
        docs.iter().map(|d| serde_json::to_string(d).unwrap()).collect::<Vec<_>>().join("\n---\n");
    ns.kubectl_with_stdin(&["apply", "-f", "-"], Some(&manifests)).await;
    let out = ns
        .kubectl_output(
            &["rollout", "status", "deployment/mcp-gateway", &format!("--timeout={READY_TIMEOUT}")],
            None,
        )
        .await;
    assert!(
        out.status.success(),
        "the shared-mode server never became Ready: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let query = json!({"postgresql_query": "SELECT store_id, count(*) AS n FROM retail.orders GROUP BY store_id ORDER BY store_id"});
    for (t, store) in &tenants {
        let token = fleet.token(&format!("http://{host}/mcp"), t, "analyst");
        let reply =
            fleet.first_answer_through_ingress(&host, &token, "execute_sales_query", query.clone()).await;
        let seen: Vec<(i64, i64)> =
            reply.rows().iter().map(|r| (r[0].as_i64().unwrap(), r[1].as_i64().unwrap())).collect();
        assert_eq!(
            seen,
            fleet.orders_per_store(&[store]).await,
            "{t} sees only {store} (id {})",
            store_id(store)
        );
    }
}

#[tokio::test]
async fn a_backup_job_from_the_cronjob_writes_a_backup_that_restores() {
    let fleet = Fleet::shared().await;
    let ns = fleet.namespace("backup").await;
    let t = name("everett");
    let store = "Zava Retail Everett";
    // pg_dump locks each table it dumps, which needs table-level SELECT (README, Backups).
    fleet.superuser("GRANT SELECT ON retail.customers TO mcpfleet_pii").await;
    let creds = Secret {
        metadata: kube::api::ObjectMeta { name: Some("backup-store".into()), ..Default::default() },
        string_data: Some(
            [
                ("AWS_ENDPOINT", fleet.s3_endpoint.as_str()),
                ("AWS_ALLOW_HTTP", "true"),
                ("AWS_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", "S3RVER"),
                ("AWS_SECRET_ACCESS_KEY", "S3RVER"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        ),
        ..Secret::default()
    };
    ns.api::<Secret>().create(&PostParams::default(), &creds).await.unwrap();
    let mut spec = fleet.tenant_spec(&t, &[store]);
    let destination = format!("s3://{BUCKET}/{t}");
    spec["backup"] = json!({"schedule": "0 3 * * *", "destination": destination, "credentialsSecretRef": {"name": "backup-store"}});
    apply_tenant(&ns, &t, spec).await;
    wait_ready(&ns, &t).await;

    let job = format!("{t}-manual");
    ns.kubectl(&["create", "job", &format!("--from=cronjob/{t}-backup"), &job]).await;
    let jobs: Api<Job> = ns.api();
    let finished = eventually(format!("job/{job} to finish"), Duration::from_secs(240), || async {
        let status = jobs.get(&job).await.ok()?.status?;
        let done = |c: &str| status.conditions.iter().flatten().any(|x| x.type_ == c && x.status == "True");
        (done("Complete") || done("Failed")).then(|| done("Complete"))
    })
    .await;
    let logs = ns.kubectl_output(&["logs", &format!("job/{job}")], None).await;
    let logs = format!("{}{}", String::from_utf8_lossy(&logs.stdout), String::from_utf8_lossy(&logs.stderr));
    assert!(
        finished,
        "the backup Job failed:\n{logs}\n{}",
        ns.kubectl(&["describe", &format!("job/{job}")]).await
    );
    assert!(logs.lines().any(|l| l.starts_with("backup: OK")), "{logs}");

    // Restore it on the host into an empty database; the command verifies counts and fingerprints.
    let target = mcp_fleet_testkit::TestDb::empty().await;
    let bin =
        tokio::task::spawn_blocking(|| mcp_fleet_e2e::WorkspaceBin::build("mcp-fleet-server")).await.unwrap();
    let restored = tokio::process::Command::new(bin.path())
        .args(["restore", "--from", &destination, "--into", &target.admin_url()])
        .env("AWS_ENDPOINT", &fleet.s3_endpoint)
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "S3RVER")
        .env("AWS_SECRET_ACCESS_KEY", "S3RVER")
        .output()
        .await
        .expect("run restore");
    let text =
        format!("{}{}", String::from_utf8_lossy(&restored.stdout), String::from_utf8_lossy(&restored.stderr));
    assert!(restored.status.success(), "restore failed:\n{text}");
    let orders: (i64,) =
        sqlx::query_as("SELECT count(*) FROM retail.orders").fetch_one(&target.admin).await.unwrap();
    let truth: i64 = fleet.orders_per_store(&[store]).await.iter().map(|(_, n)| n).sum();
    assert_eq!(orders.0, truth, "the restored backup holds exactly {t}'s orders:\n{text}");
}

/// Day-2 under a client loop of three MCP clients through the ingress: the leader operator pod
/// is deleted while the tenant changes, then a config change, a password rotation and an image
/// change each roll both server pods. The tenant's callers see no failure at any point, every
/// call they saw succeed is in the audit trail (drained pods flush theirs), and the login role the
/// rotation moved away from no longer logs in once the old pods are gone.
#[tokio::test]
async fn the_standby_operator_takes_over_and_no_rollout_fails_a_call() {
    let fleet = Fleet::shared().await;
    let ns = fleet.namespace("takeover").await;
    let Loaded { name: t, mut pods, calls } =
        loaded_tenant(fleet, &ns, "redmond", "Zava Retail Redmond", 3).await;

    let deployments: Api<Deployment> = ns.api();
    let config_hash = |d: Deployment| {
        d.spec
            .and_then(|s| s.template.metadata)
            .and_then(|m| m.annotations)
            .and_then(|mut a| a.remove("mcpfleet.io/config-hash"))
    };
    let hash_before =
        config_hash(deployments.get(&t).await.unwrap()).expect("the pod template's config hash");
    let leader = leader(fleet).await;
    let deleted = Instant::now();
    fleet.kubectl(&["-n", &fleet.operator_namespace, "delete", "pod", &leader, "--wait=false"]).await;
    // Meanwhile the tenant changes: a new log level reaches its ConfigMap once someone leads.
    ns.api::<McpTenant>()
        .patch(&t, &PatchParams::default(), &Patch::Merge(json!({"spec": {"server": {"logLevel": "debug"}}})))
        .await
        .unwrap();
    let successor = eventually("a new leader", Duration::from_secs(60), || async {
        let h = self::leader(fleet).await;
        (!h.is_empty() && h != leader).then_some(h)
    })
    .await;
    let took = deleted.elapsed();
    eprintln!("leader {leader} deleted; {successor} leads after {took:.1?}");
    assert!(
        took < Duration::from_secs(8 + 10),
        "the standby takes over within the lease (8 s) and a margin: {took:?}"
    );
    let cms: Api<ConfigMap> = ns.api();
    eventually("the changed log level in the tenant's ConfigMap", Duration::from_secs(60), || async {
        let cm = cms.get(&format!("{t}-config")).await.ok()?;
        let yaml = cm.data?.remove("server.yaml")?;
        let cfg: ServerConfigFile = serde_saphyr::from_str(&yaml).ok()?;
        (cfg.logging.level.as_deref() == Some("debug")).then_some(())
    })
    .await;
    // And the server pods roll to it.
    eventually("a new pod template", Duration::from_secs(60), || async {
        let hash = config_hash(deployments.get(&t).await.ok()?)?;
        (hash != hash_before).then_some(())
    })
    .await;
    let new_tag = format!("{}-rolled", fleet.server_image);
    fleet.node.tag_image(&fleet.server_image, &new_tag);
    let tenants = ns.api::<McpTenant>();
    let secrets: Api<Secret> = ns.api();
    let login = |s: Secret| {
        s.data.and_then(|mut d| d.remove("username")).map(|u| String::from_utf8_lossy(&u.0).into_owned())
    };
    let old_login = login(secrets.get(&format!("{t}-db-credentials")).await.unwrap()).expect("a username");
    let changes: [(&str, Option<Value>); 4] = [
        ("log level changed while the operator changed hands", None),
        ("config change", Some(json!({"spec": {"database": {"statementTimeoutMs": 6000}}}))),
        (
            "password rotation",
            Some(json!({"metadata": {"annotations": {"mcpfleet.io/rotate-password": "r1"}}})),
        ),
        ("image change", Some(json!({"spec": {"server": {"image": new_tag}}}))),
    ];
    for (what, patch) in changes {
        let before = calls.made();
        let started = Instant::now();
        if let Some(patch) = patch {
            tenants.patch(&t, &PatchParams::default(), &Patch::Merge(&patch)).await.expect(what);
        }
        // Every pod replaced, the new ones Ready, none of the old left.
        let now = eventually(format!("{what}: the pods to roll"), WAIT * 4, || async {
            rolled(&ns, &t, 2).await.filter(|now| now.iter().all(|p| !pods.contains(p)))
        })
        .await;
        eprintln!(
            "{what}: rolled {pods:?} -> {now:?} in {:.1?}, {} calls meanwhile",
            started.elapsed(),
            calls.made() - before
        );
        pods = now;
    }
    let report = calls.stop().await;
    eprintln!("{}", report.line("leader pod deleted, then rollouts (log level, config, password, image)"));
    assert!(report.made >= 100, "the loop ran through the rolls: {report:?}");
    assert_eq!(
        report.failed, 0,
        "no call fails while the operator changes hands or pods roll: {:?}",
        report.reasons
    );
    assert_audited(fleet, &report.ok_ids).await;
    let new_login = login(secrets.get(&format!("{t}-db-credentials")).await.unwrap()).expect("a username");
    assert_eq!(new_login, format!("{old_login}_b"), "the rotation moved the pods to the second login role");
    eventually(format!("{old_login} retired"), Duration::from_secs(60), || async {
        let can_login: bool = sqlx::query_scalar("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1")
            .bind(&old_login)
            .fetch_one(&mut fleet.connect().await)
            .await
            .ok()?;
        (!can_login).then_some(())
    })
    .await;
    let reasons: Vec<String> = fleet
        .kubectl(&["-n", ns.name(), "get", "events", "-o", "jsonpath={.items[*].reason}"])
        .await
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert!(reasons.iter().any(|r| r == "OldLoginRetired"), "{reasons:?}");
    let image = ns.api::<Deployment>().get(&t).await.unwrap().spec.unwrap().template.spec.unwrap().containers
        [0]
    .image
    .clone();
    assert_eq!(image.as_deref(), Some(new_tag.as_str()));
}

/// A network namespace this test creates, joined to the host by a veth pair on a TEST-NET-2
/// address: a stand-in for "anywhere off the bridge" that no packet can really leave the machine
/// for. Removed on drop.
struct Outside {
    netns: String,
    listener: std::process::Child,
}

impl Outside {
    const HOST: &str = "198.51.100.1";
    const FAR: &str = "198.51.100.2";

    fn new() -> Outside {
        let id = format!("{:06x}", rand::random::<u32>() & 0xff_ffff);
        let (netns, host_end) = (format!("mcpf-outside-{id}"), format!("mcpfo{id}"));
        let run = |args: &[&str]| {
            let out = std::process::Command::new("ip").args(args).output().expect("ip");
            assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        run(&["netns", "add", &netns]);
        run(&["link", "add", &host_end, "type", "veth", "peer", "name", "far", "netns", &netns]);
        run(&["addr", "add", &format!("{}/30", Self::HOST), "dev", &host_end]);
        run(&["link", "set", &host_end, "up"]);
        run(&["-n", &netns, "addr", "add", &format!("{}/30", Self::FAR), "dev", "far"]);
        run(&["-n", &netns, "link", "set", "far", "up"]);
        let listener = std::process::Command::new("ip")
            .args(["netns", "exec", &netns, "python3", "-m", "http.server", "--bind", Self::FAR, "8080"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("a listener in the namespace");
        Outside { netns, listener }
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = self.listener.kill();
        let _ = self.listener.wait();
        // Deleting the namespace deletes the veth pair with it.
        let _ = std::process::Command::new("ip").args(["netns", "del", &self.netns]).status();
    }
}

/// Packets the node's guard chain has dropped so far.
fn guard_drops() -> u64 {
    let out = std::process::Command::new("iptables")
        .args(["-w", "-t", "mangle", "-L", "MCPF-GUARD", "-v", "-x", "-n"])
        .output();
    let text = String::from_utf8_lossy(&out.expect("iptables").stdout).into_owned();
    text.lines()
        .filter(|l| l.contains("DROP"))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn pods_reach_nothing_beyond_the_node_bridge_and_image_pulls_fail_at_once() {
    let fleet = Fleet::shared().await;
    let ns = fleet.namespace("egress").await;
    let outside = Outside::new();
    let url = format!("http://{}:8080/", Outside::FAR);
    // The host reaches the namespace: the path exists, and a forwarded packet could take it.
    eventually("the listener in the namespace", Duration::from_secs(30), || async {
        let out = tokio::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", &url])
            .output()
            .await
            .ok()?;
        (String::from_utf8_lossy(&out.stdout) == "200").then_some(())
    })
    .await;
    ns.kubectl(&[
        "run",
        "probe",
        &format!("--image={}", fleet.server_image),
        "--restart=Never",
        "--command",
        "--",
        "sleep",
        "300",
    ])
    .await;
    ns.kubectl(&["wait", "--for=condition=Ready", "pod/probe", "--timeout=90s"]).await;
    let drops_before = guard_drops();
    let far = connect(&ns, "probe", Outside::FAR, 8080).await;
    assert!(far.is_err(), "a pod reached {}", Outside::FAR);
    assert!(guard_drops() > drops_before, "the node's guard chain dropped the pod's packets");
    // Inside the bridge everything works: the pod reaches the API server's Service.
    let api = connect(&ns, "probe", "10.0.0.1", 443).await;
    assert!(api.is_ok(), "{api:?}");
    drop(outside);

    // An image that is not on the node is never fetched from anywhere: the pull fails at once.
    let started = Instant::now();
    ns.kubectl(&["run", "pull", "--image=localhost:5999/not-here:1", "--restart=Never"]).await;
    let pods: Api<Pod> = ns.api();
    let reason = eventually("the pull to fail", Duration::from_secs(60), || async {
        let status = pods.get("pull").await.ok()?.status?;
        let waiting = status.container_statuses?.first()?.state.clone()?.waiting?;
        let reason = waiting.reason.unwrap_or_default();
        (reason == "ErrImagePull" || reason == "ImagePullBackOff")
            .then(|| waiting.message.unwrap_or_default())
    })
    .await;
    assert!(reason.contains("127.0.0.1:9"), "the pull went to the closed loopback port: {reason}");
    eprintln!("an image pull failed after {:.1?}: {reason}", started.elapsed());
}

/// `bash -c script` in `pod` (its first container) under `timeout 4`: its stdout when it
/// succeeded, else what it said on stderr. The server image is Debian's slim base, so bash and its
/// `/dev/tcp` are there.
async fn in_pod(ns: &TestNamespace, pod: &str, script: &str) -> Result<String, String> {
    let out = ns.kubectl_output(&["exec", pod, "--", "timeout", "4", "bash", "-c", script], None).await;
    let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let complaint = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if out.status.success() { Ok(said) } else { Err(format!("exit {:?}: {complaint}", out.status.code())) }
}

/// The first line of a plain HTTP GET of `path` at `host:port`, from inside `pod`.
async fn http_from(ns: &TestNamespace, pod: &str, host: &str, port: u16, path: &str) -> Option<String> {
    let script = format!(
        "exec 3<>/dev/tcp/{host}/{port} && printf 'GET {path} HTTP/1.0\\r\\nHost: {host}\\r\\n\\r\\n' >&3 && head -n1 <&3"
    );
    in_pod(ns, pod, &script).await.ok().filter(|said| said.starts_with("HTTP/"))
}

/// A TCP connection from `pod` to `host:port`: `Ok` once accepted, else how it failed.
async fn connect(ns: &TestNamespace, pod: &str, host: &str, port: u16) -> Result<(), String> {
    in_pod(ns, pod, &format!("exec 3<>/dev/tcp/{host}/{port}")).await.map(drop)
}

/// Whether the policy refused a connection: kube-router rejects what no rule allows, so the
/// caller hears "refused" at once (not a timeout, not a name that did not resolve).
fn refused(attempt: &Result<(), String>) -> bool {
    attempt.as_ref().is_err_and(|e| e.contains("Connection refused"))
}

/// NetworkPolicy enforced for real: kube-router's firewall runs on the node (scripts/node.sh), and
/// the operator's policy around a tenant's server pods decides who gets in and where the server
/// may go, pod to pod, through Services, and from a pod to the node itself.
#[tokio::test]
async fn the_network_policy_lets_in_only_allowed_sources_and_lets_the_server_out_only_to_what_it_needs() {
    let fleet = Fleet::shared().await;
    let ns = fleet.namespace("netpol").await;
    let t = name("fenced");
    // A store of its own: every sample store belongs to another test of this file.
    let store = format!("Zava Retail Fenced {}", &t[t.len() - 6..]);
    fleet
        .superuser(&format!("INSERT INTO retail.stores (store_name, is_online) VALUES ('{store}', false)"))
        .await;
    let mut spec = fleet.tenant_spec(&t, &[store.as_str()]);
    spec["networkPolicy"]["allowedSources"] = json!([
        fleet.ingress_source(),
        {"podSelector": {"matchLabels": {"mcp-client": "allowed"}}},
    ]);
    apply_tenant(&ns, &t, spec).await;
    for (pod, labels) in [("allowed", "mcp-client=allowed"), ("stranger", "mcp-client=other")] {
        let image = format!("--image={}", fleet.server_image);
        let labels = format!("--labels={labels}");
        ns.kubectl(&["run", pod, &image, &labels, "--restart=Never", "--command", "--", "sleep", "600"])
            .await;
    }
    wait_ready(&ns, &t).await;
    for pod in ["allowed", "stranger"] {
        ns.kubectl(&["wait", "--for=condition=Ready", &format!("pod/{pod}"), "--timeout=90s"]).await;
    }
    let server = rolled(&ns, &t, 1).await.expect("one Ready server pod").remove(0);
    let service = format!("{t}.{}.svc.cluster.local", ns.name());
    let port = mcp_fleet_core::server_config::SERVER_PORT;

    // In: a labelled pod reaches the server through its Service name; another pod of the same
    // namespace is refused (the port is open: the allowed pod just got an answer from it).
    let answer = eventually("the allowed pod to reach the server", WAIT, || {
        http_from(&ns, "allowed", &service, port, "/health/ready")
    })
    .await;
    assert!(answer.contains(" 200"), "{answer}");
    eventually("the policy to refuse the stranger", WAIT, || async {
        refused(&connect(&ns, "stranger", &service, port).await).then_some(())
    })
    .await;
    assert!(http_from(&ns, "allowed", &service, port, "/health/ready").await.is_some(), "still allowed");
    // The ingress controller (on the node's network) still serves the tenant's clients.
    let token = fleet.token(&endpoint(&ns, &t).await, &t, "analyst");
    let reply =
        fleet.call_through_ingress(&ingress_host(&t), &token, "get_current_utc_date", json!({})).await;
    assert!(!reply.is_error, "a call through the ingress: {}", reply.text);

    // Out: DNS answers the server (egress to port 53), PostgreSQL on the node accepts it. Ports the
    // policy does not name are closed to the server, though open to a pod no policy selects: a
    // pod's (CoreDNS's health port) and the node's (the kubelet's).
    let resolved = in_pod(&ns, &server, "getent hosts kube-dns.kube-system.svc.cluster.local").await;
    assert!(
        resolved.as_ref().is_ok_and(|r| r.starts_with("10.0.0.10")),
        "the server resolves names: {resolved:?}"
    );
    let node = fleet.node.address();
    let db = connect(&ns, &server, node, fleet.pg.port).await;
    assert!(db.is_ok(), "the server reaches PostgreSQL at {node}: {db:?}");
    let jsonpath = "jsonpath={.items[0].status.podIP}";
    let dns_pod =
        fleet.kubectl(&["-n", "kube-system", "get", "pods", "-l", "k8s-app=kube-dns", "-o", jsonpath]).await;
    for (host, port) in [(dns_pod.as_str(), 8080), (node, 10250)] {
        let open = connect(&ns, "stranger", host, port).await;
        assert!(open.is_ok(), "an unselected pod reaches {host}:{port}: {open:?}");
        let shut = connect(&ns, &server, host, port).await;
        assert!(refused(&shut), "the server is refused {host}:{port}: {shut:?}");
    }
}
