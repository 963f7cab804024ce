//! HTTP routes of product-service.

pub mod admin;
pub mod products;
pub mod reservations;

use axum::routing::{get, post};
use axum::Router;
use service_kit::ApiError;

use crate::state::AppState;

/// The service's own routes (the kit adds `/health`, `/ready`, `/metrics`, `/openapi.json`,
/// `/admin/faults` and the middleware).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/api/v1/products",
            get(products::list).post(products::create),
        )
        .route(
            "/api/v1/products/{id}",
            get(products::get_one)
                .put(products::update)
                .delete(products::delete),
        )
        .route("/internal/reservations", post(reservations::reserve))
        .route(
            "/internal/reservations/{id}/release",
            post(reservations::release),
        )
        .route(
            "/internal/reservations/{id}/commit",
            post(reservations::commit),
        )
        .route("/admin/seed", post(admin::seed))
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
