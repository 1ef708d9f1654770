//! `backup`, `backup list` and `restore` end to end: the real binary against a real PostgreSQL,
//! Azurite (Microsoft's Azure Storage emulator), s3rver (an S3-compatible server) and local files.
//! Every store runs on 127.0.0.1 under the testkit watchdog; credentials reach the binary only
//! through its environment.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use mcp_fleet_core::progress::Progress;
use mcp_fleet_seed::{self as seed, SeedConfig};
use mcp_fleet_testkit::TestDb;
use mcp_fleet_testkit::pg::{pg_bin_dir, unique_name};
use mcp_fleet_testkit::process::{Guarded, free_port};
use sqlx::{Connection, PgConnection};
use support::{Tenant, tenant};

const RETAIL_TABLES: &[&str] = &[
    "categories",
    "customers",
    "inventory",
    "order_items",
    "orders",
    "product_description_embeddings",
    "product_types",
    "products",
    "stores",
];

async fn seeded() -> TestDb {
    let db = TestDb::from_template("seeded-small", |pool| async move {
        seed::run(&pool, &SeedConfig::small(), &Progress::quiet()).await.expect("seed");
    })
    .await;
    dump_privileges(&db).await;
    db
}

/// pg_dump locks each table it dumps, which PostgreSQL 15 allows only with TABLE-level SELECT;
/// tenant login roles read retail.customers through column grants (migration 0004). This is the
/// one-line grant the backup needs from the schema (a migration); idempotent once it is there.
async fn dump_privileges(db: &TestDb) {
    sqlx::query("GRANT SELECT ON retail.customers TO mcpfleet_pii").execute(&db.admin).await.expect("grant");
}

/// The URL of `user` on `db` without a password (passwords go through the environment).
fn url_without_password(db: &TestDb, user: &str) -> String {
    db.url_as(user, "").replace(":@", "@")
}

/// Environment that makes the binary back up as `t`.
fn as_tenant(db: &TestDb, t: &Tenant) -> Vec<(String, String)> {
    vec![
        ("MCP_FLEET_DATABASE_URL".into(), url_without_password(db, &t.name.login_role())),
        ("MCP_FLEET_DATABASE_PASSWORD".into(), t.password.clone()),
    ]
}

/// Environment that makes the binary restore into `db` as the superuser.
fn into(db: &TestDb) -> Vec<(String, String)> {
    vec![
        ("MCP_FLEET_RESTORE_INTO".into(), url_without_password(db, "postgres")),
        ("PGPASSWORD".into(), db.cluster().superuser_password().to_owned()),
    ]
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn last_line(&self) -> &str {
        self.stderr.lines().rfind(|l| !l.trim().is_empty()).unwrap_or_default()
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ok={}\n--- stdout\n{}\n--- stderr\n{}", self.ok, self.stdout, self.stderr)
    }
}

/// Runs the real binary with only the given environment (plus PATH and the PostgreSQL tools).
async fn cli(args: &[&str], env: &[Vec<(String, String)>]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcp-fleet-server"));
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("MCP_FLEET_PG_BIN", pg_bin_dir())
        .kill_on_drop(true);
    for (k, v) in env.iter().flatten() {
        cmd.env(k, v);
    }
    let out: Output = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("mcp-fleet-server {args:?} ran for more than 3 minutes"))
        .expect("run mcp-fleet-server");
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// An emulator started by one of the scripts, shared by the tests of this process.
struct Emulator {
    env: Vec<(String, String)>,
    _guard: Mutex<Guarded>,
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts")
}

