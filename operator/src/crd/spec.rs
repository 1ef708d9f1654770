//! `McpTenant.spec`: what a platform team declares for one tenant. Defaults live here (and so in
//! the CRD schema, where the API server applies them); cross-field rules are CEL
//! `x-kubernetes-validations` with messages a user can act on.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, EnvVar, ResourceRequirements, Toleration};
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use kube::{CustomResource, KubeSchema};
use mcp_fleet_core::server_config::{
    ClaimsSection, EmbeddingProvider, OpenAiSection, PerSubjectSection, RoleSection,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::McpTenantStatus;

/// CEL for the issuer and JWKS URLs: what `mcp_fleet_core::server_config::is_loopback_http`
/// and the server accept — `https://`, or `http://` to localhost, 127.0.0.1 or [::1].
pub(crate) const HTTPS_OR_LOOPBACK_RULE: &str = r"self.startsWith('https://') || self.matches('^http://(localhost|127\\.0\\.0\\.1|\\[::1\\])(:[0-9]*)?([/?].*)?$')";

/// Tenant names: a DNS label of at most 40 characters (PostgreSQL role names derive from it).
pub const TENANT_NAME_RULE: &str = "^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$";

/// A tenant of the mcp-fleet: PostgreSQL roles that see only its stores, an MCP server
/// Deployment with everything around it, and scheduled backups.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "mcpfleet.io",
    version = "v1alpha1",
    kind = "McpTenant",
    namespaced,
    status = "McpTenantStatus",
    shortname = "mcpt",
    category = "mcpfleet",
    doc = "A tenant of the mcp-fleet: PostgreSQL roles that see only its stores, an MCP server with everything around it, and backups.",
    derive = "PartialEq",
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "Stores", type_ = "string", json_path = ".status.storeIds"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".status.endpoint"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new(
        "has(self.spec.tenant) || self.metadata.name.matches('^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$')"
    ).message(
        "metadata.name is used as the tenant name, so it must be 1-40 lowercase letters, digits or dashes starting with a letter; or set spec.tenant"
    ),
    validation = Rule::new("size(self.metadata.name) <= 45")
        .message("metadata.name must be at most 45 characters (child objects append suffixes such as -backup)"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.deletionPolicy != 'Snapshot' || has(self.backup)")
        .message("deletionPolicy Snapshot needs spec.backup (the final backup goes to its destination)"),
    validation = Rule::new("has(self.tenant) == has(oldSelf.tenant)")
        .message("tenant cannot be added or removed after creation: the database roles are named after it"),
)]
pub struct McpTenantSpec {
    /// The tenant's name in PostgreSQL (roles `mcpt_<tenant>`, and `mcpt_<tenant>_login` and
    /// `mcpt_<tenant>_login_b`, between which a password rotation alternates).
    /// Defaults to `metadata.name`. Immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 40))]
    #[x_kube(
        validation = Rule::new("self.matches('^[a-z]([a-z0-9-]{0,38}[a-z0-9])?$')")
            .message("tenant must be 1-40 lowercase letters, digits or dashes, start with a letter and not end with a dash"),
        validation = Rule::new("self == oldSelf").message("tenant is immutable: the database roles are named after it"),
    )]
    pub tenant: Option<String>,

    /// The stores this tenant owns: store ids (`"3"`) or exact store names
    /// (`"Zava Retail Seattle"`, case-insensitive). A store belongs to at most one tenant.
    #[schemars(length(max = 100), inner(length(min = 1, max = 200)))]
    #[x_kube(validation = Rule::new("size(self) > 0").message("stores must list at least one store id or name"))]
    pub stores: Vec<String>,

    /// What happens to the PostgreSQL roles when this McpTenant is deleted: `Retain` keeps them,
    /// `Delete` drops them, `Snapshot` runs a final backup Job and drops them once it succeeded.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// Stop reconciling: nothing is created, changed or deleted until this is false again.
    /// Deleting a suspended McpTenant still applies `deletionPolicy`.
    #[serde(default)]
    pub suspend: bool,

    #[serde(default)]
    pub database: DatabaseSpec,

    #[serde(default)]
    pub server: ServerSpec,

    /// Horizontal pod autoscaling (autoscaling/v2). When set, `server.replicas` is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<AutoscalingSpec>,

    #[serde(default)]
    pub auth: AuthSpec,

    #[serde(default)]
    pub tools: ToolsSpec,

    #[serde(default, skip_serializing_if = "is_default")]
    pub limits: LimitsSpec,

    #[serde(default)]
    pub service: ServiceSpec,

    /// An Ingress for the MCP endpoint; without one the endpoint is the in-cluster Service URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,

    #[serde(default)]
    pub network_policy: NetworkPolicySpec,

    /// Scheduled tenant-scoped backups (a CronJob running the server image's `backup` command).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeletionPolicy {
    #[default]
    Retain,
    Delete,
    Snapshot,
}

