//! HTTP routes of payment-service.

pub mod payments;

use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

/// The service's own routes (the kit adds `/health`, `/ready`, `/metrics`, `/openapi.json`,
/// `/admin/faults`, the middleware, and JSON 404 and 405 answers).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/internal/payments/charge", post(payments::charge))
        .route("/internal/payments/{id}/refund", post(payments::refund))
        .route("/internal/ledger/totals", get(payments::totals))
        .route("/api/v1/payments/{id}", get(payments::get_one))
        .with_state(state)
}
