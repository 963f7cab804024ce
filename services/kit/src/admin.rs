//! Admin-token protection for `/admin/**`.
//!
//! The token comes in `Authorization: Bearer <token>` or `X-Admin-Token: <token>`. Without
//! `ADMIN_TOKEN` configured the admin API is disabled (403) rather than open.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::jwt::bearer_token;

/// The configured admin token, if any.
#[derive(Clone, Default)]
pub struct AdminToken(pub Option<Arc<str>>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Compare in time independent of where the first difference is.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl AdminToken {
    /// Check the request headers; `Err` is the response to send.
    pub fn check(&self, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
        let Some(expected) = &self.0 else {
            return Err(ApiError::forbidden(
                "the admin API is disabled; set ADMIN_TOKEN to enable it",
            ));
        };
        let supplied = headers
            .get("x-admin-token")
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .or_else(|| {
                headers
                    .get(axum::http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(bearer_token)
            });
        match supplied {
            None => Err(ApiError::unauthorized(
                "admin token required: send Authorization: Bearer <token> or X-Admin-Token",
            )),
            Some(t) if constant_time_eq(t.as_bytes(), expected.as_bytes()) => Ok(()),
            Some(_) => Err(ApiError::forbidden("wrong admin token")),
        }
    }
}

/// Middleware for routers mounted under `/admin`.
pub async fn require_admin(State(token): State<AdminToken>, req: Request, next: Next) -> Response {
    match token.check(req.headers()) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}
