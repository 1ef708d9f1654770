//! The server Deployment: hardened pods (non-root, read-only root filesystem, no capabilities,
//! seccomp RuntimeDefault), health probes, and a hash of config + password in the pod template so
//! a config change or a password rotation rolls the pods. Pure.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, KeyToPath, PodSecurityContext, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements, SeccompProfile, SecretKeySelector, SecretVolumeSource, SecurityContext, Volume,
    VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use mcp_fleet_core::server_config::{
    AUTH_CA_MOUNT_PATH, CONFIG_MOUNT_PATH, DB_PASSWORD_MOUNT_PATH, SERVER_PORT,
};
use sha2::{Digest, Sha256};

use super::config_map::CONFIG_KEY;
use super::secret::PASSWORD_KEY;
use super::{CONFIG_HASH_ANNOTATION, names};
use crate::validate::Plan;

/// The UID/GID the server runs as unless the spec says otherwise (distroless `nonroot`).
pub const DEFAULT_UID: i64 = 65532;
/// Replicas when neither the spec nor an autoscaler decides.
pub const DEFAULT_REPLICAS: i32 = 2;

/// A short hash of what the pods read at start-up; a new value rolls them.
pub fn pod_template_hash(config_yaml: &str, password: &str) -> String {
    let mut h = Sha256::new();
    h.update(config_yaml.as_bytes());
    h.update([0u8]);
    h.update(password.as_bytes());
    hex::encode(&h.finalize()[..8])
}

/// The Deployment's replica count, or `None` when an autoscaler owns it.
pub fn desired_replicas(plan: &Plan) -> Option<i32> {
    match &plan.spec.autoscaling {
        Some(_) => None,
        None => Some(plan.spec.server.replicas.unwrap_or(DEFAULT_REPLICAS)),
    }
}

pub fn deployment(plan: &Plan, config_hash: &str) -> Deployment {
    let server = &plan.spec.server;
    let mut annotations = server.pod_annotations.clone();
    annotations.insert(CONFIG_HASH_ANNOTATION.to_owned(), config_hash.to_owned());
    annotations.insert("prometheus.io/scrape".to_owned(), "true".to_owned());
    annotations.insert("prometheus.io/port".to_owned(), SERVER_PORT.to_string());
    annotations.insert("prometheus.io/path".to_owned(), "/metrics".to_owned());
    let uid = server.run_as_user.unwrap_or(DEFAULT_UID);
    Deployment {
        metadata: plan.metadata(plan.name.clone(), "server"),
        spec: Some(DeploymentSpec {
            replicas: desired_replicas(plan),
            revision_history_limit: Some(5),
            selector: LabelSelector {
                match_labels: Some(plan.selector_labels()),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(plan.labels("server")),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    service_account_name: Some(plan.service_account_name()),
                    automount_service_account_token: Some(false),
                    enable_service_links: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(uid),
                        run_as_group: Some(uid),
                        fs_group: Some(server.fs_group.unwrap_or(uid)),
                        seccomp_profile: Some(runtime_default()),
                        ..PodSecurityContext::default()
                    }),
                    containers: vec![server_container(plan)],
                    volumes: Some(volumes(plan)),
                    node_selector: (!server.node_selector.is_empty()).then(|| server.node_selector.clone()),
                    tolerations: (!server.tolerations.is_empty()).then(|| server.tolerations.clone()),
                    affinity: server.affinity.clone(),
                    // The server's shutdown delay (5 s), its drain (25 s) and its audit flush (10 s).
                    termination_grace_period_seconds: Some(45),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile { type_: "RuntimeDefault".into(), localhost_profile: None }
}

/// The hardened container settings shared by the server and backup pods.
pub(crate) fn restricted_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        privileged: Some(false),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), add: None }),
        seccomp_profile: Some(runtime_default()),
        ..SecurityContext::default()
    }
}

