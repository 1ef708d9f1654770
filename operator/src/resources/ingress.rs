//! The optional Ingress for the MCP endpoint (and the OAuth metadata beside it). Pure.

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule, IngressServiceBackend,
    IngressSpec, IngressTLS, ServiceBackendPort,
};

use crate::validate::Plan;

/// `None` when no ingress is enabled.
pub fn ingress(plan: &Plan) -> Option<Ingress> {
    let spec = plan.spec.ingress.as_ref().filter(|i| i.enabled)?;
    let host = spec.host.clone()?;
    let mut metadata = plan.metadata(plan.name.clone(), "server");
    if !spec.annotations.is_empty() {
        metadata.annotations = Some(spec.annotations.clone());
    }
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: spec.class_name.clone(),
            tls: spec
                .tls_secret_name
                .as_ref()
                .map(|s| vec![IngressTLS { hosts: Some(vec![host.clone()]), secret_name: Some(s.clone()) }]),
            rules: Some(vec![IngressRule {
                host: Some(host),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some("/".into()),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: plan.name.clone(),
                                port: Some(ServiceBackendPort { name: Some("http".into()), number: None }),
                            }),
                            resource: None,
                        },
                    }],
                }),
            }]),
            default_backend: None,
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::fixtures::{full, minimal};

    #[test]
    fn routes_the_host_to_the_service_with_tls() {
        assert!(ingress(&minimal()).is_none());
        let i = serde_json::to_value(ingress(&full()).unwrap()).unwrap();
        assert_eq!(i["spec"]["ingressClassName"], "nginx");
        assert_eq!(
            i["spec"]["tls"],
            json!([{"hosts": ["eastside.mcp.example.com"], "secretName": "eastside-mcp-tls"}])
        );
        assert_eq!(i["spec"]["rules"][0]["host"], "eastside.mcp.example.com");
        assert_eq!(
            i["spec"]["rules"][0]["http"]["paths"][0]["backend"],
            json!({"service": {"name": "eastside", "port": {"name": "http"}}})
        );
        assert_eq!(i["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"], "300");
    }

    #[test]
    fn a_disabled_ingress_is_not_built() {
        let mut p = full();
        p.spec.ingress.as_mut().unwrap().enabled = false;
        assert!(ingress(&p).is_none());
    }
}
