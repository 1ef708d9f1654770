//! End-to-end test harness (work in progress: see issue 3).