fn parent(path: &str) -> String {
    Path::new(path).parent().map(|p| p.display().to_string()).unwrap_or_else(|| "/".into())
}
fn file_name(path: &str) -> String {
    Path::new(path).file_name().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The config file, the password file, a writable /tmp, and the issuer's CA bundle when set.
pub(crate) fn volumes(plan: &Plan) -> Vec<Volume> {
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names::config_map(&plan.name),
                items: Some(vec![KeyToPath {
                    key: CONFIG_KEY.into(),
                    path: file_name(CONFIG_MOUNT_PATH),
                    mode: None,
                }]),
                default_mode: Some(0o444),
                optional: Some(false),
            }),
            ..Volume::default()
        },
        Volume {
            name: "db-password".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names::credentials_secret(&plan.name)),
                items: Some(vec![KeyToPath {
                    key: PASSWORD_KEY.into(),
                    path: file_name(DB_PASSWORD_MOUNT_PATH),
                    mode: None,
                }]),
                default_mode: Some(0o440),
                optional: Some(false),
            }),
            ..Volume::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity("64Mi".into())),
                ..Default::default()
            }),
            ..Volume::default()
        },
    ];
    if let Some(ca) = &plan.spec.auth.issuer_ca_ref {
        volumes.push(Volume {
            name: "auth-ca".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: ca.name.clone(),
                items: Some(vec![KeyToPath {
                    key: ca.key.clone(),
                    path: file_name(AUTH_CA_MOUNT_PATH),
                    mode: None,
                }]),
                default_mode: Some(0o444),
                optional: Some(false),
            }),
            ..Volume::default()
        });
    }
    volumes
}

pub(crate) fn volume_mounts(plan: &Plan) -> Vec<VolumeMount> {
    let mount = |name: &str, path: String| VolumeMount {
        name: name.into(),
        mount_path: path,
        read_only: Some(name != "tmp"),
        ..VolumeMount::default()
    };
    let mut mounts = vec![
        mount("config", parent(CONFIG_MOUNT_PATH)),
        mount("db-password", parent(DB_PASSWORD_MOUNT_PATH)),
        mount("tmp", "/tmp".into()),
    ];
    if plan.spec.auth.issuer_ca_ref.is_some() {
        mounts.push(mount("auth-ca", parent(AUTH_CA_MOUNT_PATH)));
    }
    mounts
}

/// Extra env from the spec plus the embeddings API key from its Secret.
pub(crate) fn env(plan: &Plan) -> Vec<EnvVar> {
    let mut env = plan.spec.server.env.clone();
    if let Some(e) = &plan.spec.tools.embeddings
        && let Some(r) = &e.api_key_secret_ref
    {
        let name =
            e.openai.as_ref().and_then(|o| o.api_key_env.clone()).unwrap_or_else(|| "OPENAI_API_KEY".into());
        env.push(EnvVar {
            name,
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(SecretKeySelector {
                    name: r.name.clone(),
                    key: r.key.clone(),
                    optional: Some(false),
                }),
                ..EnvVarSource::default()
            }),
        });
    }
    env
}

fn probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            scheme: Some("HTTP".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(3),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

pub(crate) fn default_resources() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), Quantity("100m".into())),
            ("memory".to_owned(), Quantity("256Mi".into())),
        ])),
        limits: Some(BTreeMap::from([("memory".to_owned(), Quantity("1Gi".into()))])),
        ..ResourceRequirements::default()
    }
}

