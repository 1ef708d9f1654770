//! The `oidc` part of a configuration, checked: an https issuer (http only on loopback), a
//! resource URI to bind tokens to, public-key algorithms, a small leeway, and roles that resolve.
//! The server builds its token validator from the result. Pure.

use std::collections::BTreeMap;
use std::time::Duration;

use super::AuthSection;
use super::check::Problem;
use super::roles::FlatRole;

/// Algorithms accepted when the configuration names none.
pub const DEFAULT_ALGORITHMS: &[&str] = &["RS256", "ES256", "PS256"];
/// The public-key JWS algorithms a server accepts.
pub const PUBLIC_KEY_ALGORITHMS: &[&str] =
    &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"];
/// Shared-secret algorithms: refused, since anyone holding the secret could sign.
const SHARED_SECRET_ALGORITHMS: &[&str] = &["HS256", "HS384", "HS512"];

/// What `oidc` auth runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedOidc {
    pub issuer: String,
    pub audiences: Vec<String>,
    /// Names from [`PUBLIC_KEY_ALGORITHMS`].
    pub algorithms: Vec<&'static str>,
    pub leeway: Duration,
    pub roles: BTreeMap<String, FlatRole>,
}

/// Whether an http:// URL is acceptable: only for a loopback host (local development and tests).
pub fn is_loopback_http(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("http://") else { return false };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = host
        .rsplit_once(':')
        .map_or(host, |(h, p)| if p.chars().all(|c| c.is_ascii_digit()) { h } else { host });
    matches!(host, "localhost" | "127.0.0.1" | "[::1]")
}

/// `name` as one of [`PUBLIC_KEY_ALGORITHMS`], or why not.
pub fn public_key_algorithm(name: &str) -> Result<&'static str, Problem> {
    if let Some(known) = PUBLIC_KEY_ALGORITHMS.iter().find(|a| **a == name) {
        return Ok(known);
    }
    if SHARED_SECRET_ALGORITHMS.contains(&name) {
        return Err(format!(
            "auth.algorithms: {name} is a shared-secret algorithm; only public-key algorithms are allowed"
        )
        .into());
    }
    Err(format!("auth.algorithms: {name:?} is not a JWS algorithm").into())
}

impl AuthSection {
    /// The OIDC settings, checked against the server's public URL, listing every problem.
    pub fn check_oidc(&self, public_url: Option<&str>) -> Result<CheckedOidc, Vec<Problem>> {
        let mut problems: Vec<Problem> = Vec::new();
        let issuer = self.issuer.clone().unwrap_or_default();
        if !(issuer.starts_with("https://") || is_loopback_http(&issuer)) {
            problems.push(
                format!("auth.issuer {issuer:?} must be an https:// URL (http:// only for localhost)").into(),
            );
        }
        if let Some(u) = &self.jwks_uri
            && !(u.starts_with("https://") || is_loopback_http(u))
        {
            problems.push(
                format!("auth.jwksUri {u:?} must be an https:// URL (http:// only for localhost)").into(),
            );
        }
        let audiences = if self.audiences.is_empty() {
            public_url.map(|u| vec![u.to_owned()]).unwrap_or_default()
        } else {
            self.audiences.clone()
        };
        if audiences.is_empty() {
            problems.push("auth.audiences is empty and publicUrl is not set: tokens must be bound to this server's resource URI".into());
        }
        if public_url.is_none() {
            problems.push(
                "publicUrl is required with oidc auth: it is the resource URI advertised to clients".into(),
            );
        }
        let mut algorithms = Vec::new();
        for a in &self.algorithms {
            match public_key_algorithm(a) {
                Ok(alg) => algorithms.push(alg),
                Err(p) => problems.push(p),
            }
        }
        if algorithms.is_empty() {
            algorithms = DEFAULT_ALGORITHMS.to_vec();
        }
        let leeway = match self.leeway.as_deref().map(humantime::parse_duration) {
            None => Duration::from_secs(60),
            Some(Ok(d)) if d <= Duration::from_secs(300) => d,
            Some(_) => {
                problems.push("auth.leeway must be a duration of at most 5m, e.g. 60s".into());
                Duration::from_secs(60)
            }
        };
        let roles = self.flat_roles().map_err(|p| problems.extend(p)).ok();
        match roles {
            Some(roles) if problems.is_empty() => {
                Ok(CheckedOidc { issuer, audiences, algorithms, leeway, roles })
            }
            _ => Err(problems),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_is_only_for_loopback() {
        assert!(is_loopback_http("http://127.0.0.1:8080/x"));
        assert!(is_loopback_http("http://localhost/x"));
        assert!(!is_loopback_http("http://example.com/x"));
        assert!(!is_loopback_http("http://127.0.0.1.evil.com/x"));
    }

    #[test]
    fn only_public_key_algorithms() {
        assert!(public_key_algorithm("HS256").unwrap_err().message.contains("shared-secret"));
        assert!(public_key_algorithm("none").unwrap_err().message.contains("not a JWS algorithm"));
        assert_eq!(public_key_algorithm("ES256"), Ok("ES256"));
    }
}
