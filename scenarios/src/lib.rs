//! msctl-scenarios: the scenario format (TOML, after Hurl, k6 and Chaos Toolkit), the engine
//! that runs it against a stack, the load generator, and the JSON and JUnit reporters.
//!
//! [`model::load`] reads a file into a checked [`model::Scenario`] (errors name
//! file:line:col); [`engine::Engine::run`] runs it against an [`environment::Environment`]
//! and returns a [`report::ScenarioReport`]; [`report::json`] and [`report::junit`] write
//! them. The bundled catalog lives in `scenarios/catalog/` ([`catalog`]).

pub mod catalog;
pub mod checks;
pub mod engine;
pub mod environment;
pub mod jsonpath;
pub mod load;
pub mod matcher;
pub mod model;
pub mod report;
pub mod sql;
pub mod template;
pub mod workload;

pub use engine::{Engine, Observer, RunOptions};
pub use environment::{Environment, StackEnvironment, StaticEnvironment};
pub use model::Scenario;
pub use report::{ScenarioReport, Status, StepReport};
