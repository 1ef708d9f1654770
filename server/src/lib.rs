//! mcp-fleet-server: an MCP server for safe, multi-tenant, read-only analytics over the retail
//! PostgreSQL database, plus the commands that prepare that database (migrate, seed).

pub mod cli;
pub mod db;
pub mod embed;
pub mod progress;
pub mod seed;
pub mod sql_guard;
