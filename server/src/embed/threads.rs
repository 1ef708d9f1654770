//! How many threads the local embedding model computes with: the CPUs the server's cgroup quota
//! allows (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`), never more than
//! the CPUs it may run on. Parsing is pure; [`embedding_threads`] reads `/proc` and `/sys`, and
//! [`settle_for_candle`] restarts the process once with the count in its environment.
//!
//! Why the environment: candle 0.11 asks for its thread count on every matrix product, and
//! without `RAYON_NUM_THREADS` it works it out again each time by reading `/proc/cpuinfo`
//! (48 reads per embedded query). The workspace forbids `unsafe`, and `std::env::set_var` is
//! unsafe since Rust 2024, so the process cannot set the variable for itself: it replaces itself
//! (same PID, same arguments) with a copy that has it, before any thread starts.

use std::path::{Path, PathBuf};

/// Environment variables that fix candle's thread count once and for all: `RAYON_NUM_THREADS`
/// (the one candle 0.11 reads per matrix product) and `CANDLE_CPU_MASK` (CPUs to use, read once).
/// When either is set, whoever runs the server chose: it is left alone. `CANDLE_NUM_THREADS`
/// alone only sizes candle's barrier pool; when set, it is the count passed on.
pub const THREAD_SETTINGS: [&str; 2] = ["RAYON_NUM_THREADS", "CANDLE_CPU_MASK"];

/// The whole CPUs a quota of `quota` per `period` allows (at least 1), as the scheduler
/// enforces it: 1.5 CPUs give 1 thread, which never waits on throttling.
fn whole_cpus(quota: u64, period: u64) -> Option<usize> {
    (quota > 0 && period > 0).then(|| usize::try_from(quota / period).unwrap_or(usize::MAX).max(1))
}

/// cgroup v2 `cpu.max`: `"max 100000"` (no quota) or `"150000 100000"` (quota, period).
pub fn cpus_of_cpu_max(text: &str) -> Option<usize> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?.parse().ok()?;
    let period = fields.next().map_or(Some(100_000), |p| p.parse().ok())?;
    whole_cpus(quota, period)
}

/// cgroup v1 `cpu.cfs_quota_us` (`-1`: no quota) and `cpu.cfs_period_us`.
pub fn cpus_of_cfs(quota: &str, period: &str) -> Option<usize> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period = period.trim().parse().ok()?;
    whole_cpus(u64::try_from(quota).ok()?, period)
}

/// The smallest quota on the way from the process's cgroup up to the root, for the hierarchies
/// `proc_self_cgroup` (the text of `/proc/self/cgroup`) names; `read` reads a file under
/// `/sys/fs/cgroup`. A container usually sees its own cgroup as the root of its mount, so the
/// mount root itself is read too.
pub fn quota_cpus(proc_self_cgroup: &str, read: impl Fn(&Path) -> Option<String>) -> Option<usize> {
    let root = Path::new("/sys/fs/cgroup");
    let mut found: Vec<usize> = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let relative = path.trim_start_matches('/');
        if controllers.is_empty() {
            // cgroup v2 (the unified hierarchy), mounted at the root or under `unified`.
            for mount in [root.to_path_buf(), root.join("unified")] {
                for dir in ancestors(&mount, relative) {
                    found.extend(read(&dir.join("cpu.max")).as_deref().and_then(cpus_of_cpu_max));
                }
            }
        } else if controllers.split(',').any(|c| c == "cpu") {
            // cgroup v1: mounted as `cpu,cpuacct` (or its `cpu` link), or under the controllers' names.
            for mount in [root.join(controllers), root.join("cpu")] {
                for dir in ancestors(&mount, relative) {
                    let quota = read(&dir.join("cpu.cfs_quota_us"));
                    let period = read(&dir.join("cpu.cfs_period_us"));
                    if let (Some(q), Some(p)) = (quota, period) {
                        found.extend(cpus_of_cfs(&q, &p));
                    }
                }
            }
        }
    }
    found.into_iter().min()
}

/// `mount/relative` and each of its parents up to `mount`.
fn ancestors(mount: &Path, relative: &str) -> Vec<PathBuf> {
    let mut dirs = vec![mount.to_path_buf()];
    let mut dir = mount.to_path_buf();
    for part in relative.split('/').filter(|p| !p.is_empty()) {
        dir.push(part);
        dirs.push(dir.clone());
    }
    dirs
}

/// The threads the embedding model should use: the cgroup quota's whole CPUs, capped by the
/// CPUs this process may run on (its affinity mask, as the standard library sees it).
pub fn embedding_threads() -> usize {
    let available = std::thread::available_parallelism().map_or(1, usize::from);
    let quota = std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|text| quota_cpus(&text, |p| std::fs::read_to_string(p).ok()));
    quota.map_or(available, |q| q.min(available))
}

