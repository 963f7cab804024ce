//! Checks of the operation history against the rows: acknowledged orders exist and end
//! terminal; a POST creates at most one order; one `Idempotency-Key`, one order; stock never
//! negative at a sampled moment; logged-out and expired tokens never accepted.

use std::collections::{BTreeMap, BTreeSet};

use super::{Evidence, Verdict};
use crate::workload::history::{OpKind, Outcome, ProbeToken};

/// Every order acknowledged with 202 exists, belongs to its user and ends terminal.
pub fn acknowledged_orders(ev: &Evidence<'_>) -> Verdict {
    let missing = super::invariants::missing_for(ev, &["order-service"]);
    if !missing.is_empty() {
        return super::invariants::unread("acknowledged-orders", missing);
    }
    let mut v: Vec<String> = Vec::new();
    let rows: BTreeMap<&str, _> = ev.facts.orders.iter().map(|o| (o.id.as_str(), o)).collect();
    let mut n = 0;
    for (op, id) in ev.history.acknowledged() {
        n += 1;
        match rows.get(id) {
            None => v.push(format!(
                "order {id} acknowledged to client {} at {} ms (request {}) does not exist",
                op.client,
                op.complete_ms,
                op.request_id.as_deref().unwrap_or("?")
            )),
            Some(o) if op.user_id.as_deref().is_some_and(|u| u != o.user_id) => v.push(format!(
                "order {id} acknowledged to user {} belongs to {}",
                op.user_id.as_deref().unwrap_or("?"),
                o.user_id
            )),
            Some(o) if o.status != "confirmed" && o.status != "cancelled" => {
                v.push(format!("acknowledged order {id} is still {}", o.status));
            }
            Some(_) => {}
        }
    }
    Verdict::from_violations(
        "acknowledged-orders",
        "every order acknowledged with 202 exists and ends confirmed or cancelled",
        format!("{n} acknowledged orders"),
        v,
    )
}

/// Per user: orders without a key are no more than the keyless POSTs that may have
/// created one (ok or indeterminate), and every keyed order carries a key the client
/// sent. A gateway that retries a POST makes two orders of one.
pub fn post_at_most_once(ev: &Evidence<'_>) -> Verdict {
    let missing = super::invariants::missing_for(ev, &["order-service"]);
    if !missing.is_empty() {
        return super::invariants::unread("post-at-most-once", missing);
    }
    let mut v = Vec::new();
    let mut possible: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut keys: BTreeSet<(&str, &str)> = BTreeSet::new();
    for op in ev.history.of(OpKind::PlaceOrder) {
        let (Some(user), Some(order)) = (op.user_id.as_deref(), op.order.as_ref()) else {
            continue;
        };
        match &order.key {
            Some(k) => {
                keys.insert((user, k.as_str()));
            }
            None => {
                let e = possible.entry(user).or_default();
                match op.outcome {
                    Outcome::Ok => e.0 += 1,
                    Outcome::Info => e.1 += 1,
                    Outcome::Fail => {}
                }
            }
        }
    }
    let mut keyless: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for o in &ev.facts.orders {
        match &o.key {
            None => keyless.entry(o.user_id.as_str()).or_default().push(&o.id),
            Some(k) if !keys.contains(&(o.user_id.as_str(), k.as_str())) => v.push(format!(
                "order {} carries key {k:?} that user {} never sent",
                o.id, o.user_id
            )),
            Some(_) => {}
        }
    }
    let mut sent = 0;
    for (user, orders) in &keyless {
        let (ok, info) = possible.get(user).copied().unwrap_or_default();
        sent += ok + info;
        if orders.len() > ok + info {
            v.push(format!(
                "user {user}: {} orders without a key ({}) from {ok} acknowledged and {info} indeterminate keyless POSTs",
                orders.len(),
                orders.join(", ")
            ));
        }
    }
    Verdict::from_violations(
        "post-at-most-once",
        "a POST the client saw fail or time out created at most one order (a POST is never repeated for it)",
        format!(
            "{} keyless orders from {sent} keyless POSTs that may have created one",
            keyless.values().map(Vec::len).sum::<usize>()
        ),
        v,
    )
}

