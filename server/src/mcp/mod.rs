//! The MCP surface: the retail tools (drop-in compatible with the reference Zava sample: same
//! names, argument names, defaults and compact JSON results), table schemas as resources, and
//! per-caller tool lists. Tool methods only parse arguments and call the domain code in the
//! sibling modules, which knows nothing of MCP.

pub mod audit;
pub mod result;
mod sales;
mod schema;
mod search;

use std::sync::Arc;
use std::time::Instant;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::{Extension, ToolCallContext};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, ResourceContents, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use mcp_fleet_core::tools::ToolName;

use crate::auth::identity::Caller;
use crate::db::TenantDb;
use crate::embed::Embedder;
use crate::metrics::Metrics;

pub use schema::TABLES;

const INSTRUCTIONS: &str = "Read-only analytics over the Zava DIY retail database (stores, customers, \
categories, product types, products, inventory, orders, order items). Call get_multiple_table_schemas \
before writing SQL and use only the tables and columns it shows; execute_sales_query runs one read-only \
SELECT. Use semantic_search_products for plain-language product questions. You only ever see your own \
tenant's stores.";

/// What every request shares: the database, the embedder, metrics and limits.
pub struct AppState {
    pub db: TenantDb,
    pub embedder: Option<Arc<dyn Embedder>>,
    pub metrics: Arc<Metrics>,
    pub row_cap: u32,
    /// Tools offered at all (configuration); the caller's grants narrow this further.
    pub enabled_tools: Vec<String>,
    pub schema_cache: schema::SchemaCache,
    /// The identity of stdio sessions, which have no HTTP request to authenticate.
    pub stdio_caller: Option<Caller>,
    pub audit: crate::mcp::audit::AuditLog,
}

impl AppState {
    pub fn new(
        db: TenantDb,
        embedder: Option<Arc<dyn Embedder>>,
        metrics: Arc<Metrics>,
        row_cap: u32,
        enabled: &[String],
    ) -> Self {
        // The catalogue (mcp_fleet_core::tools) is the one list of tools.
        let enabled_tools = ToolName::ALL
            .into_iter()
            .filter(|t| enabled.is_empty() || enabled.iter().any(|e| e == t.as_str()))
            .filter(|t| embedder.is_some() || !t.needs_embeddings())
            .map(|t| t.as_str().to_owned())
            .collect();
        let audit = crate::mcp::audit::AuditLog::start(
            db.pool().clone(),
            db.mode(),
            metrics.clone(),
            crate::mcp::audit::BUFFER,
            crate::mcp::audit::RESERVE_WAIT,
        );
        Self {
            db,
            embedder,
            metrics,
            row_cap,
            enabled_tools,
            schema_cache: schema::SchemaCache::new(),
            stdio_caller: None,
            audit,
        }
    }

    fn offers(&self, tool: &str) -> bool {
        self.enabled_tools.iter().any(|t| t == tool)
    }
}

/// A failed tool call, in the words the caller should read.
#[derive(Debug, Clone)]
pub struct ToolFailure {
    pub message: String,
    /// Stable label for metrics and the audit trail.
    pub reason: &'static str,
    /// `rejected` (the input was refused before running) or `error` (running failed).
    pub outcome: &'static str,
    /// The SQL to echo back, for query tools.
    pub query: Option<String>,
}

impl ToolFailure {
    pub fn rejected(reason: &'static str, message: impl Into<String>) -> Self {
        Self { message: message.into(), reason, outcome: "rejected", query: None }
    }

    pub fn error(reason: &'static str, message: impl Into<String>) -> Self {
        Self { message: message.into(), reason, outcome: "error", query: None }
    }

    fn with_query(mut self, q: &str) -> Self {
        self.query = Some(q.to_owned());
        self
    }
}

impl From<crate::db::DbError> for ToolFailure {
    fn from(e: crate::db::DbError) -> Self {
        let reason = e.reason();
        let outcome = if matches!(e, crate::db::DbError::UnknownStore { .. }) { "rejected" } else { "error" };
        Self { message: e.to_string(), reason, outcome, query: None }
    }
}

/// The MCP server handler. Cheap to create per request: it holds two `Arc`s.
#[derive(Clone)]
pub struct RetailServer {
    state: Arc<AppState>,
    tool_router: Arc<ToolRouter<RetailServer>>,
}

