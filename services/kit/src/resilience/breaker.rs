//! Per-instance circuit breaker: closed → open after consecutive failures, open → half-open
//! after a cool-down, half-open → closed after enough successful trial requests (or back to
//! open on any trial failure).
//!
//! Outcomes are reported with the [`Permit`] that admitted the request, so a slow request
//! admitted under an earlier state cannot move the breaker after it has changed state.

use std::time::Duration;

use tokio::time::Instant;

/// Tuning of a [`CircuitBreaker`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failures that open a closed breaker.
    pub failure_threshold: u32,
    /// How long an open breaker refuses traffic before trying again.
    pub open_for: Duration,
    /// Trial requests allowed in flight at once while half-open.
    pub half_open_probes: u32,
    /// Successful trials that close a half-open breaker.
    pub success_threshold: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            open_for: Duration::from_secs(10),
            half_open_probes: 1,
            success_threshold: 1,
        }
    }
}

/// The externally visible state of a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Traffic flows.
    Closed,
    /// Traffic is refused until the cool-down ends.
    Open,
    /// A few trial requests decide whether to close or re-open.
    HalfOpen,
}

impl BreakerState {
    /// Lowercase name used in JSON and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// Proof that a request was admitted; hand it back with the outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "report the outcome with on_success/on_failure"]
pub struct Permit {
    generation: u64,
}

/// The breaker refused the request; `retry_after` says when it will admit a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker is open; retry after {retry_after:?}")]
pub struct BreakerOpen {
    /// Time until the breaker admits a trial request (zero when half-open probes are busy).
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy)]
enum Inner {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { in_flight: u32, successes: u32 },
}

/// A circuit breaker state machine. Not synchronised: wrap it in a mutex to share it.
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    inner: Inner,
    /// Bumped on every state change; permits from older generations are ignored.
    generation: u64,
    trips: u64,
}

