//! Child processes that cannot outlive the test process: each runs under a small `sh` watchdog
//! that waits on a pipe held by this process. When the test process ends for any reason (success,
//! panic, abort, SIGKILL) the kernel closes the pipe, and the watchdog stops the child and removes
//! its scratch directory.

use std::io;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};

/// A process tied to the lifetime of this test process.
pub struct Guarded {
    child: Child,
    // Held, never written: its closing is the signal to stop.
    _lifeline: ChildStdin,
}

impl Guarded {
    /// Starts `argv` as `user` (when running as root and `user` is given), stopping it with
    /// `signal` and deleting `cleanup_dir` when this process exits. Output goes to `log`.
    pub fn spawn(
        argv: &[&str],
        user: Option<&str>,
        signal: &str,
        cleanup_dir: Option<&Path>,
        log: &Path,
    ) -> io::Result<Self> {
        let quoted: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
        let cleanup =
            cleanup_dir.map(|d| format!("rm -rf {}", shell_quote(&d.to_string_lossy()))).unwrap_or_default();
        let script = format!(
            "{cmd} >>{log} 2>&1 </dev/null & pid=$!\n\
             read _ignored\n\
             kill -{signal} $pid 2>/dev/null; wait $pid 2>/dev/null\n\
             {cleanup}\n",
            cmd = quoted.join(" "),
            log = shell_quote(&log.to_string_lossy()),
        );
        let mut command = match user.filter(|_| is_root()) {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--", "sh", "-c", &script]);
                c
            }
            None => {
                let mut c = Command::new("sh");
                c.args(["-c", &script]);
                c
            }
        };
        let mut child = command.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        let lifeline = child.stdin.take().expect("stdin was piped");
        Ok(Self { child, _lifeline: lifeline })
    }

    /// Whether the watchdog (and so the child) is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// Whether this process runs as root (PostgreSQL refuses to run as root).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port on 127.0.0.1")
}

/// Quotes a string for `sh`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}
