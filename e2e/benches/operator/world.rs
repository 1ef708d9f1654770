//! One benchmark round's world: a namespace with the CRD, a fresh database with the 8 sample stores
//! plus one extra store per tenant, an operator database role and admin Secret, a ServiceAccount
//! identity for the operator, and the release operator binary run as a local process.
//! Talks to the API server and PostgreSQL, starts and stops processes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::ByteString;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::Kubeconfig;
use mcp_fleet_e2e::TestNamespace;
use mcp_fleet_e2e::workspace_bin::is_alive;
use mcp_fleet_testkit::TestDb;
use mcp_fleet_testkit::pg::unique_name;
use mcp_fleet_testkit::process::{Guarded, free_port};
use sqlx::Executor as _;

use crate::probe;

pub const ADMIN_SECRET: &str = "pg-admin";
const OPERATOR_SA: &str = "mcp-fleet-operator";

/// The name of extra store `i` (1-based) that the benchmark adds for tenant `i`.
pub fn bench_store(i: usize) -> String {
    format!("Bench Store {i:05}")
}

/// A fresh migrated database holding the sample stores and `stores` extra ones, inserted as the
/// superuser: a store belongs to at most one tenant, and the seed has only 8.
pub async fn database(stores: usize) -> TestDb {
    TestDb::from_template(&format!("bench-operator-{stores}-stores"), |pool| async move {
        mcp_fleet_testkit::pg::insert_sample_stores(&pool).await;
        let names: Vec<String> = (1..=stores).map(bench_store).collect();
        sqlx::query("INSERT INTO retail.stores (store_name) SELECT unnest($1::text[])")
            .bind(&names)
            .execute(&pool)
            .await
            .expect("insert the benchmark's stores");
    })
    .await
}

/// A login role in `mcpfleet_operator` (never a superuser), as the operator runs in production;
/// returns its URL.
pub async fn operator_role(db: &TestDb) -> String {
    let op = unique_name("op");
    let pw = mcp_fleet_core::tenant::generate_password();
    db.admin
        .execute(sqlx::AssertSqlSafe(format!(
            "CREATE ROLE {op} LOGIN PASSWORD '{pw}' IN ROLE mcpfleet_operator"
        )))
        .await
        .expect("create the operator role");
    db.url_as(&op, &pw)
}

pub async fn install_crd(ns: &TestNamespace) {
    let crd = concat!(env!("CARGO_MANIFEST_DIR"), "/../crds/mcptenants.mcpfleet.io.yaml");
    ns.kubectl(&["apply", "--server-side", "--force-conflicts", "--field-manager=bench-crd", "-f", crd])
        .await;
    // Right after the apply the CRD may have no conditions yet, and `kubectl wait` then fails
    // at once ("accessor error: <nil>") instead of waiting: ask again, for at most 60 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    let args = ["wait", "--for=condition=Established", "crd/mcptenants.mcpfleet.io", "--timeout=10s"];
    while !ns.kubectl_output(&args, None).await.status.success() {
        assert!(Instant::now() < deadline, "the McpTenant CRD is not Established after 60 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

pub async fn admin_secret(ns: &TestNamespace, url: &str) {
    let secret = Secret {
        metadata: ObjectMeta { name: Some(ADMIN_SECRET.into()), ..ObjectMeta::default() },
        data: Some(BTreeMap::from([("url".to_owned(), ByteString(url.as_bytes().to_vec()))])),
        ..Secret::default()
    };
    ns.api::<Secret>()
        .patch(ADMIN_SECRET, &PatchParams::apply("bench").force(), &Patch::Apply(&secret))
        .await
        .expect("apply the admin Secret");
}

/// A kubeconfig for a ServiceAccount of the namespace bound to `cluster-admin`: the operator's
/// requests then carry their own identity, which the API server's flow-control metrics count
/// apart from everyone else's (the benchmark's own client and the controllers).
pub async fn operator_kubeconfig(ns: &TestNamespace, dir: &Path) -> PathBuf {
    let sa = ServiceAccount {
        metadata: ObjectMeta { name: Some(OPERATOR_SA.into()), ..ObjectMeta::default() },
        ..ServiceAccount::default()
    };
    let sas: Api<ServiceAccount> = ns.api();
    sas.create(&PostParams::default(), &sa).await.expect("create the operator's ServiceAccount");
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta { name: Some(format!("bench-operator-{}", ns.name())), ..ObjectMeta::default() },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "cluster-admin".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: OPERATOR_SA.into(),
            namespace: Some(ns.name().to_owned()),
            ..Subject::default()
        }]),
    };
    Api::<ClusterRoleBinding>::all(ns.client())
        .create(&PostParams::default(), &binding)
        .await
        .expect("bind the operator's ServiceAccount");
    let request = TokenRequest {
        spec: Some(TokenRequestSpec { expiration_seconds: Some(4 * 3600), ..TokenRequestSpec::default() }),
        ..TokenRequest::default()
    };
    let token = sas
        .create_token_request(OPERATOR_SA, &PostParams::default(), &request)
        .await
        .expect("a token for the operator's ServiceAccount")
        .status
        .expect("the token")
        .token;
    let admin = Kubeconfig::read_from(ns.kubeconfig()).expect("read the admin kubeconfig");
    let cluster =
        admin.clusters.first().and_then(|c| c.cluster.clone()).expect("a cluster in the kubeconfig");
    let server = cluster.server.expect("the API server's URL");
    let ca = cluster.certificate_authority_data.expect("the cluster CA");
    // JSON is YAML: no YAML writer needed.
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "bench", "cluster": {"server": server, "certificate-authority-data": ca}}],
        "users": [{"name": OPERATOR_SA, "user": {"token": token}}],
        "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": OPERATOR_SA, "namespace": ns.name()}}],
        "current-context": "bench",
    });
    let path = dir.join(format!("{}.kubeconfig", ns.name()));
    std::fs::write(&path, serde_json::to_vec_pretty(&config).expect("JSON")).expect("write the kubeconfig");
    path
}

