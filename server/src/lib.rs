//! mcp-fleet-server: an MCP server for safe, multi-tenant, read-only analytics over the retail
//! PostgreSQL database, plus the commands that prepare and keep that database (migrate, seed,
//! embed, backup, restore; seed and backup/restore are the `mcp-fleet-seed` and
//! `mcp-fleet-backup` crates, which the binary dispatches to).
//!
//! The parts, one folder each: `mcp/` (the MCP surface: tools, their call path, results, the
//! audit trail), `auth/` (who calls and what they may do), `db/` (the tenant's database access
//! and the admin connection), `embed/` (embeddings). Around them: `config` (start-up
//! configuration), `http` (the HTTP router), `serve` (wiring), `cli`, `logging`, `metrics`,
//! `clock`.

pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod embed;
pub mod http;
pub mod logging;
pub mod mcp;
pub mod metrics;
pub mod serve;

/// Installs ring as the process-wide rustls provider (reqwest is built without one). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
