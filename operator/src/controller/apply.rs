//! Apply, the step after build: server-side apply of the children under one field manager, and
//! deletion of children the spec no longer wants (only when this McpTenant owns them), through
//! one generic [`apply_or_delete`]. Does I/O (Kubernetes API).

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::build::{Children, Optional};
use crate::resources::MANAGER;

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
    let deployment = apply(client, &children.deployment).await?;
    apply_or_delete(client, ns, uid, &children.autoscaler).await?;
    apply(client, &children.disruption_budget).await?;
    apply_or_delete(client, ns, uid, &children.network_policy).await?;
    apply_or_delete(client, ns, uid, &children.ingress).await?;
    apply_or_delete(client, ns, uid, &children.backup).await?;
    Ok(deployment)
}