/// The operator binary running as a local process under the test watchdog (it is stopped when
/// the benchmark exits, however it exits).
pub struct OperatorProcess {
    pub pid: u32,
    pub port: u16,
    pub log: PathBuf,
    guard: Option<Guarded>,
}

/// How the operator is started.
pub struct OperatorArgs<'a> {
    pub namespace: &'a str,
    pub kubeconfig: &'a Path,
    pub resync: Duration,
    pub concurrency: u16,
    pub log: PathBuf,
}

impl OperatorProcess {
    pub async fn start(bin: &Path, a: OperatorArgs<'_>) -> OperatorProcess {
        let port = free_port();
        let pid_dir = std::env::temp_dir().join(format!("mcpfleet-bench-op-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&pid_dir).expect("create the pid directory");
        let pid_file = pid_dir.join("pid");
        let kubeconfig = format!("KUBECONFIG={}", a.kubeconfig.display());
        let listen = format!("127.0.0.1:{port}");
        let resync = format!("{}s", a.resync.as_secs());
        let concurrency = a.concurrency.to_string();
        // `sh` records its pid, then becomes `env`, which becomes the operator: one pid throughout.
        let argv = [
            "sh",
            "-c",
            "echo $$ >\"$0\" && exec \"$@\"",
            pid_file.to_str().expect("UTF-8 path"),
            "env",
            &kubeconfig,
            bin.to_str().expect("UTF-8 path"),
            "--watch-namespace",
            a.namespace,
            "--leader-election",
            "false",
            "--listen",
            &listen,
            "--resync-interval",
            &resync,
            "--concurrency",
            &concurrency,
            "--server-image",
            "mcp-fleet-server:bench",
            "--log-format",
            "json",
        ];
        let guard = Guarded::spawn(&argv, None, "TERM", Some(&pid_dir), &a.log).expect("start the operator");
        let deadline = Instant::now() + Duration::from_secs(30);
        let pid = loop {
            if let Some(pid) = std::fs::read_to_string(&pid_file).ok().and_then(|s| s.trim().parse().ok()) {
                break pid;
            }
            assert!(Instant::now() < deadline, "the operator did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let op = OperatorProcess { pid, port, log: a.log, guard: Some(guard) };
        while probe::http_get(port, "/health/ready").await.is_none() {
            assert!(is_alive(pid), "the operator exited; its log:\n{}", op.log_tail());
            assert!(Instant::now() < deadline, "the operator is not ready after 30 s:\n{}", op.log_tail());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        op
    }

    pub async fn counters(&self) -> probe::OperatorCounters {
        let text = probe::http_get(self.port, "/metrics").await.unwrap_or_default();
        probe::OperatorCounters::parse(&text)
    }

    /// Peak resident set size so far (`VmHWM`), in MiB.
    pub fn peak_rss_mib(&self) -> f64 {
        probe::status_kib(self.pid, "VmHWM").unwrap_or(0) as f64 / 1024.0
    }

    pub fn rss_mib(&self) -> f64 {
        probe::status_kib(self.pid, "VmRSS").unwrap_or(0) as f64 / 1024.0
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM, then waits (at most 30 s) for a graceful exit.
    pub async fn stop(mut self) {
        let _ = std::process::Command::new("kill").args(["-TERM", &self.pid.to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while is_alive(self.pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The watchdog reaps it (and kills it if it is somehow still there).
        drop(self.guard.take());
    }
}
