//! Build, the third step of a reconcile: every child object of an McpTenant from its validated
//! [`Plan`] and its credentials, as one value the apply step writes in order. Pure; one golden
//! test covers the whole bundle (`operator/tests/golden/`), the builders' own tests the details.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde::Serialize;

use crate::resources::{self as r, Credentials, names};
use crate::validate::Plan;

/// A child the spec may or may not want. Unwanted, the object of this name is deleted (when this
/// McpTenant owns it), so switching a feature off removes what it made.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Optional<K> {
    pub name: String,
    pub object: Option<K>,
}

impl<K> Optional<K> {
    fn new(name: &str, object: Option<K>) -> Self {
        Self { name: name.to_owned(), object }
    }
}

/// Every child of one McpTenant, in the order they are applied.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Children {
    pub namespace: String,
    /// The McpTenant's uid: only children it owns are deleted.
    pub owner_uid: String,
    pub service_account: Optional<ServiceAccount>,
    pub credentials: Secret,
    pub config_map: ConfigMap,
    pub service: Service,
    pub deployment: Deployment,
    pub autoscaler: Optional<HorizontalPodAutoscaler>,
    pub disruption_budget: PodDisruptionBudget,
    pub network_policy: Optional<NetworkPolicy>,
    pub ingress: Optional<Ingress>,
    pub backup: Optional<CronJob>,
}

/// The children of `plan`, with `creds` in the credentials Secret and in the pod template hash
/// (so a new password rolls the pods).
pub fn build(plan: &Plan, creds: &Credentials) -> Children {
    let hash = r::pod_template_hash(&r::render_server_config(plan, &creds.login), &creds.password);
    Children {
        namespace: plan.namespace.clone(),
        owner_uid: plan.owner.uid.clone(),
        service_account: Optional::new(&plan.name, r::service_account(plan)),
        credentials: r::credentials_secret(plan, creds),
        config_map: r::config_map(plan, &creds.login),
        service: r::service(plan),
        deployment: r::deployment(plan, &hash),
        autoscaler: Optional::new(&plan.name, r::horizontal_pod_autoscaler(plan)),
        disruption_budget: r::pod_disruption_budget(plan),
        network_policy: Optional::new(&plan.name, r::network_policy(plan)),
        ingress: Optional::new(&plan.name, r::ingress(plan)),
        backup: Optional::new(&names::backup_cron_job(&plan.name), r::backup_cron_job(plan)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::{full, minimal};

    fn creds(plan: &Plan) -> Credentials {
        Credentials { login: plan.tenant.login_role(), password: "golden-password".into(), rotated_for: None }
    }

    /// The whole bundle of the full example, against `operator/tests/golden/children-full.json`
    /// (regenerate with `UPDATE_GOLDEN=1 cargo test -p mcp-fleet-operator build::`).
    #[test]
    fn the_full_example_builds_the_golden_bundle() {
        let rendered = serde_json::to_string_pretty(&build(&full(), &creds(&full()))).unwrap() + "\n";
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/children-full.json");
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &rendered).unwrap();
        }
        let golden = std::fs::read_to_string(&path).expect("tests/golden/children-full.json");
        assert!(
            rendered == golden,
            "the children of examples/mcptenant-full.yaml changed; if on purpose, regenerate with UPDATE_GOLDEN=1:\n{rendered}"
        );
    }

    #[test]
    fn features_switched_off_name_what_to_delete() {
        let c = build(&minimal(), &creds(&minimal()));
        assert_eq!(
            (c.namespace.as_str(), c.owner_uid.as_str()),
            ("retail", "0b7c1c7e-0000-4000-8000-000000000001")
        );
        for (name, wanted) in [
            (&c.autoscaler.name, c.autoscaler.object.is_some()),
            (&c.ingress.name, c.ingress.object.is_some()),
            (&c.backup.name, c.backup.object.is_some()),
        ] {
            assert!(!wanted, "{name} is off in the minimal example");
        }
        assert_eq!(c.backup.name, "seattle-backup");
        assert_eq!(c.ingress.name, "seattle");
    }
}
