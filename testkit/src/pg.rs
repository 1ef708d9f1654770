//! A throwaway PostgreSQL 15 cluster (with pgvector) for the tests of one process, and fresh
//! databases cloned from migrated templates. Never touches a shared or system cluster.
//!
//! The cluster lives in a temporary directory, listens on 127.0.0.1 at a free port (and, for tests
//! with pods, on the node bridge's host address too), and is stopped and deleted when the test
//! process exits (see [`crate::process`]). Run
//! `scripts/pg-install.sh` (or `make deps`) once to install PostgreSQL and pgvector.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand::Rng as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, PgPool};
use tokio::sync::OnceCell;

use crate::process::{Guarded, free_port, is_root};

/// The superuser's name in test clusters.
pub const SUPERUSER: &str = "postgres";

/// A running throwaway cluster.
pub struct PgCluster {
    pub port: u16,
    pub dir: PathBuf,
    password: String,
    /// The node bridge's host address it also listens on, for pods ([`PgCluster::shared_for_pods`]).
    pod_address: Option<String>,
    /// The postmaster's command line and whether it runs as `postgres` (for [`PgCluster::start_again`]).
    argv: Vec<String>,
    as_postgres: bool,
    /// One per start; the first also removes the scratch directory when the test process ends.
    guards: Mutex<Vec<Guarded>>,
}

/// Where pods find a cluster: the host address it listens on and the pods' address range that
/// `pg_hba.conf` admits (password authentication, as from loopback).
pub struct PodNetwork<'a> {
    pub host_address: &'a str,
    pub pod_cidr: &'a str,
}

static CLUSTER: OnceLock<PgCluster> = OnceLock::new();

