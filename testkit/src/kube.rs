//! A real Kubernetes cluster for the tests of one process. Starts and stops real processes.
//!
//! - [`ControlPlane::shared`]: etcd, kube-apiserver, kube-controller-manager on loopback, no
//!   kubelet, so pods never run (`scripts/control-plane.sh run`). About 10 s to start.
//! - [`ControlPlane::with_node`]: the same control plane plus kube-scheduler, on the node bridge's
//!   address, and a node where pods run: containerd, kubelet, kube-proxy, CoreDNS, metrics-server
//!   and the Traefik ingress controller (`scripts/node.sh run`). Needs root; one per machine.
//!
//! Either runs in a temporary directory under the same watchdog as the PostgreSQL cluster
//! ([`crate::process::Guarded`]): when the test process exits for any reason (success, panic,
//! SIGKILL) the script gets SIGTERM, stops its components in order, tears down what it set up on
//! the machine, and the directory is deleted. The binaries come from `scripts/k8s-binaries.sh`
//! and `scripts/node-binaries.sh`, built once per pinned version into `~/.cache/mcp-fleet/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use rand::Rng as _;

use crate::process::Guarded;

/// How long the control plane may take to become ready (certificates, etcd, API server, controllers).
const START_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the control plane with a node may take: that, plus containerd, importing the images,
/// kubelet, kube-proxy and the add-ons' pods becoming Ready.
const NODE_START_TIMEOUT: Duration = Duration::from_secs(420);

/// A running control plane, with or without a node.
pub struct ControlPlane {
    dir: PathBuf,
    kubeconfig: PathBuf,
    bin_dir: PathBuf,
    started_in: Duration,
    node: Option<Node>,
    guard: Mutex<Guarded>,
}

/// The node of a [`ControlPlane::with_node`]: what `scripts/node.sh` wrote to its `env` file.
#[derive(Clone, Debug)]
pub struct Node {
    env: HashMap<String, String>,
}

impl Node {
    fn var(&self, name: &str) -> &str {
        self.env.get(name).map(String::as_str).unwrap_or_else(|| panic!("the node's env file lacks {name}"))
    }

    /// The node bridge's host address: the node's InternalIP, where the API server listens and
    /// where host services that pods need (PostgreSQL, an issuer, object stores) must listen too.
    pub fn address(&self) -> &str {
        self.var("NODE_ADDRESS")
    }

    /// The pods' address range (CIDR), for `pg_hba.conf` and the like.
    pub fn pod_cidr(&self) -> &str {
        self.var("POD_CIDR")
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        self.var("NODE_NAME")
    }

    /// The loopback port of the ingress controller (Traefik): a client calls
    /// `http://127.0.0.1:<port>/...` with an Ingress's `Host` header.
    pub fn ingress_port(&self) -> u16 {
        self.var("INGRESS_PORT").parse().expect("INGRESS_PORT is a port number")
    }

    /// The loopback port of the ingress controller's read-only API (Traefik's `/api/...`, `/ping`):
    /// which endpoints each Ingress's Service is routed to right now.
    pub fn ingress_admin_port(&self) -> u16 {
        self.var("INGRESS_ADMIN_PORT").parse().expect("INGRESS_ADMIN_PORT is a port number")
    }

    /// The `ingressClassName` the ingress controller serves (also the cluster's default class).
    pub fn ingress_class(&self) -> &str {
        self.var("INGRESS_CLASS")
    }

    /// The images imported into the node's containerd: `(ref, archive, bytes)` per line of the
    /// index `scripts/images.sh` wrote.
    pub fn images(&self) -> Vec<(String, PathBuf, u64)> {
        let index = std::fs::read_to_string(self.var("IMAGES_INDEX")).expect("reading the images index");
        index
            .lines()
            .filter_map(|line| {
                let mut parts = line.split('\t');
                let (r, a, s) = (parts.next()?, parts.next()?, parts.next()?);
                Some((r.to_owned(), PathBuf::from(a), s.trim().parse().unwrap_or(0)))
            })
            .collect()
    }

