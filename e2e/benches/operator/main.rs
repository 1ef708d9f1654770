//! `make bench-operator`: how fast the operator brings N McpTenants to their converged state on
//! the local control plane (real kube-apiserver + kube-controller-manager, no kubelet) and a real
//! PostgreSQL, what an idle resync writes, how much memory it takes and how many API requests a
//! reconcile costs. One round per tenant count, each with its own namespace, database and a fresh
//! release operator process. Prints a table; `--markdown PATH` also writes it as Markdown.
//!
//! Arguments (after `--`): `--tenants 100,1000`, `--concurrency 8` (the operator's
//! `--concurrency`, default its own default), `--resync SECS` (default 0.3 s per tenant, at least
//! 30 s: 300 s, the operator's default, at 1,000), `--timeout 600` (seconds
//! a round may take to converge), `--markdown PATH`, `--pprof DIR` (kube-apiserver's CPU profile
//! over the first 15 s of the floor and of the converge, for `go tool pprof`).
//!
//! Every wait is bounded; all traffic is on loopback. Starts processes, talks to the API server
//! and PostgreSQL.

mod floor;
mod probe;
mod world;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, Resource, ResourceExt};
use mcp_fleet_e2e::operator_world::{ADMIN_SECRET, admin_login, install_crd};
use mcp_fleet_e2e::{TestNamespace, WorkspaceBin, tools};
use mcp_fleet_operator::crd::{McpTenant, condition};
use mcp_fleet_operator::resources::{MANAGED_BY_LABEL, MANAGER};
use mcp_fleet_testkit::TestDb;
use rand::Rng as _;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::probe::{ApiCounters, CpuUse, OperatorCounters, Watched};
use crate::world::{OperatorArgs, OperatorProcess};

/// McpTenants created at the same time by the benchmark's own client.
const CREATE_PARALLELISM: usize = 8;
/// Kinds of children a minimal McpTenant gets (no autoscaling, Ingress or backup).
const CHILD_KINDS: [&str; 7] = [
    "ServiceAccount",
    "Secret",
    "ConfigMap",
    "Service",
    "Deployment",
    "PodDisruptionBudget",
    "NetworkPolicy",
];

struct Options {
    tenants: Vec<usize>,
    concurrency: Option<u16>,
    /// `None`: 0.3 s per tenant, at least 30 s.
    resync: Option<Duration>,
    timeout: Duration,
    markdown: Option<String>,
    /// An operator executable to run instead of building one.
    operator: Option<String>,
    /// Where to write kube-apiserver's CPU profiles (see [`apiserver_profile`]).
    pprof: Option<PathBuf>,
}

/// Seconds of each kube-apiserver CPU profile: shorter than the floor of the smallest round
/// worth profiling, so that both profiles cover the same kind of window (writes at full rate).
const PROFILE_SECONDS: u64 = 15;

fn options() -> Options {
    let mut o = Options {
        tenants: vec![100, 1000],
        concurrency: None,
        resync: None,
        timeout: Duration::from_secs(600),
        markdown: None,
        operator: None,
        pprof: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().unwrap_or_else(|| panic!("{name} needs a value"));
        match arg.as_str() {
            "--bench" => {}
            "--tenants" => {
                o.tenants = value("--tenants")
                    .split(',')
                    .map(|n| n.trim().parse().expect("--tenants: numbers separated by commas"))
                    .collect();
            }
            "--concurrency" => {
                o.concurrency = Some(value("--concurrency").parse().expect("--concurrency: a number"))
            }
            "--resync" => {
                o.resync = Some(Duration::from_secs(value("--resync").parse().expect("--resync: seconds")))
            }
            "--timeout" => {
                o.timeout = Duration::from_secs(value("--timeout").parse().expect("--timeout: seconds"))
            }
            "--markdown" => o.markdown = Some(value("--markdown")),
            "--operator" => o.operator = Some(value("--operator")),
            "--pprof" => o.pprof = Some(value("--pprof").into()),
            other => panic!(
                "unknown argument {other:?}; known: --tenants 100,1000 --concurrency N --resync SECS --timeout SECS --markdown PATH --operator PATH --pprof DIR"
            ),
        }
    }
    o
}

