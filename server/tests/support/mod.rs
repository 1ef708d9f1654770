//! Shared fixtures for the server's integration tests: a seeded (and embedded) database, tenants
//! made through the real tenancy functions, an in-process HTTP server on 127.0.0.1, and an rmcp
//! client talking to it over real HTTP.
#![allow(dead_code)]

pub mod issuer;

use std::collections::HashMap;
use std::sync::Arc;

use mcp_fleet_core::progress::Progress;
use mcp_fleet_core::server_config::PerSubjectSection;
use mcp_fleet_core::tenant::{TenantName, generate_password, scram_verifier};
use mcp_fleet_seed::{self as seed, SeedConfig};
use mcp_fleet_server::config::{self, ServeArgs};
use mcp_fleet_server::http::{HttpOptions, router};
use mcp_fleet_server::mcp::AppState;
use mcp_fleet_server::serve;
use mcp_fleet_testkit::TestDb;
use mcp_fleet_testkit::pg::unique_name;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::RunningService;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

/// A seeded database whose products are embedded with the local model.
pub async fn embedded_db() -> TestDb {
    TestDb::from_template("seeded-embedded", |pool| async move {
        seed::run(&pool, &SeedConfig::small(), &Progress::quiet()).await.expect("seed");
        let embedder = mcp_fleet_server::embed::from_config(&Default::default())
            .expect("local model (run `make model`)");
        mcp_fleet_server::embed::backfill(&pool, embedder.as_ref(), 64, false, &Progress::quiet())
            .await
            .expect("embed");
    })
    .await
}

pub struct Tenant {
    pub name: TenantName,
    pub stores: Vec<i32>,
    pub password: String,
}

/// A tenant with a unique name, created through `tenancy.apply_tenant` as the operator would.
pub async fn tenant(db: &TestDb, stores: &[i32]) -> Tenant {
    let name = TenantName::new(unique_name("t").replace('_', "-")).expect("valid generated name");
    let password = generate_password();
    let refs: Vec<String> = stores.iter().map(|s| s.to_string()).collect();
    sqlx::query("SELECT * FROM tenancy.apply_tenant($1, $2, $3)")
        .bind(name.as_str())
        .bind(&refs)
        .bind(scram_verifier(&password))
        .execute(&db.admin)
        .await
        .expect("apply_tenant");
    Tenant { name, stores: stores.to_vec(), password }
}

