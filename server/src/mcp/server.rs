//! The MCP handler (rmcp): server info, per-caller tool lists, table schemas as resources, and
//! the one path every tool call takes — identify the caller, check the tool is offered, reserve
//! the audit record, authorise, take a place in the caller's fair share, run the tool, then
//! record the outcome once (audit, metrics, log) and answer, all inside the call's span. Does I/O
//! through the tools and the audit trail.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_fleet_core::tools::ToolName;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListResourcesResult, ListToolsResult,
    PaginatedRequestParams, ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult,
    ResourceContents, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use tracing::Instrument as _;

use super::audit::{AuditTicket, Written};
use super::fair_share::{Admitted, Subject};
use super::outcome::{CallError, Outcome, ToolFailure, ToolOutput};
use super::state::AppState;
use super::{schema, tools};
use crate::auth::identity::Caller;

const INSTRUCTIONS: &str = "Read-only analytics over the Zava DIY retail database (stores, customers, \
categories, product types, products, inventory, orders, order items). Call get_multiple_table_schemas \
before writing SQL and use only the tables and columns it shows; execute_sales_query runs one read-only \
SELECT, and explain_sales_query estimates what one would cost without running it. Use semantic_search_products for plain-language product questions. You only ever see your own \
tenant's stores.";

/// The MCP server handler. Cheap to create per request: it holds one `Arc`.
#[derive(Clone)]
pub struct RetailServer {
    state: Arc<AppState>,
}

impl RetailServer {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }

    pub fn state(&self) -> &Arc<AppState> {
        &self.state
    }

    /// The caller of this request: put there by the HTTP authentication layer, or the stdio identity.
    fn caller(&self, ctx: &RequestContext<RoleServer>) -> Result<Caller, CallError> {
        self.caller_of(ctx.extensions.get::<http::request::Parts>())
    }

    /// The caller of an HTTP request (`parts`), or the stdio identity.
    pub(crate) fn caller_of(&self, parts: Option<&http::request::Parts>) -> Result<Caller, CallError> {
        parts
            .and_then(|parts| parts.extensions.get::<Caller>().cloned())
            .or_else(|| self.state.stdio_caller.clone())
            .ok_or(CallError::NoCaller)
    }

    /// The one path of every tool call, whichever transport brought it (rmcp's handler below, or
    /// [`super::stateless`]): admit, run, record, answer — inside the call's span, a child of the
    /// caller's trace when `headers` carry one.
    pub(crate) async fn call_tool_as(
        &self,
        caller: Caller,
        request: CallToolRequestParams,
        headers: Option<&http::HeaderMap>,
    ) -> Result<CallToolResponse, ErrorData> {
        let span = tool_span(&request.name, &caller, headers);
        async move {
            let (tool, ticket, admitted) = self.admit(&caller, &request).await?;
            let started = Instant::now();
            let result = tools::call(&self.state, &caller, tool, request.arguments.unwrap_or_default()).await;
            drop(admitted);
            // The answer leaves once its audit record is committed (see `audit`).
            self.record(tool, &caller, started.elapsed(), ticket, &result).wait().await.map_err(|e| {
                self.state.metrics.errors.with_label_values(&["audit_unavailable"]).inc();
                tracing::error!(tool = %tool, request_id = %caller.request_id, "result withheld: its audit record was not committed in time");
                CallError::from(e)
            })?;
            Ok(match result {
                Ok(output) => output.into_result(),
                Err(failure) => {
                    tracing::Span::current().record("otel.status_code", "error");
                    failure.into_result()
                }
            }
            .into())
        }
        .instrument(span)
        .await
    }

    /// A tool call up to the point where the tool runs: `Err` refuses it with a JSON-RPC error.
    /// The call holds its place in its caller's share until the [`Admitted`] is dropped.
    async fn admit(
        &self,
        caller: &Caller,
        request: &CallToolRequestParams,
    ) -> Result<(ToolName, AuditTicket, Admitted), CallError> {
        let tool = ToolName::parse(&request.name)
            .filter(|t| self.state.offers(*t))
            .ok_or_else(|| CallError::UnknownTool(request.name.to_string()))?;
        // Every call, allowed or denied, is audited; without room in the audit trail it does not run.
        let ticket =
            self.state.audit.ticket(caller, tool.as_str(), request.arguments.as_ref()).await.map_err(
                |e| {
                    self.state.metrics.errors.with_label_values(&["audit_unavailable"]).inc();
                    CallError::from(e)
                },
            )?;
        if !caller.grants.allows(tool.as_str()) {
            self.state.metrics.tool_calls.with_label_values(&[tool.as_str(), Outcome::Denied.as_str()]).inc();
            tracing::warn!(tool = %tool, tenant = %caller.tenant, subject = %caller.subject, request_id = %caller.request_id, "tool call denied");
            let refusal = CallError::Forbidden { tool: tool.to_string(), roles: caller.grants.roles.clone() };
            // A refusal is the answer either way; it still leaves after its record.
            let _ = ticket.complete(Outcome::Denied, None, Some(&refusal.to_string())).wait().await;
            return Err(refusal);
        }
        let subject = Subject { tenant: caller.tenant.to_string(), subject: caller.subject.clone() };
        match self.state.fair_share.admit(subject).await {
            Ok(admitted) => Ok((tool, ticket, admitted)),
            Err(limited) => {
                let m = &self.state.metrics;
                m.rate_limited.with_label_values(&[limited.kind()]).inc();
                m.tool_calls.with_label_values(&[tool.as_str(), Outcome::Rejected.as_str()]).inc();
                tracing::warn!(tool = %tool, tenant = %caller.tenant, subject = %caller.subject, request_id = %caller.request_id,
                    limit = limited.kind(), retry_after_s = limited.retry_after_secs(), "tool call rate limited");
                let refusal = CallError::from(limited);
                let _ = ticket.complete(Outcome::Rejected, None, Some(&refusal.to_string())).wait().await;
                Err(refusal)
            }
        }
    }

    /// Audit, metrics and the log line of a finished call; the answer waits on the returned
    /// commit of its audit record.
    fn record(
        &self,
        tool: ToolName,
        caller: &Caller,
        elapsed: Duration,
        ticket: AuditTicket,
        result: &Result<ToolOutput, ToolFailure>,
    ) -> Written {
        let m = &self.state.metrics;
        let name = tool.as_str();
        m.tool_duration.with_label_values(&[name]).observe(elapsed.as_secs_f64());
        let ms = elapsed.as_millis() as u64;
        match result {
            Ok(output) => {
                let rows = output.rows();
                let written = ticket.complete(Outcome::Ok, rows, None);
                m.tool_calls.with_label_values(&[name, Outcome::Ok.as_str()]).inc();
                tracing::info!(tool = name, tenant = %caller.tenant, subject = %caller.subject, request_id = %caller.request_id,
                    ms, rows, "tool call");
                written
            }
            Err(f) => {
                let written = ticket.complete(f.outcome, None, Some(&f.message));
                m.tool_calls.with_label_values(&[name, f.outcome.as_str()]).inc();
                if f.outcome == Outcome::Rejected {
                    m.rejected_queries.with_label_values(&[f.reason]).inc();
                } else {
                    m.errors.with_label_values(&[f.reason]).inc();
                }
                tracing::warn!(tool = name, tenant = %caller.tenant, subject = %caller.subject, request_id = %caller.request_id,
                    reason = f.reason, ms, "tool call failed");
                written
            }
        }
    }
}

