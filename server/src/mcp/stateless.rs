//! `/mcp` over stateless Streamable HTTP. A `tools/call` POST that rmcp would answer with one
//! JSON response is answered here, in the request's own task, with rmcp's model types and the
//! same call path as rmcp's handler ([`RetailServer::call_tool_as`]) — without rmcp's
//! per-request service, which builds a peer, a service loop, four channels and three spawned
//! tasks for every request (most of the time a cheap call spent in the server, see
//! BENCHMARKS.md). Any other request, and any request this module is not certain rmcp would
//! treat as a plain JSON `tools/call` (an unusual header, a newer protocol revision, request
//! metadata), goes to rmcp unchanged, body included. Routing only; the tool call does the I/O.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use futures::future::BoxFuture;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, ErrorData, JsonRpcRequest, RequestMetaObject, ServerJsonRpcMessage,
    ServerResult,
};
use rmcp::transport::streamable_http_server::StreamableHttpService;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;

use super::RetailServer;

/// Protocol revisions whose `tools/call` rmcp 3.11 answers the way this module does: known to
/// rmcp, older than the revision that adds standard request headers and per-request metadata
/// (2026-07-28). A request naming another revision goes to rmcp.
const PLAIN_REVISIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

const JSON: &str = "application/json";
const EVENT_STREAM: &str = "text/event-stream";

type Rmcp = StreamableHttpService<RetailServer, NeverSessionManager>;

/// The `/mcp` endpoint: the direct `tools/call` path in front of rmcp's service. Cloned for
/// every request, so it is one `Arc`.
#[derive(Clone)]
pub struct McpEndpoint(Arc<Endpoint>);

struct Endpoint {
    rmcp: Rmcp,
    server: RetailServer,
    /// The allowed `Host`s, as rmcp normalises them (lower case, no brackets; a port or any).
    allowed_hosts: Arc<[(String, Option<u16>)]>,
}

impl McpEndpoint {
    /// `allowed_hosts` must be the list rmcp's service was configured with.
    pub fn new(rmcp: Rmcp, server: RetailServer, allowed_hosts: &[String]) -> Self {
        let allowed_hosts = allowed_hosts
            .iter()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty())
            .map(|a| match http::uri::Authority::try_from(a) {
                Ok(authority) => (normalise_host(authority.host()), authority.port_u16()),
                Err(_) => (normalise_host(a), None),
            })
            .collect();
        Self(Arc::new(Endpoint { rmcp, server, allowed_hosts }))
    }
}

