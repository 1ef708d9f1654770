//! Nothing the SQL validator accepts escapes the read-only transaction, on a real PostgreSQL:
//! the fuzz seed corpus (known injection strings), the valid analytics seeds and deterministic
//! mutations of them go through `sql_guard::validate`; every accepted query then runs the way
//! `execute_sales_query` runs it (`TenantDb::read_only` for an `--auth none` caller and for a
//! narrowed one, the same row-cap wrapper, the transaction dropped). Afterwards, as superuser,
//! every retail, tenancy and audit table, every sequence and the catalogs (roles, relations,
//! functions, policies, settings...) are unchanged, and the tenant's session is back to its
//! login role and settings. Bounded in count and time.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_fleet_core::progress::Progress;
use mcp_fleet_core::server_config::TenancyMode;
use mcp_fleet_seed::{self as seed, SeedConfig};
use mcp_fleet_server::auth::identity::{Caller, Grants, StoreScope};
use mcp_fleet_server::db::TenantDb;
use mcp_fleet_sql_guard::{SqlPolicy, validate};
use mcp_fleet_testkit::TestDb;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool, Row};

/// Most accepted queries run: every accepted seed, plus up to this many generated ones.
const MAX_GENERATED: usize = 400;
/// Mutation attempts; most mutants are refused by the validator.
const MUTATION_ATTEMPTS: usize = 8_000;
/// Time for running queries; the test reports how many it got through.
const RUN_BUDGET: Duration = Duration::from_secs(90);
/// Fewer than this many queries run means the test proved little: fail rather than pass quietly.
const MIN_RUN: usize = 150;
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(1);
const ROW_CAP: usize = 20;
/// Catalogs and tables are compared this often (and at the end).
const CHECK_EVERY: usize = 100;
/// SQLSTATE of a write refused in a READ ONLY transaction: the validator let a write through.
const READ_ONLY_VIOLATION: &str = "25006";
/// Outcomes that mean the session or its transaction broke: connection errors (08), invalid
/// transaction state (25), operator intervention such as a terminated backend (57P), and
/// failures outside the database.
const BROKEN: &[&str] = &["08", "25", "57P", "io", "pool", "client", "hung"];

/// Roles and server settings are cluster-wide: the two tests take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn accepted_queries_change_nothing_outside_their_read_only_transaction() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let queries = accepted_queries();
    let db = seeded().await;
    let tenant = support::tenant(&db, &[1, 2]).await;
    // One connection, so every check of the session looks at the session the queries ran in.
    let options = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(db.cluster().port)
        .username(&tenant.name.login_role())
        .password(&tenant.password)
        .database(&db.name)
        .disable_statement_logging();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .expect("tenant login");
    let tenant_db = TenantDb::with_pool(pool.clone(), TenancyMode::Dedicated, STATEMENT_TIMEOUT);

    // `--auth none` (every grant, the login role) and an OIDC-like caller without PII access,
    // narrowed to one store (SET LOCAL ROLE to the group role and the store-scope setting).
    let developer = caller(&tenant.name, StoreScope::Tenant, Grants::everything());
    let narrowed = caller(
        &tenant.name,
        StoreScope::Stores(vec![1]),
        Grants { roles: vec!["analyst".into()], tools: None, pii: false, row_cap: Some(5) },
    );

    let tables = table_names(&db.admin).await;
    assert!(tables.iter().any(|t| t == "audit.tool_calls"), "{tables:?}");
    let before = snapshot(&db.admin, &tables).await;
    let session = session_state(&pool).await;
    assert_eq!(session.role, tenant.name.login_role());

    let started = Instant::now();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    // The first query of each failing SQLSTATE, printed at the end.
    let mut examples: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut refused_writes = Vec::new();
    let mut run = 0;
    let mut checked_up_to = 0;
    for (index, sql) in queries.iter().enumerate() {
        if started.elapsed() > RUN_BUDGET {
            break;
        }
        let who = if index % 2 == 0 { &developer } else { &narrowed };
        let (outcome, message) = run_like_the_tool(&tenant_db, who, sql).await;
        if outcome == READ_ONLY_VIOLATION {
            refused_writes.push(sql.clone());
        } else {
            assert!(
                !BROKEN.iter().any(|broken| outcome.starts_with(broken)),
                "{outcome} ({message}) from an accepted query (the session or its transaction broke):\n{sql}"
            );
        }
        if outcome != "ok" {
            examples.entry(outcome.clone()).or_insert_with(|| (message, sql.chars().take(300).collect()));
        }
        *outcomes.entry(outcome).or_default() += 1;
        run += 1;

        let now = session_state(&pool).await;
        assert_eq!(now, session, "the session was not back to normal after:\n{sql}");
        if run % CHECK_EVERY == 0 {
            let changed = differences(&before, &snapshot(&db.admin, &tables).await);
            assert!(
                changed.is_empty(),
                "changed outside the transaction: {changed:?}, by one of these queries:\n{}",
                queries[checked_up_to..=index].join("\n---\n")
            );
            checked_up_to = index + 1;
        }
    }
    let after = snapshot(&db.admin, &tables).await;
    assert_eq!(differences(&before, &after), Vec::<String>::new(), "changed outside the transaction");
    assert!(
        refused_writes.is_empty(),
        "accepted, then refused by PostgreSQL as a write:\n{}",
        refused_writes.join("\n---\n")
    );
    println!(
        "fuzz corpus on PostgreSQL: {} accepted queries, {run} run in {:.1}s, outcomes {outcomes:?}",
        queries.len(),
        started.elapsed().as_secs_f64()
    );
    for (outcome, (message, sql)) in &examples {
        println!("  {outcome} {message:?}, e.g. {}", sql.replace('\n', " "));
    }
    assert!(
        run >= MIN_RUN.min(queries.len()),
        "only {run} of {} queries ran within {RUN_BUDGET:?}",
        queries.len()
    );
    assert!(
        outcomes.get("ok").copied().unwrap_or(0) * 2 >= run,
        "most accepted queries should run: {outcomes:?}"
    );
}

