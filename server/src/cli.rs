//! The command line: `serve`, `migrate`, `seed`. Every flag also reads an environment variable.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::db::AdminDb;
use crate::progress::Progress;
use crate::seed::{self, SeedConfig, SeedOutcome};

/// MCP server for safe, multi-tenant, read-only retail analytics over PostgreSQL + pgvector.
///
/// Prepare a database with `migrate` and (optionally) `seed`, then run `serve`.
#[derive(Debug, Parser)]
#[command(name = "mcp-fleet-server", version, about, long_about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply the database migrations (schema, row-level security, tenancy functions, audit).
    /// Safe to re-run: applied migrations are skipped.
    Migrate {
        #[command(flatten)]
        db: AdminDb,
    },
    /// Load the deterministic Zava DIY sample dataset. Does nothing (and says so) when the
    /// database already holds stores. Needs a superuser or a BYPASSRLS role.
    Seed {
        #[command(flatten)]
        db: AdminDb,
        #[command(flatten)]
        config: SeedConfig,
        /// Apply pending migrations first.
        #[arg(long, env = "MCP_FLEET_SEED_MIGRATE")]
        migrate: bool,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Migrate { db } => {
            let pool = db.connect().await?;
            let applied = crate::db::migrate(&pool).await?;
            if applied.is_empty() {
                eprintln!(
                    "migrate: database is up to date (version {})",
                    mcp_fleet_core::migrations::expected_version()
                );
            } else {
                eprintln!("migrate: applied {applied:?}");
            }
            Ok(())
        }
        Command::Seed { db, config, migrate } => {
            let pool = db.connect().await?;
            if migrate {
                crate::db::migrate(&pool).await?;
            }
            match seed::run(&pool, &config, &Progress::new("seed")).await? {
                SeedOutcome::Seeded(_) => {}
                SeedOutcome::AlreadySeeded(counts) => {
                    eprintln!(
                        "seed: already seeded ({counts}); nothing to do — seed a fresh database to change it"
                    );
                }
            }
            Ok(())
        }
    }
}
