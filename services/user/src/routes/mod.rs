//! HTTP routes of user-service.

pub mod admin;
pub mod users;

use axum::routing::{get, post};
use axum::Router;
use service_kit::ApiError;

use crate::state::AppState;

/// The service's own routes (the kit adds `/health`, `/ready`, `/metrics`, `/openapi.json`,
/// `/admin/faults` and the middleware).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/users/register", post(users::register))
        .route("/api/v1/users/login", post(users::login))
        .route("/api/v1/users/logout", post(users::logout))
        .route("/api/v1/users/me", get(users::me).patch(users::update_me))
        .route("/internal/tokens/{id}/revoked", get(users::token_revoked))
        .route("/internal/users/{id}", get(users::internal_user))
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
