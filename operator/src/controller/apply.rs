//! Apply, the step after build: server-side apply of the children under one field manager, and
//! deletion of children the spec no longer wants (only when this McpTenant owns them), through
//! one generic [`Applier::apply_or_delete`]. What the watch shows unchanged since this operator
//! applied it is not sent again. Does I/O (Kubernetes API).

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::applied::{Applied, Stamp, fingerprint};
use super::watched::{Seen, Watchable, Watched};
use crate::build::{Children, Optional};
use crate::resources::{MANAGER, REPLICAS_HANDOVER_MANAGER};

/// What a child object is to the API: a namespaced kind the operator can apply (serialise) and
/// read back.
pub trait Child:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + Serialize + DeserializeOwned
{
}

impl<K> Child for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + Debug
        + Serialize
        + DeserializeOwned
{
}

/// A child the API server did not accept. Displays the API server's own message (what a user
/// fixes), not the whole response.
#[derive(Debug, thiserror::Error)]
#[error("{verb} {kind} {name}: {}", api_message(source))]
pub struct ApplyError {
    pub verb: &'static str,
    pub kind: String,
    pub name: String,
    #[source]
    pub source: kube::Error,
}

impl ApplyError {
    /// The condition reason for this failure.
    pub fn reason(&self) -> &'static str {
        self.class().0
    }

    pub fn metric_label(&self) -> &'static str {
        self.class().1
    }

    /// `(condition reason, metric label)` by the API server's answer.
    fn class(&self) -> (&'static str, &'static str) {
        match &self.source {
            kube::Error::Api(s) if s.code == 409 => ("ApplyConflict", "apply_conflict"),
            kube::Error::Api(s) if s.code == 422 || s.code == 400 => ("ApplyInvalid", "apply_invalid"),
            kube::Error::Api(s) if s.code == 403 => ("ApplyForbidden", "apply_forbidden"),
            _ => ("ApplyFailed", "apply_failed"),
        }
    }
}

fn api_message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} (HTTP {})", s.message, s.code),
        other => other.to_string(),
    }
}

/// Applies `obj` (server-side apply, forced, one field manager) and returns what the API server
/// stored. An unchanged object is not written: the API server keeps its resourceVersion.
pub async fn apply<K>(client: &Client, obj: &K) -> Result<K, ApplyError>
where
    K: Child,
{
    let ns = obj.namespace().unwrap_or_default();
    let name = obj.name_any();
    let api: Api<K> = Api::namespaced(client.clone(), &ns);
    api.patch(&name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(obj))
        .await
        .map_err(|source| ApplyError { verb: "applying", kind: K::kind(&()).into_owned(), name, source })
}

/// Deletes `name` if it exists and is owned by `owner_uid`; returns whether it deleted.
pub async fn delete_owned<K>(
    client: &Client,
    ns: &str,
    name: &str,
    owner_uid: &str,
) -> Result<bool, ApplyError>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + DeserializeOwned,
{
    let api: Api<K> = Api::namespaced(client.clone(), ns);
    let err =
        |verb, source| ApplyError { verb, kind: K::kind(&()).into_owned(), name: name.to_owned(), source };
    let Some(existing) = api.get_opt(name).await.map_err(|e| err("reading", e))? else {
        return Ok(false);
    };
    if !owned_by(existing.meta(), owner_uid) {
        return Ok(false);
    }
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(err("deleting", e)),
    }
}

fn owned_by(meta: &ObjectMeta, owner_uid: &str) -> bool {
    meta.owner_references.iter().flatten().any(|o| o.uid == owner_uid)
}

/// Applies one McpTenant's children, skipping what the watch shows unchanged since this
/// operator applied it (see [`Applied`]): a reconcile that changes nothing sends no request.
pub struct Applier<'a> {
    pub client: &'a Client,
    pub watched: &'a Watched,
    pub applied: &'a Applied,
    pub namespace: &'a str,
    pub owner_uid: &'a str,
}

