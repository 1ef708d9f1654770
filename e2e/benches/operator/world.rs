//! One benchmark round's world: a fresh database with the 8 sample stores plus one extra store per
//! tenant, a ServiceAccount identity for the operator, and the release operator binary run as a
//! local process. The CRD, the operator's database role and the admin Secret come from
//! `mcp_fleet_e2e::operator_world`, as in the tests.
//! Talks to the API server and PostgreSQL, starts and stops processes.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleRef, Subject};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use kube::config::Kubeconfig;
use mcp_fleet_e2e::TestNamespace;
use mcp_fleet_e2e::workspace_bin::is_alive;
use mcp_fleet_testkit::TestDb;
use mcp_fleet_testkit::process::{Guarded, free_port};

use crate::probe;

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

/// The server image the benchmark's operator puts in Deployments (no pod ever runs it).
pub const SERVER_IMAGE: &str = "mcp-fleet-server:bench";

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
            SERVER_IMAGE,
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
