//! Retry pacing: exponential backoff with jitter, and a retry budget.
//!
//! The budget, not a bare attempt count, is what prevents retry storms: every original
//! request deposits `ratio` of a retry, every retry withdraws a whole one, and a small
//! reserve refilled over time lets a quiet client still retry occasionally. Deposits
//! expire after [`DEPOSIT_TTL`] (as in Finagle's retry budget): a calm minute cannot bank
//! retries for an outage later, so during an outage retries stay within `ratio` of the
//! requests of the last few seconds plus the reserve.

use std::collections::VecDeque;
use std::time::Duration;

use rand::Rng;
use tokio::time::Instant;

use super::rate_limit::{RateLimit, TokenBucket};

/// Exponential backoff: the cap for retry `n` (0-based) is `min(max, base × 2ⁿ)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay cap of the first retry.
    pub base: Duration,
    /// Largest delay ever returned.
    pub max: Duration,
    /// Whether to randomise; tests turn it off to be deterministic.
    pub jitter: bool,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(25),
            max: Duration::from_secs(1),
            jitter: true,
        }
    }
}

impl Backoff {
    /// The un-jittered delay before retry `attempt` (0-based).
    pub fn cap(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay before retry `attempt`: the cap, or with jitter a uniform value in
    /// `[cap/2, cap]` ("equal jitter": spread out, but never retrying immediately).
    pub fn delay_with<R: Rng + ?Sized>(&self, attempt: u32, rng: &mut R) -> Duration {
        let cap = self.cap(attempt);
        if !self.jitter || cap.is_zero() {
            return cap;
        }
        let half = cap / 2;
        let spread = (cap - half).as_nanos() as u64;
        half + Duration::from_nanos(rng.gen_range(0..=spread))
    }

    /// [`Backoff::delay_with`] using the thread's random source.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with(attempt, &mut rand::thread_rng())
    }
}

/// Tuning of a [`RetryBudget`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetConfig {
    /// Retries earned per original request (0.2 = at most one retry per five requests).
    pub ratio: f64,
    /// Retries per second always allowed, whatever the request volume.
    pub min_per_sec: u32,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            ratio: 0.2,
            min_per_sec: 10,
        }
    }
}

/// How long a deposit can pay for a retry. Deposits are kept per whole second since the
/// budget was made, so one lives between `DEPOSIT_TTL` and `DEPOSIT_TTL` + 1 s.
pub const DEPOSIT_TTL: Duration = Duration::from_secs(10);

/// Retries allowed so far; see the module docs. Not synchronised.
#[derive(Debug, Clone)]
pub struct RetryBudget {
    config: BudgetConfig,
    /// Unspent deposits by the second they were made in (oldest first).
    earned: VecDeque<(u64, f64)>,
    reserve: TokenBucket,
    start: Instant,
}

