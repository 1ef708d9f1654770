//! `execute_sales_query` and `explain_sales_query`: model-written SQL through three independent
//! layers — the parser-based validator, a READ ONLY transaction with a statement timeout under
//! the tenant's role, and PostgreSQL's row-level security. Does database I/O.
//!
//! `explain_sales_query` stops after planning (see `explain`); so does `execute_sales_query` when
//! the plan's estimated cost is above the server's limit.
//!
//! The query runs in two steps. It is first described, as a named prepared statement, which tells
//! the type of each column (sqlx looks up types it does not know, such as `tsvector` or pgvector's
//! `vector`, with queries of its own: had the statement been the unnamed one, those lookups would
//! have replaced it, the cause of "unnamed prepared statement does not exist"). Then a projection
//! of it runs (see `db::projection`), whose columns are all of types the server reads without
//! asking, each value cut in PostgreSQL, the rows capped by a `LIMIT` and read one by one within
//! the byte budget.

use std::time::Instant;

use mcp_fleet_core::tools::ToolName;
use mcp_fleet_sql_guard::{self as sql_guard, SqlPolicy};
use sqlx::{Column, Executor, SqlSafeStr, Statement};
use tracing::Instrument as _;

use super::explain::{self, Plan};
use super::outcome::ToolFailure;
use super::result::{Collector, Compact, Limits};
use super::state::AppState;
use crate::auth::identity::Caller;
use crate::db::{DbError, projection};

/// Validates and runs `sql`, returning what fits in `limits` (and saying when there was more).
/// With a cost limit (`tools.maxEstimatedCost`), the query is first planned in the same
/// transaction and refused, unrun, when its estimated cost is above the limit.
pub async fn execute(
    state: &AppState,
    caller: &Caller,
    sql: &str,
    limits: Limits,
) -> Result<Compact, ToolFailure> {
    let body = tracing::info_span!("validate sql").in_scope(|| checked_sql(caller, sql))?;
    run(state, caller, &body, limits).instrument(crate::db::query_span()).await
}

/// Plans (with a cost limit), describes and runs the checked `body` in the caller's read-only
/// transaction.
async fn run(state: &AppState, caller: &Caller, body: &str, limits: Limits) -> Result<Compact, ToolFailure> {
    let db_error = |e| DbError::from_query(e, state.db.statement_timeout());
    let mut tx = state.db.read_only(caller).await?;
    let started = Instant::now();
    if let Some(max) = state.max_estimated_cost {
        let plan = explain::estimate(&mut tx, body).await.map_err(db_error)?;
        if plan.exceeds(Some(max)) {
            return Err(ToolFailure::rejected("estimated_cost", plan.refusal(max)));
        }
    }
    let described =
        (&mut *tx).prepare(sqlx::AssertSqlSafe(body.to_owned()).into_sql_str()).await.map_err(db_error)?;
    let columns = projection::columns(described.columns().iter().map(|c| (c.name(), c.type_info())));
    let query = projection::select(body, &columns, limits.value_chars(columns.len()), limits.rows);
    let collector = Collector::new(columns.into_iter().map(|c| (c.name, c.form)).collect(), limits);
    let rows = sqlx::query(sqlx::AssertSqlSafe(query)).persistent(false).fetch(&mut *tx);
    let result = collector.read(rows).await.map_err(db_error)?;
    state
        .metrics
        .query_duration
        .with_label_values(&[ToolName::ExecuteSalesQuery.as_str()])
        .observe(started.elapsed().as_secs_f64());
    drop(tx);
    result.map_err(|e| ToolFailure::error("unsupported_type", e.to_string()))
}

/// Validates `sql` exactly as [`execute`] does and returns PostgreSQL's plan of it, compact, with
/// the server's cost limit: planned under the caller's role and row-level security, never run.
pub async fn explain(state: &AppState, caller: &Caller, sql: &str) -> Result<Plan, ToolFailure> {
    let body = tracing::info_span!("validate sql").in_scope(|| checked_sql(caller, sql))?;
    let planned = async {
        let mut tx = state.db.read_only(caller).await?;
        explain::estimate(&mut tx, &body)
            .await
            .map_err(|e| DbError::from_query(e, state.db.statement_timeout()))
    };
    let started = Instant::now();
    let plan = planned.instrument(crate::db::query_span()).await?;
    state
        .metrics
        .query_duration
        .with_label_values(&[ToolName::ExplainSalesQuery.as_str()])
        .observe(started.elapsed().as_secs_f64());
    Ok(plan.answer(state.max_estimated_cost))
}

/// The text that runs for `sql`: validated and re-rendered, `retail.customers` masked for callers
/// without PII access, without a trailing semicolon.
fn checked_sql(caller: &Caller, sql: &str) -> Result<String, ToolFailure> {
    let validated = sql_guard::validate(sql, policy())?;
    let text = if !caller.grants.pii && validated.tables.contains("retail.customers") {
        mask_customers(&validated.sql)?
    } else {
        validated.sql
    };
    Ok(text.trim().trim_end_matches(';').trim_end().to_owned())
}

/// Points every reference to `retail.customers` at `retail.customers_masked` (same columns,
/// email and phone masked) for callers without PII access. The validator writes every table
/// schema-qualified, so a whole-word rename finds them; the result is validated again against a
/// policy that knows the masked view but not the raw table. PostgreSQL refuses these callers' role
/// the raw columns anyway, so anything missed would fail rather than leak.
pub fn mask_customers(validated_sql: &str) -> Result<String, ToolFailure> {
    static RAW: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let raw = RAW.get_or_init(|| regex::Regex::new(r"\bretail\.customers\b").expect("static pattern"));
    let masked = raw.replace_all(validated_sql, "retail.customers_masked").into_owned();
    let checked = sql_guard::validate(&masked, masked_policy())?;
    if checked.tables.contains("retail.customers") {
        return Err(ToolFailure::rejected(
            "pii",
            "this query reads customer contact details, which your role may not see",
        ));
    }
    Ok(checked.sql)
}

fn masked_policy() -> &'static SqlPolicy {
    static POLICY: std::sync::OnceLock<SqlPolicy> = std::sync::OnceLock::new();
    POLICY.get_or_init(|| {
        let tables: Vec<String> = SqlPolicy::retail()
            .qualified_tables()
            .filter(|t| t != "retail.customers")
            .map(|t| t.trim_start_matches("retail.").to_owned())
            .chain(std::iter::once("customers_masked".to_owned()))
            .collect();
        SqlPolicy::new("retail", tables.iter().map(String::as_str))
    })
}

fn policy() -> &'static SqlPolicy {
    static POLICY: std::sync::OnceLock<SqlPolicy> = std::sync::OnceLock::new();
    POLICY.get_or_init(SqlPolicy::retail)
}
