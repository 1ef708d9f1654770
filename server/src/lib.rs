//! mcp-fleet-server: an MCP server for safe, multi-tenant, read-only analytics over the retail
//! PostgreSQL database, plus the commands that prepare and keep that database (migrate, seed,
//! embed, backup, restore).

pub mod audit;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod embed;
pub mod http;
pub mod identity;
pub mod logging;
pub mod metrics;
pub mod result;
pub mod serve;
pub mod tenant_db;
pub mod tools;

/// Installs ring as the process-wide rustls provider (reqwest is built without one). Idempotent.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
