//! Authentication of HTTP requests into a [`Caller`], and the errors a caller sees when it is not
//! let in. `oidc` validates bearer JWTs (see [`oidc`]); `none` is the development mode: it serves
//! the configured tenant with every grant and only honours the sample's `x-rls-user-id` header to
//! narrow to one store. Also the OAuth protected-resource metadata (RFC 9728).

pub mod identity;
pub mod jwks;
pub mod oidc;
pub mod rbac;

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use mcp_fleet_core::TenantName;
use mcp_fleet_core::server_config::TenancyMode;
use serde_json::{Value, json};

use self::identity::{Caller, Grants, StoreScope};

/// Path of the protected-resource metadata for the `/mcp` endpoint.
pub const RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource/mcp";

/// How requests prove who they are.
pub enum Authenticator {
    /// Development only: no credentials; the configured tenant, full grants.
    None { tenant: Option<TenantName>, mode: TenancyMode },
    /// Bearer JWTs from an OpenID Connect issuer.
    Oidc { oidc: Box<oidc::Oidc>, public_url: String },
}

/// Why a request was refused before reaching the MCP layer.
#[derive(Debug, thiserror::Error)]
pub enum AuthRejection {
    #[error("{0}")]
    BadRequest(String),
    /// No credentials (`invalid_token: false`) or unacceptable ones (`true`). The message is the
    /// same whatever the reason, so it tells an attacker nothing.
    #[error("authentication required: send a valid bearer token for this server")]
    Unauthenticated { invalid_token: bool },
    #[error("the identity provider cannot be reached to check the token; retry shortly")]
    Unavailable,
}

impl AuthRejection {
    pub fn status(&self) -> StatusCode {
        match self {
            AuthRejection::BadRequest(_) => StatusCode::BAD_REQUEST,
            AuthRejection::Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            AuthRejection::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl Authenticator {
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        request_id: String,
    ) -> Result<Caller, AuthRejection> {
        match self {
            Authenticator::None { tenant, mode } => {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
                let scope = identity::scope_from_header(header(identity::RLS_USER_HEADER))
                    .map_err(|e| AuthRejection::BadRequest(e.to_string()))?;
                let tenant = match (mode, tenant) {
                    (TenancyMode::Dedicated, Some(t)) => t.clone(),
                    _ => {
                        let raw = header(identity::TENANT_HEADER).ok_or_else(|| {
                            AuthRejection::BadRequest(identity::HeaderError::MissingTenant.to_string())
                        })?;
                        TenantName::new(raw).map_err(|e| {
                            AuthRejection::BadRequest(
                                identity::HeaderError::BadTenant(e.to_string()).to_string(),
                            )
                        })?
                    }
                };
                // The sample's manager header is the nearest thing to an identity here: each store
                // manager gets its own share of the server, and everyone else shares one.
                let subject = match &scope {
                    StoreScope::RlsUser(id) => format!("{}:{id}", identity::RLS_USER_HEADER),
                    _ => "anonymous".into(),
                };
                Ok(Caller { tenant, subject, scope, grants: Arc::new(Grants::everything()), request_id })
            }
            Authenticator::Oidc { oidc, .. } => {
                let Some(value) = headers.get(header::AUTHORIZATION) else {
                    return Err(AuthRejection::Unauthenticated { invalid_token: false });
                };
                let token = value
                    .to_str()
                    .ok()
                    .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
                    .map(str::trim)
                    .filter(|t| !t.is_empty() && t.len() <= 16 * 1024)
                    .ok_or(AuthRejection::Unauthenticated { invalid_token: true })?;
                oidc.authenticate(token, request_id.clone()).await.map_err(|e| {
                    tracing::warn!(request_id, reason = %e, "bearer token refused");
                    match e {
                        oidc::TokenError::Keys(_) => AuthRejection::Unavailable,
                        _ => AuthRejection::Unauthenticated { invalid_token: true },
                    }
                })
            }
        }
    }

    /// The `WWW-Authenticate` value for a 401, pointing clients at the resource metadata.
    pub fn challenge(&self, invalid_token: bool) -> Option<String> {
        let Authenticator::Oidc { public_url, .. } = self else { return None };
        let mut v = format!("Bearer resource_metadata=\"{}\"", metadata_url(public_url));
        if invalid_token {
            v.push_str(", error=\"invalid_token\"");
        }
        Some(v)
    }

    /// RFC 9728 protected-resource metadata, when authentication is on.
    pub fn resource_metadata(&self) -> Option<Value> {
        let Authenticator::Oidc { oidc, public_url } = self else { return None };
        Some(json!({
            "resource": public_url,
            "authorization_servers": [oidc.issuer],
            "bearer_methods_supported": ["header"],
            "resource_name": "mcp-fleet retail analytics",
            "scopes_supported": oidc.roles.names().collect::<Vec<_>>(),
        }))
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

/// `https://host/.well-known/oauth-protected-resource/mcp` for `https://host/mcp`.
pub fn metadata_url(public_url: &str) -> String {
    let origin_end =
        public_url.find("://").map(|i| i + 3).and_then(|s| public_url[s..].find('/').map(|j| s + j));
    let (origin, path) = match origin_end {
        Some(i) => public_url.split_at(i),
        None => (public_url, ""),
    };
    format!("{origin}/.well-known/oauth-protected-resource{}", path.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::metadata_url;

    #[test]
    fn metadata_lives_beside_the_resource_path() {
        assert_eq!(
            metadata_url("https://a.example.com/mcp"),
            "https://a.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url("http://127.0.0.1:8080/mcp/"),
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            metadata_url("https://a.example.com"),
            "https://a.example.com/.well-known/oauth-protected-resource"
        );
    }
}
