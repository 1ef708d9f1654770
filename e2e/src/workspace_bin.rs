//! Binaries of this workspace (the operator, the server) for tests that run them out-of-cluster
//! against the test control plane. Builds with cargo and starts processes.
//!
//! `CARGO_BIN_EXE_<name>` only exists for binaries of the crate under test, so a binary of another
//! crate is built the way `escargot` does it: `cargo build --workspace --tests --bin <name>
//! --message-format=json` once per test process, reading the executable's path from cargo's
//! messages. That is a no-op when `cargo test --workspace` has already built it, honours
//! `CARGO_TARGET_DIR` (inherited) and the test's profile, and never runs a stale binary.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mcp_fleet_testkit::kube::repo_root;
use mcp_fleet_testkit::process::Guarded;
use rand::Rng as _;

/// A binary of this workspace, built and up to date.
#[derive(Clone, Debug)]
pub struct WorkspaceBin {
    name: String,
    path: PathBuf,
}

static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);

impl WorkspaceBin {
    /// Builds (or finds up to date) the binary target `name` of any workspace crate, once per
    /// test process. Blocks while cargo runs; panics with cargo's messages if the build fails.
    pub fn build(name: &str) -> WorkspaceBin {
        let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
        let built = built.get_or_insert_with(HashMap::new);
        let path = match built.get(name) {
            Some(path) => path.clone(),
            None => {
                let path = cargo_build(name);
                built.insert(name.to_owned(), path.clone());
                path
            }
        };
        WorkspaceBin { name: name.to_owned(), path }
    }

    /// The binary target's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The executable.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn cargo_build(name: &str) -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    // `--workspace --tests` resolves features as `cargo test --workspace` does (dev-dependencies add
    // tokio's test-util and rmcp's client features), so the dependencies the test run built are
    // reused rather than rebuilt with another feature set; scripts/images.sh builds the debug
    // images' binaries the same way. Another profile (the operator benchmark's release) builds
    // the binary alone: its test targets would be a second optimised build of the workspace.
    command.args(["build", "--workspace", "--bin", name, "--message-format=json-render-diagnostics"]);
    match test_profile() {
        Some(profile) => command.args(["--profile", &profile]),
        None => command.arg("--tests"),
    };
    let output = command
        .current_dir(repo_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("running cargo to build {name}: {e}"));
    if !output.status.success() {
        panic!("`cargo build --workspace --bin {name}` failed ({}); see its messages above", output.status);
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        // The binary itself, not the unit-test harness of its `main.rs` that --tests builds too.
        .filter(|msg| {
            msg["reason"] == "compiler-artifact"
                && msg["target"]["name"] == name
                && msg["profile"]["test"] == false
        })
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo built no executable named {name}"))
}

/// The cargo profile this test executable was built with, if not `dev`: test executables live in
/// `<target-dir>/<profile dir>/deps/`, where the profile dir is `debug` for `dev`.
fn test_profile() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    let profile = deps.parent()?.file_name()?.to_str()?;
    (profile != "debug").then(|| profile.to_owned())
}

/// A workspace binary running in the background, tied to the test process like the control plane
/// (see `mcp_fleet_testkit::process`): dropping the handle, or the test process dying, sends it
/// SIGTERM. Its stdout and stderr go to a log file, readable with [`BackgroundBin::log`].
pub struct BackgroundBin {
    name: String,
    dir: PathBuf,
    guard: Guarded,
}

impl BackgroundBin {
    pub(crate) fn spawn(bin: &WorkspaceBin, args: &[&str], env: &[(&str, &str)]) -> BackgroundBin {
        let suffix: u64 = rand::rng().random();
        let dir = std::env::temp_dir().join(format!("mcpfleet-bin-{}-{suffix:x}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let pid_file = dir.join("pid");
        let env: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        // `sh` records its pid, then becomes `env`, which becomes the binary: one pid throughout.
        let mut argv =
            vec!["sh", "-c", "echo $$ >\"$0\" && exec \"$@\"", pid_file.to_str().expect("UTF-8 path")];
        argv.push("env");
        argv.extend(env.iter().map(String::as_str));
        argv.push(bin.path().to_str().expect("UTF-8 path"));
        argv.extend_from_slice(args);
        let guard = Guarded::spawn(&argv, None, "TERM", Some(&dir), &dir.join("log"))
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.name()));
        BackgroundBin { name: bin.name().to_owned(), dir, guard }
    }

    /// What it printed so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.pid().is_some_and(is_alive) && self.guard.is_running()
    }

    /// Sends SIGTERM and waits for it to exit (a graceful shutdown), returning its log; panics if
    /// it is still running after `timeout`.
    pub async fn stop(self, timeout: Duration) -> String {
        let Some(pid) = self.pid() else {
            return self.log();
        };
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        let deadline = Instant::now() + timeout;
        while is_alive(pid) {
            if Instant::now() >= deadline {
                panic!(
                    "{} did not stop within {timeout:?} after SIGTERM; its log:\n{}",
                    self.name,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Dropping `self` then lets the watchdog reap it and delete the log directory.
        self.log()
    }

    fn pid(&self) -> Option<u32> {
        // Written by the shell before it execs; wait briefly if asked right after the start.
        for _ in 0..50 {
            if let Some(pid) =
                std::fs::read_to_string(self.dir.join("pid")).ok().and_then(|s| s.trim().parse().ok())
            {
                return Some(pid);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

/// Whether process `pid` exists and has not exited (an exited child not yet reaped is a zombie).
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesised command name: `pid (comm) S ...`.
        Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.trim_start().chars().next()) != Some('Z'),
        Err(_) => false,
    }
}
