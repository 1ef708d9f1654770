//! Pure builders: one function per child object of an McpTenant, from a validated
//! [`Plan`](crate::validate::Plan) to the object the operator applies. No I/O; each file carries
//! its own tests.

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
pub use secret::{Credentials, credentials_secret, decide_credentials, read_credentials};
pub use service::service;
pub use service_account::service_account;

/// The field manager of every server-side apply (and the `managed-by` label value).
pub const MANAGER: &str = "mcp-fleet-operator";
/// Field manager that keeps a Deployment's `spec.replicas` while it passes from the operator to
/// the autoscaler (see `controller::apply`).
pub const REPLICAS_HANDOVER_MANAGER: &str = "mcp-fleet-operator-hpa-handover";
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

#[cfg(test)]
pub(crate) mod fixtures {
    //! McpTenants for the builders' tests: the two examples in `examples/`, planned with the
    //! operator's defaults.

    use crate::crd::McpTenant;
    use crate::validate::{Defaults, Plan, plan};

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

    pub fn planned(yaml: &str) -> Plan {
        let t = tenant(yaml);
        let admin = defaults().admin_url.unwrap();
        plan(&t, &defaults(), &admin).expect("fixture is valid")
    }

    pub fn minimal() -> Plan {
        planned(MINIMAL)
    }
    pub fn full() -> Plan {
        planned(FULL)
    }
}
