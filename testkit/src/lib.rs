//! Test helpers shared by every crate's tests: a throwaway PostgreSQL cluster per test process and
//! a fresh database per test, a Kubernetes control plane, an OpenTelemetry Collector. Starts and stops
//! real processes.

pub mod kube;
pub mod otelcol;
pub mod pg;
pub mod process;
pub mod python;

pub use pg::{PgCluster, TestDb};
