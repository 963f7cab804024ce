//! Token-bucket rate limiting, one bucket per client key.
//!
//! A bucket holds up to `burst` tokens and gains `rate_per_sec` tokens per second; each
//! request takes one. A refused request learns how long until a token is available, which
//! the gateway sends back as `Retry-After`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Steady rate and burst size of a [`TokenBucket`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Tokens added per second.
    pub rate_per_sec: f64,
    /// Bucket capacity: how many requests may arrive at once after a quiet period.
    pub burst: u32,
}

/// A single token bucket. Not synchronised.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket as of `now`.
    pub fn new(limit: RateLimit, now: Instant) -> Self {
        let limit = RateLimit {
            rate_per_sec: if limit.rate_per_sec.is_finite() {
                limit.rate_per_sec.max(0.0)
            } else {
                0.0
            },
            burst: limit.burst.max(1),
        };
        Self {
            tokens: f64::from(limit.burst),
            limit,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        if now > self.last {
            let elapsed = (now - self.last).as_secs_f64();
            self.tokens =
                (self.tokens + elapsed * self.limit.rate_per_sec).min(f64::from(self.limit.burst));
            self.last = now;
        }
    }

    /// Tokens available at `now` (fractional).
    pub fn available(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.tokens
    }

    /// Whether the bucket would be full at `now`, i.e. forgetting it loses nothing.
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.available(now) >= f64::from(self.limit.burst)
    }

    /// Take one token, or say how long until one is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if self.limit.rate_per_sec <= 0.0 {
            return Err(Duration::from_secs(3600));
        }
        let missing = 1.0 - self.tokens;
        // Round up to whole microseconds so that waiting exactly this long suffices.
        let micros = (missing / self.limit.rate_per_sec * 1e6).ceil();
        Err(Duration::from_micros(micros as u64))
    }
}

/// Buckets keyed by client; idle (full) buckets are forgotten once the map grows large.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, TokenBucket>>,
    max_keys: usize,
}

impl RateLimiter {
    /// A limiter applying `limit` to each client separately.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            buckets: Mutex::new(HashMap::new()),
            max_keys: 10_000,
        }
    }

    /// The per-client limit.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Take a token from `client`'s bucket, or return the `Retry-After` delay.
    pub fn check(&self, client: &str, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= self.max_keys && !buckets.contains_key(client) {
            buckets.retain(|_, b| !b.is_full(now));
            if buckets.len() >= self.max_keys {
                // Every tracked client is active: refuse newcomers rather than grow without
                // bound (a flood of spoofed keys must not exhaust memory).
                return Err(Duration::from_secs(1));
            }
        }
        buckets
            .entry(client.to_owned())
            .or_insert_with(|| TokenBucket::new(self.limit, now))
            .try_take(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limit() -> impl Strategy<Value = RateLimit> {
        (0.1f64..500.0, 1u32..50).prop_map(|(rate_per_sec, burst)| RateLimit {
            rate_per_sec,
            burst,
        })
    }

    proptest! {
        /// Over any arrival pattern, admitted requests never exceed burst + rate × elapsed,
        /// and the bucket never holds more than its burst.
        #[test]
        fn admits_at_most_burst_plus_rate(limit in limit(), gaps in proptest::collection::vec(0u64..50_000, 1..300)) {
            let start = Instant::now();
            let mut now = start;
            let mut bucket = TokenBucket::new(limit, now);
            let mut admitted = 0u64;
            for gap in gaps {
                now += Duration::from_micros(gap);
                if bucket.try_take(now).is_ok() {
                    admitted += 1;
                }
                prop_assert!(bucket.tokens <= f64::from(limit.burst) + 1e-9);
                let bound = f64::from(limit.burst) + limit.rate_per_sec * (now - start).as_secs_f64();
                prop_assert!(admitted as f64 <= bound + 1e-6, "admitted {} > bound {}", admitted, bound);
            }
        }

        /// Waiting exactly the advertised Retry-After is enough to be admitted.
        #[test]
        fn retry_after_is_sufficient(limit in limit(), extra in 0u32..5) {
            let mut now = Instant::now();
            let mut bucket = TokenBucket::new(limit, now);
            for _ in 0..limit.burst + extra {
                let _ = bucket.try_take(now);
            }
            match bucket.try_take(now) {
                Ok(()) => prop_assert!(false, "bucket should be empty"),
                Err(wait) => {
                    now += wait;
                    prop_assert!(bucket.try_take(now).is_ok());
                }
            }
        }

        /// A full bucket admits exactly `burst` simultaneous requests.
        #[test]
        fn full_bucket_admits_exactly_burst(limit in limit()) {
            let now = Instant::now();
            let mut bucket = TokenBucket::new(limit, now);
            let admitted = (0..limit.burst * 2).filter(|_| bucket.try_take(now).is_ok()).count();
            prop_assert_eq!(admitted, limit.burst as usize);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn limiter_keeps_clients_apart_and_refills_with_time() {
        let limiter = RateLimiter::new(RateLimit {
            rate_per_sec: 1.0,
            burst: 2,
        });
        assert!(limiter.check("a", Instant::now()).is_ok());
        assert!(limiter.check("a", Instant::now()).is_ok());
        let wait = limiter
            .check("a", Instant::now())
            .expect_err("a is out of tokens");
        assert_eq!(wait, Duration::from_secs(1));
        assert!(limiter.check("b", Instant::now()).is_ok());
        tokio::time::advance(wait).await;
        assert!(limiter.check("a", Instant::now()).is_ok());
    }
}
