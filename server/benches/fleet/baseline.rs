//! `fleet --baseline-server`: the bare axum handler `get_current_utc_date` is compared with. It
//! parses the same JSON-RPC `tools/call` request and returns the same result shape, with none of
//! MCP's machinery. `fleet --baseline-rmcp`: the smallest rmcp server answering the same call
//! (stateless Streamable HTTP with JSON responses, as the server is configured), to show what
//! rmcp's own per-request path costs. Each runs as its own process, on the same tokio runtime
//! settings as the server, so all are measured alike. Does network I/O.

use std::process::ExitCode;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde::Deserialize;
use serde_json::{Value, json};

/// The line the parent waits for, followed by the URL.
pub const READY_PREFIX: &str = "baseline: listening on ";
/// The flag that runs the minimal rmcp server instead of the bare axum handler.
pub const RMCP_FLAG: &str = "--baseline-rmcp";

#[derive(Deserialize)]
struct RpcRequest {
    jsonrpc: String,
    id: Value,
    method: String,
    params: CallParams,
}

/// `arguments` is ignored: the tool takes none.
#[derive(Deserialize)]
struct CallParams {
    name: String,
}

/// `rmcp`: the minimal rmcp server, else the bare axum handler.
pub fn main(rmcp: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("baseline: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let served = if rmcp { runtime.block_on(serve_rmcp()) } else { runtime.block_on(serve()) };
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("baseline: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    eprintln!("{READY_PREFIX}http://{addr}/mcp");
    axum::serve(listener, Router::new().route("/mcp", post(call))).await?;
    Ok(())
}

/// The smallest rmcp server offering `get_current_utc_date`.
#[derive(Clone)]
struct DateServer;

impl ServerHandler for DateServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if request.name != "get_current_utc_date" {
            return Err(ErrorData::invalid_params("unknown tool", None));
        }
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
        Ok(CallToolResult::success(vec![ContentBlock::text(format!("Current UTC Date/Time: {now}"))]).into())
    }
}

async fn serve_rmcp() -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let service = StreamableHttpService::new(
        || Ok(DateServer),
        Arc::new(NeverSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None),
    );
    eprintln!("{READY_PREFIX}http://{addr}/mcp");
    axum::serve(listener, Router::new().route_service("/mcp", service)).await?;
    Ok(())
}

async fn call(body: Bytes) -> Response {
    let request: RpcRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return rpc_error(StatusCode::BAD_REQUEST, Value::Null, -32700, &format!("parse error: {e}"));
        }
    };
    if request.jsonrpc != "2.0" || request.method != "tools/call" {
        return rpc_error(StatusCode::OK, request.id, -32601, "method not found");
    }
    if request.params.name != "get_current_utc_date" {
        return rpc_error(StatusCode::OK, request.id, -32602, "unknown tool");
    }
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    let reply = json!({
        "jsonrpc": "2.0",
        "id": request.id,
        "result": {
            "content": [{ "type": "text", "text": format!("Current UTC Date/Time: {now}") }],
            "isError": false,
        },
    });
    json_response(StatusCode::OK, &reply)
}

fn rpc_error(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    json_response(
        status,
        &json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } }),
    )
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], value.to_string()).into_response()
}
