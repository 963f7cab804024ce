//! The internal reservation API used by the order saga. Every call is idempotent on the
//! order id; the `reservations` row is the idempotency record.
//!
//! - reserve: all or nothing. The order's record is claimed first (no product lock yet),
//!   then the products' rows are locked in product-id order (`SELECT … FOR UPDATE`, which
//!   waits for and returns the latest stock), the decision is made on those values, and
//!   one statement applies every line and the total; the refusal is recorded so a retry
//!   gets the same 409.
//!
//! Hot products: every reservation of a product queues on its row lock, and each holds a
//! pooled connection while it queues. The lock is therefore held for two round trips only
//! (the batched write and `COMMIT`), not one per statement per line: a lock held across
//! many round trips let a burst of 32 sagas outlast the pool's acquire timeout (503s that
//! opened the saga's breaker).
//! - release: reserved → released (stock back to available). Releasing an unknown order
//!   leaves a `released` tombstone, so a reserve that arrives after its compensation (a
//!   timed-out request finally landing) cannot take stock for a cancelled order.
//! - commit: reserved → committed (reserved → sold).
//!
//! Answers for other states: reserve of a committed order is 200 `committed` (the saga may
//! replay a step after a crash); reserve or commit of a released order is 409
//! `reservation_released`; release of a committed order is 200 `{"status":"committed"}`
//! and changes nothing.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use service_kit::error::ApiJson;
use service_kit::ApiError;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{ReservationBody, ReservationRequest};
use crate::state::AppState;
use service_kit::db::db_error;
use service_kit::extract::IdPath;

/// What a reservation request came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stock is held.
    Reserved {
        /// Sum of price × quantity at reservation time.
        total_cents: i64,
    },
    /// The held stock was sold.
    Committed {
        /// As reserved.
        total_cents: i64,
    },
    /// Refused: a product was short.
    Rejected {
        /// The first product that was short (or unknown).
        product_id: Option<Uuid>,
        /// Explanation.
        message: String,
    },
    /// Released (or compensated before it was made).
    Released,
}

