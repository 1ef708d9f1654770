//! `McpTenant.status`: what the operator observed, as kstatus-compatible conditions plus the
//! facts a user asks for first (endpoint, stores, replicas, last backup).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types, in the order they are written.
pub mod condition {
    /// Everything below is true and the spec generation was observed.
    pub const READY: &str = "Ready";
    /// Roles and store mapping exist in PostgreSQL and match the spec.
    pub const DATABASE_READY: &str = "DatabaseReady";
    /// The Deployment has all its replicas available.
    pub const WORKLOAD_READY: &str = "WorkloadReady";
    /// The backup CronJob exists and is not suspended (absent `spec.backup`: False, NotConfigured).
    pub const BACKUP_SCHEDULED: &str = "BackupScheduled";
    /// kstatus: the operator is still working towards the spec (present only while True).
    pub const RECONCILING: &str = "Reconciling";
    /// kstatus: the operator cannot make progress until the spec changes (present only while True).
    pub const STALLED: &str = "Stalled";
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct McpTenantStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The tenant name in PostgreSQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Store ids the tenant owns, as resolved by the database.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub store_ids: Vec<i32>,
    /// The MCP endpoint URL clients use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Desired server replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<i32>,
    /// Server replicas that are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,
    /// Name of the Secret with the tenant's database credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,
    /// Completion time of the newest successful backup Job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<Time>,
}

impl McpTenantStatus {
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Whether condition `type_` is present with status `True`.
    pub fn is_true(&self, type_: &str) -> bool {
        self.condition(type_).is_some_and(|c| c.status == "True")
    }
}
