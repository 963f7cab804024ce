//! notification-service: consumes order events from RabbitMQ and stores one notification
//! per event; `GET /api/v1/notifications` reads them.
//!
//! - [`consumer`]: topology, manual acks, dead-lettering, reconnection;
//! - [`event`]: the order event format; [`store`]: notifications in Postgres;
//! - [`routes`], [`config`], [`db`].

pub mod config;
pub mod consumer;
pub mod db;
pub mod event;
pub mod routes;
pub mod store;

use std::time::Duration;

use serde_json::json;
use service_kit::{RunningService, ServiceHost};

pub use config::{NotificationConfig, Topology};

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

/// Prepare the database, start the consumer and bind the server.
pub async fn build(config: NotificationConfig) -> Result<RunningService, StartError> {
    let pool = db::prepare(
        &config.database_url,
        &service_kit::db::PoolSettings {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            patience: Duration::from_secs(120),
        },
    )
    .await?;
    let mut host = ServiceHost::new(config.service.clone());
    host.openapi(openapi());
    let amqp = service_kit::amqp::AmqpLink::new();
    consumer::EventConsumer::new(
        pool.clone(),
        config.amqp_url.clone(),
        config.topology.clone(),
        config.prefetch,
        host.metrics(),
        amqp.clone(),
    )
    .spawn(host.tracker(), host.shutdown_token());
    let ready_pool = pool.clone();
    host.readiness_check("postgres", move || {
        service_kit::db::ping(ready_pool.clone())
    })
    // The consumer's connection: without it no event is stored.
    .readiness_check("rabbitmq", move || amqp.clone().check());
    let close_pool = pool.clone();
    host.on_shutdown(async move { close_pool.close().await });
    Ok(host.bind(routes::router(pool)).await?)
}

fn openapi() -> serde_json::Value {
    let err = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let params = json!([
        {"name": "order_id", "in": "query", "schema": {"type": "string", "format": "uuid"}},
        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}}
    ]);
    let mut user_params = params.clone();
    if let Some(a) = user_params.as_array_mut() {
        a.push(json!({"name": "X-User-Id", "in": "header", "required": true, "schema": {"type": "string"}}));
    }
    service_kit::openapi::document(
        "notification-service",
        json!({
            "/api/v1/notifications": {"get": {"summary": "The caller's notifications, newest first",
                "parameters": user_params,
                "responses": {"200": {"description": "notifications"}, "400": err, "401": err}}},
            "/admin/notifications": {"get": {"summary": "Every user's notifications (admin token)",
                "parameters": params,
                "responses": {"200": {"description": "notifications"}, "400": err, "401": err, "403": err}}}
        }),
    )
}
