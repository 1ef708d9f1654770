//! Bounded waiting for things a controller does eventually. Pure timing, no I/O of its own.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// The default bound for waiting on a controller (garbage collector, deployment controller, ...).
pub const WAIT: Duration = Duration::from_secs(60);

/// Polls `probe` every 200 ms until it returns `Some`, and panics naming `what` if that takes
/// longer than `timeout`.
pub async fn eventually<T, F, Fut>(what: impl Display, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
