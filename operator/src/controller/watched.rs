//! The watch caches a reconcile reads instead of the API server: the children's metadata (the
//! Deployment whole, for its rollout status) and every Secret's metadata, plus the content of the
//! Secrets a reconcile read, kept while the watch shows the same resourceVersion. Does I/O only
//! where a cache cannot answer (a Secret not yet read, or changed since).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use futures::FutureExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ObjectMeta};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, Resource};

use super::apply::Child;

/// What the watch shows of one object.
#[derive(Debug)]
pub enum Seen {
    /// The watch has not listed yet: it knows nothing.
    NotListed,
    Absent,
    Present(Box<ObjectMeta>),
}

/// Declares the watch caches once: [`Watched`] (the reading ends, plus the Secret contents),
/// [`Writers`] (the writing ends, one per watch, fed in `controller::run`) and, for each child
/// kind, how to find one of its objects ([`Watchable`]).
macro_rules! caches {
    ($($field:ident: $cached:ty => $kind:ty),* $(,)?) => {
        /// The operator's watch caches.
        #[derive(Clone)]
        pub struct Watched {
            $($field: Store<$cached>,)*
            secret_data: SecretData,
        }

        /// The writing ends of [`Watched`]'s caches, one per watch.
        pub struct Writers {
            $(pub $field: Writer<$cached>,)*
        }

        impl Watched {
            /// Empty caches and their writers.
            pub fn new() -> (Self, Writers) {
                let writers = Writers { $($field: Writer::default(),)* };
                let watched = Self { $($field: writers.$field.as_reader(),)* secret_data: Arc::default() };
                (watched, writers)
            }
        }

        $(impl Watchable for $kind {
            fn seen(watched: &Watched, ns: &str, name: &str) -> Seen {
                seen_in(&watched.$field, ns, name, |o| &o.metadata)
            }
        })*

        #[cfg(test)]
        impl Writers {
            /// Every watch has listed, and found nothing.
            pub fn list_nothing(&mut self) {
                use kube::runtime::watcher::Event;
                $(
                    self.$field.apply_watcher_event(&Event::Init);
                    self.$field.apply_watcher_event(&Event::InitDone);
                )*
            }
        }
    };
}

caches!(
    secrets: PartialObjectMeta<Secret> => Secret,
    service_accounts: PartialObjectMeta<ServiceAccount> => ServiceAccount,
    config_maps: PartialObjectMeta<ConfigMap> => ConfigMap,
    services: PartialObjectMeta<Service> => Service,
    // The Deployment whole: its rollout status goes into the McpTenant's.
    deployments: Deployment => Deployment,
    autoscalers: PartialObjectMeta<HorizontalPodAutoscaler> => HorizontalPodAutoscaler,
    disruption_budgets: PartialObjectMeta<PodDisruptionBudget> => PodDisruptionBudget,
    network_policies: PartialObjectMeta<NetworkPolicy> => NetworkPolicy,
    ingresses: PartialObjectMeta<Ingress> => Ingress,
    cron_jobs: PartialObjectMeta<CronJob> => CronJob,
);

/// Content of the Secrets read or written, by (namespace, name), each with the resourceVersion
/// it had then.
type SecretData = Arc<Mutex<HashMap<(String, String), Arc<Secret>>>>;

impl Watched {
    /// The Deployment `ns/name` as the watch shows it.
    pub fn deployment(&self, ns: &str, name: &str) -> Option<Arc<Deployment>> {
        self.deployments.get(&ObjectRef::new(name).within(ns))
    }

