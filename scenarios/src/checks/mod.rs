//! `check` steps: the checkers that judge a workload's run — DESIGN §5's invariants over the
//! databases, checks of the operation history, contracts read from the services' own
//! metrics, resilience bounds and auth. Each names its invariant and shows its evidence
//! (the orders, products, events or requests involved).
//!
//! Checkers are pure functions of [`Evidence`] (the history, the fault windows, and
//! [`facts::Facts`] read from the databases, the registry and the gateway), so each is
//! tested on hand-made evidence. The step gathers facts and evaluates every checker
//! repeatedly until all hold or the settle time is over: the stack is given a bounded time
//! to finish its sagas, drain its outbox and take healed instances back.

pub mod contracts;
pub mod facts;
pub mod history;
pub mod invariants;
pub mod resilience;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::workload::History;
pub use facts::Facts;

/// One checker's conclusion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Checker id, e.g. `money-balance`.
    pub checker: String,
    /// The invariant in words.
    pub invariant: String,
    /// Whether it held.
    pub passed: bool,
    /// What was examined and, on failure, the offending items (at most [`MAX_EVIDENCE`]).
    pub evidence: Vec<String>,
}

/// How the invariant of a verdict that could not read its rows begins.
pub const UNREAD_PREFIX: &str = invariants::UNREAD;

/// Most offending items listed per verdict (the count is always given).
pub const MAX_EVIDENCE: usize = 20;

impl Verdict {
    /// Whether the checker could not read the rows it needs (see `invariants::unread`).
    pub fn is_unread(&self) -> bool {
        self.invariant.starts_with(invariants::UNREAD)
    }

    /// A verdict from a list of violations: passed when it is empty.
    pub fn from_violations(
        checker: &str,
        invariant: &str,
        examined: String,
        violations: Vec<String>,
    ) -> Self {
        let mut evidence = vec![examined];
        if !violations.is_empty() {
            evidence.push(format!("{} violation(s):", violations.len()));
            evidence.extend(violations.iter().take(MAX_EVIDENCE).cloned());
            if violations.len() > MAX_EVIDENCE {
                evidence.push(format!("… and {} more", violations.len() - MAX_EVIDENCE));
            }
        }
        Self {
            checker: checker.into(),
            invariant: invariant.into(),
            passed: violations.is_empty(),
            evidence,
        }
    }
}

/// A fault as the checkers see it, on the workload's clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultSpan {
    /// Step name.
    pub name: String,
    /// `kill SIGKILL`, `http-fault status 503 …`.
    pub kind: String,
    /// Target components, each with `Some(replica)` or `None` for every replica.
    pub targets: Vec<(String, Option<u32>)>,
    /// Components of a partition's other group.
    pub from: Vec<String>,
    /// In effect from (ms since the workload started; negative = before it).
    pub from_ms: i64,
    /// Until (ms; `None` = still active when checked).
    pub to_ms: Option<i64>,
    /// The gateway is documented to mask this fault on one replica of several (a
    /// container or network fault, or an HTTP fault with a retryable status applied before
    /// the handler; an after-handler fault's work was done, so it is not maskable).
    pub maskable: bool,
}

impl FaultSpan {
    /// The span of an applied fault.
    pub fn new(
        name: &str,
        spec: &msctl_chaos::FaultSpec,
        from_ms: i64,
        to_ms: Option<i64>,
    ) -> Self {
        use msctl_chaos::{FaultKind, Selector};
        let targets = spec
            .targets
            .iter()
            .map(|t| {
                let replica = match t.selector {
                    Selector::Replica(n) => Some(n),
                    // A random pick is one replica, but which one the ledger knows: to the
                    // checkers it could be any.
                    Selector::All | Selector::Random => None,
                };
                (t.component.clone(), replica)
            })
            .collect();
        let from = match &spec.kind {
            FaultKind::Partition { from, .. } => from.iter().map(|t| t.component.clone()).collect(),
            _ => Vec::new(),
        };
        let maskable = match &spec.kind {
            // An after-handler fault is never masked: the request was served, so a retry
            // repeats work that was done.
            FaultKind::HttpFault(h) => {
                !h.after
                    && h.delay_ms.is_none()
                    && matches!(h.status, Some(502..=504))
                    && h.first_n.is_none()
            }
            FaultKind::Latency { .. } | FaultKind::Loss { .. } => false,
            _ => true,
        };
        Self {
            name: name.to_string(),
            kind: spec.kind.to_string(),
            targets,
            from,
            from_ms,
            to_ms,
            maskable,
        }
    }