/// The directory holding `initdb`, `postgres` and `pg_dump`: `$MCP_FLEET_PG_BIN`, else Debian's.
pub fn pg_bin_dir() -> PathBuf {
    std::env::var_os("MCP_FLEET_PG_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

impl PgCluster {
    /// The cluster of this test process, started on first use.
    pub fn shared() -> &'static PgCluster {
        CLUSTER.get_or_init(|| Self::start(None).unwrap_or_else(|e| panic!("{e}")))
    }

    /// The cluster of this test process, reachable from pods too: it listens on the node bridge's
    /// host address as well as loopback. The first call of either `shared*` decides; asking for
    /// pods after a loopback-only start panics rather than give pods an unreachable database.
    pub fn shared_for_pods(net: &PodNetwork<'_>) -> &'static PgCluster {
        let cluster = CLUSTER.get_or_init(|| Self::start(Some(net)).unwrap_or_else(|e| panic!("{e}")));
        assert_eq!(
            cluster.pod_address.as_deref(),
            Some(net.host_address),
            "the test PostgreSQL cluster was started for loopback only: call shared_for_pods first"
        );
        cluster
    }

    fn start(pods: Option<&PodNetwork<'_>>) -> Result<Self, String> {
        let bin = pg_bin_dir();
        if !bin.join("initdb").exists() {
            return Err(format!(
                "PostgreSQL binaries not found in {} — run `make deps` (scripts/pg-install.sh) or set MCP_FLEET_PG_BIN",
                bin.display()
            ));
        }
        let suffix: u64 = rand::rng().random();
        let dir = std::env::temp_dir().join(format!("mcpfleet-pg-{}-{suffix:x}", std::process::id()));
        let data = dir.join("data");
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let password: String = format!("pw{suffix:x}");
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, &password).map_err(|e| e.to_string())?;
        let as_postgres = is_root();
        if as_postgres {
            // PostgreSQL refuses to run as root; the Debian package provides the `postgres` user.
            run(Command::new("chown").args(["-R", "postgres:postgres"]).arg(&dir))?;
        }
        let mut initdb = sudo_postgres(as_postgres, &bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", pwfile.display()))
            .args(["--no-sync", "-E", "UTF8", "--locale=C"]);
        run(&mut initdb)?;
        let mut listen = "127.0.0.1".to_owned();
        if let Some(net) = pods {
            use std::io::Write as _;
            let hba = data.join("pg_hba.conf");
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(&hba)
                .map_err(|e| format!("opening {}: {e}", hba.display()))?;
            writeln!(f, "host all all {} scram-sha-256", net.pod_cidr).map_err(|e| e.to_string())?;
            listen = format!("127.0.0.1,{}", net.host_address);
        }
        let listen_addresses = format!("listen_addresses={listen}");

        let port = free_port();
        let port_s = port.to_string();
        let postgres = bin.join("postgres");
        let data_s = data.to_string_lossy().into_owned();
        let dir_s = dir.to_string_lossy().into_owned();
        let argv = [
            postgres.to_str().unwrap_or("postgres"),
            "-D",
            &data_s,
            "-p",
            &port_s,
            "-k",
            &dir_s,
            "-c",
            &listen_addresses,
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
            "-c",
            "max_connections=300",
            "-c",
            "shared_buffers=128MB",
            "-c",
            "log_min_messages=warning",
        ];
        let log = dir.join("postgres.log");
        let guard = Guarded::spawn(&argv, as_postgres.then_some("postgres"), "INT", Some(&dir), &log)
            .map_err(|e| format!("starting postgres: {e}"))?;
        let pod_address = pods.map(|n| n.host_address.to_owned());
        let cluster = PgCluster {
            port,
            dir,
            password,
            pod_address,
            argv: argv.iter().map(|a| (*a).to_owned()).collect(),
            as_postgres,
            guards: Mutex::new(vec![guard]),
        };
        cluster.wait_ready(Duration::from_secs(30))?;
        Ok(cluster)
    }

    fn wait_ready(&self, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        let isready = pg_bin_dir().join("pg_isready");
        loop {
            let ok = Command::new(&isready)
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            if ok {
                return Ok(());
            }
            let running = self
                .guards
                .lock()
                .ok()
                .and_then(|mut g| g.last_mut().map(Guarded::is_running))
                .unwrap_or(false);
            if !running || Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
                return Err(format!("PostgreSQL did not become ready on port {}:\n{log}", self.port));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the cluster as an operator's restart does (fast shutdown: sessions are ended, the
    /// data stays) and returns once it refuses connections. For fault tests; [`PgCluster::start_again`]
    /// brings it back on the same port.
    pub fn stop(&self) -> Result<(), String> {
        let data = self.dir.join("data");
        let pid_file = data.join("postmaster.pid");
        let pid =
            std::fs::read_to_string(&pid_file).map_err(|e| format!("reading {}: {e}", pid_file.display()))?;
        let pid = pid.lines().next().unwrap_or_default().trim().to_owned();
        run(Command::new("kill").args(["-INT", &pid]))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        // The postmaster removes its pid file last, once every backend has gone.
        while pid_file.exists() {
            if Instant::now() > deadline {
                return Err(format!("PostgreSQL (pid {pid}) did not stop within 60 s"));
            }
            std::thread::sleep(Duration::from_millis(50)); // polling interval
        }
        Ok(())
    }

    /// Starts the cluster again after [`PgCluster::stop`], with the same data, port and settings.
    pub fn start_again(&self) -> Result<(), String> {
        let argv: Vec<&str> = self.argv.iter().map(String::as_str).collect();
        let log = self.dir.join("postgres.log");
        let guard = Guarded::spawn(&argv, self.as_postgres.then_some("postgres"), "INT", None, &log)
            .map_err(|e| format!("starting postgres again: {e}"))?;
        self.guards.lock().map_err(|_| "a poisoned lock".to_owned())?.push(guard);
        self.wait_ready(Duration::from_secs(60))
    }

    /// The superuser's password.
    pub fn superuser_password(&self) -> &str {
        &self.password
    }

    /// A URL for `user`/`password` to database `db` over TCP on 127.0.0.1.
    pub fn url(&self, user: &str, password: &str, db: &str) -> String {
        format!("postgres://{user}:{password}@127.0.0.1:{}/{db}", self.port)
    }

    /// A URL for `user`/`password` to database `db` as pods reach it: on the node bridge's host
    /// address. Panics for a cluster started without [`PgCluster::shared_for_pods`].
    pub fn pod_url(&self, user: &str, password: &str, db: &str) -> String {
        let host = self.pod_address.as_deref().expect("this PostgreSQL cluster was not started for pods");
        format!("postgres://{user}:{password}@{host}:{}/{db}", self.port)
    }

    /// The superuser's URL for database `db`.
    pub fn admin_url(&self, db: &str) -> String {
        self.url(SUPERUSER, &self.password, db)
    }

    /// Connect options for the superuser, with statement logging turned down.
    pub fn admin_options(&self, db: &str) -> PgConnectOptions {
        PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.port)
            .username(SUPERUSER)
            .password(&self.password)
            .database(db)
            .disable_statement_logging()
    }
}

fn sudo_postgres(as_postgres: bool, program: &Path) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Templates already built in this process, by name.
static TEMPLATES: OnceLock<Mutex<HashMap<String, Arc<OnceCell<()>>>>> = OnceLock::new();

/// A fresh database for one test, dropped (with its connections) when the test process ends
/// with the cluster. Each test gets its own name, so tests run in parallel.
pub struct TestDb {
    pub name: String,
    /// A superuser pool on this database.
    pub admin: PgPool,
    cluster: &'static PgCluster,
}

impl TestDb {
    /// A database with every migration applied.
    pub async fn migrated() -> TestDb {
        Self::from_template("migrated", |_| async {}).await
    }

    /// An empty database (no migrations), for testing the migrations themselves.
    pub async fn empty() -> TestDb {
        let cluster = PgCluster::shared();
        let name = unique_name("t");
        exec_admin(cluster, &format!("CREATE DATABASE \"{name}\"")).await;
        Self::open(cluster, name).await
    }

    /// A migrated database initialised by `init` (for example seeded). `init` runs once per
    /// test process and `key`; every later call clones the result, which takes milliseconds.
    pub async fn from_template<F, Fut>(key: &str, init: F) -> TestDb
    where
        F: FnOnce(PgPool) -> Fut,
        Fut: Future<Output = ()>,
    {
        let cluster = PgCluster::shared();
        let template = format!("tmpl_{key}");
        let cell = {
            let map = TEMPLATES.get_or_init(Default::default);
            let mut map = map.lock().expect("template map poisoned");
            map.entry(key.to_owned()).or_default().clone()
        };
        cell.get_or_init(|| async {
            exec_admin(cluster, &format!("CREATE DATABASE \"{template}\"")).await;
            {
                let pool = PgPoolOptions::new()
                    .max_connections(4)
                    .connect_with(cluster.admin_options(&template))
                    .await
                    .expect("connect to template");
                mcp_fleet_core::migrations::MIGRATOR
                    .run(&pool)
                    .await
                    .unwrap_or_else(|e| panic!("migrating the test template: {e}"));
                init(pool.clone()).await;
                pool.close().await;
            }
        })
        .await;
        let name = unique_name("t");
        exec_admin(cluster, &format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"")).await;
        Self::open(cluster, name).await
    }

    async fn open(cluster: &'static PgCluster, name: String) -> TestDb {
        let admin = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(cluster.admin_options(&name))
            .await
            .unwrap_or_else(|e| panic!("connecting to test database {name}: {e}"));
        TestDb { name, admin, cluster }
    }

    pub fn cluster(&self) -> &'static PgCluster {
        self.cluster
    }

    /// The superuser URL of this database.
    pub fn admin_url(&self) -> String {
        self.cluster.admin_url(&self.name)
    }

    /// The URL for `user`/`password` on this database.
    pub fn url_as(&self, user: &str, password: &str) -> String {
        self.cluster.url(user, password, &self.name)
    }

    /// One connection as `user`, authenticating with `password` over TCP.
    pub async fn connect_as(&self, user: &str, password: &str) -> Result<PgConnection, sqlx::Error> {
        let opts = PgConnectOptions::new()
            .host("127.0.0.1")
            .port(self.cluster.port)
            .username(user)
            .password(password)
            .database(&self.name)
            .disable_statement_logging();
        PgConnection::connect_with(&opts).await
    }
}

/// A name unique in this cluster: prefix, process id and random bits.
pub fn unique_name(prefix: &str) -> String {
    let n: u32 = rand::rng().random();
    format!("{prefix}{}_{n:08x}", std::process::id())
}

async fn exec_admin(cluster: &PgCluster, sql: &str) {
    // CREATE DATABASE cannot run inside a transaction or a pooled prepared statement.
    let mut conn = PgConnection::connect_with(&cluster.admin_options("postgres"))
        .await
        .unwrap_or_else(|e| panic!("connecting to the test cluster: {e}"));
    conn.execute(sqlx::AssertSqlSafe(sql)).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    let _ = conn.close().await;
}

/// Creates a login role in `mcpfleet_operator` (never a superuser), as the operator runs in
/// production, through `superuser` (a superuser's connection or pool): its name and password.
pub async fn create_operator_login<'c, E>(superuser: E) -> (String, String)
where
    E: Executor<'c, Database = sqlx::Postgres>,
{
    let role = unique_name("op");
    let password = mcp_fleet_core::tenant::generate_password();
    let sql = format!("CREATE ROLE {role} LOGIN PASSWORD '{password}' IN ROLE mcpfleet_operator");
    superuser.execute(sqlx::AssertSqlSafe(sql)).await.expect("create the operator's login role");
    (role, password)
}

/// The seed's eight stores, in store-id order (ids 1..8 in a database that has no other stores).
pub const SAMPLE_STORES: &[&str] = &[
    "Zava Retail Seattle",
    "Zava Retail Bellevue",
    "Zava Retail Tacoma",
    "Zava Retail Spokane",
    "Zava Retail Everett",
    "Zava Retail Redmond",
    "Zava Retail Kirkland",
    "Zava Retail Online",
];

/// Inserts [`SAMPLE_STORES`] (as a superuser: the table has forced row-level security), for tests
/// that need the stores but not the rest of the seed.
pub async fn insert_sample_stores(pool: &sqlx::PgPool) {
    for name in SAMPLE_STORES {
        sqlx::query("INSERT INTO retail.stores (store_name, is_online) VALUES ($1, $2)")
            .bind(name)
            .bind(name.ends_with("Online"))
            .execute(pool)
            .await
            .expect("insert a sample store");
    }
}
