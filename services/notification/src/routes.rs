//! HTTP handlers: the user's notifications and an unscoped admin view.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use service_kit::ApiError;
use sqlx::PgPool;
use uuid::Uuid;

/// The service's routes.
pub fn router(pool: PgPool) -> Router {
    Router::new()
        .route("/api/v1/notifications", get(mine))
        .route("/admin/notifications", get(all))
        .with_state(pool)
}

struct Filter {
    order: Option<Uuid>,
    limit: i64,
}

fn filter(q: Result<Query<HashMap<String, String>>, QueryRejection>) -> Result<Filter, ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let order = match q.get("order_id") {
        None => None,
        Some(v) => Some(Uuid::parse_str(v.trim()).map_err(|_| {
            ApiError::bad_request("invalid_order_id", format!("order_id {v:?} is not a UUID"))
        })?),
    };
    let limit = match q.get("limit") {
        None => 100,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_limit",
                    format!("limit {v:?} is invalid; use 1 to 1000"),
                ))
            }
        },
    };
    Ok(Filter { order, limit })
}

fn user(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(v) = headers.get("x-user-id") else {
        return Err(ApiError::unauthorized(
            "missing X-User-Id; call through the gateway with a bearer token",
        ));
    };
    let s = v.to_str().unwrap_or_default().trim();
    if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::bad_request(
            "invalid_user_id",
            "X-User-Id must be 1 to 128 visible ASCII characters",
        ));
    }
    Ok(s.to_owned())
}

/// `GET /api/v1/notifications?order_id=&limit=`: the caller's notifications.
#[tracing::instrument(skip_all)]
async fn mine(
    State(pool): State<PgPool>,
    headers: HeaderMap,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let user = user(&headers)?;
    let f = filter(q)?;
    crate::store::list(&pool, Some(&user), f.order, f.limit)
        .await
        .map(|n| Json(json!({"notifications": n})))
        .map_err(|e| ApiError::internal(&e))
}

/// `GET /admin/notifications?order_id=&limit=`: everyone's (admin token).
#[tracing::instrument(skip_all)]
async fn all(
    State(pool): State<PgPool>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let f = filter(q)?;
    crate::store::list(&pool, None, f.order, f.limit)
        .await
        .map(|n| Json(json!({"notifications": n})))
        .map_err(|e| ApiError::internal(&e))
}