/// The checks above can fail: a session-level change, a leftover lock, a sequence advanced, a
/// role created or a row written each show up.
#[tokio::test]
async fn the_checks_notice_what_escapes_a_transaction() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let db = seeded().await;
    let tenant = support::tenant(&db, &[3]).await;
    let tables = table_names(&db.admin).await;
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url_as(&tenant.name.login_role(), &tenant.password))
        .await
        .expect("tenant login");

    let session = session_state(&pool).await;
    for (escape, undo) in [
        ("SET work_mem = '7MB'", "RESET work_mem"),
        ("SELECT pg_advisory_lock(42)", "SELECT pg_advisory_unlock(42)"),
        ("LISTEN fuzz", "UNLISTEN fuzz"),
        ("PREPARE fuzz AS SELECT 1", "DEALLOCATE fuzz"),
        ("BEGIN", "ROLLBACK"),
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(escape)).execute(&pool).await.expect(escape);
        assert_ne!(session_state(&pool).await, session, "{escape} went unnoticed");
        sqlx::raw_sql(sqlx::AssertSqlSafe(undo)).execute(&pool).await.expect(undo);
        assert_eq!(session_state(&pool).await, session, "{undo} did not undo {escape}");
    }

    let before = snapshot(&db.admin, &tables).await;
    for (escape, changed) in [
        ("CREATE ROLE fuzz_escape", "catalog roles"),
        ("CREATE TABLE public.fuzz_escape (x int)", "catalog relations"),
        (
            "INSERT INTO audit.tool_calls (tenant, tool, outcome) VALUES ('x', 'y', 'ok')",
            "table audit.tool_calls",
        ),
        ("SELECT nextval('audit.tool_calls_call_id_seq')", "catalog sequences"),
        ("UPDATE retail.stores SET store_name = store_name || '!' WHERE store_id = 1", "table retail.stores"),
        ("ALTER SYSTEM SET work_mem = '7MB'", "catalog server configuration"),
    ] {
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(escape)).execute(&db.admin).await {
            panic!("{escape}: {e}");
        }
        let found = differences(&before, &snapshot(&db.admin, &tables).await);
        assert!(found.iter().any(|d| d.starts_with(changed)), "{escape}: {found:?}");
    }
    sqlx::raw_sql("ALTER SYSTEM RESET work_mem").execute(&db.admin).await.expect("reset");
}

async fn seeded() -> TestDb {
    TestDb::from_template("seeded-small", |pool| async move {
        seed::run(&pool, &SeedConfig::small(), &Progress::quiet()).await.expect("seed");
    })
    .await
}

fn caller(tenant: &mcp_fleet_core::TenantName, scope: StoreScope, grants: Grants) -> Caller {
    Caller {
        tenant: tenant.clone(),
        subject: "fuzz-corpus".into(),
        scope,
        grants: Arc::new(grants),
        request_id: "fuzz-corpus".into(),
    }
}

