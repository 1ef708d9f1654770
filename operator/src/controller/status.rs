//! Status, the last step of a reconcile: conditions (kstatus-compatible, with
//! `observedGeneration`) computed from what this reconcile observed, written only when they
//! changed, and an Event for every condition that changed. The observations (`observe_workload`,
//! `backup_verdict`), `desired_status` and `condition_changes` are pure; `publish` does I/O.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use crate::crd::{McpTenant, McpTenantStatus, condition as c};
use crate::resources::{MANAGER, names};
use crate::validate::Plan;

/// Outcome of one step, as a condition: `(status is True, reason, message)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub ok: bool,
    pub reason: String,
    pub message: String,
}

impl Verdict {
    pub fn ok(reason: &str, message: impl Into<String>) -> Self {
        Self { ok: true, reason: reason.into(), message: message.into() }
    }
    pub fn failed(reason: &str, message: impl Into<String>) -> Self {
        Self { ok: false, reason: reason.into(), message: message.into() }
    }
}

/// What one reconcile found out. `None` fields were not looked at this time: their previous
/// conditions and values stay.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observation {
    pub generation: Option<i64>,
    pub tenant: Option<String>,
    /// The spec cannot be acted on until it changes (kstatus `Stalled`).
    pub stalled: Option<Verdict>,
    pub database: Option<Verdict>,
    pub workload: Option<Verdict>,
    /// `None` inside: backup not configured.
    pub backup: Option<Verdict>,
    pub store_ids: Option<Vec<i32>>,
    pub endpoint: Option<String>,
    pub replicas: Option<Option<i32>>,
    pub ready_replicas: Option<Option<i32>>,
    pub credentials_secret: Option<String>,
    pub last_backup: Option<Option<Time>>,
}

/// What the applied Deployment says: the workload verdict and the replica counts.
pub fn observe_workload(obs: &mut Observation, d: &Deployment) {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    let available = status.available_replicas.unwrap_or(0);
    let updated = status.updated_replicas.unwrap_or(0);
    let ready = status.ready_replicas.unwrap_or(0);
    let seen = status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0);
    obs.replicas = Some(Some(desired));
    obs.ready_replicas = Some(Some(ready));
    obs.workload = Some(if desired == 0 {
        Verdict::ok("ScaledToZero", "the Deployment has 0 replicas")
    } else if !seen {
        Verdict::failed("Progressing", "the Deployment controller has not seen the latest spec yet")
    } else if available >= desired && updated >= desired {
        Verdict::ok("Available", format!("{available} of {desired} replicas available"))
    } else if let Some(stuck) = stuck_rollout(&status) {
        // Past `progressDeadlineSeconds` without progress (pods crash-looping, say): a failure.
        Verdict::failed(
            stuck.reason.as_deref().unwrap_or("ProgressDeadlineExceeded"),
            format!(
                "{available} of {desired} replicas available: {}; see `kubectl describe deployment {}`",
                stuck.message.as_deref().unwrap_or("the rollout stopped making progress"),
                d.name_any()
            ),
        )
    } else {
        Verdict::failed(
            "Progressing",
            format!(
                "{available} of {desired} replicas available, {updated} updated; see `kubectl describe deployment {}`",
                d.name_any()
            ),
        )
    });
}

/// The Deployment's `Progressing=False` condition: its rollout passed `progressDeadlineSeconds`.
fn stuck_rollout(
    status: &k8s_openapi::api::apps::v1::DeploymentStatus,
) -> Option<&k8s_openapi::api::apps::v1::DeploymentCondition> {
    status.conditions.iter().flatten().find(|c| c.type_ == "Progressing" && c.status == "False")
}

/// What of `d` the reconcile reads ([`observe_workload`], [`rolled_out`],
/// [`rollout_finished_at`], the replica handover), with its generation and own metadata, hashed:
/// a new value is worth a reconcile.
pub fn workload_fingerprint(d: &Deployment) -> u64 {
    let status = d.status.clone().unwrap_or_default();
    let stuck = stuck_rollout(&status).map(|c| (&c.reason, &c.message));
    super::applied::fingerprint(&(
        (d.metadata.generation, super::applied::metadata_fingerprint(&d.metadata)),
        (d.spec.as_ref().and_then(|s| s.replicas), status.observed_generation),
        [status.replicas, status.updated_replicas, status.ready_replicas, status.available_replicas],
        stuck,
        rollout_finished_at(d).map(|t| t.to_string()),
    ))
}

