//! Taking one backup: `pg_dump` in an exported snapshot, its output streamed through zstd and
//! SHA-256 into a multipart upload (memory stays at a few upload parts whatever the database
//! size), row counts and fingerprints taken in the same snapshot, then the manifest, then — only
//! after both are stored — retention. On any failure the upload is aborted and no manifest is
//! written, so nothing can pass for a good backup. Database, process and object-store I/O.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use mcp_fleet_core::TenantName;
use object_store::buffered::BufWriter;
use object_store::{ObjectStoreExt as _, PutPayload};
use sha2::{Digest, Sha256};
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::BackupError;
use super::catalog;
use super::location::Location;
use super::manifest::{
    BackupKind, DumpObject, FORMAT, FULL_SUBJECT, Manifest, TableStats, backup_id, dump_name, manifest_name,
};
use super::pg::{self, DbTarget, quote_ident};
use super::retention::{self, Retention};
use mcp_fleet_core::progress::Progress;

/// An incomplete dump (no manifest) older than this cannot belong to a run still uploading: the
/// operator's backup Job has a deadline of 6 hours.
pub const INCOMPLETE_GRACE: Duration = Duration::from_secs(6 * 3600);
/// The schemas a tenant backup holds.
pub const TENANT_SCHEMAS: &[&str] = &["retail"];
/// The schemas a full backup holds.
pub const FULL_SCHEMAS: &[&str] = &["retail", "tenancy", "audit"];

/// What to back up, as whom, and where.
#[derive(Debug)]
pub struct BackupPlan {
    pub kind: BackupKind,
    /// For tenant backups: the tenant the role must belong to (`None`: the role's own tenant).
    pub tenant: Option<TenantName>,
    pub db: DbTarget,
    pub location: Location,
    pub zstd_level: i32,
    /// Upload part size (also the size below which the dump goes up in one request).
    pub part_size: usize,
    pub retention: Retention,
    pub pg_bin_dir: Option<PathBuf>,
}

#[derive(Debug)]
pub struct BackupOutcome {
    pub manifest: Manifest,
    /// IDs of older backups pruned by the retention rules.
    pub pruned: Vec<String>,
    /// IDs of incomplete dumps (failed runs) removed.
    pub removed_incomplete: Vec<String>,
    /// Retention could not finish; the new backup is stored all the same.
    pub prune_error: Option<String>,
}

struct Source {
    role: String,
    database: String,
    server_version: String,
    schema_version: i64,
    tenant: Option<String>,
    store_ids: Vec<i32>,
}

/// Who we are connected as, and whether that role may take the requested kind of backup.
async fn inspect(conn: &mut PgConnection, plan: &BackupPlan) -> Result<Source, BackupError> {
    let (role, database, bypass, server_version, migrated): (String, String, bool, String, bool) =
        sqlx::query_as(
            "SELECT current_user::text, current_database()::text, r.rolsuper OR r.rolbypassrls,
                current_setting('server_version'), to_regprocedure('tenancy.current_tenant()') IS NOT NULL
         FROM pg_roles r WHERE r.rolname = current_user",
        )
        .fetch_one(&mut *conn)
        .await?;
    if !migrated {
        return Err(BackupError::Refused(format!(
            "database {database} has no mcp-fleet schema (tenancy.current_tenant() is missing); is this the right database?"
        )));
    }
    let schema_version: i64 =
        sqlx::query_scalar("SELECT tenancy.schema_version()").fetch_one(&mut *conn).await?;
    match plan.kind {
        BackupKind::Full => {
            if !bypass {
                return Err(BackupError::Refused(format!(
                    "role {role} cannot take a full backup: it neither is a superuser nor has BYPASSRLS, so \
                     row-level security would hide rows; connect as an admin role, or drop --full for a tenant backup"
                )));
            }
            Ok(Source { role, database, server_version, schema_version, tenant: None, store_ids: Vec::new() })
        }
        BackupKind::Tenant => {
            if bypass {
                return Err(BackupError::Refused(format!(
                    "role {role} bypasses row-level security, so a tenant backup taken as it would hold every \
                     tenant's rows; connect as the tenant's login role (mcpt_<tenant>_login), or pass --full"
                )));
            }
            let tenant: Option<String> =
                sqlx::query_scalar("SELECT tenancy.current_tenant()").fetch_one(&mut *conn).await?;
            let Some(tenant) = tenant else {
                return Err(BackupError::Refused(format!(
                    "role {role} belongs to no tenant; connect as the tenant's login role (mcpt_<tenant>_login)"
                )));
            };
            if let Some(want) = &plan.tenant
                && want.as_str() != tenant
            {
                return Err(BackupError::Refused(format!(
                    "role {role} belongs to tenant {tenant}, not {want}; refusing to label one tenant's data as another's"
                )));
            }
            let store_ids: Vec<i32> =
                sqlx::query_scalar("SELECT tenancy.visible_store_ids()").fetch_one(&mut *conn).await?;
            Ok(Source { role, database, server_version, schema_version, tenant: Some(tenant), store_ids })
        }
    }
}

