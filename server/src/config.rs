//! `serve` configuration: a YAML file (the operator renders it; see
//! `mcp_fleet_core::server_config`), overridden by environment variables and flags, then
//! validated into one [`ServerConfig`]. Every problem is reported at once, in one message. Reads
//! files (the config and the password file), no other I/O.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mcp_fleet_core::TenantName;
use mcp_fleet_core::server_config::{
    AuthMode, AuthSection, EmbeddingProvider, EmbeddingsSection, ServerConfigFile, TenancyMode,
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
    /// Per-query timeout, e.g. 5s [default: 5s].
    #[arg(long, env = "MCP_FLEET_STATEMENT_TIMEOUT")]
    pub statement_timeout: Option<String>,
    /// Largest database pool [default: 10].
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
    /// Whole-request timeout, e.g. 30s [default: 30s].
    #[arg(long, env = "MCP_FLEET_REQUEST_TIMEOUT")]
    pub request_timeout: Option<String>,
    /// `json` or `text` [default: json].
    #[arg(long, env = "MCP_FLEET_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Log filter, e.g. `info` or `info,mcp_fleet_server=debug` [default: info].
    #[arg(long, env = "MCP_FLEET_LOG")]
    pub log_level: Option<String>,
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

/// The validated configuration the server runs with.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub transport: Transport,
    pub listen: SocketAddr,
    pub tenant: Option<TenantName>,
    pub public_url: Option<String>,
    pub allowed_hosts: Vec<String>,
    pub database: DatabaseConfig,
    pub row_cap: u32,
    pub enabled_tools: Vec<String>,
    pub embeddings: EmbeddingsSection,
    pub auth: AuthSection,
    pub auth_mode: AuthMode,
    pub max_concurrent_requests: u32,
    pub request_timeout: Duration,
    pub max_body_bytes: u64,
    pub log_format: LogFormat,
    pub log_level: String,
    pub otlp_endpoint: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Database settings. `Debug` never shows the password.
#[derive(Clone)]
pub struct DatabaseConfig {
    pub url: String,
    pub password: Option<String>,
    pub mode: TenancyMode,
    pub min_connections: u32,
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_lifetime: Duration,
    pub statement_timeout: Duration,
    pub application_name: String,
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseConfig")
            .field("url", &mcp_fleet_core::redact::redact_url(&self.url))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("mode", &self.mode)
            .field("max_connections", &self.max_connections)
            .field("statement_timeout", &self.statement_timeout)
            .finish_non_exhaustive()
    }
}

/// Everything wrong with a configuration, reported together.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration ({} problem{}):\n{}", .0.len(), if .0.len() == 1 { "" } else { "s" }, .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigErrors(pub Vec<String>);

