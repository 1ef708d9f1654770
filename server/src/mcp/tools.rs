//! The tools: each one's definition (description and argument schema, as `tools/list` shows
//! it) and its call into the domain code, side by side in one table keyed by the catalogue's
//! [`ToolName`]. A tool is only its logic here: authorisation, audit, metrics and the log line
//! wrap every call once, in `server`. Dispatch only; the domain modules do the I/O.

use std::sync::{Arc, OnceLock};

use mcp_fleet_core::tools::ToolName;
use rmcp::handler::server::common::{schema_for_empty_input, schema_for_input, schema_for_output};
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;

use super::args::{
    FullTextSearchArgs, HybridSearchArgs, SalesQueryArgs, SemanticSearchArgs, TableSchemasArgs,
};
use super::explain::Plan;
use super::outcome::{ToolFailure, ToolOutput};
use super::result::RowsSchema;
use super::state::AppState;
use super::{sales, schema, search};
use crate::auth::identity::Caller;

/// A short title for people (clients show it instead of the name).
fn title(tool: ToolName) -> &'static str {
    match tool {
        ToolName::GetMultipleTableSchemas => "Table schemas",
        ToolName::ExecuteSalesQuery => "Run a read-only sales query",
        ToolName::ExplainSalesQuery => "Estimate a sales query's cost",
        ToolName::SemanticSearchProducts => "Search products by meaning",
        ToolName::FullTextSearchProducts => "Search products by words",
        ToolName::HybridSearchProducts => "Search products by meaning and words",
        ToolName::GetCurrentUtcDate => "Current UTC date and time",
    }
}

/// What `tools/list` says of `tool`: its description and arguments, a title, the hints every
/// tool here deserves (it only reads, changes nothing, gives the same answer to the same call
/// while the data stays the same, and reaches nothing beyond the tenant's database), and, for
/// the tools answering in the sample's compact JSON, that JSON's schema (`structuredContent`).
fn describe(tool: ToolName) -> Tool {
    let title = title(tool);
    let annotations = ToolAnnotations::with_title(title)
        .read_only(true)
        .destructive(false)
        .idempotent(true)
        .open_world(false);
    let described = arguments(tool).with_title(title).with_annotations(annotations);
    match tool {
        ToolName::ExecuteSalesQuery
        | ToolName::SemanticSearchProducts
        | ToolName::FullTextSearchProducts
        | ToolName::HybridSearchProducts => {
            described.with_raw_output_schema(schema_for_output::<RowsSchema>())
        }
        ToolName::ExplainSalesQuery => described.with_raw_output_schema(schema_for_output::<Plan>()),
        // Text, as the reference sample returns it.
        ToolName::GetMultipleTableSchemas | ToolName::GetCurrentUtcDate => described,
    }
}

/// The description and argument schema of `tool`.
fn arguments(tool: ToolName) -> Tool {
    match tool {
        ToolName::GetMultipleTableSchemas => with_args::<TableSchemasArgs>(
            tool,
            "Retrieve schemas for multiple tables: columns and types, relationships, and the valid values of useful columns (your store names, categories, product types, order years). Use this tool only for schemas you have not already fetched during the conversation.",
        ),
        ToolName::ExecuteSalesQuery => with_args::<SalesQueryArgs>(
            tool,
            "Run one read-only PostgreSQL SELECT against the retail schema and return compact JSON {\"c\":[columns],\"r\":[rows],\"n\":count}. Always fetch and inspect the schema with get_multiple_table_schemas before writing SQL; use only exact table and column names, and never invent data, columns, tables, or values — if the information isn't in the schema or database, say it cannot be answered. Join related tables for clarity, aggregate where appropriate, and limit output to 20 rows with a note that the limit is for readability. To identify store types use retail.stores.is_online (true = online store). NEVER return entity IDs or UUIDs to the user; use descriptive names. Only SELECT/WITH over the retail tables is allowed; the server caps the rows returned and says when it did.",
        ),
        ToolName::ExplainSalesQuery => with_args::<SalesQueryArgs>(
            tool,
            "Show how PostgreSQL would run a query for execute_sales_query, without running it: the estimated total cost (planner units, not time), the estimated rows, and the plan as a tree of nodes (node type, table, index, cost, rows). The query is checked exactly as execute_sales_query checks it. Use it before a query that may be slow (large joins, no filters) and to compare ways of asking; when the server has a cost limit, the answer says whether execute_sales_query would run the query.",
        ),
        ToolName::SemanticSearchProducts => with_args::<SemanticSearchArgs>(
            tool,
            "Search for Zava products using natural language descriptions to find matches based on semantic similarity — considering functionality, form, use, and other attributes. Returns compact JSON with product columns, similarity_distance and sp (similarity percent).",
        ),
        ToolName::FullTextSearchProducts => with_args::<FullTextSearchArgs>(
            tool,
            "Find Zava products whose names or descriptions contain the given words (PostgreSQL full-text search with stemming, ranked; names weigh more than descriptions). Good for exact terms, brands and sizes; use semantic_search_products for loose descriptions.",
        ),
        ToolName::HybridSearchProducts => with_args::<HybridSearchArgs>(
            tool,
            "Search Zava products by meaning and by words at once: score = semantic_weight × cosine similarity + (1 − semantic_weight) × full-text rank (normalised to 0..1). Best when the description mixes a need with specific terms, e.g. '18V drill for deck screws'.",
        ),
        ToolName::GetCurrentUtcDate => Tool::new_with_raw(
            tool.as_str(),
            Some("Get the current UTC date and time in ISO format. Useful for date time relative queries or understanding the current date for time-sensitive analysis.".into()),
            schema_for_empty_input(),
        ),
    }
}

