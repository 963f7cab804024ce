//! Charge, refund and read. Every call is idempotent on the order id; the `payments` row
//! is the idempotency record and the `ledger` holds one row per capture or refund.
//!
//! Answers by state: a repeated charge returns the first answer (same `payment_id`, or the
//! same decline); a charge after a refund is 409 `payment_refunded`; a charge after a
//! refund that found nothing (a `voided` tombstone) is 409 `payment_voided` — so a charge
//! landing after its compensation never captures money for a cancelled order.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use service_kit::error::ApiJson;
use service_kit::ApiError;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{Charge, ChargeBody};
use crate::state::AppState;
use service_kit::db::db_error;
use service_kit::extract::IdPath;

/// The recorded state of an order's payment.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PaymentRecord {
    /// Order.
    pub order_id: Uuid,
    /// Payment id (stable across retries).
    pub payment_id: Uuid,
    /// Amount charged (0 for a tombstone).
    pub amount_cents: i64,
    /// Last four card digits.
    pub card_last4: String,
    /// captured, declined, refunded or voided.
    pub status: String,
    /// Why it was declined.
    pub decline_reason: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

/// Errors of the payment API.
#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    /// The processor declined the charge.
    #[error("payment for order {order_id} declined: {reason}")]
    Declined {
        /// Order.
        order_id: Uuid,
        /// Payment id of the declined attempt.
        payment_id: Uuid,
        /// card_declined or amount_over_limit.
        reason: String,
    },
    /// The charge was refunded; it cannot be charged again.
    #[error("the payment of order {0} was refunded; use a new order id")]
    Refunded(Uuid),
    /// The order was compensated before any charge arrived.
    #[error("order {0} was compensated (refunded before any charge); it cannot be charged")]
    Voided(Uuid),
    /// No payment for this order.
    #[error("no payment for order {0}")]
    NotFound(Uuid),
    /// Database trouble.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl IntoResponse for PaymentError {
    fn into_response(self) -> Response {
        match self {
            PaymentError::Declined {
                order_id,
                payment_id,
                ref reason,
            } => (
                StatusCode::PAYMENT_REQUIRED,
                Json(json!({
                    "code": "declined",
                    "message": self.to_string(),
                    "reason": reason,
                    "order_id": order_id,
                    "payment_id": payment_id,
                })),
            )
                .into_response(),
            e @ PaymentError::Refunded(_) => {
                ApiError::new(StatusCode::CONFLICT, "payment_refunded", e.to_string())
                    .into_response()
            }
            e @ PaymentError::Voided(_) => {
                ApiError::new(StatusCode::CONFLICT, "payment_voided", e.to_string()).into_response()
            }
            e @ PaymentError::NotFound(_) => ApiError::not_found(e.to_string()).into_response(),
            PaymentError::Db(e) => db_error(e).into_response(),
        }
    }
}

async fn load(pool: &PgPool, order_id: Uuid) -> Result<Option<PaymentRecord>, sqlx::Error> {
    sqlx::query_as(
        "SELECT order_id, payment_id, amount_cents, card_last4, status, decline_reason, \
         created_at, updated_at FROM payments WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(pool)
    .await
}

/// The answer a charge gets for a recorded payment.
fn charge_answer(p: &PaymentRecord) -> Result<Json<serde_json::Value>, PaymentError> {
    match p.status.as_str() {
        "captured" => Ok(Json(json!({
            "order_id": p.order_id, "status": "captured", "payment_id": p.payment_id,
            "amount_cents": p.amount_cents,
        }))),
        "declined" => Err(PaymentError::Declined {
            order_id: p.order_id,
            payment_id: p.payment_id,
            reason: p
                .decline_reason
                .clone()
                .unwrap_or_else(|| "declined".into()),
        }),
        "refunded" => Err(PaymentError::Refunded(p.order_id)),
        _ => Err(PaymentError::Voided(p.order_id)),
    }
}

/// `POST /internal/payments/charge`.
#[tracing::instrument(skip(state, body))]
pub async fn charge(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ChargeBody>,
) -> Result<Json<serde_json::Value>, Response> {
    let c = Charge::parse(body).map_err(IntoResponse::into_response)?;
    let (record, fresh) = record_charge(&state.pool, &c)
        .await
        .map_err(|e| PaymentError::from(e).into_response())?;
    let m = &state.metrics;
    match (record.status.as_str(), fresh) {
        ("captured", true) => {
            m.captured.inc();
            m.captured_cents.add(record.amount_cents.unsigned_abs());
        }
        ("declined", true) => m.declined.inc(),
        _ => m.replayed.inc(),
    }
    if cfg!(feature = "bug-charge-replay-conflict") && !fresh && record.status == "captured" {
        // seeded bug (fidelity suite): "never charge twice" answered as an error — a retry
        // of a charge that was captured gets 409 instead of the first answer.
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "duplicate_charge",
            format!("order {} was already charged", record.order_id),
        )
        .into_response());
    }
    charge_answer(&record).map_err(IntoResponse::into_response)
}