/// Where the tenant's roles live, and their limits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// A Secret (in this namespace) holding a PostgreSQL URL for a role that is a member of
    /// `mcpfleet_operator`. Default: the operator's own `--database-url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_secret_ref: Option<SecretKeyRef>,
    /// Database name, overriding the one in the admin URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub name: Option<String>,
    /// Most concurrent connections of the tenant's login role (all replicas together).
    #[serde(default = "default_connection_limit")]
    #[schemars(range(min = 1, max = 1000))]
    pub connection_limit: i32,
    /// `statement_timeout` of the tenant's login role, in milliseconds.
    #[serde(default = "default_statement_timeout_ms")]
    #[schemars(range(min = 100, max = 3_600_000))]
    pub statement_timeout_ms: i32,
    /// Pool size of each server replica (default 10), one connection of it the audit trail's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_connections_per_replica: Option<u32>,
}

impl Default for DatabaseSpec {
    fn default() -> Self {
        Self {
            admin_secret_ref: None,
            name: None,
            connection_limit: default_connection_limit(),
            statement_timeout_ms: default_statement_timeout_ms(),
            max_connections_per_replica: None,
        }
    }
}

fn default_connection_limit() -> i32 {
    20
}
fn default_statement_timeout_ms() -> i32 {
    5000
}

/// A key of a Secret in the McpTenant's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Default `url`.
    #[serde(default = "default_url_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_url_key() -> String {
    "url".into()
}

/// The MCP server pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerSpec {
    /// Server image; default: the operator's `--server-image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("enum" = ["Always", "IfNotPresent", "Never"]))]
    pub image_pull_policy: Option<String>,
    /// Replicas when autoscaling is off (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: Option<i32>,
    /// CPU and memory; default requests 100m / 256Mi, memory limit 1Gi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Pod security: the UID and GID the server runs as (default 65532). The pod always runs
    /// as non-root with a read-only root filesystem, no capabilities and seccomp RuntimeDefault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub run_as_user: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub fs_group: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Extra environment variables for the server container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    /// Extra pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pod_annotations: BTreeMap<String, String>,
    /// Log filter, e.g. `info` or `info,mcp_fleet_server=debug` (default `info`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 500))]
    pub log_level: Option<String>,
    /// Where the server sends traces: an OTLP/HTTP (protobuf) collector's base URL, e.g.
    /// `http://otel-collector.monitoring:4318` (`/v1/traces` is appended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_endpoint: Option<String>,
    /// Service account name; default: one created for this tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
}

/// HorizontalPodAutoscaler settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas")
    .message("autoscaling.minReplicas must not exceed maxReplicas"))]
