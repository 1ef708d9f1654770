//! `serve` configuration: a YAML file (the operator renders it; see
//! `mcp_fleet_core::server_config`), overridden by environment variables and flags, then checked
//! by the same `ServerConfigFile::check` the operator runs, into one [`ServerConfig`]. Every
//! problem is reported at once, in one message. Reads files (the config and the password file),
//! no other I/O.

use std::path::PathBuf;

pub use mcp_fleet_core::server_config::LogFormat;
use mcp_fleet_core::server_config::{
    AuthMode, CheckedConfig, EmbeddingProvider, Problem, ServerConfigFile, TenancyMode,
};

/// Flags of `mcp-fleet-server serve`. Each one overrides the config file; each has an env var.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct ServeArgs {
    /// YAML configuration file (the operator mounts one at /etc/mcp-fleet/server.yaml).
    #[arg(long, env = "MCP_FLEET_CONFIG")]
    pub config: Option<PathBuf>,
    /// `http` (Streamable HTTP at /mcp) or `stdio` (for local MCP clients that spawn the server).
    #[arg(long, env = "MCP_FLEET_TRANSPORT", value_enum, default_value_t = Transport::Http)]
    pub transport: Transport,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "MCP_FLEET_LISTEN")]
    pub listen: Option<String>,
    /// The tenant this server serves; in dedicated mode it must be the tenant of the database role.
    #[arg(long, env = "MCP_FLEET_TENANT")]
    pub tenant: Option<String>,
    /// PostgreSQL URL of the tenant's login role (dedicated) or of the gateway role (shared).
    /// A password in the URL is accepted but a password file is better. Never logged.
    #[arg(long, env = "MCP_FLEET_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// File holding the database password (a mounted Secret).
    #[arg(long, env = "MCP_FLEET_DATABASE_PASSWORD_FILE")]
    pub database_password_file: Option<PathBuf>,
    /// `dedicated` (log in as the tenant's own role) or `shared` (SET ROLE per request) [default: dedicated].
    #[arg(long, env = "MCP_FLEET_TENANCY_MODE", value_parser = parse_mode)]
    pub tenancy_mode: Option<TenancyMode>,
    /// `oidc` (bearer JWTs) or `none` (local development only: trusts the x-rls-user-id header
    /// to narrow to one store; refused when the config says production) [default: oidc].
    #[arg(long, env = "MCP_FLEET_AUTH", value_parser = parse_auth)]
    pub auth: Option<AuthMode>,
    /// Public URL of the MCP endpoint (the OAuth resource), e.g. https://seattle.example.com/mcp.
    #[arg(long, env = "MCP_FLEET_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Extra accepted Host header values (comma-separated), besides localhost.
    #[arg(long, env = "MCP_FLEET_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// Most rows a query tool returns [default: 500].
    #[arg(long, env = "MCP_FLEET_ROW_CAP")]
    pub row_cap: Option<u32>,
    /// Most bytes of rows one tool result holds; longer values are cut in PostgreSQL and rows
    /// stop at the budget, saying so [default: 1048576].
    #[arg(long, env = "MCP_FLEET_MAX_RESULT_BYTES")]
    pub max_result_bytes: Option<u64>,
    /// Largest estimated cost (PostgreSQL planner units) of a query execute_sales_query runs; a
    /// query planned above it is refused unrun [default: no limit].
    #[arg(long, env = "MCP_FLEET_MAX_ESTIMATED_COST")]
    pub max_estimated_cost: Option<f64>,
    /// Per-query timeout, e.g. 5s [default: 5s].
    #[arg(long, env = "MCP_FLEET_STATEMENT_TIMEOUT")]
    pub statement_timeout: Option<String>,
    /// Most database connections [default: 10]; one of them is the audit trail's own, so that
    /// tool calls never keep it from recording the calls that finished.
    #[arg(long, env = "MCP_FLEET_DB_MAX_CONNECTIONS")]
    pub db_max_connections: Option<u32>,
    /// `local` (all-MiniLM-L6-v2 in-process) or `openai` [default: local].
    #[arg(long, env = "MCP_FLEET_EMBEDDINGS", value_parser = parse_provider)]
    pub embeddings: Option<EmbeddingProvider>,
    /// Directory of the local model [default: ~/.cache/mcp-fleet/models/all-MiniLM-L6-v2].
    #[arg(long, env = "MCP_FLEET_MODEL_DIR")]
    pub model_dir: Option<PathBuf>,
    /// Requests served at once before new ones are refused with 503 [default: 64].
    #[arg(long, env = "MCP_FLEET_MAX_CONCURRENT_REQUESTS")]
    pub max_concurrent_requests: Option<u32>,
    /// Tool calls one caller (token subject) may have running at once; more are refused with a
    /// rate-limited error [default: 4].
    #[arg(long, env = "MCP_FLEET_PER_SUBJECT_MAX_CONCURRENT")]
    pub per_subject_max_concurrent: Option<u32>,
    /// Tool calls one caller may start per minute, on average [default: 120].
    #[arg(long, env = "MCP_FLEET_PER_SUBJECT_REQUESTS_PER_MINUTE")]
    pub per_subject_requests_per_minute: Option<u32>,
    /// Tool calls one caller may start at once before the per-minute rate applies
    /// [default: the per-minute rate].
    #[arg(long, env = "MCP_FLEET_PER_SUBJECT_BURST")]
    pub per_subject_burst: Option<u32>,
    /// Whole-request timeout, e.g. 30s [default: 30s].
    #[arg(long, env = "MCP_FLEET_REQUEST_TIMEOUT")]
    pub request_timeout: Option<String>,
    /// After SIGTERM, keep serving this long with /health/ready answering 503 (so endpoints and
    /// the ingress stop sending new calls), then drain, e.g. 5s [default: 0s].
    #[arg(long, env = "MCP_FLEET_SHUTDOWN_DELAY")]
    pub shutdown_delay: Option<String>,
    /// `json` or `text` [default: json].
    #[arg(long, env = "MCP_FLEET_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. `info` or `info,mcp_fleet_server=debug` [default: info].
    #[arg(long, env = "MCP_FLEET_LOG")]
    pub log_level: Option<String>,
    /// Export traces over OTLP/HTTP (protobuf) to this collector base URL, e.g.
    /// http://otel-collector:4318 (`/v1/traces` is appended) [default: no export].
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Transport {
    #[default]
    Http,
    Stdio,
}

