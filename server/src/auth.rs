//! Authentication of HTTP requests into a [`Caller`], and the errors a caller sees when it is not
//! allowed in. `none` is the development mode: it trusts nobody's identity, serves the configured
//! tenant, and only honours the sample's `x-rls-user-id` header to narrow to one store.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use mcp_fleet_core::TenantName;
use mcp_fleet_core::server_config::TenancyMode;
use rmcp::ErrorData;
use rmcp::model::ErrorCode;

use crate::identity::{self, Caller, Grants, StoreScope};

/// JSON-RPC error code for "authenticated, but this role may not call that tool" — distinct from
/// HTTP 401 (not authenticated) and from unknown tools (-32602).
pub const FORBIDDEN_CODE: ErrorCode = ErrorCode(-32003);

/// How requests prove who they are.
pub enum Authenticator {
    /// Development only: no credentials; the configured tenant, full grants.
    None { tenant: Option<TenantName>, mode: TenancyMode },
}

/// Why a request was refused before reaching the MCP layer.
#[derive(Debug, thiserror::Error)]
pub enum AuthRejection {
    #[error("{0}")]
    BadRequest(String),
}

impl AuthRejection {
    pub fn status(&self) -> StatusCode {
        match self {
            AuthRejection::BadRequest(_) => StatusCode::BAD_REQUEST,
        }
    }
}

impl Authenticator {
    pub fn authenticate(&self, headers: &HeaderMap, request_id: String) -> Result<Caller, AuthRejection> {
        match self {
            Authenticator::None { tenant, mode } => {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
                let scope = identity::scope_from_header(header(identity::RLS_USER_HEADER))
                    .map_err(|e| AuthRejection::BadRequest(e.to_string()))?;
                let tenant = match (mode, tenant) {
                    (TenancyMode::Dedicated, Some(t)) => t.clone(),
                    _ => {
                        let raw = header(identity::TENANT_HEADER)
                            .ok_or_else(|| AuthRejection::BadRequest(identity::HeaderError::MissingTenant.to_string()))?;
                        TenantName::new(raw).map_err(|e| AuthRejection::BadRequest(identity::HeaderError::BadTenant(e.to_string()).to_string()))?
                    }
                };
                Ok(Caller { tenant, subject: "anonymous".into(), scope, grants: Arc::new(Grants::everything()), request_id })
            }
        }
    }

    /// The identity of a stdio session: the configured tenant, all of its stores.
    pub fn stdio_caller(tenant: TenantName) -> Caller {
        Caller {
            tenant,
            subject: "stdio".into(),
            scope: StoreScope::Tenant,
            grants: Arc::new(Grants::everything()),
            request_id: "stdio".into(),
        }
    }
}

/// The MCP error for a tool the caller's roles do not grant.
pub fn forbidden_tool(tool: &str, caller: &Caller) -> ErrorData {
    ErrorData::new(
        FORBIDDEN_CODE,
        format!(
            "your role(s) {:?} may not call {tool:?}; call tools/list to see the tools you may use",
            caller.grants.roles
        ),
        None,
    )
}
