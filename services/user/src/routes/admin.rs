//! `POST /admin/seed`: load seed users (the kit checks the admin token on `/admin/**`).

use axum::extract::State;
use axum::Json;
use service_kit::error::ApiJson;
use service_kit::ApiError;

use crate::seed::{seed as run_seed, SeedFile, SeedReport};
use crate::state::AppState;

/// Body: the content of `fixtures/seed/users.json`.
#[tracing::instrument(skip(state, file))]
pub async fn seed(
    State(state): State<AppState>,
    ApiJson(file): ApiJson<SeedFile>,
) -> Result<Json<SeedReport>, ApiError> {
    Ok(Json(run_seed(&state.pool, &state.passwords, file).await?))
}
