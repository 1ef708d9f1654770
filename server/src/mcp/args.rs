//! The tools' arguments: typed structs whose doc comments and bounds become the JSON schema
//! clients see (`tools/list`). Each bound is a constant here, used by the schema attribute and
//! by the tool's own check at run time, so the two cannot drift. Pure.

use schemars::JsonSchema;
use serde::Deserialize;

/// Most tables `get_multiple_table_schemas` describes at once.
pub const MAX_TABLE_NAMES: usize = 20;
/// Longest `execute_sales_query` text, in bytes: the validator's own limit.
pub const MAX_SQL_BYTES: usize = mcp_fleet_sql_guard::MAX_SQL_BYTES;
/// Longest natural-language product description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// Longest full-text query, in characters.
pub const MAX_QUERY_CHARS: usize = 500;
/// Bounds and default of `max_rows`.
pub const MIN_ROWS: u32 = 1;
pub const MAX_ROWS: u32 = 100;
pub const DEFAULT_MAX_ROWS: u32 = 20;
/// Bounds (percent) and default of `similarity_threshold`.
pub const MIN_SIMILARITY: u8 = 20;
pub const MAX_SIMILARITY: u8 = 80;
pub const DEFAULT_SIMILARITY: f64 = 30.0;
/// Bounds and default of `semantic_weight`.
pub const MIN_SEMANTIC_WEIGHT: u8 = 0;
pub const MAX_SEMANTIC_WEIGHT: u8 = 1;
pub const DEFAULT_SEMANTIC_WEIGHT: f64 = 0.7;

/// Arguments of `get_multiple_table_schemas`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TableSchemasArgs {
    /// List of table names. Valid table names include 'retail.customers', 'retail.stores',
    /// 'retail.categories', 'retail.product_types', 'retail.products', 'retail.orders',
    /// 'retail.order_items', 'retail.inventory'.
    #[schemars(length(min = 1, max = MAX_TABLE_NAMES))]
    pub table_names: Vec<String>,
}

/// Arguments of `execute_sales_query`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SalesQueryArgs {
    /// A well-formed PostgreSQL query.
    #[schemars(length(min = 1, max = MAX_SQL_BYTES))]
    pub postgresql_query: String,
}

fn default_max_rows() -> u32 {
    DEFAULT_MAX_ROWS
}
fn default_similarity() -> f64 {
    DEFAULT_SIMILARITY
}
fn default_semantic_weight() -> f64 {
    DEFAULT_SEMANTIC_WEIGHT
}

/// Arguments of `semantic_search_products`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SemanticSearchArgs {
    /// Describe the Zava product you're looking for using natural language. Include purpose,
    /// features, or use case. For example: 'waterproof electrical box for outdoor use', '15 amp
    /// circuit breaker', or 'LED light bulbs for kitchen ceiling'.
    #[schemars(length(min = 1, max = MAX_DESCRIPTION_CHARS))]
    pub query_description: String,
    /// The maximum number of products to return. Defaults to 20.
    #[serde(default = "default_max_rows")]
    #[schemars(range(min = MIN_ROWS, max = MAX_ROWS))]
    pub max_rows: u32,
    /// A value between 20 and 80 that sets the minimum similarity threshold. Products below this
    /// value are excluded. Defaults to 30.0.
    #[serde(default = "default_similarity")]
    #[schemars(range(min = MIN_SIMILARITY, max = MAX_SIMILARITY))]
    pub similarity_threshold: f64,
}

/// Arguments of `full_text_search_products`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct FullTextSearchArgs {
    /// Words to find in product names and descriptions. Supports quoted phrases, `or`, and `-word`
    /// to exclude (web search syntax), e.g. 'cordless drill -impact' or '"garden hose" or sprinkler'.
    #[schemars(length(min = 1, max = MAX_QUERY_CHARS))]
    pub query: String,
    /// The maximum number of products to return. Defaults to 20.
    #[serde(default = "default_max_rows")]
    #[schemars(range(min = MIN_ROWS, max = MAX_ROWS))]
    pub max_rows: u32,
}

/// Arguments of `hybrid_search_products`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct HybridSearchArgs {
    /// Describe the product in natural language; its words are also matched literally.
    #[schemars(length(min = 1, max = MAX_DESCRIPTION_CHARS))]
    pub query_description: String,
    /// The maximum number of products to return. Defaults to 20.
    #[serde(default = "default_max_rows")]
    #[schemars(range(min = MIN_ROWS, max = MAX_ROWS))]
    pub max_rows: u32,
    /// Weight of semantic similarity in the score, between 0 and 1; the rest goes to the
    /// full-text rank. Defaults to 0.7.
    #[serde(default = "default_semantic_weight")]
    #[schemars(range(min = MIN_SEMANTIC_WEIGHT, max = MAX_SEMANTIC_WEIGHT))]
    pub semantic_weight: f64,
}
