//! The server's configuration file (YAML): the contract between the operator, which renders it
//! into a tenant's ConfigMap, and the server, which reads it at start-up. Every field is optional
//! here; the server applies defaults, environment variables and flags, then validates the result
//! (`mcp-fleet-server serve --help` lists them). Secrets never live in this file: the database
//! password and API keys come from files or environment variables it names. Pure data; the
//! submodules check it (`ServerConfigFile::validate`), so the operator refuses what the server
//! would.

mod check;
mod oidc;
mod roles;

use std::collections::BTreeMap;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use check::{CheckedConfig, CheckedDatabase, LogFormat, PerSubjectLimits, Problem};
pub use oidc::{
    CheckedOidc, DEFAULT_ALGORITHMS, PUBLIC_KEY_ALGORITHMS, is_loopback_http, public_key_algorithm,
};
pub use roles::{FlatRole, builtin_roles};

/// The whole file. Unknown keys are errors, so a typo is reported instead of ignored.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerConfigFile {
    /// The tenant this server serves (dedicated mode) — must match the tenant claim of tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Address to listen on for HTTP, e.g. `0.0.0.0:8080`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// The public URL of the MCP endpoint (the OAuth resource identifier), e.g.
    /// `https://seattle.mcp.example.com/mcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// `Host` header values accepted besides localhost (Service DNS names, ingress host).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub database: DatabaseSection,
    #[serde(default, skip_serializing_if = "is_default")]
    pub tools: ToolsSection,
    #[serde(default, skip_serializing_if = "is_default")]
    pub embeddings: EmbeddingsSection,
    #[serde(default, skip_serializing_if = "is_default")]
    pub auth: AuthSection,
    #[serde(default, skip_serializing_if = "is_default")]
    pub limits: LimitsSection,
    #[serde(default, skip_serializing_if = "is_default")]
    pub logging: LoggingSection,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// How the server reaches PostgreSQL and as whom.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DatabaseSection {
    /// PostgreSQL URL without the password, e.g. `postgres://mcpt_seattle_login@db:5432/zava`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// A file holding the password (a mounted Secret); else `MCP_FLEET_DATABASE_PASSWORD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<PathBuf>,
    /// `dedicated` (log in as the tenant's own role; the default) or `shared` (one pool,
    /// `SET LOCAL ROLE` to the caller's tenant per request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<TenancyMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_connections: Option<u32>,
    /// Most connections (default 10), one of them the audit trail's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connections: Option<u32>,
    /// e.g. `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acquire_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime: Option<String>,
    /// Per-query timeout applied with `SET LOCAL statement_timeout`, e.g. `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application_name: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TenancyMode {
    Dedicated,
    Shared,
}

/// Which tools are offered and their limits.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolsSection {
    /// Tool names to offer; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "crate::tools::ToolList")]
    pub enabled: Vec<String>,
    /// Most rows a query tool returns; the result says when it truncated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_cap: Option<u32>,
    /// Most bytes of rows one tool result holds (default 1 MiB, which suits a model's context):
    /// long values are cut in PostgreSQL and rows stop at the budget; the result says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_result_bytes: Option<u64>,
    /// Largest estimated cost (PostgreSQL's planner units) of a query `execute_sales_query` runs:
    /// each query is planned first, and one estimated above this is refused unrun, with a message
    /// that states the estimate and the limit. Unset: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_estimated_cost: Option<f64>,
}

/// Bounds of `tools.maxEstimatedCost`.
pub const MAX_ESTIMATED_COST_RANGE: std::ops::RangeInclusive<f64> = 1.0..=1e12;

/// Default of `tools.maxResultBytes`.
pub const DEFAULT_MAX_RESULT_BYTES: u64 = 1 << 20;
/// Bounds of `tools.maxResultBytes`.
pub const MAX_RESULT_BYTES_RANGE: std::ops::RangeInclusive<u64> = 4096..=64 << 20;

/// How product descriptions and queries become vectors.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EmbeddingsSection {
    /// `local` (all-MiniLM-L6-v2 in-process; the default) or `openai`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<EmbeddingProvider>,
    /// Directory with `model.safetensors`, `tokenizer.json` and `config.json` (local provider).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_dir: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openai: Option<OpenAiSection>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum EmbeddingProvider {
    Local,
    Openai,
}

/// Any OpenAI-compatible embeddings endpoint, Azure OpenAI included.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenAiSection {
    /// Base URL, e.g. `https://api.openai.com/v1` or
    /// `https://<resource>.openai.azure.com/openai/deployments/<deployment>`.
    pub endpoint: String,
    /// Model name (OpenAI) — Azure uses the deployment in the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// `api-version` query parameter (Azure OpenAI).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Environment variable holding the API key (default `OPENAI_API_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Requested dimensions; must be 384 to match the database column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
}