/// pg_dump locks every table it dumps (`LOCK TABLE ... IN ACCESS SHARE MODE`), which PostgreSQL
/// 15 allows only with table-level SELECT; column grants are not enough.
async fn check_table_privileges(
    conn: &mut PgConnection,
    role: &str,
    schemas: &[String],
) -> Result<(), BackupError> {
    let missing: Vec<String> = sqlx::query_scalar(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND NOT has_table_privilege(c.oid, 'SELECT')
         ORDER BY 1",
    )
    .bind(schemas)
    .fetch_all(&mut *conn)
    .await?;
    if missing.is_empty() {
        return Ok(());
    }
    Err(BackupError::Refused(format!(
        "role {role} lacks table-level SELECT on {}; pg_dump must lock every table it dumps, and column \
         privileges do not allow that. Apply the migration that grants it (for retail.customers: \
         GRANT SELECT ON retail.customers TO mcpfleet_pii), then retry",
        missing.join(", ")
    )))
}

/// Takes one backup; see the module documentation.
pub async fn run(plan: &BackupPlan, progress: &Progress) -> Result<BackupOutcome, BackupError> {
    let started_at = Utc::now();
    let pg_dump = pg::pg_tool("pg_dump", plan.pg_bin_dir.as_deref())?;
    let pg_dump_version = pg::tool_version(&pg_dump).await;

    let mut conn = plan.db.connect("mcp-fleet-backup").await?;
    pg::prepare_session(&mut conn).await?;
    let source = inspect(&mut conn, plan).await?;
    let schemas: Vec<String> = match plan.kind {
        BackupKind::Tenant => TENANT_SCHEMAS,
        BackupKind::Full => FULL_SCHEMAS,
    }
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    check_table_privileges(&mut conn, &source.role, &schemas).await?;
    let subject = source.tenant.clone().unwrap_or_else(|| FULL_SUBJECT.to_owned());
    let id = backup_id(&subject, started_at);
    progress.step(&format!(
        "{} backup {id} of database {} as {} to {}",
        match plan.kind {
            BackupKind::Tenant => "tenant",
            BackupKind::Full => "full",
        },
        source.database,
        source.role,
        plan.location
    ));

    // One snapshot for pg_dump and for our counts, so the manifest describes exactly the dump.
    let mut tx = conn.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY").await?;
    let snapshot: String = sqlx::query_scalar("SELECT pg_export_snapshot()").fetch_one(&mut *tx).await?;
    let tables = pg::tables(&mut tx, &schemas).await?;
    let sequences = pg::sequences(&mut tx, &schemas).await?;

    let mut cmd = tokio::process::Command::new(&pg_dump);
    cmd.args(["--format=custom", "--compress=0", "--data-only", "--lock-wait-timeout=60000"])
        .arg(format!("--snapshot={snapshot}"));
    if plan.kind == BackupKind::Tenant {
        cmd.arg("--enable-row-security");
    }
    for s in &schemas {
        cmd.arg(format!("--schema={}", quote_ident(s)));
    }
    for (schema, seq) in &sequences {
        cmd.arg(format!("--exclude-table-data={}.{}", quote_ident(schema), quote_ident(seq)));
    }
    plan.db.configure(&mut cmd, "mcp-fleet-backup-dump");
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| BackupError::Tool {
        tool: "pg_dump",
        message: format!("cannot start {}: {e}", pg_dump.display()),
    })?;
    let stdout = child.stdout.take().ok_or_else(|| BackupError::Io("pg_dump has no stdout".into()))?;
    let stderr = child.stderr.take().ok_or_else(|| BackupError::Io("pg_dump has no stderr".into()))?;
    let stderr_task = tokio::spawn(read_tail(stderr));

    let dump_path = plan.location.object(&dump_name(&id));
    let writer = BufWriter::with_capacity(plan.location.store.clone(), dump_path.clone(), plan.part_size)
        .with_max_concurrency(2);
    let (stats, pumped) = tokio::join!(
        pg::table_stats(&mut tx, &tables),
        pump(stdout, writer, plan.zstd_level, &plan.location, progress)
    );
    let _ = tx.rollback().await;
    let _ = conn.close().await;

    let (mut writer, pumped) = match pumped {
        Ok(p) => p,
        Err((writer, e)) => {
            let _ = child.kill().await;
            if let Some(mut w) = writer {
                let _ = w.abort().await;
            }
            return Err(e);
        }
    };
    let status = child.wait().await?;
    let stderr_text = stderr_task.await.unwrap_or_default();
    if !status.success() {
        let _ = writer.abort().await;
        return Err(BackupError::Tool {
            tool: "pg_dump",
            message: format!("{status}: {}", pg::tail(&stderr_text, 6)),
        });
    }
    let stats: Vec<TableStats> = match stats {
        Ok(s) => s,
        Err(e) => {
            let _ = writer.abort().await;
            return Err(e);
        }
    };
    if let Err(e) = writer.shutdown().await {
        delete_quietly(&plan.location, &dump_name(&id)).await;
        return Err(plan.location.error(&format!("completing the upload of {}", dump_name(&id)), e));
    }
    let stored = plan.location.store.head(&dump_path).await;
    match stored {
        Ok(meta) if meta.size == pumped.compressed => {}
        Ok(meta) => {
            delete_quietly(&plan.location, &dump_name(&id)).await;
            return Err(BackupError::Integrity(format!(
                "{} is {} bytes in the store but {} were uploaded; removed it",
                dump_name(&id),
                meta.size,
                pumped.compressed
            )));
        }
        Err(e) => {
            delete_quietly(&plan.location, &dump_name(&id)).await;
            return Err(plan.location.error(&format!("checking {}", dump_name(&id)), e));
        }
    }

    let manifest = Manifest {
        format: FORMAT,
        id: id.clone(),
        kind: plan.kind,
        tenant: source.tenant.clone(),
        store_ids: source.store_ids.clone(),
        started_at,
        finished_at: Utc::now(),
        tool: "mcp-fleet-server".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        schema_version: source.schema_version,
        database: source.database.clone(),
        role: source.role.clone(),
        server_version: source.server_version.clone(),
        pg_dump_version,
        schemas,
        dump: DumpObject {
            name: dump_name(&id),
            format: "pg_dump custom, data only, uncompressed".into(),
            compression: "zstd".into(),
            compression_level: plan.zstd_level,
            bytes: pumped.compressed,
            sha256: pumped.sha256,
            uncompressed_bytes: pumped.raw,
        },
        tables: stats,
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(|e| BackupError::Io(e.to_string()))?;
    if let Err(e) =
        plan.location.store.put(&plan.location.object(&manifest_name(&id)), PutPayload::from(json)).await
    {
        delete_quietly(&plan.location, &manifest_name(&id)).await;
        delete_quietly(&plan.location, &dump_name(&id)).await;
        return Err(plan.location.error(&format!("writing {}", manifest_name(&id)), e));
    }

    let (pruned, removed_incomplete, prune_error) =
        prune(&plan.location, &subject, &id, plan.retention).await;
    Ok(BackupOutcome { manifest, pruned, removed_incomplete, prune_error })
}