fn with_args<A: JsonSchema + 'static>(tool: ToolName, description: &'static str) -> Tool {
    let schema = schema_for_input::<A>()
        .unwrap_or_else(|e| panic!("the argument schema of {tool} is not an object schema: {e}"));
    Tool::new_with_raw(tool.as_str(), Some(description.into()), schema)
}

/// Every tool's definition, made once.
pub fn definition(tool: ToolName) -> &'static Tool {
    static TOOLS: OnceLock<Vec<Tool>> = OnceLock::new();
    // `ToolName::ALL` lists the variants in declaration order, so a variant indexes it.
    &TOOLS.get_or_init(|| ToolName::ALL.into_iter().map(describe).collect())[tool as usize]
}

/// Runs `tool` for `caller` with the request's arguments. Each database tool's future is boxed,
/// so this future stays small: the date tool does not move the state of the SQL tools around.
pub async fn call(
    state: &Arc<AppState>,
    caller: &Caller,
    tool: ToolName,
    arguments: JsonObject,
) -> Result<ToolOutput, ToolFailure> {
    match tool {
        ToolName::GetMultipleTableSchemas => {
            let args: TableSchemasArgs = parse(arguments)?;
            // The sample returns schema text, not the compact shape: keep that for drop-in prompts.
            Box::pin(schema::describe_tables(state, caller, &args.table_names)).await.map(ToolOutput::Text)
        }
        ToolName::ExecuteSalesQuery => {
            let args: SalesQueryArgs = parse(arguments)?;
            Box::pin(sales::execute(state, caller, &args.postgresql_query, state.limits_for(caller)))
                .await
                .map(ToolOutput::Rows)
                .map_err(|f| f.with_query(&args.postgresql_query))
        }
        ToolName::ExplainSalesQuery => {
            let args: SalesQueryArgs = parse(arguments)?;
            Box::pin(sales::explain(state, caller, &args.postgresql_query))
                .await
                .map(ToolOutput::Plan)
                .map_err(|f| f.with_query(&args.postgresql_query).text_only())
        }
        ToolName::SemanticSearchProducts => {
            Box::pin(search::semantic(state, caller, &parse(arguments)?)).await.map(ToolOutput::Rows)
        }
        ToolName::FullTextSearchProducts => {
            Box::pin(search::full_text(state, caller, &parse(arguments)?)).await.map(ToolOutput::Rows)
        }
        ToolName::HybridSearchProducts => {
            Box::pin(search::hybrid(state, caller, &parse(arguments)?)).await.map(ToolOutput::Rows)
        }
        ToolName::GetCurrentUtcDate => {
            let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
            Ok(ToolOutput::Text(format!("Current UTC Date/Time: {now}")))
        }
    }
}

/// The arguments as `A`, the way rmcp's `Parameters` reads them.
fn parse<A: DeserializeOwned>(arguments: JsonObject) -> Result<A, ToolFailure> {
    serde_json::from_value(serde_json::Value::Object(arguments)).map_err(|e| ToolFailure::arguments(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_of_the_catalogue_is_defined_under_its_own_name() {
        for tool in ToolName::ALL {
            assert_eq!(definition(tool).name, tool.as_str());
        }
    }
}
