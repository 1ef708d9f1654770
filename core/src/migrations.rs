//! The sqlx migrations in `migrations/`, embedded at compile time so every binary that touches
//! the database agrees on the schema version, and the two database calls every command that
//! prepares a database needs: apply them, and read the applied version.

use sqlx::PgPool;
use sqlx::migrate::Migrator;

/// The schema, row-level security, tenancy functions and audit trail.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// The newest migration version this build knows; a database at a lower version needs `migrate`.
pub fn expected_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Why `migrate` stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("migration failed (nothing of the failed migration was applied): {0}")]
    Failed(#[source] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Applies every pending migration; returns the versions applied now. Does database I/O.
pub async fn migrate(pool: &PgPool) -> Result<Vec<i64>, MigrateError> {
    let before: Vec<i64> = applied_versions(pool).await?;
    MIGRATOR.run(pool).await.map_err(MigrateError::Failed)?;
    let after = applied_versions(pool).await?;
    Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
}

/// The newest applied migration, 0 on a database that was never migrated. Does database I/O.
pub async fn schema_version(pool: &PgPool) -> Result<i64, sqlx::Error> {
    Ok(applied_versions(pool).await?.into_iter().max().unwrap_or(0))
}

async fn applied_versions(pool: &PgPool) -> Result<Vec<i64>, sqlx::Error> {
    let exists: bool = sqlx::query_scalar("SELECT to_regclass('public._sqlx_migrations') IS NOT NULL")
        .fetch_one(pool)
        .await?;
    if !exists {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(pool)
        .await
}
