//! How a tool call ends, and the one place where that becomes an MCP answer: a result the tool
//! produced, a tool failure (an error result in the reference sample's JSON shape, which the
//! model reads), or a call refused before any tool ran (a JSON-RPC error). Pure.

use rmcp::ErrorData;
use rmcp::model::{CallToolResult, ContentBlock, ErrorCode};

use super::audit::{AuditNotWritten, AuditUnavailable};
use super::explain::Plan;
use super::fair_share::Limited;
use super::result::{Compact, error_json};
use crate::db::DbError;

/// JSON-RPC error code for "authenticated, but this role may not call that tool" — distinct from
/// HTTP 401 (not authenticated) and from unknown tools (-32602).
pub const FORBIDDEN_CODE: ErrorCode = ErrorCode(-32003);
/// JSON-RPC error code for "this caller is over its share; retry later" (as HTTP 429). The
/// error's data says when: `{"retryAfterSeconds": n, "limit": "rate" | "concurrency"}`.
pub const RATE_LIMITED_CODE: ErrorCode = ErrorCode(-32029);

/// How a tool call ended, for metrics, the audit trail and the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// The input was refused before it ran.
    Rejected,
    /// Running it failed.
    Error,
    /// The caller's roles do not grant the tool.
    Denied,
}

impl Outcome {
    /// The label in metrics and the `outcome` column of the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Rejected => "rejected",
            Outcome::Error => "error",
            Outcome::Denied => "denied",
        }
    }
}

/// What a tool returns.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolOutput {
    /// Text as is (schemas, the date), as the reference sample returns it.
    Text(String),
    /// Rows in the sample's compact JSON shape.
    Rows(Compact),
    /// A query's plan (`explain_sales_query`).
    Plan(Plan),
}

impl ToolOutput {
    /// Rows returned, for the audit trail and the log.
    pub fn rows(&self) -> Option<usize> {
        match self {
            ToolOutput::Text(_) | ToolOutput::Plan(_) => None,
            ToolOutput::Rows(c) => Some(c.rows.len()),
        }
    }

    /// Text as text; rows as `structuredContent`, with the same JSON as text beside it (which
    /// is what the reference sample's clients read).
    pub fn into_result(self) -> CallToolResult {
        match self {
            ToolOutput::Text(text) => CallToolResult::success(vec![ContentBlock::text(text)]),
            ToolOutput::Rows(c) => CallToolResult::structured(c.to_json()),
            ToolOutput::Plan(p) => CallToolResult::structured(
                serde_json::to_value(p).expect("a plan is plain data and always serialises"),
            ),
        }
    }
}

/// A failed tool call, in the words the caller should read.
#[derive(Debug, Clone)]
pub struct ToolFailure {
    pub message: String,
    /// Stable label for metrics and the log.
    pub reason: &'static str,
    /// [`Outcome::Rejected`] or [`Outcome::Error`].
    pub outcome: Outcome,
    /// The SQL to echo back, for query tools.
    pub query: Option<String>,
    /// Shown as plain text rather than in the sample's error shape (arguments that do not
    /// deserialize, worded as rmcp words them).
    plain: bool,
    /// The error shape is also `structuredContent` (for the tools whose output schema it fits).
    structured: bool,
}

impl ToolFailure {
    pub fn rejected(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            reason,
            outcome: Outcome::Rejected,
            query: None,
            plain: false,
            structured: true,
        }
    }

    pub fn error(reason: &'static str, message: impl Into<String>) -> Self {
        Self { outcome: Outcome::Error, ..Self::rejected(reason, message) }
    }

    /// Arguments that do not fit the tool's argument type.
    pub fn arguments(error: &serde_json::Error) -> Self {
        let message = format!("failed to deserialize parameters: {error}");
        Self { plain: true, ..Self::rejected("invalid_arguments", message) }
    }

    pub fn with_query(mut self, q: &str) -> Self {
        self.query = Some(q.to_owned());
        self
    }

    /// The error shape as text only: for a tool whose output schema is not the rows' shape.
    pub fn text_only(mut self) -> Self {
        self.structured = false;
        self
    }

    pub fn into_result(self) -> CallToolResult {
        if self.plain {
            return CallToolResult::error(vec![ContentBlock::text(self.message)]);
        }
        let shape = error_json(&self.message, self.query.as_deref());
        if self.structured {
            CallToolResult::structured_error(shape)
        } else {
            CallToolResult::error(vec![ContentBlock::text(shape.to_string())])
        }
    }
}

