//! The backup CronJob (and the one-off final backup Job of `deletionPolicy: Snapshot`): the server
//! image's `backup` command, as the tenant's own role, with object-store credentials from a Secret.
//! Pure.

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Container, EnvFromSource, PodSecurityContext, PodSpec, PodTemplateSpec, SeccompProfile, SecretEnvSource,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mcp_fleet_core::server_config::CONFIG_MOUNT_PATH;

use super::deployment::{
    DEFAULT_UID, default_resources, restricted_security_context, volume_mounts, volumes,
};
use super::names;
use crate::crd::BackupSpec;
use crate::validate::Plan;

/// `None` when the spec has no backup section.
pub fn backup_cron_job(plan: &Plan) -> Option<CronJob> {
    let backup = plan.spec.backup.as_ref()?;
    Some(CronJob {
        metadata: plan.metadata(names::backup_cron_job(&plan.name), "backup"),
        spec: CronJobSpec {
            schedule: backup.schedule.clone(),
            time_zone: backup.time_zone.clone(),
            suspend: Some(backup.suspend),
            concurrency_policy: Some("Forbid".into()),
            starting_deadline_seconds: Some(600),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(plan.labels("backup")), ..ObjectMeta::default() }),
                spec: Some(job_spec(plan, backup)),
            },
        },
        status: None,
    })
}

/// The final backup taken before the roles are dropped (`deletionPolicy: Snapshot`).
pub fn snapshot_job(plan: &Plan) -> Option<Job> {
    let backup = plan.spec.backup.as_ref()?;
    let mut spec = job_spec(plan, backup);
    spec.ttl_seconds_after_finished = None;
    Some(Job {
        metadata: plan.metadata(names::snapshot_job(&plan.name), "backup"),
        spec: Some(spec),
        status: None,
    })
}

fn job_spec(plan: &Plan, backup: &BackupSpec) -> JobSpec {
    let mut args = vec![
        "backup".to_owned(),
        "--config".to_owned(),
        CONFIG_MOUNT_PATH.to_owned(),
        "--to".to_owned(),
        backup.destination.clone(),
        "--keep-last".to_owned(),
        backup.retention.keep_last.to_string(),
    ];
    if let Some(within) = &backup.retention.keep_within {
        args.extend(["--keep-within".to_owned(), within.clone()]);
    }
    let uid = plan.spec.server.run_as_user.unwrap_or(DEFAULT_UID);
    JobSpec {
        backoff_limit: Some(2),
        active_deadline_seconds: Some(6 * 3600),
        ttl_seconds_after_finished: Some(7 * 24 * 3600),
        template: PodTemplateSpec {
            metadata: Some(ObjectMeta { labels: Some(plan.labels("backup")), ..ObjectMeta::default() }),
            spec: Some(PodSpec {
                restart_policy: Some("Never".into()),
                service_account_name: Some(plan.service_account_name()),
                automount_service_account_token: Some(false),
                enable_service_links: Some(false),
                security_context: Some(PodSecurityContext {
                    run_as_non_root: Some(true),
                    run_as_user: Some(uid),
                    run_as_group: Some(uid),
                    fs_group: Some(plan.spec.server.fs_group.unwrap_or(uid)),
                    seccomp_profile: Some(SeccompProfile {
                        type_: "RuntimeDefault".into(),
                        localhost_profile: None,
                    }),
                    ..PodSecurityContext::default()
                }),
                containers: vec![Container {
                    name: "backup".into(),
                    image: Some(plan.image.clone()),
                    image_pull_policy: plan.spec.server.image_pull_policy.clone(),
                    args: Some(args),
                    env_from: backup.credentials_secret_ref.as_ref().map(|r| {
                        vec![EnvFromSource {
                            secret_ref: Some(SecretEnvSource { name: r.name.clone(), optional: Some(false) }),
                            ..EnvFromSource::default()
                        }]
                    }),
                    resources: Some(backup.resources.clone().unwrap_or_else(default_resources)),
                    security_context: Some(restricted_security_context()),
                    volume_mounts: Some(volume_mounts(plan)),
                    ..Container::default()
                }],
                volumes: Some(volumes(plan)),
                node_selector: (!plan.spec.server.node_selector.is_empty())
                    .then(|| plan.spec.server.node_selector.clone()),
                tolerations: (!plan.spec.server.tolerations.is_empty())
                    .then(|| plan.spec.server.tolerations.clone()),
                ..PodSpec::default()
            }),
        },
        ..JobSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources::fixtures::{full, minimal};

    #[test]
    fn runs_the_backup_command_on_schedule_with_store_credentials() {
        assert!(backup_cron_job(&minimal()).is_none());
        let c = serde_json::to_value(backup_cron_job(&full()).unwrap()).unwrap();
        assert_eq!(c["metadata"]["name"], "eastside-backup");
        assert_eq!(c["spec"]["schedule"], "0 3 * * *");
        assert_eq!(c["spec"]["timeZone"], "Europe/Berlin");
        assert_eq!(c["spec"]["suspend"], false);
        assert_eq!(c["spec"]["concurrencyPolicy"], "Forbid");
        assert_eq!(c["spec"]["jobTemplate"]["metadata"]["labels"]["app.kubernetes.io/component"], "backup");
        let pod = &c["spec"]["jobTemplate"]["spec"]["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Never");
        let ctr = &pod["containers"][0];
        assert_eq!(
            ctr["args"],
            json!([
                "backup",
                "--config",
                "/etc/mcp-fleet/server.yaml",
                "--to",
                "az://mcp-backups/eastside",
                "--keep-last",
                "14",
                "--keep-within",
                "30d"
            ])
        );
        assert_eq!(ctr["envFrom"], json!([{"secretRef": {"name": "backup-store", "optional": false}}]));
        assert_eq!(ctr["securityContext"]["readOnlyRootFilesystem"], true);
        assert_eq!(pod["volumes"][1]["secret"]["secretName"], "eastside-db-credentials");
    }

    #[test]
    fn the_final_backup_job_is_the_same_command() {
        let j = serde_json::to_value(snapshot_job(&full()).unwrap()).unwrap();
        assert_eq!(j["metadata"]["name"], "eastside-final-backup");
        assert_eq!(j["spec"]["template"]["spec"]["containers"][0]["args"][0], "backup");
        assert!(snapshot_job(&minimal()).is_none());
    }
}
