//! The mcp-fleet operator: turns `McpTenant` objects into PostgreSQL roles, a server workload with
//! everything around it, and backups. A reconcile is a pipeline: `controller::dereference` reads,
//! `validate` checks (pure), `build` makes every child (pure, from the `resources` builders), then
//! `database`, `controller::apply` and `controller::status` write. Modules that do I/O say so
//! in their first line.

pub mod build;
pub mod cli;
pub mod controller;
pub mod crd;
pub mod database;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod resources;
pub mod validate;
