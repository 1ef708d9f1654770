//! What this operator last applied to each child, and whether the watch still shows the object
//! as that apply left it: a reconcile then skips the server-side apply, whose answer would be the
//! same object. Pure (no I/O); the watch caches are in [`super::watched`].

use std::collections::{BTreeMap, HashMap};
use std::hash::{DefaultHasher, Hash as _, Hasher as _};
use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

/// One version of an object, as far as deciding "unchanged since our apply" goes.
#[derive(Clone, Debug, PartialEq)]
pub struct Stamp {
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    /// Labels, annotations and owner references, hashed: what changes without a new generation.
    /// Annotations that other controllers keep on the object are left out (see [`OTHERS_ANNOTATIONS`]).
    metadata: u64,
}

/// Annotation prefixes that Kubernetes' own controllers write on our children, and that no apply
/// of ours sets or changes: the Deployment controller's `deployment.kubernetes.io/revision`, set
/// after its first sync of a new Deployment and again on each rollout. With them in the hash, that
/// write alone made the next reconcile apply the Deployment again.
const OTHERS_ANNOTATIONS: &[&str] = &["deployment.kubernetes.io/"];

impl Stamp {
    pub fn of(m: &ObjectMeta) -> Self {
        Self {
            uid: m.uid.clone(),
            resource_version: m.resource_version.clone(),
            generation: m.generation,
            metadata: metadata_fingerprint(m),
        }
    }

    /// Whether `now` is the object this stamp recorded: the same resourceVersion, or, for kinds
    /// with a generation, the same generation, labels, annotations and owners. Those kinds
    /// (Deployment, HPA, PDB, NetworkPolicy, Ingress, CronJob) count every spec change in their
    /// generation, while their status, which other controllers keep writing, changes only the
    /// resourceVersion. A recreated object (new uid) is never the same.
    fn shows(&self, now: &Stamp) -> bool {
        let same_object = self.uid.is_some() && self.uid == now.uid;
        let same_version = self.resource_version.is_some() && self.resource_version == now.resource_version;
        let same_spec =
            self.generation.is_some() && self.generation == now.generation && self.metadata == now.metadata;
        same_object && (same_version || same_spec)
    }
}

/// Labels, annotations (but [`OTHERS_ANNOTATIONS`]) and owner references, hashed.
pub fn metadata_fingerprint(m: &ObjectMeta) -> u64 {
    fingerprint(&(&m.labels, ours(m.annotations.as_ref()), &m.owner_references))
}

fn ours(annotations: Option<&BTreeMap<String, String>>) -> Vec<(&String, &String)> {
    annotations
        .into_iter()
        .flatten()
        .filter(|(key, _)| !OTHERS_ANNOTATIONS.iter().any(|prefix| key.starts_with(prefix)))
        .collect()
}

/// A hash of `value`'s JSON form: equal for equal objects within one operator process.
pub fn fingerprint<T: Serialize + ?Sized>(value: &T) -> u64 {
    let mut h = DefaultHasher::new();
    serde_json::to_vec(value).unwrap_or_default().hash(&mut h);
    h.finish()
}

/// Per owning McpTenant (uid), per child (kind, name): the fingerprint of the object applied and
/// the stamp of what the API server stored.
type Records = HashMap<String, HashMap<(String, String), (u64, Stamp)>>;

/// What this operator applied, since it started. An operator that starts (or takes over as
/// leader) knows nothing and applies every child once.
/// Clones share one memory.
#[derive(Clone, Debug, Default)]
pub struct Applied(Arc<Mutex<Records>>);

impl Applied {
    /// Whether applying an object of fingerprint `desired` can be skipped: it is what was applied
    /// last, and the watch (`seen`) still shows the object that apply stored.
    pub fn unchanged(&self, owner: &str, kind: &str, name: &str, desired: u64, seen: Option<&Stamp>) -> bool {
        let Some(seen) = seen else { return false };
        let records = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        records
            .get(owner)
            .and_then(|children| children.get(&(kind.to_owned(), name.to_owned())))
            .is_some_and(|(fp, stored)| *fp == desired && stored.shows(seen))
    }

    /// Whether `meta` is exactly the object this operator's last apply of it stored (the same uid
    /// and resourceVersion): the watch event of that write, which needs no reconcile of its own.
    pub fn stored(&self, kind: &str, meta: &ObjectMeta) -> bool {
        let (Some(name), Some(version)) = (&meta.name, &meta.resource_version) else { return false };
        let records = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        meta.owner_references
            .iter()
            .flatten()
            .filter_map(|owner| records.get(&owner.uid)?.get(&(kind.to_owned(), name.clone())))
            .any(|(_, stamp)| stamp.uid == meta.uid && stamp.resource_version.as_ref() == Some(version))
    }

