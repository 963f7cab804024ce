//! HTTP handlers: the public orders API and the admin saga overview.

use std::collections::HashMap;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use service_kit::error::ApiJson;
use service_kit::ApiError;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::domain::{IdempotencyKey, NewOrder, NewOrderBody, OrderStatus, UserId};
use crate::engine::SagaEngine;
use crate::store::{self, CreateError, Created};

/// Handler state.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The orders database.
    pub pool: PgPool,
    /// The saga engine (woken on new orders).
    pub engine: SagaEngine,
    /// `orders_created_total`.
    pub created: service_kit::metrics::Counter,
}

/// The service's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/orders", get(list).post(create))
        .route("/api/v1/orders/{id}", get(show))
        .route("/admin/sagas", get(admin_sagas))
        .route("/admin/sagas/{id}", get(admin_saga))
        .with_state(state)
}

fn internal(e: &(dyn std::error::Error + 'static)) -> ApiError {
    ApiError::internal(e)
}

fn parse_id(path: Result<Path<String>, PathRejection>) -> Result<Uuid, ApiError> {
    let Path(raw) = path.map_err(|e| ApiError::bad_request("invalid_id", e.body_text()))?;
    Uuid::parse_str(&raw).map_err(|_| {
        ApiError::bad_request("invalid_id", format!("{raw:?} is not an order id (UUID)"))
    })
}

fn parse_query(
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<HashMap<String, String>, ApiError> {
    q.map(|Query(m)| m)
        .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
}

fn parse_limit(q: &HashMap<String, String>, default: i64) -> Result<i64, ApiError> {
    match q.get("limit") {
        None => Ok(default),
        Some(v) => match v.parse::<i64>() {
            Ok(n) if (1..=500).contains(&n) => Ok(n),
            _ => Err(ApiError::bad_request(
                "invalid_limit",
                format!("limit {v:?} is invalid; use 1 to 500"),
            )),
        },
    }
}

/// `POST /api/v1/orders`.
#[tracing::instrument(skip_all)]
async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<ApiJson<NewOrderBody>, ApiError>,
) -> Result<Response, ApiError> {
    let user = UserId::parse(headers.get("x-user-id"))?;
    let key = IdempotencyKey::parse(headers.get("idempotency-key"))?;
    let ApiJson(body) = body?;
    let order = NewOrder::parse(body)?;
    let (order, replayed) =
        match store::create_order(&state.pool, &user, key.as_ref(), &order).await {
            Ok(Created::New(o)) => {
                state.created.inc();
                state.engine.wake();
                (o, false)
            }
            Ok(Created::Replayed(o)) => (o, true),
            Err(CreateError::KeyReused) => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "idempotency_key_reused",
                    "this Idempotency-Key was already used for a different order; use a new key",
                ))
            }
            Err(CreateError::Sql(e)) => return Err(internal(&e)),
        };
    let mut resp = (StatusCode::ACCEPTED, Json(&order)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/v1/orders/{}", order.id)) {
        resp.headers_mut().insert(axum::http::header::LOCATION, v);
    }
    if replayed {
        resp.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    Ok(resp)
}

/// `GET /api/v1/orders/{id}`.
#[tracing::instrument(skip_all)]
async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let user = UserId::parse(headers.get("x-user-id"))?;
    let id = parse_id(id)?;
    match store::get_order(&state.pool, user.as_str(), id).await {
        Ok(Some(o)) => Ok(Json(o).into_response()),
        Ok(None) => Err(ApiError::not_found(format!("no order {id} for this user"))),
        Err(e) => Err(internal(&e)),
    }
}

/// `GET /api/v1/orders?status=&limit=`.
#[tracing::instrument(skip_all)]
async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let user = UserId::parse(headers.get("x-user-id"))?;
    let q = parse_query(query)?;
    let limit = parse_limit(&q, 50)?;
    let status = match q.get("status") {
        None => None,
        Some(s) => Some(OrderStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_status",
                format!("status {s:?} is invalid; use pending, confirmed or cancelled"),
            )
        })?),
    };
    match store::list_orders(&state.pool, user.as_str(), status, limit).await {
        Ok(orders) => Ok(Json(json!({"orders": orders})).into_response()),
        Err(e) => Err(internal(&e)),
    }
}

