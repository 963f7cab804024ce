//! Notifications in Postgres.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use crate::event::OrderEvent;

/// A stored notification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    /// Row id.
    pub id: i64,
    /// The order event it came from.
    pub event_id: Uuid,
    /// `order.created`, `order.confirmed` or `order.cancelled`.
    pub event_type: String,
    /// Order.
    pub order_id: Uuid,
    /// Recipient.
    pub user_id: String,
    /// Text.
    pub message: String,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, event_id, event_type, order_id, user_id, message, created_at";

fn from_row(r: &PgRow) -> Result<Notification, sqlx::Error> {
    Ok(Notification {
        id: r.try_get("id")?,
        event_id: r.try_get("event_id")?,
        event_type: r.try_get("event_type")?,
        order_id: r.try_get("order_id")?,
        user_id: r.try_get("user_id")?,
        message: r.try_get("message")?,
        created_at: r.try_get("created_at")?,
    })
}

/// Store the notification for `event`; `false` when this event was stored before.
#[tracing::instrument(skip_all, fields(event_id = %event.event_id))]
pub async fn insert(pool: &PgPool, event: &OrderEvent) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO notifications (event_id, event_type, order_id, user_id, message, payload)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event.event_id)
    .bind(event.kind.as_str())
    .bind(event.order_id)
    .bind(&event.user_id)
    .bind(event.message())
    .bind(&event.raw)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Notifications, newest first, optionally for one user and/or one order.
#[tracing::instrument(skip(pool))]
pub async fn list(
    pool: &PgPool,
    user: Option<&str>,
    order: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Notification>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM notifications
         WHERE ($1::text IS NULL OR user_id = $1) AND ($2::uuid IS NULL OR order_id = $2)
         ORDER BY id DESC LIMIT $3"
    ))
    .bind(user)
    .bind(order)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter().map(from_row).collect()
}