impl CircuitBreaker {
    /// A closed breaker. Zero thresholds are raised to one so the machine stays well defined.
    pub fn new(mut config: BreakerConfig) -> Self {
        config.failure_threshold = config.failure_threshold.max(1);
        config.half_open_probes = config.half_open_probes.max(1);
        config.success_threshold = config.success_threshold.max(1);
        Self {
            config,
            inner: Inner::Closed { failures: 0 },
            generation: 0,
            trips: 0,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> BreakerConfig {
        self.config
    }

    /// State as seen at `now`; an open breaker whose cool-down ended reports half-open.
    pub fn state(&self, now: Instant) -> BreakerState {
        match self.inner {
            Inner::Closed { .. } => BreakerState::Closed,
            Inner::Open { until } if now >= until => BreakerState::HalfOpen,
            Inner::Open { .. } => BreakerState::Open,
            Inner::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// How many times this breaker has opened.
    pub fn trips(&self) -> u64 {
        self.trips
    }

    /// When an open breaker will admit a trial, if it is open at `now`.
    pub fn open_until(&self, now: Instant) -> Option<Instant> {
        match self.inner {
            Inner::Open { until } if until > now => Some(until),
            _ => None,
        }
    }

    /// Whether a request would be admitted at `now`, without taking a permit.
    pub fn would_admit(&self, now: Instant) -> bool {
        match self.inner {
            Inner::Closed { .. } => true,
            Inner::Open { until } => now >= until,
            Inner::HalfOpen { in_flight, .. } => in_flight < self.config.half_open_probes,
        }
    }

    /// Admit a request or refuse it.
    pub fn try_acquire(&mut self, now: Instant) -> Result<Permit, BreakerOpen> {
        match self.inner {
            Inner::Closed { .. } => {}
            Inner::Open { until } if now < until => {
                return Err(BreakerOpen {
                    retry_after: until - now,
                });
            }
            Inner::Open { .. } if cfg!(feature = "bug-breaker-stuck-half-open") => {
                // seeded bug (fidelity suite): the trial's permit is taken before the
                // transition, so it carries the open generation: its outcome and release
                // are ignored as stale, in_flight stays at 1 and half-open refuses
                // everything from then on.
                let permit = Permit {
                    generation: self.generation,
                };
                self.transition(Inner::HalfOpen {
                    in_flight: 1,
                    successes: 0,
                });
                return Ok(permit);
            }
            Inner::Open { .. } => self.transition(Inner::HalfOpen {
                in_flight: 1,
                successes: 0,
            }),
            Inner::HalfOpen {
                in_flight,
                successes,
            } => {
                if in_flight >= self.config.half_open_probes {
                    return Err(BreakerOpen {
                        retry_after: Duration::ZERO,
                    });
                }
                self.inner = Inner::HalfOpen {
                    in_flight: in_flight + 1,
                    successes,
                };
            }
        }
        Ok(Permit {
            generation: self.generation,
        })
    }

    /// Report that the request admitted by `permit` succeeded.
    pub fn on_success(&mut self, permit: Permit, _now: Instant) {
        if permit.generation != self.generation {
            return;
        }
        match &mut self.inner {
            Inner::Closed { failures } => *failures = 0,
            Inner::HalfOpen {
                in_flight,
                successes,
            } => {
                *in_flight = in_flight.saturating_sub(1);
                *successes += 1;
                if *successes >= self.config.success_threshold {
                    self.transition(Inner::Closed { failures: 0 });
                }
            }
            Inner::Open { .. } => {}
        }
    }

    /// Report that the request admitted by `permit` failed.
    pub fn on_failure(&mut self, permit: Permit, now: Instant) {
        if permit.generation != self.generation {
            return;
        }
        match &mut self.inner {
            Inner::Closed { failures } => {
                *failures += 1;
                if *failures >= self.config.failure_threshold {
                    self.trip(now);
                }
            }
            Inner::HalfOpen { .. } => self.trip(now),
            Inner::Open { .. } => {}
        }
    }

    /// Give back a permit whose request never produced an outcome (e.g. it was cancelled).
    pub fn release(&mut self, permit: Permit) {
        if permit.generation != self.generation {
            return;
        }
        if let Inner::HalfOpen { in_flight, .. } = &mut self.inner {
            *in_flight = in_flight.saturating_sub(1);
        }
    }

    fn trip(&mut self, now: Instant) {
        self.trips += 1;
        self.transition(Inner::Open {
            until: now + self.config.open_for,
        });
    }

    fn transition(&mut self, to: Inner) {
        self.inner = to;
        self.generation += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Acquire,
        Succeed,
        Fail,
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => Just(Op::Acquire),
            2 => Just(Op::Succeed),
            2 => Just(Op::Fail),
            1 => (0u64..3_000).prop_map(Op::Advance),
        ]
    }

    fn config() -> impl Strategy<Value = BreakerConfig> {
        (1u32..6, 1u64..2_000, 1u32..4, 1u32..4).prop_map(|(f, open, probes, succ)| BreakerConfig {
            failure_threshold: f,
            open_for: Duration::from_millis(open),
            half_open_probes: probes,
            success_threshold: succ,
        })
    }

    proptest! {
        /// Only the documented transitions happen, open refuses everything until its
        /// cool-down, half-open never has more trials in flight than allowed, and a closed
        /// breaker opens exactly when the consecutive-failure threshold is reached.
        #[test]
        fn breaker_follows_its_state_machine(cfg in config(), ops in proptest::collection::vec(op(), 1..200)) {
            let start = Instant::now();
            let mut now = start;
            let mut b = CircuitBreaker::new(cfg);
            let mut permits: Vec<Permit> = Vec::new();
            let mut consecutive_closed_failures = 0u32;
            for op in ops {
                let before = b.state(now);
                let trips_before = b.trips();
                match op {
                    Op::Acquire => {
                        let open_until = b.open_until(now);
                        match b.try_acquire(now) {
                            Ok(p) => {
                                prop_assert!(open_until.is_none(), "admitted while open");
                                permits.push(p);
                            }
                            Err(e) => {
                                prop_assert_ne!(before, BreakerState::Closed);
                                if let Some(until) = open_until {
                                    prop_assert_eq!(e.retry_after, until - now);
                                }
                            }
                        }
                    }
                    Op::Succeed => {
                        if let Some(p) = permits.pop() {
                            let current = p.generation == b.generation;
                            b.on_success(p, now);
                            if current && before == BreakerState::Closed {
                                consecutive_closed_failures = 0;
                            }
                        }
                    }
                    Op::Fail => {
                        if let Some(p) = permits.pop() {
                            let current = p.generation == b.generation;
                            b.on_failure(p, now);
                            if current && before == BreakerState::Closed {
                                consecutive_closed_failures += 1;
                                let should_open = consecutive_closed_failures >= cfg.failure_threshold;
                                prop_assert_eq!(b.state(now) == BreakerState::Open, should_open);
                                if should_open { consecutive_closed_failures = 0; }
                            }
                        }
                    }
                    Op::Advance(ms) => now += Duration::from_millis(ms),
                }
                let after = b.state(now);
                let allowed = matches!(
                    (before, after),
                    (BreakerState::Closed, BreakerState::Closed | BreakerState::Open)
                        | (BreakerState::Open, BreakerState::Open | BreakerState::HalfOpen)
                        | (BreakerState::HalfOpen, _)
                );
                prop_assert!(allowed, "illegal transition {:?} -> {:?}", before, after);
                if after == BreakerState::Open && before != BreakerState::Open {
                    prop_assert_eq!(b.trips(), trips_before + 1);
                }
                if let Inner::HalfOpen { in_flight, .. } = b.inner {
                    prop_assert!(in_flight <= cfg.half_open_probes);
                }
                if after != BreakerState::Closed {
                    consecutive_closed_failures = 0;
                }
            }
        }

        /// After the cool-down an open breaker admits a trial, and enough successful
        /// trials close it again.
        #[test]
        fn open_breaker_recovers_through_half_open(cfg in config()) {
            let mut now = Instant::now();
            let mut b = CircuitBreaker::new(cfg);
            for _ in 0..cfg.failure_threshold {
                let p = b.try_acquire(now).map_err(|e| TestCaseError::fail(e.to_string()))?;
                b.on_failure(p, now);
            }
            prop_assert_eq!(b.state(now), BreakerState::Open);
            prop_assert!(b.try_acquire(now).is_err());
            now += cfg.open_for;
            for _ in 0..cfg.success_threshold {
                prop_assert_eq!(b.state(now), BreakerState::HalfOpen);
                let p = b.try_acquire(now).map_err(|e| TestCaseError::fail(e.to_string()))?;
                b.on_success(p, now);
            }
            prop_assert_eq!(b.state(now), BreakerState::Closed);
        }
    }

    /// A request admitted before the breaker opened must not close it when it succeeds late.
    #[test]
    fn stale_success_does_not_close_an_open_breaker() {
        let now = Instant::now();
        let mut b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 1,
            ..BreakerConfig::default()
        });
        let slow = b.try_acquire(now).expect("closed admits");
        let failing = b.try_acquire(now).expect("closed admits");
        b.on_failure(failing, now);
        b.on_success(slow, now);
        assert_eq!(b.state(now), BreakerState::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn cool_down_follows_the_tokio_clock() {
        let mut b = CircuitBreaker::new(BreakerConfig {
            failure_threshold: 1,
            open_for: Duration::from_secs(30),
            ..BreakerConfig::default()
        });
        let p = b.try_acquire(Instant::now()).expect("closed admits");
        b.on_failure(p, Instant::now());
        tokio::time::advance(Duration::from_secs(29)).await;
        assert!(b.try_acquire(Instant::now()).is_err());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(b.try_acquire(Instant::now()).is_ok());
    }
}
