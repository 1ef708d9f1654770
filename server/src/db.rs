//! Connecting to PostgreSQL and applying migrations. Does database I/O.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

/// Where the admin commands (migrate, seed) connect.
#[derive(Clone, clap::Args)]
pub struct AdminDb {
    /// PostgreSQL URL of a role that may run migrations (and, for `seed`, bypass row-level
    /// security), e.g. postgres://admin@db:5432/zava. Never logged.
    #[arg(long = "database-url", env = "DATABASE_URL", hide_env_values = true)]
    pub url: String,
}

impl std::fmt::Debug for AdminDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminDb").field("url", &redact_url(&self.url)).finish()
    }
}

impl AdminDb {
    pub async fn connect(&self) -> anyhow::Result<PgPool> {
        let opts: PgConnectOptions = self.url.parse().map_err(|e| {
            anyhow::anyhow!("DATABASE_URL {} is not a valid PostgreSQL URL: {e}", redact_url(&self.url))
        })?;
        let opts = opts.application_name("mcp-fleet-admin").disable_statement_logging();
        PgPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await
            .map_err(|e| anyhow::anyhow!("cannot connect to {}: {e}", redact_url(&self.url)))
    }
}

/// A URL with any password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparseable URL>".into();
    };
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') { format!("{user}:***") } else { user.to_owned() };
            let tail = redact_query_password(tail);
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => format!("{scheme}://{authority}{}", redact_query_password(tail)),
    }
}

fn redact_query_password(tail: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let query: Vec<String> = query
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

/// Applies every pending migration; returns the versions applied now.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<Vec<i64>> {
    let before: Vec<i64> = applied_versions(pool).await?;
    mcp_fleet_core::migrations::MIGRATOR.run(pool).await.map_err(|e| {
        anyhow::anyhow!("migration failed (nothing of the failed migration was applied): {e}")
    })?;
    let after = applied_versions(pool).await?;
    Ok(after.into_iter().filter(|v| !before.contains(v)).collect())
}

/// The newest applied migration, 0 on a database that was never migrated.
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

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn passwords_never_survive_redaction() {
        assert_eq!(redact_url("postgres://u:s3cret@h:5432/db"), "postgres://u:***@h:5432/db");
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(
            redact_url("postgres://h/db?user=u&password=s3cret"),
            "postgres://h/db?user=u&password=***"
        );
        assert_eq!(redact_url("postgres://u:p@ss@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact_url("not a url s3cret"), "<unparseable URL>");
    }
}
