//! Shared state of the handlers.

use service_kit::metrics::{Counter, Metrics};
use sqlx::PgPool;

/// Counters exposed on `/metrics`.
#[derive(Debug, Clone)]
pub struct PaymentMetrics {
    /// New captures.
    pub captured: Counter,
    /// New declines.
    pub declined: Counter,
    /// Charges answered from the idempotency record.
    pub replayed: Counter,
    /// Refunds made.
    pub refunded: Counter,
    /// Money captured (cents).
    pub captured_cents: Counter,
    /// Money refunded (cents).
    pub refunded_cents: Counter,
}

impl PaymentMetrics {
    fn new(m: &Metrics) -> Self {
        let c = |result| {
            m.counter(
                "payment_charges_total",
                "Charge requests by result.",
                &[("result", result)],
            )
        };
        Self {
            captured: c("captured"),
            declined: c("declined"),
            replayed: c("replayed"),
            refunded: m.counter("payment_refunds_total", "Refunds made.", &[]),
            captured_cents: m.counter(
                "payment_captured_cents_total",
                "Money captured, in cents.",
                &[],
            ),
            refunded_cents: m.counter(
                "payment_refunded_cents_total",
                "Money refunded, in cents.",
                &[],
            ),
        }
    }
}

/// State shared by every handler; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The service's database.
    pub pool: PgPool,
    /// Counters.
    pub metrics: PaymentMetrics,
}

impl AppState {
    /// State over `pool`.
    pub fn new(pool: PgPool, m: &Metrics) -> Self {
        Self {
            pool,
            metrics: PaymentMetrics::new(m),
        }
    }
}