/// What one round measured.
#[derive(Default)]
struct Round {
    tenants: usize,
    concurrency: String,
    resync: Duration,
    created_in: Duration,
    /// Time from the first create to each fraction of tenants converged (10 %, 50 %, 90 %).
    milestones: Vec<(usize, Duration)>,
    /// `None`: not converged within the timeout.
    converged_in: Option<Duration>,
    converged: usize,
    /// The control plane's floor for the same objects without the operator (see `floor`).
    floor: Duration,
    /// CPU of the control plane's processes during the floor, and every request it served.
    floor_cpu: CpuUse,
    floor_api: ApiCounters,
    children_ok: String,
    roles: i64,
    converge_op: OperatorCounters,
    converge_api: ApiCounters,
    converge_cpu: CpuUse,
    idle_reconciles: f64,
    idle_writes: Vec<String>,
    idle_api: ApiCounters,
    idle_db_tuples: i64,
    idle_window: Duration,
    idle_done: bool,
    peak_rss_mib: f64,
    rss_after_mib: f64,
    load_before: String,
    load_after: String,
    ready_true: usize,
    workload_reason: String,
}

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(bench());
}

async fn bench() {
    let o = options();
    if let Some(dir) = &o.pprof {
        // The test control plane serves /debug/pprof only when asked (scripts/control-plane.sh),
        // and this process starts it: the variable must be set before it runs.
        assert!(
            std::env::var("MCP_FLEET_APISERVER_PROFILING").is_ok_and(|v| v == "true"),
            "--pprof needs kube-apiserver's profiling: run with MCP_FLEET_APISERVER_PROFILING=true \
             (MCP_FLEET_APISERVER_PROFILING=true make bench-operator ARGS=\"--pprof DIR ...\")"
        );
        std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    }
    let started = now_utc();
    let bin: PathBuf = match &o.operator {
        Some(path) => path.into(),
        None => {
            eprintln!("bench-operator: building the operator (this benchmark's profile) ...");
            let bin = tokio::task::spawn_blocking(|| WorkspaceBin::build("mcp-fleet-operator"));
            bin.await.expect("build").path().to_path_buf()
        }
    };
    let mut rounds = Vec::new();
    // Namespaces stay until the process ends: deleting one would set the garbage collector and
    // namespace controller to work during the next round (and its McpTenants keep finalizers
    // that no operator removes once the round's operator has stopped).
    let mut keep = Vec::new();
    for &n in &o.tenants {
        let (round, namespaces) = round(&bin, n, &o).await;
        print_round(&round);
        let done = round.converged_in.is_some();
        rounds.push(round);
        keep.extend(namespaces);
        if !done {
            eprintln!(
                "bench-operator: {n} tenants did not converge in {:?}; skipping larger rounds",
                o.timeout
            );
            break;
        }
    }
    let report = markdown(&rounds, &started, &o);
    println!("\n{report}");
    if let Some(path) = &o.markdown {
        std::fs::write(path, &report).unwrap_or_else(|e| panic!("writing {path}: {e}"));
        eprintln!("bench-operator: wrote {path}");
    }
    drop(keep);
}

