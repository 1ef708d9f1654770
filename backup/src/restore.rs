//! Restoring one backup into an empty database: read the manifest, refuse a target that holds
//! data (unless told), download the dump to a temporary file while hashing it and refuse it when
//! the SHA-256 or size differ from the manifest, create the schema with the embedded migrations,
//! load the data with `pg_restore --data-only` in ONE transaction with every constraint checked,
//! move identity sequences past the restored ids, then recount and re-fingerprint every table
//! and fail loudly on any difference from the manifest. Database, process, file and object-store I/O.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Stdio;

use futures::StreamExt as _;
use object_store::ObjectStoreExt as _;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use sqlx::postgres::PgPoolOptions;

use super::BackupError;
use super::catalog;
use super::location::{Location, split_object_url};
use super::manifest::{Manifest, ObjectName};
use super::pg::{self, DbTarget, quote_ident};
use mcp_fleet_core::progress::Progress;

#[derive(Debug)]
pub struct RestorePlan {
    pub location: Location,
    pub id: String,
    pub target: DbTarget,
    pub allow_non_empty: bool,
    /// Where the downloaded dump waits while it is verified (default: the system temp dir).
    pub work_dir: Option<PathBuf>,
    pub pg_bin_dir: Option<PathBuf>,
}

#[derive(Debug)]
pub struct RestoreOutcome {
    pub manifest: Manifest,
    /// Each restored table as the target now holds it.
    pub tables: Vec<super::TableStats>,
    /// Whether counts and fingerprints were compared with the manifest (not when the target
    /// already held rows).
    pub verified: bool,
}

/// Finds the backup `from` names: the URL of its manifest or dump, or a folder (then its newest
/// complete backup, of `tenant` when given).
pub async fn resolve(
    from: &str,
    tenant: Option<&str>,
    env: Vec<(String, String)>,
) -> Result<(Location, String), BackupError> {
    if let Some((folder, name)) = split_object_url(from)
        && let Some(parsed) = ObjectName::parse(&name)
    {
        return Ok((Location::open(&folder, env)?, parsed.id().to_owned()));
    }
    let loc = Location::open(from, env)?;
    let cat = catalog::scan(&loc).await?;
    let candidates: Vec<&catalog::Complete> = match tenant {
        Some(t) => cat.complete_of(t).collect(),
        None => {
            let subjects = cat.subjects();
            if subjects.len() > 1 {
                return Err(BackupError::Refused(format!(
                    "{loc} holds backups of {}; say which with --tenant (or name one backup's manifest URL)",
                    subjects.join(", ")
                )));
            }
            cat.complete.iter().collect()
        }
    };
    let newest = candidates.last().ok_or_else(|| {
        BackupError::Refused(format!(
            "no complete backup{} in {loc}",
            tenant.map(|t| format!(" of tenant {t}")).unwrap_or_default()
        ))
    })?;
    Ok((loc, newest.manifest.id.clone()))
}

/// Tables other than mcp-fleet's own, or any of ours holding a row, make a database non-empty.
async fn contents(conn: &mut PgConnection) -> Result<Vec<String>, BackupError> {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
           AND NOT (n.nspname = 'public' AND c.relname = '_sqlx_migrations')
         ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await?;
    let ours = |s: &str| super::dump::FULL_SCHEMAS.contains(&s);
    let mut found: Vec<String> = tables
        .iter()
        .filter(|(s, _)| !ours(s))
        .map(|(s, t)| format!("{s}.{t} (not an mcp-fleet table)"))
        .collect();
    for (s, t) in tables.iter().filter(|(s, _)| ours(s)) {
        let sql = format!("SELECT EXISTS (SELECT 1 FROM {}.{})", quote_ident(s), quote_ident(t));
        let has_rows: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(&mut *conn).await?;
        if has_rows {
            found.push(format!("{s}.{t} (has rows)"));
        }
    }
    Ok(found)
}

