//! `mcp-fleet-server serve`: wires configuration, database, embedder and transports together, and
//! shuts down gracefully (stop accepting, drain in-flight calls, close the pool). Does I/O.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use mcp_fleet_core::tools::ToolName;
use rmcp::ServiceExt as _;
use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::config::{ServerConfig, Transport};
use crate::db::TenantDb;
use crate::http::{HttpOptions, router};
use crate::mcp::AppState;
use crate::mcp::audit::{self, AuditLog};
use crate::metrics::Metrics;

/// How long in-flight requests may take to finish after a shutdown signal.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);

/// Builds the shared state: lazy database pool and (when a tool needs it) the embedder.
pub async fn state(cfg: &ServerConfig) -> anyhow::Result<AppState> {
    let db = TenantDb::connect_lazy(&cfg.database).map_err(anyhow::Error::msg)?;
    let wants_embeddings = ToolName::ALL
        .into_iter()
        .filter(|t| t.needs_embeddings())
        .any(|t| cfg.enabled_tools.is_empty() || cfg.enabled_tools.iter().any(|e| e == t.as_str()));
    let embedder = if wants_embeddings {
        let section = cfg.embeddings.clone();
        let e = tokio::task::spawn_blocking(move || crate::embed::from_config(&section))
            .await
            .context("loading the embedding model")?
            .map_err(|e| anyhow::anyhow!("embeddings: {e}"))?;
        tracing::info!(model = e.model(), "embedding model loaded");
        Some(e)
    } else {
        None
    };
    let metrics = Arc::new(Metrics::new());
    // The audit writer starts with the state, on the current runtime.
    let audit = AuditLog::start(
        db.audit_pool().clone(),
        db.mode(),
        metrics.clone(),
        audit::BUFFER,
        audit::RESERVE_WAIT,
    );
    Ok(AppState::new(db, embedder, metrics, cfg, audit))
}

pub async fn run(cfg: ServerConfig) -> anyhow::Result<()> {
    let mut app = state(&cfg).await?;
    match cfg.transport {
        Transport::Stdio => {
            let tenant = cfg.tenant.clone().context("the stdio transport needs a tenant (--tenant)")?;
            tracing::warn!(tenant = %tenant, "stdio transport: no authentication, the local user acts as the tenant");
            app.stdio_caller = Some(Authenticator::stdio_caller(tenant));
            let app = Arc::new(app);
            let server = crate::mcp::RetailServer::new(app.clone());
            let running =
                server.serve(rmcp::transport::stdio()).await.context("starting the stdio transport")?;
            running.waiting().await.context("stdio session")?;
            app.audit.shutdown(Duration::from_secs(10)).await;
            app.db.close().await;
            Ok(())
        }
        Transport::Http => run_http(cfg, Arc::new(app)).await,
    }
}

async fn run_http(cfg: ServerConfig, app: Arc<AppState>) -> anyhow::Result<()> {
    let auth = authenticator(&cfg, crate::auth::jwks::JwksOptions::default())?;
    // Three steps: `terminating` (SIGTERM) turns readiness off while calls are still served, for
    // `shutdown_delay`, so that endpoints and the ingress stop sending new calls first; `cancel`
    // then stops accepting and starts the drain; `sessions` stops the MCP service, and only after
    // the drain, so calls in flight still finish.
    let terminating = CancellationToken::new();
    let cancel = CancellationToken::new();
    let sessions = CancellationToken::new();
    let expected_tenant = (cfg.database.mode == mcp_fleet_core::server_config::TenancyMode::Dedicated)
        .then(|| cfg.tenant.as_ref().map(ToString::to_string))
        .flatten();
    let app_router = router(
        app.clone(),
        Arc::new(auth),
        HttpOptions {
            allowed_hosts: cfg.allowed_hosts.clone(),
            max_concurrent_requests: cfg.max_concurrent_requests as usize,
            request_timeout: cfg.request_timeout,
            max_body_bytes: cfg.max_body_bytes as usize,
            expected_tenant,
            terminating: terminating.clone(),
        },
        sessions.clone(),
    );
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {}", cfg.listen))?;
    let local = listener.local_addr()?;
    tracing::info!(address = %local, "serving MCP at http://{local}/mcp");
    eprintln!("mcp-fleet-server: listening on http://{local}/mcp");

    let signal = cancel.clone();
    let delay = cfg.shutdown_delay;
    tokio::spawn(async move {
        shutdown_signal().await;
        terminating.cancel();
        if !delay.is_zero() {
            tracing::info!(delay = ?delay, "shutdown requested: not ready any more, still serving for the delay");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = shutdown_signal() => tracing::info!("a second signal: the delay is cut short"),
            }
        }
        tracing::info!("draining in-flight requests");
        signal.cancel();
    });
    let drain = cancel.clone();
    let server =
        axum::serve(listener, app_router).with_graceful_shutdown(async move { drain.cancelled().await });
    let served = tokio::spawn(async move { server.await });
    cancel.cancelled().await;
    match tokio::time::timeout(DRAIN_TIMEOUT, served).await {
        Ok(joined) => joined.context("server task")?.context("HTTP server")?,
        Err(_) => {
            tracing::warn!("in-flight requests did not finish within {DRAIN_TIMEOUT:?}; stopping anyway")
        }
    }
    sessions.cancel();
    app.audit.shutdown(Duration::from_secs(10)).await;
    app.db.close().await;
    tracing::info!("stopped");
    Ok(())
}

/// The authenticator the configuration asks for (OIDC, or the loudly labelled development mode).
pub fn authenticator(
    cfg: &ServerConfig,
    jwks: crate::auth::jwks::JwksOptions,
) -> anyhow::Result<Authenticator> {
    use mcp_fleet_core::server_config::{AuthMode, TenancyMode};
    Ok(match cfg.auth_mode {
        AuthMode::None => {
            tracing::warn!(
                "AUTHENTICATION IS OFF (--auth none): development only. Anyone who can reach this port acts as tenant {}",
                cfg.tenant.as_ref().map_or("<from x-mcp-tenant>".to_owned(), ToString::to_string)
            );
            Authenticator::None { tenant: cfg.tenant.clone(), mode: cfg.database.mode }
        }
        AuthMode::Oidc => {
            let public_url = cfg.public_url.clone().context("publicUrl is required with oidc auth")?;
            let dedicated = cfg.tenant.as_ref().filter(|_| cfg.database.mode == TenancyMode::Dedicated);
            let oidc = crate::auth::oidc::Oidc::from_config(&cfg.auth, dedicated, Some(&public_url), jwks)
                .map_err(crate::config::ConfigErrors)?;
            tracing::info!(issuer = %oidc.issuer, resource = %public_url, "bearer tokens required");
            Authenticator::Oidc { oidc: Box::new(oidc), public_url }
        }
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