impl Applier<'_> {
    /// Applies `obj` unless the watch shows it as the last apply of the same object left it.
    /// Returns what the API server stored, or `None` when nothing was sent.
    pub async fn apply<K: Watchable>(&self, obj: &K) -> Result<Option<K>, ApplyError> {
        let (kind, name) = (K::kind(&()), obj.name_any());
        let desired = fingerprint(obj);
        let seen = match K::seen(self.watched, self.namespace, &name) {
            Seen::Present(meta) => Some(Stamp::of(&meta)),
            Seen::Absent | Seen::NotListed => None,
        };
        if self.applied.unchanged(self.owner_uid, &kind, &name, desired, seen.as_ref()) {
            return Ok(None);
        }
        match apply(self.client, obj).await {
            Ok(stored) => {
                self.applied.record(self.owner_uid, &kind, &name, desired, Stamp::of(stored.meta()));
                Ok(Some(stored))
            }
            Err(e) => {
                self.applied.forget(self.owner_uid, &kind, &name);
                Err(e)
            }
        }
    }

    /// Applies `child` when the spec wants it, else deletes the object of its name if this
    /// McpTenant owns it: as the watch shows it, or, before the watch has listed, as the API
    /// server does.
    pub async fn apply_or_delete<K: Watchable>(&self, child: &Optional<K>) -> Result<(), ApplyError> {
        if let Some(object) = &child.object {
            return self.apply(object).await.map(drop);
        }
        self.applied.forget(self.owner_uid, &K::kind(&()), &child.name);
        match K::seen(self.watched, self.namespace, &child.name) {
            Seen::Absent => Ok(()),
            Seen::Present(meta) if !owned_by(&meta, self.owner_uid) => Ok(()),
            Seen::Present(_) | Seen::NotListed => {
                delete_owned::<K>(self.client, self.namespace, &child.name, self.owner_uid).await.map(drop)
            }
        }
    }

    /// The Deployment, applied unless unchanged; either way as the API server has it now.
    async fn deployment(&self, desired: &Deployment) -> Result<Deployment, ApplyError> {
        if let Some(stored) = self.apply(desired).await? {
            return Ok(stored);
        }
        match self.watched.deployment(self.namespace, &desired.name_any()) {
            Some(live) => Ok(live.as_ref().clone()),
            // The watch dropped it between the two looks: ask the API server.
            None => apply(self.client, desired).await,
        }
    }
}

/// Writes every child in order (the Deployment after what its pods mount); returns the
/// Deployment as the API server has it, whose status says how the rollout goes.
pub async fn apply_children(a: &Applier<'_>, children: &Children) -> Result<Deployment, ApplyError> {
    a.apply_or_delete(&children.service_account).await?;
    if let Some(stored) = a.apply(&children.credentials).await? {
        a.watched.remember_secret(&stored);
    }
    a.apply(&children.config_map).await?;
    a.apply(&children.service).await?;
    let deployment = match &children.autoscaler.object {
        Some(hpa) => a.deployment(&hand_replicas_to(a, &children.deployment, hpa).await?).await?,
        None => a.deployment(&children.deployment).await?,
    };
    a.apply_or_delete(&children.autoscaler).await?;
    a.apply(&children.disruption_budget).await?;
    a.apply_or_delete(&children.network_policy).await?;
    a.apply_or_delete(&children.ingress).await?;
    a.apply_or_delete(&children.backup).await?;
    Ok(deployment)
}

/// The Deployment to apply when `hpa` decides its replicas.
///
/// The operator then stops applying `spec.replicas`. Server-side apply removes a field that its
/// last owner stops applying, and the Deployment falls back to 1 replica until the autoscaler's
/// next sync: a scale-down below `minReplicas` at the moment a user turns autoscaling on. So,
/// as Kubernetes documents for handing `replicas` to an HPA, another field manager first applies
/// the current count (clamped to the HPA's bounds) and keeps the field alive; the autoscaler's
/// next scale takes it from there. A Deployment that does not exist yet starts at `minReplicas`.
/// Costs one read per reconcile while autoscaling is on, and one more write at the handover.
async fn hand_replicas_to(
    a: &Applier<'_>,
    desired: &Deployment,
    hpa: &HorizontalPodAutoscaler,
) -> Result<Deployment, ApplyError> {
    let (ns, name) = (a.namespace, desired.name_any());
    let api: Api<Deployment> = Api::namespaced(a.client.clone(), ns);
    let err = |verb, source| ApplyError { verb, kind: "Deployment".into(), name: name.clone(), source };
    let min = hpa.spec.min_replicas.unwrap_or(1);
    let max = hpa.spec.max_replicas.max(min);
    let mut desired = desired.clone();
    // The watch's copy; the API server's when the watch shows none (not listed yet, or created
    // just now).
    let live = match a.watched.deployment(ns, &name) {
        Some(live) => Some(live.as_ref().clone()),
        None => api.get_opt(&name).await.map_err(|e| err("reading", e))?,
    };
    let Some(live) = live else {
        if let Some(spec) = desired.spec.as_mut() {
            spec.replicas = Some(min);
        }
        return Ok(desired);
    };
    if owns_replicas(&live, MANAGER) {
        let now = live.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1).clamp(min, max);
        let handover = serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": now},
        });
        api.patch(&name, &PatchParams::apply(REPLICAS_HANDOVER_MANAGER).force(), &Patch::Apply(&handover))
            .await
            .map_err(|e| err("handing replicas to the autoscaler on", e))?;
    }
    Ok(desired)
}

/// Whether `manager` holds `spec.replicas` through server-side apply.
fn owns_replicas(d: &Deployment, manager: &str) -> bool {
    d.managed_fields().iter().any(|m| {
        m.manager.as_deref() == Some(manager)
            && m.operation.as_deref() == Some("Apply")
            && m.fields_v1.as_ref().is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some())
    })
}