pub async fn run(plan: &RestorePlan, progress: &Progress) -> Result<RestoreOutcome, BackupError> {
    let loc = &plan.location;
    let manifest = catalog::read_manifest(loc, &plan.id).await?;
    let expected = mcp_fleet_core::migrations::expected_version();
    if manifest.schema_version > expected {
        return Err(BackupError::Refused(format!(
            "backup {} was taken at schema version {} but this build knows only up to {expected}; restore \
             with the mcp-fleet-server version that took it ({}) or newer",
            manifest.id, manifest.schema_version, manifest.tool_version
        )));
    }
    let pg_restore = pg::pg_tool("pg_restore", plan.pg_bin_dir.as_deref())?;

    // Cheap checks first: may we write there, and is it empty?
    let mut conn = plan.target.connect("mcp-fleet-restore").await?;
    pg::prepare_session(&mut conn).await?;
    let (role, database, privileged): (String, String, bool) = sqlx::query_as(
        "SELECT current_user::text, current_database()::text, r.rolsuper OR r.rolbypassrls
         FROM pg_roles r WHERE r.rolname = current_user",
    )
    .fetch_one(&mut conn)
    .await?;
    if !privileged {
        return Err(BackupError::Refused(format!(
            "role {role} cannot restore: the retail tables FORCE row-level security, so loading rows needs a \
             superuser or a BYPASSRLS role (the same as `seed`)"
        )));
    }
    let found = contents(&mut conn).await?;
    let was_empty = found.is_empty();
    if !was_empty && !plan.allow_non_empty {
        let mut shown: Vec<String> = found.iter().take(5).cloned().collect();
        if found.len() > 5 {
            shown.push(format!("and {} more", found.len() - 5));
        }
        return Err(BackupError::Refused(format!(
            "database {database} is not empty ({}); restore into an empty database, or pass --allow-non-empty \
             to load into it anyway (rows that collide make the whole restore roll back)",
            shown.join(", ")
        )));
    }
    progress.step(&format!(
        "restoring {} ({} rows in {} tables, {} tenant) into database {database}",
        manifest.id,
        manifest.total_rows(),
        manifest.tables.len(),
        manifest.tenant.as_deref().unwrap_or("every")
    ));

    // Download and verify before anything is written to the target.
    let file = download_verified(loc, &manifest, plan.work_dir.as_deref(), progress).await?;
    progress.step(&format!("checksum verified: sha256 {}", manifest.dump.sha256));

    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(plan.target.connect_options("mcp-fleet-restore")?)
        .await?;
    let applied = mcp_fleet_core::migrations::migrate(&pool)
        .await
        .map_err(|e| BackupError::Database(format!("{e:#}")))?;
    pool.close().await;
    if !applied.is_empty() {
        progress.step(&format!("schema created by migrations {applied:?}"));
    }

    load(&pg_restore, &plan.target, file).await?;
    progress.step("data loaded in one transaction");

    let tables = pg::tables(&mut conn, &manifest.schemas).await?;
    reset_sequences(&mut conn, &manifest.schemas).await?;
    let restored = pg::table_stats(&mut conn, &tables).await?;
    if was_empty {
        let mut problems = Vec::new();
        for want in &manifest.tables {
            match restored.iter().find(|t| t.schema == want.schema && t.table == want.table) {
                None => problems.push(format!("{} is missing", want.qualified())),
                Some(got) if got.rows != want.rows => problems.push(format!(
                    "{}: {} rows, the backup has {}",
                    want.qualified(),
                    got.rows,
                    want.rows
                )),
                Some(got) if got.fingerprint != want.fingerprint => {
                    problems.push(format!("{}: same row count but different contents", want.qualified()))
                }
                Some(_) => {}
            }
        }
        if !problems.is_empty() {
            return Err(BackupError::Integrity(format!(
                "the restored data differs from the backup's manifest: {}",
                problems.join("; ")
            )));
        }
    }
    Ok(RestoreOutcome { manifest, tables: restored, verified: was_empty })
}