async fn round(bin: &Path, n: usize, o: &Options) -> (Round, [TestNamespace; 2]) {
    let mut r = Round {
        tenants: n,
        concurrency: o.concurrency.map(|c| c.to_string()).unwrap_or_else(|| "8 (default)".into()),
        resync: o.resync.unwrap_or(Duration::from_millis(300 * n as u64).max(Duration::from_secs(30))),
        ..Round::default()
    };
    let resync = r.resync;
    eprintln!("bench-operator: round of {n} tenants (resync {resync:?}): setting up");
    let ns = TestNamespace::new(&format!("bench-op-{n}")).await;
    install_crd(&ns).await;
    let db = world::database(n).await;
    let url = admin_login(&ns, &db).await;
    let prefix = || {
        let n: u32 = rand::rng().random();
        format!("b{:06x}", n & 0xff_ffff)
    };

    // The floor first, in a namespace of its own, then a pause until the Deployment controller
    // has caught up with it.
    let floor_ns = TestNamespace::new(&format!("bench-floor-{n}")).await;
    let concurrency = o.concurrency.unwrap_or(8);
    eprintln!("bench-operator: the control plane's floor for {n} tenants ({concurrency} writers) ...");
    let plane = control_plane(&ns);
    let hz = probe::clock_ticks();
    let (cpu0, api0) = (probe::cpu_snapshot(&plane), api_counters(&ns).await);
    let profile =
        o.pprof.as_ref().map(|dir| apiserver_profile(&ns, dir.join(format!("apiserver-floor-{n}.pb.gz"))));
    r.floor = floor::run(&floor_ns, n, concurrency.into(), &url, &prefix()).await;
    r.floor_cpu = CpuUse::between(&cpu0, &probe::cpu_snapshot(&plane), hz);
    r.floor_api = api_counters(&ns).await.minus(api0);
    eprintln!("bench-operator: floor: {n} McpTenants with their children and status in {:.1?}", r.floor);
    if let Some(p) = profile {
        p.await.expect("the profile task");
    }
    settle(&floor_ns, n, Duration::from_secs(600)).await;

    let dir = ns.plane().run_dir().to_path_buf();
    let kubeconfig = world::operator_kubeconfig(&ns, &dir).await;
    let op = OperatorProcess::start(
        bin,
        OperatorArgs {
            namespace: ns.name(),
            kubeconfig: &kubeconfig,
            resync,
            concurrency,
            log: dir.join(format!("operator-{}.log", ns.name())),
        },
    )
    .await;
    let watched = watched(&ns, &db, &op);
    let tenants: Api<McpTenant> = ns.api();
    let prefix = prefix();

    // Converge: create every McpTenant, wait for every status to say so.
    r.load_before = probe::load_average();
    let cpu0 = probe::cpu_snapshot(&watched);
    let api0 = api_counters(&ns).await;
    let op0 = op.counters().await;
    let profile =
        o.pprof.as_ref().map(|dir| apiserver_profile(&ns, dir.join(format!("apiserver-converge-{n}.pb.gz"))));
    let t0 = Instant::now();
    create_tenants(&tenants, n, &prefix).await;
    r.created_in = t0.elapsed();
    eprintln!("bench-operator: {n} McpTenants created in {:.1?}", r.created_in);
    let deadline = t0 + o.timeout;
    let mut fractions = vec![n.div_ceil(10), n.div_ceil(2), (n * 9).div_ceil(10)];
    fractions.dedup();
    let mut last_print = Instant::now();
    loop {
        let text = probe::http_get(op.port, "/metrics").await.unwrap_or_default();
        let db_ready = probe::metric_sum(
            &text,
            "mcpfleet_operator_tenants",
            &[("condition", condition::DATABASE_READY), ("status", "True")],
        ) as usize;
        while let Some(&f) = fractions.first().filter(|&&f| db_ready >= f) {
            r.milestones.push((f, t0.elapsed()));
            fractions.remove(0);
        }
        if db_ready >= n {
            // The operator's own count says so: confirm from the API server.
            let (ok, _) = converged(&tenants).await;
            r.converged = ok;
            if ok >= n {
                r.converged_in = Some(t0.elapsed());
                break;
            }
        }
        let alive = mcp_fleet_e2e::workspace_bin::is_alive(op.pid);
        if Instant::now() > deadline || !alive {
            r.converged = converged(&tenants).await.0;
            let why = if alive { "timeout" } else { "the operator exited" };
            eprintln!("bench-operator: {why}; its log's tail:\n{}", op.log_tail());
            break;
        }
        if last_print.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "bench-operator: {:>5.0?}: {db_ready}/{n} DatabaseReady (operator gauge), RSS {:.1} MiB, load {}",
                t0.elapsed(),
                op.rss_mib(),
                probe::load_average()
            );
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let cpu1 = probe::cpu_snapshot(&watched);
    r.converge_cpu = CpuUse::between(&cpu0, &cpu1, hz);
    r.converge_api = api_counters(&ns).await.minus(api0);
    r.converge_op = op.counters().await.minus(&op0);
    r.load_after = probe::load_average();
    eprintln!("bench-operator: {}/{n} converged after {:.1?}", r.converged, t0.elapsed());
    if let Some(p) = profile {
        p.await.expect("the profile task");
    }

    // What exists: children per kind, roles in PostgreSQL, the status as a user sees it.
    r.children_ok = children(&ns, n).await;
    r.roles = sqlx::query_scalar("SELECT count(*) FROM pg_roles WHERE rolname LIKE $1")
        .bind(format!("mcpt_{prefix}-%"))
        .fetch_one(&db.admin)
        .await
        .expect("count the tenants' roles");
    let list = tenants.list(&ListParams::default()).await.expect("list McpTenants").items;
    r.ready_true =
        list.iter().filter(|t| t.status.as_ref().is_some_and(|s| s.is_true(condition::READY))).count();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for t in &list {
        let reason = t
            .status
            .as_ref()
            .and_then(|s| s.condition(condition::WORKLOAD_READY))
            .map(|c| format!("{}/{}", c.status, c.reason))
            .unwrap_or_else(|| "none".into());
        *reasons.entry(reason).or_default() += 1;
    }
    r.workload_reason = reasons.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ");

    // Idle: let the after-effects settle (the Deployment controller writes every Deployment's
    // status, which re-reconciles its McpTenant), then watch one full resync of every tenant and
    // count what changed. With resyncs due every `resync / n` the operator is never quiet, so
    // the window ends once it has reconciled at least `n` times.
    if r.converged_in.is_some() {
        settle(&ns, n, Duration::from_secs(600)).await;
        let marks0 = write_marks(&ns).await;
        let tuples0 = db_tuples(&db).await;
        let api0 = api_counters(&ns).await;
        let op0 = op.counters().await;
        let t1 = Instant::now();
        let deadline = t1 + resync + Duration::from_secs(300);
        loop {
            let done = op.counters().await.minus(&op0).reconciles;
            if done >= n as f64 {
                r.idle_done = true;
                break;
            }
            if Instant::now() > deadline {
                eprintln!("bench-operator: idle resync incomplete: {done} of {n} reconciles");
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        r.idle_window = t1.elapsed();
        r.idle_reconciles = op.counters().await.minus(&op0).reconciles;
        r.idle_api = api_counters(&ns).await.minus(api0);
        // PostgreSQL reports a backend's counters when it goes idle, at most once a second.
        tokio::time::sleep(Duration::from_secs(2)).await;
        r.idle_db_tuples = db_tuples(&db).await - tuples0;
        let marks1 = write_marks(&ns).await;
        r.idle_writes = changed(&marks0, &marks1);
    }
    r.peak_rss_mib = op.peak_rss_mib();
    r.rss_after_mib = op.rss_mib();
    op.stop().await;
    (r, [ns, floor_ns])
}

/// The processes whose CPU time is attributed: the operator, the control plane's three, and
/// PostgreSQL with its backends.
fn watched(ns: &TestNamespace, db: &TestDb, op: &OperatorProcess) -> Vec<Watched> {
    let mut w = vec![Watched { name: "operator", pid: op.pid, children: false }];
    w.extend(control_plane(ns));
    let postmaster =
        std::fs::read_to_string(db.cluster().dir.join("data/postmaster.pid")).unwrap_or_default();
    if let Some(pid) = postmaster.lines().next().and_then(|l| l.trim().parse().ok()) {
        w.push(Watched { name: "postgres", pid, children: true });
    }
    w
}

/// etcd, kube-apiserver and kube-controller-manager of the test control plane.
fn control_plane(ns: &TestNamespace) -> Vec<Watched> {
    let mut w = Vec::new();
    let pids = std::fs::read_to_string(ns.plane().run_dir().join("pids")).unwrap_or_default();
    for line in pids.lines() {
        let Some((name, pid)) = line.split_once(' ') else { continue };
        let Ok(pid) = pid.trim().parse() else { continue };
        let name = match name {
            "etcd" => "etcd",
            "kube-apiserver" => "kube-apiserver",
            "kube-controller-manager" => "kube-controller-manager",
            _ => continue,
        };
        w.push(Watched { name, pid, children: false });
    }
    w
}

fn tenant_object(i: usize, prefix: &str) -> McpTenant {
    serde_json::from_value(json!({
        "apiVersion": "mcpfleet.io/v1alpha1",
        "kind": "McpTenant",
        "metadata": {"name": format!("t{i:05}")},
        "spec": {
            "tenant": format!("{prefix}-{i:05}"),
            "stores": [world::bench_store(i)],
            "database": {"adminSecretRef": {"name": ADMIN_SECRET}},
            "auth": {"issuer": "https://issuer.example.com/realms/bench"},
        },
    }))
    .expect("a valid McpTenant")
}

async fn create_tenants(api: &Api<McpTenant>, n: usize, prefix: &str) {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(1));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..CREATE_PARALLELISM {
        let api = api.clone();
        let next = next.clone();
        let prefix = prefix.to_owned();
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i > n {
                    break;
                }
                let t = tenant_object(i, &prefix);
                tokio::time::timeout(Duration::from_secs(60), api.create(&PostParams::default(), &t))
                    .await
                    .expect("creating an McpTenant took over 60 s")
                    .expect("create an McpTenant");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a create task");
    }
}

/// How many McpTenants the API server shows converged: the latest generation observed, roles
/// applied, the workload and backup conditions written (so every child was applied first).
async fn converged(api: &Api<McpTenant>) -> (usize, usize) {
    let list = tokio::time::timeout(Duration::from_secs(60), api.list(&ListParams::default()))
        .await
        .expect("listing McpTenants took over 60 s")
        .expect("list McpTenants")
        .items;
    let ok = list
        .iter()
        .filter(|t| {
            t.status.as_ref().is_some_and(|s| {
                s.observed_generation == t.metadata.generation
                    && s.is_true(condition::DATABASE_READY)
                    && s.condition(condition::WORKLOAD_READY).is_some()
                    && s.condition(condition::BACKUP_SCHEDULED).is_some()
            })
        })
        .count();
    (ok, list.len())
}

/// Waits (at most `timeout`) until the Deployment and ReplicaSet controllers are done with all `n`
/// Deployments of `ns` (the latest generation observed and every pod created, so their status
/// stops changing; the pods stay Pending without a kubelet), then 5 s more for the reconciles
/// that this set off. kube-controller-manager writes at its default 20 requests/s, so 1,000
/// Deployments take it well over a minute after their creation.
async fn settle(ns: &TestNamespace, n: usize, timeout: Duration) {
    let started = Instant::now();
    let lp = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));
    loop {
        let list = ns.api::<Deployment>().list(&lp).await.expect("list Deployments").items;
        let done = list
            .iter()
            .filter(|d| {
                let status = d.status.clone().unwrap_or_default();
                let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                status.observed_generation == d.metadata.generation
                    && status.updated_replicas.unwrap_or(0) >= wanted
            })
            .count();
        if done >= n {
            eprintln!("bench-operator: {} settled after {:.1?}", ns.name(), started.elapsed());
            break;
        }
        if started.elapsed() > timeout {
            eprintln!(
                "bench-operator: {} NOT settled after {timeout:?}: {done} of {n} Deployments done",
                ns.name()
            );
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
}

/// Starts kube-apiserver's CPU profile over the next [`PROFILE_SECONDS`]
/// (`/debug/pprof/profile`, as the admin user) and writes it to `out` when it ends. A refusal is
/// reported and leaves no file: the profile is an aid, not a measurement of the table.
fn apiserver_profile(ns: &TestNamespace, out: PathBuf) -> tokio::task::JoinHandle<()> {
    let kubectl = ns.plane().bin("kubectl");
    let kubeconfig = ns.kubeconfig().to_string_lossy().into_owned();
    tokio::spawn(async move {
        let url = format!("/debug/pprof/profile?seconds={PROFILE_SECONDS}");
        let timeout = format!("--request-timeout={}s", PROFILE_SECONDS + 60);
        let got =
            tools::run(&kubectl, &["get", "--raw", &url, &timeout], &[("KUBECONFIG", &kubeconfig)], None)
                .await;
        let written = if got.status.success() {
            std::fs::write(&out, &got.stdout).map_err(|e| e.to_string())
        } else {
            Err(String::from_utf8_lossy(&got.stderr).trim().to_owned())
        };
        match written {
            Ok(()) => eprintln!(
                "bench-operator: kube-apiserver CPU profile ({PROFILE_SECONDS} s) in {}; read it with `go tool pprof -top {}`",
                out.display(),
                out.display()
            ),
            Err(e) => eprintln!("bench-operator: no kube-apiserver CPU profile for {}: {e}", out.display()),
        }
    })
}

async fn api_counters(ns: &TestNamespace) -> ApiCounters {
    ApiCounters::parse(&ns.kubectl(&["get", "--raw", "/metrics", "--request-timeout=30s"]).await)
}

/// Rows inserted, updated or deleted in the benchmark's database and in the shared catalogs
/// (roles live there), as PostgreSQL's statistics count them.
async fn db_tuples(db: &TestDb) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(tup_inserted + tup_updated + tup_deleted), 0)::bigint FROM pg_stat_database \
         WHERE datname = current_database() OR datname IS NULL",
    )
    .fetch_one(&db.admin)
    .await
    .expect("read pg_stat_database")
}

