//! The API gateway of the msctl reference stack.
//!
//! Routes `/api/v1/{users,products,orders,payments,notifications}/**` to instances found
//! through the registry, with authentication, rate limiting and the kit's resilience
//! policies; see [`proxy`] for the order in which they apply. `/internal/**` and
//! `/admin/**` are never routed; the gateway's own admin API is `GET /admin/upstreams`.

pub mod config;
pub mod proxy;
pub mod routes;

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use service_kit::app::AppError;
use service_kit::jwt::JwtKeys;
use service_kit::resilience::rate_limit::RateLimiter;
use service_kit::{RunningService, ServiceConfig, ServiceHost};

pub use config::GatewayConfig;
pub use proxy::Gateway;

/// Bind the gateway.
pub async fn build(
    service: ServiceConfig,
    config: GatewayConfig,
) -> Result<RunningService, AppError> {
    let mut host = ServiceHost::new(service);
    host.openapi(openapi()).custom_fallback();
    let client = host.client(config.policy);
    let gw = Gateway {
        jwt: Arc::new(JwtKeys::new(&config.jwt)),
        limiter: config.rate_limit.map(|l| Arc::new(RateLimiter::new(l))),
        config: Arc::new(config),
        client,
        metrics: host.metrics().clone(),
        forwarded: host.metrics().counter(
            "gateway_forwarded_total",
            "Client requests forwarded to an upstream service.",
            &[],
        ),
    };
    let routes = Router::new()
        .route("/admin/upstreams", get(upstreams))
        .fallback(proxy::proxy)
        .with_state(gw);
    host.bind(routes).await
}

async fn upstreams(State(gw): State<Gateway>) -> Json<serde_json::Value> {
    Json(json!({
        "load_balancing": gw.config.policy.balancing,
        "services": gw.client.snapshot(),
    }))
}

fn openapi() -> serde_json::Value {
    let mut paths = serde_json::Map::new();
    for (route, service) in routes::ROUTES {
        let op = json!({
            "summary": format!("Proxied to {service}"),
            "description": "Bearer JWT required except POST /api/v1/users/{register,login} and GET /api/v1/products/**",
            "responses": {"default": {"description": "the upstream's answer"},
                          "401": {"description": "missing or invalid token"},
                          "429": {"description": "rate limited; see Retry-After"},
                          "502": {"description": "upstream failed"},
                          "503": {"description": "no healthy instance or all circuits open"},
                          "504": {"description": "upstream timed out"}}});
        let item: serde_json::Map<String, serde_json::Value> =
            ["get", "post", "put", "patch", "delete"]
                .iter()
                .map(|m| ((*m).to_owned(), op.clone()))
                .collect();
        paths.insert(
            format!("/api/v1/{route}/{{rest}}"),
            serde_json::Value::Object(item),
        );
    }
    paths.insert(
        "/admin/upstreams".into(),
        json!({"get": {"summary": "Instances, breaker states, ejections, in-flight (admin token)",
                       "responses": {"200": {"description": "snapshot"}}}}),
    );
    service_kit::openapi::document("gateway", serde_json::Value::Object(paths))
}
