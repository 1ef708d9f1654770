//! The McpTenant controller: watches, the reconcile pipeline (dereference → validate → build →
//! database → apply → status; see `reconcile`), the finalizer, and error handling with
//! per-object backoff. Does I/O (Kubernetes API, PostgreSQL).

mod applied;
mod apply;
mod backoff;
mod cleanup;
mod dereference;
#[cfg(test)]
mod pipeline_tests;
mod reconcile;
pub mod status;
mod watched;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt as _, finalizer, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use tracing::{Instrument as _, field, info_span, warn};

use self::applied::Applied;
pub use self::apply::ApplyError;
pub use self::backoff::Backoff;
pub use self::dereference::Dereferenced;
use self::watched::Watched;
use crate::crd::McpTenant;
use crate::database::{Databases, DbError};
use crate::metrics::Metrics;
use crate::resources::{INSTANCE_LABEL, MANAGED_BY_LABEL, MANAGER};
use crate::validate::Defaults;

/// The finalizer that keeps an McpTenant until its `deletionPolicy` was applied in PostgreSQL.
pub const FINALIZER: &str = "mcpfleet.io/database-roles";

/// Everything a reconcile needs, shared by all of them.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub defaults: Defaults,
    pub databases: Databases,
    pub metrics: Arc<Metrics>,
    /// Every McpTenant the controller sees (to detect two claiming one tenant name).
    pub tenants: Store<McpTenant>,
    /// Backup Jobs (for `status.lastBackup`).
    pub jobs: Store<Job>,
    /// The children and Secrets as the watches show them.
    pub watched: Watched,
    /// What this operator applied, to skip applies whose result the watches already show.
    pub applied: Applied,
    pub backoff: Backoff,
    /// How often a healthy McpTenant is looked at again.
    pub resync: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("writing the status: {0}")]
    Status(#[source] kube::Error),
    #[error("{0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
    /// Not a failure: cleanup waits (the finalizer must stay) and looks again after `after`.
    #[error("waiting: {what}")]
    Waiting { what: String, after: Duration },
}

impl Error {
    /// Short label for the failures metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Read { .. } => "kube_read",
            Error::Database(e) => e.metric_label(),
            Error::Apply(e) => e.metric_label(),
            Error::Status(_) => "status_write",
            Error::Waiting { .. } => "waiting",
            Error::Finalizer(f) => match f.as_ref() {
                finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e.metric_label(),
                _ => "finalizer",
            },
        }
    }

    /// The delay of a [`Error::Waiting`], however deeply wrapped.
    fn waiting(&self) -> Option<Duration> {
        match self {
            Error::Waiting { after, .. } => Some(*after),
            Error::Finalizer(f) => match f.as_ref() {
                finalizer::Error::CleanupFailed(e) | finalizer::Error::ApplyFailed(e) => e.waiting(),
                _ => None,
            },
            _ => None,
        }
    }

    fn read(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
        let what = what.into();
        move |source| Error::Read { what, source }
    }
}

/// Settings of [`run`].
pub struct ControllerSettings {
    /// Watch only this namespace (default: all).
    pub namespace: Option<String>,
    pub defaults: Defaults,
    pub resync: Duration,
    pub concurrency: u16,
    /// Triggers for one McpTenant within this window make one reconcile.
    pub debounce: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// This replica's identity in Events.
    pub instance: String,
}

fn key(t: &McpTenant) -> String {
    format!("{}/{}", t.namespace().unwrap_or_default(), t.name_any())
}

/// One reconcile of one McpTenant, in its own span.
async fn reconcile(tenant: Arc<McpTenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = info_span!(
        "reconcile",
        namespace = %tenant.namespace().unwrap_or_default(),
        name = %tenant.name_any(),
        generation = tenant.metadata.generation.unwrap_or_default(),
        outcome = field::Empty,
        otel.status_code = field::Empty,
    );
    async move {
        ctx.metrics.reconciles.inc();
        let timer = ctx.metrics.duration.start_timer();
        let api: Api<McpTenant> =
            Api::namespaced(ctx.client.clone(), &tenant.namespace().unwrap_or_default());
        let k = key(&tenant);
        let result = finalizer::finalizer(&api, FINALIZER, tenant, |event| async {
            match event {
                finalizer::Event::Apply(t) => reconcile::apply_tenant(t, &ctx).await,
                finalizer::Event::Cleanup(t) => cleanup::cleanup(t, &ctx).await,
            }
        })
        .await
        .map_err(|e| Error::Finalizer(Box::new(e)));
        timer.observe_duration();
        if result.is_ok() {
            ctx.backoff.reset(&k);
        }
        let span = tracing::Span::current();
        span.record("outcome", if result.is_ok() { "ok" } else { "error" });
        if result.is_err() {
            span.record("otel.status_code", "error");
        }
        result
    }
    .instrument(span)
    .await
}

