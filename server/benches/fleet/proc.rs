//! Server processes for the benchmark (the real `mcp-fleet-server serve` and the bare axum
//! baseline) and their memory. Each runs under a small `sh` watchdog that stops it when this
//! process ends for any reason (its stdin pipe closes), so no server outlives a crashed run.
//! Reads `/proc/<pid>/status` for RSS. Does process and file I/O.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// A server process listening on 127.0.0.1.
pub struct ServerProcess {
    pub name: &'static str,
    pub pid: u32,
    pub addr: SocketAddr,
    pub log: PathBuf,
    watchdog: Child,
    lifeline: Option<ChildStdin>,
}

impl ServerProcess {
    /// Starts `program args` with `envs`, output to `log`, and waits (at most `timeout`) until the
    /// log shows `ready_prefix` followed by `http://ADDR/mcp`.
    pub fn spawn(
        name: &'static str,
        program: &Path,
        args: &[String],
        envs: &[(&str, String)],
        log: &Path,
        ready_prefix: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        // `$!` is the server; the watchdog prints it, then waits for its stdin to close.
        let script = r#""$@" >"$BENCH_LOG" 2>&1 </dev/null & echo $!; read _; kill -TERM $! 2>/dev/null; wait $! 2>/dev/null"#;
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script).arg("sh").arg(program).args(args).env("BENCH_LOG", log);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut watchdog = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        let lifeline = watchdog.stdin.take();
        let stdout = watchdog.stdout.take().context("piped stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let pid: u32 =
            line.trim().parse().with_context(|| format!("the watchdog printed {line:?}, not a pid"))?;
        let mut process = Self {
            name,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log: log.to_owned(),
            watchdog,
            lifeline,
        };
        let deadline = Instant::now() + timeout;
        loop {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if let Some(rest) = text.lines().find_map(|l| l.split_once(ready_prefix).map(|(_, r)| r)) {
                let host = rest.trim().trim_start_matches("http://").trim_end_matches("/mcp");
                process.addr = host.parse().with_context(|| format!("{name} printed address {host:?}"))?;
                return Ok(process);
            }
            if !Path::new(&format!("/proc/{pid}")).exists() {
                bail!("{name} exited during start-up:\n{text}");
            }
            if Instant::now() > deadline {
                bail!("{name} did not start within {timeout:?}:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn memory(&self) -> anyhow::Result<Memory> {
        Memory::of(self.pid)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        drop(self.lifeline.take());
        for _ in 0..100 {
            if matches!(self.watchdog.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.watchdog.kill();
        let _ = self.watchdog.wait();
    }
}

/// Resident memory of a process, in KiB, from `/proc/<pid>/status`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Memory {
    /// VmRSS: what the 30 MB target is about.
    pub rss: u64,
    /// RssAnon: heap and stacks.
    pub anon: u64,
    /// RssFile: mapped files (the binary; the model's safetensors when it is memory-mapped).
    pub file: u64,
    /// VmHWM: the highest RSS since the process started.
    pub hwm: u64,
}

impl Memory {
    pub fn of(pid: u32) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("process {pid} is gone"))?;
        let field = |name: &str| -> u64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0)
        };
        Ok(Self {
            rss: field("VmRSS:"),
            anon: field("RssAnon:"),
            file: field("RssFile:"),
            hwm: field("VmHWM:"),
        })
    }
}

/// Samples the RSS of some processes every 25 ms in the background and keeps the peak per
/// process since the last [`RssSampler::take_peaks`].
pub struct RssSampler {
    peaks: Arc<Vec<AtomicU64>>,
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// The sampler gives up after this long, whatever happens.
const SAMPLER_LIFETIME: Duration = Duration::from_secs(3600);

impl RssSampler {
    pub fn start(pids: Vec<u32>) -> Self {
        let peaks: Arc<Vec<AtomicU64>> = Arc::new(pids.iter().map(|_| AtomicU64::new(0)).collect());
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peaks.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(25));
            let max_ticks = SAMPLER_LIFETIME.as_millis() / 25;
            for _ in 0..max_ticks {
                tick.tick().await;
                if s.load(Ordering::Relaxed) {
                    break;
                }
                for (i, pid) in pids.iter().enumerate() {
                    if let Ok(m) = Memory::of(*pid) {
                        p[i].fetch_max(m.rss, Ordering::Relaxed);
                    }
                }
            }
        });
        Self { peaks, stop, task: Some(task) }
    }

    /// The peak RSS (KiB) of each process since the previous call, in the order given to `start`.
    pub fn take_peaks(&self) -> Vec<u64> {
        self.peaks.iter().map(|p| p.swap(0, Ordering::Relaxed)).collect()
    }

    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}
