//! The order saga as a pure state machine: which step each state runs, and where each
//! step's outcome leads. The engine ([`crate::engine`]) persists every transition before
//! acting on it, so this module is the whole of the saga's logic and is tested on its own.
//!
//! Forward path: `reserving → charging → committing → confirmed`.
//! Compensation (reverse order): `refunding → releasing → cancelled`.
//!
//! - A *rejection* (permanent failure: `409 out_of_stock`, `402 declined`, other 4xx) of a
//!   forward step starts compensation from the last step that may have had an effect.
//! - A *transient* failure (timeout, 5xx, connection refused, breaker open) keeps the state;
//!   the engine retries with backoff.
//! - *Giving up* (a forward step still failing transiently after the saga deadline) is
//!   ambiguous: the step may have taken effect, so compensation includes it. Commit never
//!   gives up: once money is captured, finishing is better than undoing.
//! - Compensations are never rejected or given up: they are retried until they succeed
//!   (participants answer 404 for "nothing to undo", which counts as done).

use std::fmt;
use std::str::FromStr;

/// Where a saga is; stored as text in `sagas.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SagaState {
    /// Reserving stock with product-service.
    Reserving,
    /// Charging the card with payment-service (amount = reservation total).
    Charging,
    /// Committing the reservation (stock becomes sold).
    Committing,
    /// Compensation: refunding the payment.
    Refunding,
    /// Compensation: releasing the reservation.
    Releasing,
    /// Terminal: the order is confirmed.
    Confirmed,
    /// Terminal: the order is cancelled (with a reason kept on the order).
    Cancelled,
}

/// A call the saga makes to a participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SagaStep {
    /// `POST /internal/reservations` (product-service).
    Reserve,
    /// `POST /internal/payments/charge` (payment-service).
    Charge,
    /// `POST /internal/reservations/{id}/commit` (product-service).
    Commit,
    /// `POST /internal/payments/{id}/refund` (payment-service).
    Refund,
    /// `POST /internal/reservations/{id}/release` (product-service).
    Release,
}

/// The outcome of one attempt at a step, as the engine classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepOutcome {
    /// The participant confirmed the step.
    Done,
    /// The participant refused for good (out of stock, declined, invalid).
    Rejected,
    /// No answer or a retryable one; try again later.
    Transient,
    /// Transient, and the saga's deadline for forward progress has passed.
    GaveUp,
}

/// `sagas.state` held a value this version does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown saga state {0:?}")]
pub struct UnknownState(pub String);

impl SagaState {
    /// Every state, for tests and metrics.
    pub const ALL: [SagaState; 7] = [
        SagaState::Reserving,
        SagaState::Charging,
        SagaState::Committing,
        SagaState::Refunding,
        SagaState::Releasing,
        SagaState::Confirmed,
        SagaState::Cancelled,
    ];

    /// The state a new saga starts in.
    pub const INITIAL: SagaState = SagaState::Reserving;

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SagaState::Reserving => "reserving",
            SagaState::Charging => "charging",
            SagaState::Committing => "committing",
            SagaState::Refunding => "refunding",
            SagaState::Releasing => "releasing",
            SagaState::Confirmed => "confirmed",
            SagaState::Cancelled => "cancelled",
        }
    }

    /// True for `confirmed` and `cancelled`.
    pub fn is_terminal(self) -> bool {
        matches!(self, SagaState::Confirmed | SagaState::Cancelled)
    }

    /// True while undoing.
    pub fn is_compensating(self) -> bool {
        matches!(self, SagaState::Refunding | SagaState::Releasing)
    }

    /// The step this state runs; `None` when terminal.
    pub fn step(self) -> Option<SagaStep> {
        match self {
            SagaState::Reserving => Some(SagaStep::Reserve),
            SagaState::Charging => Some(SagaStep::Charge),
            SagaState::Committing => Some(SagaStep::Commit),
            SagaState::Refunding => Some(SagaStep::Refund),
            SagaState::Releasing => Some(SagaStep::Release),
            SagaState::Confirmed | SagaState::Cancelled => None,
        }
    }

    /// Where `outcome` of this state's step leads. Returning `self` means "retry later".
    pub fn next(self, outcome: StepOutcome) -> SagaState {
        use SagaState::*;
        use StepOutcome::*;
        match (self, outcome) {
            (Confirmed | Cancelled, _) => self,
            (_, Transient) => self,

            (Reserving, Done) => Charging,
            // Nothing was reserved: nothing to undo.
            (Reserving, Rejected) => Cancelled,
            // A reservation may exist; release it (idempotent, 404 counts as done).
            (Reserving, GaveUp) => Releasing,

            (Charging, Done) => Committing,
            // Declined: no money moved, only the reservation to undo.
            (Charging, Rejected) => Releasing,
            // A charge may have been captured: refund first.
            (Charging, GaveUp) => Refunding,

            (Committing, Done) => Confirmed,
            (Committing, Rejected) => Refunding,
            // Money is captured; keep committing rather than undo.
            (Committing, GaveUp) => Committing,

            (Refunding, Done) => Releasing,
            (Releasing, Done) => Cancelled,
            // Compensations only move forward on success.
            (Refunding | Releasing, Rejected | GaveUp) => self,
        }
    }
}

