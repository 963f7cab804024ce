//! HTTP routes of user-service.

pub mod admin;
pub mod users;

use axum::routing::{get, post};
use axum::Router;

use crate::state::AppState;

/// The service's own routes (the kit adds `/health`, `/ready`, `/metrics`, `/openapi.json`,
/// `/admin/faults`, the middleware, and JSON 404 and 405 answers).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/users/register", post(users::register))
        .route("/api/v1/users/login", post(users::login))
        .route("/api/v1/users/logout", post(users::logout))
        .route("/api/v1/users/me", get(users::me).patch(users::update_me))
        .route("/internal/tokens/{id}/revoked", get(users::token_revoked))
        .route("/internal/users/{id}", get(users::internal_user))
        .route("/admin/seed", post(admin::seed))
        .with_state(state)
}
