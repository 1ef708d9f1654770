//! Contracts shared by the mcp-fleet server and operator: the embedded database migrations, the
//! server configuration file and its checks, the tool catalogue, the metric names, and tenant
//! naming and credentials; plus what the server's programs (serve, seed, backup) share: progress
//! lines and URL redaction; log filters; and (feature `otlp`) the trace export of both programs.
//! No I/O beyond what callers ask of a database pool, the progress lines on stderr, and the OTLP
//! exporter's.

pub mod log_filter;
pub mod metrics;
pub mod migrations;
#[cfg(feature = "otlp")]
pub mod otlp;
pub mod progress;
pub mod redact;
pub mod server_config;
pub mod tenant;
pub mod tools;

pub use tenant::{TenantName, TenantNameError};
