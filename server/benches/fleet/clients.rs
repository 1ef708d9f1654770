//! The two kinds of load client: a JSON-RPC POST over one kept-alive HTTP/1.1 connection (used
//! for the MCP server and for the bare axum baseline alike), and a read-only tenant transaction
//! through a sqlx pool (the raw-database baseline). Does network I/O.

use std::net::SocketAddr;

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use http::{HeaderValue, Request, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::load::Client;

/// The protocol revision a current MCP client sends on every request after `initialize`.
pub const PROTOCOL_VERSION: &str = "2025-11-25";

/// A `tools/call` request body.
pub fn tool_call(id: u64, tool: &str, arguments: Value) -> Bytes {
    let body = json!({
        "jsonrpc": "2.0",
        "id": id,
        "method": "tools/call",
        "params": { "name": tool, "arguments": arguments },
    });
    Bytes::from(body.to_string())
}

/// POSTs one of `bodies` (in turn) to `/mcp` and checks the answer is a successful tool result.
pub struct RpcClient {
    sender: SendRequest<Full<Bytes>>,
    host: HeaderValue,
    bodies: Vec<Bytes>,
    next: usize,
}

impl RpcClient {
    pub async fn connect(addr: SocketAddr, bodies: Vec<Bytes>) -> anyhow::Result<Self> {
        ensure!(!bodies.is_empty(), "an RPC client needs at least one request body");
        let stream =
            tokio::net::TcpStream::connect(addr).await.with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        Ok(Self { sender, host: HeaderValue::from_str(&addr.to_string())?, bodies, next: 0 })
    }

    /// Sends the next body and returns the response body.
    pub async fn send(&mut self) -> anyhow::Result<Bytes> {
        let body = self.bodies[self.next % self.bodies.len()].clone();
        self.next = self.next.wrapping_add(1);
        self.sender.ready().await?;
        let request = Request::post("/mcp")
            .header(header::HOST, self.host.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json, text/event-stream")
            .header("mcp-protocol-version", PROTOCOL_VERSION)
            .body(Full::new(body))?;
        let response = self.sender.send_request(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        if status != StatusCode::OK {
            bail!("HTTP {status}: {}", String::from_utf8_lossy(&bytes));
        }
        Ok(bytes)
    }
}

impl Client for RpcClient {
    async fn call(&mut self) -> anyhow::Result<()> {
        let bytes = self.send().await?;
        // A successful tool result, never a JSON-RPC error or a tool error.
        if !contains(&bytes, br#""isError":false"#) {
            bail!("not a successful tool result: {}", String::from_utf8_lossy(&bytes));
        }
        Ok(())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The text of the first content block of a `tools/call` response, or why there is none.
pub fn tool_text(response: &[u8]) -> anyhow::Result<String> {
    let v: Value = serde_json::from_slice(response).context("the response is not JSON")?;
    if let Some(err) = v.get("error") {
        bail!("JSON-RPC error: {err}");
    }
    let result = v.get("result").context("no result")?;
    let text = result["content"][0]["text"].as_str().context("no text content")?.to_owned();
    if result["isError"].as_bool() != Some(false) {
        bail!("tool error: {text}");
    }
    Ok(text)
}

/// The transaction the server opens for every tool query (dedicated mode, default 5 s timeout),
/// character for character (`TenantDb::begin` in server/src/db/tenant.rs).
pub const BEGIN_TENANT_TX: &str =
    "BEGIN READ ONLY; SET LOCAL statement_timeout = 5000; SET LOCAL search_path = retail, pg_catalog, public";

/// Runs one query in the tenant's read-only transaction, as the tool does, minus MCP.
pub struct SqlClient {
    pub pool: PgPool,
    pub sql: &'static str,
    /// `false`, as the server runs model-written SQL; `true` is sqlx's cached prepared statement.
    pub persistent: bool,
}

impl Client for SqlClient {
    async fn call(&mut self) -> anyhow::Result<()> {
        let mut tx = self.pool.begin_with(BEGIN_TENANT_TX).await?;
        let rows = sqlx::query(self.sql).persistent(self.persistent).fetch_all(&mut *tx).await?;
        ensure!(!rows.is_empty(), "the query returned no rows");
        // Dropped, not committed: rolled back, as the server does.
        drop(tx);
        Ok(())
    }
}
