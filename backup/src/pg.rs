//! The PostgreSQL side of backups: whom we connect as (a URL plus a password from a file or the
//! environment), how `pg_dump`/`pg_restore` get those credentials (their environment only, never
//! their command line), where those tools are, and the per-table row counts and fingerprints a
//! manifest records. Database and process I/O.

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Url;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use super::BackupError;
use super::manifest::TableStats;
use mcp_fleet_core::redact::redact_url;

/// A database and the role to use there. `Debug` never shows the password.
#[derive(Clone)]
pub struct DbTarget {
    /// Without the password.
    url: Url,
    password: Option<String>,
}

impl std::fmt::Debug for DbTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.redacted())
    }
}

impl DbTarget {
    /// `url` may carry a password (in the user info or a `password=` parameter); `password`, when
    /// given, wins over it.
    pub fn new(url: &str, password: Option<String>) -> Result<Self, BackupError> {
        let bad = |why: &str| BackupError::Config(format!("database URL {}: {why}", redact_url(url)));
        let mut parsed = Url::parse(url).map_err(|_| bad("not a URL"))?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(bad("must start with postgres:// or postgresql://"));
        }
        let mut from_url = parsed.password().map(percent_decode);
        let query: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
        if query.iter().any(|(k, _)| k == "password") {
            from_url = query.iter().find(|(k, _)| k == "password").map(|(_, v)| v.clone());
            let kept: Vec<(String, String)> = query.into_iter().filter(|(k, _)| k != "password").collect();
            if kept.is_empty() {
                parsed.set_query(None);
            } else {
                parsed.query_pairs_mut().clear().extend_pairs(kept);
            }
        }
        parsed.set_password(None).map_err(|_| bad("cannot remove the password"))?;
        Ok(Self { url: parsed, password: password.or(from_url) })
    }

    pub fn redacted(&self) -> String {
        redact_url(self.url.as_str())
    }

    pub fn user(&self) -> String {
        percent_decode(self.url.username())
    }

    /// Options for our own connections.
    pub fn connect_options(&self, application_name: &str) -> Result<PgConnectOptions, BackupError> {
        let mut opts: PgConnectOptions = self
            .url
            .as_str()
            .parse()
            .map_err(|e| BackupError::Config(format!("database URL {}: {e}", self.redacted())))?;
        if let Some(p) = &self.password {
            opts = opts.password(p);
        }
        Ok(opts.application_name(application_name).disable_statement_logging())
    }

    pub async fn connect(&self, application_name: &str) -> Result<PgConnection, BackupError> {
        let opts = self.connect_options(application_name)?;
        tokio::time::timeout(Duration::from_secs(30), PgConnection::connect_with(&opts))
            .await
            .map_err(|_| BackupError::Database(format!("connecting to {} timed out", self.redacted())))?
            .map_err(|e| BackupError::Database(format!("cannot connect to {}: {e}", self.redacted())))
    }

    /// Points a libpq tool at this database: the URL (without password) as `--dbname`, the
    /// password in the child's environment.
    pub fn configure(&self, cmd: &mut tokio::process::Command, application_name: &str) {
        cmd.arg(format!("--dbname={}", self.url.as_str()))
            .arg("--no-password")
            .env("PGAPPNAME", application_name)
            .env("PGCONNECT_TIMEOUT", "30")
            .env_remove("PGPASSWORD")
            .env_remove("PGOPTIONS");
        if let Some(p) = &self.password {
            cmd.env("PGPASSWORD", p);
        }
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Finds `pg_dump` or `pg_restore`: in `bin_dir` when given, else on `PATH`, else in the newest
/// Debian PostgreSQL under /usr/lib/postgresql.
pub fn pg_tool(name: &str, bin_dir: Option<&Path>) -> Result<PathBuf, BackupError> {
    if let Some(dir) = bin_dir {
        let p = dir.join(name);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(BackupError::Config(format!(
                "{name} not found in {} (--pg-bin-dir / MCP_FLEET_PG_BIN)",
                dir.display()
            )))
        };
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| Some((e.file_name().to_str()?.parse().ok()?, e.path().join("bin").join(name))))
        .filter(|(_, p): &(u32, PathBuf)| p.is_file())
        .collect();
    debian.sort();
    debian.pop().map(|(_, p)| p).ok_or_else(|| {
        BackupError::Config(format!(
            "{name} not found on PATH or under /usr/lib/postgresql; install the PostgreSQL client \
             (Debian: postgresql-client-15) or set MCP_FLEET_PG_BIN"
        ))
    })
}