struct Pumped {
    raw: u64,
    compressed: u64,
    sha256: String,
}

type PumpError = (Option<BufWriter>, BackupError);

/// pg_dump's stdout → zstd → SHA-256 → the upload, with progress lines.
async fn pump(
    mut stdout: tokio::process::ChildStdout,
    mut writer: BufWriter,
    level: i32,
    loc: &Location,
    progress: &Progress,
) -> Result<(BufWriter, Pumped), PumpError> {
    let started = Instant::now();
    let mut last_report = Instant::now();
    let mut encoder = match zstd::stream::write::Encoder::new(Vec::with_capacity(256 << 10), level) {
        Ok(e) => e,
        Err(e) => return Err((Some(writer), BackupError::Io(format!("zstd: {e}")))),
    };
    let _ = encoder.include_checksum(true);
    let mut sha = Sha256::new();
    let (mut raw, mut compressed) = (0u64, 0u64);
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match stdout.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => return Err((Some(writer), BackupError::Io(format!("reading pg_dump's output: {e}")))),
        };
        if n == 0 {
            break;
        }
        raw += n as u64;
        if let Err(e) = std::io::Write::write_all(&mut encoder, &buf[..n]) {
            return Err((Some(writer), BackupError::Io(format!("zstd: {e}"))));
        }
        let out = std::mem::take(encoder.get_mut());
        if let Err(e) = upload(&mut writer, &mut sha, &mut compressed, out).await {
            return Err((Some(writer), loc.error("uploading", e)));
        }
        if last_report.elapsed() >= Duration::from_secs(2) {
            last_report = Instant::now();
            progress.step(&format!(
                "{} dumped, {} compressed ({:.1}x), {}/s",
                mib(raw),
                mib(compressed),
                raw as f64 / compressed.max(1) as f64,
                mib((raw as f64 / started.elapsed().as_secs_f64().max(1e-3)) as u64)
            ));
        }
    }
    let rest = match encoder.finish() {
        Ok(rest) => rest,
        Err(e) => return Err((Some(writer), BackupError::Io(format!("zstd: {e}")))),
    };
    if let Err(e) = upload(&mut writer, &mut sha, &mut compressed, rest).await {
        return Err((Some(writer), loc.error("uploading", e)));
    }
    Ok((writer, Pumped { raw, compressed, sha256: hex::encode(sha.finalize()) }))
}

