//! PostgreSQL's plan of a validated query, made compact: `EXPLAIN (FORMAT JSON)` without ANALYZE
//! (the query is planned, never run), reduced to the estimated total cost and rows and a tree of
//! plan nodes with their relation, cost and rows — what `explain_sales_query` answers and what the
//! cost guard of `execute_sales_query` compares with `tools.maxEstimatedCost`. `estimate` does
//! database I/O inside the caller's transaction; the rest is pure.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;
use sqlx::PgConnection;

/// Most plan nodes an answer shows; a larger tree is cut (and says so).
pub const MAX_NODES: usize = 100;

/// A compact plan: `explain_sales_query`'s answer (its `outputSchema`).
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct Plan {
    /// PostgreSQL's estimate of the query's total cost, in its planner's units (roughly one
    /// sequential page read each). Compare queries with it; it is not a time.
    pub cost: f64,
    /// Estimated rows the query returns.
    pub rows: u64,
    /// The plan tree, outermost node first.
    pub plan: PlanNode,
    /// Present, and true, when the tree had more than 100 nodes and the rest were left out.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub truncated: bool,
    /// The largest estimated cost `execute_sales_query` runs on this server, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cost: Option<f64>,
    /// A note for the reader: what the numbers are, and whether the query would run.
    pub msg: String,
}

/// One node of the plan tree.
#[derive(Clone, Debug, PartialEq, Serialize, JsonSchema)]
pub struct PlanNode {
    /// What the node does, e.g. `Seq Scan`, `Index Scan`, `Hash Join`, `Aggregate`, `Sort`.
    pub node: String,
    /// The table (or CTE, or function) it reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
    /// The index it uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// The join type, when not an inner join (`Left`, `Full`, `Semi`, `Anti`...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub join: Option<String>,
    /// `InitPlan` or `SubPlan` for a node that feeds its parent a value rather than rows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Estimated total cost of this node and everything under it.
    pub cost: f64,
    /// Estimated rows this node returns.
    pub rows: u64,
    /// The nodes it reads from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plans: Vec<PlanNode>,
}

/// PostgreSQL's plan of `body` (a validated, re-rendered SELECT without a trailing semicolon), in
/// the caller's read-only transaction, so under the tenant's role and row-level security.
pub async fn estimate(conn: &mut PgConnection, body: &str) -> Result<Plan, sqlx::Error> {
    let sql = format!("EXPLAIN (FORMAT JSON) {body}");
    let (raw,): (sqlx::types::Json<Value>,) =
        sqlx::query_as(sqlx::AssertSqlSafe(sql)).persistent(false).fetch_one(conn).await?;
    Plan::from_explain(&raw.0).ok_or_else(|| sqlx::Error::Protocol("EXPLAIN returned no plan".into()))
}

impl Plan {
    /// The compact form of `EXPLAIN (FORMAT JSON)`'s output (`[{"Plan": {...}}]`).
    pub fn from_explain(raw: &Value) -> Option<Plan> {
        let root = raw.get(0)?.get("Plan")?;
        let mut budget = MAX_NODES;
        let plan = node(root, &mut budget)?;
        Some(Plan {
            cost: plan.cost,
            rows: plan.rows,
            plan,
            truncated: budget == 0 && count(root) > MAX_NODES,
            max_cost: None,
            msg: String::new(),
        })
    }

    /// Whether `execute_sales_query` would refuse the query for its cost.
    pub fn exceeds(&self, max_cost: Option<f64>) -> bool {
        max_cost.is_some_and(|max| self.cost > max)
    }

    /// The plan as `explain_sales_query` answers it: with the server's cost limit and a note.
    pub fn answer(mut self, max_cost: Option<f64>) -> Plan {
        let mut msg = format!(
            "Estimates only: the query was planned, not run. Estimated total cost {} (planner units), about {} rows",
            cost_text(self.cost),
            self.rows
        );
        match max_cost {
            Some(max) if self.exceeds(Some(max)) => msg.push_str(&format!(
                "; execute_sales_query would refuse it: this server runs queries up to an estimated cost of {}. {NARROWER}",
                cost_text(max)
            )),
            Some(max) => msg.push_str(&format!(
                "; within this server's limit of {} for execute_sales_query",
                cost_text(max)
            )),
            None => {}
        }
        if self.truncated {
            msg.push_str(&format!("; only the first {MAX_NODES} plan nodes are shown"));
        }
        self.max_cost = max_cost;
        self.msg = msg;
        self
    }

    /// Why `execute_sales_query` refuses the query, in words that say what to do instead.
    pub fn refusal(&self, max_cost: f64) -> String {
        format!(
            "query refused before running: its estimated cost is {}, above this server's limit of {} (tools.maxEstimatedCost). {NARROWER}",
            cost_text(self.cost),
            cost_text(max_cost)
        )
    }
}

/// What to try instead of a query that costs too much.
const NARROWER: &str = "Ask a narrower question: filter with WHERE (a store, a date range, a category), aggregate \
with GROUP BY instead of returning detail rows, join fewer tables, or add a LIMIT; explain_sales_query shows the \
estimated cost of a query without running it.";

/// A cost as people read it: two decimals, no exponent.
fn cost_text(cost: f64) -> String {
    format!("{cost:.2}")
}