    /// Records that applying fingerprint `desired` stored `stored`.
    pub fn record(&self, owner: &str, kind: &str, name: &str, desired: u64, stored: Stamp) {
        let mut records = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        records
            .entry(owner.to_owned())
            .or_default()
            .insert((kind.to_owned(), name.to_owned()), (desired, stored));
    }

    /// Forgets a child (deleted, or an apply that failed).
    pub fn forget(&self, owner: &str, kind: &str, name: &str) {
        let mut records = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(children) = records.get_mut(owner) {
            children.remove(&(kind.to_owned(), name.to_owned()));
        }
    }

    /// Forgets every child of an McpTenant (being deleted: Kubernetes collects its children).
    pub fn forget_owner(&self, owner: &str) {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uid: &str, rv: &str, generation: Option<i64>, label: &str) -> ObjectMeta {
        ObjectMeta {
            uid: Some(uid.into()),
            resource_version: Some(rv.into()),
            generation,
            labels: Some(BTreeMap::from([("app".to_owned(), label.to_owned())])),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn an_apply_is_skipped_only_while_the_watch_shows_what_it_stored_and_the_object_is_the_same() {
        let applied = Applied::default();
        let stored = Stamp::of(&meta("u1", "10", None, "a"));
        let unchanged =
            |fp, seen: &ObjectMeta| applied.unchanged("t", "ConfigMap", "c", fp, Some(&Stamp::of(seen)));
        assert!(!unchanged(7, &meta("u1", "10", None, "a")), "nothing recorded yet");
        applied.record("t", "ConfigMap", "c", 7, stored);
        assert!(unchanged(7, &meta("u1", "10", None, "a")));
        assert!(!unchanged(8, &meta("u1", "10", None, "a")), "the desired object changed");
        assert!(!unchanged(7, &meta("u1", "11", None, "a")), "someone wrote it since");
        assert!(!unchanged(7, &meta("u2", "10", None, "a")), "deleted and created again");
        assert!(!applied.unchanged("t", "ConfigMap", "c", 7, None), "the watch shows none");
        assert!(!applied.unchanged("t", "Service", "c", 7, Some(&Stamp::of(&meta("u1", "10", None, "a")))));
        applied.forget("t", "ConfigMap", "c");
        assert!(!unchanged(7, &meta("u1", "10", None, "a")), "forgotten");
    }

    #[test]
    fn the_watch_event_of_an_own_write_is_recognised_by_its_version() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        let applied = Applied::default();
        let owned = |rv: &str, owner: &str| ObjectMeta {
            name: Some("c".into()),
            owner_references: Some(vec![OwnerReference { uid: owner.into(), ..OwnerReference::default() }]),
            ..meta("u1", rv, None, "a")
        };
        assert!(!applied.stored("ConfigMap", &owned("10", "t")), "nothing applied yet");
        applied.record("t", "ConfigMap", "c", 7, Stamp::of(&owned("10", "t")));
        assert!(applied.stored("ConfigMap", &owned("10", "t")));
        assert!(!applied.stored("ConfigMap", &owned("11", "t")), "written again since, by someone");
        assert!(!applied.stored("Service", &owned("10", "t")), "another kind");
        assert!(!applied.stored("ConfigMap", &owned("10", "other")), "another owner's record");
        assert!(!applied.stored("ConfigMap", &meta("u1", "10", None, "a")), "no owner");
    }

    #[test]
    fn a_kind_with_a_generation_is_the_same_while_only_its_status_was_written() {
        let applied = Applied::default();
        applied.record("t", "Deployment", "d", 1, Stamp::of(&meta("u", "10", Some(3), "a")));
        let seen = |m: ObjectMeta| applied.unchanged("t", "Deployment", "d", 1, Some(&Stamp::of(&m)));
        assert!(seen(meta("u", "42", Some(3), "a")), "a status write by the Deployment controller");
        assert!(!seen(meta("u", "43", Some(4), "a")), "a spec change (a scale, an edit)");
        assert!(!seen(meta("u", "44", Some(3), "b")), "a label edited");
        let annotated = |key: &str| ObjectMeta {
            annotations: Some(BTreeMap::from([(key.to_owned(), "2".to_owned())])),
            ..meta("u", "45", Some(3), "a")
        };
        assert!(seen(annotated("deployment.kubernetes.io/revision")), "the Deployment controller's revision");
        assert!(!seen(annotated("example.com/owner")), "an annotation someone else edited");
        applied.forget_owner("t");
        assert!(!seen(meta("u", "10", Some(3), "a")), "the owner was deleted");
    }
}
