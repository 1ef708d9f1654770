//! The command line: `serve`, `migrate`, `seed`, `embed`, `backup` (and `backup list`) and
//! `restore`. Every flag also reads an environment variable.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::ServeArgs;
use crate::db::AdminDb;
use mcp_fleet_core::otlp::OtlpTraces;
use mcp_fleet_core::progress::Progress;
use mcp_fleet_seed::{self as seed, SeedConfig, SeedOutcome};

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
    /// Serve the retail tools over MCP: Streamable HTTP at /mcp (stateless, any replica answers
    /// any request) or stdio. Configuration comes from --config, then env vars, then flags.
    Serve(Box<ServeArgs>),
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
    /// Compute the embeddings of product descriptions for semantic search, in batches.
    /// Idempotent: products that already have a vector from the same model are skipped.
    Embed {
        #[command(flatten)]
        db: AdminDb,
        /// Products per batch sent to the model.
        #[arg(long, env = "MCP_FLEET_EMBED_BATCH", default_value_t = 32)]
        batch_size: usize,
        /// Re-embed every product, even those already embedded by this model.
        #[arg(long, env = "MCP_FLEET_EMBED_FORCE")]
        force: bool,
        /// Directory of the local model [default: ~/.cache/mcp-fleet/models/all-MiniLM-L6-v2].
        #[arg(long, env = "MCP_FLEET_MODEL_DIR")]
        model_dir: Option<std::path::PathBuf>,
    },
    /// Back up the tenant's data (`pg_dump` as its own role, row-level security filtering) through
    /// zstd to object storage (az://, s3://, gs://, file://), with a manifest and retention;
    /// `backup list` shows the backups in a folder.
    #[command(visible_alias = "backups")]
    Backup(Box<mcp_fleet_backup::BackupCommand>),
    /// Restore a backup into an empty database: verify its checksum, create the schema, load the
    /// data in one transaction, and check row counts and fingerprints against the manifest.
    Restore(Box<mcp_fleet_backup::RestoreArgs>),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any thread starts: the local model's thread count, fixed once (may restart the process).
    if cfg!(feature = "local-embeddings") && matches!(cli.command, Command::Serve(_) | Command::Embed { .. })
    {
        crate::embed::threads::settle_for_candle();
    }
    crate::install_crypto_provider();
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
        Command::Serve(args) => {
            let cfg = crate::config::load(&args)?;
            let redactor = crate::logging::Redactor::default();
            if let Some(pw) = &cfg.database.password {
                redactor.add_secret(pw);
            }
            let traces = cfg
                .otlp_endpoint
                .as_deref()
                .map(|url| OtlpTraces::start(url, "mcp-fleet-server", env!("CARGO_PKG_VERSION")))
                .transpose()
                .map_err(anyhow::Error::msg)?;
            crate::logging::init(cfg.log_format, &cfg.log_level, redactor, traces.as_ref());
            let served = crate::serve::run(cfg).await;
            // After the drain: the spans of the last calls go out before the process ends.
            if let Some(traces) = traces {
                let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
            }
            served
        }
        Command::Embed { db, batch_size, force, model_dir } => {
            let pool = db.connect().await?;
            let section =
                mcp_fleet_core::server_config::EmbeddingsSection { model_dir, ..Default::default() };
            let embedder = tokio::task::spawn_blocking(move || crate::embed::from_config(&section)).await??;
            let report =
                crate::embed::backfill(&pool, embedder.as_ref(), batch_size, force, &Progress::new("embed"))
                    .await?;
            eprintln!(
                "embed: {} of {} products embedded with {} ({} already up to date) in {:.1}s",
                report.embedded,
                report.products,
                report.model,
                report.skipped,
                report.elapsed.as_secs_f64()
            );
            Ok(())
        }
        Command::Migrate { db } => {
            let pool = db.connect().await?;
            let applied = mcp_fleet_core::migrations::migrate(&pool).await?;
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
        Command::Backup(cmd) => mcp_fleet_backup::run::backup(*cmd).await,
        Command::Restore(args) => mcp_fleet_backup::run::restore(*args).await,
        Command::Seed { db, config, migrate } => {
            let pool = db.connect().await?;
            if migrate {
                mcp_fleet_core::migrations::migrate(&pool).await?;
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
