//! Shared state of the handlers.

use std::sync::Arc;

use service_kit::admin::AdminToken;
use service_kit::metrics::{Counter, Metrics};
use service_kit::ApiError;
use sqlx::PgPool;
use uuid::Uuid;

use crate::cache::ProductCache;

/// Counters of the reservation API, exposed on `/metrics`.
#[derive(Debug, Clone)]
pub struct ReservationMetrics {
    /// New reservations that took stock.
    pub reserved: Counter,
    /// New reservations refused for lack of stock.
    pub out_of_stock: Counter,
    /// Repeated requests answered from the idempotency record.
    pub replayed: Counter,
    /// Reservations released (stock returned).
    pub released: Counter,
    /// Reservations committed (stock sold).
    pub committed: Counter,
}

impl ReservationMetrics {
    fn new(m: &Metrics) -> Self {
        let r = |result| {
            m.counter(
                "product_reservations_total",
                "Reservation requests by result.",
                &[("result", result)],
            )
        };
        Self {
            reserved: r("reserved"),
            out_of_stock: r("out_of_stock"),
            replayed: r("replayed"),
            released: m.counter(
                "product_reservation_releases_total",
                "Reservations released (stock returned to available).",
                &[],
            ),
            committed: m.counter(
                "product_reservation_commits_total",
                "Reservations committed (stock sold).",
                &[],
            ),
        }
    }
}

/// Who may change the catalog: the admin token (`X-Admin-Token`, for direct calls and
/// seeding) or a user id listed in `PRODUCT_ADMIN_USERS` (`X-User-Id`, set by the gateway
/// from the JWT).
#[derive(Debug, Clone)]
pub struct CatalogAdmins {
    token: AdminToken,
    users: Arc<[Uuid]>,
}

impl CatalogAdmins {
    /// Admins from the configured token and user list.
    pub fn new(token: Option<&str>, users: &[Uuid]) -> Self {
        Self {
            token: AdminToken(token.map(Arc::from)),
            users: users.into(),
        }
    }

    /// Allow the request, or say why not: 401 without any identity, 403 otherwise.
    pub fn check(&self, headers: &axum::http::HeaderMap) -> Result<(), ApiError> {
        let user = headers.get("x-user-id").and_then(|v| v.to_str().ok());
        if let Some(u) = user.and_then(|u| Uuid::parse_str(u.trim()).ok()) {
            if self.users.contains(&u) {
                return Ok(());
            }
        }
        if headers.contains_key("x-admin-token") {
            return self.token.check(headers);
        }
        match user {
            Some(_) => Err(ApiError::forbidden(
                "only catalog administrators may change products",
            )),
            None => Err(ApiError::unauthorized(
                "changing products needs an administrator: X-User-Id of an admin or X-Admin-Token",
            )),
        }
    }
}

/// State shared by every handler; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The service's database.
    pub pool: PgPool,
    /// Read-through product cache.
    pub cache: ProductCache,
    /// Who may write the catalog.
    pub admins: CatalogAdmins,
    /// Reservation counters.
    pub reservations: ReservationMetrics,
}

impl AppState {
    /// State over `pool` and `cache`.
    pub fn new(pool: PgPool, cache: ProductCache, admins: CatalogAdmins, m: &Metrics) -> Self {
        Self {
            pool,
            cache,
            admins,
            reservations: ReservationMetrics::new(m),
        }
    }
}