/// Streams the dump into a temporary file, hashing it; refuses it unless size and SHA-256 match.
async fn download_verified(
    loc: &Location,
    manifest: &Manifest,
    work_dir: Option<&std::path::Path>,
    progress: &Progress,
) -> Result<tempfile::NamedTempFile, BackupError> {
    let name = &manifest.dump.name;
    let got = loc.store.get(&loc.object(name)).await.map_err(|e| loc.error(&format!("reading {name}"), e))?;
    let dir = work_dir.map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
    let mut file = tempfile::Builder::new()
        .prefix("mcp-fleet-restore-")
        .tempfile_in(&dir)
        .map_err(|e| BackupError::Io(format!("temporary file in {}: {e}", dir.display())))?;
    let mut sha = Sha256::new();
    let mut size = 0u64;
    let mut stream = got.into_stream();
    let mut next_report = 64u64 << 20;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| loc.error(&format!("reading {name}"), e))?;
        sha.update(&chunk);
        size += chunk.len() as u64;
        file.write_all(&chunk)
            .map_err(|e| BackupError::Io(format!("writing {}: {e}", file.path().display())))?;
        if size >= next_report {
            next_report += 64 << 20;
            progress.step(&format!(
                "downloaded {} of {}",
                super::dump::mib(size),
                super::dump::mib(manifest.dump.bytes)
            ));
        }
    }
    file.flush()?;
    let digest = hex::encode(sha.finalize());
    if size != manifest.dump.bytes || digest != manifest.dump.sha256 {
        return Err(BackupError::Integrity(format!(
            "{name} does not match its manifest (size {size}, manifest {}; sha256 {digest}, manifest {}): the dump is \
             corrupt or was changed; refusing to restore it",
            manifest.dump.bytes, manifest.dump.sha256
        )));
    }
    Ok(file)
}

/// `pg_restore --data-only --single-transaction`, fed the decompressed dump on stdin.
async fn load(
    pg_restore: &std::path::Path,
    target: &DbTarget,
    file: tempfile::NamedTempFile,
) -> Result<(), BackupError> {
    let mut cmd = tokio::process::Command::new(pg_restore);
    cmd.args(["--data-only", "--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges"]);
    target.configure(&mut cmd, "mcp-fleet-restore-load");
    let stderr_file = tempfile::tempfile()?;
    cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(stderr_file.try_clone()?).kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| BackupError::Tool {
        tool: "pg_restore",
        message: format!("cannot start {}: {e}", pg_restore.display()),
    })?;
    let stdin = child.stdin.take().ok_or_else(|| BackupError::Io("pg_restore has no stdin".into()))?;
    let mut stdin = stdin.into_owned_fd().map(std::fs::File::from)?;
    let fed = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let mut decoder = zstd::stream::read::Decoder::new(file.reopen()?)?;
        std::io::copy(&mut decoder, &mut stdin)?;
        stdin.flush()
    })
    .await
    .map_err(|e| BackupError::Io(e.to_string()))?;
    let status = child.wait().await?;
    let mut stderr_text = String::new();
    {
        use std::io::{Read as _, Seek as _};
        let mut f = stderr_file;
        let _ = f.seek(std::io::SeekFrom::Start(0));
        let _ = f.read_to_string(&mut stderr_text);
    }
    if !status.success() {
        return Err(BackupError::Tool {
            tool: "pg_restore",
            message: format!(
                "{status}, nothing was restored (one transaction): {}",
                pg::tail(&stderr_text, 6)
            ),
        });
    }
    fed.map_err(|e| BackupError::Integrity(format!("decompressing the dump: {e}")))?;
    Ok(())
}

/// Every identity or serial column's sequence, moved past the largest restored value.
async fn reset_sequences(conn: &mut PgConnection, schemas: &[String]) -> Result<(), BackupError> {
    let cols: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text, a.attname::text, s.seq
         FROM pg_attribute a
         JOIN pg_class c ON c.oid = a.attrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         CROSS JOIN LATERAL (SELECT pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname) AS seq) s
         WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
           AND s.seq IS NOT NULL",
    )
    .bind(schemas)
    .fetch_all(&mut *conn)
    .await?;
    for (schema, table, column, seq) in cols {
        let sql = format!(
            "SELECT setval($1::regclass, coalesce((SELECT max({}) FROM {}.{}), 0) + 1, false)",
            quote_ident(&column),
            quote_ident(&schema),
            quote_ident(&table)
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&seq).execute(&mut *conn).await?;
    }
    Ok(())
}