fn parse_mode(s: &str) -> Result<TenancyMode, String> {
    match s {
        "dedicated" => Ok(TenancyMode::Dedicated),
        "shared" => Ok(TenancyMode::Shared),
        _ => Err(format!("{s:?} is not a tenancy mode; use `dedicated` or `shared`")),
    }
}

fn parse_auth(s: &str) -> Result<AuthMode, String> {
    match s {
        "none" => Ok(AuthMode::None),
        "oidc" => Ok(AuthMode::Oidc),
        _ => Err(format!("{s:?} is not an auth mode; use `oidc` or `none`")),
    }
}

fn parse_provider(s: &str) -> Result<EmbeddingProvider, String> {
    match s {
        "local" => Ok(EmbeddingProvider::Local),
        "openai" => Ok(EmbeddingProvider::Openai),
        _ => Err(format!("{s:?} is not an embeddings provider; use `local` or `openai`")),
    }
}

/// The validated configuration the server runs with: the transport, and the checked settings of
/// the file with flags and environment merged in (`Deref` reaches them), the database password
/// read. `Debug` never shows the password.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub transport: Transport,
    pub settings: CheckedConfig,
}

impl std::ops::Deref for ServerConfig {
    type Target = CheckedConfig;

    fn deref(&self) -> &CheckedConfig {
        &self.settings
    }
}