/// Starts `script run <port> <bucket>` and waits (bounded) for its `KEY=value` ready line.
fn start_emulator(script: &str, ready_key: &str) -> Result<(Guarded, String), String> {
    let port = free_port().to_string();
    // The log lives in a scratch directory that the watchdog deletes with the emulator.
    let scratch = std::env::temp_dir().join(unique_name("mcpfleet-emu"));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let log = scratch.join(format!("{script}.log"));
    let path = scripts_dir().join(script);
    let argv = [path.to_str().unwrap_or_default(), "run", &port, "backups"];
    let mut guard =
        Guarded::spawn(&argv, None, "TERM", Some(&scratch), &log).map_err(|e| format!("{script}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.starts_with(&format!("{ready_key}="))) {
            return Ok((guard, line[ready_key.len() + 1..].to_owned()));
        }
        if !guard.is_running() || Instant::now() > deadline {
            return Err(format!("{script} did not become ready (run `make deps`):\n{text}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn azurite() -> &'static Emulator {
    static AZURITE: OnceLock<Emulator> = OnceLock::new();
    AZURITE.get_or_init(|| {
        let (guard, url) =
            start_emulator("azurite.sh", "AZURITE_BLOB_STORAGE_URL").unwrap_or_else(|e| panic!("{e}"));
        Emulator {
            env: vars(&[("AZURE_STORAGE_USE_EMULATOR", "true"), ("AZURITE_BLOB_STORAGE_URL", &url)]),
            _guard: Mutex::new(guard),
        }
    })
}

fn s3rver() -> &'static Emulator {
    static S3RVER: OnceLock<Emulator> = OnceLock::new();
    S3RVER.get_or_init(|| {
        let (guard, endpoint) = start_emulator("s3rver.sh", "AWS_ENDPOINT").unwrap_or_else(|e| panic!("{e}"));
        Emulator {
            env: vars(&[
                ("AWS_ENDPOINT", &endpoint),
                ("AWS_ALLOW_HTTP", "true"),
                ("AWS_REGION", "us-east-1"),
                ("AWS_ACCESS_KEY_ID", "S3RVER"),
                ("AWS_SECRET_ACCESS_KEY", "S3RVER"),
            ]),
            _guard: Mutex::new(guard),
        }
    })
}

/// Session settings that make row text the same in both databases.
async fn deterministic(conn: &mut PgConnection) {
    for sql in ["SET TimeZone = 'UTC'", "SET DateStyle = 'ISO, YMD'", "SET extra_float_digits = 1"] {
        sqlx::query(sql).execute(&mut *conn).await.expect(sql);
    }
}

/// (rows, md5 of the sorted row texts) of every retail table, as `conn`'s role sees it.
async fn table_checksums(conn: &mut PgConnection) -> Vec<(String, i64, String)> {
    deterministic(conn).await;
    let mut out = Vec::new();
    for table in RETAIL_TABLES {
        let (rows, md5): (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT count(*), coalesce(md5(string_agg(t::text, E'\\n' ORDER BY t::text)), '') FROM retail.{table} t"
        )))
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("checksum of {table}: {e}"));
        out.push(((*table).to_owned(), rows, md5));
    }
    out
}

async fn admin_conn(db: &TestDb) -> PgConnection {
    PgConnection::connect_with(&db.cluster().admin_options(&db.name)).await.expect("admin connection")
}

/// The restored database holds exactly what the tenant sees in the source, and nothing of `other`.
async fn assert_restored_tenant_view(source: &TestDb, t: &Tenant, restored: &TestDb, other: &Tenant) {
    let mut tenant_conn = source.connect_as(&t.name.login_role(), &t.password).await.expect("tenant login");
    let want = table_checksums(&mut tenant_conn).await;
    let mut admin = admin_conn(restored).await;
    let got = table_checksums(&mut admin).await;
    assert_eq!(got, want, "restored rows (admin view) differ from the tenant's view of the source");
    for (table, rows, _) in &want {
        if ["stores", "orders", "order_items", "customers", "categories", "products"]
            .contains(&table.as_str())
        {
            assert!(*rows > 0, "the tenant's view of {table} should not be empty");
        }
    }
    let stores: Vec<i32> = sqlx::query_scalar("SELECT store_id FROM retail.stores ORDER BY 1")
        .fetch_all(&mut admin)
        .await
        .expect("test setup");
    assert_eq!(stores, t.stores);
    for (table, col) in
        [("orders", "store_id"), ("order_items", "store_id"), ("customers", "primary_store_id")]
    {
        let foreign: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM retail.{table} WHERE {col} = ANY($1)"
        )))
        .bind(&other.stores)
        .fetch_one(&mut admin)
        .await
        .expect("test setup");
        assert_eq!(foreign, 0, "{table} holds rows of the other tenant");
    }
    // The sequences were moved past the restored ids: a new order gets a fresh id.
    let next: i64 = sqlx::query_scalar("SELECT nextval(pg_get_serial_sequence('retail.orders', 'order_id'))")
        .fetch_one(&mut admin)
        .await
        .expect("test setup");
    let max: i32 = sqlx::query_scalar("SELECT max(order_id) FROM retail.orders")
        .fetch_one(&mut admin)
        .await
        .expect("test setup");
    assert!(next > i64::from(max), "orders sequence at {next}, max restored id {max}");
}

/// The IDs `backup list` printed (one line per complete backup after the header).
fn listed_ids(run: &Run) -> Vec<String> {
    run.stdout.lines().skip(1).filter_map(|l| l.split_whitespace().next().map(str::to_owned)).collect()
}

