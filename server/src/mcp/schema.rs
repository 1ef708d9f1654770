//! Table schemas for models: columns and types, relationships and the valid values of useful
//! columns, as the reference sample formats them, cached per tenant and store scope. Also
//! exposed as MCP resources `retail://schema/<table>`. Does database I/O (as the caller's tenant).

use std::fmt::Write as _;
use std::time::Duration;

use moka::future::Cache;
use rmcp::model::Resource;
use tracing::Instrument as _;

use super::args::MAX_TABLE_NAMES;
use super::outcome::ToolFailure;
use super::state::AppState;
use crate::auth::identity::{Caller, StoreScope};

/// The tables a tenant may ask about, with a one-line purpose each.
pub const TABLES: &[(&str, &str)] = &[
    ("stores", "Zava stores: name, whether online, and the manager UUID (rls_user_id)"),
    ("customers", "customers and the store each one mainly shops at"),
    ("categories", "the 9 DIY product categories"),
    ("product_types", "product types within each category"),
    ("products", "the product catalog: SKU, name, category, type, cost, price, margin and description"),
    ("inventory", "stock level of each product in each store"),
    ("orders", "orders: customer, store and date"),
    ("order_items", "order lines: product, quantity, unit price, discount and total"),
    (
        "product_description_embeddings",
        "384-dimension embeddings of product descriptions for semantic search",
    ),
];

const URI_PREFIX: &str = "retail://schema/";

/// Formatted schemas by (tenant, scope, table); valid values depend on what the tenant sees.
#[derive(Clone)]
pub struct SchemaCache(Cache<(String, StoreScope, String), String>);

impl SchemaCache {
    pub fn new() -> Self {
        Self(Cache::builder().max_capacity(10_000).time_to_live(Duration::from_secs(300)).build())
    }
}

impl Default for SchemaCache {
    fn default() -> Self {
        Self::new()
    }
}

pub fn resources() -> Vec<Resource> {
    TABLES
        .iter()
        .map(|(t, purpose)| {
            Resource::new(format!("{URI_PREFIX}{t}"), format!("retail.{t}"))
                .with_description(format!("Schema of retail.{t}: {purpose}"))
                .with_mime_type("text/markdown")
        })
        .collect()
}

pub fn table_of_uri(uri: &str) -> Option<&'static str> {
    let name = uri.strip_prefix(URI_PREFIX)?;
    TABLES.iter().map(|(t, _)| *t).find(|t| *t == name)
}

/// Accepts `retail.orders` (the sample's form) or `orders`.
fn normalise(name: &str) -> Option<&'static str> {
    let name = name.trim().to_ascii_lowercase();
    let bare = name.strip_prefix("retail.").unwrap_or(&name);
    TABLES.iter().map(|(t, _)| *t).find(|t| *t == bare)
}

pub async fn describe_tables(
    state: &AppState,
    caller: &Caller,
    names: &[String],
) -> Result<String, ToolFailure> {
    if names.is_empty() {
        return Err(ToolFailure::rejected(
            "invalid_arguments",
            "table_names is required and cannot be empty",
        ));
    }
    if names.len() > MAX_TABLE_NAMES {
        return Err(ToolFailure::rejected(
            "invalid_arguments",
            format!("ask for at most {MAX_TABLE_NAMES} tables at a time"),
        ));
    }
    let mut tables = Vec::with_capacity(names.len());
    let mut invalid: Vec<&String> = Vec::new();
    for name in names {
        match normalise(name) {
            Some(table) => tables.push(table),
            None => invalid.push(name),
        }
    }
    if !invalid.is_empty() {
        let valid: Vec<String> = TABLES.iter().map(|(t, _)| format!("retail.{t}")).collect();
        return Err(ToolFailure::rejected(
            "unknown_table",
            format!("Invalid table names: {invalid:?}. Valid tables are: {valid:?}"),
        ));
    }
    let mut out = String::new();
    for table in tables {
        let key = (caller.tenant.to_string(), caller.scope.clone(), table.to_owned());
        let text = match state.schema_cache.0.get(&key).await {
            Some(t) => t,
            None => {
                let t = describe(state, caller, table).instrument(crate::db::query_span()).await?;
                state.schema_cache.0.insert(key, t.clone()).await;
                t
            }
        };
        out.push_str("\n\n");
        out.push_str(&text);
        if table == "customers" && !caller.grants.pii {
            out.push_str("- `email` and `phone` are masked for your role (for example o***@example.com)\n");
        }
    }
    Ok(out)
}