/// Record a charge (capture or decline) unless the order has a payment already; returns
/// the record and whether this call made it.
#[tracing::instrument(skip(pool, c), fields(order_id = %c.order_id))]
pub async fn record_charge(
    pool: &PgPool,
    c: &Charge,
) -> Result<(PaymentRecord, bool), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let decline = c.decline_reason();
    let status = if decline.is_some() {
        "declined"
    } else {
        "captured"
    };
    // A concurrent charge of the same order waits here on the primary key, then finds
    // the first one's record: never two captures.
    let inserted: Option<PaymentRecord> = sqlx::query_as(
        "INSERT INTO payments (order_id, payment_id, amount_cents, card_last4, status, decline_reason) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id) DO NOTHING \
         RETURNING order_id, payment_id, amount_cents, card_last4, status, decline_reason, created_at, updated_at",
    )
    .bind(c.order_id)
    .bind(Uuid::new_v4())
    .bind(c.amount_cents)
    .bind(c.card.last4())
    .bind(status)
    .bind(decline)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(record) = inserted else {
        tx.rollback().await?;
        let existing = load(pool, c.order_id)
            .await?
            .ok_or(sqlx::Error::RowNotFound)?;
        return Ok((existing, false));
    };
    if decline.is_none() {
        sqlx::query(
            "INSERT INTO ledger (order_id, payment_id, kind, amount_cents) VALUES ($1, $2, 'capture', $3)",
        )
        .bind(record.order_id)
        .bind(record.payment_id)
        .bind(record.amount_cents)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok((record, true))
}

/// `POST /internal/payments/{order_id}/refund`.
#[tracing::instrument(skip(state))]
pub async fn refund(
    State(state): State<AppState>,
    IdPath(order_id): IdPath,
) -> Result<Json<serde_json::Value>, PaymentError> {
    let mut tx = state.pool.begin().await?;
    let tombstone: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO payments (order_id, payment_id, amount_cents, status) \
         VALUES ($1, $2, 0, 'voided') ON CONFLICT (order_id) DO NOTHING RETURNING order_id",
    )
    .bind(order_id)
    .bind(Uuid::new_v4())
    .fetch_optional(&mut *tx)
    .await?;
    if tombstone.is_some() {
        tx.commit().await?;
        return Ok(Json(
            json!({"order_id": order_id, "status": "nothing_to_refund"}),
        ));
    }
    let (status, payment_id, amount): (String, Uuid, i64) = sqlx::query_as(
        "SELECT status, payment_id, amount_cents FROM payments WHERE order_id = $1 FOR UPDATE",
    )
    .bind(order_id)
    .fetch_one(&mut *tx)
    .await?;
    match status.as_str() {
        "captured" => {
            sqlx::query(
                "INSERT INTO ledger (order_id, payment_id, kind, amount_cents) VALUES ($1, $2, 'refund', $3)",
            )
            .bind(order_id)
            .bind(payment_id)
            .bind(amount)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE payments SET status = 'refunded', updated_at = now() WHERE order_id = $1",
            )
            .bind(order_id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            state.metrics.refunded.inc();
            state.metrics.refunded_cents.add(amount.unsigned_abs());
            Ok(Json(
                json!({"order_id": order_id, "status": "refunded", "payment_id": payment_id}),
            ))
        }
        "refunded" => Ok(Json(
            json!({"order_id": order_id, "status": "refunded", "payment_id": payment_id}),
        )),
        _ => Ok(Json(
            json!({"order_id": order_id, "status": "nothing_to_refund"}),
        )),
    }
}

/// One ledger row.
#[derive(Debug, Serialize, sqlx::FromRow)]
pub struct LedgerEntry {
    kind: String,
    amount_cents: i64,
    created_at: DateTime<Utc>,
}

/// `GET /api/v1/payments/{order_id}`: the payment and its ledger rows.
#[tracing::instrument(skip(state))]
pub async fn get_one(
    State(state): State<AppState>,
    IdPath(order_id): IdPath,
) -> Result<Json<serde_json::Value>, PaymentError> {
    let p = load(&state.pool, order_id)
        .await?
        .ok_or(PaymentError::NotFound(order_id))?;
    let ledger: Vec<LedgerEntry> = sqlx::query_as(
        "SELECT kind, amount_cents, created_at FROM ledger WHERE order_id = $1 ORDER BY id",
    )
    .bind(order_id)
    .fetch_all(&state.pool)
    .await?;
    Ok(Json(json!({
        "order_id": p.order_id,
        "payment_id": p.payment_id,
        "status": p.status,
        "amount_cents": p.amount_cents,
        "card_last4": p.card_last4,
        "decline_reason": p.decline_reason,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
        "ledger": ledger,
    })))
}

/// `GET /internal/ledger/totals`: money captured and refunded, for invariant checks
/// (captured − refunded = sum of confirmed order totals).
#[tracing::instrument(skip(state))]
pub async fn totals(
    State(state): State<AppState>,
) -> Result<Json<serde_json::Value>, PaymentError> {
    let (captured, refunded, captures, refunds): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(amount_cents) FILTER (WHERE kind = 'capture'), 0)::BIGINT, \
                COALESCE(SUM(amount_cents) FILTER (WHERE kind = 'refund'), 0)::BIGINT, \
                COUNT(*) FILTER (WHERE kind = 'capture'), COUNT(*) FILTER (WHERE kind = 'refund') \
         FROM ledger",
    )
    .fetch_one(&state.pool)
    .await?;
    Ok(Json(json!({
        "captured_cents": captured,
        "refunded_cents": refunded,
        "net_cents": captured - refunded,
        "captures": captures,
        "refunds": refunds,
    })))
}
