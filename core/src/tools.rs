//! The tool catalogue: every tool an mcp-fleet server can offer, by name, in a stable order. The
//! server answers exactly these; its configuration (`tools.enabled`, `auth.roles.*.tools`) and
//! the McpTenant CRD (an enum of these names) refer to them. Pure data.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// One tool of the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ToolName {
    GetMultipleTableSchemas,
    ExecuteSalesQuery,
    ExplainSalesQuery,
    SemanticSearchProducts,
    FullTextSearchProducts,
    HybridSearchProducts,
    GetCurrentUtcDate,
}

impl ToolName {
    /// Every tool, in the catalogue's order.
    pub const ALL: [ToolName; 7] = [
        ToolName::GetMultipleTableSchemas,
        ToolName::ExecuteSalesQuery,
        ToolName::ExplainSalesQuery,
        ToolName::SemanticSearchProducts,
        ToolName::FullTextSearchProducts,
        ToolName::HybridSearchProducts,
        ToolName::GetCurrentUtcDate,
    ];

    /// The name clients call the tool by.
    pub const fn as_str(self) -> &'static str {
        match self {
            ToolName::GetMultipleTableSchemas => "get_multiple_table_schemas",
            ToolName::ExecuteSalesQuery => "execute_sales_query",
            ToolName::ExplainSalesQuery => "explain_sales_query",
            ToolName::SemanticSearchProducts => "semantic_search_products",
            ToolName::FullTextSearchProducts => "full_text_search_products",
            ToolName::HybridSearchProducts => "hybrid_search_products",
            ToolName::GetCurrentUtcDate => "get_current_utc_date",
        }
    }

    /// The tool called `name`, if the catalogue has one.
    pub fn parse(name: &str) -> Option<ToolName> {
        ToolName::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Whether the tool needs an embedding model (a server without one does not offer it).
    pub const fn needs_embeddings(self) -> bool {
        matches!(self, ToolName::SemanticSearchProducts | ToolName::HybridSearchProducts)
    }
}

impl std::fmt::Display for ToolName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every tool name, in the catalogue's order.
pub fn names() -> impl Iterator<Item = &'static str> {
    ToolName::ALL.into_iter().map(ToolName::as_str)
}

/// What a role's tool list may name besides the catalogue: every tool.
pub const ALL_TOOLS: &str = "*";

/// A list of tool names, as a schema: an array whose items are the catalogue's names, and `*`
/// (every tool) when `ALLOW_ALL`. For `#[schemars(with = "ToolList")]` on a `Vec<String>`, so
/// the CRD refuses a misspelt name.
pub struct NameList<const ALLOW_ALL: bool>;

/// Tools to offer (`tools.enabled`).
pub type ToolList = NameList<false>;
/// Tools a role may call (`auth.roles.*.tools`).
pub type RoleToolList = NameList<true>;

impl<const ALLOW_ALL: bool> JsonSchema for NameList<ALLOW_ALL> {
    fn schema_name() -> Cow<'static, str> {
        if ALLOW_ALL { "RoleToolList" } else { "ToolList" }.into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        let all = ALLOW_ALL.then_some(ALL_TOOLS);
        let names: Vec<&str> = names().chain(all).collect();
        json_schema!({ "type": "array", "items": { "type": "string", "enum": names } })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_are_unique() {
        for tool in ToolName::ALL {
            assert_eq!(ToolName::parse(tool.as_str()), Some(tool));
        }
        let mut names: Vec<&str> = names().collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ToolName::ALL.len());
        assert_eq!(ToolName::parse("drop_tables"), None);
    }

    #[test]
    fn tool_list_schemas_enumerate_the_catalogue() {
        let schema = schemars::schema_for!(RoleToolList);
        let items = &schema.as_value()["items"]["enum"];
        assert_eq!(items.as_array().map(Vec::len), Some(ToolName::ALL.len() + 1));
        assert!(items.as_array().is_some_and(|a| a.iter().any(|n| n == "*")));
    }
}
