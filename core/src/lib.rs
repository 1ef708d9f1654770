//! Contracts shared by the mcp-fleet server and operator: the embedded database migrations, the
//! server configuration file, and tenant naming and credentials; plus what the server's programs
//! (serve, seed, backup) share: progress lines and URL redaction. No I/O beyond what callers ask
//! of a database pool, and the progress lines on stderr.

pub mod migrations;
pub mod progress;
pub mod redact;
pub mod server_config;
pub mod tenant;

pub use tenant::{TenantName, TenantNameError};