pub struct AutoscalingSpec {
    #[serde(default = "default_min_replicas")]
    #[schemars(range(min = 1, max = 100))]
    pub min_replicas: i32,
    #[serde(default = "default_max_replicas")]
    #[schemars(range(min = 1, max = 100))]
    pub max_replicas: i32,
    /// Target average CPU utilisation, percent of requests.
    #[serde(default = "default_cpu_target")]
    #[schemars(range(min = 1, max = 100))]
    pub target_cpu_utilization_percentage: i32,
    /// Target in-flight MCP requests per pod (a Pods metric; needs a custom metrics adapter such
    /// as prometheus-adapter serving `inFlightMetricName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub target_in_flight_requests: Option<i32>,
    /// Name of the in-flight metric in the custom metrics API.
    #[serde(default = "default_in_flight_metric")]
    #[schemars(length(min = 1, max = 253))]
    pub in_flight_metric_name: String,
    /// Seconds the load must stay low before pods are removed (the HPA's
    /// `behavior.scaleDown.stabilizationWindowSeconds`). Unset: Kubernetes' default, 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub scale_down_stabilization_seconds: Option<i32>,
}

fn default_min_replicas() -> i32 {
    2
}
fn default_max_replicas() -> i32 {
    5
}
fn default_cpu_target() -> i32 {
    75
}
fn default_in_flight_metric() -> String {
    "mcpfleet_inflight_requests".into()
}

/// Who may call the server: OAuth 2.1 bearer tokens from one OIDC issuer. Rendered into the
/// server configuration (`auth`), with `production: true` always set.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Token issuer (`iss`), e.g. `https://login.microsoftonline.com/<tid>/v2.0`; `http://` only
    /// on loopback (local development), as the server accepts it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(HTTPS_OR_LOOPBACK_RULE)
        .message("auth.issuer must be an https:// URL (http:// only for localhost)"))]
    #[schemars(length(max = 2048))]
    pub issuer: Option<String>,
    /// Expected audiences (`aud`); default: the public URL of the endpoint.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audiences: Vec<String>,
    /// JWKS URL; discovered from the issuer when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(HTTPS_OR_LOOPBACK_RULE)
        .message("auth.jwksUri must be an https:// URL (http:// only for localhost)"))]
    pub jwks_uri: Option<String>,
    /// A ConfigMap key holding the PEM CA bundle that signed the issuer's HTTPS certificate, for
    /// an issuer on a private CA; trusted besides the system's CAs. Pods read it at start-up:
    /// roll them (`kubectl rollout restart`) after changing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_ca_ref: Option<ConfigMapKeyRef>,
    /// Which token claims carry the tenant, the caller, roles and an optional store scope.
    #[serde(default, skip_serializing_if = "is_default")]
    pub claims: ClaimsSection,
    /// Roles by name, with the tools each may call.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub roles: BTreeMap<String, RoleSection>,
    /// Role of an authenticated caller whose token names none of `roles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_role: Option<String>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Which tools the server offers, and how product text becomes vectors.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ToolsSpec {
    /// Tool names to offer; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(with = "mcp_fleet_core::tools::ToolList")]
    pub enabled: Vec<String>,
    /// Most rows a query tool returns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100000))]
    pub row_cap: Option<u32>,
    /// Most bytes of rows one tool result holds (default 1 MiB): longer values are cut in
    /// PostgreSQL and rows stop at the budget, and the result says so. Bounds the memory one
    /// call can take, well below the pod's memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 4096, max = 67108864))]
    pub max_result_bytes: Option<u64>,
    /// Largest estimated cost (PostgreSQL's planner units) of a query `execute_sales_query`
    /// runs: each query is planned first and one estimated above this is refused unrun, with a
    /// message naming the estimate and the limit (`explain_sales_query` shows a query's
    /// estimate). Unset: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1.0, max = 1e12))]
    pub max_estimated_cost: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embeddings: Option<EmbeddingsSpec>,
}

/// Limits of the tenant's server beyond its tools' own.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LimitsSpec {
    /// Each caller's share of the server (a caller is a token's subject): tool calls running at
    /// once (`maxConcurrent`, default 4) and started per minute (`requestsPerMinute`, default
    /// 120, at most `burst` at once, default the per-minute rate), per replica. A call over either
    /// is refused with a JSON-RPC error that says when to retry.
    #[serde(default, skip_serializing_if = "is_default")]
    pub per_subject: PerSubjectSection,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.provider != 'openai' || has(self.openai)")
    .message("embeddings.openai is required when the provider is openai"))]
