//! Apply, the step after build: server-side apply of the children under one field manager, and
//! deletion of children the spec no longer wants (only when this McpTenant owns them), through
//! one generic [`apply_or_delete`]. Does I/O (Kubernetes API).

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

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
    if !existing.owner_references().iter().any(|o| o.uid == owner_uid) {
        return Ok(false);
    }
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(false),
        Err(e) => Err(err("deleting", e)),
    }
}

/// Applies `child` when the spec wants it, else deletes the object of its name if `owner_uid`
/// owns it. Returns what the API server stored, for an applied child.
pub async fn apply_or_delete<K>(
    client: &Client,
    ns: &str,
    owner_uid: &str,
    child: &Optional<K>,
) -> Result<Option<K>, ApplyError>
where
    K: Child,
{
    match &child.object {
        Some(object) => apply(client, object).await.map(Some),
        None => delete_owned::<K>(client, ns, &child.name, owner_uid).await.map(|_| None),
    }
}

/// Writes every child in order (the Deployment after what its pods mount); returns the applied
/// Deployment, whose status says how the rollout goes.
pub async fn apply_children(client: &Client, children: &Children) -> Result<Deployment, ApplyError> {
    let (ns, uid) = (children.namespace.as_str(), children.owner_uid.as_str());
    apply_or_delete(client, ns, uid, &children.service_account).await?;
    apply(client, &children.credentials).await?;
    apply(client, &children.config_map).await?;
    apply(client, &children.service).await?;
    let deployment = match &children.autoscaler.object {
        Some(hpa) => apply(client, &hand_replicas_to(client, &children.deployment, hpa).await?).await?,
        None => apply(client, &children.deployment).await?,
    };
    apply_or_delete(client, ns, uid, &children.autoscaler).await?;
    apply(client, &children.disruption_budget).await?;
    apply_or_delete(client, ns, uid, &children.network_policy).await?;
    apply_or_delete(client, ns, uid, &children.ingress).await?;
    apply_or_delete(client, ns, uid, &children.backup).await?;
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
    client: &Client,
    desired: &Deployment,
    hpa: &HorizontalPodAutoscaler,
) -> Result<Deployment, ApplyError> {
    let (ns, name) = (desired.namespace().unwrap_or_default(), desired.name_any());
    let api: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let err = |verb, source| ApplyError { verb, kind: "Deployment".into(), name: name.clone(), source };
    let min = hpa.spec.min_replicas.unwrap_or(1);
    let max = hpa.spec.max_replicas.max(min);
    let mut desired = desired.clone();
    let Some(live) = api.get_opt(&name).await.map_err(|e| err("reading", e))? else {
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