impl fmt::Display for SagaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SagaState {
    type Err = UnknownState;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SagaState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

impl SagaStep {
    /// The stored name (in `saga_steps.step`).
    pub fn as_str(self) -> &'static str {
        match self {
            SagaStep::Reserve => "reserve",
            SagaStep::Charge => "charge",
            SagaStep::Commit => "commit",
            SagaStep::Refund => "refund",
            SagaStep::Release => "release",
        }
    }

    /// Compensating steps are retried until they succeed.
    pub fn is_compensation(self) -> bool {
        matches!(self, SagaStep::Refund | SagaStep::Release)
    }
}

impl fmt::Display for SagaStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl StepOutcome {
    /// The stored name (in `saga_steps.outcome`).
    pub fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Done => "done",
            StepOutcome::Rejected => "rejected",
            StepOutcome::Transient => "transient",
            StepOutcome::GaveUp => "gave_up",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the participants have done for one order, as the saga's model of the world.
    #[derive(Debug, Default, Clone, Copy)]
    struct World {
        reserved: bool,
        charged: bool,
        committed: bool,
        refunded: bool,
        released: bool,
    }

    impl World {
        fn applied(&self, step: SagaStep) -> bool {
            match step {
                SagaStep::Reserve => self.reserved,
                SagaStep::Charge => self.charged,
                SagaStep::Commit => self.committed,
                SagaStep::Refund => self.refunded,
                SagaStep::Release => self.released,
            }
        }
        fn apply(&mut self, step: SagaStep) {
            match step {
                // Participants ignore reserve/charge after the order was released/refunded.
                SagaStep::Reserve => self.reserved |= !self.released,
                SagaStep::Charge => self.charged |= !self.refunded,
                SagaStep::Commit => self.committed = true,
                SagaStep::Refund => self.refunded |= self.charged,
                SagaStep::Release => self.released |= self.reserved && !self.committed,
            }
        }
    }

    /// A participant's answer to one attempt: the outcome class, and for ambiguous
    /// failures whether the effect happened anyway.
    #[derive(Debug, Clone, Copy)]
    struct Answer {
        outcome: StepOutcome,
        took_effect: bool,
    }

    fn answer() -> impl Strategy<Value = Answer> {
        (
            prop_oneof![
                4 => Just(StepOutcome::Done),
                1 => Just(StepOutcome::Rejected),
                2 => Just(StepOutcome::Transient),
                1 => Just(StepOutcome::GaveUp),
            ],
            any::<bool>(),
        )
            .prop_map(|(outcome, took_effect)| Answer {
                outcome,
                took_effect,
            })
    }

