//! msctl-stack: the stack.toml model and its validation, the dependency graph, and the
//! Docker runtime (images, network, volumes, containers, health, logs) behind msctl.

pub mod compose;
pub mod docker;
pub mod engine;
pub mod graph;
pub mod images;
pub mod model;
pub mod orchestrator;
pub mod progress;
pub mod runtime;
pub mod testing;