/// Errors of the reservation API.
#[derive(Debug, thiserror::Error)]
pub enum ReservationError {
    /// Not enough stock (or no such product); nothing was reserved.
    #[error("{message}")]
    OutOfStock {
        /// Order.
        order_id: Uuid,
        /// Product that was short.
        product_id: Option<Uuid>,
        /// Explanation.
        message: String,
    },
    /// The order's reservation was released; it cannot be reserved or committed again.
    #[error("the reservation of order {0} was released; use a new order id")]
    Released(Uuid),
    /// Commit of an order never reserved.
    #[error("no reservation for order {0}")]
    NotFound(Uuid),
    /// Database trouble.
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

impl IntoResponse for ReservationError {
    fn into_response(self) -> Response {
        match self {
            ReservationError::OutOfStock {
                order_id,
                product_id,
                message,
            } => (
                StatusCode::CONFLICT,
                Json(json!({
                    "code": "out_of_stock",
                    "message": message,
                    "order_id": order_id,
                    "product_id": product_id,
                })),
            )
                .into_response(),
            e @ ReservationError::Released(_) => {
                ApiError::new(StatusCode::CONFLICT, "reservation_released", e.to_string())
                    .into_response()
            }
            e @ ReservationError::NotFound(_) => ApiError::new(
                StatusCode::NOT_FOUND,
                "reservation_not_found",
                e.to_string(),
            )
            .into_response(),
            ReservationError::Db(e) => db_error(e).into_response(),
        }
    }
}

/// `POST /internal/reservations`.
#[tracing::instrument(skip(state, body))]
pub async fn reserve(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<ReservationBody>,
) -> Result<Response, Response> {
    let req = ReservationRequest::parse(body).map_err(IntoResponse::into_response)?;
    let order_id = req.order_id;
    let (outcome, fresh) = reserve_stock(&state.pool, &req)
        .await
        .map_err(|e| ReservationError::from(e).into_response())?;
    let m = &state.reservations;
    match (&outcome, fresh) {
        (Outcome::Reserved { .. }, true) => {
            m.reserved.inc();
            let ids: Vec<Uuid> = req.items.iter().map(|(p, _)| *p).collect();
            state.cache.invalidate(&ids).await;
        }
        (Outcome::Rejected { .. }, true) => m.out_of_stock.inc(),
        _ => m.replayed.inc(),
    }
    match outcome {
        Outcome::Reserved { total_cents } => Ok(Json(json!({
            "order_id": order_id, "status": "reserved", "total_cents": total_cents
        }))
        .into_response()),
        Outcome::Committed { total_cents } => Ok(Json(json!({
            "order_id": order_id, "status": "committed", "total_cents": total_cents
        }))
        .into_response()),
        Outcome::Rejected {
            product_id,
            message,
        } => Err(ReservationError::OutOfStock {
            order_id,
            product_id,
            message,
        }
        .into_response()),
        Outcome::Released => Err(ReservationError::Released(order_id).into_response()),
    }
}

/// Reserve in one transaction; returns the outcome and whether this call made it (false:
/// answered from an earlier call's record).
#[tracing::instrument(skip(pool, req), fields(order_id = %req.order_id))]
pub async fn reserve_stock(
    pool: &PgPool,
    req: &ReservationRequest,
) -> Result<(Outcome, bool), sqlx::Error> {
    let mut tx = pool.begin().await?;
    // A concurrent call with the same order id blocks here on the primary key until the
    // first commits, then finds its record.
    let claimed: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO reservations (order_id, status) VALUES ($1, 'reserved') \
         ON CONFLICT (order_id) DO NOTHING RETURNING order_id",
    )
    .bind(req.order_id)
    .fetch_optional(&mut *tx)
    .await?;
    if claimed.is_none() {
        tx.rollback().await?;
        let outcome = recorded_outcome(pool, req.order_id)
            .await?
            .unwrap_or(Outcome::Released);
        return Ok((outcome, false));
    }
    // Lines are sorted by product id and merged (ReservationRequest::parse), so every
    // transaction locks rows in the same order: no deadlocks.
    let ids: Vec<Uuid> = req.items.iter().map(|(p, _)| *p).collect();
    let quantities: Vec<i64> = req.items.iter().map(|(_, q)| *q).collect();
    let rows: Vec<(Uuid, i64, i64)> = sqlx::query_as(if cfg!(feature = "bug-stock-lost-update") {
        // seeded bug (fidelity suite): "the UPDATE locks the row anyway" — stock is read
        // without FOR UPDATE and the new level is computed here from that read (see the
        // write below), so a concurrent reservation's decrement is overwritten.
        "SELECT id, available, price_cents FROM products \
         WHERE id = ANY($1) AND deleted_at IS NULL ORDER BY id"
    } else {
        "SELECT id, available, price_cents FROM products \
         WHERE id = ANY($1) AND deleted_at IS NULL ORDER BY id FOR UPDATE"
    })
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let stock: std::collections::HashMap<Uuid, (i64, i64)> =
        rows.into_iter().map(|(id, a, p)| (id, (a, p))).collect();
    let mut prices = Vec::with_capacity(req.items.len());
    let mut short: Option<(Uuid, String)> = None;
    for &(product_id, quantity) in &req.items {
        match stock.get(&product_id) {
            Some(&(available, price)) if available >= quantity => prices.push(price),
            Some(&(available, _)) => {
                short = Some((
                    product_id,
                    format!(
                        "product {product_id}: requested {quantity}, only {available} available"
                    ),
                ));
                break;
            }
            None => {
                short = Some((product_id, format!("product {product_id} does not exist")));
                break;
            }
        }
    }
    let outcome = match short {
        None => {
            // Bounded by MAX_ITEMS × MAX_QUANTITY × MAX_PRICE_CENTS < i64::MAX.
            let total: i64 = prices.iter().zip(&quantities).map(|(p, q)| p * q).sum();
            if cfg!(feature = "bug-stock-lost-update") {
                // seeded bug (fidelity suite), continued: available = what was read − quantity.
                let left: Vec<i64> = req
                    .items
                    .iter()
                    .map(|(p, q)| stock.get(p).map_or(0, |(a, _)| a - q))
                    .collect();
                sqlx::query(
                    "WITH line AS ( \
                         SELECT * FROM unnest($2::uuid[], $3::bigint[], $4::bigint[], $6::bigint[]) \
                             AS l(product_id, quantity, price_cents, left_over)), \
                     taken AS ( \
                         UPDATE products p SET available = line.left_over, \
                             reserved = p.reserved + line.quantity, updated_at = now() \
                         FROM line WHERE p.id = line.product_id), \
                     items AS ( \
                         INSERT INTO reservation_items (order_id, product_id, quantity, price_cents) \
                         SELECT $1, product_id, quantity, price_cents FROM line) \
                     UPDATE reservations SET total_cents = $5 WHERE order_id = $1",
                )
                .bind(req.order_id)
                .bind(&ids)
                .bind(&quantities)
                .bind(&prices)
                .bind(total)
                .bind(&left)
                .execute(&mut *tx)
                .await?;
            } else {
                sqlx::query(
                    "WITH line AS ( \
                     SELECT * FROM unnest($2::uuid[], $3::bigint[], $4::bigint[]) \
                         AS l(product_id, quantity, price_cents)), \
                 taken AS ( \
                     UPDATE products p SET available = p.available - line.quantity, \
                         reserved = p.reserved + line.quantity, updated_at = now() \
                     FROM line WHERE p.id = line.product_id), \
                 items AS ( \
                     INSERT INTO reservation_items (order_id, product_id, quantity, price_cents) \
                     SELECT $1, product_id, quantity, price_cents FROM line) \
                 UPDATE reservations SET total_cents = $5 WHERE order_id = $1",
                )
                .bind(req.order_id)
                .bind(&ids)
                .bind(&quantities)
                .bind(&prices)
                .bind(total)
                .execute(&mut *tx)
                .await?;
            }
            Outcome::Reserved { total_cents: total }
        }
        Some((product_id, message)) => {
            sqlx::query(
                "UPDATE reservations SET status = 'rejected', reject_product = $2, \
                 reject_message = $3 WHERE order_id = $1",
            )
            .bind(req.order_id)
            .bind(product_id)
            .bind(&message)
            .execute(&mut *tx)
            .await?;
            Outcome::Rejected {
                product_id: Some(product_id),
                message,
            }
        }
    };
    tx.commit().await?;
    Ok((outcome, true))
}

