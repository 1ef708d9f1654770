//! The server's database access: `tenant` runs every tool query in a read-only transaction bound
//! to the caller's tenant and store scope; `admin` is where the admin commands (migrate, seed,
//! embed) connect. Both do database I/O. `projection` (pure) rewrites a caller's query so that
//! every column comes back in a form the server reads, cut to size in PostgreSQL.

pub mod admin;
pub mod projection;
pub mod tenant;

pub use admin::AdminDb;
pub use tenant::{DbError, QueryFailure, TenantDb};
