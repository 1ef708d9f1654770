//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it: the holder renews
//! `renewTime` every few seconds; a candidate takes over once `renewTime + leaseDurationSeconds`
//! has passed. Writes use the Lease's resourceVersion, so two candidates never both win. Does I/O;
//! the decision whether a candidate may take the lease (`may_take`) is pure.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{info, warn};

#[derive(Clone, Debug)]
pub struct LeaseSettings {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    /// How long a lease is valid without renewal.
    pub duration: Duration,
    /// How often the holder renews (and a candidate retries).
    pub renew_every: Duration,
}

pub struct LeaderElector {
    api: Api<Lease>,
    s: LeaseSettings,
}

impl LeaderElector {
    pub fn new(client: Client, s: LeaseSettings) -> Self {
        Self { api: Api::namespaced(client, &s.namespace), s }
    }

    /// One attempt to acquire or renew; `Ok(true)` when this replica holds the lease now.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, kube::Error> {
        let now = Timestamp::now();
        let existing = self.api.get_opt(&self.s.name).await?;
        let Some(lease) = existing else {
            let fresh = Lease {
                metadata: ObjectMeta { name: Some(self.s.name.clone()), ..ObjectMeta::default() },
                spec: Some(self.spec(now, now, 0)),
            };
            return match self.api.create(&PostParams::default(), &fresh).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let mine = holds(&spec, &self.s.identity);
        if !may_take(&spec, &self.s.identity, now) {
            return Ok(false);
        }
        let acquired = if mine { spec.acquire_time.map(|t| t.0).unwrap_or(now) } else { now };
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let updated = Lease { metadata: lease.metadata, spec: Some(self.spec(acquired, now, transitions)) };
        match self.api.replace(&self.s.name, &PostParams::default(), &updated).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up so another replica takes over at once (on shutdown).
    pub async fn release(&self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.s.name).await else { return };
        let Some(spec) = lease.spec.as_mut() else { return };
        if spec.holder_identity.as_deref() != Some(self.s.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        if let Err(e) = self.api.replace(&self.s.name, &PostParams::default(), &lease).await {
            warn!(error = %e, "could not release the leader lease");
        }
    }

    fn spec(&self, acquired: Timestamp, renewed: Timestamp, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.s.identity.clone()),
            lease_duration_seconds: Some(self.s.duration.as_secs().max(1) as i32),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(renewed)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Campaigns forever: sends `true` once leading and `false` if the lease is lost (no
    /// successful renewal for a whole lease duration).
    pub async fn run(&self, leading: watch::Sender<bool>) {
        let mut last_renewed: Option<Instant> = None;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    if last_renewed.is_none() {
                        info!(lease = %self.s.name, identity = %self.s.identity, "became the leader");
                        leading.send_replace(true);
                    }
                    last_renewed = Some(Instant::now());
                }
                Ok(false) => {
                    if last_renewed.is_some() {
                        warn!(lease = %self.s.name, "another replica took the lease");
                        leading.send_replace(false);
                        last_renewed = None;
                    }
                }
                Err(e) => {
                    warn!(error = %e, "leader election: API request failed");
                    if last_renewed.is_some_and(|t| t.elapsed() >= self.s.duration) {
                        warn!(lease = %self.s.name, "could not renew the lease in time");
                        leading.send_replace(false);
                        last_renewed = None;
                    }
                }
            }
            tokio::time::sleep(self.s.renew_every).await;
        }
    }
}

/// Whether `identity` holds the lease.
fn holds(spec: &LeaseSpec, identity: &str) -> bool {
    spec.holder_identity.as_deref() == Some(identity)
}

/// Whether `identity` may write the lease at `now`: it holds it already, nobody does, or the
/// holder let it expire (`renewTime + leaseDurationSeconds` has passed). Pure.
fn may_take(spec: &LeaseSpec, identity: &str, now: Timestamp) -> bool {
    let free = spec.holder_identity.as_deref().is_none_or(str::is_empty);
    let expires = spec.renew_time.as_ref().map(|t| t.0).unwrap_or(Timestamp::UNIX_EPOCH)
        + SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    holds(spec, identity) || free || expires < now
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn held_by(holder: &str, renewed: i64, duration: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            renew_time: Some(MicroTime(at(renewed))),
            lease_duration_seconds: Some(duration),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_live_lease_of_another_replica_is_left_alone_until_it_expires() {
        let spec = held_by("b", 1_000, 15);
        assert!(!may_take(&spec, "a", at(1_010)), "renewed 10 s ago, valid for 15 s");
        assert!(!may_take(&spec, "a", at(1_015)), "expiry is not yet past at its instant");
        assert!(may_take(&spec, "a", at(1_016)), "expired");
    }

    #[test]
    fn the_holder_renews_and_a_free_lease_is_anyones() {
        assert!(may_take(&held_by("a", 1_000, 15), "a", at(5_000)), "its own, even late");
        let released = LeaseSpec { holder_identity: None, ..held_by("b", 1_000, 15) };
        assert!(may_take(&released, "a", at(1_001)));
        let emptied = LeaseSpec { holder_identity: Some(String::new()), ..held_by("b", 1_000, 15) };
        assert!(may_take(&emptied, "a", at(1_001)));
    }
}
