//! Contracts shared by the mcp-fleet server and operator: the embedded database migrations, the
//! server configuration file and its checks, the tool catalogue, the metric names, and tenant
//! naming and credentials; plus what the server's programs (serve, seed, backup) share: progress
//! lines and URL redaction. No I/O beyond what callers ask of a database pool, and the progress
//! lines on stderr.

pub mod metrics;
pub mod migrations;
pub mod progress;
pub mod redact;
pub mod server_config;
pub mod tenant;
pub mod tools;

pub use tenant::{TenantName, TenantNameError};
