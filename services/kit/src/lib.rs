//! `service-kit`: what every service of the msctl reference stack shares.
//!
//! - [`app`]: [`ServiceHost`] — bootstrap with `/health`, `/ready`, `/metrics`,
//!   `/openapi.json`, `/admin/faults`, registration and graceful shutdown;
//! - [`config`]: [`ServiceConfig`] from environment variables, with clear errors;
//! - [`context`]: request id and W3C `traceparent`, JSON logs;
//! - [`error`]: [`ApiError`], JSON error bodies with a stable `code`;
//! - [`metrics`]: Prometheus text exposition;
//! - [`registry`]: registry wire types, [`registry::Registration`] and
//!   [`registry::Directory`] (discovery with last-good views);
//! - [`client`]: [`client::ResilientClient`] for service-to-service calls;
//! - [`resilience`]: breaker, balancers, backoff and retry budget, rate limiting;
//! - [`faults`]: the fault-injection layer; [`admin`]: the admin token;
//! - [`jwt`]: issuing and validating access tokens.

pub mod admin;
pub mod app;
pub mod client;
pub mod config;
pub mod context;
pub mod error;
pub mod faults;
pub mod jwt;
pub mod metrics;
pub mod openapi;
pub mod registry;
pub mod resilience;

pub use app::{RunningService, ServiceHost};
pub use config::ServiceConfig;
pub use context::init_tracing;
pub use error::ApiError;
