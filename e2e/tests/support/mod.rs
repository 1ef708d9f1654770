//! Helpers shared by the end-to-end tests on the node.

pub mod fleet;
pub mod load;
pub mod process;
pub mod tenant;
pub mod wait;