/// The compact node of `raw`, and of up to `budget` nodes under it in all.
fn node(raw: &Value, budget: &mut usize) -> Option<PlanNode> {
    if *budget == 0 {
        return None;
    }
    *budget -= 1;
    let text = |key: &str| raw.get(key).and_then(Value::as_str).map(str::to_owned);
    let relation = text("Relation Name").or_else(|| text("CTE Name")).or_else(|| text("Function Name"));
    let sub = text("Parent Relationship").filter(|r| r == "InitPlan" || r == "SubPlan");
    let mut plans = Vec::new();
    for child in raw.get("Plans").and_then(Value::as_array).into_iter().flatten() {
        match node(child, budget) {
            Some(n) => plans.push(n),
            None => break,
        }
    }
    Some(PlanNode {
        node: text("Node Type")?,
        relation,
        index: text("Index Name"),
        join: text("Join Type").filter(|j| j != "Inner"),
        sub,
        cost: round2(raw.get("Total Cost").and_then(Value::as_f64).unwrap_or(0.0)),
        rows: raw.get("Plan Rows").and_then(Value::as_f64).map_or(0, |r| r.max(0.0).round() as u64),
        plans,
    })
}

/// How many nodes the raw tree has.
fn count(raw: &Value) -> usize {
    1 + raw.get("Plans").and_then(Value::as_array).map_or(0, |c| c.iter().map(count).sum())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn scan(table: &str, cost: f64, rows: f64) -> Value {
        json!({"Node Type": "Seq Scan", "Parent Relationship": "Outer", "Relation Name": table, "Alias": table,
               "Startup Cost": 0.0, "Total Cost": cost, "Plan Rows": rows, "Plan Width": 40,
               "Filter": "(store_id = ANY ($0))"})
    }

    #[test]
    fn explain_json_becomes_a_small_tree_with_the_totals_on_top() {
        let raw = json!([{"Plan": {
        "Node Type": "Hash Join", "Join Type": "Left", "Startup Cost": 1.5, "Total Cost": 1234.567,
        "Plan Rows": 2000.0, "Plan Width": 64, "Hash Cond": "(o.store_id = s.store_id)",
        "Plans": [
            {"Node Type": "Result", "Parent Relationship": "InitPlan", "Subplan Name": "InitPlan 1 (returns $0)",
             "Total Cost": 0.26, "Plan Rows": 1.0},
            scan("orders", 1000.0, 2000.0),
            {"Node Type": "Hash", "Parent Relationship": "Inner", "Total Cost": 20.0, "Plan Rows": 8.0,
             "Plans": [{"Node Type": "Index Scan", "Relation Name": "stores", "Index Name": "stores_pkey",
                        "Total Cost": 19.0, "Plan Rows": 8.0}]}
        ]}}]);
        let plan = Plan::from_explain(&raw).unwrap();
        assert_eq!((plan.cost, plan.rows, plan.truncated), (1234.57, 2000, false));
        let out = serde_json::to_value(&plan.plan).unwrap();
        assert_eq!(
            out,
            json!({"node": "Hash Join", "join": "Left", "cost": 1234.57, "rows": 2000, "plans": [
                {"node": "Result", "sub": "InitPlan", "cost": 0.26, "rows": 1},
                {"node": "Seq Scan", "relation": "orders", "cost": 1000.0, "rows": 2000},
                {"node": "Hash", "cost": 20.0, "rows": 8, "plans": [
                    {"node": "Index Scan", "relation": "stores", "index": "stores_pkey", "cost": 19.0, "rows": 8}
                ]}
            ]})
        );
        assert!(!out.to_string().contains("Filter"), "conditions and widths are left out");
        assert_eq!(Plan::from_explain(&json!([])), None);
        assert_eq!(Plan::from_explain(&json!({"Plan": {}})), None);
    }

    #[test]
    fn a_huge_tree_is_cut_and_says_so() {
        let children: Vec<Value> = (0..150).map(|i| scan(&format!("t{i}"), 1.0, 1.0)).collect();
        let raw = json!([{"Plan": {"Node Type": "Append", "Total Cost": 150.0, "Plan Rows": 150.0, "Plans": children}}]);
        let plan = Plan::from_explain(&raw).unwrap();
        assert!(plan.truncated);
        assert_eq!(plan.plan.plans.len(), MAX_NODES - 1);
        assert!(plan.answer(None).msg.contains("only the first 100 plan nodes"));
    }

    #[test]
    fn the_answer_and_the_refusal_name_the_estimate_and_the_limit() {
        let raw = json!([{"Plan": scan("orders", 5000.0, 100.0)}]);
        let plan = Plan::from_explain(&raw).unwrap();
        assert!(!plan.exceeds(None) && !plan.exceeds(Some(5000.0)) && plan.exceeds(Some(4999.0)));
        let answer = plan.clone().answer(Some(100.0));
        assert_eq!(answer.max_cost, Some(100.0));
        assert!(answer.msg.contains("would refuse it") && answer.msg.contains("100.00"), "{}", answer.msg);
        assert!(plan.clone().answer(Some(1e6)).msg.contains("within this server's limit"));
        let refusal = plan.refusal(100.0);
        for needle in
            ["5000.00", "limit of 100.00", "tools.maxEstimatedCost", "WHERE", "LIMIT", "explain_sales_query"]
        {
            assert!(refusal.contains(needle), "{needle:?} missing in {refusal}");
        }
        let json = serde_json::to_value(plan.answer(None)).unwrap();
        assert!(json.get("max_cost").is_none() && json.get("truncated").is_none(), "{json}");
    }

    #[test]
    fn the_output_schema_describes_the_answer() {
        let schema = serde_json::Value::Object(
            rmcp::handler::server::common::schema_for_output::<Plan>().as_ref().clone(),
        );
        assert_eq!(schema["required"], json!(["cost", "rows", "plan", "msg"]));
    }
}
