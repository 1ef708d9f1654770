//! The HTTP surface: MCP (Streamable HTTP, stateless) at `/mcp` behind authentication, overload
//! protection and timeouts; health, readiness and Prometheus metrics beside it. `router()` builds
//! it all from state so tests can drive it in-process.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use mcp_fleet_core::server_config::TenancyMode;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

use crate::auth::{AuthRejection, Authenticator, RESOURCE_METADATA_PATH};
use crate::db::TenantDb;
use crate::mcp::stateless::McpEndpoint;
use crate::mcp::{AppState, RetailServer};

/// What the HTTP layer needs besides the tool state.
pub struct HttpOptions {
    pub allowed_hosts: Vec<String>,
    pub max_concurrent_requests: usize,
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    /// The tenant a dedicated server must be logged in as (readiness checks it).
    pub expected_tenant: Option<String>,
    /// Cancelled at SIGTERM: readiness answers 503 from then on, while calls are still served.
    pub terminating: CancellationToken,
}

#[derive(Clone)]
struct Shared {
    app: Arc<AppState>,
    auth: Arc<Authenticator>,
    expected_tenant: Option<String>,
    terminating: CancellationToken,
}

/// The whole application router.
pub fn router(
    app: Arc<AppState>,
    auth: Arc<Authenticator>,
    opts: HttpOptions,
    cancel: CancellationToken,
) -> Router {
    let factory_state = app.clone();
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    hosts.extend(opts.allowed_hosts.iter().cloned());
    let rmcp = StreamableHttpService::new(
        move || Ok(RetailServer::new(factory_state.clone())),
        Arc::new(NeverSessionManager::default()),
        StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None)
            .with_allowed_hosts(hosts.clone())
            .with_max_request_body_bytes(opts.max_body_bytes)
            .with_cancellation_token(cancel),
    );
    let mcp = McpEndpoint::new(rmcp, RetailServer::new(app.clone()), &hosts);
    // One `Arc`: each middleware clones its state per request.
    let shared = Arc::new(Shared {
        app: app.clone(),
        auth,
        expected_tenant: opts.expected_tenant,
        terminating: opts.terminating,
    });

    // Overload sheds at once with 503 instead of queueing; slow requests end with 504.
    let protect = ServiceBuilder::new()
        .layer(axum::error_handling::HandleErrorLayer::new(overloaded))
        .load_shed()
        .concurrency_limit(opts.max_concurrent_requests)
        .timeout(opts.request_timeout);

    let mcp_routes = Router::new()
        .route_service("/mcp", mcp)
        .layer(middleware::from_fn_with_state(shared.clone(), authenticate))
        .layer(protect)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(opts.max_body_bytes));

    Router::new()
        .merge(mcp_routes)
        .route("/health", get(health))
        .route("/health/live", get(|| async { "ok" }))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
        .route(RESOURCE_METADATA_PATH, get(resource_metadata))
        .route("/.well-known/oauth-protected-resource", get(resource_metadata))
        .layer(middleware::from_fn_with_state(shared.clone(), observe))
        .with_state(shared)
}

async fn overloaded(err: tower::BoxError) -> Response {
    if err.is::<tower::timeout::error::Elapsed>() {
        return error_response(
            StatusCode::GATEWAY_TIMEOUT,
            "the request took too long and was stopped; try a narrower question",
        );
    }
    error_response(StatusCode::SERVICE_UNAVAILABLE, "the server is at its concurrency limit; retry shortly")
}

fn error_response(status: StatusCode, message: &str) -> Response {
    let mut r = (status, Json(json!({ "error": message }))).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    r
}

/// The request id [`observe`] chose, for the layers inside it (one id per request, echoed in
/// the response and carried by the caller's identity into the log and the audit trail).
#[derive(Clone)]
struct RequestId(String);

/// A request id: the caller's `x-request-id` when it is short and plain, else a fresh UUID
/// (from the thread's CSPRNG rather than a `getrandom` system call per request).
fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Builder::from_random_bytes(rand::random()).into_uuid().to_string())
}