/// What `execute_sales_query` does after validation, for `sql` as validated: a read-only
/// transaction bound to the caller, the row-cap wrapper, fetch, drop. Returns `ok` or the
/// SQLSTATE (or a short label for failures outside the database), and the error message.
async fn run_like_the_tool(db: &TenantDb, caller: &Caller, sql: &str) -> (String, String) {
    let capped = format!("SELECT * FROM (\n{sql}\n) AS mcp_fleet_result LIMIT {}", ROW_CAP + 1);
    let attempt = async {
        let mut tx = db.read_only(caller).await.map_err(|e| format!("begin: {e}"))?;
        let result = sqlx::query(sqlx::AssertSqlSafe(capped)).persistent(false).fetch_all(&mut *tx).await;
        drop(tx);
        Ok::<_, String>(result)
    };
    let (code, message) = match tokio::time::timeout(STATEMENT_TIMEOUT * 10, attempt).await {
        Err(_) => ("hung".into(), "past the statement timeout".into()),
        Ok(Err(begin)) => ("io".into(), begin),
        Ok(Ok(Ok(_rows))) => ("ok".into(), String::new()),
        Ok(Ok(Err(sqlx::Error::Database(e)))) => {
            (e.code().map(|c| c.into_owned()).unwrap_or_else(|| "db".into()), e.message().to_owned())
        }
        Ok(Ok(Err(e @ (sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)))) => {
            ("pool".into(), e.to_string())
        }
        Ok(Ok(Err(e @ sqlx::Error::Io(_)))) => ("io".into(), e.to_string()),
        Ok(Ok(Err(other))) => ("client".into(), other.to_string()),
    };
    (code, message)
}

/// The session as the tool's connection sees it between calls.
#[derive(Debug, PartialEq, Eq)]
struct Session {
    role: String,
    session_user: String,
    settings: Vec<String>,
    backend_pid: i32,
    /// Prepared statements (SQL-level), cursors, LISTEN channels, advisory locks, temp schema.
    leftovers: Vec<i64>,
    in_transaction: bool,
}

/// Uses the simple protocol: an extended-protocol query would itself show as an open cursor, and
/// would start its transaction before its statement.
async fn session_state(pool: &PgPool) -> Session {
    let row = sqlx::raw_sql(
        "SELECT current_user::text, session_user::text,
                ARRAY[current_setting('search_path'), current_setting('statement_timeout'),
                      current_setting('transaction_read_only'), current_setting('default_transaction_read_only'),
                      current_setting('role'), coalesce(current_setting('mcpfleet.store_scope', true), ''),
                      current_setting('row_security'), current_setting('work_mem')],
                pg_backend_pid(),
                ARRAY[(SELECT count(*) FROM pg_prepared_statements WHERE from_sql),
                      (SELECT count(*) FROM pg_cursors),
                      (SELECT count(*) FROM pg_listening_channels()),
                      (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()),
                      pg_my_temp_schema()::oid::bigint],
                now() <> statement_timestamp()",
    )
    .fetch_one(pool)
    .await
    .expect("read the session state");
    Session {
        role: row.get(0),
        session_user: row.get(1),
        settings: row.get(2),
        backend_pid: row.get(3),
        leftovers: row.get(4),
        in_transaction: row.get(5),
    }
}

/// The tables of the schemas the server's roles can reach, schema-qualified and quoted.
async fn table_names(admin: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname IN ('retail', 'tenancy', 'audit', 'public') AND c.relkind IN ('r', 'p')
         ORDER BY 1",
    )
    .fetch_all(admin)
    .await
    .expect("list the tables")
}