/// `pg_dump (PostgreSQL) 15.20 (...)` → the whole first line.
pub async fn tool_version(tool: &Path) -> String {
    match tokio::process::Command::new(tool).arg("--version").output().await {
        Ok(out) => String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default().trim().to_owned(),
        Err(_) => "unknown".into(),
    }
}

/// Session settings that make row text (and so fingerprints) the same on every server, and
/// lift the tenant role's per-statement limits for this long, read-only session.
pub async fn prepare_session(conn: &mut PgConnection) -> Result<(), BackupError> {
    for sql in [
        "SET TimeZone = 'UTC'",
        "SET DateStyle = 'ISO, YMD'",
        "SET IntervalStyle = 'postgres'",
        "SET extra_float_digits = 1",
        "SET bytea_output = 'hex'",
        "SET statement_timeout = 0",
        "SET idle_in_transaction_session_timeout = 0",
    ] {
        sqlx::query(sql).execute(&mut *conn).await?;
    }
    Ok(())
}

/// A SQL identifier, quoted.
pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The ordinary tables of `schemas`, by schema and name.
pub async fn tables(
    conn: &mut PgConnection,
    schemas: &[String],
) -> Result<Vec<(String, String)>, BackupError> {
    Ok(sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
         ORDER BY 1, 2",
    )
    .bind(schemas)
    .fetch_all(&mut *conn)
    .await?)
}

/// The sequences of `schemas` (their values are never dumped).
pub async fn sequences(
    conn: &mut PgConnection,
    schemas: &[String],
) -> Result<Vec<(String, String)>, BackupError> {
    Ok(sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = ANY($1) AND c.relkind = 'S' ORDER BY 1, 2",
    )
    .bind(schemas)
    .fetch_all(&mut *conn)
    .await?)
}

/// Row count and fingerprint of each table, as the connected role sees it (in the current
/// transaction's snapshot).
pub async fn table_stats(
    conn: &mut PgConnection,
    tables: &[(String, String)],
) -> Result<Vec<TableStats>, BackupError> {
    let mut out = Vec::with_capacity(tables.len());
    for (schema, table) in tables {
        let sql = format!(
            "SELECT count(*)::int8, coalesce(sum(hashtextextended(t::text, 0)::numeric), 0)::text FROM {}.{} t",
            quote_ident(schema),
            quote_ident(table)
        );
        let (rows, fingerprint): (i64, String) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| BackupError::Database(format!("reading {schema}.{table}: {e}")))?;
        out.push(TableStats { schema: schema.clone(), table: table.clone(), rows, fingerprint });
    }
    Ok(out)
}

/// The last `n` lines of a tool's stderr, for error messages.
pub fn tail(stderr: &str, n: usize) -> String {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_leave_the_url_for_the_environment() {
        let t =
            DbTarget::new("postgres://mcpt_east_login:p%40ss@db:5432/zava?sslmode=require", None).unwrap();
        assert_eq!(t.url.as_str(), "postgres://mcpt_east_login@db:5432/zava?sslmode=require");
        assert_eq!(t.password.as_deref(), Some("p@ss"));
        assert_eq!(t.user(), "mcpt_east_login");
        let t = DbTarget::new("postgres://u@db/zava?password=s3cret&sslmode=disable", Some("file".into()))
            .unwrap();
        assert_eq!(t.url.as_str(), "postgres://u@db/zava?sslmode=disable");
        assert_eq!(t.password.as_deref(), Some("file"));
        assert!(!format!("{t:?}").contains("s3cret"));
        assert!(DbTarget::new("mysql://u@db/x", None).is_err());
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("order_items"), "\"order_items\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
