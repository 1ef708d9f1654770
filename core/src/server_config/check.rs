//! Checking a server configuration file: every problem the server would refuse it for, at once,
//! and otherwise the settings with defaults applied. The server runs this at start-up (after
//! merging its flags and environment into the file); the operator runs it on the file it renders
//! for an McpTenant, so a spec the server would refuse stalls instead of crash-looping. Pure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{
    AuthMode, AuthSection, DEFAULT_MAX_RESULT_BYTES, DEFAULT_PER_SUBJECT_MAX_CONCURRENT,
    DEFAULT_PER_SUBJECT_REQUESTS_PER_MINUTE, EmbeddingProvider, EmbeddingsSection, MAX_ESTIMATED_COST_RANGE,
    MAX_RESULT_BYTES_RANGE, PerSubjectSection, ServerConfigFile, TenancyMode,
};
use crate::TenantName;
use crate::tools::{self, ToolName};

/// One reason the server refuses a configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Problem {
    /// What to change, in words that name the setting.
    pub message: String,
    /// For a required setting that was left out: which (`auth.issuer`).
    pub missing: Option<&'static str>,
}

impl Problem {
    /// A required `setting` that was left out.
    pub fn missing(setting: &'static str, message: impl Into<String>) -> Self {
        Self { message: message.into(), missing: Some(setting) }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for Problem {
    fn from(message: String) -> Self {
        Self { message, missing: None }
    }
}

impl From<&str> for Problem {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

/// So that a list of problems joins like a list of strings.
impl std::borrow::Borrow<str> for Problem {
    fn borrow(&self) -> &str {
        &self.message
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// A configuration file that passed every check, with defaults applied: what `serve` runs with,
/// apart from the transport and the database password, which the server reads itself.
#[derive(Clone, Debug)]
pub struct CheckedConfig {
    pub listen: SocketAddr,
    pub tenant: Option<TenantName>,
    pub public_url: Option<String>,
    pub allowed_hosts: Vec<String>,
    pub database: CheckedDatabase,
    pub row_cap: u32,
    /// Most bytes of rows one tool result holds.
    pub max_result_bytes: u64,
    /// Largest estimated cost of a query `execute_sales_query` runs; `None`: no limit.
    pub max_estimated_cost: Option<f64>,
    /// Tool names to offer (all known); empty means all.
    pub enabled_tools: Vec<String>,
    pub embeddings: EmbeddingsSection,
    pub auth: AuthSection,
    pub auth_mode: AuthMode,
    pub max_concurrent_requests: u32,
    pub request_timeout: Duration,
    /// Serving with readiness down after SIGTERM, before the drain (`limits.shutdownDelay`).
    pub shutdown_delay: Duration,
    pub max_body_bytes: u64,
    /// Each caller's limits (`limits.perSubject`).
    pub per_subject: PerSubjectLimits,
    pub log_format: LogFormat,
    pub log_level: String,
    pub otlp_endpoint: Option<String>,
}

/// Each caller's share of the server, with defaults applied (`limits.perSubject`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PerSubjectLimits {
    /// Tool calls one caller may have running at once.
    pub max_concurrent: u32,
    /// Tool calls one caller may start per minute, on average.
    pub requests_per_minute: u32,
    /// Tool calls one caller may start at once after a quiet spell.
    pub burst: u32,
}

impl PerSubjectSection {
    /// The limits with defaults applied, or what is wrong with them.
    fn check(&self, problems: &mut Vec<Problem>) -> PerSubjectLimits {
        let mut bounded = |name: &str, value: Option<u32>, default: u32, max: u32| {
            let v = value.unwrap_or(default);
            if !(1..=max).contains(&v) {
                problems
                    .push(format!("limits.perSubject.{name} must be between 1 and {max}, got {v}").into());
            }
            v
        };
        let max_concurrent =
            bounded("maxConcurrent", self.max_concurrent, DEFAULT_PER_SUBJECT_MAX_CONCURRENT, 1000);
        let requests_per_minute = bounded(
            "requestsPerMinute",
            self.requests_per_minute,
            DEFAULT_PER_SUBJECT_REQUESTS_PER_MINUTE,
            1_000_000,
        );
        let burst = bounded("burst", self.burst, requests_per_minute.max(1), 1_000_000);
        PerSubjectLimits { max_concurrent, requests_per_minute, burst }
    }
}

/// The database settings of a [`CheckedConfig`]. `Debug` shows neither the password nor the
/// password inside a URL.
#[derive(Clone)]
pub struct CheckedDatabase {
    pub url: String,
    pub password_file: Option<PathBuf>,
    /// The password, which the server reads from `password_file` (or its environment); the
    /// check leaves it empty, since it reads no files.
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

impl std::fmt::Debug for CheckedDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckedDatabase")
            .field("url", &crate::redact::redact_url(&self.url))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("mode", &self.mode)
            .field("max_connections", &self.max_connections)
            .field("statement_timeout", &self.statement_timeout)
            .finish_non_exhaustive()
    }
}

impl ServerConfigFile {
    /// Every problem the server would refuse this file for; empty when it would start.
    pub fn validate(&self) -> Vec<Problem> {
        self.check().err().unwrap_or_default()
    }

    /// The settings with defaults applied, or every problem at once.
    pub fn check(&self) -> Result<CheckedConfig, Vec<Problem>> {
        let mut problems: Vec<Problem> = Vec::new();
        let db = &self.database;

        let listen_text = self.listen.clone().unwrap_or_else(|| "127.0.0.1:8080".into());
        let listen = listen_text.parse::<SocketAddr>().unwrap_or_else(|_| {
            problems
                .push(format!("listen address {listen_text:?} is not host:port, e.g. 0.0.0.0:8080").into());
            SocketAddr::from(([127, 0, 0, 1], 8080))
        });

        let tenant = match self.tenant.clone() {
            Some(t) => TenantName::new(t).map_err(|e| problems.push(format!("tenant: {e}").into())).ok(),
            None => None,
        };

        let mode = db.mode.unwrap_or(TenancyMode::Dedicated);
        if mode == TenancyMode::Dedicated && tenant.is_none() {
            problems.push(Problem::missing(
                "tenant",
                "tenant is missing: dedicated mode serves one tenant (set `tenant:` in the config file, --tenant or MCP_FLEET_TENANT)",
            ));
        }

        let url = match db.url.clone() {
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => u,
            Some(u) => {
                problems.push(
                    format!(
                        "database url {} must start with postgres:// or postgresql://",
                        crate::redact::redact_url(&u)
                    )
                    .into(),
                );
                String::new()
            }
            None => {
                problems.push(Problem::missing(
                    "database.url",
                    "database url is missing: set `database.url` in the config file, --database-url or MCP_FLEET_DATABASE_URL",
                ));
                String::new()
            }
        };

        let statement_timeout =
            duration(&mut problems, "database.statementTimeout", db.statement_timeout.as_ref(), "5s");
        let acquire_timeout =
            duration(&mut problems, "database.acquireTimeout", db.acquire_timeout.as_ref(), "5s");
        let idle_timeout = duration(&mut problems, "database.idleTimeout", db.idle_timeout.as_ref(), "10m");
        let max_lifetime = duration(&mut problems, "database.maxLifetime", db.max_lifetime.as_ref(), "30m");
        let request_timeout =
            duration(&mut problems, "limits.requestTimeout", self.limits.request_timeout.as_ref(), "30s");
        let shutdown_delay = match self.limits.shutdown_delay.as_deref().map(humantime::parse_duration) {
            None => Duration::ZERO,
            Some(Ok(d)) if d <= MAX_SHUTDOWN_DELAY => d,
            Some(_) => {
                problems.push(
                    format!(
                        "limits.shutdownDelay {:?} is not a duration between 0s and 60s, such as 5s",
                        self.limits.shutdown_delay.as_deref().unwrap_or_default()
                    )
                    .into(),
                );
                Duration::ZERO
            }
        };
        if statement_timeout > Duration::from_secs(600) {
            problems.push("database.statementTimeout must be at most 10m".into());
        }

        let max_connections = db.max_connections.unwrap_or(10);
        let min_connections = db.min_connections.unwrap_or(0);
        if !(1..=500).contains(&max_connections) {
            problems.push(
                format!("database.maxConnections must be between 1 and 500, got {max_connections}").into(),
            );
        }
        if min_connections > max_connections {
            problems.push(
                format!(
                    "database.minConnections ({min_connections}) is larger than maxConnections ({max_connections})"
                )
                .into(),
            );
        }

        let row_cap = self.tools.row_cap.unwrap_or(500);
        if !(1..=100_000).contains(&row_cap) {
            problems.push(format!("tools.rowCap must be between 1 and 100000, got {row_cap}").into());
        }
        let max_result_bytes = self.tools.max_result_bytes.unwrap_or(DEFAULT_MAX_RESULT_BYTES);
        if !MAX_RESULT_BYTES_RANGE.contains(&max_result_bytes) {
            problems.push(
                format!(
                    "tools.maxResultBytes must be between {} and {}, got {max_result_bytes}",
                    MAX_RESULT_BYTES_RANGE.start(),
                    MAX_RESULT_BYTES_RANGE.end()
                )
                .into(),
            );
        }
        let max_estimated_cost = self.tools.max_estimated_cost;
        if let Some(cost) = max_estimated_cost
            && !MAX_ESTIMATED_COST_RANGE.contains(&cost)
        {
            problems.push(
                format!(
                    "tools.maxEstimatedCost must be between {} and {} (PostgreSQL planner cost units), got {cost}",
                    MAX_ESTIMATED_COST_RANGE.start(),
                    MAX_ESTIMATED_COST_RANGE.end()
                )
                .into(),
            );
        }
        for tool in &self.tools.enabled {
            if ToolName::parse(tool).is_none() {
                problems.push(
                    format!(
                        "tools.enabled names unknown tool {tool:?}; known tools: {}",
                        tools::names().collect::<Vec<_>>().join(", ")
                    )
                    .into(),
                );
            }
        }

        let embeddings = self.embeddings.clone();
        if embeddings.provider == Some(EmbeddingProvider::Openai) && embeddings.openai.is_none() {
            problems.push("embeddings.provider is openai but embeddings.openai.endpoint is not set".into());
        }

        let auth_mode = self.auth.mode.unwrap_or(AuthMode::Oidc);
        if auth_mode == AuthMode::None && self.auth.production {
            problems.push(
                "auth mode `none` is refused because this configuration is marked production (auth.production: true)".into(),
            );
        }
        if auth_mode == AuthMode::Oidc {
            if self.auth.issuer.is_none() {
                problems.push(Problem::missing(
                    "auth.issuer",
                    "auth.issuer is missing: set the token issuer, or run with --auth none for local development",
                ));
            } else if let Err(p) = self.auth.check_oidc(self.public_url.as_deref()) {
                problems.extend(p);
            }
        }

        let max_concurrent_requests = self.limits.max_concurrent_requests.unwrap_or(64);
        if !(1..=10_000).contains(&max_concurrent_requests) {
            problems.push(
                format!(
                    "limits.maxConcurrentRequests must be between 1 and 10000, got {max_concurrent_requests}"
                )
                .into(),
            );
        }
        let max_body_bytes = self.limits.max_body_bytes.unwrap_or(1 << 20);
        if !(1024..=64 << 20).contains(&max_body_bytes) {
            problems.push(
                format!("limits.maxBodyBytes must be between 1024 and 67108864, got {max_body_bytes}").into(),
            );
        }

        let per_subject = self.limits.per_subject.check(&mut problems);

        let log_format = match self.logging.format.as_deref().unwrap_or("json") {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => {
                problems.push(format!("logging.format {other:?} must be `json` or `text`").into());
                LogFormat::Json
            }
        };
        let log_level = self.logging.level.clone().unwrap_or_else(|| "info".into());
        if let Err(err) = crate::log_filter::parse(&log_level) {
            problems.push(format!("logging.level {err}").into());
        }

        if let Some(u) = &self.logging.otlp_endpoint
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            problems.push(
                format!("logging.otlpEndpoint {u:?} must be an http:// or https:// URL (OTLP/HTTP)").into(),
            );
        }
        if let Some(u) = &self.public_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            problems.push(format!("publicUrl {u:?} must be an http(s) URL").into());
        }

        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(CheckedConfig {
            listen,
            tenant,
            public_url: self.public_url.clone(),
            allowed_hosts: self.allowed_hosts.clone(),
            database: CheckedDatabase {
                url,
                password_file: db.password_file.clone(),
                password: None,
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
            max_result_bytes,
            max_estimated_cost,
            enabled_tools: self.tools.enabled.clone(),
            embeddings,
            auth: self.auth.clone(),
            auth_mode,
            max_concurrent_requests,
            request_timeout,
            shutdown_delay,
            max_body_bytes,
            per_subject,
            log_format,
            log_level,
            otlp_endpoint: self.logging.otlp_endpoint.clone(),
        })
    }
}

/// A positive duration such as `5s`, or the default (and a problem) when it is not one.
/// The longest `limits.shutdownDelay`: the pod's grace period must also hold the drain.
const MAX_SHUTDOWN_DELAY: Duration = Duration::from_secs(60);

fn duration(problems: &mut Vec<Problem>, what: &str, value: Option<&String>, default: &str) -> Duration {
    let text = value.map(String::as_str).unwrap_or(default);
    match humantime::parse_duration(text) {
        Ok(d) if !d.is_zero() => d,
        _ => {
            problems.push(format!("{what} {text:?} is not a duration such as 5s, 500ms or 2m").into());
            humantime::parse_duration(default).unwrap_or(Duration::from_secs(5))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> ServerConfigFile {
        serde_saphyr::from_str(
            "tenant: seattle\npublicUrl: https://seattle.example.com/mcp\ndatabase:\n  url: postgres://mcpt_seattle_login@db/zava\nauth:\n  issuer: https://login.example.com/realms/retail\n",
        )
        .unwrap()
    }

    #[test]
    fn a_valid_file_has_no_problems_and_gets_defaults() {
        let file = valid();
        assert_eq!(file.validate(), Vec::<Problem>::new());
        let checked = file.check().unwrap();
        assert_eq!(checked.row_cap, 500);
        assert_eq!(checked.max_result_bytes, 1 << 20);
        assert_eq!(checked.max_estimated_cost, None, "no cost limit unless asked for");
        assert_eq!(checked.database.statement_timeout, Duration::from_secs(5));
        assert_eq!(checked.auth_mode, AuthMode::Oidc);
        assert_eq!(
            checked.per_subject,
            PerSubjectLimits { max_concurrent: 4, requests_per_minute: 120, burst: 120 }
        );
        assert_eq!(checked.shutdown_delay, Duration::ZERO, "a host process stops at once");
    }

    #[test]
    fn the_shutdown_delay_is_a_duration_up_to_a_minute() {
        let mut file = valid();
        file.limits.shutdown_delay = Some("5s".into());
        assert_eq!(file.check().unwrap().shutdown_delay, Duration::from_secs(5));
        file.limits.shutdown_delay = Some("0s".into());
        assert_eq!(file.check().unwrap().shutdown_delay, Duration::ZERO);
        for bad in ["2m", "soon", "-1s"] {
            file.limits.shutdown_delay = Some(bad.into());
            let problems = file.validate().join("\n");
            assert!(
                problems.contains(&format!(
                    "limits.shutdownDelay \"{bad}\" is not a duration between 0s and 60s"
                )),
                "{problems}"
            );
        }
    }

    #[test]
    fn per_subject_limits_are_bounded_and_the_burst_follows_a_small_rate() {
        let mut file = valid();
        file.limits.per_subject.requests_per_minute = Some(6);
        assert_eq!(
            file.check().unwrap().per_subject.burst,
            6,
            "a burst never exceeds a small rate by default"
        );
        file.limits.per_subject = PerSubjectSection {
            max_concurrent: Some(0),
            requests_per_minute: Some(10_000_000),
            burst: Some(0),
        };
        let problems = file.validate().join("\n");
        for needle in [
            "limits.perSubject.maxConcurrent must be between 1 and 1000, got 0",
            "limits.perSubject.requestsPerMinute must be between 1 and 1000000, got 10000000",
            "limits.perSubject.burst must be between 1 and 1000000, got 0",
        ] {
            assert!(problems.contains(needle), "{needle:?} missing in {problems}");
        }
    }

    #[test]
    fn unknown_tools_and_bad_roles_are_named() {
        let mut file = valid();
        file.tools.enabled = vec!["execute_sales_query".into(), "drop_tables".into()];
        file.auth.roles.insert(
            "a".into(),
            super::super::RoleSection { inherits: vec!["a".into()], ..Default::default() },
        );
        let problems = file.validate().join("\n");
        assert!(problems.contains("tools.enabled names unknown tool \"drop_tables\""), "{problems}");
        assert!(problems.contains("auth.roles inherit in a cycle: a -> a"), "{problems}");
    }

    #[test]
    fn an_http_issuer_off_loopback_is_refused() {
        let mut file = valid();
        file.auth.issuer = Some("http://idp.example.com".into());
        assert!(file.validate().join("\n").contains("must be an https:// URL"));
        file.auth.issuer = Some("http://127.0.0.1:8400".into());
        assert_eq!(file.validate(), Vec::<Problem>::new());
    }

    #[test]
    fn an_otlp_endpoint_is_an_http_url() {
        let mut file = valid();
        file.logging.otlp_endpoint = Some("otel-collector:4317".into());
        assert!(file.validate().join("\n").contains("logging.otlpEndpoint"));
        file.logging.otlp_endpoint = Some("http://otel-collector:4318".into());
        assert_eq!(file.validate(), Vec::<Problem>::new());
    }
}
