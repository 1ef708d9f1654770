//! End-to-end test harness: a real Kubernetes control plane shared by the tests of one process
//! (see `mcp_fleet_testkit::kube`), a fresh namespace per test, `kubectl`/`helm` at the pinned
//! versions, and binaries of this workspace run out-of-cluster against the API server.
//! Everything here starts real processes and talks to a real API server.

pub mod namespace;
pub mod operator_world;
pub mod tools;
pub mod wait;
pub mod workspace_bin;

pub use mcp_fleet_testkit::kube::ControlPlane;
pub use namespace::TestNamespace;
pub use wait::{WAIT, eventually};
pub use workspace_bin::{BackgroundBin, WorkspaceBin};
