//! `execute_sales_query`: model-written SQL through three independent layers — the parser-based
//! validator, a READ ONLY transaction with a statement timeout under the tenant's role, and
//! PostgreSQL's row-level security. Does database I/O.

use std::time::Instant;

use mcp_fleet_sql_guard::{self as sql_guard, SqlPolicy};

use super::outcome::ToolFailure;
use super::result::{Compact, compact};
use super::state::AppState;
use crate::auth::identity::Caller;
use crate::db::DbError;

/// Validates and runs `sql`, returning at most `cap` rows (and saying when there were more).
pub async fn execute(
    state: &AppState,
    caller: &Caller,
    sql: &str,
    cap: usize,
) -> Result<Compact, ToolFailure> {
    let validated = sql_guard::validate(sql, policy())?;
    let text = if !caller.grants.pii && validated.tables.contains("retail.customers") {
        mask_customers(&validated.sql)?
    } else {
        validated.sql
    };
    // The cap is applied by PostgreSQL, so a huge result is never produced, sent or buffered.
    // The newline keeps a trailing `--` comment from swallowing the closing parenthesis.
    let body = text.trim().trim_end_matches(';').trim_end();
    let capped = format!("SELECT * FROM (\n{body}\n) AS mcp_fleet_result LIMIT {}", cap + 1);
    let mut tx = state.db.read_only(caller).await?;
    let started = Instant::now();
    let rows = sqlx::query(sqlx::AssertSqlSafe(capped))
        .persistent(false)
        .fetch_all(&mut *tx)
        .await
        .map_err(|e| DbError::from_query(e, state.db.statement_timeout()))?;
    state
        .metrics
        .query_duration
        .with_label_values(&["execute_sales_query"])
        .observe(started.elapsed().as_secs_f64());
    drop(tx);
    compact(&rows, cap).map_err(|e| ToolFailure::rejected("unsupported_type", e.to_string()))
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
