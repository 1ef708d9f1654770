//! The processes of a pod, seen from the host: the node runs its containers on this machine, so a
//! test can find a container's process by the pod's cgroup and read what the kernel keeps on it.

/// The PID of the `mcp-fleet-server` process of the pod with `uid` (its cgroup path carries
/// `pod<uid>`). Panics unless there is exactly one.
pub fn server_pid(uid: &str) -> i32 {
    let marker = format!("pod{uid}");
    let pids: Vec<i32> = std::fs::read_dir("/proc")
        .expect("read /proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid: &i32| {
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            cgroup.contains(&marker) && comm.trim() == "mcp-fleet-serve"
        })
        .collect();
    assert_eq!(pids.len(), 1, "exactly one server process in pod {uid}: {pids:?}");
    pids[0]
}

/// The peak resident memory of process `pid` (`VmHWM`), in MiB.
pub fn peak_rss_mib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/<pid>/status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmHWM line");
    kib / 1024
}