fn error_policy(tenant: Arc<McpTenant>, error: &Error, ctx: Arc<Context>) -> Action {
    if let Some(after) = error.waiting() {
        tracing::info!(name = %tenant.name_any(), "{error}");
        return Action::requeue(after);
    }
    ctx.metrics.failures.with_label_values(&[error.metric_label()]).inc();
    let delay = ctx.backoff.next_delay(&key(&tenant));
    warn!(
        namespace = %tenant.namespace().unwrap_or_default(),
        name = %tenant.name_any(),
        reason = error.metric_label(),
        retry_in = ?delay,
        "reconcile failed: {error}"
    );
    Action::requeue(delay)
}

/// What a reconcile acts on, hashed: the spec (generation), annotations (password rotation),
/// finalizers and deletion. Status writes, the operator's own included, change none of these and
/// so trigger no reconcile.
fn acted_on(t: &McpTenant) -> Option<u64> {
    use std::hash::{Hash as _, Hasher as _};
    let m = &t.metadata;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (m.generation, &m.annotations, &m.finalizers, m.deletion_timestamp.is_some()).hash(&mut h);
    Some(h.finish())
}

/// The changes of an owned child that matter to its McpTenant: its spec (generation) and its
/// deletion. For children whose status other controllers keep writing (PDB, HPA, CronJob, Ingress)
/// and the operator never reads: those writes trigger no reconcile. Only for kinds with a
/// generation.
fn spec_changes<K>(
    events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    applied: &Applied,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    changes(events, applied, |o: &K| o.meta().generation.unwrap_or_default().cast_unsigned())
}

/// The Deployment's changes that a reconcile acts on: what the McpTenant's status and the login
/// retirement read of it (see `status::workload_fingerprint`), its generation, labels, annotations
/// and owners, and its deletion. The Deployment controller's other writes (the revision
/// annotation, a condition's message or heartbeat, `unavailableReplicas`) trigger no reconcile.
fn workload_changes(
    events: impl futures::Stream<Item = Result<watcher::Event<Deployment>, watcher::Error>> + Send + 'static,
    applied: &Applied,
) -> impl futures::Stream<Item = Result<Deployment, watcher::Error>> + Send + 'static {
    changes(events, applied, status::workload_fingerprint)
}

/// `events` without the ones that show a child exactly as this operator's own apply stored it:
/// the reconcile that wrote it already acted on that version.
fn without_own_writes<K>(
    events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    applied: &Applied,
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Send + 'static,
{
    let kind = K::kind(&()).into_owned();
    let applied = applied.clone();
    events.filter(move |event| {
        let own = matches!(event, Ok(watcher::Event::Apply(o)) if applied.stored(&kind, o.meta()));
        std::future::ready(!own)
    })
}

/// The objects of `events` whose `key` differs from the one last seen for their uid, but those
/// the operator's own apply stored (see [`without_own_writes`]; their key is remembered), and
/// every deleted object.
fn changes<K>(
    events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    applied: &Applied,
    key: impl Fn(&K) -> u64 + Send + 'static,
) -> impl futures::Stream<Item = Result<K, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    let kind = K::kind(&()).into_owned();
    let applied = applied.clone();
    let mut keys: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    events.filter_map(move |event| {
        let out = match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                let uid = o.meta().uid.clone().unwrap_or_default();
                let now = key(&o);
                let changed = keys.insert(uid, now) != Some(now);
                (changed && !applied.stored(&kind, o.meta())).then_some(Ok(o))
            }
            Ok(watcher::Event::Delete(o)) => {
                keys.remove(o.meta().uid.as_deref().unwrap_or_default());
                Some(Ok(o))
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
            Err(e) => Some(Err(e)),
        };
        std::future::ready(out)
    })
}

/// A metadata-only watch of `api`'s objects under `config`, kept in `writer`'s cache.
fn cached_metadata<K>(
    api: Api<PartialObjectMeta<K>>,
    config: watcher::Config,
    writer: reflector::store::Writer<PartialObjectMeta<K>>,
) -> impl futures::Stream<Item = Result<watcher::Event<PartialObjectMeta<K>>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let trimmed = watcher(api, config).modify(|o| watched::trim_metadata(&mut o.metadata));
    reflector::reflector(writer, trimmed).default_backoff()
}