/// Counts of each child kind the operator applied (`Kind=count`, `!` when not `n`).
async fn children(ns: &TestNamespace, n: usize) -> String {
    let lp = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));
    let mut counts = Vec::new();
    macro_rules! count {
        ($k:ty) => {
            counts.push(ns.api::<$k>().list_metadata(&lp).await.expect("list children").items.len())
        };
    }
    count!(ServiceAccount);
    count!(Secret);
    count!(ConfigMap);
    count!(Service);
    count!(Deployment);
    count!(PodDisruptionBudget);
    count!(NetworkPolicy);
    if counts.iter().all(|&c| c == n) {
        format!("all {} kinds × {n}", CHILD_KINDS.len())
    } else {
        CHILD_KINDS
            .iter()
            .zip(&counts)
            .map(|(k, c)| format!("{k}={c}{}", if *c == n { "" } else { "!" }))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// What shows that someone wrote an object: its resourceVersion for objects only the operator
/// writes, and the operator's managed-fields entry (whose time moves on every write of its
/// fields) for objects whose status controllers write (Deployment, PodDisruptionBudget). Events
/// the operator reported count too.
async fn write_marks(ns: &TestNamespace) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let children = ListParams::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));
    marks::<McpTenant>(ns, &ListParams::default(), true, &mut out).await;
    marks::<ServiceAccount>(ns, &children, true, &mut out).await;
    marks::<Secret>(ns, &children, true, &mut out).await;
    marks::<ConfigMap>(ns, &children, true, &mut out).await;
    marks::<Service>(ns, &children, true, &mut out).await;
    marks::<NetworkPolicy>(ns, &children, true, &mut out).await;
    marks::<Deployment>(ns, &children, false, &mut out).await;
    marks::<PodDisruptionBudget>(ns, &children, false, &mut out).await;
    let events = ns.api::<Event>().list(&ListParams::default()).await.expect("list Events").items;
    for e in events.iter().filter(|e| e.reporting_controller.as_deref() == Some(MANAGER)) {
        out.insert(format!("Event/{}", e.name_any()), e.resource_version().unwrap_or_default());
    }
    out
}

