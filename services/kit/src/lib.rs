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
//! - [`jwt`]: issuing and validating access tokens;
//! - [`extract`]: path and query extractors with JSON rejections;
//! - `db` (feature `db`): the service's own Postgres database, created and migrated at
//!   start, and database errors as HTTP answers;
//! - `redis_conn` (feature `redis`): a lazily connected Redis handle;
//! - `amqp` (feature `amqp`): the `/ready` check of a RabbitMQ connection.
//!
//! The registry and the gateway need neither database nor cache, so those modules sit
//! behind features and only the business services pull sqlx and redis in.

pub mod admin;
#[cfg(feature = "amqp")]
pub mod amqp;
pub mod app;
pub mod client;
pub mod config;
pub mod context;
#[cfg(feature = "db")]
pub mod db;
pub mod error;
pub mod extract;
pub mod faults;
pub mod jwt;
pub mod metrics;
pub mod openapi;
#[cfg(feature = "redis")]
pub mod redis_conn;
pub mod registry;
pub mod resilience;

pub use app::{RunningService, ServiceHost};
pub use config::ServiceConfig;
pub use context::init_tracing;
pub use error::ApiError;
