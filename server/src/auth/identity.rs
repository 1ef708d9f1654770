//! Who is calling: one [`Caller`] per request, produced by the authentication layer (or, for the
//! stdio transport, from the configuration) and read by every tool through one extractor. Pure
//! data plus the development-only header rules of `--auth none`.

use std::collections::BTreeSet;
use std::sync::Arc;

use mcp_fleet_core::TenantName;
use uuid::Uuid;

/// The sample's development header that narrows the view to one store (auth `none` only).
pub const RLS_USER_HEADER: &str = "x-rls-user-id";
/// The reference sample's head-office `x-rls-user-id`: all of the tenant's stores, never more.
pub const ALL_STORES: Uuid = Uuid::nil();
/// Development header naming the tenant in shared mode with auth `none`.
pub const TENANT_HEADER: &str = "x-mcp-tenant";

/// The identity and permissions a request runs with.
#[derive(Clone, Debug)]
pub struct Caller {
    pub tenant: TenantName,
    /// Stable identifier of the caller (token subject). Without authentication:
    /// `x-rls-user-id:<uuid>` when that header names a store manager, else `anonymous`.
    pub subject: String,
    /// Narrows the tenant's stores; never widens them (PostgreSQL enforces it).
    pub scope: StoreScope,
    pub grants: Arc<Grants>,
    /// Correlates logs, metrics and the audit row of one request.
    pub request_id: String,
}

/// Which of the tenant's stores a request may see.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum StoreScope {
    /// All stores the tenant owns.
    Tenant,
    /// The store whose `rls_user_id` is this UUID (the sample's manager header).
    RlsUser(Uuid),
    /// These store ids (from a token claim), intersected with the tenant's own.
    Stores(Vec<i32>),
}

/// What a caller may do: the union of its roles' permissions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grants {
    pub roles: Vec<String>,
    /// `None`: every tool.
    pub tools: Option<BTreeSet<String>>,
    /// Whether customer PII (email, phone) is returned unmasked.
    pub pii: bool,
    /// Smallest applicable row cap of the caller's roles, if any.
    pub row_cap: Option<u32>,
}

impl Grants {
    /// Everything: used for `--auth none` and stdio, which are development modes.
    pub fn everything() -> Self {
        Self { roles: vec!["developer".into()], tools: None, pii: true, row_cap: None }
    }

    pub fn allows(&self, tool: &str) -> bool {
        self.tools.as_ref().is_none_or(|t| t.contains(tool))
    }
}

/// Why a development-mode request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    #[error("the x-rls-user-id header must be a UUID (a store's rls_user_id), got {0:?}")]
    BadRlsUserId(String),
    #[error("shared mode without authentication needs the x-mcp-tenant header to name the tenant")]
    MissingTenant,
    #[error("x-mcp-tenant: {0}")]
    BadTenant(String),
}

/// The store scope of a development request: the `x-rls-user-id` header narrows to one store;
/// without it, or with the head-office UUID ([`ALL_STORES`]), the caller sees the tenant's own
/// stores (never any other tenant's).
pub fn scope_from_header(value: Option<&str>) -> Result<StoreScope, HeaderError> {
    match value.map(str::trim) {
        None | Some("") => Ok(StoreScope::Tenant),
        Some(v) => match Uuid::parse_str(v) {
            Ok(ALL_STORES) => Ok(StoreScope::Tenant),
            Ok(id) => Ok(StoreScope::RlsUser(id)),
            Err(_) => Err(HeaderError::BadRlsUserId(v.chars().take(64).collect())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_narrows_or_is_refused_never_widens() {
        assert_eq!(scope_from_header(None), Ok(StoreScope::Tenant));
        let id = "0f8fad5b-d9cb-469f-a165-70867728950e";
        assert_eq!(scope_from_header(Some(id)), Ok(StoreScope::RlsUser(Uuid::parse_str(id).unwrap())));
        assert!(matches!(scope_from_header(Some("all")), Err(HeaderError::BadRlsUserId(_))));
        // The sample's head-office UUID is the tenant's whole set, exactly as no header.
        assert_eq!(scope_from_header(Some("00000000-0000-0000-0000-000000000000")), Ok(StoreScope::Tenant));
    }

    #[test]
    fn grants_gate_tools() {
        assert!(Grants::everything().allows("execute_sales_query"));
        let g = Grants {
            roles: vec![],
            tools: Some(["get_current_utc_date".to_string()].into()),
            pii: false,
            row_cap: None,
        };
        assert!(g.allows("get_current_utc_date"));
        assert!(!g.allows("execute_sales_query"));
    }
}
