//! Resilience bounds: while one replica of several is faulted (and nothing else on its
//! path is), breakers, retries and balancing keep its routes' client-visible errors under a
//! bound; after the heal every instance is back in the registry and in the gateway's
//! rotation with its breaker closed.

use std::collections::BTreeSet;

use super::{Evidence, FaultSpan, Verdict};
use crate::workload::history::{OpKind, Outcome};

/// The service behind a gateway route of the bundled stack.
pub fn service_of_route(route: &str) -> &'static str {
    match route {
        "users" => "user-service",
        "products" => "product-service",
        "orders" => "order-service",
        "payments" => "payment-service",
        _ => "notification-service",
    }
}

/// What a fault on the way to `service` would be: the gateway, the registry and the
/// service's own dependencies (transitively).
fn path_of(ev: &Evidence<'_>, service: &str) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = ["gateway", "registry", service]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut todo = vec![service.to_string()];
    while let Some(c) = todo.pop() {
        for d in ev.facts.depends.get(&c).into_iter().flatten() {
            if out.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    out
}

/// Segments [a, b) of the workload in which exactly one fault on `service`'s path is in
/// effect, maskable, and aimed at one replica of `service` alone.
fn lone_replica_windows<'a>(
    faults: &'a [FaultSpan],
    service: &str,
    path: &BTreeSet<String>,
    end_ms: i64,
) -> Vec<(i64, i64, &'a FaultSpan)> {
    let on_path: Vec<&FaultSpan> = faults
        .iter()
        .filter(|f| {
            f.targets.iter().any(|(c, _)| path.contains(c))
                || f.from.iter().any(|c| path.contains(c))
        })
        .collect();
    let mut cuts: Vec<i64> = vec![0, end_ms];
    for f in &on_path {
        cuts.push(f.from_ms.max(0));
        cuts.push(f.to_ms.unwrap_or(end_ms).min(end_ms));
    }
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        if b <= a {
            continue;
        }
        // In effect during [a, b): applied before b and not healed by a.
        let active: Vec<&&FaultSpan> = on_path
            .iter()
            .filter(|f| f.from_ms < b && f.to_ms.is_none_or(|t| t > a))
            .collect();
        if let [only] = active.as_slice() {
            let lone = only.maskable
                && only.targets.len() == 1
                && only.targets[0].0 == service
                && only.targets[0].1.is_some();
            if lone {
                out.push((a, b, **only));
            }
        }
    }
    out
}

/// Client-visible errors on a service's routes stay bounded while one of its replicas is
/// faulted.
pub fn replica_fault_masked(ev: &Evidence<'_>) -> Verdict {
    let mut v = Vec::new();
    let mut judged = Vec::new();
    let end_ms = (ev.history.duration_s * 1000.0) as i64;
    for (service, replicas) in &ev.facts.running {
        if *replicas < 2 {
            continue;
        }
        let path = path_of(ev, service);
        for (a, b, fault) in lone_replica_windows(ev.faults, service, &path, end_ms) {
            let ops: Vec<_> = ev
                .history
                .ops
                .iter()
                .filter(|o| o.kind != OpKind::AuthProbe)
                .filter(|o| service_of_route(o.kind.route()) == service.as_str())
                .filter(|o| {
                    let t = i64::try_from(o.invoke_ms).unwrap_or(i64::MAX);
                    t >= a && t < b
                })
                .collect();
            let errors: Vec<_> = ops
                .iter()
                .filter(|o| match o.outcome {
                    Outcome::Ok => false,
                    Outcome::Info => true,
                    // Refusals of bad input are the client's own; a refused connection or a
                    // gateway 5xx is the fault showing through.
                    Outcome::Fail => o.status.is_none_or(|s| s >= 500),
                })
                .collect();
            let allowed = f64::from(ev.spec.replica_error_allowance)
                + ev.spec.replica_error_share * ops.len() as f64;
            judged.push(format!(
                "{service} during {} ({}) {a}–{b} ms: {} of {} operations failed",
                fault.name,
                fault.kind,
                errors.len(),
                ops.len()
            ));
            if errors.len() as f64 > allowed {
                let sample: Vec<String> = errors
                    .iter()
                    .take(5)
                    .map(|o| {
                        format!(
                            "{} at {} ms → {}",
                            o.kind.name(),
                            o.invoke_ms,
                            o.error.as_deref().unwrap_or("?")
                        )
                    })
                    .collect();
                v.push(format!(
                    "{service}: {} of {} operations failed while only {} ({}) was faulted, {a}–{b} ms (bound {allowed:.0}); e.g. {}",
                    errors.len(),
                    ops.len(),
                    fault.targets.first().map(|(c, r)| format!("{c}#{}", r.unwrap_or(0))).unwrap_or_default(),
                    fault.kind,
                    sample.join("; ")
                ));
            }
        }
    }
    Verdict::from_violations(
        "replica-fault-masked",
        "while one of several replicas is faulted, its routes' client-visible errors stay under the bound",
        if judged.is_empty() {
            "no window with one replica of several faulted alone".into()
        } else {
            judged.join("; ")
        },
        v,
    )
}

/// After the heal every running instance is registered and in the gateway's rotation with
/// its breaker closed.
pub fn instances_rejoin(ev: &Evidence<'_>) -> Verdict {
    let mut v: Vec<String> = ev
        .facts
        .missing
        .iter()
        .filter(|m| m.starts_with("registry") || m.starts_with("gateway"))
        .map(|m| format!("could not read {m}"))
        .collect();
    let mut expected = 0;
    for (component, running) in &ev.facts.running {
        if component == "registry" {
            continue;
        }
        expected += running;
        let registered = ev.facts.registered.get(component).copied().unwrap_or(0);
        if registered < *running {
            v.push(format!(
                "{component}: {running} replicas running, {registered} registered and healthy"
            ));
        }
    }
    // A breaker moves on traffic: one that cooled down while nobody called its service
    // stays half-open, admitting the next request as its trial. That is in rotation; only
    // an open breaker ejects the instance.
    let mut half_open = Vec::new();
    for u in &ev.facts.upstreams {
        match u.breaker.as_str() {
            "closed" => {}
            "half_open" => half_open.push(format!("{} {}", u.service, u.instance)),
            other => v.push(format!(
                "gateway: {} instance {} has its breaker {other}",
                u.service, u.instance
            )),
        }
    }
    let mut verdict = Verdict::from_violations(
        "instances-rejoin",
        "after heal every instance is back in the registry and in the gateway's rotation",
        format!(
            "{expected} instances expected; gateway knows {} upstream instances",
            ev.facts.upstreams.len()
        ),
        v,
    );
    if !half_open.is_empty() {
        verdict.evidence.push(format!(
            "half-open, waiting for a trial request: {}",
            half_open.join(", ")
        ));
    }
    verdict
}
