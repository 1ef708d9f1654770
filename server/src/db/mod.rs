//! The server's database access: `tenant` runs every tool query in a read-only transaction bound
//! to the caller's tenant and store scope; `admin` is where the admin commands (migrate, seed,
//! embed) connect. Both do database I/O. `projection` (pure) rewrites a caller's query so that
//! every column comes back in a form the server reads, cut to size in PostgreSQL.

pub mod admin;
pub mod projection;
pub mod tenant;

pub use admin::AdminDb;
pub use tenant::{DbError, QueryFailure, TenantDb};

/// The span of a tool's database work (the read-only transaction, its statements and the rows
/// read), a child of the tool call's span. Named as OpenTelemetry names database client spans.
pub fn query_span() -> tracing::Span {
    tracing::info_span!(
        "db query",
        otel.name = "SELECT retail",
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = "SELECT",
    )
}