    /// Run the machine against the model world; after `answers` run out every step
    /// succeeds. Returns the final state, the world and the visited states.
    fn run(answers: &[Answer]) -> (SagaState, World, Vec<SagaState>) {
        let mut world = World::default();
        let mut state = SagaState::INITIAL;
        let mut visited = vec![state];
        let mut answers = answers.iter().copied();
        let mut guard = 0;
        while let Some(step) = state.step() {
            guard += 1;
            assert!(guard < 10_000, "saga did not terminate");
            let a = answers.next().unwrap_or(Answer {
                outcome: StepOutcome::Done,
                took_effect: true,
            });
            // Idempotent participants: a step whose effect already happened answers Done
            // (or fails transiently), never Rejected.
            let mut outcome = a.outcome;
            if world.applied(step) && outcome == StepOutcome::Rejected {
                outcome = StepOutcome::Done;
            }
            // Compensations are never rejected (404 = nothing to undo = done).
            if step.is_compensation() && outcome == StepOutcome::Rejected {
                outcome = StepOutcome::Done;
            }
            match outcome {
                StepOutcome::Done => world.apply(step),
                StepOutcome::Transient | StepOutcome::GaveUp if a.took_effect => world.apply(step),
                _ => {}
            }
            let next = state.next(outcome);
            if next != state {
                visited.push(next);
            }
            state = next;
        }
        (state, world, visited)
    }

    proptest! {
        /// Whatever participants answer, once they behave the saga ends, and the world is
        /// consistent with the ending: confirmed = everything done, nothing undone;
        /// cancelled = every effect undone.
        #[test]
        fn every_sequence_terminates_consistently(answers in proptest::collection::vec(answer(), 0..40)) {
            let (end, world, _) = run(&answers);
            match end {
                SagaState::Confirmed => {
                    prop_assert!(world.reserved && world.charged && world.committed);
                    prop_assert!(!world.refunded && !world.released);
                }
                SagaState::Cancelled => {
                    prop_assert!(!world.committed, "{world:?}");
                    prop_assert!(!world.charged || world.refunded, "charged but not refunded: {world:?}");
                    prop_assert!(!world.reserved || world.released, "reserved but not released: {world:?}");
                }
                other => prop_assert!(false, "ended in non-terminal {other}"),
            }
        }

        /// Once compensation starts the saga never goes forward again.
        #[test]
        fn compensation_never_returns_to_the_forward_path(answers in proptest::collection::vec(answer(), 0..40)) {
            let (_, _, visited) = run(&answers);
            if let Some(first) = visited.iter().position(|s| s.is_compensating()) {
                for s in &visited[first..] {
                    prop_assert!(s.is_compensating() || *s == SagaState::Cancelled, "{visited:?}");
                }
            }
        }

        /// Terminal states absorb every outcome; transient failures never move a saga.
        #[test]
        fn terminal_states_absorb_and_transient_failures_stay(
            state in proptest::sample::select(SagaState::ALL.to_vec()),
            outcome in proptest::sample::select(vec![StepOutcome::Done, StepOutcome::Rejected, StepOutcome::Transient, StepOutcome::GaveUp]),
        ) {
            if state.is_terminal() {
                prop_assert_eq!(state.next(outcome), state);
            }
            prop_assert_eq!(state.next(StepOutcome::Transient), state);
            prop_assert_eq!(state.as_str().parse::<SagaState>(), Ok(state));
        }
    }

    #[test]
    fn the_happy_path_is_reserve_charge_commit() {
        let (end, _, visited) = run(&[]);
        assert_eq!(end, SagaState::Confirmed);
        assert_eq!(
            visited,
            vec![
                SagaState::Reserving,
                SagaState::Charging,
                SagaState::Committing,
                SagaState::Confirmed
            ]
        );
    }

    #[test]
    fn a_decline_releases_the_stock_and_charges_nothing() {
        let done = Answer {
            outcome: StepOutcome::Done,
            took_effect: true,
        };
        let declined = Answer {
            outcome: StepOutcome::Rejected,
            took_effect: false,
        };
        let (end, world, visited) = run(&[done, declined]);
        assert_eq!(end, SagaState::Cancelled);
        assert!(!world.charged && world.released);
        assert!(!visited.contains(&SagaState::Refunding));
    }

    #[test]
    fn out_of_stock_cancels_without_any_other_call() {
        let oos = Answer {
            outcome: StepOutcome::Rejected,
            took_effect: false,
        };
        let (end, _, visited) = run(&[oos]);
        assert_eq!(end, SagaState::Cancelled);
        assert_eq!(visited, vec![SagaState::Reserving, SagaState::Cancelled]);
    }

    #[test]
    fn unknown_states_are_reported_by_name() {
        assert_eq!(
            "paused".parse::<SagaState>(),
            Err(UnknownState("paused".into()))
        );
    }
}