/// Reads the config file named by `args` (if any) and merges flags and env over it.
pub fn load(args: &ServeArgs) -> Result<ServerConfig, ConfigErrors> {
    let file = match &args.config {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(text) => serde_saphyr::from_str::<ServerConfigFile>(&text)
                .map_err(|e| ConfigErrors(vec![format!("config file {}: {e}", path.display())]))?,
            Err(e) => {
                return Err(ConfigErrors(vec![format!("cannot read config file {}: {e}", path.display())]));
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
    let mut problems = Vec::new();
    let db = &file.database;

    let listen_text = args.listen.clone().or(file.listen.clone()).unwrap_or_else(|| "127.0.0.1:8080".into());
    let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
        problems.push(format!("listen address {listen_text:?} is not host:port, e.g. 0.0.0.0:8080"));
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });

    let tenant = match args.tenant.clone().or(file.tenant.clone()) {
        Some(t) => TenantName::new(t).map_err(|e| problems.push(format!("tenant: {e}"))).ok(),
        None => None,
    };

    let mode = args.tenancy_mode.or(db.mode).unwrap_or(TenancyMode::Dedicated);
    if mode == TenancyMode::Dedicated && tenant.is_none() {
        problems.push(
            "tenant is missing: dedicated mode serves one tenant (set `tenant:` in the config file, --tenant or MCP_FLEET_TENANT)".into(),
        );
    }

    let url = args.database_url.clone().or(db.url.clone());
    let url = match url {
        Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => u,
        Some(u) => {
            problems.push(format!(
                "database url {} must start with postgres:// or postgresql://",
                mcp_fleet_core::redact::redact_url(&u)
            ));
            String::new()
        }
        None => {
            problems.push("database url is missing: set `database.url` in the config file, --database-url or MCP_FLEET_DATABASE_URL".into());
            String::new()
        }
    };
    let password_file = args.database_password_file.clone().or(db.password_file.clone());
    let password = match password_file {
        Some(path) => match read(&path) {
            Ok(p) => Some(p.trim_end_matches(['\n', '\r']).to_owned()),
            Err(e) => {
                problems.push(format!("cannot read the database password file {}: {e}", path.display()));
                None
            }
        },
        None => env("MCP_FLEET_DATABASE_PASSWORD"),
    };

    let statement_timeout = duration(
        &mut problems,
        "database.statementTimeout",
        args.statement_timeout.as_ref().or(db.statement_timeout.as_ref()),
        "5s",
    );
    let acquire_timeout =
        duration(&mut problems, "database.acquireTimeout", db.acquire_timeout.as_ref(), "5s");
    let idle_timeout = duration(&mut problems, "database.idleTimeout", db.idle_timeout.as_ref(), "10m");
    let max_lifetime = duration(&mut problems, "database.maxLifetime", db.max_lifetime.as_ref(), "30m");
    let request_timeout = duration(
        &mut problems,
        "limits.requestTimeout",
        args.request_timeout.as_ref().or(file.limits.request_timeout.as_ref()),
        "30s",
    );
    if statement_timeout > Duration::from_secs(600) {
        problems.push("database.statementTimeout must be at most 10m".into());
    }

    let max_connections = args.db_max_connections.or(db.max_connections).unwrap_or(10);
    let min_connections = db.min_connections.unwrap_or(0);
    if !(1..=500).contains(&max_connections) {
        problems.push(format!("database.maxConnections must be between 1 and 500, got {max_connections}"));
    }
    if min_connections > max_connections {
        problems.push(format!(
            "database.minConnections ({min_connections}) is larger than maxConnections ({max_connections})"
        ));
    }

    let row_cap = args.row_cap.or(file.tools.row_cap).unwrap_or(500);
    if !(1..=100_000).contains(&row_cap) {
        problems.push(format!("tools.rowCap must be between 1 and 100000, got {row_cap}"));
    }
    for tool in &file.tools.enabled {
        if !crate::mcp::TOOL_NAMES.contains(&tool.as_str()) {
            problems.push(format!(
                "tools.enabled names unknown tool {tool:?}; known tools: {}",
                crate::mcp::TOOL_NAMES.join(", ")
            ));
        }
    }

    let mut embeddings = file.embeddings.clone();
    if let Some(p) = args.embeddings {
        embeddings.provider = Some(p);
    }
    if let Some(dir) = &args.model_dir {
        embeddings.model_dir = Some(dir.clone());
    }
    if embeddings.provider == Some(EmbeddingProvider::Openai) && embeddings.openai.is_none() {
        problems.push("embeddings.provider is openai but embeddings.openai.endpoint is not set".into());
    }

    let auth_mode = args.auth.or(file.auth.mode).unwrap_or(AuthMode::Oidc);
    if auth_mode == AuthMode::None && file.auth.production {
        problems.push(
            "auth mode `none` is refused because this configuration is marked production (auth.production: true)".into(),
        );
    }
    let public_url = args.public_url.clone().or(file.public_url.clone());
    if auth_mode == AuthMode::Oidc {
        if file.auth.issuer.is_none() {
            problems.push(
                "auth.issuer is missing: set the token issuer, or run with --auth none for local development"
                    .into(),
            );
        } else if let Err(p) = crate::auth::oidc::Oidc::from_config(
            &file.auth,
            tenant.as_ref().filter(|_| mode == TenancyMode::Dedicated),
            public_url.as_deref(),
            Default::default(),
        ) {
            problems.extend(p);
        }
    }

    let max_concurrent_requests =
        args.max_concurrent_requests.or(file.limits.max_concurrent_requests).unwrap_or(64);
    if !(1..=10_000).contains(&max_concurrent_requests) {
        problems.push(format!(
            "limits.maxConcurrentRequests must be between 1 and 10000, got {max_concurrent_requests}"
        ));
    }
    let max_body_bytes = file.limits.max_body_bytes.unwrap_or(1 << 20);
    if !(1024..=64 << 20).contains(&max_body_bytes) {
        problems.push(format!("limits.maxBodyBytes must be between 1024 and 67108864, got {max_body_bytes}"));
    }

    let log_format = match args.log_format.as_deref().or(file.logging.format.as_deref()).unwrap_or("json") {
        "json" => LogFormat::Json,
        "text" => LogFormat::Text,
        other => {
            problems.push(format!("logging.format {other:?} must be `json` or `text`"));
            LogFormat::Json
        }
    };
    let log_level = args.log_level.clone().or(file.logging.level.clone()).unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        problems.push(format!("logging.level {log_level:?} is not a valid filter such as `info` or `warn,mcp_fleet_server=debug`"));
    }

    let mut allowed_hosts = file.allowed_hosts.clone();
    allowed_hosts.extend(args.allowed_hosts.iter().filter(|h| !h.is_empty()).cloned());
    if let Some(u) = &public_url
        && !(u.starts_with("https://") || u.starts_with("http://"))
    {
        problems.push(format!("publicUrl {u:?} must be an http(s) URL"));
    }

    if !problems.is_empty() {
        return Err(ConfigErrors(problems));
    }
    Ok(ServerConfig {
        transport: args.transport,
        listen,
        tenant,
        public_url,
        allowed_hosts,
        database: DatabaseConfig {
            url,
            password,
            mode,
            min_connections,
            max_connections,
            acquire_timeout,
            idle_timeout,
            max_lifetime,
            statement_timeout,
            application_name: db.application_name.clone().unwrap_or_else(|| "mcp-fleet-server".into()),
        },
        row_cap,
        enabled_tools: file.tools.enabled.clone(),
        embeddings,
        auth: file.auth.clone(),
        auth_mode,
        max_concurrent_requests,
        request_timeout,
        max_body_bytes,
        log_format,
        log_level,
        otlp_endpoint: file.logging.otlp_endpoint.clone(),
    })
}

