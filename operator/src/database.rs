//! The operator's side of the tenancy contract in PostgreSQL: `tenancy.apply_tenant`,
//! `tenancy.retire_other_login` and `tenancy.drop_tenant`, called as a member of `mcpfleet_operator` (never a superuser), and a
//! small pool per admin connection. Does I/O (PostgreSQL).

use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::Mutex;
use std::time::Duration;

use mcp_fleet_core::TenantName;
use sqlx::postgres::{PgConnectOptions, PgDatabaseError, PgPoolOptions};
use sqlx::{ConnectOptions as _, PgPool};

/// What the database did for a tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedTenant {
    pub group_role: String,
    pub login_role: String,
    pub store_ids: Vec<i32>,
    /// The roles were created by this call.
    pub created: bool,
}

/// Limits applied to the tenant's login role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoleLimits {
    pub connection_limit: i32,
    pub statement_timeout_ms: i32,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The database cannot be reached (down, refused, timed out, TLS). Retried with backoff.
    #[error("cannot reach PostgreSQL: {0}")]
    Unreachable(String),
    /// The tenancy functions refused the spec (unknown store, store owned by another tenant,
    /// foreign role of the same name). Waits for a spec change or a slow resync.
    #[error("{message}{}", hint.as_ref().map(|h| format!(" (hint: {h})")).unwrap_or_default())]
    Rejected { code: String, message: String, hint: Option<String> },
    /// The operator's role may not call the functions, or the database is not migrated.
    #[error("{message}{}", hint.as_ref().map(|h| format!(" (hint: {h})")).unwrap_or_default())]
    Misconfigured { code: String, message: String, hint: Option<String> },
    #[error("PostgreSQL error: {0}")]
    Other(String),
}

impl DbError {
    /// The condition reason for this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            DbError::Unreachable(_) => "DatabaseUnreachable",
            DbError::Rejected { code, .. } => match code.as_str() {
                "23505" => "StoreOwnedByAnotherTenant",
                "42710" => "RoleNotManaged",
                _ => "StoresRejected",
            },
            DbError::Misconfigured { code, .. } if code == "42501" => "OperatorNotPermitted",
            DbError::Misconfigured { .. } => "DatabaseNotMigrated",
            DbError::Other(_) => "DatabaseError",
        }
    }

    /// Short label for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            DbError::Unreachable(_) => "db_unreachable",
            DbError::Rejected { .. } => "db_rejected",
            DbError::Misconfigured { .. } => "db_misconfigured",
            DbError::Other(_) => "db_error",
        }
    }

    /// Whether the user has to change something (the spec, another tenant, the database).
    pub fn needs_user_action(&self) -> bool {
        matches!(self, DbError::Rejected { .. } | DbError::Misconfigured { .. })
    }

    fn needs_password(&self) -> bool {
        matches!(self, DbError::Rejected { message, .. } if message.contains("needs a password verifier"))
    }
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(d) => {
                let code = d.code().map(|c| c.into_owned()).unwrap_or_default();
                let hint = d.try_downcast_ref::<PgDatabaseError>().and_then(|p| p.hint().map(str::to_owned));
                let message = d.message().to_owned();
                match code.as_str() {
                    "22023" | "23505" | "42710" => DbError::Rejected { code, message, hint },
                    "42501" | "42883" | "3F000" | "42P01" => DbError::Misconfigured {
                        hint: hint.or_else(|| {
                            Some(
                                "the operator's role must be a member of mcpfleet_operator in a migrated database"
                                    .into(),
                            )
                        }),
                        code,
                        message,
                    },
                    // Authentication failed, too many connections, database does not exist,
                    // shutting down: the connection, not the spec.
                    c if c.starts_with("28") || c.starts_with("53") || c.starts_with("57") || c == "3D000" => {
                        DbError::Unreachable(message)
                    }
                    _ => DbError::Other(message),
                }
            }
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Protocol(_) => DbError::Unreachable(e.to_string()),
            _ => DbError::Other(e.to_string()),
        }
    }
}

/// One lazily connected pool per admin URL and database. Pools never hold the URL in errors.
#[derive(Default)]
pub struct Databases {
    pools: Mutex<HashMap<(String, String), PgPool>>,
}

