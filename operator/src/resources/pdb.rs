//! The PodDisruptionBudget: at most one server pod voluntarily down at a time (so a drain never
//! blocks on a single-replica tenant, and never takes a multi-replica tenant down). Pure.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::validate::Plan;

pub fn pod_disruption_budget(plan: &Plan) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: plan.metadata(plan.name.clone(), "server"),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(plan.selector_labels()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::fixtures::minimal;

    #[test]
    fn one_pod_at_a_time_of_this_tenant() {
        let p = serde_json::to_value(pod_disruption_budget(&minimal())).unwrap();
        assert_eq!(p["spec"]["maxUnavailable"], 1);
        assert_eq!(p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"], "seattle");
        assert_eq!(p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"], "server");
    }
}
