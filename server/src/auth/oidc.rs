//! Bearer JWT validation as an OAuth 2.1 resource server: signature by the issuer's JWKS,
//! algorithm allow-list, `iss`, `aud`, `exp`/`nbf` with a small leeway, then claim mapping into a
//! [`Caller`]. Every failure is reported to the client as one undifferentiated `invalid_token`;
//! the reason goes to the log only. The settings are checked by `mcp_fleet_core::server_config`
//! (issuer, audiences, algorithms, leeway, roles). Calls the JWKS cache; otherwise pure.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Validation};
use mcp_fleet_core::TenantName;
use mcp_fleet_core::server_config::{AuthSection, Problem, public_key_algorithm};
use serde_json::Value;

use super::jwks::{Jwks, JwksError, JwksOptions, JwksSource};
use super::rbac::RoleMap;
use crate::auth::identity::{Caller, StoreScope};

/// The validated OIDC settings and key cache of one server.
pub struct Oidc {
    pub issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: Duration,
    tenant: Option<TenantName>,
    tenant_claim: String,
    tenant_values: Vec<String>,
    subject_claim: String,
    roles_claim: String,
    store_scope_claim: Option<String>,
    pub roles: RoleMap,
    pub jwks: Jwks,
}

/// Why a token was refused: logged, never shown.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("algorithm {0:?} is not allowed")]
    Algorithm(String),
    #[error("no signing key {0:?}")]
    UnknownKey(Option<String>),
    #[error("token rejected: {0}")]
    Invalid(String),
    #[error("token is for tenant {0:?}, not this server's")]
    OtherTenant(String),
    #[error("token lacks claim {0:?}")]
    MissingClaim(String),
    #[error(transparent)]
    Keys(#[from] JwksError),
}

/// `name` as a jsonwebtoken algorithm: one of the public-key algorithms the configuration check
/// accepts.
fn parse_algorithm(name: &str) -> Result<Algorithm, Problem> {
    let checked = public_key_algorithm(name)?;
    checked.parse().map_err(|_| Problem::from(format!("auth.algorithms: {name:?} is not a JWS algorithm")))
}

impl Oidc {
    /// Builds from configuration (checked as `mcp_fleet_core::server_config` checks it), listing
    /// every problem.
    pub fn from_config(
        auth: &AuthSection,
        tenant: Option<&TenantName>,
        public_url: Option<&str>,
        mut jwks_opts: JwksOptions,
    ) -> Result<Self, Vec<Problem>> {
        let checked = auth.check_oidc(public_url)?;
        // Reading the CA file is I/O, so it is checked here rather than in core's pure checks.
        if let Some(path) = &auth.ca_file {
            jwks_opts.extra_roots = super::jwks::read_ca_file(path).map_err(|p| vec![Problem::from(p)])?;
        }
        if let Err(e) = super::jwks::http_client(&jwks_opts) {
            return Err(vec![Problem::from(format!("auth.caFile: the certificates cannot be used: {e}"))]);
        }
        let algorithms = checked
            .algorithms
            .iter()
            .map(|a| parse_algorithm(a))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|p| vec![p])?;
        let claims = &auth.claims;
        let tenant_values = if claims.tenant_values.is_empty() {
            tenant.map(|t| vec![t.to_string()]).unwrap_or_default()
        } else {
            claims.tenant_values.clone()
        };
        let source = match &auth.jwks_uri {
            Some(u) => JwksSource::Uri(u.clone()),
            None => JwksSource::Discovery { issuer: checked.issuer.clone() },
        };
        Ok(Self {
            jwks: Jwks::new(source, jwks_opts),
            issuer: checked.issuer,
            audiences: checked.audiences,
            algorithms,
            leeway: checked.leeway,
            tenant: tenant.cloned(),
            tenant_claim: claims.tenant.clone().unwrap_or_else(|| "tenant".into()),
            tenant_values,
            subject_claim: claims.subject.clone().unwrap_or_else(|| "sub".into()),
            roles_claim: claims.roles.clone().unwrap_or_else(|| "roles".into()),
            store_scope_claim: claims.store_scope.clone(),
            roles: RoleMap::new(checked.roles, auth.default_role.clone()),
        })
    }

    /// Validates `token` and maps its claims. `shared_tenant` is the tenant named by the token in
    /// shared mode (dedicated servers know theirs).
    pub async fn authenticate(&self, token: &str, request_id: String) -> Result<Caller, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| TokenError::Malformed(e.to_string()))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(TokenError::Algorithm(format!("{:?}", header.alg)));
        }
        let key =
            self.jwks.key(header.kid.as_deref()).await?.ok_or(TokenError::UnknownKey(header.kid.clone()))?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&self.audiences);
        v.leeway = self.leeway.as_secs();
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data =
            jsonwebtoken::decode::<Value>(token, &key, &v).map_err(|e| TokenError::Invalid(e.to_string()))?;
        let claims = data.claims;

        let tenant_claim = claim_strings(&claims, &self.tenant_claim);
        if tenant_claim.is_empty() {
            return Err(TokenError::MissingClaim(self.tenant_claim.clone()));
        }
        let tenant = match &self.tenant {
            Some(t) => {
                if !tenant_claim.iter().any(|c| self.tenant_values.contains(c)) {
                    return Err(TokenError::OtherTenant(tenant_claim.join(",")));
                }
                t.clone()
            }
            // Shared mode: the token names the tenant.
            None => TenantName::new(tenant_claim[0].clone())
                .map_err(|_| TokenError::OtherTenant(tenant_claim[0].clone()))?,
        };
        let subject = claim_strings(&claims, &self.subject_claim)
            .into_iter()
            .next()
            .ok_or_else(|| TokenError::MissingClaim(self.subject_claim.clone()))?;
        let role_names = claim_strings(&claims, &self.roles_claim);
        let scope = match &self.store_scope_claim {
            None => StoreScope::Tenant,
            Some(c) => {
                let values = claim_strings(&claims, c);
                if values.is_empty() {
                    StoreScope::Tenant
                } else {
                    // Anything unparsable narrows to nothing rather than being ignored.
                    StoreScope::Stores(values.iter().map(|v| v.trim().parse::<i32>().unwrap_or(-1)).collect())
                }
            }
        };
        Ok(Caller { tenant, subject, scope, grants: Arc::new(self.roles.grants(&role_names)), request_id })
    }
}