/// The span of one tool call, with the tenant and request id the log lines carry: a child of the
/// caller's span when the HTTP request carries a W3C `traceparent`.
fn tool_span(tool: &str, caller: &Caller, headers: Option<&http::HeaderMap>) -> tracing::Span {
    let span = tracing::info_span!(
        "tool call",
        otel.name = %format_args!("tools/call {tool}"),
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        mcp.method.name = "tools/call",
        tool,
        tenant = %caller.tenant,
        request_id = %caller.request_id,
    );
    if let Some(headers) = headers {
        mcp_fleet_core::otlp::continue_trace(&span, |name| headers.get(name).and_then(|v| v.to_str().ok()));
    }
    span
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
        let mut tools: Vec<_> = ToolName::ALL
            .into_iter()
            .filter(|t| self.state.offers(*t) && caller.grants.allows(t.as_str()))
            .map(|t| tools::definition(t).clone())
            .collect();
        tools.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(ListToolsResult::with_all_items(tools))
    }

    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        ToolName::parse(name).filter(|t| self.state.offers(*t)).map(|t| tools::definition(t).clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let caller = self.caller(&ctx)?;
        let headers = ctx.extensions.get::<http::request::Parts>().map(|parts| &parts.headers);
        self.call_tool_as(caller, request, headers).await
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
            return Err(CallError::UnknownResource(request.uri.clone()).into());
        };
        let text = schema::describe_tables(&self.state, &caller, &[table.to_owned()])
            .await
            .map_err(|f| CallError::Resource(f.message))?;
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, request.uri.clone()).with_mime_type("text/markdown"),
        ])
        .into())
    }
}
