//! Periodic gauges read from the database: outbox lag and unfinished sagas.

use std::time::Duration;

use service_kit::metrics::Metrics;
use sqlx::{PgPool, Row};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Unpublished outbox rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutboxLag {
    /// Rows not yet confirmed by RabbitMQ.
    pub unpublished: i64,
    /// Age of the oldest of them (0 when none).
    pub oldest_seconds: f64,
}

/// Read the outbox lag.
pub async fn outbox_lag(pool: &PgPool) -> Result<OutboxLag, sqlx::Error> {
    let row = sqlx::query(
        "SELECT count(*) AS n,
                COALESCE(EXTRACT(EPOCH FROM (now() - min(created_at))), 0)::float8 AS oldest
         FROM outbox WHERE published_at IS NULL",
    )
    .fetch_one(pool)
    .await?;
    Ok(OutboxLag {
        unpublished: row.try_get("n")?,
        oldest_seconds: row.try_get("oldest")?,
    })
}

/// Refresh `outbox_unpublished`, `outbox_oldest_unpublished_ms` and `sagas_unfinished`
/// every `every` until `cancel`.
pub fn spawn(
    pool: PgPool,
    metrics: &Metrics,
    every: Duration,
    tracker: &TaskTracker,
    cancel: CancellationToken,
) {
    let unpublished = metrics.gauge(
        "outbox_unpublished",
        "Outbox events not yet confirmed by RabbitMQ (outbox lag).",
        &[],
    );
    let oldest = metrics.gauge(
        "outbox_oldest_unpublished_ms",
        "Age of the oldest unpublished outbox event, in milliseconds.",
        &[],
    );
    let unfinished = metrics.gauge(
        "sagas_unfinished",
        "Sagas not yet confirmed or cancelled.",
        &[],
    );
    tracker.spawn(async move {
        loop {
            if let Ok(lag) = outbox_lag(&pool).await {
                unpublished.set(lag.unpublished);
                oldest.set((lag.oldest_seconds * 1000.0) as i64);
            }
            if let Ok(n) = sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM sagas WHERE state NOT IN ('confirmed', 'cancelled')",
            )
            .fetch_one(&pool)
            .await
            {
                unfinished.set(n);
            }
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(every) => {}
            }
        }
    });
}
