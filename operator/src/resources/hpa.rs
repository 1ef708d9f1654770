//! The HorizontalPodAutoscaler (autoscaling/v2): CPU utilisation, plus in-flight MCP requests per
//! pod when asked (a Pods metric served by a custom metrics adapter). Pure.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingRules, HorizontalPodAutoscaler, HorizontalPodAutoscalerBehavior,
    HorizontalPodAutoscalerSpec, MetricIdentifier, MetricSpec, MetricTarget, PodsMetricSource,
    ResourceMetricSource,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use crate::validate::Plan;

/// `None` when autoscaling is off (the Deployment's replicas then come from the spec).
pub fn horizontal_pod_autoscaler(plan: &Plan) -> Option<HorizontalPodAutoscaler> {
    let a = plan.spec.autoscaling.as_ref()?;
    let mut metrics = vec![MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: "cpu".into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(a.target_cpu_utilization_percentage),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    }];
    if let Some(per_pod) = a.target_in_flight_requests {
        metrics.push(MetricSpec {
            type_: "Pods".into(),
            pods: Some(PodsMetricSource {
                metric: MetricIdentifier { name: a.in_flight_metric_name.clone(), selector: None },
                target: MetricTarget {
                    type_: "AverageValue".into(),
                    average_value: Some(Quantity(per_pod.to_string())),
                    ..MetricTarget::default()
                },
            }),
            ..MetricSpec::default()
        });
    }
    Some(HorizontalPodAutoscaler {
        metadata: plan.metadata(plan.name.clone(), "server"),
        spec: HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: plan.name.clone(),
            },
            min_replicas: Some(a.min_replicas),
            max_replicas: a.max_replicas,
            metrics: Some(metrics),
            behavior: a.scale_down_stabilization_seconds.map(|seconds| HorizontalPodAutoscalerBehavior {
                scale_down: Some(HPAScalingRules {
                    stabilization_window_seconds: Some(seconds),
                    ..HPAScalingRules::default()
                }),
                scale_up: None,
            }),
        },
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::fixtures::{full, minimal};

    #[test]
    fn scales_the_deployment_on_cpu_and_in_flight_requests() {
        assert!(horizontal_pod_autoscaler(&minimal()).is_none());
        let h = serde_json::to_value(horizontal_pod_autoscaler(&full()).unwrap()).unwrap();
        assert_eq!(
            h["spec"]["scaleTargetRef"],
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "eastside"})
        );
        assert_eq!(h["spec"]["minReplicas"], 2);
        assert_eq!(h["spec"]["maxReplicas"], 10);
        assert_eq!(
            h["spec"]["metrics"],
            json!([
                {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}},
                {"type": "Pods", "pods": {"metric": {"name": "mcpfleet_inflight_requests"},
                                          "target": {"type": "AverageValue", "averageValue": "20"}}}
            ])
        );
        assert_eq!(
            h["spec"].get("behavior"),
            None,
            "Kubernetes' own scale-down window unless one is asked for"
        );
    }

    #[test]
    fn a_scale_down_window_becomes_the_hpas_behavior() {
        let mut plan = full();
        plan.spec.autoscaling.as_mut().unwrap().scale_down_stabilization_seconds = Some(20);
        let h = serde_json::to_value(horizontal_pod_autoscaler(&plan).unwrap()).unwrap();
        assert_eq!(h["spec"]["behavior"], json!({"scaleDown": {"stabilizationWindowSeconds": 20}}));
    }
}
