//! Fair sharing between callers: each caller (a subject of a tenant) may have at most
//! `limits.perSubject.maxConcurrent` tool calls running, and start calls at `requestsPerMinute`
//! with bursts of `burst` (GCRA, a token bucket, from `governor`). A call over either limit is
//! refused at once, saying when to retry; nothing queues. The keyed state stays bounded: running
//! calls are counted only while they run, and a caller's bucket is forgotten once it has been
//! idle long enough to be full again — exactly the state a new bucket starts in — with at most
//! [`MAX_SUBJECTS`] remembered at once. No I/O; time comes from a [`Clock`](crate::clock::Clock).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use mcp_fleet_core::server_config::PerSubjectLimits;
use moka::future::Cache;

use crate::clock::SharedClock;

/// Most callers whose rate buckets are remembered at once. Past it the least useful are
/// forgotten early, which can only give those callers a fresh burst.
pub const MAX_SUBJECTS: u64 = 10_000;

/// Who shares the server: a subject of a tenant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Subject {
    pub tenant: String,
    pub subject: String,
}

/// Why a call was refused, and when to try again.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Limited {
    #[error(
        "rate limited: you already have {max} tool calls running, the most one caller may have at once; retry when one of them has finished (in about {} s)",
        secs(*.retry_after)
    )]
    Concurrency { max: u32, retry_after: Duration },
    #[error(
        "rate limited: you have used your share of {per_minute} tool calls per minute (in bursts of at most {burst}); retry in {} s",
        secs(*.retry_after)
    )]
    Rate { per_minute: u32, burst: u32, retry_after: Duration },
}

impl Limited {
    /// The label of `mcpfleet_rate_limited_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Limited::Concurrency { .. } => "concurrency",
            Limited::Rate { .. } => "rate",
        }
    }

    /// Whole seconds to wait before retrying (rounded up, at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Limited::Concurrency { retry_after, .. } | Limited::Rate { retry_after, .. } => {
                secs(*retry_after)
            }
        }
    }
}

fn secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0).max(u64::from(d.is_zero()))
}

/// The server's clock, as `governor` reads time.
#[derive(Clone)]
struct LimiterClock(SharedClock);

impl governor::clock::Clock for LimiterClock {
    type Instant = Instant;

    fn now(&self) -> Instant {
        self.0.now()
    }
}

type Bucket = RateLimiter<NotKeyed, InMemoryState, LimiterClock, NoOpMiddleware<Instant>>;
type Running = Arc<Mutex<HashMap<Subject, u32>>>;

/// Every caller's share: running calls and rate buckets.
pub struct FairShare {
    limits: PerSubjectLimits,
    quota: Quota,
    clock: SharedClock,
    buckets: Cache<Subject, Arc<Bucket>>,
    running: Running,
}

/// A call's place among its caller's running calls; dropping it (when the call ends) frees it.
#[derive(Debug)]
pub struct Admitted {
    running: Running,
    subject: Subject,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut running = lock(&self.running);
        if let Some(n) = running.get_mut(&self.subject) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.subject);
            }
        }
    }
}

fn lock(running: &Running) -> MutexGuard<'_, HashMap<Subject, u32>> {
    // A panic while holding the lock leaves only counts behind, which stay consistent.
    running.lock().unwrap_or_else(|p| p.into_inner())
}

impl FairShare {
    pub fn new(limits: PerSubjectLimits, clock: SharedClock) -> Self {
        Self::with_capacity(limits, clock, MAX_SUBJECTS)
    }

    fn with_capacity(limits: PerSubjectLimits, clock: SharedClock, max_subjects: u64) -> Self {
        let period = Duration::from_secs(60) / limits.requests_per_minute.max(1);
        let burst = NonZeroU32::new(limits.burst).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(period.max(Duration::from_micros(1)))
            .expect("the period is at least a microsecond")
            .allow_burst(burst);
        // An idle bucket is full again after this long: then forgetting it changes nothing.
        let refill = (period * burst.get()).max(Duration::from_secs(1));
        Self {
            limits,
            quota,
            clock,
            buckets: Cache::builder().max_capacity(max_subjects).time_to_idle(refill).build(),
            running: Arc::default(),
        }
    }