fn peak_mib(run: &Run) -> f64 {
    let line = run.last_line();
    let after = line.split("peak memory ").nth(1).unwrap_or_else(|| panic!("no peak memory in {line:?}"));
    after.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("{line}"))
}

#[tokio::test]
async fn azurite_two_tenants_list_retention_and_restore_of_exactly_one_tenants_rows() {
    let az = azurite();
    let source = seeded().await;
    let (a, b) = (tenant(&source, &[1, 2]).await, tenant(&source, &[3]).await);
    let to = format!("az://backups/{}", unique_name("zava"));
    // Small upload parts, so that even the small dataset goes up as a multipart (block list) upload.
    let parts = vars(&[("MCP_FLEET_BACKUP_PART_SIZE", "65536")]);

    let mut ids_a = Vec::new();
    for _ in 0..3 {
        let run = cli(
            &["backup", "--to", &to, "--keep-last", "2"],
            &[as_tenant(&source, &a), az.env.clone(), parts.clone()],
        )
        .await;
        assert!(run.ok, "{run:?}");
        assert!(run.last_line().starts_with("backup: OK az://backups/"), "{run:?}");
        assert!(peak_mib(&run) < 256.0, "peak memory: {}", run.last_line());
        ids_a.push(listed_id_from(&run));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let run =
        cli(&["backup", "--to", &to, "--keep-last", "1"], &[as_tenant(&source, &b), az.env.clone()]).await;
    assert!(run.ok, "{run:?}");
    let id_b = listed_id_from(&run);

    // Retention pruned only tenant A's oldest backup; B's one-backup rule left A alone.
    let list_a =
        cli(&["backup", "list", "--to", &to, "--tenant", a.name.as_str()], std::slice::from_ref(&az.env))
            .await;
    assert!(list_a.ok, "{list_a:?}");
    assert_eq!(listed_ids(&list_a), ids_a[1..].to_vec(), "{list_a:?}");
    let all = cli(&["backups", "list", "--to", &to], std::slice::from_ref(&az.env)).await;
    let mut want_all = ids_a[1..].to_vec();
    want_all.push(id_b.clone());
    want_all.sort();
    let mut got_all = listed_ids(&all);
    got_all.sort();
    assert_eq!(got_all, want_all, "{all:?}");
    let json = cli(
        &["backup", "list", "--to", &to, "--tenant", b.name.as_str(), "--json"],
        std::slice::from_ref(&az.env),
    )
    .await;
    let manifests: serde_json::Value = serde_json::from_str(&json.stdout).expect("list --json prints JSON");
    assert_eq!(manifests[0]["tenant"], b.name.as_str());
    assert_eq!(manifests[0]["storeIds"], serde_json::json!([3]));
    assert_eq!(manifests[0]["dump"]["sha256"].as_str().map(str::len), Some(64));
    let json_a = cli(
        &["backup", "list", "--to", &to, "--tenant", a.name.as_str(), "--json"],
        std::slice::from_ref(&az.env),
    )
    .await;
    let manifests_a: serde_json::Value = serde_json::from_str(&json_a.stdout).expect("JSON");
    let bytes = manifests_a[1]["dump"]["bytes"].as_u64().expect("dump size");
    assert!(bytes > 65_536, "the dump ({bytes} bytes) should span at least two upload parts");

    // Restore A's newest backup into a brand-new (not even migrated) database.
    let fresh = TestDb::empty().await;
    let run =
        cli(&["restore", "--from", &to, "--tenant", a.name.as_str()], &[into(&fresh), az.env.clone()]).await;
    assert!(run.ok, "{run:?}");
    assert!(run.last_line().contains(&format!("OK {} restored", ids_a[2])), "{run:?}");
    assert!(run.last_line().contains("row counts and fingerprints match the manifest"), "{run:?}");
    assert!(run.stderr.contains("restore: retail.orders"), "per-table counts are reported: {run:?}");
    assert_restored_tenant_view(&source, &a, &fresh, &b).await;

    // And B's, by the URL of its manifest.
    let fresh_b = TestDb::empty().await;
    let manifest_url = format!("{to}/{id_b}.manifest.json");
    let run = cli(&["restore", "--from", &manifest_url], &[into(&fresh_b), az.env.clone()]).await;
    assert!(run.ok, "{run:?}");
    assert_restored_tenant_view(&source, &b, &fresh_b, &a).await;
}

/// The backup ID from the final `backup: OK <url>/<id>.pgdump.zst ...` line.
fn listed_id_from(run: &Run) -> String {
    let url = run.last_line().split_whitespace().nth(2).unwrap_or_else(|| panic!("{run:?}"));
    url.rsplit('/')
        .next()
        .and_then(|n| n.strip_suffix(".pgdump.zst"))
        .unwrap_or_else(|| panic!("{url}"))
        .to_owned()
}

/// A pg_dump that does all the work and then reports failure (as one would after a lost
/// connection at the very end): the upload must be abandoned, not completed.
fn failing_pg_dump_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let real = pg_bin_dir().join("pg_dump");
    let script = format!(
        "#!/bin/sh\n'{}' \"$@\"\necho 'pg_dump: error: simulated failure after the data' >&2\nexit 1\n",
        real.display()
    );
    let path = dir.path().join("pg_dump");
    std::fs::write(&path, script).expect("write wrapper");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    dir
}