/// One `Idempotency-Key` never yields two orders, and every answer for one key names the
/// same order.
pub fn idempotency_key(ev: &Evidence<'_>) -> Verdict {
    let missing = super::invariants::missing_for(ev, &["order-service"]);
    if !missing.is_empty() {
        return super::invariants::unread("idempotency-key", missing);
    }
    let mut v = Vec::new();
    let mut rows: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for o in &ev.facts.orders {
        if let Some(k) = &o.key {
            rows.entry((o.user_id.as_str(), k.as_str()))
                .or_default()
                .push(&o.id);
        }
    }
    for ((user, key), ids) in &rows {
        if ids.len() > 1 {
            v.push(format!(
                "user {user} key {key:?}: {} orders ({})",
                ids.len(),
                ids.join(", ")
            ));
        }
    }
    let mut answers: BTreeMap<(&str, &str), BTreeSet<&str>> = BTreeMap::new();
    for (op, id) in ev.history.acknowledged() {
        if let (Some(u), Some(k)) = (
            op.user_id.as_deref(),
            op.order.as_ref().and_then(|o| o.key.as_deref()),
        ) {
            answers.entry((u, k)).or_default().insert(id);
        }
    }
    for ((user, key), ids) in &answers {
        if ids.len() > 1 {
            v.push(format!(
                "user {user} key {key:?}: answers named {} different orders ({})",
                ids.len(),
                ids.iter().copied().collect::<Vec<_>>().join(", ")
            ));
        }
    }
    let retried = ev
        .history
        .of(OpKind::PlaceOrder)
        .filter(|o| o.order.as_ref().is_some_and(|x| x.retry_of.is_some()))
        .count();
    Verdict::from_violations(
        "idempotency-key",
        "one Idempotency-Key never yields two orders",
        format!(
            "{} keys, {retried} POSTs retried with their key",
            rows.len()
        ),
        v,
    )
}

/// No sampled moment had a negative stock counter.
pub fn stock_never_negative(ev: &Evidence<'_>) -> Verdict {
    let mut v = Vec::new();
    for s in &ev.history.stock {
        for n in &s.negative {
            v.push(format!("at {} ms: {n}", s.t_ms));
        }
    }
    let min = ev.history.stock.iter().map(|s| s.min_available).min();
    Verdict::from_violations(
        "stock-never-negative",
        "stock is never negative at any sampled moment",
        format!(
            "{} samples, smallest available {}",
            ev.history.stock.len(),
            min.map_or("-".into(), |m| m.to_string())
        ),
        if ev.history.stock.is_empty() {
            vec!["no stock sample was taken".into()]
        } else {
            v
        },
    )
}

fn redis_faulted(ev: &Evidence<'_>, a: u64, b: u64) -> bool {
    let (a, b) = (
        i64::try_from(a).unwrap_or(i64::MAX),
        i64::try_from(b).unwrap_or(i64::MAX),
    );
    ev.faults
        .iter()
        .any(|f| f.touches("redis") && f.overlaps(a, b))
}

/// One accepted probe, as evidence.
fn accepted_probe(
    op: &crate::workload::Op,
    p: &crate::workload::history::Probe,
    token: &str,
) -> String {
    format!(
        "client {} at {} ms: {} with {token} answered {} (request {})",
        op.client,
        op.invoke_ms,
        p.request,
        op.status.map_or("-".into(), |s| s.to_string()),
        op.request_id.as_deref().unwrap_or("?")
    )
}

/// A logged-out token is refused on the paths that promise it. While Redis is faulted,
/// user-service serves without its revocation list (documented fail-open), so probes then
/// are listed, not counted.
pub fn revoked_token_refused(ev: &Evidence<'_>) -> Verdict {
    let mut v = Vec::new();
    let mut checked = 0;
    let mut during_redis = 0;
    let mut unenforced: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for op in ev.history.of(OpKind::AuthProbe) {
        let Some(p) = op.probe.as_ref().filter(|p| p.token == ProbeToken::Revoked) else {
            continue;
        };
        let path = p.request.split_whitespace().nth(1).unwrap_or("");
        if !ev
            .spec
            .revocation_paths
            .iter()
            .any(|r| path.starts_with(r.as_str()))
        {
            let e = unenforced.entry(p.request.clone()).or_default();
            e.0 += 1;
            e.1 += usize::from(p.accepted);
            continue;
        }
        if redis_faulted(ev, op.invoke_ms, op.complete_ms) {
            during_redis += 1;
            continue;
        }
        checked += 1;
        if p.accepted {
            v.push(accepted_probe(op, p, "a logged-out token"));
        }
    }
    let mut verdict = Verdict::from_violations(
        "revoked-token-refused",
        "a logged-out token never succeeds",
        format!("{checked} probes with logged-out tokens ({during_redis} more while Redis was faulted, not counted)"),
        v,
    );
    for (req, (n, accepted)) in unenforced {
        verdict.evidence.push(format!(
            "not checked (revocation not promised there): {req} accepted {accepted} of {n}"
        ));
    }
    verdict
}

/// A correctly signed but expired token is always refused.
pub fn expired_token_refused(ev: &Evidence<'_>) -> Verdict {
    let mut v = Vec::new();
    let mut n = 0;
    for op in ev.history.of(OpKind::AuthProbe) {
        let Some(p) = op.probe.as_ref().filter(|p| p.token == ProbeToken::Expired) else {
            continue;
        };
        n += 1;
        if p.accepted {
            v.push(accepted_probe(op, p, "an expired token"));
        }
    }
    Verdict::from_violations(
        "expired-token-refused",
        "an expired token never succeeds",
        format!("{n} probes with expired tokens"),
        v,
    )
}