/// `GET /admin/sagas?limit=`: saga counts by state, order counts by status, outbox lag and
/// the most recently changed sagas (the dashboard's view).
#[tracing::instrument(skip_all)]
async fn admin_sagas(
    State(state): State<AppState>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Response, ApiError> {
    let q = parse_query(query)?;
    let limit = parse_limit(&q, 20)?;
    let overview = async {
        let mut by_state = serde_json::Map::new();
        for st in crate::saga::SagaState::ALL {
            by_state.insert(st.as_str().into(), json!(0));
        }
        for row in sqlx::query("SELECT state, count(*) AS n FROM sagas GROUP BY state")
            .fetch_all(&state.pool)
            .await?
        {
            let s: String = row.try_get("state")?;
            let n: i64 = row.try_get("n")?;
            by_state.insert(s, json!(n));
        }
        let mut by_status = serde_json::Map::new();
        for s in ["pending", "confirmed", "cancelled"] {
            by_status.insert(s.into(), json!(0));
        }
        for row in sqlx::query("SELECT status, count(*) AS n FROM orders GROUP BY status")
            .fetch_all(&state.pool)
            .await?
        {
            let s: String = row.try_get("status")?;
            let n: i64 = row.try_get("n")?;
            by_status.insert(s, json!(n));
        }
        let lag = crate::stats::outbox_lag(&state.pool).await?;
        let recent = sqlx::query(
            "SELECT s.order_id, o.user_id, o.status, s.state, o.reason, o.total_cents,
                    s.attempts, s.last_error, s.lease_owner, s.updated_at, o.created_at
             FROM sagas s JOIN orders o ON o.id = s.order_id
             ORDER BY s.updated_at DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&state.pool)
        .await?;
        let mut list = Vec::with_capacity(recent.len());
        for r in &recent {
            list.push(json!({
                "order_id": r.try_get::<Uuid, _>("order_id")?,
                "user_id": r.try_get::<String, _>("user_id")?,
                "status": r.try_get::<String, _>("status")?,
                "saga_state": r.try_get::<String, _>("state")?,
                "reason": r.try_get::<Option<String>, _>("reason")?,
                "total_cents": r.try_get::<Option<i64>, _>("total_cents")?,
                "attempts": r.try_get::<i32, _>("attempts")?,
                "last_error": r.try_get::<Option<String>, _>("last_error")?,
                "owner": r.try_get::<Option<String>, _>("lease_owner")?,
                "created_at": r.try_get::<chrono::DateTime<chrono::Utc>, _>("created_at")?,
                "updated_at": r.try_get::<chrono::DateTime<chrono::Utc>, _>("updated_at")?,
            }));
        }
        Ok::<_, sqlx::Error>(json!({
            "sagas": by_state,
            "orders": by_status,
            "outbox": {"unpublished": lag.unpublished, "oldest_unpublished_seconds": lag.oldest_seconds},
            "recent": list,
        }))
    };
    match overview.await {
        Ok(v) => Ok(Json(v).into_response()),
        Err(e) => Err(internal(&e)),
    }
}

/// `GET /admin/sagas/{id}`: one saga with its step journal.
#[tracing::instrument(skip_all)]
async fn admin_saga(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let id = parse_id(id)?;
    let detail = async {
        let Some(saga) = sqlx::query(
            "SELECT state, attempts, last_error, lease_owner, next_attempt_at FROM sagas WHERE order_id = $1",
        )
        .bind(id)
        .fetch_optional(&state.pool)
        .await?
        else {
            return Ok(None);
        };
        let steps = sqlx::query(
            "SELECT step, outcome, from_state, to_state, detail, at FROM saga_steps
             WHERE order_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&state.pool)
        .await?;
        let mut journal = Vec::with_capacity(steps.len());
        for r in &steps {
            journal.push(json!({
                "step": r.try_get::<String, _>("step")?,
                "outcome": r.try_get::<String, _>("outcome")?,
                "from": r.try_get::<String, _>("from_state")?,
                "to": r.try_get::<String, _>("to_state")?,
                "detail": r.try_get::<Option<String>, _>("detail")?,
                "at": r.try_get::<chrono::DateTime<chrono::Utc>, _>("at")?,
            }));
        }
        Ok::<_, sqlx::Error>(Some(json!({
            "order_id": id,
            "state": saga.try_get::<String, _>("state")?,
            "attempts": saga.try_get::<i32, _>("attempts")?,
            "last_error": saga.try_get::<Option<String>, _>("last_error")?,
            "owner": saga.try_get::<Option<String>, _>("lease_owner")?,
            "next_attempt_at": saga.try_get::<chrono::DateTime<chrono::Utc>, _>("next_attempt_at")?,
            "steps": journal,
        })))
    };
    match detail.await {
        Ok(Some(v)) => Ok(Json(v).into_response()),
        Ok(None) => Err(ApiError::not_found(format!("no saga for order {id}"))),
        Err(e) => Err(internal(&e)),
    }
}