impl RetryBudget {
    /// A fresh budget with a full reserve.
    pub fn new(config: BudgetConfig, now: Instant) -> Self {
        let ratio = if config.ratio.is_finite() {
            config.ratio.max(0.0)
        } else {
            0.0
        };
        Self {
            config: BudgetConfig { ratio, ..config },
            earned: VecDeque::new(),
            reserve: TokenBucket::new(
                RateLimit {
                    rate_per_sec: f64::from(config.min_per_sec),
                    burst: config.min_per_sec.max(1),
                },
                now,
            ),
            start: now,
        }
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.start).as_secs()
    }

    /// Drops the deposits older than [`DEPOSIT_TTL`].
    fn expire(&mut self, now: Instant) {
        let oldest = self.second(now).saturating_sub(DEPOSIT_TTL.as_secs());
        while self.earned.front().is_some_and(|(s, _)| *s < oldest) {
            self.earned.pop_front();
        }
    }

    /// Unspent, unexpired deposits (in retries).
    pub fn saved(&mut self, now: Instant) -> f64 {
        self.expire(now);
        self.earned.iter().map(|(_, t)| t).sum()
    }

    /// Record an original (non-retry) request.
    pub fn deposit(&mut self, now: Instant) {
        self.expire(now);
        let second = self.second(now);
        match self.earned.back_mut() {
            Some((s, t)) if *s == second => *t += self.config.ratio,
            _ => self.earned.push_back((second, self.config.ratio)),
        }
    }

    /// Pay for one retry, from the oldest deposits first; `false` means the budget is
    /// exhausted and the caller must not retry.
    pub fn try_withdraw(&mut self, now: Instant) -> bool {
        if self.saved(now) >= 1.0 - 1e-9 {
            let mut owed = 1.0;
            while owed > 1e-9 {
                let Some((_, t)) = self.earned.front_mut() else {
                    break;
                };
                let paid = t.min(owed);
                *t -= paid;
                owed -= paid;
                if *t <= 1e-9 {
                    self.earned.pop_front();
                }
            }
            return true;
        }
        self.config.min_per_sec > 0 && self.reserve.try_take(now).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn backoff() -> impl Strategy<Value = Backoff> {
        (0u64..500, 0u64..10_000, any::<bool>()).prop_map(|(base, max, jitter)| Backoff {
            base: Duration::from_millis(base),
            max: Duration::from_millis(max),
            jitter,
        })
    }

    proptest! {
        /// Delays never exceed the cap, the cap grows monotonically up to `max`, zero-jitter
        /// backoff is exact, and jittered delays stay in `[cap/2, cap]`.
        #[test]
        fn backoff_stays_within_its_cap(b in backoff(), attempt in 0u32..64, seed: u64) {
            let mut rng = StdRng::seed_from_u64(seed);
            let cap = b.cap(attempt);
            prop_assert!(cap <= b.max);
            prop_assert!(b.cap(attempt + 1) >= cap);
            let d = b.delay_with(attempt, &mut rng);
            if b.jitter {
                prop_assert!(d <= cap && d >= cap / 2);
            } else {
                prop_assert_eq!(d, cap);
                let expected = b.base.saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX)).min(b.max);
                prop_assert_eq!(d, expected);
            }
        }

        /// Retries granted never exceed ratio × requests + the time-based reserve.
        #[test]
        fn budget_bounds_retries(ratio in 0.0f64..1.0, min_per_sec in 0u32..20,
                                 events in proptest::collection::vec((any::<bool>(), 0u64..400), 1..400)) {
            let start = Instant::now();
            let mut now = start;
            let mut budget = RetryBudget::new(BudgetConfig { ratio, min_per_sec }, now);
            let (mut requests, mut retries) = (0u64, 0u64);
            for (is_request, gap_ms) in events {
                now += Duration::from_millis(gap_ms);
                if is_request {
                    budget.deposit(now);
                    requests += 1;
                } else if budget.try_withdraw(now) {
                    retries += 1;
                }
                let reserve = if min_per_sec == 0 { 0.0 } else {
                    f64::from(min_per_sec) * (1.0 + (now - start).as_secs_f64())
                };
                prop_assert!(retries as f64 <= ratio * requests as f64 + reserve + 1e-6);
            }
        }
    }

    /// A steady failing workload gets its reserve back only as (paused) time passes.
    #[tokio::test(start_paused = true)]
    async fn budget_reserve_refills_with_time() {
        let mut budget = RetryBudget::new(
            BudgetConfig {
                ratio: 0.0,
                min_per_sec: 2,
            },
            Instant::now(),
        );
        assert!(budget.try_withdraw(Instant::now()));
        assert!(budget.try_withdraw(Instant::now()));
        assert!(!budget.try_withdraw(Instant::now()));
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(budget.try_withdraw(Instant::now()));
        assert!(!budget.try_withdraw(Instant::now()));
    }

    /// A calm period banks nothing for an outage later: deposits expire after the TTL.
    #[tokio::test(start_paused = true)]
    async fn deposits_expire_so_a_calm_minute_cannot_fund_a_storm() {
        let mut budget = RetryBudget::new(
            BudgetConfig {
                ratio: 0.2,
                min_per_sec: 0,
            },
            Instant::now(),
        );
        // A calm minute at 50 requests a second: 600 retries' worth deposited.
        for _ in 0..60 {
            for _ in 0..50 {
                budget.deposit(Instant::now());
            }
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        let saved = budget.saved(Instant::now());
        assert!(
            (100.0 - 1e-6..=110.0 + 1e-6).contains(&saved),
            "only the last TTL's deposits: {saved}"
        );
        // Then every request fails for 20 s, with no new requests: the savings run out and
        // do not come back.
        let mut granted = 0;
        for _ in 0..20 {
            for _ in 0..50 {
                granted += u32::from(budget.try_withdraw(Instant::now()));
            }
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert!((100..=110).contains(&granted), "{granted}");
        // Deposits made during the outage pay only for their own share.
        budget.deposit(Instant::now());
        assert!(!budget.try_withdraw(Instant::now()));
        for _ in 0..4 {
            budget.deposit(Instant::now());
        }
        assert!(budget.try_withdraw(Instant::now()));
        tokio::time::advance(DEPOSIT_TTL + Duration::from_secs(2)).await;
        for _ in 0..5 {
            budget.deposit(Instant::now());
        }
        tokio::time::advance(DEPOSIT_TTL + Duration::from_secs(2)).await;
        assert!(!budget.try_withdraw(Instant::now()), "expired");
    }

    #[tokio::test(start_paused = true)]
    async fn retries_paced_by_backoff_take_the_expected_time() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(350),
            jitter: false,
        };
        let start = Instant::now();
        for attempt in 0..4 {
            tokio::time::sleep(b.delay(attempt)).await;
        }
        // 100 + 200 + 350 + 350
        assert_eq!(Instant::now() - start, Duration::from_millis(1000));
    }
}