impl From<DbError> for ToolFailure {
    fn from(e: DbError) -> Self {
        let outcome = if matches!(e, DbError::UnknownStore { .. } | DbError::UnknownTenant { .. }) {
            Outcome::Rejected
        } else {
            Outcome::Error
        };
        Self { outcome, ..Self::rejected(e.reason(), e.to_string()) }
    }
}

impl From<mcp_fleet_sql_guard::SqlRejection> for ToolFailure {
    fn from(r: mcp_fleet_sql_guard::SqlRejection) -> Self {
        Self::rejected(r.reason(), r.to_string())
    }
}

/// A request refused before any tool or resource code ran: answered with a JSON-RPC error.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the request carries no caller identity")]
    NoCaller,
    #[error("unknown tool {0:?}; call tools/list to see the tools this server offers")]
    UnknownTool(String),
    #[error(transparent)]
    AuditUnavailable(#[from] AuditUnavailable),
    #[error(transparent)]
    AuditNotWritten(#[from] AuditNotWritten),
    #[error("your role(s) {roles:?} may not call {tool:?}; call tools/list to see the tools you may use")]
    Forbidden { tool: String, roles: Vec<String> },
    #[error(transparent)]
    RateLimited(#[from] Limited),
    #[error("no resource {0:?}; list resources to see the table schemas")]
    UnknownResource(String),
    /// Reading a resource failed (the message is the tool failure's).
    #[error("{0}")]
    Resource(String),
}

impl From<CallError> for ErrorData {
    fn from(e: CallError) -> Self {
        let message = e.to_string();
        match e {
            CallError::UnknownTool(_) => ErrorData::invalid_params(message, None),
            CallError::Forbidden { .. } => ErrorData::new(FORBIDDEN_CODE, message, None),
            CallError::RateLimited(limited) => ErrorData::new(
                RATE_LIMITED_CODE,
                message,
                Some(serde_json::json!({
                    "retryAfterSeconds": limited.retry_after_secs(),
                    "limit": limited.kind(),
                })),
            ),
            CallError::UnknownResource(_) => ErrorData::resource_not_found(message, None),
            CallError::NoCaller
            | CallError::AuditUnavailable(_)
            | CallError::AuditNotWritten(_)
            | CallError::Resource(_) => ErrorData::internal_error(message, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn text(r: &CallToolResult) -> String {
        r.content.iter().find_map(|c| c.as_text().map(|t| t.text.clone())).unwrap_or_default()
    }

    #[test]
    fn failures_read_as_the_sample_writes_them_and_refusals_map_to_json_rpc_codes() {
        let r = ToolFailure::rejected("syntax", "bad SQL").with_query("SELEC 1").into_result();
        assert_eq!(r.is_error, Some(true));
        let body: serde_json::Value = serde_json::from_str(&text(&r)).unwrap();
        assert_eq!(body, json!({"err": "bad SQL", "q": "SELEC 1", "c": [], "r": [], "n": 0}));
        assert_eq!(r.structured_content, Some(body), "the same JSON, structured");

        let bad = serde_json::from_value::<u32>(json!("x")).unwrap_err();
        let r = ToolFailure::arguments(&bad).into_result();
        assert!(text(&r).starts_with("failed to deserialize parameters: "), "{r:?}");

        let forbidden = ErrorData::from(CallError::Forbidden { tool: "t".into(), roles: vec!["r".into()] });
        assert_eq!(forbidden.code, FORBIDDEN_CODE);
        assert_eq!(ErrorData::from(CallError::UnknownTool("x".into())).code, ErrorCode::INVALID_PARAMS);
        assert_eq!(ErrorData::from(CallError::NoCaller).code, ErrorCode::INTERNAL_ERROR);
        let limited =
            Limited::Rate { per_minute: 60, burst: 5, retry_after: std::time::Duration::from_millis(2500) };
        let refused = ErrorData::from(CallError::RateLimited(limited));
        assert_eq!(refused.code, RATE_LIMITED_CODE);
        assert!(refused.message.starts_with("rate limited:"), "{}", refused.message);
        assert_eq!(refused.data, Some(json!({"retryAfterSeconds": 3, "limit": "rate"})));
    }
}
