//! Per-object exponential backoff for transient errors: each McpTenant's delay doubles with each
//! consecutive failure (with jitter) and resets when a reconcile succeeds. No I/O.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng as _;

pub struct Backoff {
    base: Duration,
    max: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self { base, max, failures: Mutex::default() }
    }

    /// Records a failure of `key` and returns how long to wait before retrying.
    pub fn next_delay(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key.to_owned()).or_insert(0);
        *n = n.saturating_add(1);
        let exp = self.base.saturating_mul(2u32.saturating_pow((*n - 1).min(20)));
        let capped = exp.min(self.max);
        // Up to +20% jitter so that many tenants failing together do not retry in lockstep.
        let jitter = capped.mul_f64(rand::rng().random_range(0.0..0.2));
        (capped + jitter).min(self.max)
    }

    /// Forgets the failures of `key` (after a success, or when the object is gone).
    pub fn reset(&self, key: &str) {
        self.failures.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_per_object_caps_and_resets() {
        let b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let d: Vec<Duration> = (0..8).map(|_| b.next_delay("a")).collect();
        assert!(d[0] >= Duration::from_secs(1) && d[0] < Duration::from_millis(1200));
        assert!(d[1] >= Duration::from_secs(2) && d[1] < Duration::from_millis(2400));
        assert!(d[3] >= Duration::from_secs(8));
        assert_eq!(d[7], Duration::from_secs(60), "capped");
        assert!(b.next_delay("b") < Duration::from_millis(1200), "other objects start over");
        b.reset("a");
        assert!(b.next_delay("a") < Duration::from_millis(1200), "a success resets");
    }
}