/// A claim (dotted path into nested objects) as strings: a string (space-separated for `scp`),
/// a number, or an array of those.
pub fn claim_strings(claims: &Value, path: &str) -> Vec<String> {
    let mut v = claims;
    for part in path.split('.') {
        match v.get(part) {
            Some(next) => v = next,
            None => return Vec::new(),
        }
    }
    let one = |x: &Value| match x {
        Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
        Value::Number(n) => vec![n.to_string()],
        _ => Vec::new(),
    };
    match v {
        Value::Array(items) => items.iter().flat_map(one).collect(),
        other => one(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn claims_are_found_by_path_and_shape() {
        let c = json!({"roles": ["analyst", "readonly"], "scp": "read write", "realm_access": {"roles": ["admin"]}, "stores": [1, 2], "tid": "abc"});
        assert_eq!(claim_strings(&c, "roles"), ["analyst", "readonly"]);
        assert_eq!(claim_strings(&c, "scp"), ["read", "write"]);
        assert_eq!(claim_strings(&c, "realm_access.roles"), ["admin"]);
        assert_eq!(claim_strings(&c, "stores"), ["1", "2"]);
        assert!(claim_strings(&c, "missing.path").is_empty());
    }

    #[test]
    fn only_public_key_algorithms_and_https_issuers() {
        assert!(parse_algorithm("HS256").is_err());
        assert!(parse_algorithm("none").is_err());
        assert_eq!(parse_algorithm("ES256"), Ok(Algorithm::ES256));
        // Every name the configuration check accepts is one jsonwebtoken knows.
        for name in mcp_fleet_core::server_config::PUBLIC_KEY_ALGORITHMS {
            assert!(parse_algorithm(name).is_ok(), "{name}");
        }
        // is_loopback_http's cases live with it, in mcp_fleet_core::server_config.
        let auth = AuthSection { issuer: Some("http://idp.example.com".into()), ..Default::default() };
        let problems =
            Oidc::from_config(&auth, None, Some("https://mcp.example.com/mcp"), JwksOptions::default())
                .err()
                .unwrap();
        assert!(problems.iter().any(|p| p.message.contains("must be an https:// URL")), "{problems:?}");
    }

    /// A throwaway self-signed CA certificate (no key kept anywhere): only parsed here.
    const TEST_CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBmTCCAT+gAwIBAgIUTnsLJWhHHNHZcK6yruWGZJRzBsMwCgYIKoZIzj0EAwIw\nITEfMB0GA1UEAwwWbWNwLWZsZWV0LXVuaXQtdGVzdC1jYTAgFw0yNjEyMDExMTQw\nMjNaGA8yMTI2MTEwNzExNDAyM1owITEfMB0GA1UEAwwWbWNwLWZsZWV0LXVuaXQt\ndGVzdC1jYTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABAvH6n0U+syBcFSdjSso\nf4Cdg2s4jdjoxfZAtrQQPjxuN2gnZPPE2fVnEgc58Rw+y3hk5SoUFtXKVzg0FbY5\niiejUzBRMB0GA1UdDgQWBBTjd66Q2YyCAPU9DywDr3ILerjXljAfBgNVHSMEGDAW\ngBTjd66Q2YyCAPU9DywDr3ILerjXljAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49\nBAMCA0gAMEUCIQCf6xThNJxAjACIE3K7KOcQOM1/xH3D0puSjT00q+PJjgIgIYlv\naDEB8lAOEbR5zEgZp7NxFBm0OXPEZOBNZ114u9I=\n-----END CERTIFICATE-----\n";

    #[test]
    fn a_private_issuer_ca_is_read_from_auth_ca_file_or_refused_with_its_path() {
        let dir = std::env::temp_dir().join(format!("mcpfleet-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("ca.crt");
        let bad = dir.join("not-pem.crt");
        std::fs::write(&good, TEST_CA_PEM).unwrap();
        std::fs::write(&bad, "hello").unwrap();
        let with_ca = |path: &std::path::Path| AuthSection {
            issuer: Some("https://idp.internal.example".into()),
            ca_file: Some(path.to_owned()),
            ..Default::default()
        };
        let public = Some("https://mcp.example.com/mcp");
        assert!(Oidc::from_config(&with_ca(&good), None, public, JwksOptions::default()).is_ok());
        for (path, expected) in
            [(bad.clone(), "holds no PEM certificate"), (dir.join("missing.crt"), "missing.crt")]
        {
            let problems =
                Oidc::from_config(&with_ca(&path), None, public, JwksOptions::default()).err().unwrap();
            assert!(
                problems.iter().any(|p| p.message.starts_with("auth.caFile") && p.message.contains(expected)),
                "{problems:?}"
            );
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