#[tokio::test]
async fn a_failed_backup_leaves_nothing_and_prunes_nothing() {
    let source = seeded().await;
    let a = tenant(&source, &[4]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let to = format!("file://{}/backups", dir.path().display());
    for _ in 0..2 {
        let run = cli(&["backup", "--to", &to], &[as_tenant(&source, &a)]).await;
        assert!(run.ok, "{run:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let files_before = files_in(&dir.path().join("backups"));
    assert_eq!(files_before.len(), 4, "{files_before:?}");

    let broken = failing_pg_dump_dir();
    let parts = vars(&[("MCP_FLEET_BACKUP_PART_SIZE", "65536")]);
    for store_env in [Vec::new(), azurite().env.clone()] {
        let target =
            if store_env.is_empty() { to.clone() } else { format!("az://backups/{}", unique_name("fail")) };
        let run = cli(
            &["backup", "--to", &target, "--keep-last", "1", "--pg-bin-dir", broken.path().to_str().unwrap()],
            &[as_tenant(&source, &a), store_env.clone(), parts.clone()],
        )
        .await;
        assert!(!run.ok, "{run:?}");
        let last = run.last_line();
        assert!(last.contains("backup FAILED (tool)"), "{run:?}");
        assert!(last.contains("simulated failure"), "{run:?}");
        assert!(last.contains("nothing was kept"), "{run:?}");
        if !store_env.is_empty() {
            let list = cli(&["backup", "list", "--to", &target], &[store_env]).await;
            assert!(list.ok, "{list:?}");
            assert!(listed_ids(&list).is_empty() && !list.stderr.contains("INCOMPLETE"), "{list:?}");
        }
    }
    // Nothing new, nothing pruned (keep-last 1 applies only after a success).
    assert_eq!(files_in(&dir.path().join("backups")), files_before);
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn file_round_trip_refuses_a_corrupt_dump_and_a_non_empty_target() {
    let source = seeded().await;
    let (a, b) = (tenant(&source, &[5, 6]).await, tenant(&source, &[7]).await);
    let dir = tempfile::tempdir().expect("temp dir");
    let to = format!("file://{}/zava", dir.path().display());
    let run = cli(&["backup", "--to", &to, "--keep-within", "30d"], &[as_tenant(&source, &a)]).await;
    assert!(run.ok, "{run:?}");
    let id = listed_id_from(&run);

    let fresh = TestDb::empty().await;
    let run = cli(&["restore", "--from", &to], &[into(&fresh)]).await;
    assert!(run.ok, "{run:?}");
    assert_restored_tenant_view(&source, &a, &fresh, &b).await;

    // Now that database holds rows: a second restore is refused and changes nothing.
    let run = cli(&["restore", "--from", &to], &[into(&fresh)]).await;
    assert!(!run.ok, "{run:?}");
    assert!(run.last_line().contains("restore FAILED (refused)"), "{run:?}");
    assert!(
        run.last_line().contains("is not empty") && run.last_line().contains("--allow-non-empty"),
        "{run:?}"
    );
    // So is a restore into the (seeded) source.
    let run = cli(&["restore", "--from", &to], &[into(&source)]).await;
    assert!(!run.ok && run.last_line().contains("is not empty"), "{run:?}");

    // One flipped byte in the dump: refused by checksum before the target is touched.
    let dump = dir.path().join("zava").join(format!("{id}.pgdump.zst"));
    let mut bytes = std::fs::read(&dump).expect("dump file");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&dump, bytes).expect("corrupt the dump");
    let untouched = TestDb::empty().await;
    let run = cli(&["restore", "--from", &format!("{to}/{id}.pgdump.zst")], &[into(&untouched)]).await;
    assert!(!run.ok, "{run:?}");
    assert!(run.last_line().contains("restore FAILED (integrity)"), "{run:?}");
    assert!(run.last_line().contains("does not match its manifest"), "{run:?}");
    let mut conn = admin_conn(&untouched).await;
    let tables: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(tables, 0, "a refused restore must not create anything");
    // `backup list` now calls it broken? No: sizes still match; only the checksum tells.
    let list = cli(&["backup", "list", "--to", &to], &[]).await;
    assert_eq!(listed_ids(&list), vec![id]);
}

#[tokio::test]
async fn s3_round_trip_through_s3rver() {
    let s3 = s3rver();
    let source = seeded().await;
    let (a, b) = (tenant(&source, &[8]).await, tenant(&source, &[1]).await);
    let to = format!("s3://backups/{}", unique_name("zava"));
    let parts = vars(&[("MCP_FLEET_BACKUP_PART_SIZE", "65536")]);
    let run =
        cli(&["backup", "--to", &to, "--keep-last", "3"], &[as_tenant(&source, &a), s3.env.clone(), parts])
            .await;
    assert!(run.ok, "{run:?}");
    let fresh = TestDb::empty().await;
    let run = cli(&["restore", "--from", &to], &[into(&fresh), s3.env.clone()]).await;
    assert!(run.ok, "{run:?}");
    assert_restored_tenant_view(&source, &a, &fresh, &b).await;
}

#[tokio::test]
async fn full_backup_as_admin_restores_every_tenant_and_the_tenancy_mapping() {
    let source = seeded().await;
    let a = tenant(&source, &[2]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let to = format!("file://{}/full", dir.path().display());
    let admin = vec![
        ("MCP_FLEET_DATABASE_URL".to_owned(), url_without_password(&source, "postgres")),
        ("MCP_FLEET_DATABASE_PASSWORD".to_owned(), source.cluster().superuser_password().to_owned()),
    ];
    let run = cli(&["backup", "--full", "--to", &to], &[admin]).await;
    assert!(run.ok, "{run:?}");
    assert!(run.last_line().contains("/_full."), "{run:?}");
    let fresh = TestDb::empty().await;
    let run = cli(&["restore", "--from", &to], &[into(&fresh)]).await;
    assert!(run.ok, "{run:?}");
    let mut src = admin_conn(&source).await;
    let mut dst = admin_conn(&fresh).await;
    assert_eq!(table_checksums(&mut dst).await, table_checksums(&mut src).await);
    let mapped: Vec<i32> =
        sqlx::query_scalar("SELECT store_id FROM tenancy.tenant_stores WHERE tenant_name = $1")
            .bind(a.name.as_str())
            .fetch_all(&mut dst)
            .await
            .unwrap();
    assert_eq!(mapped, a.stores);
}

#[tokio::test]
async fn backups_are_refused_for_the_wrong_role_or_tenant_and_say_why() {
    let source = seeded().await;
    let (a, b) = (tenant(&source, &[3]).await, tenant(&source, &[4]).await);
    let dir = tempfile::tempdir().expect("temp dir");
    let to = format!("file://{}/x", dir.path().display());

    // A tenant backup as a role that bypasses row-level security would hold every tenant's rows.
    let admin = vec![
        ("MCP_FLEET_DATABASE_URL".to_owned(), url_without_password(&source, "postgres")),
        ("MCP_FLEET_DATABASE_PASSWORD".to_owned(), source.cluster().superuser_password().to_owned()),
    ];
    let run = cli(&["backup", "--to", &to], &[admin]).await;
    assert!(!run.ok && run.last_line().contains("bypasses row-level security"), "{run:?}");

    // A's role, labelled as B.
    let run = cli(&["backup", "--to", &to, "--tenant", b.name.as_str()], &[as_tenant(&source, &a)]).await;
    assert!(!run.ok && run.last_line().contains(&format!("belongs to tenant {}", a.name)), "{run:?}");

    // A wrong password fails without echoing it.
    let mut wrong = as_tenant(&source, &a);
    wrong[1].1 = "not-the-password-42".into();
    let run = cli(&["backup", "--to", &to], &[wrong]).await;
    assert!(!run.ok && run.last_line().contains("FAILED"), "{run:?}");
    assert!(!run.stderr.contains("not-the-password-42") && !run.stderr.contains(&a.password), "{run:?}");

    // Without table-level SELECT on customers pg_dump cannot lock it: refused up front, with the fix.
    sqlx::query("REVOKE SELECT ON retail.customers FROM mcpfleet_pii").execute(&source.admin).await.unwrap();
    let run = cli(&["backup", "--to", &to], &[as_tenant(&source, &a)]).await;
    assert!(
        !run.ok && run.last_line().contains("GRANT SELECT ON retail.customers TO mcpfleet_pii"),
        "{run:?}"
    );
    assert!(files_in(&dir.path().join("x")).is_empty());
}
