//! order-service: orders, the durable order saga and the transactional outbox.
//!
//! - [`routes`]: `POST/GET /api/v1/orders`, `GET /api/v1/orders/{id}`, `GET /admin/sagas`;
//! - [`saga`]: the saga as a pure state machine; [`engine`]: its durable executor;
//! - [`participants`]: calls to product-service and payment-service;
//! - [`store`]: orders and outbox rows; [`relay`]: outbox → RabbitMQ with confirms;
//! - [`config`], [`db`], [`domain`], [`stats`].
//!
//! Events: `order.created`, `order.confirmed`, `order.cancelled`, published to the durable
//! topic exchange `orders` (routing key = event type) as persistent JSON messages whose
//! AMQP `message_id` is the event's `event_id`.

pub mod config;
pub mod db;
pub mod domain;
pub mod engine;
pub mod participants;
pub mod relay;
pub mod routes;
pub mod saga;
pub mod stats;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use service_kit::client::{ClientPolicy, ResilientClient};
use service_kit::registry::Directory;
use service_kit::{RunningService, ServiceHost};
use tokio::sync::Notify;

pub use config::OrderConfig;
pub use engine::{Boundary, CrashHook};

/// Failure to start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Database preparation failed.
    #[error(transparent)]
    Db(#[from] service_kit::db::DbError),
    /// The server could not start.
    #[error(transparent)]
    App(#[from] service_kit::app::AppError),
}

/// Optional wiring, for tests and embedding.
#[derive(Default, Clone)]
pub struct Options {
    /// Find participants here instead of through the registry.
    pub directory: Option<Directory>,
    /// Simulated crash points (tests).
    pub crash_hook: Option<CrashHook>,
    /// How long to wait for Postgres at start.
    pub db_patience: Option<Duration>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("directory", &self.directory)
            .field("crash_hook", &self.crash_hook.is_some())
            .finish()
    }
}

/// Prepare the database, start the saga worker and the outbox relay, and bind the server.
pub async fn build(config: OrderConfig, options: Options) -> Result<RunningService, StartError> {
    let pool = db::prepare(
        &config.database_url,
        &service_kit::db::PoolSettings {
            max_connections: 20,
            acquire_timeout: Duration::from_secs(5),
            patience: options.db_patience.unwrap_or(Duration::from_secs(120)),
        },
    )
    .await?;
    let mut host = ServiceHost::new(config.service.clone());
    host.openapi(openapi());
    let metrics = host.metrics().clone();
    let policy = participant_policy();
    let client = match &options.directory {
        Some(d) => ResilientClient::new(d.clone(), policy, metrics.clone()),
        None => host.client(policy),
    };
    let participants = participants::Participants::new(
        client,
        config.saga.product_service.clone(),
        config.saga.payment_service.clone(),
    );
    let relay_wake = Arc::new(Notify::new());
    let owner = format!(
        "{}-{}",
        config.service.service_name,
        uuid::Uuid::new_v4().simple()
    );
    let engine = engine::SagaEngine::new(
        pool.clone(),
        participants,
        config.saga.clone(),
        owner,
        relay_wake.clone(),
        options.crash_hook.clone(),
        &metrics,
    );
    let cancel = host.shutdown_token();
    engine.spawn(host.tracker(), cancel.clone());
    let amqp = service_kit::amqp::AmqpLink::new();
    relay::OutboxRelay::new(
        pool.clone(),
        config.amqp_url.clone(),
        config.exchange.clone(),
        relay_wake,
        &metrics,
        amqp.clone(),
    )
    .spawn(host.tracker(), cancel.clone());
    stats::spawn(
        pool.clone(),
        &metrics,
        Duration::from_secs(2),
        host.tracker(),
        cancel,
    );
    let ready_pool = pool.clone();
    host.readiness_check("postgres", move || {
        service_kit::db::ping(ready_pool.clone())
    })
    // The outbox relay's connection: events wait in the outbox while it is down.
    .readiness_check("rabbitmq", move || amqp.clone().check());
    let close_pool = pool.clone();
    host.on_shutdown(async move { close_pool.close().await });
    let state = routes::AppState {
        pool,
        engine,
        created: metrics.counter("orders_created_total", "Orders accepted.", &[]),
    };
    Ok(host.bind(routes::router(state)).await?)
}

/// The client policy for saga calls. The saga retries every transient failure itself, so
/// the breaker only needs to shed load from a failing participant briefly: it opens after
/// 10 consecutive failures (a burst of contention errors should not stall every saga) and
/// probes again after 2 s rather than the default 10 s.
fn participant_policy() -> ClientPolicy {
    let d = ClientPolicy::default();
    ClientPolicy {
        breaker: service_kit::resilience::breaker::BreakerConfig {
            failure_threshold: 10,
            open_for: Duration::from_secs(2),
            ..d.breaker
        },
        ..d
    }
}

fn openapi() -> serde_json::Value {
    let err = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let user = json!({"name": "X-User-Id", "in": "header", "required": true, "schema": {"type": "string"}, "description": "set by the gateway from the JWT"});
    let order = json!({"type": "object", "properties": {
        "id": {"type": "string", "format": "uuid"}, "user_id": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "confirmed", "cancelled"]},
        "reason": {"type": ["string", "null"]},
        "items": {"type": "array", "items": {"type": "object", "properties": {
            "product_id": {"type": "string", "format": "uuid"}, "quantity": {"type": "integer"}}}},
        "total_cents": {"type": ["integer", "null"]},
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"}}});
    let paths = json!({
        "/api/v1/orders": {
            "post": {"summary": "Place an order (202, pending; the saga runs in the background)",
                "parameters": [user, {"name": "Idempotency-Key", "in": "header", "required": false, "schema": {"type": "string", "maxLength": 255}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["items", "card"],
                    "additionalProperties": false,
                    "properties": {"items": {"type": "array", "minItems": 1, "maxItems": 50, "items": {"type": "object", "required": ["product_id", "quantity"],
                        "additionalProperties": false,
                        "properties": {"product_id": {"type": "string", "format": "uuid"}, "quantity": {"type": "integer", "minimum": 1, "maximum": 1000}}}},
                        "card": {"type": "string", "minLength": 1, "maxLength": 64}}}}}},
                "responses": {"202": {"description": "pending order", "content": {"application/json": {"schema": order}}},
                    "400": err, "401": err, "409": err, "415": err, "422": err}},
            "get": {"summary": "The caller's orders, newest first",
                "parameters": [user, {"name": "status", "in": "query", "schema": {"type": "string", "enum": ["pending", "confirmed", "cancelled"]}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
                "responses": {"200": {"description": "orders"}, "400": err, "401": err}}
        },
        "/api/v1/orders/{id}": {"get": {"summary": "One of the caller's orders",
            "parameters": [user, {"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}],
            "responses": {"200": {"description": "order", "content": {"application/json": {"schema": order}}}, "400": err, "401": err, "404": err}}},
        "/admin/sagas": {"get": {"summary": "Saga counts by state, order counts by status, outbox lag, recent sagas (admin token)",
            "parameters": [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}}],
            "responses": {"200": {"description": "overview"}, "401": err, "403": err}}},
        "/admin/sagas/{id}": {"get": {"summary": "One saga with its step journal (admin token)",
            "responses": {"200": {"description": "saga"}, "404": err, "401": err, "403": err}}}
    });
    service_kit::openapi::document("order-service", paths)
}
