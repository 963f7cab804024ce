//! The durable saga engine: claims due sagas from Postgres, runs their steps against the
//! participants, and records every outcome before acting on it.
//!
//! Durability: a saga's state lives in `sagas`; each transition is a compare-and-set on
//! `(state, lease_owner)` in the same transaction as its journal row (`saga_steps`), the
//! order's status and, when the saga ends, its outbox event. A crash at any point leaves
//! either the old state (the step is re-run: participants are idempotent on the order id)
//! or the new one.
//!
//! Ownership: a worker claims due sagas with a lease (`FOR UPDATE SKIP LOCKED`), so several
//! instances share the work. A crashed instance's leases lapse after `SAGA_LEASE` and other
//! (or restarted) instances resume those sagas. On a graceful shutdown the leases of sagas
//! waiting between steps are given back at once.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use service_kit::metrics::{Counter, Metrics};
use sqlx::{PgPool, Row};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use crate::config::SagaSettings;
use crate::domain::OrderItem;
use crate::participants::{CallOutcome, Participants, StepInput};
use crate::saga::{SagaState, SagaStep, StepOutcome};
use crate::store::{self, EventType, Order, ORDER_COLUMNS};

/// A point in a saga's execution where a test may simulate a crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Boundary {
    /// The participant answered `Done` but nothing is recorded yet.
    AfterCall(SagaStep),
    /// The transition into this state is committed; the next step has not started.
    AfterRecord(SagaState),
}

/// Called at every [`Boundary`]; returning `true` makes the engine stop that saga on the
/// spot without writing anything more, as if the process had been killed there.
pub type CrashHook = Arc<dyn Fn(Uuid, Boundary) -> bool + Send + Sync>;

/// Engine failure (database); the saga is retried after its lease lapses.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Database failure.
    #[error("saga store: {0}")]
    Sql(#[from] sqlx::Error),
    /// A stored value is invalid.
    #[error("saga {order_id} is corrupt: {reason}")]
    Corrupt {
        /// Order.
        order_id: Uuid,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Clone)]
struct SagaMetrics {
    confirmed: Counter,
    cancelled: Counter,
    metrics: Metrics,
}

impl SagaMetrics {
    fn new(metrics: &Metrics) -> Self {
        let outcome = |o: &str| {
            metrics.counter(
                "saga_outcomes_total",
                "Sagas finished, by outcome.",
                &[("outcome", o)],
            )
        };
        Self {
            confirmed: outcome("confirmed"),
            cancelled: outcome("cancelled"),
            metrics: metrics.clone(),
        }
    }

    fn step(&self, step: SagaStep, outcome: StepOutcome) {
        self.metrics
            .counter(
                "saga_steps_total",
                "Saga step attempts, by step and outcome.",
                &[("step", step.as_str()), ("outcome", outcome.as_str())],
            )
            .inc();
    }
}

struct Inner {
    pool: PgPool,
    participants: Participants,
    settings: SagaSettings,
    owner: String,
    wake: Notify,
    relay: Arc<Notify>,
    hook: Option<CrashHook>,
    running: Mutex<HashSet<Uuid>>,
    metrics: SagaMetrics,
}

/// The saga engine; cheap to clone.
#[derive(Clone)]
pub struct SagaEngine(Arc<Inner>);

impl std::fmt::Debug for SagaEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SagaEngine")
            .field("owner", &self.0.owner)
            .finish_non_exhaustive()
    }
}

/// A saga as loaded for execution.
struct Loaded {
    state: SagaState,
    card: Option<String>,
    attempts: i32,
    age: Duration,
    items: Vec<OrderItem>,
    total_cents: Option<i64>,
}

enum Recorded {
    Moved,
    /// Another instance owns the saga now (our lease lapsed).
    Lost,
}

impl SagaEngine {
    /// An engine owned by instance `owner`; `relay` is woken when events are written.
    pub fn new(
        pool: PgPool,
        participants: Participants,
        settings: SagaSettings,
        owner: String,
        relay: Arc<Notify>,
        hook: Option<CrashHook>,
        metrics: &Metrics,
    ) -> Self {
        Self(Arc::new(Inner {
            pool,
            participants,
            settings,
            owner,
            wake: Notify::new(),
            relay,
            hook,
            running: Mutex::new(HashSet::new()),
            metrics: SagaMetrics::new(metrics),
        }))
    }