impl Databases {
    pub fn pool(&self, admin_url: &str, database: &str) -> Result<PgPool, DbError> {
        let key = (admin_url.to_owned(), database.to_owned());
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pool) = pools.get(&key) {
            return Ok(pool.clone());
        }
        let options = PgConnectOptions::from_str(admin_url)
            .map_err(|_| DbError::Other("the admin URL is not a valid PostgreSQL URL".into()))?
            .database(database)
            .application_name("mcp-fleet-operator")
            .disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy_with(options);
        // A changed admin Secret leaves its old pool unused; keep the map from growing forever.
        if pools.len() >= 64 {
            pools.clear();
        }
        pools.insert(key, pool.clone());
        Ok(pool)
    }
}

/// Creates or updates the tenant's roles and store mapping, with `login` (one of the tenant's
/// [`login_roles`](TenantName::login_roles)) as the login role its servers use; the other login
/// role is left as it is (see [`retire_other_login`]). A `None` verifier keeps the current
/// password; `stored_password` is set again only when the login role turns out to be missing or
/// retired (for example after a database restore), so the password in the Secret works again.
pub async fn apply_tenant(
    pool: &PgPool,
    tenant: &TenantName,
    login: &str,
    stores: &[String],
    verifier: Option<&str>,
    stored_password: Option<&str>,
    limits: RoleLimits,
) -> Result<AppliedTenant, DbError> {
    match (call_apply(pool, tenant, login, stores, verifier, limits).await, stored_password) {
        (Err(e), Some(password)) if verifier.is_none() && e.needs_password() => {
            let verifier = mcp_fleet_core::tenant::scram_verifier(password);
            call_apply(pool, tenant, login, stores, Some(&verifier), limits).await
        }
        (other, _) => other,
    }
}

async fn call_apply(
    pool: &PgPool,
    tenant: &TenantName,
    login: &str,
    stores: &[String],
    verifier: Option<&str>,
    limits: RoleLimits,
) -> Result<AppliedTenant, DbError> {
    let row: (String, String, Vec<i32>, bool) = sqlx::query_as(
        "SELECT group_role::text, login_role::text, store_ids, created FROM tenancy.apply_tenant($1, $2, $3, $4, $5, $6)",
    )
    .bind(tenant.as_str())
    .bind(stores)
    .bind(verifier)
    .bind(limits.connection_limit)
    .bind(limits.statement_timeout_ms)
    .bind(login)
    .fetch_one(pool)
    .await?;
    Ok(AppliedTenant { group_role: row.0, login_role: row.1, store_ids: row.2, created: row.3 })
}

/// What [`retire_other_login`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retired {
    /// The other login role could log in; now it cannot, and its password is gone.
    Now,
    /// Sessions of the other login role are still open (and not forced); nothing changed.
    Busy,
    /// The other login role was already retired (or never existed); only read.
    Already,
}

/// Retires the tenant's login role other than `login`: NOLOGIN with no password, so the password
/// it had stops working. Call it only when no pod runs with that role any more. Open sessions of
/// that role make it [`Retired::Busy`], unless `force`: then they are ended and it is retired.
pub async fn retire_other_login(
    pool: &PgPool,
    tenant: &TenantName,
    login: &str,
    force: bool,
) -> Result<Retired, DbError> {
    let outcome: String = sqlx::query_scalar("SELECT tenancy.retire_other_login($1, $2, $3)")
        .bind(tenant.as_str())
        .bind(login)
        .bind(force)
        .fetch_one(pool)
        .await?;
    match outcome.as_str() {
        "retired" => Ok(Retired::Now),
        "busy" => Ok(Retired::Busy),
        "none" => Ok(Retired::Already),
        other => Err(DbError::Other(format!("tenancy.retire_other_login answered {other:?}"))),
    }
}

/// Drops the tenant's roles and mapping; `false` when there was nothing to drop.
pub async fn drop_tenant(pool: &PgPool, tenant: &TenantName) -> Result<bool, DbError> {
    Ok(sqlx::query_scalar("SELECT tenancy.drop_tenant($1)").bind(tenant.as_str()).fetch_one(pool).await?)
}