impl RetailServer {
    /// The tool router, built once and shared by every request.
    pub fn router() -> Arc<ToolRouter<RetailServer>> {
        Arc::new(Self::tool_router())
    }

    pub fn new(state: Arc<AppState>, tool_router: Arc<ToolRouter<RetailServer>>) -> Self {
        Self { state, tool_router }
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// The caller of this request: put there by the HTTP authentication layer, or the stdio identity.
    fn caller(&self, ctx: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
        ctx.extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>().cloned())
            .or_else(|| self.state.stdio_caller.clone())
            .ok_or_else(|| ErrorData::internal_error("the request carries no caller identity", None))
    }

    /// Records metrics and logs for a finished call, and turns the result into MCP content.
    fn finish(
        &self,
        tool: &str,
        caller: &Caller,
        started: Instant,
        result: Result<Value, ToolFailure>,
    ) -> CallToolResult {
        let elapsed = started.elapsed();
        let m = &self.state.metrics;
        m.tool_duration.with_label_values(&[tool]).observe(elapsed.as_secs_f64());
        match result {
            Ok(value) => {
                if let Some(t) = &caller.audit {
                    t.complete("ok", value.get("n").and_then(serde_json::Value::as_i64), None);
                }
                m.tool_calls.with_label_values(&[tool, "ok"]).inc();
                tracing::info!(tool, tenant = %caller.tenant, subject = %caller.subject, request_id = %caller.request_id,
                    ms = elapsed.as_millis() as u64, rows = value.get("n").and_then(serde_json::Value::as_u64), "tool call");
                CallToolResult::success(vec![ContentBlock::text(value.to_string())])
            }
            Err(f) => {
                if let Some(t) = &caller.audit {
                    t.complete(f.outcome, None, Some(&f.message));
                }
                m.tool_calls.with_label_values(&[tool, f.outcome]).inc();
                if f.outcome == "rejected" {
                    m.rejected_queries.with_label_values(&[f.reason]).inc();
                } else {
                    m.errors.with_label_values(&[f.reason]).inc();
                }
                tracing::warn!(tool, tenant = %caller.tenant, subject = %caller.subject, request_id = %caller.request_id,
                    reason = f.reason, ms = elapsed.as_millis() as u64, "tool call failed");
                let body = crate::mcp::result::error_json(&f.message, f.query.as_deref());
                CallToolResult::error(vec![ContentBlock::text(body.to_string())])
            }
        }
    }

    fn row_cap(&self, caller: &Caller) -> usize {
        let cap = caller.grants.row_cap.map_or(self.state.row_cap, |r| r.min(self.state.row_cap));
        cap as usize
    }
}

/// Arguments of `get_multiple_table_schemas`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct TableSchemasArgs {
    /// List of table names. Valid table names include 'retail.customers', 'retail.stores',
    /// 'retail.categories', 'retail.product_types', 'retail.products', 'retail.orders',
    /// 'retail.order_items', 'retail.inventory'.
    #[schemars(length(min = 1, max = 20))]
    pub table_names: Vec<String>,
}

/// Arguments of `execute_sales_query`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SalesQueryArgs {
    /// A well-formed PostgreSQL query.
    #[schemars(length(min = 1, max = 16384))]
    pub postgresql_query: String,
}

fn default_max_rows() -> u32 {
    20
}
fn default_similarity() -> f64 {
    30.0
}
fn default_semantic_weight() -> f64 {
    search::DEFAULT_SEMANTIC_WEIGHT
}

/// Arguments of `semantic_search_products`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SemanticSearchArgs {
    /// Describe the Zava product you're looking for using natural language. Include purpose,
    /// features, or use case. For example: 'waterproof electrical box for outdoor use', '15 amp
    /// circuit breaker', or 'LED light bulbs for kitchen ceiling'.
    #[schemars(length(min = 1, max = 1000))]
    pub query_description: String,
    /// The maximum number of products to return. Defaults to 20.
    #[serde(default = "default_max_rows")]
    #[schemars(range(min = 1, max = 100))]
    pub max_rows: u32,
    /// A value between 20 and 80 that sets the minimum similarity threshold. Products below this
    /// value are excluded. Defaults to 30.0.
    #[serde(default = "default_similarity")]
    #[schemars(range(min = 20, max = 80))]
    pub similarity_threshold: f64,
}

