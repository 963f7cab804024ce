//! HTTP routes of product-service.

pub mod admin;
pub mod products;
pub mod reservations;

use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

/// The service's own routes (the kit adds `/health`, `/ready`, `/metrics`, `/openapi.json`,
/// `/admin/faults`, the middleware, and JSON 404 and 405 answers).
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
        .with_state(state)
}