/// Whether every pod of `d` runs its current template: the controller has seen the spec, and all
/// its (non-terminating) pods are updated and available.
pub fn rolled_out(d: &Deployment) -> bool {
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = d.status.clone().unwrap_or_default();
    let updated = status.updated_replicas.unwrap_or(0);
    status.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
        && updated >= desired
        && status.replicas.unwrap_or(0) == updated
        && status.available_replicas.unwrap_or(0) >= desired
}

/// When the Deployment's last rollout finished (its `Progressing` condition turned
/// `NewReplicaSetAvailable`), if it has.
pub fn rollout_finished_at(d: &Deployment) -> Option<k8s_openapi::jiff::Timestamp> {
    let conditions = d.status.as_ref()?.conditions.as_ref()?;
    let progressing = conditions.iter().find(|c| c.type_ == "Progressing")?;
    (progressing.reason.as_deref() == Some("NewReplicaSetAvailable"))
        .then(|| progressing.last_update_time.as_ref().map(|t| t.0))
        .flatten()
}

/// Whether backups are scheduled, and where to.
pub fn backup_verdict(plan: &Plan) -> Verdict {
    match &plan.spec.backup {
        None => Verdict::failed("NotConfigured", "spec.backup is not set"),
        Some(b) if b.suspend => Verdict::failed("Suspended", "spec.backup.suspend is true"),
        Some(b) => Verdict::ok(
            "Scheduled",
            format!(
                "CronJob {} runs {:?}{} to {}",
                names::backup_cron_job(&plan.name),
                b.schedule,
                b.time_zone.as_ref().map(|z| format!(" ({z})")).unwrap_or_default(),
                b.destination
            ),
        ),
    }
}

/// The status to write, keeping `lastTransitionTime` of conditions whose status did not change.
pub fn desired_status(previous: Option<&McpTenantStatus>, obs: &Observation, now: &Time) -> McpTenantStatus {
    let prev = previous.cloned().unwrap_or_default();
    let mut verdicts: BTreeMap<&str, Option<Verdict>> = BTreeMap::new();
    let carried = |t: &str| {
        prev.condition(t).map(|cd| Verdict {
            ok: cd.status == "True",
            reason: cd.reason.clone(),
            message: cd.message.clone(),
        })
    };
    for (t, v) in [
        (c::DATABASE_READY, &obs.database),
        (c::WORKLOAD_READY, &obs.workload),
        (c::BACKUP_SCHEDULED, &obs.backup),
    ] {
        verdicts.insert(t, v.clone().or_else(|| carried(t)));
    }
    let ready = if let Some(s) = &obs.stalled {
        Verdict::failed(&s.reason, s.message.clone())
    } else {
        let blocking = [c::DATABASE_READY, c::WORKLOAD_READY]
            .into_iter()
            .map(|t| (t, verdicts[t].clone()))
            .find(|(_, v)| !v.as_ref().is_some_and(|v| v.ok));
        match blocking {
            None => Verdict::ok(
                "Ready",
                format!("serving at {}", obs.endpoint.clone().or(prev.endpoint.clone()).unwrap_or_default()),
            ),
            Some((t, Some(v))) => Verdict::failed(&v.reason, format!("{t}: {}", v.message)),
            Some((t, None)) => Verdict::failed("Pending", format!("{t} not observed yet")),
        }
    };
    let reconciling =
        (obs.stalled.is_none() && !ready.ok).then(|| Verdict::ok(&ready.reason, ready.message.clone()));
    let stalled = obs.stalled.clone().map(|s| Verdict::ok(&s.reason, s.message));

    let mut conditions = Vec::new();
    let mut push = |t: &str, v: &Verdict| {
        let status = if v.ok { "True" } else { "False" };
        let since = prev
            .condition(t)
            .filter(|old| old.status == status)
            .map(|old| old.last_transition_time.clone())
            .unwrap_or_else(|| now.clone());
        conditions.push(Condition {
            type_: t.to_owned(),
            status: status.to_owned(),
            reason: v.reason.clone(),
            message: v.message.clone(),
            observed_generation: obs.generation,
            last_transition_time: since,
        });
    };
    push(c::READY, &ready);
    for t in [c::DATABASE_READY, c::WORKLOAD_READY, c::BACKUP_SCHEDULED] {
        if let Some(v) = &verdicts[t] {
            push(t, v);
        }
    }
    if let Some(v) = &reconciling {
        push(c::RECONCILING, v);
    }
    if let Some(v) = &stalled {
        push(c::STALLED, v);
    }
    McpTenantStatus {
        observed_generation: obs.generation,
        conditions,
        tenant: obs.tenant.clone().or(prev.tenant),
        store_ids: obs.store_ids.clone().unwrap_or(prev.store_ids),
        endpoint: obs.endpoint.clone().or(prev.endpoint),
        replicas: obs.replicas.unwrap_or(prev.replicas),
        ready_replicas: obs.ready_replicas.unwrap_or(prev.ready_replicas),
        credentials_secret: obs.credentials_secret.clone().or(prev.credentials_secret),
        last_backup: obs.last_backup.clone().unwrap_or(prev.last_backup),
    }
}