/// Arguments of `full_text_search_products`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct FullTextSearchArgs {
    /// Words to find in product names and descriptions. Supports quoted phrases, `or`, and `-word`
    /// to exclude (web search syntax), e.g. 'cordless drill -impact' or '"garden hose" or sprinkler'.
    #[schemars(length(min = 1, max = 500))]
    pub query: String,
    /// The maximum number of products to return. Defaults to 20.
    #[serde(default = "default_max_rows")]
    #[schemars(range(min = 1, max = 100))]
    pub max_rows: u32,
}

/// Arguments of `hybrid_search_products`.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct HybridSearchArgs {
    /// Describe the product in natural language; its words are also matched literally.
    #[schemars(length(min = 1, max = 1000))]
    pub query_description: String,
    /// The maximum number of products to return. Defaults to 20.
    #[serde(default = "default_max_rows")]
    #[schemars(range(min = 1, max = 100))]
    pub max_rows: u32,
    /// Weight of semantic similarity in the score, between 0 and 1; the rest goes to the
    /// full-text rank. Defaults to 0.7.
    #[serde(default = "default_semantic_weight")]
    #[schemars(range(min = 0, max = 1))]
    pub semantic_weight: f64,
}

#[tool_router]
impl RetailServer {
    #[tool(
        name = "get_multiple_table_schemas",
        description = "Retrieve schemas for multiple tables: columns and types, relationships, and the valid values of useful columns (your store names, categories, product types, order years). Use this tool only for schemas you have not already fetched during the conversation."
    )]
    async fn get_multiple_table_schemas(
        &self,
        Extension(caller): Extension<Caller>,
        Parameters(args): Parameters<TableSchemasArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let started = Instant::now();
        // The sample returns schema text, not the compact shape: keep that for drop-in prompts.
        Ok(match schema::describe_tables(&self.state, &caller, &args.table_names).await {
            Ok(text) => {
                self.finish("get_multiple_table_schemas", &caller, started, Ok(Value::Null));
                CallToolResult::success(vec![ContentBlock::text(text)])
            }
            Err(f) => self.finish("get_multiple_table_schemas", &caller, started, Err(f)),
        })
    }

    #[tool(
        name = "execute_sales_query",
        description = "Run one read-only PostgreSQL SELECT against the retail schema and return compact JSON {\"c\":[columns],\"r\":[rows],\"n\":count}. Always fetch and inspect the schema with get_multiple_table_schemas before writing SQL; use only exact table and column names, and never invent data, columns, tables, or values — if the information isn't in the schema or database, say it cannot be answered. Join related tables for clarity, aggregate where appropriate, and limit output to 20 rows with a note that the limit is for readability. To identify store types use retail.stores.is_online (true = online store). NEVER return entity IDs or UUIDs to the user; use descriptive names. Only SELECT/WITH over the retail tables is allowed; the server caps the rows returned and says when it did."
    )]
    async fn execute_sales_query(
        &self,
        Extension(caller): Extension<Caller>,
        Parameters(args): Parameters<SalesQueryArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let started = Instant::now();
        let cap = self.row_cap(&caller);
        let result = sales::execute(&self.state, &caller, &args.postgresql_query, cap)
            .await
            .map(|c| c.to_json())
            .map_err(|f| f.with_query(&args.postgresql_query));
        Ok(self.finish("execute_sales_query", &caller, started, result))
    }

    #[tool(
        name = "semantic_search_products",
        description = "Search for Zava products using natural language descriptions to find matches based on semantic similarity — considering functionality, form, use, and other attributes. Returns compact JSON with product columns, similarity_distance and sp (similarity percent)."
    )]
    async fn semantic_search_products(
        &self,
        Extension(caller): Extension<Caller>,
        Parameters(args): Parameters<SemanticSearchArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let started = Instant::now();
        let result = search::semantic(&self.state, &caller, &args).await.map(|c| c.to_json());
        Ok(self.finish("semantic_search_products", &caller, started, result))
    }

    #[tool(
        name = "full_text_search_products",
        description = "Find Zava products whose names or descriptions contain the given words (PostgreSQL full-text search with stemming, ranked; names weigh more than descriptions). Good for exact terms, brands and sizes; use semantic_search_products for loose descriptions."
    )]
    async fn full_text_search_products(
        &self,
        Extension(caller): Extension<Caller>,
        Parameters(args): Parameters<FullTextSearchArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let started = Instant::now();
        let result = search::full_text(&self.state, &caller, &args).await.map(|c| c.to_json());
        Ok(self.finish("full_text_search_products", &caller, started, result))
    }

    #[tool(
        name = "hybrid_search_products",
        description = "Search Zava products by meaning and by words at once: score = semantic_weight × cosine similarity + (1 − semantic_weight) × full-text rank (normalised to 0..1). Best when the description mixes a need with specific terms, e.g. '18V drill for deck screws'."
    )]
    async fn hybrid_search_products(
        &self,
        Extension(caller): Extension<Caller>,
        Parameters(args): Parameters<HybridSearchArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let started = Instant::now();
        let result = search::hybrid(&self.state, &caller, &args).await.map(|c| c.to_json());
        Ok(self.finish("hybrid_search_products", &caller, started, result))
    }

    #[tool(
        name = "get_current_utc_date",
        description = "Get the current UTC date and time in ISO format. Useful for date time relative queries or understanding the current date for time-sensitive analysis."
    )]
    async fn get_current_utc_date(
        &self,
        Extension(caller): Extension<Caller>,
    ) -> Result<CallToolResult, ErrorData> {
        let started = Instant::now();
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
        self.finish("get_current_utc_date", &caller, started, Ok(Value::Null));
        Ok(CallToolResult::success(vec![ContentBlock::text(format!("Current UTC Date/Time: {now}"))]))
    }
}

