//! What a query would cost, before it runs: `explain_sales_query` (PostgreSQL's plan, compact,
//! under the tenant's role and row-level security, checked as `execute_sales_query` checks) and
//! the cost guard (`tools.maxEstimatedCost`) that refuses an expensive query unrun. A real MCP
//! client over HTTP, a real PostgreSQL with the sample data.

mod support;

use serde_json::{Value, json};
use support::{
    Opts, call, call_raw, client, embedded_db, json as parse, metrics, server, tenant, wait_for_audit,
};

/// Every node of a compact plan tree, depth first.
fn nodes(plan: &Value) -> Vec<&Value> {
    let mut all = vec![plan];
    for child in plan["plans"].as_array().into_iter().flatten() {
        all.extend(nodes(child));
    }
    all
}

/// The estimated rows of `sql` as PostgreSQL's superuser plans it (no row-level security).
async fn admin_estimate(db: &mcp_fleet_testkit::TestDb, sql: &str) -> u64 {
    let (raw,): (sqlx::types::Json<Value>,) =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN (FORMAT JSON) {sql}")))
            .fetch_one(&db.admin)
            .await
            .expect("the admin can explain");
    raw.0[0]["Plan"]["Plan Rows"].as_f64().expect("a plan has rows") as u64
}

#[tokio::test]
async fn explain_plans_under_the_tenant_without_running_and_refuses_what_execute_refuses() {
    let db = embedded_db().await;
    let t = tenant(&db, &[2, 6]).await;
    let srv = server(&db, &t, Opts { statement_timeout: Some("500ms".into()), ..Default::default() }).await;
    let c = client(&srv.url, &[]).await;

    let sql = "SELECT s.store_name, count(*) AS orders FROM retail.orders o \
               JOIN retail.stores s ON s.store_id = o.store_id GROUP BY s.store_name";
    let result = call_raw(&c, "explain_sales_query", json!({ "postgresql_query": sql })).await.unwrap();
    let (err, text) = support::text_of(&result);
    assert!(!err, "{text}");
    let v = parse(&text);
    assert_eq!(result.structured_content, Some(v.clone()), "the plan is structured content too");
    assert!(v["cost"].as_f64().unwrap() > 0.0 && v["rows"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["cost"], v["plan"]["cost"], "the total is the outermost node's");
    assert!(v["msg"].as_str().unwrap().contains("planned, not run"), "{v}");
    assert!(v.get("max_cost").is_none(), "no cost limit on this server: {v}");
    let relations: Vec<&str> = nodes(&v["plan"]).iter().filter_map(|n| n["relation"].as_str()).collect();
    assert!(relations.contains(&"orders") && relations.contains(&"stores"), "{v}");
    assert!(text.len() < 4000, "compact, not PostgreSQL's raw JSON: {text}");

    // Planned, never run: a query that would run far past the 500 ms statement timeout explains
    // at once.
    let huge = "SELECT count(*) FROM retail.order_items a, retail.order_items b, retail.order_items c";
    let (err, text) = call(&c, "explain_sales_query", json!({ "postgresql_query": huge })).await;
    assert!(!err, "{text}");
    assert!(parse(&text)["cost"].as_f64().unwrap() > 1e9, "{text}");

    // Under the tenant's role and row-level security: the plan reads the tenant's visible stores
    // (the policy's InitPlan) and expects fewer rows than the whole table the superuser plans.
    let all_orders = "SELECT * FROM retail.orders";
    let (_, text) = call(&c, "explain_sales_query", json!({ "postgresql_query": all_orders })).await;
    let v = parse(&text);
    assert!(nodes(&v["plan"]).iter().any(|n| n["sub"] == json!("InitPlan")), "no RLS policy in {v}");
    let (tenant_rows, table_rows) = (v["rows"].as_u64().unwrap(), admin_estimate(&db, all_orders).await);
    assert!(tenant_rows < table_rows, "the tenant expects {tenant_rows} of {table_rows} rows");

    // The same checks as execute_sales_query, the same words; errors are flagged, with the query.
    for (sql, needle) in [
        ("DELETE FROM retail.orders", "only"),
        ("SELECT 1; DROP TABLE retail.orders", "one SQL statement"),
        ("SELECT pg_sleep(10)", "pg_sleep"),
        ("SELECT * FROM pg_catalog.pg_authid", "pg_authid"),
        ("SELECT * FROM audit.tool_calls", "tool_calls"),
        ("SELECT no_such_column FROM retail.orders", "no_such_column"),
    ] {
        let explained =
            call_raw(&c, "explain_sales_query", json!({ "postgresql_query": sql })).await.unwrap();
        let (err, text) = support::text_of(&explained);
        assert!(err, "{sql:?} should be refused, got {text}");
        let body = parse(&text);
        assert!(body["err"].as_str().unwrap().contains(needle), "{sql:?}: {text}");
        assert_eq!(body["q"], json!(sql));
        assert_eq!(explained.structured_content, None, "an error is not a plan: {text}");
        let (_, executed) = call(&c, "execute_sales_query", json!({ "postgresql_query": sql })).await;
        assert_eq!(parse(&executed)["err"], body["err"], "{sql:?}");
    }
}

#[tokio::test]
async fn the_cost_guard_refuses_an_expensive_query_unrun_and_lets_a_cheap_one_through() {
    let db = embedded_db().await;
    let t = tenant(&db, &[1]).await;
    let srv = server(&db, &t, Opts { max_estimated_cost: Some(50_000.0), ..Default::default() }).await;
    let c = client(&srv.url, &[]).await;

    let (err, text) = call(
        &c,
        "execute_sales_query",
        json!({ "postgresql_query": "SELECT count(*) AS n FROM retail.stores" }),
    )
    .await;
    assert!(!err, "{text}");
    assert_eq!(parse(&text)["r"], json!([[1]]));

    let cross = "SELECT a.order_id, b.order_id FROM retail.order_items a CROSS JOIN retail.order_items b";
    let started = std::time::Instant::now();
    let (err, text) = call(&c, "execute_sales_query", json!({ "postgresql_query": cross })).await;
    assert!(err, "{text}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "refused before running");
    let v = parse(&text);
    let msg = v["err"].as_str().unwrap();
    for needle in
        ["estimated cost is", "limit of 50000.00", "maxEstimatedCost", "LIMIT", "explain_sales_query"]
    {
        assert!(msg.contains(needle), "{needle:?} missing in {msg}");
    }
    assert_eq!((v["q"].as_str(), v["n"].clone()), (Some(cross), json!(0)));

    // explain_sales_query says the same before anyone tries, and a LIMIT brings the cost down.
    let (_, text) = call(&c, "explain_sales_query", json!({ "postgresql_query": cross })).await;
    let v = parse(&text);
    assert_eq!(v["max_cost"], json!(50_000.0));
    assert!(v["msg"].as_str().unwrap().contains("execute_sales_query would refuse it"), "{v}");
    let limited = format!("{cross} LIMIT 20");
    let (err, text) = call(&c, "execute_sales_query", json!({ "postgresql_query": limited })).await;
    assert!(!err, "{text}");
    assert_eq!(parse(&text)["n"], json!(20));

    // Counted as a rejected query, and audited as a rejection with the reason.
    let m = metrics(&srv).await;
    assert!(m.contains("mcpfleet_rejected_queries_total{reason=\"estimated_cost\"} 1"), "{m}");
    let rows = wait_for_audit(&db, 4).await;
    let refused: Vec<_> = rows.iter().filter(|r| r.outcome == "rejected").collect();
    assert_eq!(refused.len(), 1, "{rows:?}");
    assert_eq!(refused[0].tool, "execute_sales_query");
    assert!(refused[0].error.as_deref().unwrap_or_default().contains("estimated cost"), "{rows:?}");
}