async fn marks<K>(ns: &TestNamespace, lp: &ListParams, by_version: bool, out: &mut BTreeMap<String, String>)
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + DeserializeOwned,
{
    let api: Api<K> = ns.api();
    let list = tokio::time::timeout(Duration::from_secs(60), api.list(lp))
        .await
        .expect("a list took over 60 s")
        .expect("list objects");
    for o in list.items {
        let mark = if by_version { o.resource_version().unwrap_or_default() } else { manager_time(o.meta()) };
        out.insert(format!("{}/{}", K::kind(&()), o.name_any()), mark);
    }
}

/// When the operator's field manager last changed the object (server-side apply bookkeeping).
fn manager_time(meta: &ObjectMeta) -> String {
    meta.managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some(MANAGER))
        .map(|m| format!("{:?}:{:?}", m.operation, m.time.as_ref().map(|t| t.0)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Keys whose mark changed, appeared or disappeared.
fn changed(a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Vec<String> {
    let mut out: Vec<String> =
        b.iter().filter(|(k, v)| a.get(*k) != Some(*v)).map(|(k, _)| k.clone()).collect();
    out.extend(a.keys().filter(|k| !b.contains_key(*k)).map(|k| format!("{k} (gone)")));
    out
}

fn now_utc() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// `a` as a multiple of `b`.
fn ratio(a: Duration, b: Duration) -> String {
    if b.is_zero() { "–".into() } else { format!("{:.2}×", a.as_secs_f64() / b.as_secs_f64()) }
}

fn per(a: f64, b: f64) -> String {
    if b > 0.0 { format!("{:.1}", a / b) } else { "–".into() }
}

fn print_round(r: &Round) {
    eprintln!(
        "\n== {} McpTenants (operator --concurrency {}, --resync-interval {}s) ==",
        r.tenants,
        r.concurrency,
        r.resync.as_secs()
    );
    for line in round_lines(r) {
        eprintln!("  {line}");
    }
}

fn round_lines(r: &Round) -> Vec<String> {
    let c = &r.converge_cpu;
    let mut lines = vec![
        format!("created (benchmark client, {CREATE_PARALLELISM} at a time): {}", secs(r.created_in)),
        match r.converged_in {
            Some(d) => format!(
                "converged: {} / {} in {}: {} the control plane's floor ({}, same objects written by a plain client)",
                r.converged,
                r.tenants,
                secs(d),
                ratio(d, r.floor),
                secs(r.floor)
            ),
            None => format!("NOT converged: {} / {} within the timeout", r.converged, r.tenants),
        },
        format!(
            "floor: CPU s over {}: {} others {:.1}, idle {:.1}; all API requests {} ({} per tenant)",
            secs(r.floor_cpu.wall),
            cpu_list(&r.floor_cpu),
            r.floor_cpu.others,
            r.floor_cpu.idle,
            r.floor_api.all_requests,
            per(r.floor_api.all_requests, r.tenants as f64)
        ),
        format!(
            "milestones (operator gauge DatabaseReady=True): {}",
            r.milestones.iter().map(|(k, d)| format!("{k} at {}", secs(*d))).collect::<Vec<_>>().join(", ")
        ),
        format!("children: {}; PostgreSQL roles: {} (2 per tenant)", r.children_ok, r.roles),
        format!("status: Ready=True {} (no kubelet); WorkloadReady {}", r.ready_true, r.workload_reason),
        format!(
            "converge: {} reconciles, {} failed, {:.1} s reconciling in total ({} ms mean, {} ms operator CPU each)",
            r.converge_op.reconciles,
            r.converge_op.failures,
            r.converge_op.reconcile_seconds,
            per(r.converge_op.reconcile_seconds * 1000.0, r.converge_op.reconciles),
            per(c.get("operator") * 1000.0, r.converge_op.reconciles)
        ),
        format!(
            "API requests by the operator: {} ({} per reconcile, {} per tenant); API server busy {:.1} s on them, {:.1} s queued; all API requests {} ({} per tenant)",
            r.converge_api.requests,
            per(r.converge_api.requests, r.converge_op.reconciles),
            per(r.converge_api.requests, r.tenants as f64),
            r.converge_api.execution_seconds,
            r.converge_api.wait_seconds,
            r.converge_api.all_requests,
            per(r.converge_api.all_requests, r.tenants as f64)
        ),
        format!(
            "the operator's own count, per tenant, by verb and resource: {}",
            r.converge_op.api_requests_per(r.tenants as f64)
        ),
        format!(
            "CPU s over {}: {} others {:.1}, idle {:.1} (load {} -> {})",
            secs(c.wall),
            cpu_list(c),
            c.others,
            c.idle,
            r.load_before,
            r.load_after
        ),
    ];
    if r.converged_in.is_some() {
        lines.push(format!(
            "idle resync: {} reconciles in {}{}, writes {} (objects changed; {}), PostgreSQL rows written {}, API requests {} ({} per reconcile)",
            r.idle_reconciles,
            secs(r.idle_window),
            if r.idle_done { "" } else { " (INCOMPLETE)" },
            r.idle_writes.len(),
            if r.idle_writes.is_empty() {
                "none".to_owned()
            } else {
                let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
                for w in &r.idle_writes {
                    *kinds.entry(w.split('/').next().unwrap_or_default()).or_default() += 1;
                }
                let kinds: Vec<String> = kinds.iter().map(|(k, v)| format!("{k} {v}")).collect();
                let first: Vec<&str> = r.idle_writes.iter().take(3).map(String::as_str).collect();
                format!("{}; e.g. {}", kinds.join(", "), first.join(", "))
            },
            r.idle_db_tuples,
            r.idle_api.requests,
            per(r.idle_api.requests, r.idle_reconciles)
        ));
    }
    lines
        .push(format!("operator RSS: peak {:.1} MiB, at the end {:.1} MiB", r.peak_rss_mib, r.rss_after_mib));
    lines
}

/// `name seconds,` per watched process.
fn cpu_list(c: &CpuUse) -> String {
    c.per.iter().map(|(k, v)| format!("{k} {v:.1},")).collect::<Vec<_>>().join(" ")
}

fn markdown(rounds: &[Round], started: &str, o: &Options) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "### Operator (`make bench-operator`)\n");
    let _ = writeln!(
        s,
        "Run {started} on {} cores (load average at the start of each round below), release operator, \
         a fresh namespace, database and operator process per round. Each McpTenant is minimal \
         (one store, admin Secret reference, issuer): 7 children, 2 PostgreSQL roles. \"Converged\": the API \
         server shows every McpTenant with the latest generation observed, `DatabaseReady=True` and the \
         workload and backup conditions written (the status is written after every child was applied). \
         `Ready` stays False here: without a kubelet no pod ever runs.\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    );
    let _ = writeln!(
        s,
        "| McpTenants | converged in | floor (same run) | converged / floor | 50 % at | reconciles | failures | API req / reconcile | idle resync: writes | idle: API req / reconcile | peak RSS |"
    );
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rounds {
        let half = r.milestones.iter().find(|(k, _)| *k == r.tenants.div_ceil(2)).map(|(_, d)| secs(*d));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} MiB |",
            r.tenants,
            r.converged_in.map(secs).unwrap_or_else(|| format!(
                "not in {} s ({} done)",
                o.timeout.as_secs(),
                r.converged
            )),
            secs(r.floor),
            r.converged_in.map(|d| ratio(d, r.floor)).unwrap_or_else(|| "–".into()),
            half.unwrap_or_else(|| "–".into()),
            r.converge_op.reconciles,
            r.converge_op.failures,
            per(r.converge_api.requests, r.converge_op.reconciles),
            if r.converged_in.is_some() {
                format!("{}{}", r.idle_writes.len(), if r.idle_done { "" } else { " (incomplete)" })
            } else {
                "–".into()
            },
            if r.converged_in.is_some() { per(r.idle_api.requests, r.idle_reconciles) } else { "–".into() },
            r.peak_rss_mib
        );
    }
    for r in rounds {
        let _ = writeln!(
            s,
            "\n{} McpTenants (operator `--concurrency {}`, `--resync-interval {}s`):\n",
            r.tenants,
            r.concurrency,
            r.resync.as_secs()
        );
        for line in round_lines(r) {
            let _ = writeln!(s, "- {line}");
        }
    }
    s
}
