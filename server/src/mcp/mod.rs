//! The MCP surface: the retail tools (drop-in compatible with the reference Zava sample: same
//! names, argument names, defaults and compact JSON results), table schemas as resources, and
//! per-caller tool lists. Split by job:
//!
//! - `server`: the rmcp handler, and the one path every tool call takes (authorise, audit,
//!   each caller's fair share, metrics, log); `fair_share`: the per-caller limits;
//! - `tools`: each tool's definition and its call into the domain code; `args`: the argument
//!   types, whose bounds feed both the schema and the run-time checks;
//! - `outcome`: how a call ends, and the one mapping of failures to MCP and JSON-RPC answers;
//! - `sales`, `schema`, `search`: the domain code, which knows nothing of MCP; `explain`: a
//!   query's plan, compact (for `explain_sales_query` and the cost guard);
//! - `state`, `audit` (the audit trail), `result` (the compact JSON of rows);
//! - `stateless`: `/mcp` itself — plain `tools/call` POSTs answered directly, the rest by rmcp.

pub mod args;
pub mod audit;
mod explain;
pub mod fair_share;
pub mod outcome;
pub mod result;
mod sales;
mod schema;
mod search;
mod server;
mod state;
pub mod stateless;
mod tools;

pub use outcome::{Outcome, ToolFailure, ToolOutput};
pub use schema::TABLES;
pub use server::RetailServer;
pub use state::AppState;