/// McpTenants to reconcile when a Secret changes: its owner, and every McpTenant in the same
/// namespace whose `spec.database.adminSecretRef` names it. Pure.
fn secret_triggers(
    tenants: &[Arc<McpTenant>],
    secret: &PartialObjectMeta<Secret>,
) -> Vec<ObjectRef<McpTenant>> {
    let ns = secret.namespace();
    let name = secret.name_any();
    let mut refs: Vec<ObjectRef<McpTenant>> = secret
        .owner_references()
        .iter()
        .filter(|o| o.kind == "McpTenant" && o.api_version == McpTenant::api_version(&()))
        .map(|o| ObjectRef::new(&o.name).within(ns.as_deref().unwrap_or_default()))
        .collect();
    refs.extend(
        tenants
            .iter()
            .filter(|t| t.namespace() == ns)
            .filter(|t| t.spec.database.admin_secret_ref.as_ref().is_some_and(|r| r.name == name))
            .map(|t| ObjectRef::from_obj(t.as_ref())),
    );
    refs
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    settings: ControllerSettings,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    fn api<K>(client: &Client, ns: Option<&str>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match ns {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }
    let ns = settings.namespace.as_deref();
    let managed = watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGER}"));

    let (jobs, jobs_writer) = reflector::store::<Job>();
    let job_events = reflector::reflector(jobs_writer, watcher(api::<Job>(&client, ns), managed.clone()))
        .default_backoff()
        .touched_objects();
    let (watched, w) = Watched::new();
    let applied = Applied::default();
    // Every Secret's metadata (not its data): the admin Secrets are the user's, not labelled.
    let secret_events = without_own_writes(
        cached_metadata(api::<PartialObjectMeta<Secret>>(&client, ns), watcher::Config::default(), w.secrets),
        &applied,
    )
    .touched_objects();

    let (tenants, tenants_writer) = reflector::store::<McpTenant>();
    let tenant_events = reflector::reflector(
        tenants_writer,
        watcher(api::<McpTenant>(&client, ns), watcher::Config::default()),
    )
    .default_backoff()
    .touched_objects()
    .predicate_filter(acted_on, Default::default());
    let controller = Controller::for_stream(tenant_events, tenants.clone());
    let tenants_for_secrets = tenants.clone();
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter { controller: MANAGER.into(), instance: Some(settings.instance.clone()) },
        ),
        defaults: settings.defaults,
        databases: Databases::default(),
        metrics,
        tenants,
        jobs,
        watched,
        applied: applied.clone(),
        backoff: Backoff::new(settings.backoff_base, settings.backoff_max),
        resync: settings.resync,
    });
    // The Deployment whole (its rollout status goes into the McpTenant's); the other children as
    // metadata.
    let deployments = watcher(api::<Deployment>(&client, ns), managed.clone())
        .modify(|d| watched::trim_deployment(d, MANAGER));
    let deployments =
        workload_changes(reflector::reflector(w.deployments, deployments).default_backoff(), &applied);
    controller
        .owns_stream(deployments)
        .owns_stream(
            without_own_writes(
                cached_metadata(
                    api::<PartialObjectMeta<ConfigMap>>(&client, ns),
                    managed.clone(),
                    w.config_maps,
                ),
                &applied,
            )
            .touched_objects(),
        )
        .owns_stream(
            without_own_writes(
                cached_metadata(api::<PartialObjectMeta<Service>>(&client, ns), managed.clone(), w.services),
                &applied,
            )
            .touched_objects(),
        )
        .owns_stream(
            without_own_writes(
                cached_metadata(
                    api::<PartialObjectMeta<ServiceAccount>>(&client, ns),
                    managed.clone(),
                    w.service_accounts,
                ),
                &applied,
            )
            .touched_objects(),
        )
        .owns_stream(spec_changes(
            cached_metadata(
                api::<PartialObjectMeta<HorizontalPodAutoscaler>>(&client, ns),
                managed.clone(),
                w.autoscalers,
            ),
            &applied,
        ))
        .owns_stream(spec_changes(
            cached_metadata(
                api::<PartialObjectMeta<PodDisruptionBudget>>(&client, ns),
                managed.clone(),
                w.disruption_budgets,
            ),
            &applied,
        ))
        .owns_stream(spec_changes(
            cached_metadata(
                api::<PartialObjectMeta<NetworkPolicy>>(&client, ns),
                managed.clone(),
                w.network_policies,
            ),
            &applied,
        ))
        .owns_stream(spec_changes(
            cached_metadata(api::<PartialObjectMeta<Ingress>>(&client, ns), managed.clone(), w.ingresses),
            &applied,
        ))
        .owns_stream(spec_changes(
            cached_metadata(api::<PartialObjectMeta<CronJob>>(&client, ns), managed.clone(), w.cron_jobs),
            &applied,
        ))
        .watches_stream(secret_events, move |s| secret_triggers(&tenants_for_secrets.state(), &s))
        .watches_stream(job_events, |job: Job| {
            let ns = job.namespace().unwrap_or_default();
            job.labels().get(INSTANCE_LABEL).map(|name| ObjectRef::<McpTenant>::new(name).within(&ns))
        })
        .with_config(
            ControllerConfig::default().concurrency(settings.concurrency).debounce(settings.debounce),
        )
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!("controller: {e}");
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    use super::*;
    use crate::resources::fixtures::{FULL, MINIMAL, tenant};

    fn secret(namespace: &str, name: &str, owner: Option<&str>) -> PartialObjectMeta<Secret> {
        let owner_references = owner.map(|o| {
            vec![OwnerReference {
                api_version: McpTenant::api_version(&()).into_owned(),
                kind: "McpTenant".into(),
                name: o.into(),
                uid: "u".into(),
                ..OwnerReference::default()
            }]
        });
        PartialObjectMeta {
            types: None,
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                owner_references,
                ..ObjectMeta::default()
            },
            _phantom: Default::default(),
        }
    }

    #[test]
    fn a_secret_wakes_its_owner_and_the_tenants_that_name_it_as_admin_secret() {
        // eastside (FULL) names Secret retail/pg-admin; seattle (MINIMAL) names none.
        let tenants = [Arc::new(tenant(FULL)), Arc::new(tenant(MINIMAL))];
        let names = |refs: Vec<ObjectRef<McpTenant>>| -> Vec<String> {
            refs.iter()
                .map(|r| format!("{}/{}", r.namespace.as_deref().unwrap_or_default(), r.name))
                .collect()
        };
        assert_eq!(
            names(secret_triggers(&tenants, &secret("retail", "pg-admin", None))),
            ["retail/eastside"]
        );
        assert_eq!(
            names(secret_triggers(&tenants, &secret("retail", "seattle-db-credentials", Some("seattle")))),
            ["retail/seattle"]
        );
        assert!(
            secret_triggers(&tenants, &secret("other", "pg-admin", None)).is_empty(),
            "same name, other namespace"
        );
        assert!(secret_triggers(&tenants, &secret("retail", "unrelated", None)).is_empty());
    }
}

