//! HTTP routes of payment-service.

pub mod payments;

use axum::routing::{get, post};
use axum::Router;
use service_kit::ApiError;

use crate::state::AppState;

/// The service's own routes (the kit adds `/health`, `/ready`, `/metrics`, `/openapi.json`,
/// `/admin/faults` and the middleware).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/internal/payments/charge", post(payments::charge))
        .route("/internal/payments/{id}/refund", post(payments::refund))
        .route("/internal/ledger/totals", get(payments::totals))
        .route("/api/v1/payments/{id}", get(payments::get_one))
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this method is not allowed on this path; see /openapi.json",
    )
}