fn server_container(plan: &Plan) -> Container {
    let server = &plan.spec.server;
    let env = env(plan);
    Container {
        name: "server".into(),
        image: Some(plan.image.clone()),
        image_pull_policy: server.image_pull_policy.clone(),
        args: Some(vec!["serve".into(), "--config".into(), CONFIG_MOUNT_PATH.into()]),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: i32::from(SERVER_PORT),
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        env: (!env.is_empty()).then_some(env),
        startup_probe: Some(probe("/health/live", 2, 60)),
        liveness_probe: Some(probe("/health/live", 10, 3)),
        readiness_probe: Some(probe("/health/ready", 5, 2)),
        resources: Some(server.resources.clone().unwrap_or_else(default_resources)),
        security_context: Some(restricted_security_context()),
        volume_mounts: Some(volume_mounts(plan)),
        ..Container::default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::fixtures::{full, minimal};

    #[test]
    fn pods_are_hardened_and_probed() {
        let d = serde_json::to_value(deployment(&minimal(), "abc")).unwrap();
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(d["spec"]["replicas"], 2);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
        assert_eq!(pod["automountServiceAccountToken"], false);
        let c = &pod["containers"][0];
        assert_eq!(
            c["securityContext"],
            json!({
                "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true, "runAsNonRoot": true,
                "privileged": false, "capabilities": {"drop": ["ALL"]},
                "seccompProfile": {"type": "RuntimeDefault"}
            })
        );
        assert_eq!(c["args"], json!(["serve", "--config", "/etc/mcp-fleet/server.yaml"]));
        assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health/live");
        assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health/ready");
        assert_eq!(c["ports"][0]["containerPort"], 8080);
        assert_eq!(c["image"], "mcp-fleet-server:test");
        assert_eq!(c["resources"]["requests"]["memory"], "256Mi");
        let mounts: Vec<&str> =
            c["volumeMounts"].as_array().unwrap().iter().map(|m| m["mountPath"].as_str().unwrap()).collect();
        assert_eq!(mounts, ["/etc/mcp-fleet", "/var/run/secrets/mcp-fleet/db", "/tmp"]);
        assert_eq!(pod["volumes"][1]["secret"]["secretName"], "seattle-db-credentials");
        assert_eq!(pod["volumes"][1]["secret"]["items"][0], json!({"key": "password", "path": "password"}));
        assert_eq!(d["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION], "abc");
        assert_eq!(d["metadata"]["ownerReferences"][0]["controller"], true);
    }

    #[test]
    fn full_spec_reaches_the_pod_and_the_autoscaler_owns_replicas() {
        let d = serde_json::to_value(deployment(&full(), "h")).unwrap();
        assert!(d["spec"].get("replicas").is_none(), "with autoscaling the HPA sets replicas");
        let pod = &d["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsUser"], 10001);
        assert_eq!(pod["nodeSelector"], json!({"kubernetes.io/os": "linux"}));
        assert_eq!(pod["tolerations"][0]["key"], "dedicated");
        assert!(pod["affinity"]["podAntiAffinity"].is_object());
        let c = &pod["containers"][0];
        // The issuer's private CA, from the ConfigMap the spec names, where server.yaml's caFile says.
        let ca = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "auth-ca")
            .expect("auth-ca volume");
        assert_eq!(
            ca["configMap"],
            json!({"name": "corp-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}], "defaultMode": 0o444, "optional": false})
        );
        assert!(
            c["volumeMounts"].as_array().unwrap().contains(
                &json!({"name": "auth-ca", "mountPath": "/etc/mcp-fleet/auth-ca", "readOnly": true})
            )
        );
        assert_eq!(c["image"], "registry.example.com/mcp-fleet/mcp-fleet-server:0.1.0");
        assert_eq!(c["resources"]["requests"]["cpu"], "200m");
        let env = c["env"].as_array().unwrap();
        assert_eq!(env[0], json!({"name": "RUST_BACKTRACE", "value": "1"}));
        assert_eq!(env[1]["name"], "AZURE_OPENAI_API_KEY");
        assert_eq!(
            env[1]["valueFrom"]["secretKeyRef"],
            json!({"name": "azure-openai", "key": "api-key", "optional": false})
        );
        assert_eq!(d["spec"]["template"]["metadata"]["annotations"]["example.com/team"], "retail-analytics");
    }

    #[test]
    fn the_hash_follows_config_and_password() {
        let a = pod_template_hash("cfg", "pw1");
        assert_eq!(a, pod_template_hash("cfg", "pw1"));
        assert_ne!(a, pod_template_hash("cfg", "pw2"), "a rotated password rolls the pods");
        assert_ne!(a, pod_template_hash("cfg2", "pw1"), "a changed config rolls the pods");
        assert_eq!(a.len(), 16);
    }
}
