//! The Service in front of the server pods. Pure.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use mcp_fleet_core::server_config::SERVER_PORT;

use crate::validate::Plan;

pub fn service(plan: &Plan) -> Service {
    let mut metadata = plan.metadata(plan.name.clone(), "server");
    if !plan.spec.service.annotations.is_empty() {
        metadata.annotations = Some(plan.spec.service.annotations.clone());
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(plan.spec.service.type_.as_str().into()),
            selector: Some(plan.selector_labels()),
            ports: Some(vec![ServicePort {
                name: Some("http".into()),
                port: i32::from(SERVER_PORT),
                target_port: Some(IntOrString::String("http".into())),
                protocol: Some("TCP".into()),
                app_protocol: Some("http".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::fixtures::{full, minimal};

    #[test]
    fn selects_the_server_pods_on_the_http_port() {
        let s = serde_json::to_value(service(&minimal())).unwrap();
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(
            s["spec"]["selector"],
            json!({"app.kubernetes.io/name": "mcp-fleet-server", "app.kubernetes.io/instance": "seattle",
                   "app.kubernetes.io/component": "server"})
        );
        assert_eq!(s["spec"]["ports"][0]["port"], 8080);
        assert_eq!(s["spec"]["ports"][0]["targetPort"], "http");
        let f = serde_json::to_value(service(&full())).unwrap();
        assert_eq!(f["metadata"]["annotations"]["example.com/scrape"], "true");
    }
}