/// Catalog rows whose change would mean something escaped: columns that autovacuum and
/// statistics do not touch.
const CATALOGS: &[(&str, &str)] = &[
    (
        "roles",
        "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,
                rolbypassrls, rolconnlimit, rolvaliduntil, rolpassword IS NULL FROM pg_authid",
    ),
    ("role memberships", "SELECT roleid::regrole, member::regrole, admin_option FROM pg_auth_members"),
    ("role and database settings", "SELECT setdatabase, setrole, setconfig FROM pg_db_role_setting"),
    ("databases", "SELECT datname, datallowconn, datconnlimit, datacl FROM pg_database"),
    ("schemas", "SELECT nspname, nspowner::regrole, nspacl FROM pg_namespace"),
    (
        "relations",
        "SELECT c.oid::regclass, c.relkind, c.relowner::regrole, c.relacl, c.relrowsecurity,
                c.relforcerowsecurity, c.relpersistence FROM pg_class c",
    ),
    ("columns", "SELECT attrelid::regclass, attname, atttypid, attacl FROM pg_attribute WHERE attnum > 0"),
    (
        "functions",
        "SELECT p.oid::regprocedure, p.proowner::regrole, p.prosecdef, p.proacl, md5(p.prosrc) FROM pg_proc p",
    ),
    ("types", "SELECT oid::regtype FROM pg_type"),
    (
        "policies",
        "SELECT polname, polrelid::regclass, polcmd, polpermissive, polroles::regrole[],
                pg_get_expr(polqual, polrelid), pg_get_expr(polwithcheck, polrelid) FROM pg_policy",
    ),
    ("triggers", "SELECT tgname, tgrelid::regclass, tgenabled FROM pg_trigger"),
    ("event triggers", "SELECT evtname, evtevent, evtenabled FROM pg_event_trigger"),
    ("rules", "SELECT rulename, ev_class::regclass, ev_enabled FROM pg_rewrite"),
    ("extensions", "SELECT extname, extversion FROM pg_extension"),
    (
        "default privileges",
        "SELECT defaclrole::regrole, defaclnamespace, defaclobjtype, defaclacl FROM pg_default_acl",
    ),
    ("large objects", "SELECT oid, lomowner::regrole, lomacl FROM pg_largeobject_metadata"),
    ("publications", "SELECT pubname FROM pg_publication"),
    ("subscriptions", "SELECT subname FROM pg_subscription"),
    ("prepared transactions", "SELECT gid, owner FROM pg_prepared_xacts"),
    ("sequences", "SELECT schemaname, sequencename, last_value FROM pg_sequences"),
    ("server configuration", "SELECT name, setting, applied FROM pg_file_settings"),
    ("configuration loads", "SELECT pg_conf_load_time(), pg_postmaster_start_time()"),
];

/// A digest per table (all rows, as superuser, so row-level security hides nothing) and per
/// catalog query.
async fn snapshot(admin: &PgPool, tables: &[String]) -> BTreeMap<String, String> {
    let mut digests = BTreeMap::new();
    let queries = tables
        .iter()
        .map(|table| (format!("table {table}"), format!("SELECT * FROM {table}")))
        .chain(CATALOGS.iter().map(|(name, sql)| (format!("catalog {name}"), (*sql).to_owned())));
    for (name, query) in queries {
        let digest_sql = format!(
            "SELECT count(*) || ' rows ' || md5(coalesce(string_agg(r::text, E'\\n' ORDER BY r::text), ''))
             FROM ({query}) r"
        );
        let digest: String = sqlx::query_scalar(sqlx::AssertSqlSafe(digest_sql))
            .fetch_one(admin)
            .await
            .unwrap_or_else(|e| panic!("digest of {name}: {e}"));
        digests.insert(name, digest);
    }
    digests
}

