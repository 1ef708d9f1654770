//! `backup`, `backup list` and `restore`: tenant-scoped (or full) data dumps of the retail database
//! streamed through zstd to object storage, a manifest beside each dump, retention, and restores
//! that verify the checksum and the restored rows. A library the `mcp-fleet-server` binary
//! dispatches to (`run::backup`, `run::restore`). Submodules split it by concept; this one holds
//! the error type shared by all of them.
//!
//! What a backup holds, and why restore works on a fresh database:
//!
//! - `pg_dump --data-only` of the mcp-fleet schemas, custom format, uncompressed, piped through
//!   zstd. A **tenant** backup runs as the tenant's login role with `--enable-row-security`, so
//!   PostgreSQL itself filters it to the tenant's stores (catalog tables, which carry no store, are
//!   whole). A **full** backup (`--full`) runs as a role that bypasses row-level security and also
//!   holds the tenancy mapping and the audit trail.
//! - No schema, roles, grants or policies: those come from the migrations embedded in this binary.
//!   A tenant role could not dump them faithfully anyway (it cannot read the tenancy functions'
//!   other rows or the audit trail), and a dump full of `GRANT ... TO mcpt_x` fails on a cluster
//!   where those roles do not exist. `restore` runs the migrations on the target first, then loads
//!   the data in one transaction with every constraint checked.
//! - No sequence values: a tenant cannot read them, and they would reveal other tenants' volumes.
//!   `restore` sets each identity sequence past the largest restored id.
//! - The manifest records, per table, the row count and an order-independent fingerprint (the
//!   sum of 64-bit hashes of each row's text) taken in the same snapshot as the dump. `restore`
//!   recomputes both on the target and fails loudly when they differ.

pub mod args;
pub mod catalog;
pub mod dump;
pub mod location;
pub mod manifest;
pub mod pg;
pub mod restore;
pub mod retention;
pub mod run;

pub use args::{BackupAction, BackupCommand, ListArgs, RestoreArgs};
pub use location::Location;
pub use manifest::{BackupKind, Manifest, TableStats};

/// What went wrong, in words a platform engineer can act on.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Refused(String),
    #[error("database: {0}")]
    Database(String),
    #[error("object store {location}: {message}")]
    Store { location: String, message: String },
    #[error("{tool} failed: {message}")]
    Tool { tool: &'static str, message: String },
    #[error("integrity check failed: {0}")]
    Integrity(String),
    #[error("{0}")]
    Io(String),
}

impl From<sqlx::Error> for BackupError {
    fn from(e: sqlx::Error) -> Self {
        Self::Database(e.to_string())
    }
}

impl From<std::io::Error> for BackupError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e.to_string())
    }
}

impl BackupError {
    /// A short label for the final log line.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Config(_) => "configuration",
            Self::Refused(_) => "refused",
            Self::Database(_) => "database",
            Self::Store { .. } => "object-store",
            Self::Tool { .. } => "tool",
            Self::Integrity(_) => "integrity",
            Self::Io(_) => "io",
        }
    }
}
