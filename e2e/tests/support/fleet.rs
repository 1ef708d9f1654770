//! The fleet on the test ground's node, shared by the tests of one process: the control plane with
//! a node (`ControlPlane::with_node`), PostgreSQL listening for pods, a seeded database, a local
//! HTTPS OIDC issuer that pods trust through a ConfigMap, an S3 emulator for backups, and the
//! operator installed from the chart with the images built here. Starts real processes and talks
//! to the API server, PostgreSQL and pods.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ObjectMeta, PostParams};
use mcp_fleet_e2e::{ControlPlane, TestNamespace, WorkspaceBin, tools};
use mcp_fleet_testkit::kube::Node;
use mcp_fleet_testkit::pg::{PgCluster, PodNetwork, SAMPLE_STORES, create_operator_login, unique_name};
use mcp_fleet_testkit::process::{Guarded, free_port};
use mcp_fleet_testkit::{TestDb, python};
use serde_json::Value;
use sqlx::Executor as _;

/// The ConfigMap (key `ca.crt`) that tenants' `spec.auth.issuerCaRef` names.
pub const ISSUER_CA_CONFIG_MAP: &str = "issuer-ca";
/// The chart's release name.
pub const RELEASE: &str = "mcp-fleet";
/// The operator's Deployment, ServiceAccount and Lease, as the chart names them for [`RELEASE`].
pub const OPERATOR: &str = "mcp-fleet-operator";
/// The bucket of the S3 emulator.
pub const BUCKET: &str = "backups";

pub struct Fleet {
    pub plane: &'static ControlPlane,
    pub node: Node,
    pub pg: &'static PgCluster,
    /// The seeded database every tenant lives in.
    pub db: String,
    /// The namespace the chart installed the operator into.
    pub operator_namespace: String,
    pub server_image: String,
    pub issuer_url: String,
    issuer_dir: PathBuf,
    pub issuer_ca: String,
    /// The S3 emulator's URL as pods reach it (on the node bridge's host address).
    pub s3_endpoint: String,
    /// How long the start of the control plane and node took.
    pub node_started_in: Duration,
    _guards: Vec<Guarded>,
}

static FLEET: OnceLock<Fleet> = OnceLock::new();

