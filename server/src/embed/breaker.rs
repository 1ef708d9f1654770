//! A circuit breaker for a remote service: after `failure_threshold` transient failures in a row
//! it opens and callers fail fast for `cool_down`; then one probe request is let through
//! (half-open), whose outcome closes or re-opens it. State plus an injected clock, no I/O.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::EmbedError;
use crate::clock::SharedClock;

/// When the breaker opens and for how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BreakerOptions {
    /// Transient failures in a row (timeouts, unreachable, HTTP 429 and 5xx) that open it.
    pub failure_threshold: u32,
    /// How long it stays open before a probe is allowed.
    pub cool_down: Duration,
}

impl Default for BreakerOptions {
    fn default() -> Self {
        Self { failure_threshold: 5, cool_down: Duration::from_secs(30) }
    }
}

/// What a breaker lets through right now, as `/health` and the metrics show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CircuitState {
    /// Requests go through.
    Closed,
    /// Requests fail fast until the cool-down ends.
    Open,
    /// The cool-down has ended: the next request is a probe that closes or re-opens it.
    HalfOpen,
}

impl CircuitState {
    pub const ALL: [CircuitState; 3] = [CircuitState::Closed, CircuitState::Open, CircuitState::HalfOpen];

    /// The label in `/health` and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open => "open",
            CircuitState::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    options: BreakerOptions,
    clock: SharedClock,
    state: Mutex<State>,
}

/// Leave to send one request. Report how it went with [`Permit::succeeded`] or
/// [`Permit::failed`]; a permit dropped without either (the caller gave up) frees the probe slot.
pub(crate) struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    probe: bool,
    reported: bool,
}

impl CircuitBreaker {
    pub(crate) fn new(options: BreakerOptions, clock: SharedClock) -> Self {
        Self { options, clock, state: Mutex::new(State::Closed { failures: 0 }) }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state half-updated; carry on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A permit, or `CircuitOpen` while the breaker is open (or its single probe is in flight).
    pub(crate) fn permit(&self) -> Result<Permit<'_>, EmbedError> {
        let mut state = self.state();
        let now = self.clock.now();
        let probe = match *state {
            State::Closed { .. } => false,
            State::Open { until } if now < until => {
                return Err(EmbedError::CircuitOpen { retry_in: until - now });
            }
            State::Open { .. } | State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                true
            }
            State::HalfOpen { probing: true } => {
                return Err(EmbedError::CircuitOpen { retry_in: self.options.cool_down });
            }
        };
        Ok(Permit { breaker: self, probe, reported: false })
    }

    /// Whether requests fail fast right now.
    pub(crate) fn is_open(&self) -> bool {
        match *self.state() {
            State::Closed { .. } => false,
            State::Open { until } => self.clock.now() < until,
            State::HalfOpen { probing } => probing,
        }
    }

    /// Where the breaker stands now.
    pub(crate) fn circuit(&self) -> CircuitState {
        match *self.state() {
            State::Closed { .. } => CircuitState::Closed,
            State::Open { until } if self.clock.now() < until => CircuitState::Open,
            State::Open { .. } | State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }
}

impl Permit<'_> {
    /// The service answered (whatever it said): close the breaker.
    pub(crate) fn succeeded(mut self) {
        self.reported = true;
        *self.breaker.state() = State::Closed { failures: 0 };
    }

    /// A transient failure: count it; open when the count reaches the threshold, or re-open when
    /// this was the half-open probe.
    pub(crate) fn failed(mut self) {
        self.reported = true;
        let options = self.breaker.options;
        let mut state = self.breaker.state();
        let open = State::Open { until: self.breaker.clock.now() + options.cool_down };
        *state = match *state {
            State::Closed { failures } if failures + 1 < options.failure_threshold => {
                State::Closed { failures: failures + 1 }
            }
            State::Closed { .. } => open,
            State::HalfOpen { .. } if self.probe => open,
            // Another caller's probe decides; a late failure from before the breaker opened
            // must not extend it.
            State::HalfOpen { probing } => State::HalfOpen { probing },
            State::Open { until } => State::Open { until },
        };
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe && !self.reported {
            let mut state = self.breaker.state();
            if matches!(*state, State::HalfOpen { probing: true }) {
                *state = State::HalfOpen { probing: false };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn breaker(threshold: u32, cool_down_ms: u64) -> (CircuitBreaker, ManualClock) {
        let clock = ManualClock::new();
        let options =
            BreakerOptions { failure_threshold: threshold, cool_down: Duration::from_millis(cool_down_ms) };
        (CircuitBreaker::new(options, clock.shared()), clock)
    }

    #[test]
    fn opens_after_threshold_consecutive_failures_only() {
        let (b, _) = breaker(3, 60_000);
        b.permit().unwrap().failed();
        b.permit().unwrap().failed();
        b.permit().unwrap().succeeded(); // resets the count
        b.permit().unwrap().failed();
        b.permit().unwrap().failed();
        assert!(!b.is_open());
        assert_eq!(b.circuit(), CircuitState::Closed);
        b.permit().unwrap().failed();
        assert!(b.is_open());
        assert_eq!(b.circuit(), CircuitState::Open);
        assert!(matches!(b.permit(), Err(EmbedError::CircuitOpen { .. })));
    }

    #[test]
    fn half_open_lets_one_probe_through_which_decides() {
        let (b, clock) = breaker(1, 20);
        b.permit().unwrap().failed();
        assert!(b.permit().is_err());
        clock.advance(Duration::from_millis(30));
        assert_eq!(b.circuit(), CircuitState::HalfOpen, "the cool-down is over");
        let probe = b.permit().expect("probe after cool-down");
        assert!(b.permit().is_err(), "only one probe at a time");
        probe.failed();
        assert!(b.permit().is_err(), "a failed probe re-opens");
        clock.advance(Duration::from_millis(30));
        b.permit().expect("second probe").succeeded();
        assert!(!b.is_open());
        b.permit().expect("closed again").succeeded();
    }

    #[test]
    fn an_abandoned_probe_frees_the_slot() {
        let (b, clock) = breaker(1, 10);
        b.permit().unwrap().failed();
        clock.advance(Duration::from_millis(20));
        drop(b.permit().expect("probe"));
        b.permit().expect("another probe after the first was abandoned").succeeded();
    }
}
