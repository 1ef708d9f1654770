//! The server's database access: a lazily connected pool, and read-only transactions bound to the
//! caller's tenant and store scope. Every tool query runs inside one. Does database I/O.
//!
//! Dedicated mode: the pool logs in as the tenant's own login role, so PostgreSQL's row-level
//! security limits it to that tenant whatever SQL runs. Shared mode: the pool logs in as a gateway
//! role and each transaction `SET LOCAL ROLE`s to the caller's tenant group role.

use std::time::Duration;

use mcp_fleet_core::server_config::TenancyMode;
use moka::future::Cache;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::auth::identity::{Caller, StoreScope};
use mcp_fleet_core::server_config::CheckedDatabase;

/// Errors of the database layer, with messages a caller can act on (no internals).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("the database is unavailable right now; try again shortly")]
    Unavailable(#[source] sqlx::Error),
    /// No connection came free within the acquire timeout. The pool cannot tell whether all its
    /// connections are in use or new ones cannot be opened (the database is down or restarting),
    /// so the message names both (a PostgreSQL restart showed only the first was misleading).
    #[error(
        "no database connection came free in time (all are busy, or the database is not answering); try again shortly"
    )]
    Busy,
    #[error("x-rls-user-id does not identify one of tenant {tenant}'s stores")]
    UnknownStore { tenant: String },
    /// Shared mode: the caller names a tenant that has no role in this database.
    #[error("tenant {tenant} has no role {role} in this database (is its McpTenant applied?)")]
    UnknownTenant { tenant: String, role: String },
    #[error("{0}")]
    Query(QueryFailure),
}

/// A query the database refused or could not finish, explained for the one who wrote it.
#[derive(Debug)]
pub struct QueryFailure {
    pub message: String,
    /// A short stable label for metrics and the audit trail.
    pub reason: &'static str,
}

impl std::fmt::Display for QueryFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl DbError {
    pub fn reason(&self) -> &'static str {
        match self {
            DbError::Unavailable(_) => "db_unavailable",
            DbError::Busy => "db_busy",
            DbError::UnknownStore { .. } => "unknown_store",
            DbError::UnknownTenant { .. } => "unknown_tenant",
            DbError::Query(q) => q.reason,
        }
    }

    /// Classifies an error from running a caller's statement.
    pub fn from_query(err: sqlx::Error, timeout: Duration) -> Self {
        match err {
            sqlx::Error::PoolTimedOut => DbError::Busy,
            // The server is shutting down, restarting or not yet accepting connections (class 57P:
            // admin_shutdown, crash_shutdown, cannot_connect_now): the query was fine, retry it.
            sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("57P")) => {
                DbError::Unavailable(sqlx::Error::Database(db))
            }
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                let (reason, hint) = match code.as_str() {
                    "57014" => (
                        "timeout",
                        Some(format!(
                            "the query ran longer than the {} statement timeout; add filters, aggregate, or LIMIT the rows",
                            humantime::format_duration(timeout)
                        )),
                    ),
                    "25006" => ("read_only", Some("only reading queries are allowed".to_owned())),
                    "42501" => ("permission_denied", None),
                    c if c.starts_with("42") => ("invalid_query", None),
                    c if c.starts_with("22") => ("invalid_data", None),
                    "53300" | "53400" => ("db_busy", None),
                    _ => ("query_failed", None),
                };
                let message = match hint {
                    Some(h) => format!("{} ({h})", db.message()),
                    None => db.message().to_owned(),
                };
                DbError::Query(QueryFailure { message, reason })
            }
            other @ (sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::Protocol(_)) => DbError::Unavailable(other),
            other => {
                tracing::warn!(error = %other, "query failed outside the database");
                DbError::Query(QueryFailure {
                    message: "the query could not be run".into(),
                    reason: other_reason(&other),
                })
            }
        }
    }
}

fn other_reason(err: &sqlx::Error) -> &'static str {
    match err {
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => "decode",
        _ => "query_failed",
    }
}

/// The pool plus what a transaction needs to bind itself to the caller.
#[derive(Clone)]
pub struct TenantDb {
    pool: PgPool,
    /// The audit writer's connection, apart from the tools' `pool`.
    audit_pool: PgPool,
    mode: TenancyMode,
    statement_timeout: Duration,
    /// (tenant, rls_user_id) → store ids, so the development header costs no extra round trip.
    rls_stores: Cache<(String, Uuid), Vec<i32>>,
    /// Shared mode: the tenant roles seen to exist, so the check costs a round trip a minute.
    known_roles: Cache<String, ()>,
}

impl TenantDb {
    /// A pool that connects on first use, so the server starts (not ready) while the database is down.
    pub fn connect_lazy(cfg: &CheckedDatabase) -> Result<Self, String> {
        let mut opts: PgConnectOptions = cfg.url.parse().map_err(|e| {
            format!("database url {} is invalid: {e}", mcp_fleet_core::redact::redact_url(&cfg.url))
        })?;
        if let Some(pw) = &cfg.password {
            opts = opts.password(pw);
        }
        let timeout_ms = cfg.statement_timeout.as_millis().to_string();
        let opts = opts
            .application_name(&cfg.application_name)
            .options([
                ("jit", "off"),
                ("statement_timeout", timeout_ms.as_str()),
                ("standard_conforming_strings", "on"),
            ])
            .disable_statement_logging();
        let pool_of = |min: u32, max: u32| {
            PgPoolOptions::new()
                .min_connections(min.min(max))
                .max_connections(max)
                .acquire_timeout(cfg.acquire_timeout)
                .idle_timeout(Some(cfg.idle_timeout))
                .max_lifetime(Some(cfg.max_lifetime))
                .connect_lazy_with(opts.clone())
        };
        // One connection of `maxConnections` is the audit trail's own: tool calls that hold every
        // other connection (32 callers of a 5-s query, say) must not keep the records of the calls
        // that finished from being committed, or those calls' answers would be withheld.
        let tools = cfg.max_connections.saturating_sub(1).max(1);
        Ok(Self::with_pools(
            pool_of(cfg.min_connections, tools),
            pool_of(0, 1),
            cfg.mode,
            cfg.statement_timeout,
        ))
    }

