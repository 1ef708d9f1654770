//! The plan: an McpTenant checked and combined with the operator's defaults and the admin
//! database URL, which is everything the pure builders need. Only [`super::validate`] makes one.
//! Pure.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use mcp_fleet_core::TenantName;
use mcp_fleet_core::server_config::SERVER_PORT;

use crate::crd::McpTenantSpec;
use crate::resources::{COMPONENT_LABEL, INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGER, TENANT_LABEL};

/// What the builders need, produced by `validate` from an McpTenant and the operator's settings.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// `metadata.name` of the McpTenant, the base of every child's name.
    pub name: String,
    pub namespace: String,
    pub owner: OwnerReference,
    pub tenant: TenantName,
    pub spec: McpTenantSpec,
    /// The server image (spec or the operator's default).
    pub image: String,
    pub database: DatabaseTarget,
    /// e.g. `cluster.local`.
    pub cluster_domain: String,
}

/// Where the tenant's server connects: host, port and database from the admin URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseTarget {
    pub host: String,
    pub port: u16,
    pub database: String,
    /// Query parameters worth keeping for the tenant (e.g. `sslmode`).
    pub params: Vec<(String, String)>,
}

impl DatabaseTarget {
    /// A URL for `user` without any password (the server reads it from a file).
    pub fn url_for(&self, user: &str) -> String {
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let mut url = format!("postgres://{user}@{host}:{}/{}", self.port, self.database);
        for (i, (k, v)) in self.params.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&format!("{k}={v}"));
        }
        url
    }
}

impl Plan {
    /// The in-cluster DNS name of the Service.
    pub fn service_host(&self) -> String {
        format!("{}.{}.svc.{}", self.name, self.namespace, self.cluster_domain)
    }

    /// The MCP endpoint clients use: the ingress host when there is one, else the Service.
    pub fn endpoint(&self) -> String {
        match self.ingress_host() {
            Some(host) => {
                let tls = self.spec.ingress.as_ref().is_some_and(|i| i.tls_secret_name.is_some());
                format!("{}://{host}/mcp", if tls { "https" } else { "http" })
            }
            None => format!("http://{}:{SERVER_PORT}/mcp", self.service_host()),
        }
    }

    /// The ingress host, when an ingress is enabled.
    pub fn ingress_host(&self) -> Option<&str> {
        self.spec.ingress.as_ref().filter(|i| i.enabled).and_then(|i| i.host.as_deref())
    }

    pub fn service_account_name(&self) -> String {
        self.spec.server.service_account_name.clone().unwrap_or_else(|| self.name.clone())
    }

    /// Labels that select the server pods (stable for the life of the McpTenant).
    pub fn selector_labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_owned(), "mcp-fleet-server".to_owned()),
            (INSTANCE_LABEL.to_owned(), self.name.clone()),
            (COMPONENT_LABEL.to_owned(), "server".to_owned()),
        ])
    }

    /// Labels of every child; `component` is `server`, `backup` or `credentials`.
    pub fn labels(&self, component: &str) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("app.kubernetes.io/name".to_owned(), "mcp-fleet-server".to_owned()),
            (INSTANCE_LABEL.to_owned(), self.name.clone()),
            (COMPONENT_LABEL.to_owned(), component.to_owned()),
            (MANAGED_BY_LABEL.to_owned(), MANAGER.to_owned()),
            (TENANT_LABEL.to_owned(), self.tenant.to_string()),
        ])
    }

    /// Metadata of a child: name, namespace, labels and the controller owner reference.
    pub fn metadata(&self, name: String, component: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels(component)),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::resources::fixtures::{full, minimal};

    #[test]
    fn endpoint_is_the_ingress_host_with_tls_else_the_service() {
        assert_eq!(full().endpoint(), "https://eastside.mcp.example.com/mcp");
        assert_eq!(minimal().endpoint(), "http://seattle.retail.svc.cluster.local:8080/mcp");
    }

    #[test]
    fn database_url_names_the_login_role_and_never_a_password() {
        let p = minimal();
        let url = p.database.url_for(&p.tenant.login_role());
        assert_eq!(url, "postgres://mcpt_seattle_login@db.retail.svc:5432/zava?sslmode=require");
    }
}
