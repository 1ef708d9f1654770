//! The commands' edges: resolve flags, environment and config file into plans, run them, and
//! print progress on stderr and a final line that says what happened (a failure ends in an error,
//! so the process exits non-zero and a CronJob's Job fails visibly). `backup list` prints on
//! stdout. Reads files and the environment.

use std::path::Path;

use anyhow::{Context as _, anyhow};
use mcp_fleet_core::TenantName;
use mcp_fleet_core::server_config::ServerConfigFile;

use super::BackupError;
use super::args::{BackupArgs, BackupCommand, ListArgs, RestoreArgs, SourceArgs};
use super::catalog;
use super::dump::{self, BackupPlan, mib};
use super::location::Location;
use super::manifest::BackupKind;
use super::pg::DbTarget;
use super::restore::{self, RestorePlan};
use super::retention::Retention;
use mcp_fleet_core::progress::Progress;

fn env_vars() -> Vec<(String, String)> {
    std::env::vars().collect()
}

fn read_config(path: Option<&Path>) -> anyhow::Result<ServerConfigFile> {
    let Some(path) = path else { return Ok(ServerConfigFile::default()) };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    serde_saphyr::from_str(&text).map_err(|e| anyhow!("config file {}: {e}", path.display()))
}

fn read_password(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the database password file {}", path.display()))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

/// The database to dump and the tenant it must belong to, from flags, env and config file.
fn source(args: &SourceArgs) -> anyhow::Result<(DbTarget, Option<TenantName>)> {
    let file = read_config(args.config.as_deref())?;
    let tenant = match args.tenant.clone().or(file.tenant.clone()) {
        Some(t) => Some(TenantName::new(t).map_err(|e| anyhow!("tenant: {e}"))?),
        None => None,
    };
    let url = args
        .database_url
        .clone()
        .or(file.database.url.clone())
        .or_else(|| non_empty(std::env::var("DATABASE_URL").ok()))
        .ok_or_else(|| {
            anyhow!("database URL is missing: set --database-url / MCP_FLEET_DATABASE_URL, `database.url` in --config, or DATABASE_URL")
        })?;
    let password = match args.database_password_file.clone().or(file.database.password_file.clone()) {
        Some(path) => Some(read_password(&path)?),
        None => non_empty(std::env::var("MCP_FLEET_DATABASE_PASSWORD").ok())
            .or_else(|| non_empty(std::env::var("PGPASSWORD").ok())),
    };
    Ok((DbTarget::new(&url, password)?, tenant))
}

/// Peak resident memory of this process, from /proc (Linux).
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn failed(what: &str, e: BackupError) -> anyhow::Error {
    anyhow!("{what} FAILED ({}): {e}", e.label())
}

pub async fn backup(cmd: BackupCommand) -> anyhow::Result<()> {
    match cmd.action {
        Some(super::args::BackupAction::List(args)) => list(args).await,
        None => take(cmd.take).await,
    }
}

async fn take(args: BackupArgs) -> anyhow::Result<()> {
    let progress = Progress::new("backup");
    let to = args.to.clone().ok_or_else(|| anyhow!("--to is required"))?;
    let (db, tenant) = source(&args.source)?;
    let kind = if args.full { BackupKind::Full } else { BackupKind::Tenant };
    if args.full && args.source.tenant.is_some() {
        return Err(anyhow!("--full backs up every tenant; drop --tenant"));
    }
    let plan = BackupPlan {
        kind,
        tenant: if args.full { None } else { tenant },
        db,
        location: Location::open(&to, env_vars()).map_err(|e| failed("backup", e))?,
        zstd_level: args.zstd_level,
        part_size: args.upload_part_size as usize,
        retention: Retention { keep_last: args.keep_last, keep_within: args.keep_within },
        pg_bin_dir: args.pg_bin_dir.clone(),
    };
    let out = dump::run(&plan, &progress).await.map_err(|e| {
        anyhow!(
            "backup FAILED ({}): {e}; nothing was kept (no manifest written, any partial upload removed)",
            e.label()
        )
    })?;
    let m = &out.manifest;
    for id in &out.pruned {
        progress.step(&format!("pruned {id} (retention)"));
    }
    for id in &out.removed_incomplete {
        progress.step(&format!("removed incomplete dump {id} (a failed run)"));
    }
    let summary = format!(
        "{} in {:.1}s: {} rows in {} tables, dump {} -> {} zstd, sha256 {}, peak memory {}, {} pruned",
        plan.location.object_url(&m.dump.name),
        (m.finished_at - m.started_at).num_milliseconds() as f64 / 1000.0,
        m.total_rows(),
        m.tables.len(),
        mib(m.dump.uncompressed_bytes),
        mib(m.dump.bytes),
        m.dump.sha256,
        peak_rss_bytes().map(mib).unwrap_or_else(|| "unknown".into()),
        out.pruned.len()
    );
    if let Some(e) = out.prune_error {
        return Err(anyhow!("backup stored and complete ({summary}) but retention FAILED: {e}"));
    }
    progress.step(&format!("OK {summary}"));
    Ok(())
}

async fn list(args: ListArgs) -> anyhow::Result<()> {
    let loc = Location::open(&args.to, env_vars()).map_err(|e| failed("list", e))?;
    let tenant =
        if args.all { None } else { args.tenant.clone().or(read_config(args.config.as_deref())?.tenant) };
    let cat = catalog::scan(&loc).await.map_err(|e| failed("list", e))?;
    let shown = |subject: &str| tenant.as_deref().is_none_or(|t| t == subject);
    let complete: Vec<&super::Manifest> =
        cat.complete.iter().map(|c| &c.manifest).filter(|m| shown(m.subject())).collect();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&complete)?);
    } else {
        println!("{:<40} {:<20} {:>10} {:>10} {:>10}  SHA256", "ID", "STARTED (UTC)", "SIZE", "DUMP", "ROWS");
        for m in &complete {
            println!(
                "{:<40} {:<20} {:>10} {:>10} {:>10}  {}",
                m.id,
                m.started_at.format("%Y-%m-%d %H:%M:%S"),
                mib(m.dump.bytes),
                mib(m.dump.uncompressed_bytes),
                m.total_rows(),
                m.dump.sha256
            );
        }
    }
    for i in cat.incomplete.iter().filter(|i| shown(&i.subject)) {
        eprintln!(
            "list: {} is INCOMPLETE (a dump of {} without a manifest: a failed or running backup)",
            i.id,
            mib(i.bytes)
        );
    }
    for b in cat.broken.iter().filter(|b| shown(&b.subject)) {
        eprintln!("list: {} is BROKEN: {}", b.id, b.problem);
    }
    eprintln!(
        "list: {} complete backup(s){} in {loc}",
        complete.len(),
        tenant.map(|t| format!(" of {t}")).unwrap_or_default()
    );
    Ok(())
}

pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let progress = Progress::new("restore");
    let url =
        args.into.clone().or_else(|| non_empty(std::env::var("DATABASE_URL").ok())).ok_or_else(|| {
            anyhow!("target database is missing: set --into / MCP_FLEET_RESTORE_INTO or DATABASE_URL")
        })?;
    let password = match &args.into_password_file {
        Some(p) => Some(read_password(p)?),
        None => non_empty(std::env::var("PGPASSWORD").ok()),
    };
    let target = DbTarget::new(&url, password)?;
    let (location, id) = restore::resolve(&args.from, args.tenant.as_deref(), env_vars())
        .await
        .map_err(|e| failed("restore", e))?;
    let plan = RestorePlan {
        location,
        id,
        target,
        allow_non_empty: args.allow_non_empty,
        work_dir: args.work_dir.clone(),
        pg_bin_dir: args.pg_bin_dir.clone(),
    };
    let out = restore::run(&plan, &progress).await.map_err(|e| failed("restore", e))?;
    let width = out.tables.iter().map(|t| t.qualified().len()).max().unwrap_or(10);
    for t in &out.tables {
        eprintln!("restore: {:<width$} {:>10} rows", t.qualified(), t.rows);
    }
    let rows: i64 = out.tables.iter().map(|t| t.rows).sum();
    progress.step(&format!(
        "OK {} restored into {}: {rows} rows in {} tables, {}",
        out.manifest.id,
        plan.target.redacted(),
        out.tables.len(),
        if out.verified {
            "row counts and fingerprints match the manifest"
        } else {
            "not compared with the manifest (the target already held rows)"
        }
    ));
    Ok(())
}