#[cfg(test)]
mod trigger_tests {
    use futures::StreamExt as _;
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
    use kube::core::PartialObjectMeta;
    use kube::runtime::watcher::Event;

    use super::applied::{Applied, Stamp};
    use super::{spec_changes, without_own_writes};

    fn pdb(rv: &str, generation: i64) -> PartialObjectMeta<PodDisruptionBudget> {
        PartialObjectMeta {
            types: None,
            metadata: ObjectMeta {
                name: Some("seattle".into()),
                uid: Some("u".into()),
                resource_version: Some(rv.into()),
                generation: Some(generation),
                owner_references: Some(vec![OwnerReference { uid: "t".into(), ..OwnerReference::default() }]),
                ..ObjectMeta::default()
            },
            _phantom: std::marker::PhantomData,
        }
    }

    async fn versions<S, K>(stream: S) -> Vec<String>
    where
        S: futures::Stream<Item = Result<K, kube::runtime::watcher::Error>>,
        K: kube::Resource,
    {
        stream
            .map(|o| o.expect("no error").meta().resource_version.clone().unwrap_or_default())
            .collect()
            .await
    }

    #[tokio::test]
    async fn the_watch_events_of_the_operators_own_writes_trigger_no_reconcile() {
        let applied = Applied::default();
        applied.record("t", "PodDisruptionBudget", "seattle", 1, Stamp::of(&pdb("10", 1).metadata));
        let events = || {
            futures::stream::iter([
                Event::Apply(pdb("10", 1)), // our apply's own event
                Event::Apply(pdb("11", 1)), // the disruption controller writes its status
                Event::Apply(pdb("12", 2)), // someone edits the spec
                Event::Delete(pdb("13", 2)),
            ])
            .map(Ok)
        };
        let touched = without_own_writes(events(), &applied).map(|e| {
            e.map(|event| match event {
                Event::Apply(o) | Event::InitApply(o) | Event::Delete(o) => o,
                Event::Init | Event::InitDone => unreachable!("none sent"),
            })
        });
        assert_eq!(versions(touched).await, ["11", "12", "13"]);
        // With only spec changes wanted, the status write goes too: the own write's generation
        // was remembered.
        assert_eq!(versions(spec_changes(events(), &applied)).await, ["12", "13"]);
    }
}
