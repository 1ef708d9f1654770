//! A fresh, uniquely named namespace per test on the shared control plane, in the spirit of
//! Linkerd's `with_temp_ns`: a client, the namespace, the kubeconfig, and `kubectl`/`helm`/workspace
//! binaries preset to both. Creates and deletes the namespace through the API server.

use std::path::Path;
use std::process::{Output, Stdio};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client, Resource};
use mcp_fleet_testkit::kube::ControlPlane;
use rand::Rng as _;

use crate::tools;
use crate::workspace_bin::{BackgroundBin, WorkspaceBin};

/// The label every test namespace carries (value: the prefix given to [`TestNamespace::new`]).
pub const TEST_LABEL: &str = "e2e.mcpfleet.io/test";

/// A namespace that exists for one test. Dropping it deletes the namespace (best effort, without
/// waiting); the whole control plane goes when the test process ends anyway.
pub struct TestNamespace {
    client: Client,
    name: String,
    plane: &'static ControlPlane,
}

impl TestNamespace {
    /// Starts the shared control plane if needed and creates a namespace `<prefix>-<random>`.
    pub async fn new(prefix: &str) -> TestNamespace {
        Self::on(ControlPlane::shared, prefix).await
    }

    /// The same on the control plane with a node, where pods run ([`ControlPlane::with_node`]).
    pub async fn on_node(prefix: &str) -> TestNamespace {
        Self::on(ControlPlane::with_node, prefix).await
    }

    async fn on(start: fn() -> &'static ControlPlane, prefix: &str) -> TestNamespace {
        // Starting takes seconds and blocks: keep the test's runtime free meanwhile.
        let plane = tokio::task::spawn_blocking(start).await.expect("starting the control plane");
        let client = plane.client().await;
        let name = unique_name(prefix);
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some([(TEST_LABEL.to_owned(), label_value(prefix))].into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        TestNamespace { client, name, plane }
    }

    /// A client (admin) made on this test's runtime.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The admin kubeconfig of the control plane.
    pub fn kubeconfig(&self) -> &Path {
        self.plane.kubeconfig_path()
    }

    /// The control plane this namespace lives on.
    pub fn plane(&self) -> &'static ControlPlane {
        self.plane
    }

    /// An API handle for namespaced objects of kind `K` in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client(), &self.name)
    }

    /// `kubectl --namespace <ns> args...`: its stdout, or a panic showing what it printed.
    pub async fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl_with_stdin(args, None).await
    }

    /// `kubectl` with `stdin` fed to it (for `apply -f -`).
    pub async fn kubectl_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> String {
        let output = self.kubectl_output(args, stdin).await;
        tools::expect_success(&self.plane.bin("kubectl"), args, output)
    }

    /// `kubectl`'s whole output, whether it succeeded or not (for tests that expect a refusal).
    pub async fn kubectl_output(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut argv = vec!["--namespace", &self.name];
        argv.extend_from_slice(args);
        let kubeconfig = self.kubeconfig_str();
        tools::run(&self.plane.bin("kubectl"), &argv, &[("KUBECONFIG", kubeconfig)], stdin).await
    }

    /// Waits (at most 60 s) until each CRD has the condition `Established`. `kubectl wait` alone
    /// is not enough: it fails at once, instead of waiting, while a CRD that was just created has
    /// no status conditions yet.
    pub async fn wait_crds_established(&self, names: &[&str]) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        for name in names {
            let crd = format!("crd/{name}");
            let jsonpath = r#"jsonpath={.status.conditions[?(@.type=="Established")].status}"#;
            loop {
                let out = self.kubectl_output(&["get", &crd, "-o", jsonpath], None).await;
                if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "True" {
                    break;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "{crd} not Established after 60 s: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
        }
    }

    /// `helm args...` with this namespace and kubeconfig, and helm's own state kept in the
    /// control plane's run directory: its stdout, or a panic showing what it printed.
    pub async fn helm(&self, args: &[&str]) -> String {
        let helm = self.plane.bin("helm");
        let env = helm_env(self.plane, &self.name);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let output = tools::run(&helm, args, &env, None).await;
        tools::expect_success(&helm, args, output)
    }

    /// Runs a binary of this workspace to completion with `KUBECONFIG` set to this control plane:
    /// its stdout, or a panic showing what it printed.
    pub async fn run_bin(&self, bin: &WorkspaceBin, args: &[&str]) -> String {
        let output = tools::run(bin.path(), args, &[("KUBECONFIG", self.kubeconfig_str())], None).await;
        tools::expect_success(bin.path(), args, output)
    }

    /// Starts a long-running binary of this workspace (an operator) with `KUBECONFIG` set to this
    /// control plane. It stops when the handle is dropped or [`BackgroundBin::stop`]ped, and
    /// when the test process dies.
    pub fn spawn_bin(&self, bin: &WorkspaceBin, args: &[&str]) -> BackgroundBin {
        BackgroundBin::spawn(bin, args, &[("KUBECONFIG", self.kubeconfig_str())])
    }

    fn kubeconfig_str(&self) -> &str {
        self.kubeconfig().to_str().expect("UTF-8 temporary directory")
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        // Synchronous on purpose: Drop cannot await, and the test's runtime may be shutting down.
        let _ = std::process::Command::new(self.plane.bin("kubectl"))
            .args([
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
                "--request-timeout=10s",
            ])
            .env("KUBECONFIG", self.kubeconfig())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The environment of `helm` for `namespace` on `plane`: its kubeconfig, and helm's own state
/// kept in the control plane's run directory (never the user's).
pub fn helm_env(plane: &ControlPlane, namespace: &str) -> Vec<(&'static str, String)> {
    let home = plane.run_dir().join("helm");
    let home = home.to_str().expect("UTF-8 temporary directory");
    vec![
        ("KUBECONFIG", plane.kubeconfig_path().to_str().expect("UTF-8 temporary directory").to_owned()),
        ("HELM_NAMESPACE", namespace.to_owned()),
        ("HELM_CACHE_HOME", format!("{home}/cache")),
        ("HELM_CONFIG_HOME", format!("{home}/config")),
        ("HELM_DATA_HOME", format!("{home}/data")),
    ]
}

/// `<prefix>-<8 hex>`, a valid namespace name (DNS label) whatever the prefix.
fn unique_name(prefix: &str) -> String {
    let suffix: u32 = rand::rng().random();
    format!("{}-{suffix:08x}", label_value(prefix))
}

/// The prefix as a DNS label fragment: lower case, `-` for anything else, at most 40 characters.
fn label_value(prefix: &str) -> String {
    let cleaned: String = prefix
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect();
    let trimmed = cleaned.trim_matches('-');
    let short: String = trimmed.chars().take(40).collect();
    let short = short.trim_end_matches('-');
    if short.is_empty() { "e2e".to_owned() } else { short.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_dns_labels_whatever_the_prefix() {
        for prefix in ["ssa", "Server_Side Apply!", "", "-x-", &"a".repeat(80)] {
            let name = unique_name(prefix);
            assert!(name.len() <= 63, "{name}");
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'), "{name}");
            assert!(name.starts_with(|c: char| c.is_ascii_alphanumeric()), "{name}");
        }
        assert!(unique_name("Server_Side Apply!").starts_with("server-side-apply-"));
        assert_ne!(unique_name("a"), unique_name("a"));
    }
}