/// Conditions whose status or reason changed (or appeared), for Events. Reconciling, and Ready
/// while False, are left out: they repeat the reason of the condition that holds the tenant back,
/// which has an Event of its own (so a failure is told once, and a new tenant costs one request
/// fewer). Ready turning True is told.
pub fn condition_changes<'a>(
    previous: Option<&McpTenantStatus>,
    next: &'a McpTenantStatus,
) -> Vec<&'a Condition> {
    next.conditions
        .iter()
        .filter(|n| n.type_ != c::RECONCILING && !(n.type_ == c::READY && n.status != "True"))
        .filter(|n| {
            previous
                .and_then(|p| p.condition(&n.type_))
                .is_none_or(|o| o.status != n.status || o.reason != n.reason)
        })
        .collect()
}

/// Writes the status when it differs from what the object carries, and publishes an Event per
/// changed condition. Returns whether it wrote.
pub async fn publish(
    client: &Client,
    recorder: &Recorder,
    tenant: &McpTenant,
    next: &McpTenantStatus,
) -> Result<bool, kube::Error> {
    let previous = tenant.status.as_ref();
    // `desired_status` keeps the `lastTransitionTime` of unchanged conditions, so an unchanged
    // observation gives an equal status and nothing is written.
    if previous == Some(next) {
        return Ok(false);
    }
    let api: Api<McpTenant> = Api::namespaced(client.clone(), &tenant.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": McpTenant::api_version(&()),
        "kind": McpTenant::kind(&()),
        "status": next,
    });
    api.patch_status(&tenant.name_any(), &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch)).await?;
    let reference = tenant.object_ref(&());
    for cond in condition_changes(previous, next) {
        // A rollout in progress is how every change starts, not a failure: Normal, not Warning.
        let good = cond.status == "True" || matches!(cond.reason.as_str(), "NotConfigured" | "Progressing");
        let event = Event {
            type_: if good && cond.type_ != c::STALLED { EventType::Normal } else { EventType::Warning },
            reason: cond.reason.clone(),
            note: Some(truncate(&format!("{} is {}: {}", cond.type_, cond.status, cond.message), 1000)),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, "could not publish an event");
        }
    }
    Ok(true)
}