fn differences(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    before
        .iter()
        .filter(|(name, digest)| after.get(*name) != Some(*digest))
        .map(|(name, digest)| format!("{name}: {digest} -> {:?}", after.get(name)))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The queries: seeds that pass, then generated ones.

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `dir`, sorted by name so the run is reproducible.
fn read_inputs(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut paths: Vec<PathBuf> =
        entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    paths.sort();
    paths
        .iter()
        .filter_map(|p| std::fs::read(p).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect()
}

/// Accepted queries as the validator renders them, each once: the seed corpus and the valid
/// seeds, any extra directories named in `MCP_FLEET_FUZZ_CORPUS` (for example the corpus a
/// `scripts/fuzz.sh` run grew under ~/.cache/mcp-fleet/fuzz/corpus/sql_guard), then mutants.
fn accepted_queries() -> Vec<String> {
    let policy = SqlPolicy::retail();
    let injections = read_inputs(&fuzz_dir().join("corpus/sql_guard"));
    let valid = read_inputs(&fuzz_dir().join("seeds/sql_guard"));
    assert!(injections.len() >= 50 && valid.len() >= 40, "seed directories under {}", fuzz_dir().display());

    let mut seen = HashSet::new();
    let mut accepted = Vec::new();
    let mut keep = |sql: &str, accepted: &mut Vec<String>| match validate(sql, &policy) {
        Ok(validated) if seen.insert(validated.sql.clone()) => {
            accepted.push(validated.sql);
            true
        }
        _ => false,
    };
    for sql in injections.iter().chain(&valid) {
        keep(sql, &mut accepted);
    }
    let seeds = accepted.len();
    assert!(seeds >= valid.len() / 2, "only {seeds} seeds pass the validator");

    let extra: Vec<String> = std::env::var_os("MCP_FLEET_FUZZ_CORPUS")
        .map(|dirs| std::env::split_paths(&dirs).flat_map(|d| read_inputs(&d)).collect())
        .unwrap_or_default();
    let mut generated = 0;
    for sql in &extra {
        if generated < MAX_GENERATED / 2 && keep(sql, &mut accepted) {
            generated += 1;
        }
    }

    let mut rng = XorShift(0x5EED_F0CC_AB1E_D00D);
    for _ in 0..MUTATION_ATTEMPTS {
        if generated >= MAX_GENERATED {
            break;
        }
        let base = &valid[rng.below(valid.len())];
        let donor = &injections[rng.below(injections.len())];
        if keep(&mutate(&mut rng, base, donor), &mut accepted) {
            generated += 1;
        }
    }
    println!("fuzz corpus on PostgreSQL: {seeds} seeds and {generated} generated queries accepted");
    assert!(generated >= MAX_GENERATED / 4, "only {generated} generated queries were accepted");
    accepted
}

/// Deterministic xorshift, so a failure is reproducible.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Pieces of SQL a model or an attacker might splice into an analytics query.
const FRAGMENTS: &[&str] = &[
    " WHERE 1 = 1",
    " LIMIT 3",
    " OFFSET 1",
    " ORDER BY 1",
    "::text",
    " || 'x'",
    " UNION ALL SELECT 1",
    ", (SELECT count(*) FROM retail.orders)",
    ", now()",
    " AND EXISTS (SELECT 1 FROM retail.stores)",
    ", generate_series(1, 1000) g",
    ", repeat('x', 100)",
    ", md5(random()::text)",
    ", current_user",
    ", current_database()",
    ", to_char(now(), 'YYYY')",
    " -- ; DELETE FROM retail.orders",
    " /* ; DROP TABLE retail.orders */",
    "'; DROP TABLE retail.orders; --",
    "$$;DELETE FROM retail.orders;$$",
    "E'\\'; DELETE FROM retail.orders; --'",
    "\"; DROP ROLE postgres; --",
    ";",
    "'",
    "(",
    ")",
    ",",
    " ",
];

/// One of a few shape-keeping rewrites (wrap in a subquery, CTE, set operation, string
/// literal), then up to three token or byte edits, some splicing from an injection string.
fn mutate(rng: &mut XorShift, base: &str, donor: &str) -> String {
    let base = base.trim().trim_end_matches(';');
    let quoted_donor = donor.trim().replace('\'', "''");
    let mut sql = match rng.below(8) {
        0 => format!("SELECT * FROM (\n{base}\n) AS w LIMIT {}", rng.below(50)),
        1 => format!("WITH w AS (\n{base}\n) SELECT count(*) FROM w"),
        2 => format!("SELECT EXISTS (\n{base}\n)"),
        3 => format!("SELECT * FROM (\n{base}\n) a UNION ALL SELECT * FROM (\n{base}\n) b"),
        4 => format!("SELECT '{quoted_donor}' AS s, length('{quoted_donor}')"),
        5 => format!("SELECT $q${}$q$ AS s", donor.replace("$q$", "")),
        _ => base.to_owned(),
    };
    for _ in 0..rng.below(4) {
        let mut at = rng.below(sql.len() + 1);
        while !sql.is_char_boundary(at) {
            at -= 1;
        }
        match rng.below(5) {
            0 | 1 => sql.insert_str(at, FRAGMENTS[rng.below(FRAGMENTS.len())]),
            2 => {
                let from = rng.below(donor.len() + 1);
                let end = (from + rng.below(24)).min(donor.len());
                if let Some(piece) = donor.get(from..end) {
                    sql.insert_str(at, piece);
                }
            }
            3 => {
                let end = (at + rng.below(10)).min(sql.len());
                if sql.is_char_boundary(end) {
                    sql.replace_range(at..end, "");
                }
            }
            _ => {
                // Replace a number with another one.
                if let Some(pos) = sql[at..].find(|c: char| c.is_ascii_digit()) {
                    let pos = at + pos;
                    sql.replace_range(pos..pos + 1, &rng.below(10).to_string());
                }
            }
        }
    }
    sql
}