/// Everything wrong with a configuration, reported together.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration ({} problem{}):\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<Problem>);

/// Reads the config file named by `args` (if any) and merges flags and env over it.
pub fn load(args: &ServeArgs) -> Result<ServerConfig, ConfigErrors> {
    let file = match &args.config {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => serde_saphyr::from_str::<ServerConfigFile>(&text).map_err(|e| {
                ConfigErrors(vec![Problem::from(format!("config file {}: {e}", path.display()))])
            })?,
            Err(e) => {
                return Err(ConfigErrors(vec![Problem::from(format!(
                    "cannot read config file {}: {e}",
                    path.display()
                ))]));
            }
        },
        None => ServerConfigFile::default(),
    };
    resolve(args, file, |name| std::env::var(name).ok(), |path| std::fs::read_to_string(path))
}

/// Merges and validates. `env` and `read` are parameters so tests need no process state.
pub fn resolve(
    args: &ServeArgs,
    file: ServerConfigFile,
    env: impl Fn(&str) -> Option<String>,
    read: impl Fn(&std::path::Path) -> std::io::Result<String>,
) -> Result<ServerConfig, ConfigErrors> {
    let file = args.overlay(file);
    let checked = file.check();
    let password = match &file.database.password_file {
        Some(path) => match read(path) {
            Ok(p) => Ok(Some(p.trim_end_matches(['\n', '\r']).to_owned())),
            Err(e) => {
                Err(Problem::from(format!("cannot read the database password file {}: {e}", path.display())))
            }
        },
        None => Ok(env("MCP_FLEET_DATABASE_PASSWORD")),
    };
    match (checked, password) {
        (Ok(mut settings), Ok(password)) => {
            settings.database.password = password;
            Ok(ServerConfig { transport: args.transport, settings })
        }
        (checked, password) => {
            let mut problems = checked.err().unwrap_or_default();
            problems.extend(password.err());
            Err(ConfigErrors(problems))
        }
    }
}

impl ServeArgs {
    /// The file with these flags (each of which also reads an environment variable) laid over
    /// it: a flag that is set wins; `--allowed-hosts` adds to the file's list.
    pub fn overlay(&self, mut file: ServerConfigFile) -> ServerConfigFile {
        fn set<T: Clone>(slot: &mut Option<T>, flag: &Option<T>) {
            if flag.is_some() {
                slot.clone_from(flag);
            }
        }
        set(&mut file.listen, &self.listen);
        set(&mut file.tenant, &self.tenant);
        set(&mut file.public_url, &self.public_url);
        let db = &mut file.database;
        set(&mut db.mode, &self.tenancy_mode);
        set(&mut db.url, &self.database_url);
        set(&mut db.password_file, &self.database_password_file);
        set(&mut db.statement_timeout, &self.statement_timeout);
        set(&mut db.max_connections, &self.db_max_connections);
        set(&mut file.tools.row_cap, &self.row_cap);
        set(&mut file.tools.max_result_bytes, &self.max_result_bytes);
        set(&mut file.tools.max_estimated_cost, &self.max_estimated_cost);
        set(&mut file.embeddings.provider, &self.embeddings);
        set(&mut file.embeddings.model_dir, &self.model_dir);
        set(&mut file.auth.mode, &self.auth);
        set(&mut file.limits.max_concurrent_requests, &self.max_concurrent_requests);
        set(&mut file.limits.request_timeout, &self.request_timeout);
        set(&mut file.limits.shutdown_delay, &self.shutdown_delay);
        let per_subject = &mut file.limits.per_subject;
        set(&mut per_subject.max_concurrent, &self.per_subject_max_concurrent);
        set(&mut per_subject.requests_per_minute, &self.per_subject_requests_per_minute);
        set(&mut per_subject.burst, &self.per_subject_burst);
        set(&mut file.logging.format, &self.log_format);
        set(&mut file.logging.level, &self.log_level);
        set(&mut file.logging.otlp_endpoint, &self.otlp_endpoint);
        file.allowed_hosts.extend(self.allowed_hosts.iter().filter(|h| !h.is_empty()).cloned());
        file
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }
    fn no_files(p: &std::path::Path) -> std::io::Result<String> {
        Err(std::io::Error::new(std::io::ErrorKind::NotFound, format!("{} not found", p.display())))
    }