    /// Tags the node's image `from` as `to` in its containerd too (what pushing another tag of the
    /// same build to a registry is): a Deployment switched to `to` rolls, with nothing to pull.
    pub fn tag_image(&self, from: &str, to: &str) {
        let ctr = Path::new(self.var("NODE_BIN")).join("ctr");
        let out = Command::new(&ctr)
            .args(["--address", self.var("CONTAINERD_ADDRESS"), "-n", "k8s.io", "images", "tag", "--force"])
            .args([from, to])
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", ctr.display()));
        assert!(out.status.success(), "ctr images tag {from} {to}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// The ref of the imported image whose repository's last path segment is `name`
    /// (`mcp-fleet-server`, `mcp-fleet-operator`, `coredns`, ...).
    pub fn image(&self, name: &str) -> String {
        self.images()
            .into_iter()
            .map(|(r, _, _)| r)
            .find(|r| r.rsplit_once(':').map(|(repo, _)| repo).unwrap_or(r).rsplit('/').next() == Some(name))
            .unwrap_or_else(|| panic!("no image named {name} on the node (run scripts/images.sh)"))
    }
}

// A failed start is kept too, so that every test reports it at once instead of trying again.
static PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
static WITH_NODE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
static BIN_DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The root of this repository (the workspace).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("testkit lives inside the workspace").to_path_buf()
}

/// The directory holding etcd, kube-apiserver, kube-controller-manager, kubectl and helm:
/// `$MCP_FLEET_K8S_BIN`, else what `scripts/k8s-binaries.sh` prints (which builds them on first
/// use: many minutes; `make k8s-binaries` does it ahead).
pub fn k8s_bin_dir() -> Result<PathBuf, String> {
    BIN_DIR
        .get_or_init(|| {
            if let Some(dir) = std::env::var_os("MCP_FLEET_K8S_BIN") {
                return Ok(PathBuf::from(dir));
            }
            built_by("scripts/k8s-binaries.sh")
        })
        .clone()
}

/// What an installer script of this repository prints on its last line of stdout (the path of
/// what it built or found cached); its progress, on stderr, is shown as it runs.
pub fn built_by(script: &str) -> Result<PathBuf, String> {
    let script = repo_root().join(script);
    let out = Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("running {}: {e}", script.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    match stdout.lines().last() {
        Some(path) if out.status.success() => Ok(PathBuf::from(path.trim())),
        _ => Err(format!("{} failed ({}): {stdout}", script.display(), out.status)),
    }
}

/// Installs ring as the process-wide rustls crypto provider (idempotent). kube's rustls client
/// needs one; call this before building a client by hand.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl ControlPlane {
    /// The control plane of this test process, started on first use (about 10 s).
    pub fn shared() -> &'static ControlPlane {
        match PLANE.get_or_init(|| Self::start(false)) {
            Ok(plane) => plane,
            Err(e) => panic!("{e}"),
        }
    }

    /// The control plane with a node of this test process, started on first use (about 15 s
    /// when the binaries and images are built; `make images` builds them ahead). Needs root. A
    /// second test process that asks for one waits until the first has stopped its node.
    pub fn with_node() -> &'static ControlPlane {
        match WITH_NODE.get_or_init(|| Self::start(true)) {
            Ok(plane) => plane,
            Err(e) => panic!("{e}"),
        }
    }

    fn start(node: bool) -> Result<Self, String> {
        let t0 = Instant::now();
        let bin_dir = k8s_bin_dir()?;
        let suffix: u64 = rand::rng().random();
        let kind = if node { "node" } else { "k8s" };
        let dir = std::env::temp_dir().join(format!("mcpfleet-{kind}-{}-{suffix:x}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let script = repo_root().join(if node { "scripts/node.sh" } else { "scripts/control-plane.sh" });
        let bin_env = format!("MCP_FLEET_K8S_BIN={}", bin_dir.display());
        let argv = [
            "env",
            &bin_env,
            "bash",
            script.to_str().ok_or("non-UTF-8 repository path")?,
            "run",
            dir.to_str().ok_or("non-UTF-8 temporary directory")?,
        ];
        let log = dir.join(if node { "node.log" } else { "control-plane.log" });
        let guard = Guarded::spawn(&argv, None, "TERM", Some(&dir), &log)
            .map_err(|e| format!("starting {}: {e}", script.display()))?;
        let mut plane = ControlPlane {
            kubeconfig: dir.join("kubeconfig"),
            dir,
            bin_dir,
            started_in: Duration::ZERO,
            node: None,
            guard: Mutex::new(guard),
        };
        plane.wait_ready(if node { NODE_START_TIMEOUT } else { START_TIMEOUT }, &log)?;
        if node {
            let env = std::fs::read_to_string(plane.dir.join("env"))
                .map_err(|e| format!("reading the node's env: {e}"))?;
            let env = env
                .lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            plane.node = Some(Node { env });
        }
        plane.started_in = t0.elapsed();
        let what = if node { "Kubernetes control plane and node" } else { "Kubernetes control plane" };
        eprintln!("{what} ready in {:.1?} ({})", plane.started_in, plane.dir.display());
        Ok(plane)
    }

    /// Waits for the `ready` file the script writes once everything answers.
    fn wait_ready(&self, timeout: Duration, log: &Path) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let ready = self.dir.join("ready");
        while !ready.exists() {
            if !self.is_running() || Instant::now() > deadline {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                return Err(format!(
                    "the Kubernetes cluster did not become ready within {timeout:?} in {}:\n{log}",
                    self.dir.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// The node, for a control plane started by [`ControlPlane::with_node`].
    pub fn node(&self) -> Option<&Node> {
        self.node.as_ref()
    }

    /// Whether the control plane (its supervising script) is still running.
    pub fn is_running(&self) -> bool {
        self.guard.lock().map(|mut g| g.is_running()).unwrap_or(false)
    }

    /// The admin kubeconfig (user in group `system:masters`, certificates embedded).
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// The run directory: `kubeconfig`, `pki/`, `logs/` (one file per component), `pids`.
    pub fn run_dir(&self) -> &Path {
        &self.dir
    }

    /// How long the start took, from the call to `shared()` to ready.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// The path of a pinned binary: `kubectl`, `helm`, `etcd`, `kube-apiserver`, ...
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// A client configuration for the admin user.
    pub async fn config(&self) -> kube::Config {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.kubeconfig.display()));
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap_or_else(|e| panic!("loading {}: {e}", self.kubeconfig.display()))
    }

    /// A new admin client. A client belongs to the tokio runtime it was made on (each
    /// `#[tokio::test]` has its own), so make one per test rather than sharing it.
    pub async fn client(&self) -> kube::Client {
        install_crypto_provider();
        kube::Client::try_from(self.config().await).unwrap_or_else(|e| panic!("building a kube client: {e}"))
    }
}