/// Publishes one Event about `tenant` (failures are logged, never fatal).
pub async fn event(recorder: &Recorder, tenant: &McpTenant, warning: bool, reason: &str, note: String) {
    let ev = Event {
        type_: if warning { EventType::Warning } else { EventType::Normal },
        reason: reason.into(),
        note: Some(truncate(&note, 1000)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, &tenant.object_ref(&())).await {
        tracing::warn!(error = %e, "could not publish an event");
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(sec: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(sec).unwrap())
    }

    fn healthy() -> Observation {
        Observation {
            generation: Some(3),
            tenant: Some("seattle".into()),
            database: Some(Verdict::ok("RolesApplied", "roles own stores 1")),
            workload: Some(Verdict::ok("Available", "2 of 2 replicas available")),
            backup: Some(Verdict::failed("NotConfigured", "spec.backup is not set")),
            store_ids: Some(vec![1]),
            endpoint: Some("http://x/mcp".into()),
            ..Observation::default()
        }
    }

    #[test]
    fn ready_when_database_and_workload_are_and_backups_are_optional() {
        let s = desired_status(None, &healthy(), &t(10));
        assert!(s.is_true(c::READY));
        assert_eq!(s.observed_generation, Some(3));
        assert!(s.conditions.iter().all(|cd| cd.observed_generation == Some(3)));
        assert!(s.condition(c::RECONCILING).is_none() && s.condition(c::STALLED).is_none());
        let types: Vec<&str> = s.conditions.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [c::READY, c::DATABASE_READY, c::WORKLOAD_READY, c::BACKUP_SCHEDULED]);
    }

    #[test]
    fn an_unchanged_observation_gives_an_identical_status_and_no_events() {
        let first = desired_status(None, &healthy(), &t(10));
        let again = desired_status(Some(&first), &healthy(), &t(99));
        assert_eq!(first, again, "transition times are kept, so nothing is written");
        assert!(condition_changes(Some(&first), &again).is_empty());
    }

    #[test]
    fn a_database_failure_names_the_reason_and_keeps_what_was_known() {
        let first = desired_status(None, &healthy(), &t(10));
        let obs = Observation {
            generation: Some(3),
            database: Some(Verdict::failed("DatabaseUnreachable", "cannot reach PostgreSQL: refused")),
            ..Observation::default()
        };
        let s = desired_status(Some(&first), &obs, &t(20));
        let ready = s.condition(c::READY).unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "DatabaseUnreachable"));
        assert!(ready.message.contains("refused"));
        assert_eq!(ready.last_transition_time, t(20));
        assert!(s.is_true(c::WORKLOAD_READY), "not re-observed: kept");
        assert_eq!(s.condition(c::WORKLOAD_READY).unwrap().last_transition_time, t(10));
        assert!(s.is_true(c::RECONCILING));
        assert_eq!(s.store_ids, vec![1]);
        let changed: Vec<&str> =
            condition_changes(Some(&first), &s).iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(changed, [c::DATABASE_READY], "the failure is told once, not again as Ready");
    }

    #[test]
    fn an_invalid_spec_stalls() {
        let obs = Observation {
            generation: Some(4),
            stalled: Some(Verdict::failed("InvalidBackupSpec", "spec.backup.schedule is bad")),
            ..Observation::default()
        };
        let s = desired_status(None, &obs, &t(1));
        assert!(s.is_true(c::STALLED));
        assert!(!s.is_true(c::READY));
        assert!(s.condition(c::RECONCILING).is_none());
        assert_eq!(s.condition(c::READY).unwrap().reason, "InvalidBackupSpec");
    }

    fn deployment(replicas: i32, generation: i64, seen: i64, available: i32, updated: i32) -> Deployment {
        use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
        Deployment {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("seattle".into()),
                generation: Some(generation),
                ..Default::default()
            },
            spec: Some(DeploymentSpec { replicas: Some(replicas), ..Default::default() }),
            status: Some(DeploymentStatus {
                observed_generation: Some(seen),
                available_replicas: Some(available),
                updated_replicas: Some(updated),
                ready_replicas: Some(available),
                ..Default::default()
            }),
        }
    }

    fn workload(d: &Deployment) -> (Verdict, Option<Option<i32>>, Option<Option<i32>>) {
        let mut obs = Observation::default();
        observe_workload(&mut obs, d);
        (obs.workload.unwrap(), obs.replicas, obs.ready_replicas)
    }

    #[test]
    fn a_workload_is_ready_when_the_latest_spec_is_rolled_out_everywhere() {
        let (v, replicas, ready) = workload(&deployment(2, 3, 3, 2, 2));
        assert_eq!((v.ok, v.reason.as_str()), (true, "Available"));
        assert_eq!((replicas, ready), (Some(Some(2)), Some(Some(2))));
        let (v, ..) = workload(&deployment(2, 4, 3, 2, 2));
        assert_eq!((v.ok, v.reason.as_str()), (false, "Progressing"), "generation 4 not seen yet");
        let (v, ..) = workload(&deployment(2, 3, 3, 2, 1));
        assert!(
            !v.ok && v.message.contains("1 updated") && v.message.contains("describe deployment seattle")
        );
        let (v, ..) = workload(&deployment(0, 3, 1, 0, 0));
        assert_eq!((v.ok, v.reason.as_str()), (true, "ScaledToZero"));
    }

    #[test]
    fn a_rollout_past_its_deadline_is_a_failure_not_progress() {
        use k8s_openapi::api::apps::v1::DeploymentCondition;
        let mut d = deployment(2, 3, 3, 1, 2);
        d.status.as_mut().unwrap().conditions = Some(vec![DeploymentCondition {
            type_: "Progressing".into(),
            status: "False".into(),
            reason: Some("ProgressDeadlineExceeded".into()),
            message: Some("ReplicaSet \"seattle-5d4\" has timed out progressing.".into()),
            ..Default::default()
        }]);
        let (v, ..) = workload(&d);
        assert_eq!((v.ok, v.reason.as_str()), (false, "ProgressDeadlineExceeded"));
        assert!(v.message.contains("timed out progressing") && v.message.contains("1 of 2"), "{v:?}");
    }

    #[test]
    fn only_what_the_reconcile_reads_of_a_deployment_is_worth_a_reconcile() {
        use k8s_openapi::api::apps::v1::DeploymentCondition;
        let progressing = |status: &str, reason: &str, message: &str| DeploymentCondition {
            type_: "Progressing".into(),
            status: status.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            ..Default::default()
        };
        let base = deployment(2, 3, 3, 1, 2);
        let changed = |edit: &dyn Fn(&mut Deployment)| {
            let mut d = base.clone();
            edit(&mut d);
            workload_fingerprint(&d) != workload_fingerprint(&base)
        };
        // The Deployment controller's bookkeeping: no reconcile.
        assert!(!changed(&|d| {
            d.metadata.annotations =
                Some([("deployment.kubernetes.io/revision".to_owned(), "2".to_owned())].into());
        }));
        assert!(!changed(&|d| d.status.as_mut().unwrap().unavailable_replicas = Some(1)));
        assert!(!changed(&|d| {
            d.status.as_mut().unwrap().conditions =
                Some(vec![progressing("True", "ReplicaSetUpdated", "ReplicaSet \"s-1\" is progressing.")]);
        }));
        // What the status, the rollout and the handover read: a reconcile.
        assert!(changed(&|d| d.status.as_mut().unwrap().available_replicas = Some(2)));
        assert!(changed(&|d| d.status.as_mut().unwrap().observed_generation = Some(4)));
        assert!(changed(&|d| d.metadata.generation = Some(4)));
        assert!(changed(&|d| d.spec.as_mut().unwrap().replicas = Some(3)));
        assert!(changed(&|d| {
            d.status.as_mut().unwrap().conditions =
                Some(vec![progressing("False", "ProgressDeadlineExceeded", "timed out")]);
        }));
        assert!(changed(&|d| {
            d.metadata.annotations = Some([("example.com/team".to_owned(), "x".to_owned())].into());
        }));
    }

    #[test]
    fn backups_are_scheduled_not_configured_or_suspended() {
        use crate::resources::fixtures::{full, minimal};
        assert_eq!(backup_verdict(&minimal()).reason, "NotConfigured");
        let mut plan = full();
        let v = backup_verdict(&plan);
        assert!(v.ok && v.message.starts_with("CronJob eastside-backup runs"), "{v:?}");
        plan.spec.backup.as_mut().unwrap().suspend = true;
        assert_eq!(backup_verdict(&plan), Verdict::failed("Suspended", "spec.backup.suspend is true"));
    }
}
