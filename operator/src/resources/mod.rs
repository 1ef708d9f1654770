//! Pure builders: one function per child object of an McpTenant, from a validated [`Plan`] to
//! the object the operator applies. No I/O; each file carries its own tests.

mod backup;
mod config_map;
mod deployment;
mod hpa;
mod ingress;
mod network_policy;
mod pdb;
mod secret;
mod service;
mod service_account;

pub use backup::{backup_cron_job, snapshot_job};
pub use config_map::{config_map, render as render_server_config, server_config};
pub use deployment::{deployment, pod_template_hash};
pub use hpa::horizontal_pod_autoscaler;
pub use ingress::ingress;
pub use network_policy::network_policy;
pub use pdb::pod_disruption_budget;
pub use secret::{Credentials, credentials_secret, read_credentials};
pub use service::service;
pub use service_account::service_account;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use mcp_fleet_core::TenantName;
use mcp_fleet_core::server_config::SERVER_PORT;

use crate::crd::McpTenantSpec;

/// The field manager of every server-side apply (and the `managed-by` label value).
pub const MANAGER: &str = "mcp-fleet-operator";
/// Annotation on an McpTenant: a new value asks for a new database password.
pub const ROTATE_ANNOTATION: &str = "mcpfleet.io/rotate-password";
/// Annotation on the credentials Secret: the rotation value its password was made for.
pub const ROTATED_FOR_ANNOTATION: &str = "mcpfleet.io/rotated-for";
/// Pod-template annotation: hash of the rendered config and the password, so a change rolls pods.
pub const CONFIG_HASH_ANNOTATION: &str = "mcpfleet.io/config-hash";
/// Label naming the McpTenant (metadata.name) a child belongs to.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// Label carrying the tenant name in PostgreSQL.
pub const TENANT_LABEL: &str = "mcpfleet.io/tenant";
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/component";
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

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

/// Child object names, derived from the McpTenant's name.
pub mod names {
    pub fn config_map(name: &str) -> String {
        format!("{name}-config")
    }
    pub fn credentials_secret(name: &str) -> String {
        format!("{name}-db-credentials")
    }
    pub fn backup_cron_job(name: &str) -> String {
        format!("{name}-backup")
    }
    pub fn snapshot_job(name: &str) -> String {
        format!("{name}-final-backup")
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
pub(crate) mod fixtures {
    //! McpTenants for the builders' tests: the two examples in `examples/`, planned with the
    //! operator's defaults.

    use crate::crd::McpTenant;
    use crate::validate::{Defaults, plan};

    pub const MINIMAL: &str = include_str!("../../../examples/mcptenant-minimal.yaml");
    pub const FULL: &str = include_str!("../../../examples/mcptenant-full.yaml");

    pub fn tenant(yaml: &str) -> McpTenant {
        let mut t: McpTenant = serde_saphyr::from_str(yaml).expect("fixture parses");
        t.metadata.uid = Some("0b7c1c7e-0000-4000-8000-000000000001".into());
        t.metadata.generation = Some(1);
        t
    }

    pub fn defaults() -> Defaults {
        Defaults {
            server_image: "mcp-fleet-server:test".into(),
            cluster_domain: "cluster.local".into(),
            admin_url: Some("postgres://mcpfleet_op:s3cret@db.retail.svc:5432/zava?sslmode=require".into()),
        }
    }

    pub fn planned(yaml: &str) -> super::Plan {
        let t = tenant(yaml);
        let admin = defaults().admin_url.unwrap();
        plan(&t, &defaults(), &admin).expect("fixture is valid")
    }

    pub fn minimal() -> super::Plan {
        planned(MINIMAL)
    }
    pub fn full() -> super::Plan {
        planned(FULL)
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{full, minimal};

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