impl Endpoint {
    async fn handle(&self, request: Request<Body>) -> Response<Body> {
        if request.method() != Method::POST || !self.plain_headers(request.headers()) {
            return self.delegate(request).await;
        }
        let (parts, body) = request.into_parts();
        // The size limit is a layer outside (`RequestBodyLimitLayer`, the same bound rmcp has).
        let bytes = match axum::body::to_bytes(body, usize::MAX).await {
            Ok(bytes) => bytes,
            // What rmcp answers when the body cannot be read.
            Err(e) => {
                return text(StatusCode::INTERNAL_SERVER_ERROR, format!("Failed to read request body: {e}"));
            }
        };
        let call = match serde_json::from_slice::<ClientJsonRpcMessage>(&bytes) {
            Ok(ClientJsonRpcMessage::Request(JsonRpcRequest {
                id,
                request: ClientRequest::CallToolRequest(call),
                ..
            })) if call.params.meta.as_ref().is_none_or(|m| m.protocol_version().is_none())
                && call
                    .extensions
                    .get::<RequestMetaObject>()
                    .is_none_or(|m| m.protocol_version().is_none()) =>
            {
                (id, call.params)
            }
            _ => return self.delegate(Request::from_parts(parts, Body::from(bytes))).await,
        };
        let (id, params) = call;
        let server = self.server.clone();
        // In a task of its own, as rmcp runs a handler: a caller that disconnects, or a request
        // that times out, does not stop a call half-way (its audit record is always written).
        let answered = tokio::spawn(async move {
            let caller = server.caller_of(Some(&parts)).map_err(ErrorData::from)?;
            server.call_tool_as(caller, params, Some(&parts.headers)).await
        })
        .await;
        let message = match answered {
            Ok(Ok(response)) => {
                // Every revision taken here is older than 2026-07-28: rmcp's handler gives such
                // peers the legacy shape (no `resultType: "complete"`, object output only).
                let mut result = ServerResult::from(response);
                result.strip_result_type_for_legacy_peer();
                result.strip_non_object_output_for_legacy_peer();
                ServerJsonRpcMessage::response(result, id)
            }
            Ok(Err(error)) => ServerJsonRpcMessage::error(error, Some(id)),
            Err(_) => {
                ServerJsonRpcMessage::error(ErrorData::internal_error("the tool call failed", None), Some(id))
            }
        };
        match serde_json::to_vec(&message) {
            Ok(body) => Response::builder()
                .status(StatusCode::OK)
                .header(header::CONTENT_TYPE, JSON)
                .body(Body::from(Bytes::from(body)))
                .unwrap_or_else(|_| {
                    text(StatusCode::INTERNAL_SERVER_ERROR, "serialize json response".into())
                }),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, format!("serialize json response: {e}")),
        }
    }

    async fn delegate(&self, request: Request<Body>) -> Response<Body> {
        self.rmcp.handle(request).await.map(Body::new)
    }

    /// Headers rmcp certainly accepts for a stateless JSON answer: an allowed `Host`, no
    /// `Origin`, `Accept` naming JSON and SSE plainly, a JSON body, and a plain revision (or
    /// none, which rmcp reads as 2025-03-26). Anything else is rmcp's to judge.
    fn plain_headers(&self, headers: &HeaderMap) -> bool {
        let host_allowed = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| http::uri::Authority::try_from(h).ok())
            .is_some_and(|authority| {
                let host = normalise_host(authority.host());
                self.allowed_hosts.iter().any(|(allowed, port)| {
                    *allowed == host && port.is_none_or(|p| authority.port_u16() == Some(p))
                })
            });
        let revision_plain = headers.get_all("mcp-protocol-version").iter().count() <= 1
            && headers
                .get("mcp-protocol-version")
                .is_none_or(|v| v.to_str().is_ok_and(|v| PLAIN_REVISIONS.contains(&v)));
        host_allowed
            && !headers.contains_key(header::ORIGIN)
            && accepts_json_and_sse(headers)
            && headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(JSON.as_bytes()))
            && revision_plain
    }
}

/// `Accept` lists both media types, with no parameters (a quality weight is rmcp's to read).
fn accepts_json_and_sse(headers: &HeaderMap) -> bool {
    let mut json = false;
    let mut sse = false;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { return false };
        if value.contains(['"', ';']) {
            return false;
        }
        for essence in value.split(',').map(str::trim) {
            json |= essence.eq_ignore_ascii_case(JSON);
            sse |= essence.eq_ignore_ascii_case(EVENT_STREAM);
        }
    }
    json && sse
}

/// rmcp's normal form of a host: lower case, without IPv6 brackets.
fn normalise_host(host: &str) -> String {
    host.trim_matches('[').trim_matches(']').to_ascii_lowercase()
}

fn text(status: StatusCode, body: String) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response
}

impl tower::Service<Request<Body>> for McpEndpoint {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let endpoint = self.0.clone();
        Box::pin(async move { Ok(endpoint.handle(request).await) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().unwrap(), v.parse().unwrap())).collect()
    }

    #[test]
    fn only_plain_accept_headers_take_the_direct_path() {
        assert!(accepts_json_and_sse(&headers(&[("accept", "application/json, text/event-stream")])));
        assert!(accepts_json_and_sse(&headers(&[("accept", "text/event-stream,application/json")])));
        assert!(!accepts_json_and_sse(&headers(&[("accept", "application/json")])));
        assert!(!accepts_json_and_sse(&headers(&[("accept", "application/json;q=0, text/event-stream")])));
        assert!(!accepts_json_and_sse(&headers(&[])));
    }
}