    /// Whether the span overlaps [a, b] (ms).
    pub fn overlaps(&self, a: i64, b: i64) -> bool {
        self.from_ms <= b && self.to_ms.is_none_or(|t| t >= a)
    }

    /// Whether it touches `component` at all.
    pub fn touches(&self, component: &str) -> bool {
        self.targets.iter().any(|(c, _)| c == component) || self.from.iter().any(|c| c == component)
    }
}

/// Bounds and settings of the checkers.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckSpec {
    /// Run only these checkers (ids); empty = all.
    pub only: Vec<String>,
    /// How long the stack may take to settle after the heal.
    pub settle: Duration,
    /// Largest share of client-visible errors on a service's routes while one of its
    /// replicas is faulted.
    pub replica_error_share: f64,
    /// Errors always allowed in such a window (the breaker must see a few failures).
    pub replica_error_allowance: u32,
    /// Paths where a revoked token must be refused (prefixes).
    pub revocation_paths: Vec<String>,
    /// Retry budget of every client (ratio earned per request, reserve per second), by
    /// component; `*` is the default.
    pub budgets: Vec<(String, f64, f64)>,
    /// Admin token (gateway upstreams).
    pub admin_token: String,
}

impl Default for CheckSpec {
    fn default() -> Self {
        Self {
            only: Vec::new(),
            settle: Duration::from_secs(90),
            replica_error_share: 0.2,
            replica_error_allowance: 3,
            revocation_paths: vec!["/api/v1/users".into()],
            budgets: vec![("*".into(), 0.2, 10.0)],
            admin_token: "msctl-admin".into(),
        }
    }
}

/// Everything a checker may look at.
pub struct Evidence<'a> {
    /// The workload's operations and samples.
    pub history: &'a History,
    /// Faults on the workload's clock.
    pub faults: &'a [FaultSpan],
    /// Database, registry and gateway state after the settle.
    pub facts: &'a Facts,
    /// Bounds.
    pub spec: &'a CheckSpec,
}

