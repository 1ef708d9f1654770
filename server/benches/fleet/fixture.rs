//! The benchmark's database: a throwaway PostgreSQL cluster (testkit), migrated, seeded with the
//! default sample, product embeddings backfilled with the local model, and one tenant created the
//! way the operator does it (`tenancy.apply_tenant`, SCRAM verifier). Does database I/O.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use mcp_fleet_core::progress::Progress;
use mcp_fleet_core::tenant::{TenantName, generate_password, scram_verifier};
use mcp_fleet_seed::{self as seed, SeedConfig, SeedOutcome};
use mcp_fleet_server::embed::Embedder;
use mcp_fleet_testkit::TestDb;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions as _, PgPool};

/// The tenant every measurement runs as. It owns every store of the sample.
pub const TENANT: &str = "bench";
const TENANT_STORES: [&str; 8] = ["1", "2", "3", "4", "5", "6", "7", "8"];
/// The pool size of both the server (its default) and the raw baseline.
pub const POOL_SIZE: u32 = 10;

pub struct Fixture {
    pub db: TestDb,
    pub tenant: TenantName,
    pub password: String,
    pub embedder: Arc<dyn Embedder>,
    pub summary: String,
}

impl Fixture {
    pub async fn prepare(log: impl Fn(&str)) -> anyhow::Result<Self> {
        log("starting a throwaway PostgreSQL 15 cluster (testkit) and creating the database");
        let db = TestDb::empty().await;
        mcp_fleet_core::migrations::MIGRATOR.run(&db.admin).await.context("migrating")?;
        log("seeding the default sample (seed 42: 50,000 customers, 200,000 orders)");
        let counts = match seed::run(&db.admin, &SeedConfig::default(), &Progress::new("seed")).await? {
            SeedOutcome::Seeded(c) | SeedOutcome::AlreadySeeded(c) => c,
        };
        log("loading the local embedding model and backfilling product embeddings");
        let embedder =
            tokio::task::spawn_blocking(|| mcp_fleet_server::embed::from_config(&Default::default()))
                .await?
                .context("the local model (run `make model`)")?;
        let report = mcp_fleet_server::embed::backfill(
            &db.admin,
            embedder.as_ref(),
            64,
            false,
            &Progress::new("embed"),
        )
        .await
        .context("embedding the catalog")?;
        sqlx::query("ANALYZE").execute(&db.admin).await?;

        let tenant = TenantName::new(TENANT).map_err(|e| anyhow::anyhow!("{e}"))?;
        let password = generate_password();
        // Room for the server's pool, the raw baseline's pool and a few checks.
        sqlx::query("SELECT * FROM tenancy.apply_tenant($1, $2, $3, 100)")
            .bind(tenant.as_str())
            .bind(&TENANT_STORES[..])
            .bind(scram_verifier(&password))
            .execute(&db.admin)
            .await
            .context("apply_tenant")?;
        let summary = format!("{counts}; {} products embedded", report.embedded + report.skipped);
        log(&format!("database ready: {summary}"));
        Ok(Self { db, tenant, password, embedder, summary })
    }

    /// The URL the server logs in with (dedicated mode): the tenant's login role, no password.
    pub fn tenant_url(&self) -> String {
        self.db.url_as(&self.tenant.login_role(), "").replace(":@", "@")
    }

    /// A pool as the tenant's login role with the server's connection settings
    /// (`TenantDb::connect_lazy`: jit off, statement timeout, same size and acquire timeout).
    pub async fn tenant_pool(&self) -> anyhow::Result<PgPool> {
        let opts: PgConnectOptions = self.tenant_url().parse()?;
        let opts = opts
            .password(&self.password)
            .application_name("mcp-fleet-bench-raw")
            .options([("jit", "off"), ("statement_timeout", "5000")])
            .disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(POOL_SIZE)
            // 32 clients share 10 connections; on a loaded machine a slow query holds one for seconds.
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(opts)
            .await
            .context("connecting as the tenant")?;
        Ok(pool)
    }
}
