//! What every request shares: the database, the embedder, metrics, limits (each caller's share
//! among them) and the audit trail, and which tools this server offers. Data, no I/O of its own.

use std::sync::Arc;

use mcp_fleet_core::server_config::CheckedConfig;
use mcp_fleet_core::tools::ToolName;

use super::audit::AuditLog;
use super::fair_share::FairShare;
use super::result::Limits;
use super::schema::SchemaCache;
use crate::auth::identity::Caller;
use crate::db::TenantDb;
use crate::embed::Embedder;
use crate::metrics::Metrics;

pub struct AppState {
    pub db: TenantDb,
    pub embedder: Option<Arc<dyn Embedder>>,
    pub metrics: Arc<Metrics>,
    pub row_cap: u32,
    /// Most bytes of rows one result holds.
    pub max_result_bytes: usize,
    /// Largest estimated cost of a query `execute_sales_query` runs (`tools.maxEstimatedCost`).
    pub max_estimated_cost: Option<f64>,
    /// Tools offered at all (configuration, and an embedder for those that need one); the
    /// caller's grants narrow this further.
    pub enabled_tools: Vec<ToolName>,
    pub schema_cache: SchemaCache,
    /// Each caller's share of the server (`limits.perSubject`).
    pub fair_share: FairShare,
    /// The identity of stdio sessions, which have no HTTP request to authenticate.
    pub stdio_caller: Option<Caller>,
    pub audit: AuditLog,
}

impl AppState {
    /// The tools' settings come from the checked configuration (`tools.enabled` lists tool names
    /// checked there; empty means all).
    pub fn new(
        db: TenantDb,
        embedder: Option<Arc<dyn Embedder>>,
        metrics: Arc<Metrics>,
        cfg: &CheckedConfig,
        audit: AuditLog,
    ) -> Self {
        let enabled = &cfg.enabled_tools;
        let enabled_tools = ToolName::ALL
            .into_iter()
            .filter(|t| enabled.is_empty() || enabled.iter().any(|e| e == t.as_str()))
            .filter(|t| embedder.is_some() || !t.needs_embeddings())
            .collect();
        Self {
            db,
            embedder,
            metrics,
            row_cap: cfg.row_cap,
            max_result_bytes: usize::try_from(cfg.max_result_bytes).unwrap_or(usize::MAX),
            max_estimated_cost: cfg.max_estimated_cost,
            enabled_tools,
            schema_cache: SchemaCache::new(),
            fair_share: FairShare::new(cfg.per_subject, crate::clock::system()),
            stdio_caller: None,
            audit,
        }
    }

    pub fn offers(&self, tool: ToolName) -> bool {
        self.enabled_tools.contains(&tool)
    }

    /// What one result may hold for `caller`: the row cap (the server's, or the caller's roles'
    /// when smaller) and the byte budget.
    pub fn limits_for(&self, caller: &Caller) -> Limits {
        let cap = caller.grants.row_cap.map_or(self.row_cap, |r| r.min(self.row_cap));
        Limits { rows: cap as usize, bytes: self.max_result_bytes }
    }
}