    /// Admits a call of `subject`, or says why not. A call refused for concurrency uses none of
    /// the caller's rate.
    pub async fn admit(&self, subject: Subject) -> Result<Admitted, Limited> {
        let admitted = {
            let mut running = lock(&self.running);
            let n = running.entry(subject.clone()).or_insert(0);
            if *n >= self.limits.max_concurrent {
                return Err(Limited::Concurrency {
                    max: self.limits.max_concurrent,
                    retry_after: Duration::from_secs(1),
                });
            }
            *n += 1;
            Admitted { running: self.running.clone(), subject: subject.clone() }
        };
        let bucket = self
            .buckets
            .get_with(subject, async {
                Arc::new(RateLimiter::direct_with_clock(self.quota, LimiterClock(self.clock.clone())))
            })
            .await;
        match bucket.check() {
            Ok(()) => Ok(admitted),
            Err(not_until) => Err(Limited::Rate {
                per_minute: self.limits.requests_per_minute,
                burst: self.limits.burst,
                retry_after: not_until.wait_time_from(self.clock.now()),
            }),
        }
    }

    /// Callers with calls running now (at most the calls running).
    pub fn callers_running(&self) -> usize {
        lock(&self.running).len()
    }

    /// Callers whose rate buckets are remembered (after pending evictions).
    pub async fn callers_remembered(&self) -> u64 {
        self.buckets.run_pending_tasks().await;
        self.buckets.entry_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn who(name: &str) -> Subject {
        Subject { tenant: "seattle".into(), subject: name.into() }
    }

    fn share(max_concurrent: u32, requests_per_minute: u32, burst: u32, clock: &ManualClock) -> FairShare {
        FairShare::new(PerSubjectLimits { max_concurrent, requests_per_minute, burst }, clock.shared())
    }

    #[tokio::test]
    async fn a_burst_past_the_rate_is_refused_with_when_to_retry_while_others_are_served() {
        let clock = ManualClock::new();
        let fair = share(100, 60, 3, &clock);
        for _ in 0..3 {
            drop(fair.admit(who("alice")).await.unwrap());
        }
        let refused = fair.admit(who("alice")).await.unwrap_err();
        assert_eq!(refused.kind(), "rate");
        assert_eq!(refused.retry_after_secs(), 1, "one call per second at 60 a minute");
        assert!(
            refused.to_string().contains("60 tool calls per minute")
                && refused.to_string().contains("retry in 1 s")
        );
        assert!(fair.admit(who("bob")).await.is_ok(), "another caller has its own share");
        let other_tenant = Subject { tenant: "tacoma".into(), subject: "alice".into() };
        assert!(fair.admit(other_tenant).await.is_ok(), "so has the same name in another tenant");
        clock.advance(Duration::from_secs(1));
        assert!(fair.admit(who("alice")).await.is_ok(), "the bucket refills with time");
        assert_eq!(fair.admit(who("alice")).await.unwrap_err().kind(), "rate");
    }

    #[tokio::test]
    async fn running_calls_are_capped_per_caller_and_refusals_cost_no_rate() {
        let clock = ManualClock::new();
        let fair = share(2, 60, 3, &clock);
        let first = fair.admit(who("alice")).await.unwrap();
        let _second = fair.admit(who("alice")).await.unwrap();
        for _ in 0..5 {
            let refused = fair.admit(who("alice")).await.unwrap_err();
            assert_eq!((refused.kind(), refused.retry_after_secs()), ("concurrency", 1));
            assert!(refused.to_string().contains("2 tool calls running"), "{refused}");
        }
        assert!(fair.admit(who("bob")).await.is_ok());
        drop(first);
        let _third = fair.admit(who("alice")).await.expect("the refusals used none of the burst of 3");
        assert_eq!(fair.admit(who("alice")).await.unwrap_err().kind(), "concurrency");
    }

    #[tokio::test]
    async fn keyed_state_stays_bounded() {
        let clock = ManualClock::new();
        let limits = PerSubjectLimits { max_concurrent: 4, requests_per_minute: 120, burst: 120 };
        let fair = FairShare::with_capacity(limits, clock.shared(), 100);
        for i in 0..1000 {
            drop(fair.admit(who(&format!("caller-{i}"))).await.unwrap());
        }
        assert_eq!(fair.callers_running(), 0, "a caller with nothing running leaves no count behind");
        let remembered = fair.callers_remembered().await;
        assert!(remembered <= 100, "{remembered} buckets remembered");
    }

    #[test]
    fn retry_seconds_round_up() {
        assert_eq!(secs(Duration::from_millis(1)), 1);
        assert_eq!(secs(Duration::from_millis(1500)), 2);
        assert_eq!(secs(Duration::from_secs(3)), 3);
        assert_eq!(secs(Duration::ZERO), 1);
    }
}