impl Fleet {
    /// The fleet of this test process, set up on first use (a minute or two: node, database,
    /// seed, chart install).
    pub async fn shared() -> &'static Fleet {
        tokio::task::spawn_blocking(|| FLEET.get_or_init(Fleet::start)).await.expect("setting up the fleet")
    }

    fn start() -> Fleet {
        let t0 = Instant::now();
        let plane = ControlPlane::with_node();
        let node = plane.node().expect("a control plane with a node").clone();
        let node_started_in = plane.started_in();
        let pg = PgCluster::shared_for_pods(&PodNetwork {
            host_address: node.address(),
            pod_cidr: node.pod_cidr(),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let fleet = runtime.block_on(async {
            let db = seeded_database().await;
            let (issuer_url, issuer_dir, issuer_ca, issuer_guard) = start_issuer(node.address()).await;
            let (s3_endpoint, s3_guard) = start_s3(node.address()).await;
            let server_image = node.image("mcp-fleet-server");
            let mut fleet = Fleet {
                plane,
                node,
                pg,
                db,
                operator_namespace: String::new(),
                server_image,
                issuer_url,
                issuer_dir,
                issuer_ca,
                s3_endpoint,
                node_started_in,
                _guards: vec![issuer_guard, s3_guard],
            };
            fleet.operator_namespace = fleet.install_operator().await;
            fleet
        });
        runtime.shutdown_background();
        eprintln!("fleet ready in {:.1?} (node {:.1?})", t0.elapsed(), fleet.node_started_in);
        fleet
    }

    /// `helm install` of the chart as a user would, with the locally built images, the operator's
    /// database URL in a Secret, and a short lease so that a standby takes over quickly.
    async fn install_operator(&self) -> String {
        let ns = format!("mcp-system-{:08x}", rand::random::<u32>());
        self.kubectl(&["create", "namespace", &ns]).await;
        let (role, password) = create_operator_login(&mut self.connect().await).await;
        let url = self.pg.pod_url(&role, &password, &self.db);
        self.kubectl(&[
            "-n",
            &ns,
            "create",
            "secret",
            "generic",
            "pg-admin",
            &format!("--from-literal=url={url}"),
        ])
        .await;
        let operator_image = self.node.image("mcp-fleet-operator");
        let (repository, tag) = operator_image.rsplit_once(':').expect("a tagged image ref");
        let chart = concat!(env!("CARGO_MANIFEST_DIR"), "/../charts/mcp-fleet");
        self.helm(
            &ns,
            &[
                "install",
                RELEASE,
                chart,
                "--set",
                &format!("image.repository={repository}"),
                "--set",
                &format!("image.tag={tag}"),
                "--set",
                "image.pullPolicy=Never",
                "--set",
                &format!("serverImage={}", self.server_image),
                "--set",
                "database.existingSecret=pg-admin",
                "--set",
                "leaderElection.leaseDuration=8s",
                "--set",
                "logging.format=text",
                "--wait",
                "--timeout",
                "180s",
            ],
        )
        .await;
        ns
    }

    /// `kubectl args...` against the node's cluster: its stdout, or a panic with what it printed.
    pub async fn kubectl(&self, args: &[&str]) -> String {
        let output = self.kubectl_output(args, None).await;
        tools::expect_success(&self.plane.bin("kubectl"), args, output)
    }

    /// `kubectl`'s whole output, whether it succeeded or not.
    pub async fn kubectl_output(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
        let kubeconfig = self.plane.kubeconfig_path().to_str().expect("UTF-8 path");
        tools::run(&self.plane.bin("kubectl"), args, &[("KUBECONFIG", kubeconfig)], stdin).await
    }

    /// `helm args...` in `namespace`.
    pub async fn helm(&self, namespace: &str, args: &[&str]) -> String {
        let helm = self.plane.bin("helm");
        let env = mcp_fleet_e2e::namespace::helm_env(self.plane, namespace);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let output = tools::run(&helm, args, &env, None).await;
        tools::expect_success(&helm, args, output)
    }

    /// Runs SQL as the superuser in the fleet's database.
    pub async fn superuser(&self, sql: &str) {
        let mut conn = self.connect().await;
        conn.execute(sqlx::AssertSqlSafe(sql)).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// A superuser connection to the fleet's database, over loopback.
    pub async fn connect(&self) -> sqlx::PgConnection {
        use sqlx::Connection as _;
        sqlx::PgConnection::connect_with(&self.pg.admin_options(&self.db))
            .await
            .expect("connect as superuser")
    }

    /// A namespace for one test's tenants, holding the issuer's CA in [`ISSUER_CA_CONFIG_MAP`].
    pub async fn namespace(&self, prefix: &str) -> TestNamespace {
        let ns = TestNamespace::on_node(prefix).await;
        let cm = ConfigMap {
            metadata: ObjectMeta { name: Some(ISSUER_CA_CONFIG_MAP.into()), ..ObjectMeta::default() },
            data: Some([("ca.crt".to_owned(), self.issuer_ca.clone())].into()),
            ..ConfigMap::default()
        };
        ns.api::<ConfigMap>()
            .create(&PostParams::default(), &cm)
            .await
            .expect("create the issuer CA ConfigMap");
        ns
    }

    /// The spec of a tenant with one server replica, tokens from the fleet's issuer, and an
    /// Ingress at `<name>.mcp.test`. Its NetworkPolicy admits the ingress controller, which runs
    /// on the node's network and so reaches pods from the node bridge's address: a host-network
    /// pod has no pod identity a `podSelector` could match.
    pub fn tenant_spec(&self, name: &str, stores: &[&str]) -> Value {
        serde_json::json!({
            "tenant": name,
            "stores": stores,
            "deletionPolicy": "Delete",
            "server": {"replicas": 1, "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}}},
            "auth": {"issuer": self.issuer_url, "issuerCaRef": {"name": ISSUER_CA_CONFIG_MAP}},
            "ingress": {"enabled": true, "host": ingress_host(name)},
            "networkPolicy": {"allowedSources": [self.ingress_source()]},
        })
    }

    /// The NetworkPolicy peer of the ingress controller: the node bridge's address.
    pub fn ingress_source(&self) -> Value {
        serde_json::json!({"ipBlock": {"cidr": format!("{}/32", self.node.address())}})
    }

    /// A token from the fleet's issuer for `audience` (a tenant's endpoint), naming `tenant`.
    pub fn token(&self, audience: &str, tenant: &str, roles: &str) -> String {
        let dir = self.issuer_dir.to_str().expect("UTF-8 path");
        let args: Vec<String> = ["token", "--dir", dir, "--issuer", &self.issuer_url, "--aud", audience]
            .into_iter()
            .chain(["--tenant", tenant, "--roles", roles, "--subject", "e2e-user", "--hours", "1"])
            .map(str::to_owned)
            .collect();
        let (ok, out) = python::run_script("demo_issuer.py", &args);
        assert!(ok, "issuing a token: {out}");
        out.trim().to_owned()
    }

    /// Calls `tool` through the ingress with the official MCP Python SDK, as a client on this
    /// machine does: `http://127.0.0.1:<ingress port>/mcp` with the tenant's Host header.
    pub async fn call_through_ingress(&self, host: &str, token: &str, tool: &str, args: Value) -> McpReply {
        self.try_call_through_ingress(host, token, tool, args).await.unwrap_or_else(|e| {
            panic!("the MCP client could not call {tool} at {host} through the ingress:\n{e}")
        })
    }

    /// [`Self::call_through_ingress`], or what the client reported when it could not reach the
    /// server or was refused (an ingress that has no route for `host` yet answers 404).
    pub async fn try_call_through_ingress(
        &self,
        host: &str,
        token: &str,
        tool: &str,
        args: Value,
    ) -> Result<McpReply, String> {
        let url = format!("http://127.0.0.1:{}/mcp", self.node.ingress_port());
        let argv: Vec<String> = ["--url", &url, "--host", host, "--token", token, "--tool", tool]
            .into_iter()
            .map(str::to_owned)
            .chain(["--args".to_owned(), args.to_string()])
            .collect();
        let (ok, out) = tokio::task::spawn_blocking(move || python::run_script("mcp_call.py", &argv))
            .await
            .expect("running the MCP client");
        if !ok {
            return Err(out);
        }
        let line = out.lines().last().unwrap_or_default();
        Ok(serde_json::from_str(line).unwrap_or_else(|e| panic!("the MCP client printed {out:?}: {e}")))
    }

    /// Waits (60 s at most) until `tool` answers through the ingress without an error: the
    /// ingress routes to a new tenant once it has seen its Ingress and endpoints, and until then
    /// the client is refused. Panics with the last refusal.
    pub async fn first_answer_through_ingress(
        &self,
        host: &str,
        token: &str,
        tool: &str,
        args: Value,
    ) -> McpReply {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let last = match self.try_call_through_ingress(host, token, tool, args.clone()).await {
                Ok(r) if !r.is_error => return r,
                Ok(r) => r.text,
                Err(e) => e,
            };
            assert!(
                Instant::now() < deadline,
                "{host} still does not answer {tool} through the ingress after 60 s:\n{last}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Orders per store id, as the superuser sees them (the ground truth), for `stores`.
    pub async fn orders_per_store(&self, stores: &[&str]) -> Vec<(i64, i64)> {
        let ids: Vec<i32> = stores.iter().map(|s| store_id(s)).collect();
        let mut conn = self.connect().await;
        sqlx::query_as::<_, (i32, i64)>(
            "SELECT store_id, count(*) FROM retail.orders WHERE store_id = ANY($1) GROUP BY 1 ORDER BY 1",
        )
        .bind(&ids)
        .fetch_all(&mut conn)
        .await
        .expect("ground truth")
        .into_iter()
        .map(|(s, n)| (i64::from(s), n))
        .collect()
    }
}

/// What `mcp_call.py` printed.
#[derive(Debug, serde::Deserialize)]
pub struct McpReply {
    pub tools: Vec<String>,
    pub is_error: bool,
    pub text: String,
}

impl McpReply {
    /// The compact result's rows (`{"c": [...], "r": [[...]], "n": ...}`), or a panic with the text.
    pub fn rows(&self) -> Vec<Vec<Value>> {
        assert!(!self.is_error, "the tool failed: {}", self.text);
        let v: Value = serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{}: {e}", self.text));
        serde_json::from_value(v["r"].clone()).unwrap_or_else(|e| panic!("{}: {e}", self.text))
    }
}

/// The host of a tenant's Ingress.
pub fn ingress_host(name: &str) -> String {
    format!("{name}.mcp.test")
}

/// A store's id in the seeded database (the seed inserts the sample stores in this order).
pub fn store_id(name: &str) -> i32 {
    SAMPLE_STORES
        .iter()
        .position(|s| *s == name)
        .map(|i| i as i32 + 1)
        .unwrap_or_else(|| panic!("no store {name}"))
}

/// A migrated database with a small seed (a few thousand orders): enough for per-store truths.
async fn seeded_database() -> String {
    let db = TestDb::migrated().await;
    let url = db.admin_url();
    let name = db.name.clone();
    let out = tokio::task::spawn_blocking(move || {
        let bin = WorkspaceBin::build("mcp-fleet-server");
        std::process::Command::new(bin.path())
            .args(["seed", "--customers", "2000", "--orders", "8000"])
            .env("DATABASE_URL", &url)
            .output()
            .expect("run mcp-fleet-server seed")
    })
    .await
    .expect("the seed's thread");
    assert!(out.status.success(), "seed failed: {}", String::from_utf8_lossy(&out.stderr));
    name
}

/// The demo issuer over HTTPS on the node bridge's host address, with a CA of its own.
async fn start_issuer(address: &str) -> (String, PathBuf, String, Guarded) {
    let dir = std::env::temp_dir().join(unique_name("mcpfleet-issuer-"));
    std::fs::create_dir_all(&dir).expect("issuer dir");
    let port = free_port();
    let script = python::repo_root().join("e2e/python/demo_issuer.py");
    let port_s = port.to_string();
    let argv = [
        python::python().to_str().expect("UTF-8 path"),
        script.to_str().expect("UTF-8 path"),
        "serve",
        "--dir",
        dir.to_str().expect("UTF-8 path"),
        "--port",
        &port_s,
        "--host",
        address,
        "--tls",
    ];
    let log = dir.join("issuer.log");
    let guard = Guarded::spawn(&argv, None, "TERM", Some(&dir), &log).expect("start the issuer");
    let url = format!("https://{address}:{port}");
    wait_for_port(address, port, &log).await;
    let ca = std::fs::read_to_string(dir.join("ca.crt")).expect("the issuer wrote its CA");
    (url, dir, ca, guard)
}

/// s3rver on the node bridge's host address.
async fn start_s3(address: &str) -> (String, Guarded) {
    let port = free_port();
    let script = python::repo_root().join("scripts/s3rver.sh");
    let dir = std::env::temp_dir().join(unique_name("mcpfleet-s3rver-"));
    std::fs::create_dir_all(&dir).expect("s3rver log dir");
    let log = dir.join("s3rver.log");
    let port_s = port.to_string();
    let env = format!("S3RVER_ADDRESS={address}");
    let argv = ["env", &env, "bash", script.to_str().expect("UTF-8 path"), "run", &port_s, BUCKET];
    let guard = Guarded::spawn(&argv, None, "TERM", Some(&dir), &log).expect("start s3rver");
    wait_for_port(address, port, &log).await;
    (format!("http://{address}:{port}"), guard)
}

async fn wait_for_port(address: &str, port: u16, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while tokio::net::TcpStream::connect((address, port)).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing listens on {address}:{port} after 120 s: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