    /// Secret `ns/name`: from the cache while the watch shows the resourceVersion read, else from
    /// the API server (`None` when it does not exist).
    pub async fn secret(
        &self,
        client: &Client,
        ns: &str,
        name: &str,
    ) -> Result<Option<Arc<Secret>>, kube::Error> {
        if let Seen::Present(seen) = seen_in(&self.secrets, ns, name, |s| &s.metadata)
            && let Some(hit) = self.cached_secret(ns, name)
            && hit.metadata.resource_version == seen.resource_version
        {
            return Ok(Some(hit));
        }
        let api: Api<Secret> = Api::namespaced(client.clone(), ns);
        match api.get_opt(name).await? {
            Some(secret) => Ok(Some(self.keep(secret))),
            None => {
                let mut data = self.secret_data.lock().unwrap_or_else(PoisonError::into_inner);
                data.remove(&(ns.to_owned(), name.to_owned()));
                Ok(None)
            }
        }
    }

    /// A Secret this operator creates (a tenant's credentials): like [`Self::secret`], but when
    /// the listed watch shows none and this process never read or wrote it, the answer is `None`
    /// without asking the API server. Only the operator writes such a Secret, and every write it
    /// made is in the content cache, so that answer can be wrong only for a Secret someone else
    /// created in the moment before; the apply then takes it over with new credentials. Not for a
    /// user's Secret (the admin URL): one applied together with its McpTenant may reach the watch
    /// after the McpTenant, and would be reported missing.
    pub async fn own_secret(
        &self,
        client: &Client,
        ns: &str,
        name: &str,
    ) -> Result<Option<Arc<Secret>>, kube::Error> {
        if matches!(seen_in(&self.secrets, ns, name, |s| &s.metadata), Seen::Absent)
            && self.cached_secret(ns, name).is_none()
        {
            return Ok(None);
        }
        self.secret(client, ns, name).await
    }

    /// Keeps `secret` (as the API server returned it from a write) for [`Self::secret`].
    pub fn remember_secret(&self, secret: &Secret) {
        self.keep(secret.clone());
    }

    /// Puts `secret`, without its managed fields, in the content cache.
    fn keep(&self, mut secret: Secret) -> Arc<Secret> {
        trim_metadata(&mut secret.metadata);
        let key = (
            secret.metadata.namespace.clone().unwrap_or_default(),
            secret.metadata.name.clone().unwrap_or_default(),
        );
        let secret = Arc::new(secret);
        self.secret_data.lock().unwrap_or_else(PoisonError::into_inner).insert(key, secret.clone());
        secret
    }

    fn cached_secret(&self, ns: &str, name: &str) -> Option<Arc<Secret>> {
        let data = self.secret_data.lock().unwrap_or_else(PoisonError::into_inner);
        data.get(&(ns.to_owned(), name.to_owned())).cloned()
    }
}

/// What the metadata caches keep of an object: all but its managed fields, which a skip
/// decision never reads and which are most of a server-side-applied object's metadata.
pub fn trim_metadata(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
}

/// What the Deployment cache keeps: what the status and the replica handover read (metadata,
/// `spec.replicas`, the status, and whether `manager` applies `spec.replicas`), not the pod
/// template or the other managed fields.
pub fn trim_deployment(d: &mut Deployment, manager: &str) {
    let replicas = serde_json::json!({"f:spec": {"f:replicas": {}}});
    d.metadata.managed_fields = d.metadata.managed_fields.take().map(|entries| {
        entries
            .into_iter()
            .filter(|m| m.manager.as_deref() == Some(manager) && m.operation.as_deref() == Some("Apply"))
            .filter(|m| m.fields_v1.as_ref().is_some_and(|f| f.0.pointer("/f:spec/f:replicas").is_some()))
            .map(|mut m| {
                m.fields_v1 = Some(FieldsV1(replicas.clone()));
                m
            })
            .collect()
    });
    if let Some(spec) = d.spec.as_mut() {
        spec.template = Default::default();
    }
}

/// A child kind the operator watches: what the watch shows of one of its objects.
pub trait Watchable: Child {
    fn seen(watched: &Watched, ns: &str, name: &str) -> Seen;
}