async fn describe(state: &AppState, caller: &Caller, table: &str) -> Result<String, ToolFailure> {
    let mut tx = state.db.read_only(caller).await?;
    let map = |e| ToolFailure::from(crate::db::DbError::from_query(e, state.db.statement_timeout()));
    let columns: Vec<(String, String, bool, bool)> = sqlx::query_as(
        "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                EXISTS (SELECT FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary AND a.attnum = ANY (i.indkey))
         FROM pg_attribute a
         WHERE a.attrelid = ('retail.' || $1)::regclass AND a.attnum > 0 AND NOT a.attisdropped
         ORDER BY a.attnum",
    )
    .bind(table)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let fks: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT a.attname::text, cf.relname::text, af.attname::text
         FROM pg_constraint c
         JOIN pg_class cf ON cf.oid = c.confrelid
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
         JOIN pg_attribute af ON af.attrelid = c.confrelid AND af.attnum = c.confkey[1]
         WHERE c.conrelid = ('retail.' || $1)::regclass AND c.contype = 'f'
         ORDER BY 1",
    )
    .bind(table)
    .fetch_all(&mut *tx)
    .await
    .map_err(map)?;
    let values: Vec<(&str, &str)> = match table {
        "stores" => vec![("Stores Locations", "SELECT store_name FROM retail.stores ORDER BY store_name")],
        "categories" => vec![("Valid Categories", "SELECT category_name FROM retail.categories ORDER BY 1")],
        "product_types" => {
            vec![("Valid Product Types", "SELECT type_name FROM retail.product_types ORDER BY 1")]
        }
        "orders" => vec![(
            "Available Years",
            "SELECT DISTINCT extract(year FROM order_date)::int::text FROM retail.orders ORDER BY 1",
        )],
        _ => vec![],
    };
    let mut valid_values = Vec::new();
    for (label, sql) in values {
        let list: Vec<String> = sqlx::query_scalar(sql).fetch_all(&mut *tx).await.map_err(map)?;
        valid_values.push((label, list));
    }
    drop(tx);

    let purpose = TABLES.iter().find(|(t, _)| *t == table).map(|(_, p)| *p).unwrap_or("");
    let mut s = format!("# Table: retail.{table}\n\n**Purpose:** {purpose}\n\n## Schema\n");
    let cols: Vec<String> = columns
        .iter()
        .filter(|(name, ..)| name != "product_search")
        .map(|(name, ty, not_null, pk)| {
            let mut c = format!("{name}:{ty}");
            if *pk {
                c.push_str(" (primary key)");
            } else if !not_null {
                c.push_str(" (nullable)");
            }
            c
        })
        .collect();
    s.push_str(&cols.join(", "));
    s.push('\n');
    if !fks.is_empty() {
        s.push_str("\n## Relationships\n");
        for (col, ftable, fcol) in &fks {
            let _ = writeln!(s, "- `{col}` → `retail.{ftable}.{fcol}` (MANY_TO_ONE)");
        }
    }
    if valid_values.iter().any(|(_, v)| !v.is_empty()) {
        s.push_str("\n## Valid Values\n");
        for (label, v) in &valid_values {
            if !v.is_empty() {
                let _ = writeln!(s, "**{label}:** {}", v.join(", "));
            }
        }
    }
    s.push_str("\n## Query Hints\n");
    let _ = writeln!(s, "- Use `retail.{table}` for queries about {}", table.replace('_', " "));
    for (col, ftable, _) in &fks {
        let _ = writeln!(s, "- Join with `retail.{ftable}` using `{col}`");
    }
    if table == "products" {
        s.push_str(
            "- Use full_text_search_products or semantic_search_products to find products by description\n",
        );
    }
    Ok(s)
}