/// The recorded outcome for `order_id`, if any.
pub async fn recorded_outcome(
    pool: &PgPool,
    order_id: Uuid,
) -> Result<Option<Outcome>, sqlx::Error> {
    let row: Option<(String, i64, Option<Uuid>, Option<String>)> = sqlx::query_as(
        "SELECT status, total_cents, reject_product, reject_message \
         FROM reservations WHERE order_id = $1",
    )
    .bind(order_id)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(
        |(status, total_cents, product_id, message)| match status.as_str() {
            "reserved" => Outcome::Reserved { total_cents },
            "committed" => Outcome::Committed { total_cents },
            "rejected" => Outcome::Rejected {
                product_id,
                message: message.unwrap_or_else(|| "out of stock".into()),
            },
            _ => Outcome::Released,
        },
    ))
}

/// Move the held quantities of `order_id` (locked `reserved` record) with `set`, an SQL
/// assignment list over `line.quantity`, and set the record's `status`; returns the
/// products touched. The product rows are locked in id order first (no deadlocks), then
/// one statement moves every line and updates the record, so the hot rows stay locked for
/// two round trips (that statement and `COMMIT`).
async fn move_stock(
    tx: &mut sqlx::PgConnection,
    order_id: Uuid,
    set: &str,
    status: &str,
) -> Result<Vec<Uuid>, sqlx::Error> {
    let touched: Vec<Uuid> = sqlx::query_scalar(
        "SELECT p.id FROM products p \
         WHERE p.id IN (SELECT product_id FROM reservation_items WHERE order_id = $1) \
         ORDER BY p.id FOR UPDATE",
    )
    .bind(order_id)
    .fetch_all(&mut *tx)
    .await?;
    sqlx::query(&format!(
        "WITH line AS (SELECT product_id, quantity FROM reservation_items WHERE order_id = $1), \
         moved AS ( \
             UPDATE products p SET {set}, updated_at = now() \
             FROM line WHERE p.id = line.product_id) \
         UPDATE reservations SET status = $2, updated_at = now() WHERE order_id = $1"
    ))
    .bind(order_id)
    .bind(status)
    .execute(&mut *tx)
    .await?;
    Ok(touched)
}