async fn upload(
    writer: &mut BufWriter,
    sha: &mut Sha256,
    compressed: &mut u64,
    out: Vec<u8>,
) -> object_store::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    sha.update(&out);
    *compressed += out.len() as u64;
    writer.put(Bytes::from(out)).await
}

async fn read_tail(mut stderr: tokio::process::ChildStderr) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(n) = stderr.read(&mut buf).await {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
        if all.len() > 64 << 10 {
            all.drain(..all.len() - (32 << 10));
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

async fn delete_quietly(loc: &Location, name: &str) {
    let _ = loc.store.delete(&loc.object(name)).await;
}

/// Retention for `subject` after a successful backup `just_made`: prune by the rules (manifest
/// first, so a half-pruned backup is never "complete"), and remove incomplete dumps older than
/// [`INCOMPLETE_GRACE`].
async fn prune(
    loc: &Location,
    subject: &str,
    just_made: &str,
    rule: Retention,
) -> (Vec<String>, Vec<String>, Option<String>) {
    let cat = match catalog::scan(loc).await {
        Ok(c) => c,
        Err(e) => return (Vec::new(), Vec::new(), Some(format!("listing for retention: {e}"))),
    };
    let now = Utc::now();
    let mine: Vec<(String, chrono::DateTime<Utc>)> =
        cat.complete_of(subject).map(|c| (c.manifest.id.clone(), c.manifest.started_at)).collect();
    let mut errors = Vec::new();
    let mut pruned = Vec::new();
    for id in retention::to_prune(&mine, just_made, now, rule) {
        let gone = async {
            loc.store.delete(&loc.object(&manifest_name(&id))).await?;
            loc.store.delete(&loc.object(&dump_name(&id))).await
        };
        match gone.await {
            Ok(()) => pruned.push(id),
            Err(e) => errors.push(format!("{id}: {e}")),
        }
    }
    let mut removed = Vec::new();
    let grace = chrono::Duration::from_std(INCOMPLETE_GRACE).unwrap_or_else(|_| chrono::Duration::hours(6));
    for inc in cat.incomplete.iter().filter(|i| i.subject == subject && now - i.started_at > grace) {
        match loc.store.delete(&loc.object(&dump_name(&inc.id))).await {
            Ok(()) => removed.push(inc.id.clone()),
            Err(e) => errors.push(format!("{}: {e}", inc.id)),
        }
    }
    let error = (!errors.is_empty()).then(|| format!("could not delete {}", errors.join("; ")));
    (pruned, removed, error)
}

/// `12.3 MiB`.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}