fn duration(problems: &mut Vec<String>, what: &str, value: Option<&String>, default: &str) -> Duration {
    let text = value.map(String::as_str).unwrap_or(default);
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => d,
        _ => {
            problems.push(format!("{what} {text:?} is not a duration such as 5s, 500ms or 2m"));
            humantime::parse_duration(default).unwrap_or(Duration::from_secs(5))
        }
    }
}

#[cfg(test)]
mod tests {
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
        let args = ServeArgs { tenant: Some("eastside".into()), row_cap: Some(20), ..Default::default() };
        let cfg = resolve(&args, file.clone(), no_env, no_files).unwrap();
        assert_eq!(cfg.tenant.unwrap().as_str(), "eastside");
        assert_eq!(cfg.row_cap, 20);
        assert_eq!(cfg.database.statement_timeout, Duration::from_secs(2));

        let bad = ServeArgs {
            listen: Some("nowhere".into()),
            statement_timeout: Some("forever".into()),
            row_cap: Some(0),
            database_password_file: Some("/no/such/file".into()),
            ..Default::default()
        };
        let msg = resolve(&bad, file, no_env, no_files).unwrap_err().to_string();
        for needle in [
            "listen address \"nowhere\"",
            "\"forever\" is not a duration",
            "rowCap must be between",
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