/// `POST /internal/reservations/{order_id}/release`.
#[tracing::instrument(skip(state))]
pub async fn release(
    State(state): State<AppState>,
    IdPath(order_id): IdPath,
) -> Result<Json<serde_json::Value>, ReservationError> {
    let mut tx = state.pool.begin().await?;
    let tombstone: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO reservations (order_id, status) VALUES ($1, 'released') \
         ON CONFLICT (order_id) DO NOTHING RETURNING order_id",
    )
    .bind(order_id)
    .fetch_optional(&mut *tx)
    .await?;
    if tombstone.is_some() {
        tx.commit().await?;
        return Ok(Json(json!({"order_id": order_id, "status": "released"})));
    }
    let status: String =
        sqlx::query_scalar("SELECT status FROM reservations WHERE order_id = $1 FOR UPDATE")
            .bind(order_id)
            .fetch_one(&mut *tx)
            .await?;
    match status.as_str() {
        // seeded bug (fidelity suite): only `committed` is treated as final, so a release
        // of an already released reservation moves its items back to available again.
        "released" | "reserved" if cfg!(feature = "bug-release-twice") || status == "reserved" => {
            let touched = move_stock(
                &mut tx,
                order_id,
                "available = p.available + line.quantity, reserved = p.reserved - line.quantity",
                "released",
            )
            .await?;
            tx.commit().await?;
            state.reservations.released.inc();
            state.cache.invalidate(&touched).await;
            Ok(Json(json!({"order_id": order_id, "status": "released"})))
        }
        "committed" => Ok(Json(json!({"order_id": order_id, "status": "committed"}))),
        // released, or rejected (which never held stock).
        _ => Ok(Json(json!({"order_id": order_id, "status": "released"}))),
    }
}

/// `POST /internal/reservations/{order_id}/commit`.
#[tracing::instrument(skip(state))]
pub async fn commit(
    State(state): State<AppState>,
    IdPath(order_id): IdPath,
) -> Result<Json<serde_json::Value>, ReservationError> {
    let mut tx = state.pool.begin().await?;
    let row: Option<(String, Option<Uuid>, Option<String>)> = sqlx::query_as(
        "SELECT status, reject_product, reject_message FROM reservations \
         WHERE order_id = $1 FOR UPDATE",
    )
    .bind(order_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((status, product_id, message)) = row else {
        return Err(ReservationError::NotFound(order_id));
    };
    match status.as_str() {
        "reserved" => {
            let touched = move_stock(
                &mut tx,
                order_id,
                "reserved = p.reserved - line.quantity, sold = p.sold + line.quantity",
                "committed",
            )
            .await?;
            tx.commit().await?;
            state.reservations.committed.inc();
            state.cache.invalidate(&touched).await;
            Ok(Json(json!({"order_id": order_id, "status": "committed"})))
        }
        "committed" => Ok(Json(json!({"order_id": order_id, "status": "committed"}))),
        "rejected" => Err(ReservationError::OutOfStock {
            order_id,
            product_id,
            message: message.unwrap_or_else(|| "out of stock".into()),
        }),
        _ => Err(ReservationError::Released(order_id)),
    }
}
