//! The mcp-fleet operator: turns `McpTenant` objects into PostgreSQL roles, a server workload with
//! everything around it, and backups. Modules that do I/O say so in their first line.

pub mod cli;
pub mod controller;
pub mod crd;
pub mod database;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod resources;
pub mod validate;
