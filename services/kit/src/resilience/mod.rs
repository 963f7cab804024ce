//! Resilience policies as small, separately testable pieces.
//!
//! Each policy is a plain state machine fed the current time (tokio's clock, so tests can
//! pause it) and the outcome of requests; none of them does I/O. [`crate::client`] and the
//! gateway compose them in this order, outermost first:
//!
//! 1. **rate limit** ([`rate_limit`]) — gateway only, per client, before any work is done;
//! 2. **retry** ([`backoff`]) — idempotent requests only, each retry paid from a
//!    [`backoff::RetryBudget`] and delayed by [`backoff::Backoff`];
//! 3. **load balancing** ([`balancer`]) — picks one instance among those whose breaker
//!    admits traffic, preferring instances not yet tried by this request;
//! 4. **circuit breaker** ([`breaker`]) — per instance; an open breaker ejects the instance
//!    from balancing until its cool-down ends;
//! 5. **timeout** — per attempt, covering the whole exchange including the response body.
//!
//! Vocabulary, once: a breaker is *closed* when traffic flows, *open* when it is refused,
//! and *half-open* when a few trial requests are let through to decide which way to go.

pub mod backoff;
pub mod balancer;
pub mod breaker;
pub mod rate_limit;