/// Gives candle a fixed thread count before it first asks: when no [`THREAD_SETTINGS`] variable
/// is set, replaces this process (same PID, arguments and environment) with one that has
/// `RAYON_NUM_THREADS` and `CANDLE_NUM_THREADS` set to `CANDLE_NUM_THREADS` when that is a
/// number, else to [`embedding_threads`]. Call it first in
/// `main`, before any thread starts. Returns only when nothing needed doing, or when the restart
/// failed (then embeddings are slower, and it says so on stderr).
#[cfg(unix)]
pub fn settle_for_candle() {
    use std::os::unix::process::CommandExt as _;

    if THREAD_SETTINGS.iter().any(|v| std::env::var_os(v).is_some()) {
        return;
    }
    let chosen = std::env::var("CANDLE_NUM_THREADS").ok().and_then(|n| n.trim().parse::<usize>().ok());
    let threads = chosen.filter(|n| *n > 0).unwrap_or_else(embedding_threads).to_string();
    let mut args = std::env::args_os();
    let Some(arg0) = args.next() else { return };
    let error = match std::env::current_exe() {
        Ok(exe) => std::process::Command::new(exe)
            .arg0(arg0)
            .args(args)
            .env("RAYON_NUM_THREADS", &threads)
            .env("CANDLE_NUM_THREADS", &threads)
            .exec(),
        Err(e) => e,
    };
    eprintln!(
        "mcp-fleet-server: could not restart itself with RAYON_NUM_THREADS={threads} ({error}); \
         the local embedding model will be slower unless RAYON_NUM_THREADS is set"
    );
}

/// Elsewhere the count cannot be set before start-up; candle works it out itself.
#[cfg(not(unix))]
pub fn settle_for_candle() {}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn cgroup_v2_cpu_max_gives_whole_cpus_and_max_means_no_quota() {
        assert_eq!(cpus_of_cpu_max("max 100000\n"), None);
        assert_eq!(cpus_of_cpu_max("200000 100000\n"), Some(2));
        assert_eq!(cpus_of_cpu_max("150000 100000"), Some(1), "1.5 CPUs: one thread is never throttled");
        assert_eq!(cpus_of_cpu_max("50000 100000"), Some(1), "less than a CPU still computes on one");
        assert_eq!(cpus_of_cpu_max("400000"), Some(4), "the period defaults to 100 ms");
        assert_eq!(cpus_of_cpu_max(""), None);
        assert_eq!(cpus_of_cpu_max("200000 0"), None);
    }

    #[test]
    fn cgroup_v1_cfs_quota_gives_whole_cpus_and_minus_one_means_no_quota() {
        assert_eq!(cpus_of_cfs("-1\n", "100000\n"), None);
        assert_eq!(cpus_of_cfs("300000\n", "100000\n"), Some(3));
        assert_eq!(cpus_of_cfs("25000", "50000"), Some(1));
        assert_eq!(cpus_of_cfs("garbage", "100000"), None);
    }

    fn files(entries: &[(&str, &str)]) -> impl Fn(&Path) -> Option<String> {
        let map: HashMap<PathBuf, String> =
            entries.iter().map(|(p, t)| (PathBuf::from(p), (*t).to_owned())).collect();
        move |p| map.get(p).cloned()
    }

    #[test]
    fn the_smallest_quota_between_the_process_cgroup_and_the_root_wins() {
        // A Kubernetes pod on cgroup v2 without a cgroup namespace: the pod's limit is on a parent.
        let v2 = "0::/kubepods/pod1/ctr\n";
        let read = files(&[
            ("/sys/fs/cgroup/cpu.max", "max 100000"),
            ("/sys/fs/cgroup/kubepods/pod1/cpu.max", "250000 100000"),
            ("/sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "max 100000"),
        ]);
        assert_eq!(quota_cpus(v2, read), Some(2));

        // Inside a container with its own cgroup namespace, its cgroup is the mount root.
        assert_eq!(quota_cpus("0::/\n", files(&[("/sys/fs/cgroup/cpu.max", "100000 100000")])), Some(1));

        // cgroup v1, `cpu,cpuacct` hierarchy.
        let v1 = "4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n";
        let read = files(&[
            ("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "400000"),
            ("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000"),
            ("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1"),
            ("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000"),
        ]);
        assert_eq!(quota_cpus(v1, read), Some(4));

        // No quota anywhere (this machine's case): the CPUs available decide.
        let read = files(&[
            ("/sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1"),
            ("/sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000"),
        ]);
        assert_eq!(quota_cpus("2:cpuacct:/\n1:cpu:/\n0::/\n", read), None);
        assert!(embedding_threads() >= 1);
    }
}
