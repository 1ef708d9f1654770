//! A node killed with SIGKILL (no chance to clean up) leaves processes, mounts, cgroups, iptables
//! chains, kube-router's ipsets, bridges and changed sysctls behind; `scripts/node.sh cleanup`,
//! which every start runs first, removes all of it. Starts a real node (root), kills it, and
//! inspects the machine.
// test group: node (scripts/test.sh: it holds the machine's one node)

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mcp_fleet_testkit::kube::{k8s_bin_dir, repo_root};

/// The sysctls kubelet, kube-proxy and the bridge plugin change.
const SYSCTLS: &[&str] = &[
    "net/ipv4/ip_forward",
    "vm/overcommit_memory",
    "kernel/panic",
    "kernel/panic_on_oops",
    "net/bridge/bridge-nf-call-iptables",
];

fn sysctls() -> Vec<(String, String)> {
    SYSCTLS
        .iter()
        .map(|k| (k.to_string(), std::fs::read_to_string(format!("/proc/sys/{k}")).unwrap_or_default()))
        .collect()
}

/// What of a node run in `dir` is on the machine, one line per kind, empty when nothing is.
fn traces(dir: &Path) -> Vec<String> {
    let dir = dir.to_str().expect("UTF-8 path");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("reading /proc").flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        for marker in ["/containerd/", "/kubelet/", "/kube-proxy.yaml", "/cp/"] {
            if cmdline.contains(&format!("{dir}{marker}")) {
                found.push(format!("process {}: {}", entry.file_name().to_string_lossy(), cmdline.trim()));
                break;
            }
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("reading /proc/self/mounts");
    found.extend(mounts.lines().filter(|l| l.contains(dir)).map(|l| format!("mount {l}")));
    for tool in ["iptables-save", "ip6tables-save"] {
        let out = Command::new(tool).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
        let chains = out
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(":KUBE-") || l.starts_with(":MCPF-"))
            .count();
        if chains > 0 {
            found.push(format!("{tool}: {chains} chains"));
        }
    }
    // kube-router's ipsets (its iptables chains start with KUBE- too, counted above).
    let sets = Command::new("ipset").args(["list", "-n"]).output();
    let sets = sets.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    let ours = sets.lines().filter(|s| s.starts_with("KUBE-") || s.starts_with("kube-router")).count();
    if ours > 0 {
        found.push(format!("ipset: {ours} sets"));
    }
    for link in ["mcpf0", "mcpf-svc"] {
        if Command::new("ip")
            .args(["link", "show", link])
            .stderr(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            found.push(format!("link {link}"));
        }
    }
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").expect("reading /sys/fs/cgroup").flatten() {
        if hierarchy.path().join("mcp-fleet").exists() {
            found.push(format!("cgroup {}/mcp-fleet", hierarchy.path().display()));
        }
    }
    found
}

/// Waits until no other node runs on this machine (the previous test binary's node stops in the
/// background after its process exits) and clears what a killed one left, so that the sysctls read
/// next are the machine's own.
fn wait_for_no_node(script: &Path) {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        // `cleanup` waits a few seconds for a live node, then refuses; with none it clears leftovers.
        let out =
            Command::new("bash").arg(script).arg("cleanup").output().expect("run scripts/node.sh cleanup");
        if out.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "another node still runs on this machine: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_node_killed_with_sigkill_is_removed_by_the_next_cleanup() {
    let script = repo_root().join("scripts/node.sh");
    wait_for_no_node(&script);
    let before = sysctls();
    let dir = std::env::temp_dir().join(mcp_fleet_testkit::pg::unique_name("mcpfleet-killed-node"));
    std::fs::create_dir_all(&dir).unwrap();
    let bin = k8s_bin_dir().expect("the Kubernetes binaries");
    let log = std::fs::File::create(dir.with_extension("log")).unwrap();
    let mut node = Command::new("bash")
        .arg(&script)
        .arg("run")
        .arg(&dir)
        .env("MCP_FLEET_K8S_BIN", &bin)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start scripts/node.sh");
    let deadline = Instant::now() + Duration::from_secs(420);
    while !dir.join("ready").exists() {
        let exited = node.try_wait().unwrap();
        assert!(
            exited.is_none() && Instant::now() < deadline,
            "the node did not start: {}",
            std::fs::read_to_string(dir.with_extension("log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Pods run (CoreDNS, metrics-server, Traefik): shims, mounts, veths and cgroups exist, and
    // kube-proxy and kube-router have made their chains (kube-router's ipsets come with policies).
    node.kill().unwrap(); // SIGKILL: no trap runs
    node.wait().unwrap();
    let left = traces(&dir);
    assert!(
        ["process", "link mcpf0", "iptables-save"]
            .iter()
            .all(|kind| left.iter().any(|t| t.starts_with(kind))),
        "a killed node leaves its containers' processes, its bridge and its chains: {left:#?}"
    );

    let started = Instant::now();
    let out = Command::new("bash").arg(&script).arg("cleanup").output().unwrap();
    assert!(out.status.success(), "cleanup failed: {}", String::from_utf8_lossy(&out.stderr));
    let left = traces(&dir);
    assert!(left.is_empty(), "cleanup left: {left:#?}");
    assert_eq!(sysctls(), before, "the machine's sysctls are as they were");
    assert!(!Path::new("/run/mcp-fleet-node/runs").exists());
    eprintln!("cleanup after SIGKILL took {:.1?}", started.elapsed());
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_file(dir.with_extension("log"));
}