    /// Wake the worker (a new saga was created).
    pub fn wake(&self) {
        self.0.wake.notify_one();
    }

    /// Run the worker on `tracker` until `cancel`.
    pub fn spawn(&self, tracker: &TaskTracker, cancel: CancellationToken) {
        let engine = self.clone();
        let tasks = tracker.clone();
        tracker.spawn(async move { engine.work(tasks, cancel).await });
    }

    async fn work(self, tracker: TaskTracker, cancel: CancellationToken) {
        let slots = Arc::new(Semaphore::new(self.0.settings.concurrency));
        let mut failures: u32 = 0;
        loop {
            if cancel.is_cancelled() {
                break;
            }
            let free = slots.available_permits();
            let mut claimed_all = false;
            if free > 0 {
                match self.claim(free).await {
                    Ok(ids) => {
                        failures = 0;
                        claimed_all = ids.len() == free;
                        for id in ids {
                            let Ok(permit) = slots.clone().try_acquire_owned() else {
                                break;
                            };
                            if !self.lock_running(|r| r.insert(id)) {
                                // Still running here after our own lease lapsed.
                                continue;
                            }
                            let engine = self.clone();
                            let cancel = cancel.clone();
                            tracker.spawn(async move {
                                if let Err(e) = engine.execute(id, &cancel).await {
                                    tracing::warn!(order_id = %id, error = %e, "saga execution failed; it is retried when its lease lapses");
                                }
                                engine.lock_running(|r| r.remove(&id));
                                drop(permit);
                                engine.0.wake.notify_one();
                            });
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %e, "cannot claim sagas");
                    }
                }
            }
            if claimed_all && failures == 0 {
                continue;
            }
            let pause = if failures > 0 {
                Duration::from_millis(200u64 << failures.min(5))
            } else {
                self.0.settings.poll_interval
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                () = self.0.wake.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    fn lock_running<T>(&self, f: impl FnOnce(&mut HashSet<Uuid>) -> T) -> T {
        let mut r = self.0.running.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut r)
    }

    fn lease_secs(&self) -> f64 {
        self.0.settings.lease.as_secs_f64()
    }

    /// Lease up to `limit` due, unleased sagas to this instance.
    async fn claim(&self, limit: usize) -> Result<Vec<Uuid>, sqlx::Error> {
        sqlx::query_scalar(
            "UPDATE sagas SET lease_owner = $1, lease_until = now() + make_interval(secs => $2)
             WHERE order_id IN (
                 SELECT order_id FROM sagas
                 WHERE state NOT IN ('confirmed', 'cancelled')
                   AND next_attempt_at <= now()
                   AND (lease_until IS NULL OR lease_until < now())
                 ORDER BY next_attempt_at
                 LIMIT $3
                 FOR UPDATE SKIP LOCKED)
             RETURNING order_id",
        )
        .bind(&self.0.owner)
        .bind(self.lease_secs())
        .bind(limit as i64)
        .fetch_all(&self.0.pool)
        .await
    }

    async fn load(&self, id: Uuid) -> Result<Loaded, EngineError> {
        let row = sqlx::query(
            "SELECT s.state, s.card, s.attempts,
                    EXTRACT(EPOCH FROM (now() - s.created_at))::float8 AS age,
                    o.items, o.total_cents
             FROM sagas s JOIN orders o ON o.id = s.order_id
             WHERE s.order_id = $1",
        )
        .bind(id)
        .fetch_one(&self.0.pool)
        .await?;
        let corrupt = |reason: String| EngineError::Corrupt {
            order_id: id,
            reason,
        };
        let state: String = row.try_get("state")?;
        let items: serde_json::Value = row.try_get("items")?;
        let age: f64 = row.try_get("age")?;
        Ok(Loaded {
            state: state.parse().map_err(|e| corrupt(format!("{e}")))?,
            card: row.try_get("card")?,
            attempts: row.try_get("attempts")?,
            age: Duration::from_secs_f64(age.max(0.0)),
            items: serde_json::from_value(items).map_err(|e| corrupt(e.to_string()))?,
            total_cents: row.try_get("total_cents")?,
        })
    }

    fn crash_at(&self, id: Uuid, boundary: Boundary) -> bool {
        let crash = self.0.hook.as_ref().is_some_and(|h| h(id, boundary));
        if crash {
            tracing::warn!(order_id = %id, ?boundary, "simulated crash");
        }
        crash
    }

    /// Run saga `id` (leased to us) until it ends, fails transiently, or shutdown.
    #[tracing::instrument(skip(self, cancel))]
    async fn execute(&self, id: Uuid, cancel: &CancellationToken) -> Result<(), EngineError> {
        let mut saga = self.load(id).await?;
        while let Some(step) = saga.state.step() {
            if cancel.is_cancelled() {
                self.give_back(id).await?;
                return Ok(());
            }
            let input = StepInput {
                order_id: id,
                items: &saga.items,
                total_cents: saga.total_cents,
                card: saga.card.as_deref(),
            };
            let answer = if cfg!(feature = "skip-compensation") && step.is_compensation() {
                // A deliberately broken build for msctl's own CI test (`msctl test` must
                // catch it): compensation is recorded as done without refunding or
                // releasing anything. The shipped image never enables the feature.
                CallOutcome::Done { total_cents: None }
            } else {
                self.0.participants.call(step, &input).await
            };
            let (outcome, detail, total) = match answer {
                CallOutcome::Done { total_cents } => (StepOutcome::Done, None, total_cents),
                CallOutcome::Rejected(reason) => (StepOutcome::Rejected, Some(reason), None),
                CallOutcome::Transient(why) => {
                    let forward = matches!(step, SagaStep::Reserve | SagaStep::Charge);
                    if forward && saga.age > self.0.settings.deadline {
                        (
                            StepOutcome::GaveUp,
                            Some(format!("{step}_timed_out: {why}")),
                            None,
                        )
                    } else {
                        (StepOutcome::Transient, Some(why), None)
                    }
                }
            };
            self.0.metrics.step(step, outcome);
            if outcome == StepOutcome::Done && self.crash_at(id, Boundary::AfterCall(step)) {
                return Ok(());
            }
            let next = saga.state.next(outcome);
            if next == saga.state {
                self.retry_later(id, step, outcome, detail.as_deref(), saga.attempts)
                    .await?;
                return Ok(());
            }
            // The reason an order is cancelled: the first rejection or give-up.
            let reason = match outcome {
                StepOutcome::Rejected | StepOutcome::GaveUp => detail.clone(),
                _ => None,
            };
            match self
                .record(id, saga.state, next, step, outcome, detail, total, reason)
                .await?
            {
                Recorded::Lost => {
                    tracing::info!(order_id = %id, "saga taken over by another instance");
                    return Ok(());
                }
                Recorded::Moved => {}
            }
            if total.is_some() {
                saga.total_cents = total;
            }
            saga.state = next;
            saga.attempts = 0;
            if self.crash_at(id, Boundary::AfterRecord(next)) {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Commit a transition; see the module docs.
    #[allow(clippy::too_many_arguments)]
    async fn record(
        &self,
        id: Uuid,
        from: SagaState,
        to: SagaState,
        step: SagaStep,
        outcome: StepOutcome,
        detail: Option<String>,
        total: Option<i64>,
        reason: Option<String>,
    ) -> Result<Recorded, EngineError> {
        let mut tx = self.0.pool.begin().await?;
        let moved = sqlx::query(
            "UPDATE sagas SET state = $3, attempts = 0, next_attempt_at = now(), last_error = NULL,
                    lease_until = now() + make_interval(secs => $5), updated_at = now(),
                    card = CASE WHEN $6 THEN NULL ELSE card END
             WHERE order_id = $1 AND state = $2 AND lease_owner = $4",
        )
        .bind(id)
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(&self.0.owner)
        .bind(self.lease_secs())
        .bind(to.is_terminal())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if moved == 0 {
            tx.rollback().await?;
            return Ok(Recorded::Lost);
        }
        sqlx::query(
            "INSERT INTO saga_steps (order_id, step, outcome, from_state, to_state, detail)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(step.as_str())
        .bind(outcome.as_str())
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(detail)
        .execute(&mut *tx)
        .await?;
        let status = match to {
            SagaState::Confirmed => "confirmed",
            SagaState::Cancelled => "cancelled",
            _ => "pending",
        };
        let row = sqlx::query(&format!(
            "UPDATE orders SET status = $2,
                    total_cents = COALESCE($3, total_cents),
                    reason = COALESCE(reason, $4),
                    updated_at = now()
             WHERE id = $1 RETURNING {ORDER_COLUMNS}"
        ))
        .bind(id)
        .bind(status)
        .bind(total)
        .bind(reason)
        .fetch_one(&mut *tx)
        .await?;
        let event = match to {
            SagaState::Confirmed => Some(EventType::Confirmed),
            SagaState::Cancelled => Some(EventType::Cancelled),
            _ => None,
        };
        if let Some(kind) = event {
            let order = Order::from_row(&row)?;
            store::insert_event(&mut tx, kind, &order).await?;
        }
        tx.commit().await?;
        match to {
            SagaState::Confirmed => self.0.metrics.confirmed.inc(),
            SagaState::Cancelled => self.0.metrics.cancelled.inc(),
            _ => {}
        }
        if event.is_some() {
            self.0.relay.notify_one();
        }
        Ok(Recorded::Moved)
    }

    /// Journal a failed attempt, schedule the next one with backoff, give back the lease.
    async fn retry_later(
        &self,
        id: Uuid,
        step: SagaStep,
        outcome: StepOutcome,
        detail: Option<&str>,
        attempts: i32,
    ) -> Result<(), EngineError> {
        let delay = retry_delay(
            self.0.settings.retry_base,
            self.0.settings.retry_max,
            attempts.max(0) as u32,
            &mut rand::thread_rng(),
        );
        tracing::info!(order_id = %id, %step, ?delay, error = detail.unwrap_or(""), "saga step failed; retrying later");
        let state: Option<String> = sqlx::query_scalar(
            "UPDATE sagas SET attempts = attempts + 1,
                    next_attempt_at = now() + make_interval(secs => $3),
                    last_error = $4, lease_owner = NULL, lease_until = NULL, updated_at = now()
             WHERE order_id = $1 AND lease_owner = $2 RETURNING state",
        )
        .bind(id)
        .bind(&self.0.owner)
        .bind(delay.as_secs_f64())
        .bind(detail)
        .fetch_optional(&self.0.pool)
        .await?;
        if let Some(state) = state {
            sqlx::query(
                "INSERT INTO saga_steps (order_id, step, outcome, from_state, to_state, detail)
                 VALUES ($1, $2, $3, $4, $4, $5)",
            )
            .bind(id)
            .bind(step.as_str())
            .bind(outcome.as_str())
            .bind(state)
            .bind(detail)
            .execute(&self.0.pool)
            .await?;
        }
        Ok(())
    }

    /// Release our lease so another instance can continue at once (graceful shutdown).
    async fn give_back(&self, id: Uuid) -> Result<(), EngineError> {
        sqlx::query(
            "UPDATE sagas SET lease_owner = NULL, lease_until = NULL
             WHERE order_id = $1 AND lease_owner = $2",
        )
        .bind(id)
        .bind(&self.0.owner)
        .execute(&self.0.pool)
        .await?;
        Ok(())
    }
}

/// Pause before retry `attempt` (0-based): `min(max, base × 2ⁿ)` with equal jitter.
pub fn retry_delay<R: Rng + ?Sized>(
    base: Duration,
    max: Duration,
    attempt: u32,
    rng: &mut R,
) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
    let cap = base.saturating_mul(factor).min(max);
    let half = cap / 2;
    half + Duration::from_nanos(rng.gen_range(0..=(cap - half).as_nanos() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn retry_delays_stay_within_half_cap_and_cap(attempt in 0u32..100, seed in any::<u64>()) {
            use rand::SeedableRng;
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let (base, max) = (Duration::from_millis(100), Duration::from_secs(5));
            let d = retry_delay(base, max, attempt, &mut rng);
            let cap = base.saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX)).min(max);
            prop_assert!(d <= cap && d >= cap / 2, "{d:?} vs {cap:?}");
        }
    }
}
