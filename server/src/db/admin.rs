//! Where the admin commands (migrate, seed, embed) connect. Does database I/O.

use std::time::Duration;

use mcp_fleet_core::redact::redact_url;
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
