//! Command-line and environment configuration of the operator binary. Pure.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

/// The mcp-fleet operator: reconciles McpTenant objects (mcpfleet.io/v1alpha1) into PostgreSQL
/// roles that see only the tenant's stores, a hardened MCP server Deployment with Service, HPA,
/// PDB, NetworkPolicy and optional Ingress, and a backup CronJob.
///
/// It talks to the Kubernetes API through the in-cluster service account or $KUBECONFIG, and to
/// PostgreSQL as a role that is a member of `mcpfleet_operator` (never a superuser). Every flag
/// can also be set through the environment variable shown beside it.
#[derive(Clone, Debug, Parser)]
#[command(name = "mcp-fleet-operator", version, about, long_about)]
pub struct Cli {
    /// Admin PostgreSQL URL for tenants without spec.database.adminSecretRef (a member of
    /// mcpfleet_operator), e.g. postgres://mcpfleet_op:...@db:5432/zava?sslmode=require.
    #[arg(long, env = "MCP_FLEET_OPERATOR_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Server image for tenants that do not set spec.server.image.
    #[arg(long, env = "MCP_FLEET_OPERATOR_SERVER_IMAGE", default_value = concat!("mcp-fleet/mcp-fleet-server:", env!("CARGO_PKG_VERSION")))]
    pub server_image: String,

    /// Cluster DNS domain, used for the in-cluster endpoint and allowed Host headers.
    #[arg(long, env = "MCP_FLEET_OPERATOR_CLUSTER_DOMAIN", default_value = "cluster.local")]
    pub cluster_domain: String,

    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "MCP_FLEET_OPERATOR_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,

    /// Address of the HTTP server for /metrics, /health, /health/live and /health/ready.
    #[arg(long, env = "MCP_FLEET_OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,

    /// How often a healthy McpTenant is reconciled again (drift repair), e.g. 5m.
    #[arg(long, env = "MCP_FLEET_OPERATOR_RESYNC_INTERVAL", default_value = "5m", value_parser = humantime::parse_duration)]
    pub resync_interval: Duration,

    /// McpTenants reconciled at the same time.
    #[arg(long, env = "MCP_FLEET_OPERATOR_CONCURRENCY", default_value_t = 8)]
    pub concurrency: u16,

    /// Changes to one McpTenant and its children within this window are reconciled once (0s:
    /// every change at once).
    #[arg(long, env = "MCP_FLEET_OPERATOR_DEBOUNCE", default_value = "500ms", value_parser = humantime::parse_duration)]
    pub debounce: Duration,

    /// First retry delay after a transient failure; doubles per consecutive failure of an object.
    #[arg(long, env = "MCP_FLEET_OPERATOR_BACKOFF_BASE", default_value = "1s", value_parser = humantime::parse_duration)]
    pub backoff_base: Duration,

    /// Longest retry delay.
    #[arg(long, env = "MCP_FLEET_OPERATOR_BACKOFF_MAX", default_value = "5m", value_parser = humantime::parse_duration)]
    pub backoff_max: Duration,

    /// Run only while holding the leader Lease (for several replicas). Disable for a single
    /// local process.
    #[arg(long, env = "MCP_FLEET_OPERATOR_LEADER_ELECTION", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_election: bool,

    /// Name of the leader Lease.
    #[arg(long, env = "MCP_FLEET_OPERATOR_LEASE_NAME", default_value = "mcp-fleet-operator")]
    pub lease_name: String,

    /// Namespace of the leader Lease (in a pod: its own namespace, via the downward API).
    #[arg(long, env = "MCP_FLEET_OPERATOR_LEASE_NAMESPACE", default_value = "default")]
    pub lease_namespace: String,

    /// How long the lease is valid without renewal; a new leader waits at most this long.
    #[arg(long, env = "MCP_FLEET_OPERATOR_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,

    /// This replica's identity in the Lease and in Events (default: POD_NAME, else host name
    /// and process id).
    #[arg(long, env = "MCP_FLEET_OPERATOR_IDENTITY")]
    pub identity: Option<String>,

    /// Log format: json or text.
    #[arg(long, env = "MCP_FLEET_OPERATOR_LOG_FORMAT", default_value = "json", value_parser = ["json", "text"])]
    pub log_format: String,

    /// Log filter, e.g. info or info,kube=debug.
    #[arg(long, env = "MCP_FLEET_OPERATOR_LOG", default_value = "info", value_parser = log_filter_arg)]
    pub log: String,

    /// Export a trace span per reconcile over OTLP/HTTP (protobuf) to this collector base URL,
    /// e.g. http://otel-collector.observability:4318 (`/v1/traces` is appended). No export
    /// without it.
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

impl Cli {
    pub fn identity(&self) -> String {
        self.identity.clone().or_else(|| std::env::var("POD_NAME").ok()).unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        })
    }
}

/// `--log`: refused at start with the reason, rather than replaced by `info` in silence.
fn log_filter_arg(value: &str) -> Result<String, mcp_fleet_core::log_filter::InvalidLogFilter> {
    mcp_fleet_core::log_filter::parse(value).map(|_| value.to_owned())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::*;

    #[test]
    fn every_flag_has_help_and_an_environment_variable() {
        let cmd = Cli::command();
        for arg in cmd.get_arguments().filter(|a| a.get_long().is_some_and(|l| l != "help" && l != "version"))
        {
            assert!(arg.get_env().is_some(), "--{} has no env var", arg.get_long().unwrap());
            assert!(arg.get_help().is_some(), "--{} has no help", arg.get_long().unwrap());
        }
        cmd.debug_assert();
    }

    #[test]
    fn durations_parse_in_human_units() {
        let cli =
            Cli::try_parse_from(["x", "--resync-interval", "90s", "--leader-election", "false"]).unwrap();
        assert_eq!(cli.resync_interval, Duration::from_secs(90));
        assert!(!cli.leader_election);
    }

    #[test]
    fn a_bad_log_filter_stops_the_operator_at_start_with_the_reason() {
        let err = Cli::try_parse_from(["x", "--log", "info,kube=loud"]).unwrap_err().to_string();
        assert!(err.contains("\"info,kube=loud\" is not a valid log filter"), "{err}");
        // Once a panic in tracing-subscriber (a multi-byte character after a space).
        assert!(Cli::try_parse_from(["x", "--log", "info, [é]{}"]).is_err());
        assert_eq!(Cli::try_parse_from(["x", "--log", "info, kube=debug"]).unwrap().log, "info, kube=debug");
    }
}
