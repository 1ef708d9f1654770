//! Contracts shared by the mcp-fleet server and operator: the embedded database migrations, the
//! server configuration file, and tenant naming and credentials. No I/O beyond what callers ask of a database pool.

pub mod migrations;
pub mod server_config;
pub mod tenant;

pub use tenant::{TenantName, TenantNameError};
