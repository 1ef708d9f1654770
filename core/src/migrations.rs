//! The sqlx migrations in `migrations/`, embedded at compile time so every binary that touches
//! the database agrees on the schema version.

use sqlx::migrate::Migrator;

/// The schema, row-level security, tenancy functions and audit trail.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// The newest migration version this build knows; a database at a lower version needs `migrate`.
pub fn expected_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}