pub struct Server {
    pub url: String,
    pub base: String,
    pub state: Arc<AppState>,
    cancel: CancellationToken,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Options for a test server beyond the defaults.
#[derive(Default, Clone)]
pub struct Opts {
    /// The configuration file contents (auth, roles...); `--auth none` when absent. Each caller's
    /// share (`limits.perSubject`) is lifted unless the file sets it.
    pub file: Option<mcp_fleet_core::server_config::ServerConfigFile>,
    /// JWKS cache timings (tests shorten the refresh interval).
    pub jwks: Option<mcp_fleet_server::auth::jwks::JwksOptions>,
    /// A smaller audit buffer, to exercise back-pressure.
    pub audit_capacity: Option<usize>,
    pub row_cap: Option<u32>,
    pub max_result_bytes: Option<u64>,
    pub max_estimated_cost: Option<f64>,
    pub statement_timeout: Option<String>,
    pub max_concurrent_requests: Option<u32>,
    /// Log in as this tenant's role while claiming to serve `tenant` (readiness must notice).
    pub login_as: Option<(String, String)>,
}

/// Starts the real router for `tenant` (dedicated mode; `--auth none` unless `opts.file` says
/// otherwise) on 127.0.0.1. The public URL is the server's own address.
pub async fn server(db: &TestDb, t: &Tenant, opts: Opts) -> Server {
    mcp_fleet_server::install_crypto_provider();
    let (user, password) = opts.login_as.clone().unwrap_or((t.name.login_role(), t.password.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut file = opts.file.clone().unwrap_or_default();
    if file.limits.per_subject == PerSubjectSection::default() {
        // Tests call far faster than any model: each caller's share is lifted unless a test sets it.
        file.limits.per_subject = PerSubjectSection {
            max_concurrent: Some(1000),
            requests_per_minute: Some(1_000_000),
            burst: Some(1_000_000),
        };
    }
    let args = ServeArgs {
        tenant: Some(t.name.to_string()),
        database_url: Some(db.url_as(&user, "").replace(":@", "@")),
        auth: file.auth.mode.or(Some(mcp_fleet_core::server_config::AuthMode::None)),
        public_url: Some(format!("http://{addr}/mcp")),
        row_cap: opts.row_cap,
        max_result_bytes: opts.max_result_bytes,
        max_estimated_cost: opts.max_estimated_cost,
        statement_timeout: opts.statement_timeout.clone(),
        max_concurrent_requests: opts.max_concurrent_requests,
        ..Default::default()
    };
    let cfg = config::resolve(
        &args,
        file,
        |k| (k == "MCP_FLEET_DATABASE_PASSWORD").then(|| password.clone()),
        |p| std::fs::read_to_string(p),
    )
    .expect("valid test configuration");
    let mut state = serve::state(&cfg).await.expect("server state");
    if let Some(cap) = opts.audit_capacity {
        state.audit = mcp_fleet_server::mcp::audit::AuditLog::start(
            state.db.audit_pool().clone(),
            state.db.mode(),
            state.metrics.clone(),
            cap,
            std::time::Duration::from_millis(500),
        );
    }
    let state = Arc::new(state);
    let auth = serve::authenticator(&cfg, opts.jwks.clone().unwrap_or_default()).expect("authenticator");
    let cancel = CancellationToken::new();
    let app = router(
        state.clone(),
        Arc::new(auth),
        HttpOptions {
            allowed_hosts: vec![],
            max_concurrent_requests: cfg.max_concurrent_requests as usize,
            request_timeout: cfg.request_timeout,
            max_body_bytes: cfg.max_body_bytes as usize,
            expected_tenant: Some(t.name.to_string()),
            terminating: CancellationToken::new(),
        },
        cancel.child_token(),
    );
    let stop = cancel.clone();
    tokio::spawn(async move {
        let _ =
            axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await }).await;
    });
    Server { url: format!("http://{addr}/mcp"), base: format!("http://{addr}"), state, cancel }
}

pub type Client = RunningService<RoleClient, ()>;

/// An MCP client over real HTTP, with optional extra headers.
pub async fn client(url: &str, headers: &[(&str, &str)]) -> Client {
    mcp_fleet_server::install_crypto_provider();
    let mut map = HashMap::new();
    for (k, v) in headers {
        map.insert(
            http::HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            http::HeaderValue::from_str(v).expect("header value"),
        );
    }
    let transport = StreamableHttpClientTransport::from_config(
        StreamableHttpClientTransportConfig::with_uri(url.to_owned()).custom_headers(map),
    );
    ().serve(transport).await.expect("MCP client connects")
}

/// Calls a tool; returns (is_error, text of the first content block).
pub async fn call(client: &Client, tool: &str, args: Value) -> (bool, String) {
    let result = call_raw(client, tool, args).await.unwrap_or_else(|e| panic!("{tool}: {e}"));
    text_of(&result)
}

pub async fn call_raw(
    client: &Client,
    tool: &str,
    args: Value,
) -> Result<CallToolResult, rmcp::ServiceError> {
    let Value::Object(map) = args else { panic!("arguments must be an object") };
    let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(map as Map<String, Value>);
    client.call_tool(params).await
}

pub fn text_of(result: &CallToolResult) -> (bool, String) {
    let text = result.content.iter().find_map(|c| c.as_text().map(|t| t.text.clone())).unwrap_or_default();
    (result.is_error.unwrap_or(false), text)
}

/// Parses a compact result `{"c":..,"r":..,"n":..}`.
pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// One row of the audit trail, as the tests read it.
#[derive(Debug, sqlx::FromRow)]
pub struct AuditRow {
    pub tool: String,
    pub outcome: String,
    pub subject: String,
    pub arguments: Value,
    pub error: Option<String>,
}

/// The audit trail once it holds at least `at_least` rows (the writer batches them off the
/// request path), or as it is after 10 seconds.
pub async fn wait_for_audit(db: &TestDb, at_least: usize) -> Vec<AuditRow> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let rows: Vec<AuditRow> = sqlx::query_as(
            "SELECT tool, outcome, subject, arguments, error FROM audit.tool_calls ORDER BY call_id",
        )
        .fetch_all(&db.admin)
        .await
        .expect("the audit trail is readable as the admin");
        if rows.len() >= at_least || std::time::Instant::now() > deadline {
            return rows;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The server's Prometheus metrics, as text.
pub async fn metrics(srv: &Server) -> String {
    reqwest::Client::new()
        .get(format!("{}/metrics", srv.base))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text")
}
