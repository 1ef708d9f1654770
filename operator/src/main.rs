//! The operator binary: configuration, logging and traces, leader election, the HTTP endpoints
//! and the controller. Does I/O.

use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser as _;
use mcp_fleet_core::log_filter;
use mcp_fleet_core::otlp::OtlpTraces;
use mcp_fleet_operator::cli::Cli;
use mcp_fleet_operator::controller::{self, ControllerSettings};
use mcp_fleet_operator::leader::{LeaderElector, LeaseSettings};
use mcp_fleet_operator::metrics::Metrics;
use mcp_fleet_operator::validate::Defaults;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{error, info};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // kube's rustls client and the OTLP exporter's need a process-wide crypto provider; ring is
    // the only one built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let traces = cli
        .otlp_endpoint
        .as_deref()
        .map(|url| OtlpTraces::start(url, "mcp-fleet-operator", env!("CARGO_PKG_VERSION")))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    init_logging(&cli, traces.as_ref());
    let result = run(cli).await;
    // The spans of the last reconciles go out before the process ends.
    if let Some(traces) = traces {
        let _ = tokio::task::spawn_blocking(move || traces.shutdown()).await;
    }
    result
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::default());
    let config = kube::Config::infer().await.context("no Kubernetes API: run in a pod or set KUBECONFIG")?;
    let counted = metrics.clone();
    let client = kube::client::ClientBuilder::try_from(config)
        .context("a client for the Kubernetes API")?
        .with_layer(&tower::util::MapRequestLayer::new(move |request: http::Request<kube::client::Body>| {
            counted.count_api_request(&request);
            request
        }))
        .build();
    let identity = cli.identity();

    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .with_context(|| format!("listening on {}", cli.listen))?;
    info!(addr = %listener.local_addr()?, "serving /metrics and /health");
    let app = mcp_fleet_operator::http::router(metrics.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            error!(error = %e, "HTTP server stopped");
        }
    });

    let stop = CancellationToken::new();
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            info!("shutting down");
            stop.cancel();
        }
    });

    let (leading_tx, mut leading) = watch::channel(!cli.leader_election);
    // One elector: it campaigns in a task and releases the lease at shutdown.
    let elector = cli
        .leader_election
        .then(|| Arc::new(LeaderElector::new(client.clone(), elector_settings(&cli, &identity))));
    if let Some(elector) = &elector {
        let campaign = elector.clone();
        tokio::spawn(async move { campaign.run(leading_tx).await });
        info!(lease = %cli.lease_name, %identity, "waiting for the leader lease");
        tokio::select! {
            _ = leading.wait_for(|l| *l) => {}
            _ = stop.cancelled() => return Ok(()),
        }
    }
    metrics.leader.set(1);
    let lost = CancellationToken::new();
    tokio::spawn({
        let (stop, lost, mut leading) = (stop.clone(), lost.clone(), leading.clone());
        async move {
            tokio::select! {
                _ = leading.wait_for(|l| !*l) => lost.cancel(),
                _ = stop.cancelled() => {}
            }
            stop.cancel();
        }
    });

    info!(namespace = cli.watch_namespace.as_deref().unwrap_or("<all>"), "reconciling McpTenants");
    let settings = ControllerSettings {
        namespace: cli.watch_namespace.clone(),
        defaults: Defaults {
            server_image: cli.server_image.clone(),
            cluster_domain: cli.cluster_domain.clone(),
            admin_url: cli.database_url.clone(),
        },
        resync: cli.resync_interval,
        concurrency: cli.concurrency,
        debounce: cli.debounce,
        backoff_base: cli.backoff_base,
        backoff_max: cli.backoff_max,
        instance: identity,
    };
    controller::run(client, settings, metrics.clone(), stop.clone().cancelled_owned()).await;
    metrics.leader.set(0);
    if lost.is_cancelled() {
        // As client-go does: exit, and let the pod restart as a candidate.
        anyhow::bail!("lost the leader lease");
    }
    if let Some(elector) = elector {
        elector.release().await;
    }
    info!("stopped");
    Ok(())
}

fn elector_settings(cli: &Cli, identity: &str) -> LeaseSettings {
    LeaseSettings {
        name: cli.lease_name.clone(),
        namespace: cli.lease_namespace.clone(),
        identity: identity.to_owned(),
        duration: cli.lease_duration,
        renew_every: (cli.lease_duration / 3).max(std::time::Duration::from_millis(500)),
    }
}

/// Log lines on stderr, and, with `traces`, the spans (one per reconcile) sent over OTLP.
fn init_logging(cli: &Cli, traces: Option<&OtlpTraces>) {
    // `--log` was checked when the command line was read.
    let filter = log_filter::parse(&cli.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines = if cli.log_format == "json" {
        lines.json().flatten_event(true).with_current_span(true).with_span_list(false).boxed()
    } else {
        lines.boxed()
    };
    let mut layers = vec![lines.with_filter(filter).boxed()];
    layers.extend(traces.map(OtlpTraces::layer));
    tracing_subscriber::registry().with(layers).init();
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