    /// A `TenantDb` over `pool`, whose connections the audit trail shares.
    pub fn with_pool(pool: PgPool, mode: TenancyMode, statement_timeout: Duration) -> Self {
        Self::with_pools(pool.clone(), pool, mode, statement_timeout)
    }

    fn with_pools(pool: PgPool, audit_pool: PgPool, mode: TenancyMode, statement_timeout: Duration) -> Self {
        Self {
            audit_pool,
            pool,
            mode,
            statement_timeout,
            rls_stores: Cache::builder().max_capacity(10_000).time_to_live(Duration::from_secs(60)).build(),
            known_roles: Cache::builder().max_capacity(10_000).time_to_live(Duration::from_secs(60)).build(),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Closes both pools, waiting for their connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
        self.audit_pool.close().await;
    }

    /// The connection the audit trail writes through.
    pub fn audit_pool(&self) -> &PgPool {
        &self.audit_pool
    }

    pub fn mode(&self) -> TenancyMode {
        self.mode
    }

    pub fn statement_timeout(&self) -> Duration {
        self.statement_timeout
    }

    /// A `READ ONLY` transaction as the caller's tenant, with the statement timeout, the retail
    /// search path and the caller's store scope applied, in one round trip. Dropping it rolls back.
    pub async fn read_only(&self, caller: &Caller) -> Result<Transaction<'static, Postgres>, DbError> {
        let stores = match &caller.scope {
            StoreScope::Tenant => None,
            StoreScope::Stores(ids) => Some(ids.clone()),
            StoreScope::RlsUser(id) => Some(self.rls_user_stores(caller, *id).await?),
        };
        self.begin(caller, stores.as_deref()).await
    }

    async fn begin(
        &self,
        caller: &Caller,
        stores: Option<&[i32]>,
    ) -> Result<Transaction<'static, Postgres>, DbError> {
        // Every value below comes from validated configuration or integers, never from the caller's
        // text, so formatting them into one simple-protocol batch is safe. `public` holds the
        // pgvector type; it comes after pg_catalog so nothing there can shadow a built-in.
        let mut batch = format!(
            "BEGIN READ ONLY; SET LOCAL statement_timeout = {}; SET LOCAL search_path = retail, pg_catalog, public",
            self.statement_timeout.as_millis()
        );
        // Callers without PII access run as the tenant's group role, which PostgreSQL refuses the
        // raw email and phone columns; PII callers keep the login role (member of mcpfleet_pii).
        let role = match (self.mode, caller.grants.pii) {
            (TenancyMode::Dedicated, true) => None,
            (TenancyMode::Shared, true) => Some(caller.tenant.login_role()),
            (_, false) => Some(caller.tenant.group_role()),
        };
        if let Some(role) = role {
            if self.mode == TenancyMode::Shared {
                self.check_role_exists(caller, &role).await?;
            }
            batch.push_str(&format!("; SET LOCAL ROLE \"{role}\""));
        }
        if let Some(ids) = stores {
            // An empty list means "no store": -1 matches nothing.
            let list = if ids.is_empty() {
                "-1".to_owned()
            } else {
                ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
            };
            batch.push_str(&format!("; SET LOCAL mcpfleet.store_scope = '{list}'"));
        }
        self.pool
            .begin_with(sqlx::AssertSqlSafe(batch))
            .await
            .map_err(|e| DbError::from_query(e, self.statement_timeout))
    }

    /// Shared mode: refuses a caller whose tenant role does not exist before the transaction
    /// starts. (A failing `SET LOCAL ROLE` inside the one-round-trip `BEGIN` batch would return
    /// the connection to the pool with its transaction aborted, failing whoever used it next.)
    async fn check_role_exists(&self, caller: &Caller, role: &str) -> Result<(), DbError> {
        if self.known_roles.get(role).await.is_some() {
            return Ok(());
        }
        let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| DbError::from_query(e, self.statement_timeout))?;
        if !exists {
            return Err(DbError::UnknownTenant { tenant: caller.tenant.to_string(), role: role.to_owned() });
        }
        self.known_roles.insert(role.to_owned(), ()).await;
        Ok(())
    }

    async fn rls_user_stores(&self, caller: &Caller, id: Uuid) -> Result<Vec<i32>, DbError> {
        let key = (caller.tenant.as_str().to_owned(), id);
        if let Some(ids) = self.rls_stores.get(&key).await {
            return Ok(ids);
        }
        let mut tx = self.begin(caller, None).await?;
        let ids: Vec<i32> = sqlx::query_scalar("SELECT store_id FROM retail.stores WHERE rls_user_id = $1")
            .bind(id)
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| DbError::from_query(e, self.statement_timeout))?;
        if ids.is_empty() {
            return Err(DbError::UnknownStore { tenant: caller.tenant.to_string() });
        }
        self.rls_stores.insert(key, ids.clone()).await;
        Ok(ids)
    }
}
