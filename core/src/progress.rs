//! Progress lines on stderr for the server's long commands (seed, embed, backup): a line per
//! step, and for counted work a line at most every half second with the percentage and rate.
//! Quiet mode prints nothing. Does terminal I/O only.

use std::io::Write as _;
use std::time::{Duration, Instant};

/// Where progress goes.
#[derive(Clone, Debug)]
pub struct Progress {
    prefix: &'static str,
    quiet: bool,
}

impl Progress {
    pub fn new(prefix: &'static str) -> Self {
        Self { prefix, quiet: false }
    }

    pub fn quiet() -> Self {
        Self { prefix: "", quiet: true }
    }

    /// One finished step.
    pub fn step(&self, msg: &str) {
        if !self.quiet {
            let _ = writeln!(std::io::stderr(), "{}: {msg}", self.prefix);
        }
    }

    /// A counter for `total` units of `what`.
    pub fn counter(&self, what: &'static str, total: u64) -> Counter {
        Counter {
            progress: self.clone(),
            what,
            total,
            done: 0,
            started: Instant::now(),
            last_print: None,
            printed: None,
        }
    }
}

pub struct Counter {
    progress: Progress,
    what: &'static str,
    total: u64,
    done: u64,
    started: Instant,
    last_print: Option<Instant>,
    printed: Option<u64>,
}

impl Counter {
    pub fn set(&mut self, done: u64) {
        self.done = done;
        let due = self.last_print.is_none_or(|t| t.elapsed() >= Duration::from_millis(500));
        if due {
            self.print();
            self.last_print = Some(Instant::now());
        }
    }

    pub fn add(&mut self, n: u64) {
        self.set(self.done + n);
    }

    pub fn finish(mut self) {
        if self.printed != Some(self.done) {
            self.print();
        }
    }

    fn print(&mut self) {
        self.printed = Some(self.done);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let pct = if self.total == 0 { 100.0 } else { self.done as f64 * 100.0 / self.total as f64 };
        self.progress.step(&format!(
            "{} {}/{} ({pct:.0}%) {:.0}/s",
            self.what,
            self.done,
            self.total,
            self.done as f64 / secs
        ));
    }
}
