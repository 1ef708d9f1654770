//! The NetworkPolicy around the server pods: ingress only from the allowed sources on the HTTP
//! port; egress only to DNS, the database, and the token issuer (plus the embeddings and OTLP
//! endpoints when configured). Pure.

use std::net::IpAddr;

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use mcp_fleet_core::server_config::SERVER_PORT;

use crate::validate::Plan;

/// `None` when the spec turns network policies off.
pub fn network_policy(plan: &Plan) -> Option<NetworkPolicy> {
    let np = &plan.spec.network_policy;
    if !np.enabled {
        return None;
    }
    let from = if np.allowed_sources.is_empty() {
        // Same namespace only.
        vec![NetworkPolicyPeer {
            pod_selector: Some(LabelSelector::default()),
            ..NetworkPolicyPeer::default()
        }]
    } else {
        np.allowed_sources.clone()
    };
    let mut egress =
        vec![NetworkPolicyEgressRule { to: None, ports: Some(vec![port("UDP", 53), port("TCP", 53)]) }];
    let db = &plan.database;
    let db_cidrs = if !np.database_cidrs.is_empty() {
        np.database_cidrs.clone()
    } else {
        match db.host.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => vec![format!("{ip}/32")],
            Ok(IpAddr::V6(ip)) => vec![format!("{ip}/128")],
            Err(_) => Vec::new(), // a DNS name: any address, on the database port only
        }
    };
    egress.push(NetworkPolicyEgressRule { to: peers(&db_cidrs), ports: Some(vec![port("TCP", db.port)]) });
    let mut https_ports: Vec<u16> = [
        plan.spec.auth.issuer.as_deref(),
        plan.spec.auth.jwks_uri.as_deref(),
        plan.spec.tools.embeddings.as_ref().and_then(|e| e.openai.as_ref()).map(|o| o.endpoint.as_str()),
        plan.spec.server.otlp_endpoint.as_deref(),
    ]
    .into_iter()
    .flatten()
    .filter_map(url_port)
    .collect();
    https_ports.sort_unstable();
    https_ports.dedup();
    if !https_ports.is_empty() {
        egress.push(NetworkPolicyEgressRule {
            to: peers(&np.issuer_cidrs),
            ports: Some(https_ports.into_iter().map(|p| port("TCP", p)).collect()),
        });
    }
    Some(NetworkPolicy {
        metadata: plan.metadata(plan.name.clone(), "server"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(plan.selector_labels()),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(vec![NetworkPolicyIngressRule {
                from: Some(from),
                ports: Some(vec![port("TCP", SERVER_PORT)]),
            }]),
            egress: Some(egress),
        }),
    })
}

fn port(protocol: &str, port: u16) -> NetworkPolicyPort {
    NetworkPolicyPort {
        protocol: Some(protocol.into()),
        port: Some(IntOrString::Int(i32::from(port))),
        end_port: None,
    }
}

fn peers(cidrs: &[String]) -> Option<Vec<NetworkPolicyPeer>> {
    (!cidrs.is_empty()).then(|| {
        cidrs
            .iter()
            .map(|c| NetworkPolicyPeer {
                ip_block: Some(IPBlock { cidr: c.clone(), except: None }),
                ..NetworkPolicyPeer::default()
            })
            .collect()
    })
}

/// The port an http(s) URL connects to.
fn url_port(url: &str) -> Option<u16> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let explicit = match host_port.rsplit_once(':') {
        Some((host, p)) if !host.ends_with(']') || host_port.starts_with('[') => p.parse().ok(),
        _ => None,
    };
    explicit.or(match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::fixtures::{full, minimal};

    #[test]
    fn minimal_allows_same_namespace_in_and_dns_database_issuer_out() {
        let n = serde_json::to_value(network_policy(&minimal()).unwrap()).unwrap();
        assert_eq!(n["spec"]["policyTypes"], json!(["Ingress", "Egress"]));
        assert_eq!(
            n["spec"]["ingress"],
            json!([{"from": [{"podSelector": {}}], "ports": [{"protocol": "TCP", "port": 8080}]}])
        );
        assert_eq!(
            n["spec"]["egress"],
            json!([
                {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                {"ports": [{"protocol": "TCP", "port": 5432}]},
                {"ports": [{"protocol": "TCP", "port": 443}]}
            ])
        );
    }

    #[test]
    fn full_limits_sources_and_database_cidrs() {
        let n = serde_json::to_value(network_policy(&full()).unwrap()).unwrap();
        let from = n["spec"]["ingress"][0]["from"].as_array().unwrap();
        assert_eq!(from.len(), 2);
        assert_eq!(
            from[0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            "ingress-nginx"
        );
        assert_eq!(n["spec"]["egress"][1]["to"], json!([{"ipBlock": {"cidr": "10.20.0.0/24"}}]));
        // issuer and embeddings on 443, OTLP collector on 4318
        assert_eq!(
            n["spec"]["egress"][2]["ports"],
            json!([{"protocol": "TCP", "port": 443}, {"protocol": "TCP", "port": 4318}])
        );
    }

    #[test]
    fn an_ip_database_host_is_pinned_and_the_policy_can_be_off() {
        let mut p = minimal();
        p.database.host = "10.1.2.3".into();
        let n = serde_json::to_value(network_policy(&p).unwrap()).unwrap();
        assert_eq!(n["spec"]["egress"][1]["to"], json!([{"ipBlock": {"cidr": "10.1.2.3/32"}}]));
        p.spec.network_policy.enabled = false;
        assert!(network_policy(&p).is_none());
    }

    #[test]
    fn url_ports() {
        assert_eq!(url_port("https://login.example.com/x"), Some(443));
        assert_eq!(url_port("http://keycloak:8080/realms/a"), Some(8080));
        assert_eq!(url_port("http://[::1]:9000/"), Some(9000));
        assert_eq!(url_port("not a url"), None);
    }
}