async fn authenticate(State(s): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let id = match req.extensions_mut().remove::<RequestId>() {
        Some(RequestId(id)) => id,
        None => request_id(&req),
    };
    match s.auth.authenticate(req.headers(), id).await {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(rejection) => {
            s.app.metrics.errors.with_label_values(&["auth"]).inc();
            let mut resp = error_response(rejection.status(), &rejection.to_string());
            if let AuthRejection::Unauthenticated { invalid_token } = rejection
                && let Some(challenge) = s.auth.challenge(invalid_token)
                && let Ok(v) = HeaderValue::from_str(&challenge)
            {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            resp
        }
    }
}

/// RFC 9728 protected-resource metadata; 404 when authentication is off.
async fn resource_metadata(State(s): State<Arc<Shared>>) -> Response {
    match s.auth.resource_metadata() {
        Some(doc) => Json(doc).into_response(),
        None => error_response(StatusCode::NOT_FOUND, "authentication is off on this server"),
    }
}

/// Counts requests by route and status, tracks in-flight MCP requests, echoes the request id.
async fn observe(State(s): State<Arc<Shared>>, mut req: Request, next: Next) -> Response {
    let route = match req.uri().path() {
        "/mcp" => "/mcp",
        "/health" | "/health/live" | "/health/ready" => "/health",
        "/metrics" => "/metrics",
        p if p.starts_with("/.well-known/") => "/.well-known",
        _ => "other",
    };
    let id = request_id(&req);
    req.extensions_mut().insert(RequestId(id.clone()));
    let inflight = (route == "/mcp").then(|| InFlight::enter(&s.app.metrics.inflight_requests));
    let mut resp = next.run(req).await;
    drop(inflight);
    s.app.metrics.http_requests.with_label_values(&[route, resp.status().as_str()]).inc();
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

struct InFlight(prometheus::IntGauge);
impl InFlight {
    fn enter(g: &prometheus::IntGauge) -> Self {
        g.inc();
        Self(g.clone())
    }
}
impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let circuit = s.app.embedder.as_ref().and_then(|e| e.circuit());
    let body = s.app.metrics.render(s.app.db.pool(), circuit);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// The schema version, and the tenant the pool's role belongs to (none in shared mode).
async fn schema_version_and_tenant(db: &TenantDb) -> Result<(i64, Option<String>), sqlx::Error> {
    match db.mode() {
        TenancyMode::Dedicated => {
            sqlx::query_as("SELECT tenancy.schema_version(), tenancy.current_tenant()")
                .fetch_one(db.pool())
                .await
        }
        TenancyMode::Shared => {
            // The gateway login holds no privilege of its own (NOINHERIT): ask as mcpfleet_gateway.
            let mut tx = db.pool().begin().await?;
            sqlx::query("SET LOCAL ROLE mcpfleet_gateway").execute(&mut *tx).await?;
            let (version,): (i64,) =
                sqlx::query_as("SELECT tenancy.schema_version()").fetch_one(&mut *tx).await?;
            tx.rollback().await?;
            Ok((version, None))
        }
    }
}

/// Readiness facts: database reachable, schema migrated far enough, logged in as the right tenant.
async fn readiness(s: &Shared) -> Result<serde_json::Value, String> {
    let row = tokio::time::timeout(Duration::from_secs(3), schema_version_and_tenant(&s.app.db))
        .await
        .unwrap_or(Err(sqlx::Error::PoolTimedOut));
    let (version, tenant) = row.map_err(|e| match e {
        sqlx::Error::Database(d) => format!("database check failed: {}", d.message()),
        _ => "database unreachable".to_owned(),
    })?;
    let expected = mcp_fleet_core::migrations::expected_version();
    if version < expected {
        return Err(format!(
            "database schema is at version {version}, this server needs {expected}: run `mcp-fleet-server migrate`"
        ));
    }
    if let Some(want) = &s.expected_tenant
        && tenant.as_deref() != Some(want.as_str())
    {
        return Err(format!(
            "the database role belongs to tenant {}, but this server serves {want}",
            tenant.as_deref().unwrap_or("<none>")
        ));
    }
    let mut facts = json!({ "database": "ok", "schema_version": version, "tenant": tenant, "embeddings": s.app.embedder.as_ref().map(|e| e.model().to_owned()) });
    if let Some(circuit) = s.app.embedder.as_ref().and_then(|e| e.circuit()) {
        facts["embeddings_circuit"] = json!(circuit.as_str());
    }
    Ok(facts)
}

async fn ready(State(s): State<Arc<Shared>>) -> Response {
    if s.terminating.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "shutting down: finishing the calls in flight")
            .into_response();
    }
    match readiness(&s).await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

/// Readiness facts with an overall status: `degraded` while the embeddings circuit is open (the
/// search tools that need it fail fast; everything else works, so the pod stays ready).
async fn health(State(s): State<Arc<Shared>>) -> Response {
    match readiness(&s).await {
        Ok(facts) => {
            let status = if facts["embeddings_circuit"] == "open" { "degraded" } else { "ok" };
            (StatusCode::OK, Json(json!({ "status": status, "checks": facts }))).into_response()
        }
        Err(why) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "unavailable", "reason": why })))
                .into_response()
        }
    }
}
