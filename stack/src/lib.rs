//! msctl-stack: the stack.toml model and its validation, the dependency graph, and the
//! Docker runtime (images, network, volumes, containers, health, logs) behind msctl.

pub mod engine;
pub mod graph;
pub mod model;
pub mod progress;