    #[test]
    fn an_empty_config_lists_everything_missing_at_once() {
        let err = resolve(&ServeArgs::default(), ServerConfigFile::default(), no_env, no_files).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("invalid configuration (3 problems)"), "{msg}");
        assert!(msg.contains("tenant is missing"), "{msg}");
        assert!(msg.contains("database url is missing"), "{msg}");
        assert!(msg.contains("auth.issuer is missing"), "{msg}");
    }

    #[test]
    fn flags_override_the_file_and_bad_values_are_named() {
        let file: ServerConfigFile = serde_saphyr::from_str(
            "tenant: seattle\ndatabase:\n  url: postgres://mcpt_seattle_login@db/zava\n  statementTimeout: 2s\nauth:\n  mode: none\n",
        )
        .unwrap();
        let args = ServeArgs {
            tenant: Some("eastside".into()),
            row_cap: Some(20),
            per_subject_requests_per_minute: Some(30),
            ..Default::default()
        };
        let cfg = resolve(&args, file.clone(), no_env, no_files).unwrap();
        assert_eq!(cfg.tenant.as_ref().unwrap().as_str(), "eastside");
        assert_eq!(cfg.row_cap, 20);
        assert_eq!((cfg.per_subject.requests_per_minute, cfg.per_subject.max_concurrent), (30, 4));
        assert_eq!(cfg.database.statement_timeout, Duration::from_secs(2));

        let bad = ServeArgs {
            listen: Some("nowhere".into()),
            statement_timeout: Some("forever".into()),
            row_cap: Some(0),
            max_result_bytes: Some(10),
            max_estimated_cost: Some(0.5),
            per_subject_max_concurrent: Some(0),
            database_password_file: Some("/no/such/file".into()),
            ..Default::default()
        };
        let msg = resolve(&bad, file, no_env, no_files).unwrap_err().to_string();
        for needle in [
            "listen address \"nowhere\"",
            "\"forever\" is not a duration",
            "rowCap must be between",
            "tools.maxResultBytes must be between 4096 and 67108864, got 10",
            "tools.maxEstimatedCost must be between 1 and 1000000000000 (PostgreSQL planner cost units), got 0.5",
            "limits.perSubject.maxConcurrent must be between 1 and 1000, got 0",
            "/no/such/file",
        ] {
            assert!(msg.contains(needle), "{needle:?} missing in {msg}");
        }
    }

    #[test]
    fn auth_none_is_refused_in_production_and_passwords_never_show() {
        let file: ServerConfigFile = serde_saphyr::from_str(
            "tenant: seattle\ndatabase:\n  url: postgres://u:hunter2@db/zava\nauth:\n  mode: none\n  production: true\n",
        )
        .unwrap();
        let msg = resolve(&ServeArgs::default(), file, no_env, no_files).unwrap_err().to_string();
        assert!(msg.contains("refused because this configuration is marked production"), "{msg}");

        let file: ServerConfigFile = serde_saphyr::from_str(
            "tenant: seattle\ndatabase:\n  url: postgres://u@db/zava\nauth:\n  mode: none\n",
        )
        .unwrap();
        let cfg = resolve(
            &ServeArgs::default(),
            file,
            |k| (k == "MCP_FLEET_DATABASE_PASSWORD").then(|| "hunter2".into()),
            no_files,
        )
        .unwrap();
        assert_eq!(cfg.database.password.as_deref(), Some("hunter2"));
        assert!(!format!("{cfg:?}").contains("hunter2"));
    }
}