/// Who may call the server, and what each caller may do.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthSection {
    /// `oidc` (bearer JWTs; the default) or `none` (local development only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<AuthMode>,
    /// Refuse `mode: none` (set by the operator for every deployed server).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub production: bool,
    /// Token issuer (`iss`), e.g. `https://login.microsoftonline.com/<tid>/v2.0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Expected audience (`aud`); defaults to `publicUrl`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// JWKS URL; discovered from `<issuer>/.well-known/openid-configuration` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// PEM file of CA certificates trusted, besides the system's, when fetching the issuer's
    /// discovery document and keys: for an issuer whose certificate a private CA signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Accepted signing algorithms (default RS256, ES256, PS256).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub algorithms: Vec<String>,
    /// Allowed clock skew, e.g. `60s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leeway: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub claims: ClaimsSection,
    /// Roles by name. A caller's roles come from the roles claim.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, RoleSection>,
    /// Role given to an authenticated caller whose token names none of `roles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_role: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    None,
    Oidc,
}

/// Which token claims carry what. Dotted paths reach into nested objects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimsSection {
    /// Claim naming the tenant (e.g. `tenant` or Entra ID's `tid` mapped via `tenantValues`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Claim values accepted as this server's tenant; default: the tenant name itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenant_values: Vec<String>,
    /// Claim naming the caller (default `sub`; Entra ID: `oid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Claim listing the caller's roles (default `roles`; may also be `groups` or `scp`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<String>,
    /// Optional claim listing store ids the caller is limited to (narrows, never widens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_scope: Option<String>,
}

/// What a role may do; a role inherits everything its parents may do.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleSection {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inherits: Vec<String>,
    /// Tools this role may call (`*` for all).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "crate::tools::RoleToolList")]
    pub tools: Vec<String>,
    /// Whether customer PII (email, phone) is shown unmasked.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pii: bool,
    /// Row cap for this role (the smallest of the server's and the role's applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub row_cap: Option<u32>,
}

/// Overload protection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsSection {
    /// Requests served at once; more are refused with 503 instead of queueing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_requests: Option<u32>,
    /// Whole-request timeout, e.g. `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_timeout: Option<String>,
    /// How long the server keeps serving after SIGTERM with `/health/ready` answering 503, before
    /// it stops accepting and drains in-flight calls, e.g. `5s` (default `0s`). In a pod this is
    /// the time the endpoints and the ingress need to stop sending it new calls; the operator
    /// sets it for its tenants. A second signal ends the wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown_delay: Option<String>,
    /// Largest accepted request body in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
    /// Fair sharing between callers: each caller's own limits on tool calls.
    #[serde(default, skip_serializing_if = "is_default")]
    pub per_subject: PerSubjectSection,
}

/// Each caller's share of the server: limits on the tool calls of one caller (a token's subject;
/// in development mode the `x-rls-user-id` header, or everyone together without it). A call over
/// a limit is refused at once with a JSON-RPC error that says when to retry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PerSubjectSection {
    /// Tool calls one caller may have running at once (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_concurrent: Option<u32>,
    /// Tool calls one caller may start per minute, on average (default 120).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000000))]
    pub requests_per_minute: Option<u32>,
    /// Tool calls one caller may start at once, after a quiet spell, before the per-minute rate
    /// applies (default: `requestsPerMinute`, so a whole minute's calls; smaller smooths them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000000))]
    pub burst: Option<u32>,
}

/// Defaults of `limits.perSubject`.
pub const DEFAULT_PER_SUBJECT_MAX_CONCURRENT: u32 = 4;
pub const DEFAULT_PER_SUBJECT_REQUESTS_PER_MINUTE: u32 = 120;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoggingSection {
    /// `json` (default) or `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// An `EnvFilter` directive, e.g. `info` or `info,mcp_fleet_server=debug`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
    /// Where traces go: an OTLP/HTTP (protobuf) collector's base URL, e.g.
    /// `http://otel-collector:4318` (`/v1/traces` is appended). No traces are exported without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
}

/// Mount path of the rendered file inside server pods.
pub const CONFIG_MOUNT_PATH: &str = "/etc/mcp-fleet/server.yaml";
/// Mount path of the database password inside server pods.
pub const DB_PASSWORD_MOUNT_PATH: &str = "/var/run/secrets/mcp-fleet/db/password";
/// Mount path of the issuer's CA bundle (`spec.auth.issuerCaRef`) inside server pods.
pub const AUTH_CA_MOUNT_PATH: &str = "/etc/mcp-fleet/auth-ca/ca.crt";
/// The port servers listen on in pods.
pub const SERVER_PORT: u16 = 8080;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_is_an_error_that_names_the_key() {
        let err = serde_saphyr::from_str::<ServerConfigFile>("tenant: a\nrowcap: 5\n").unwrap_err();
        assert!(err.to_string().contains("rowcap"), "{err}");
    }

    #[test]
    fn round_trips_through_yaml() {
        let mut cfg = ServerConfigFile { tenant: Some("seattle".into()), ..Default::default() };
        cfg.tools.row_cap = Some(500);
        cfg.auth
            .roles
            .insert("analyst".into(), RoleSection { tools: vec!["*".into()], ..Default::default() });
        let yaml = serde_saphyr::to_string(&cfg).unwrap();
        let back: ServerConfigFile = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(back, cfg);
        assert!(!yaml.contains("database"), "empty sections are left out:\n{yaml}");
    }
}
