//! The command lines of `backup`, `backup list` and `restore`. Every flag also reads an
//! environment variable; secrets (database password, store credentials) have no flag at all.
//! Pure.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

/// `backup [--to URL ...]` takes a backup; `backup list --to URL` lists them.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BackupCommand {
    #[command(subcommand)]
    pub action: Option<BackupAction>,
    #[command(flatten)]
    pub take: BackupArgs,
}

#[derive(Debug, Subcommand)]
pub enum BackupAction {
    /// List the backups in a folder: time, size, SHA-256, rows, and incomplete or broken ones.
    List(ListArgs),
}

/// Whom to connect as. The same settings as `serve` (and the same config file), so the operator's
/// backup Job runs with the tenant's own role and password file.
#[derive(Debug, Clone, Args)]
pub struct SourceArgs {
    /// YAML configuration file of the server (the operator mounts it at /etc/mcp-fleet/server.yaml);
    /// its `tenant`, `database.url` and `database.passwordFile` are used.
    #[arg(long, env = "MCP_FLEET_CONFIG")]
    pub config: Option<PathBuf>,
    /// The tenant to back up; the database role must belong to it [default: the role's tenant].
    #[arg(long, env = "MCP_FLEET_TENANT")]
    pub tenant: Option<String>,
    /// PostgreSQL URL of the tenant's login role (or, with --full, of an admin role). Falls back to
    /// the config file, then DATABASE_URL. Never logged; prefer a password file to a password here.
    #[arg(long, env = "MCP_FLEET_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// File holding the database password (a mounted Secret); else MCP_FLEET_DATABASE_PASSWORD,
    /// then PGPASSWORD.
    #[arg(long, env = "MCP_FLEET_DATABASE_PASSWORD_FILE")]
    pub database_password_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Folder to write to: az://container/prefix (Azure Blob), s3://bucket/prefix, gs://bucket/prefix
    /// or file:///path. Credentials come from the environment (AZURE_STORAGE_ACCOUNT_NAME +
    /// AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_KEY, AWS_*, GOOGLE_*).
    #[arg(long, env = "MCP_FLEET_BACKUP_TO", required = true)]
    pub to: Option<String>,
    #[command(flatten)]
    pub source: SourceArgs,
    /// Back up every tenant, the tenancy mapping and the audit trail (needs a superuser or BYPASSRLS role).
    #[arg(long, env = "MCP_FLEET_BACKUP_FULL")]
    pub full: bool,
    /// After a successful backup, keep only the newest N backups of this tenant (plus those
    /// --keep-within keeps).
    #[arg(long, env = "MCP_FLEET_BACKUP_KEEP_LAST", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep_last: Option<u32>,
    /// After a successful backup, keep every backup of this tenant younger than this, e.g. 30d, 12h, 2w.
    #[arg(long, env = "MCP_FLEET_BACKUP_KEEP_WITHIN", value_parser = super::retention::parse_age)]
    pub keep_within: Option<Duration>,
    /// zstd level (1 fastest … 19 smallest).
    #[arg(long, env = "MCP_FLEET_BACKUP_ZSTD_LEVEL", default_value_t = 3,
          value_parser = clap::value_parser!(i32).range(1..=19))]
    pub zstd_level: i32,
    /// Directory holding pg_dump and pg_restore [default: PATH, then /usr/lib/postgresql/<newest>/bin].
    #[arg(long, env = "MCP_FLEET_PG_BIN")]
    pub pg_bin_dir: Option<PathBuf>,
    /// Upload part size in bytes (S3 needs at least 5 MiB; tests use small parts to exercise
    /// multipart uploads on small data).
    #[arg(long, env = "MCP_FLEET_BACKUP_PART_SIZE", default_value_t = 8 << 20, hide = true,
          value_parser = clap::value_parser!(u64).range(64 << 10..=1 << 30))]
    pub upload_part_size: u64,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Folder to list (as for `backup --to`).
    #[arg(long, env = "MCP_FLEET_BACKUP_TO")]
    pub to: String,
    /// Show only this tenant's backups (`_full` for full backups) [default: the configured tenant, else all].
    #[arg(long, env = "MCP_FLEET_TENANT")]
    pub tenant: Option<String>,
    /// Config file to take the tenant from.
    #[arg(long, env = "MCP_FLEET_CONFIG")]
    pub config: Option<PathBuf>,
    /// Show every tenant's backups, whatever tenant is configured.
    #[arg(long, conflicts_with = "tenant")]
    pub all: bool,
    /// Print the manifests as JSON on stdout instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup: URL of its manifest (or dump), or a folder to take the newest complete backup from.
    #[arg(long, env = "MCP_FLEET_RESTORE_FROM")]
    pub from: String,
    /// With a folder in --from: restore this tenant's newest backup.
    #[arg(long)]
    pub tenant: Option<String>,
    /// PostgreSQL URL of the EMPTY target database, as a superuser or BYPASSRLS role [default:
    /// DATABASE_URL]. Never logged; give the password through --into-password-file or PGPASSWORD.
    #[arg(long, env = "MCP_FLEET_RESTORE_INTO", hide_env_values = true)]
    pub into: Option<String>,
    /// File holding the target database's password.
    #[arg(long, env = "MCP_FLEET_RESTORE_PASSWORD_FILE")]
    pub into_password_file: Option<PathBuf>,
    /// Load into a database that already holds data (rows that collide roll the whole restore back).
    #[arg(long)]
    pub allow_non_empty: bool,
    /// Directory for the downloaded dump while it is verified [default: the system temp directory].
    #[arg(long, env = "MCP_FLEET_BACKUP_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    /// Directory holding pg_dump and pg_restore [default: PATH, then /usr/lib/postgresql/<newest>/bin].
    #[arg(long, env = "MCP_FLEET_PG_BIN")]
    pub pg_bin_dir: Option<PathBuf>,
}