/// A checker: evidence in, verdict out.
pub type Checker = fn(&Evidence<'_>) -> Verdict;

/// Every checker by id, in report order.
pub const CHECKERS: [(&str, Checker); 19] = [
    ("terminal-orders", invariants::terminal_orders),
    ("stock-conservation", invariants::stock_conservation),
    ("money-balance", invariants::money_balance),
    (
        "one-capture-per-confirmed",
        invariants::one_capture_per_confirmed,
    ),
    ("cancelled-refunded", invariants::cancelled_refunded),
    ("no-double-charge", invariants::no_double_charge),
    (
        "one-confirmed-notification",
        invariants::one_confirmed_notification,
    ),
    ("no-event-lost", invariants::no_event_lost),
    ("acknowledged-orders", history::acknowledged_orders),
    ("post-at-most-once", history::post_at_most_once),
    ("idempotency-key", history::idempotency_key),
    ("stock-never-negative", history::stock_never_negative),
    ("retry-budget", contracts::retry_budget),
    ("no-post-retries", contracts::no_post_retries),
    ("attempts-per-call", contracts::attempts_per_call),
    ("replica-fault-masked", resilience::replica_fault_masked),
    ("instances-rejoin", resilience::instances_rejoin),
    ("revoked-token-refused", history::revoked_token_refused),
    ("expired-token-refused", history::expired_token_refused),
];

/// Checkers whose failure settling cannot mend: they judge what the run recorded (the
/// history, its samples) or rows that only ever grow (orders, ledger entries), so once
/// one fails on rows that could be read it fails for good. The settle loop stops as soon
/// as every failing verdict is one of these.
pub const FINAL_CHECKERS: [&str; 10] = [
    "no-double-charge",
    "post-at-most-once",
    "idempotency-key",
    "stock-never-negative",
    "retry-budget",
    "no-post-retries",
    "attempts-per-call",
    "replica-fault-masked",
    "revoked-token-refused",
    "expired-token-refused",
];

/// Checkers of the databases' balances: while sagas run they may still change, but once
/// every order is terminal nothing drives them any more, and a failure is final.
pub const FINAL_WHEN_QUIESCENT: [&str; 4] = [
    "stock-conservation",
    "money-balance",
    "one-capture-per-confirmed",
    "cancelled-refunded",
];

/// Whether the stack is quiescent: the order rows could be read and every order is
/// terminal, so that no saga is left to move stock or money.
pub fn quiescent(ev: &Evidence<'_>) -> bool {
    invariants::terminal_orders(ev).passed
}

/// Whether a failed verdict is final: its checker is in [`FINAL_CHECKERS`] and it judged
/// rows it could read.
pub fn is_final_failure(v: &Verdict) -> bool {
    !v.passed && FINAL_CHECKERS.contains(&v.checker.as_str()) && !v.is_unread()
}

/// Evaluates the selected checkers.
pub fn evaluate(ev: &Evidence<'_>) -> Vec<Verdict> {
    CHECKERS
        .iter()
        .filter(|(id, _)| ev.spec.only.is_empty() || ev.spec.only.iter().any(|o| o == id))
        .map(|(_, check)| check(ev))
        .collect()
}

/// Gathers facts and evaluates the checkers until all hold, every failure is final (see
/// [`FINAL_CHECKERS`]) or `spec.settle` has passed; returns the last verdicts, the number
/// of rounds and how long settling took.
pub async fn judge(
    env: &dyn crate::environment::Environment,
    db: &crate::sql::Databases,
    history: &History,
    faults: &[FaultSpan],
    spec: &CheckSpec,
) -> (Vec<Verdict>, u32, Duration) {
    let started = tokio::time::Instant::now();
    let deadline = started + spec.settle;
    let mut rounds = 0;
    // Failing checkers of the previous round, when the stack was quiescent then.
    let mut quiet_before: Option<Vec<String>> = None;
    loop {
        rounds += 1;
        let _ = env.refresh().await;
        let facts = facts::gather(env, db, history, &spec.admin_token).await;
        let ev = Evidence {
            history,
            faults,
            facts: &facts,
            spec,
        };
        let verdicts = evaluate(&ev);
        let failing: Vec<String> = verdicts
            .iter()
            .filter(|v| !v.passed)
            .map(|v| v.checker.clone())
            .collect();
        // A balance failure counts as final once two rounds in a row found every order
        // terminal and the same checkers failing (a request queued on a paused replica
        // may still land just after the heal).
        let quiet = quiescent(&ev);
        let settled_balances = quiet && quiet_before.as_ref() == Some(&failing);
        quiet_before = quiet.then_some(failing);
        let decided = verdicts.iter().all(|v| {
            v.passed
                || is_final_failure(v)
                || (settled_balances
                    && !v.is_unread()
                    && FINAL_WHEN_QUIESCENT.contains(&v.checker.as_str()))
        });
        if decided || tokio::time::Instant::now() >= deadline {
            let mut verdicts = verdicts;
            let settled = started.elapsed();
            let early = decided && verdicts.iter().any(|v| !v.passed);
            for v in &mut verdicts {
                v.evidence.push(format!(
                    "judged after {:.1}s of settling ({rounds} rounds){}",
                    settled.as_secs_f64(),
                    if early {
                        "; stopped early: every failure is final"
                    } else {
                        ""
                    }
                ));
            }
            return (verdicts, rounds, settled);
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Whether `id` names a checker.
pub fn is_checker(id: &str) -> bool {
    CHECKERS.iter().any(|(c, _)| *c == id)
}

#[cfg(test)]
pub(crate) mod testdata;

#[cfg(test)]
mod tests {
    use msctl_chaos::{FaultKind, FaultSpec, HttpFault, Target};

    use super::FaultSpan;

    #[test]
    fn a_lost_response_is_not_maskable_while_the_same_fault_before_the_handler_is() {
        let span = |after: bool| {
            let spec = FaultSpec::new(
                FaultKind::HttpFault(HttpFault {
                    status: Some(503),
                    after,
                    ..HttpFault::default()
                }),
                Target::all("product-service"),
            );
            FaultSpan::new("f", &spec, 0, None)
        };
        assert!(span(false).maskable);
        let lost = span(true);
        assert!(!lost.maskable);
        assert_eq!(lost.kind, "http-fault status 503 after");
    }
}