impl ServerHandler for RetailServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_resources().build())
            .with_server_info(
                Implementation::new("mcp-fleet-server", env!("CARGO_PKG_VERSION"))
                    .with_title("mcp-fleet retail analytics")
                    .with_description("Read-only, tenant-isolated analytics over the Zava retail database"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = self.caller(&ctx)?;
        let tools = self
            .tool_router
            .list_all()
            .into_iter()
            .filter(|t| self.state.offers(&t.name) && caller.grants.allows(&t.name))
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        self.tool_router.get(name).filter(|_| self.state.offers(name)).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        mut ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let mut caller = self.caller(&ctx)?;
        let name = request.name.to_string();
        if !self.state.offers(&name) {
            return Err(ErrorData::invalid_params(
                format!("unknown tool {name:?}; call tools/list to see the tools this server offers"),
                None,
            ));
        }
        // Every call, allowed or denied, is audited; without room in the audit trail it does not run.
        let ticket = match self.state.audit.ticket(&caller, &name, request.arguments.as_ref()).await {
            Ok(t) => t,
            Err(e) => {
                self.state.metrics.errors.with_label_values(&["audit_unavailable"]).inc();
                return Err(ErrorData::internal_error(e.to_string(), None));
            }
        };
        if !caller.grants.allows(&name) {
            self.state.metrics.tool_calls.with_label_values(&[name.as_str(), "denied"]).inc();
            tracing::warn!(tool = %name, tenant = %caller.tenant, subject = %caller.subject, request_id = %caller.request_id, "tool call denied");
            let err = crate::auth::forbidden_tool(&name, &caller);
            ticket.complete("denied", None, Some(&err.message));
            return Err(err);
        }
        caller.audit = Some(ticket.clone());
        ctx.extensions.insert(caller);
        let tcc = ToolCallContext::new(self, request, ctx);
        let response = self.tool_router.call(tcc).await;
        // A call refused before reaching the tool (e.g. arguments of the wrong type) is audited here.
        if ticket.is_pending() {
            match &response {
                Err(e) => ticket.complete("rejected", None, Some(&e.message)),
                Ok(CallToolResponse::Complete(r)) if r.is_error == Some(true) => {
                    let text = r.content.iter().find_map(|c| c.as_text().map(|t| t.text.clone()));
                    ticket.complete("rejected", None, text.as_deref());
                }
                Ok(_) => ticket.complete("ok", None, None),
            }
        }
        response
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        self.caller(&ctx)?;
        Ok(ListResourcesResult::with_all_items(schema::resources()))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let caller = self.caller(&ctx)?;
        let Some(table) = schema::table_of_uri(&request.uri) else {
            return Err(ErrorData::resource_not_found(
                format!("no resource {:?}; list resources to see the table schemas", request.uri),
                None,
            ));
        };
        let text = schema::describe_tables(&self.state, &caller, &[table.to_owned()])
            .await
            .map_err(|f| ErrorData::internal_error(f.message, None))?;
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, request.uri.clone()).with_mime_type("text/markdown"),
        ])
        .into())
    }
}