pub struct EmbeddingsSpec {
    /// `local` (in-process all-MiniLM-L6-v2) or `openai` (any OpenAI-compatible endpoint).
    pub provider: EmbeddingProvider,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openai: Option<OpenAiSection>,
    /// Secret key holding the API key, exposed to the server as the `apiKeyEnv` variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key_secret_ref: Option<SecretKeyRef>,
}

/// The Service in front of the server pods.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// `ClusterIP` (default), `NodePort` or `LoadBalancer`.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl ServiceType {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceType::ClusterIP => "ClusterIP",
            ServiceType::NodePort => "NodePort",
            ServiceType::LoadBalancer => "LoadBalancer",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!self.enabled || has(self.host)")
    .message("ingress.host is required when the ingress is enabled"))]
pub struct IngressSpec {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Public host name, e.g. `seattle.mcp.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$')")
        .message("ingress.host must be a DNS name such as seattle.mcp.example.com"))]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Secret with the TLS certificate for `host`; the endpoint is https when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

fn yes() -> bool {
    true
}

/// Network isolation of the server pods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Who may reach the server port (ingress controller, clients, Prometheus). Empty: pods
    /// in this namespace only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_sources: Vec<NetworkPolicyPeer>,
    /// CIDRs of the database; default: the database host when it is an IP address, else any
    /// address on the database port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub database_cidrs: Vec<String>,
    /// CIDRs of the token issuer (HTTPS, port 443); default: any address on port 443.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub issuer_cidrs: Vec<String>,
}

impl Default for NetworkPolicySpec {
    fn default() -> Self {
        Self {
            enabled: true,
            allowed_sources: Vec::new(),
            database_cidrs: Vec::new(),
            issuer_cidrs: Vec::new(),
        }
    }
}

/// Scheduled backups of the tenant's rows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// Cron schedule (5 fields, e.g. `0 3 * * *`, or `@daily`), in `timeZone`.
    #[schemars(length(min = 1, max = 100))]
    #[x_kube(validation = Rule::new(
        r"self.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|\\S+(\\s+\\S+){4})$')"
    ).message("schedule must be a 5-field cron expression such as '0 3 * * *' or a macro such as @daily"))]
    pub schedule: String,
    /// IANA time zone of the schedule, e.g. `Europe/Berlin` (default: the controller's, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Object-store URL backups go to: `az://container/prefix`, `s3://bucket/prefix`,
    /// `gs://bucket/prefix` or `file:///path`.
    #[schemars(length(min = 1, max = 2048))]
    #[x_kube(validation = Rule::new("self.matches('^(az|azure|s3|gs|file)://.+')")
        .message("destination must be an az://, s3://, gs:// or file:// URL"))]
    pub destination: String,
    /// Secret whose keys become the backup Job's environment (e.g. `AZURE_STORAGE_ACCOUNT_NAME`,
    /// `AZURE_STORAGE_ACCOUNT_KEY` or `AWS_*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret_ref: Option<LocalObjectRef>,
    #[serde(default)]
    pub retention: RetentionSpec,
    /// Pause the schedule without deleting anything.
    #[serde(default)]
    pub suspend: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct LocalObjectRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// A key of a ConfigMap in the McpTenant's namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapKeyRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Default `ca.crt`.
    #[serde(default = "default_ca_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

fn default_ca_key() -> String {
    "ca.crt".into()
}

/// How many backups to keep; older ones are pruned after a successful upload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    #[serde(default = "default_keep_last")]
    #[x_kube(validation = Rule::new("self > 0").message("retention.keepLast must be greater than 0"))]
    pub keep_last: u32,
    /// Also keep every backup younger than this, e.g. `30d`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+(s|m|h|d|w)$')")
        .message("retention.keepWithin must be a number and a unit (s, m, h, d, w), e.g. 30d"))]
    pub keep_within: Option<String>,
}

impl Default for RetentionSpec {
    fn default() -> Self {
        Self { keep_last: default_keep_last(), keep_within: None }
    }
}

fn default_keep_last() -> u32 {
    7
}
