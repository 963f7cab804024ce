//! Orders in Postgres, and the outbox rows written in the same transactions.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::domain::{IdempotencyKey, NewOrder, OrderItem, OrderStatus, UserId};
use crate::saga::SagaState;

/// An order as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Order {
    /// Order id.
    pub id: Uuid,
    /// Owner.
    pub user_id: String,
    /// Status.
    pub status: OrderStatus,
    /// Why it was cancelled.
    pub reason: Option<String>,
    /// Lines.
    pub items: Vec<OrderItem>,
    /// Total from the reservation, once known.
    pub total_cents: Option<i64>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

pub(crate) const ORDER_COLUMNS: &str =
    "id, user_id, status, reason, items, total_cents, created_at, updated_at";

impl Order {
    pub(crate) fn from_row(row: &PgRow) -> Result<Self, sqlx::Error> {
        let status: String = row.try_get("status")?;
        let items: serde_json::Value = row.try_get("items")?;
        Ok(Self {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            status: OrderStatus::parse(&status).ok_or_else(|| {
                sqlx::Error::Decode(format!("unknown order status {status:?}").into())
            })?,
            reason: row.try_get("reason")?,
            items: serde_json::from_value(items).map_err(|e| sqlx::Error::Decode(e.into()))?,
            total_cents: row.try_get("total_cents")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

/// The kind of an order event; also its routing key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The order was accepted (pending).
    Created,
    /// The saga confirmed it.
    Confirmed,
    /// The saga cancelled it.
    Cancelled,
}

impl EventType {
    /// `order.created`, `order.confirmed` or `order.cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Created => "order.created",
            EventType::Confirmed => "order.confirmed",
            EventType::Cancelled => "order.cancelled",
        }
    }
}

/// Write an event for `order` to the outbox, inside the caller's transaction.
pub async fn insert_event(
    conn: &mut PgConnection,
    kind: EventType,
    order: &Order,
) -> Result<Uuid, sqlx::Error> {
    let event_id = Uuid::new_v4();
    let payload = json!({
        "event_id": event_id,
        "type": kind.as_str(),
        "occurred_at": Utc::now(),
        "order_id": order.id,
        "user_id": order.user_id,
        "status": order.status,
        "reason": order.reason,
        "total_cents": order.total_cents,
        "items": order.items,
    });
    sqlx::query(
        "INSERT INTO outbox (event_id, event_type, order_id, payload) VALUES ($1, $2, $3, $4)",
    )
    .bind(event_id)
    .bind(kind.as_str())
    .bind(order.id)
    .bind(payload)
    .execute(conn)
    .await?;
    Ok(event_id)
}

/// What [`create_order`] did.
#[derive(Debug, Clone)]
pub enum Created {
    /// A new order and saga.
    New(Order),
    /// The idempotency key was seen before with the same request: that order.
    Replayed(Order),
}

/// Failure of [`create_order`].
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The key was used before by this user for a different request.
    #[error("idempotency key reused with a different request")]
    KeyReused,
    /// Database failure.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

/// Insert a pending order, its saga and its `order.created` event in one transaction, or
/// return the order an earlier request with the same idempotency key created.
#[tracing::instrument(skip(pool, order), fields(user = %user.as_str()))]
pub async fn create_order(
    pool: &PgPool,
    user: &UserId,
    key: Option<&IdempotencyKey>,
    order: &NewOrder,
) -> Result<Created, CreateError> {
    let fingerprint = order.fingerprint();
    let items = serde_json::to_value(&order.items).map_err(|e| sqlx::Error::Encode(e.into()))?;
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(&format!(
        "INSERT INTO orders (id, user_id, status, items, idempotency_key, request_hash)
         VALUES ($1, $2, 'pending', $3, $4, $5)
         ON CONFLICT (user_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
         RETURNING {ORDER_COLUMNS}"
    ))
    .bind(Uuid::new_v4())
    .bind(user.as_str())
    .bind(items)
    .bind(key.map(IdempotencyKey::as_str))
    .bind(&fingerprint)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(row) = inserted {
        let created = Order::from_row(&row)?;
        sqlx::query("INSERT INTO sagas (order_id, state, card) VALUES ($1, $2, $3)")
            .bind(created.id)
            .bind(SagaState::INITIAL.as_str())
            .bind(&order.card)
            .execute(&mut *tx)
            .await?;
        insert_event(&mut tx, EventType::Created, &created).await?;
        tx.commit().await?;
        return Ok(Created::New(created));
    }
    tx.rollback().await?;
    let row = sqlx::query(&format!(
        "SELECT {ORDER_COLUMNS}, request_hash FROM orders WHERE user_id = $1 AND idempotency_key = $2"
    ))
    .bind(user.as_str())
    .bind(key.map(IdempotencyKey::as_str))
    .fetch_one(pool)
    .await?;
    let hash: String = row.try_get("request_hash")?;
    if hash != fingerprint {
        return Err(CreateError::KeyReused);
    }
    Ok(Created::Replayed(Order::from_row(&row)?))
}

/// The order `id` if it belongs to `user`.
#[tracing::instrument(skip(pool))]
pub async fn get_order(pool: &PgPool, user: &str, id: Uuid) -> Result<Option<Order>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1 AND user_id = $2"
    ))
    .bind(id)
    .bind(user)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(Order::from_row).transpose()
}

/// The user's orders, newest first.
#[tracing::instrument(skip(pool))]
pub async fn list_orders(
    pool: &PgPool,
    user: &str,
    status: Option<OrderStatus>,
    limit: i64,
) -> Result<Vec<Order>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {ORDER_COLUMNS} FROM orders
         WHERE user_id = $1 AND ($2::text IS NULL OR status = $2)
         ORDER BY created_at DESC, id LIMIT $3"
    ))
    .bind(user)
    .bind(status.map(OrderStatus::as_str))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(Order::from_row).collect()
}
