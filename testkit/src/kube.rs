//! A real Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager; no kubelet, so
//! pods never run) for the tests of one process. Starts and stops real processes.
//!
//! It is `scripts/control-plane.sh run` in a temporary directory, under the same watchdog as the
//! PostgreSQL cluster ([`crate::process::Guarded`]): when the test process exits for any reason
//! (success, panic, SIGKILL) the script gets SIGTERM, stops the three components in order and the
//! directory is deleted. The binaries come from `scripts/k8s-binaries.sh` (`make k8s-binaries`),
//! built once per pinned version into `~/.cache/mcp-fleet/k8s/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use kube::config::{KubeConfigOptions, Kubeconfig};
use rand::Rng as _;

use crate::process::Guarded;

/// How long the control plane may take to become ready (certificates, etcd, API server, controllers).
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// A running control plane.
pub struct ControlPlane {
    dir: PathBuf,
    kubeconfig: PathBuf,
    bin_dir: PathBuf,
    started_in: Duration,
    guard: Mutex<Guarded>,
}

// A failed start is kept too, so that every test reports it at once instead of trying again.
static PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();
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
            let script = repo_root().join("scripts/k8s-binaries.sh");
            // stderr is inherited: a first build shows its progress.
            let out = Command::new("bash")
                .arg(&script)
                .stderr(std::process::Stdio::inherit())
                .output()
                .map_err(|e| format!("running {}: {e}", script.display()))?;
            let stdout = String::from_utf8_lossy(&out.stdout);
            match stdout.lines().last() {
                Some(dir) if out.status.success() => Ok(PathBuf::from(dir.trim())),
                _ => Err(format!("{} failed ({}): {stdout}", script.display(), out.status)),
            }
        })
        .clone()
}

/// Installs ring as the process-wide rustls crypto provider (idempotent). kube's rustls client
/// needs one; call this before building a client by hand.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl ControlPlane {
    /// The control plane of this test process, started on first use (about 10 s).
    pub fn shared() -> &'static ControlPlane {
        match PLANE.get_or_init(Self::start) {
            Ok(plane) => plane,
            Err(e) => panic!("{e}"),
        }
    }

    fn start() -> Result<Self, String> {
        let t0 = Instant::now();
        let bin_dir = k8s_bin_dir()?;
        let suffix: u64 = rand::rng().random();
        let dir = std::env::temp_dir().join(format!("mcpfleet-k8s-{}-{suffix:x}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let script = repo_root().join("scripts/control-plane.sh");
        let bin_env = format!("MCP_FLEET_K8S_BIN={}", bin_dir.display());
        let argv = [
            "env",
            &bin_env,
            "bash",
            script.to_str().ok_or("non-UTF-8 repository path")?,
            "run",
            dir.to_str().ok_or("non-UTF-8 temporary directory")?,
        ];
        let log = dir.join("control-plane.log");
        let guard = Guarded::spawn(&argv, None, "TERM", Some(&dir), &log)
            .map_err(|e| format!("starting {}: {e}", script.display()))?;
        let mut plane = ControlPlane {
            kubeconfig: dir.join("kubeconfig"),
            dir,
            bin_dir,
            started_in: Duration::ZERO,
            guard: Mutex::new(guard),
        };
        plane.wait_ready(START_TIMEOUT)?;
        plane.started_in = t0.elapsed();
        eprintln!("Kubernetes control plane ready in {:.1?} ({})", plane.started_in, plane.dir.display());
        Ok(plane)
    }

    /// Waits for the `ready` file the script writes once the API server and controllers answer.
    fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let ready = self.dir.join("ready");
        while !ready.exists() {
            if !self.is_running() || Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("control-plane.log")).unwrap_or_default();
                return Err(format!(
                    "the Kubernetes control plane did not become ready within {timeout:?} in {}:\n{log}",
                    self.dir.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
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
