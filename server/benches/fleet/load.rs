//! The one load generator every comparison uses: N concurrent clients, each calling in a loop
//! until a request count or a deadline is reached, after a warm-up. Latency is measured per call;
//! throughput is calls finished in the measured window divided by its length. No I/O of its own:
//! the clients (HTTP or SQL, see `clients.rs`) do it.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// No single call may take longer than this; a slower one fails the run.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// One client of a load run: a connection (or pool handle) and the call it repeats.
pub trait Client: Send + 'static {
    fn call(&mut self) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// Bounds of one run: both a count and a time limit, after a warm-up that is not measured.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    pub warmup: Duration,
    pub max_time: Duration,
    pub max_requests: u64,
}

/// What a run measured.
#[derive(Clone, Debug)]
pub struct Stats {
    pub clients: usize,
    pub requests: u64,
    pub window: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

impl Stats {
    pub fn per_second(&self) -> f64 {
        self.requests as f64 / self.window.as_secs_f64().max(1e-9)
    }

    pub fn from_samples(clients: usize, mut samples: Vec<Duration>, window: Duration) -> Self {
        samples.sort_unstable();
        Self {
            clients,
            requests: samples.len() as u64,
            window,
            p50: percentile(&samples, 0.50),
            p99: percentile(&samples, 0.99),
        }
    }
}

/// The `q` quantile of sorted samples (nearest rank); zero when there are none.
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Runs `clients` concurrently within `budget`; any failed call fails the run.
pub async fn run<C: Client>(clients: Vec<C>, budget: Budget) -> anyhow::Result<Stats> {
    let n = clients.len();
    let start = Instant::now();
    let measure_from = start + budget.warmup;
    let deadline = measure_from + budget.max_time;
    let issued = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(n);
    for mut client in clients {
        let issued = issued.clone();
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(4096);
            // Also bounded by count: no client loops more often than the whole run may.
            for _ in 0..budget.max_requests.saturating_mul(2).max(1) {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let measured = now >= measure_from;
                if measured && issued.fetch_add(1, Ordering::Relaxed) >= budget.max_requests {
                    break;
                }
                let t0 = Instant::now();
                tokio::time::timeout(CALL_TIMEOUT, client.call())
                    .await
                    .context("a call took longer than 30 s")??;
                if measured {
                    samples.push(t0.elapsed());
                }
            }
            anyhow::Ok((samples, Instant::now()))
        }));
    }
    let mut samples = Vec::new();
    let mut end = measure_from;
    for t in tasks {
        let (s, finished) = t.await.context("load task panicked")??;
        samples.extend(s);
        end = end.max(finished);
    }
    Ok(Stats::from_samples(n, samples, end.saturating_duration_since(measure_from)))
}