fn seen_in<K>(store: &Store<K>, ns: &str, name: &str, meta: impl Fn(&K) -> &ObjectMeta) -> Seen
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    if !listed(store) {
        return Seen::NotListed;
    }
    match store.get(&ObjectRef::new(name).within(ns)) {
        Some(o) => Seen::Present(Box::new(meta(&o).clone())),
        None => Seen::Absent,
    }
}

/// Whether `store`'s watch has listed once.
fn listed<K>(store: &Store<K>) -> bool
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store.wait_until_ready().now_or_never().is_some_and(|ready| ready.is_ok())
}

#[cfg(test)]
impl Writers {
    /// The watch of `object`'s kind shows `object` (JSON as the API server returns it).
    pub fn show(&mut self, object: &serde_json::Value) {
        use kube::runtime::watcher::Event;
        fn meta<K: Resource<DynamicType = ()>>(o: &serde_json::Value) -> Event<PartialObjectMeta<K>> {
            let metadata = serde_json::from_value(o["metadata"].clone()).expect("object metadata");
            Event::Apply(PartialObjectMeta { types: None, metadata, _phantom: std::marker::PhantomData })
        }
        match object["kind"].as_str() {
            Some("Secret") => self.secrets.apply_watcher_event(&meta(object)),
            Some("ServiceAccount") => self.service_accounts.apply_watcher_event(&meta(object)),
            Some("ConfigMap") => self.config_maps.apply_watcher_event(&meta(object)),
            Some("Service") => self.services.apply_watcher_event(&meta(object)),
            Some("Deployment") => self.deployments.apply_watcher_event(&Event::Apply(
                serde_json::from_value(object.clone()).expect("a Deployment"),
            )),
            Some("HorizontalPodAutoscaler") => self.autoscalers.apply_watcher_event(&meta(object)),
            Some("PodDisruptionBudget") => self.disruption_budgets.apply_watcher_event(&meta(object)),
            Some("NetworkPolicy") => self.network_policies.apply_watcher_event(&meta(object)),
            Some("Ingress") => self.ingresses.apply_watcher_event(&meta(object)),
            Some("CronJob") => self.cron_jobs.apply_watcher_event(&meta(object)),
            other => panic!("no watch of kind {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

    use super::*;

    fn entry(manager: &str, operation: &str, fields: serde_json::Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        }
    }

    #[test]
    fn the_deployment_cache_keeps_replicas_status_and_who_applies_replicas_only() {
        let mut d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "d", "generation": 4, "labels": {"a": "b"}},
            "spec": {"replicas": 3, "selector": {}, "template": {"spec": {"containers": [{"name": "server", "image": "x"}]}}},
            "status": {"observedGeneration": 4, "readyReplicas": 2},
        }))
        .unwrap();
        d.metadata.managed_fields = Some(vec![
            entry(
                "op",
                "Apply",
                serde_json::json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {}}}}),
            ),
            entry("kube-controller-manager", "Update", serde_json::json!({"f:status": {}})),
        ]);
        let mut trimmed = d.clone();
        trim_deployment(&mut trimmed, "op");
        let kept = trimmed.metadata.managed_fields.as_deref().unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].fields_v1.as_ref().unwrap().0, serde_json::json!({"f:spec": {"f:replicas": {}}}));
        assert_eq!(trimmed.spec.as_ref().unwrap().replicas, Some(3));
        assert!(trimmed.spec.as_ref().unwrap().template.spec.is_none(), "no pod template");
        assert_eq!((&trimmed.status, &trimmed.metadata.labels), (&d.status, &d.metadata.labels));

        // Once the autoscaler owns replicas, the operator's entry no longer names them: none kept.
        d.metadata.managed_fields =
            Some(vec![entry("op", "Apply", serde_json::json!({"f:spec": {"f:template": {}}}))]);
        trim_deployment(&mut d, "op");
        assert_eq!(d.metadata.managed_fields, Some(vec![]));
    }
}
