//! Shared state of the handlers.

use std::time::Duration;

use service_kit::jwt::JwtKeys;
use service_kit::metrics::{Counter, Metrics};
use sqlx::PgPool;

use crate::password::PasswordHashing;
use crate::revocation::Revocations;

/// Counters exposed on `/metrics`.
#[derive(Debug, Clone)]
pub struct UserMetrics {
    /// Accounts created.
    pub registered: Counter,
    /// Successful logins.
    pub logins_ok: Counter,
    /// Refused logins.
    pub logins_failed: Counter,
    /// Tokens revoked by logout.
    pub logouts: Counter,
}

impl UserMetrics {
    fn new(m: &Metrics) -> Self {
        let login = |result| {
            m.counter(
                "user_logins_total",
                "Login attempts by result.",
                &[("result", result)],
            )
        };
        Self {
            registered: m.counter("user_registrations_total", "Accounts created.", &[]),
            logins_ok: login("ok"),
            logins_failed: login("failed"),
            logouts: m.counter("user_logouts_total", "Tokens revoked by logout.", &[]),
        }
    }
}

/// State shared by every handler; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The service's database.
    pub pool: PgPool,
    /// Token signing (the kit's JWT keys).
    pub jwt: JwtKeys,
    /// Lifetime of issued tokens.
    pub token_ttl: Duration,
    /// Password hashing.
    pub passwords: PasswordHashing,
    /// Revoked token ids in Redis.
    pub revocations: Revocations,
    /// Counters.
    pub metrics: UserMetrics,
}

impl AppState {
    /// Assemble the state.
    pub fn new(
        pool: PgPool,
        jwt: JwtKeys,
        token_ttl: Duration,
        passwords: PasswordHashing,
        revocations: Revocations,
        m: &Metrics,
    ) -> Self {
        Self {
            pool,
            jwt,
            token_ttl,
            passwords,
            revocations,
            metrics: UserMetrics::new(m),
        }
    }
}
