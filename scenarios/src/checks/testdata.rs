//! Hand-made evidence for the checkers' tests: a small clean run (two users, a plentiful
//! and a scarce product, a confirmed, a declined and an out-of-stock order, events,
//! payments, probes, metrics), which every checker passes, and one test per checker that
//! breaks exactly what it guards and sees it fail.

use super::facts::{
    EventRow, LedgerRow, OrderRow, PaymentRow, ProductRow, ReservationRow, UpstreamRow,
};
use super::*;
use crate::workload::history::{
    Line, MetricsSample, Op, OpKind, OrderAttempt, Outcome, Probe, ProbeToken, ProductRecord,
    StockSample, UserRecord,
};

const P1: &str = "p-plenty";
const P2: &str = "p-scarce";

fn op(index: usize, kind: OpKind, at: u64, outcome: Outcome, status: Option<u16>) -> Op {
    Op {
        index,
        client: 0,
        kind,
        invoke_ms: at,
        complete_ms: at + 20,
        outcome,
        status,
        request_id: Some(format!("req-{index}")),
        user_id: Some("u1".into()),
        order: None,
        probe: None,
        error: None,
    }
}

fn order_op(index: usize, at: u64, key: Option<&str>, outcome: Outcome, id: Option<&str>) -> Op {
    let mut o = op(
        index,
        OpKind::PlaceOrder,
        at,
        outcome,
        Some(if outcome == Outcome::Ok { 202 } else { 504 }),
    );
    o.order = Some(OrderAttempt {
        key: key.map(String::from),
        lines: vec![Line {
            product: P1.into(),
            quantity: 1,
        }],
        declining_card: false,
        order_id: id.map(String::from),
        retry_of: None,
    });
    o
}

fn probe(index: usize, at: u64, token: ProbeToken, path: &str, accepted: bool) -> Op {
    let mut o = op(
        index,
        OpKind::AuthProbe,
        at,
        if accepted { Outcome::Ok } else { Outcome::Fail },
        Some(if accepted { 200 } else { 401 }),
    );
    o.probe = Some(Probe {
        token,
        request: format!("GET {path}"),
        accepted,
    });
    o
}

fn metrics(
    t_ms: u64,
    instance: &str,
    component: &str,
    attempts: f64,
    retries: f64,
    posts: f64,
) -> MetricsSample {
    MetricsSample {
        t_ms,
        instance: instance.into(),
        component: component.into(),
        attempts,
        retries,
        order_posts: posts,
        calls: attempts - retries,
        forwarded: if component == "gateway" {
            attempts - retries
        } else {
            0.0
        },
    }
}

/// A clean run.
pub(crate) fn history() -> History {
    let mut ops = vec![
        order_op(0, 1_000, Some("k1"), Outcome::Ok, Some("o1")),
        order_op(1, 2_000, Some("k2"), Outcome::Info, None),
        order_op(2, 2_600, Some("k2"), Outcome::Ok, Some("o2")),
        order_op(3, 3_000, None, Outcome::Ok, Some("o3")),
        order_op(4, 4_000, None, Outcome::Info, None),
        op(5, OpKind::Browse, 5_000, Outcome::Ok, Some(200)),
        op(6, OpKind::Browse, 12_000, Outcome::Ok, Some(200)),
        op(7, OpKind::Browse, 12_500, Outcome::Ok, Some(200)),
        probe(8, 20_000, ProbeToken::Revoked, "/api/v1/users/me", false),
        probe(9, 20_100, ProbeToken::Revoked, "/api/v1/orders", true),
        probe(10, 21_000, ProbeToken::Expired, "/api/v1/orders", false),
    ];
    if let Some(o) = ops[2].order.as_mut() {
        o.retry_of = Some(1);
    }
    History {
        started_at: "2026-12-06T00:00:00Z".into(),
        offset_s: 1.0,
        duration_s: 30.0,
        clients: 1,
        ops,
        users: vec![UserRecord {
            client: 0,
            user_id: "u1".into(),
            email: "u1@example.com".into(),
        }],
        products: vec![
            ProductRecord {
                id: P1.into(),
                stock: 100,
                price_cents: 500,
                scarce: false,
            },
            ProductRecord {
                id: P2.into(),
                stock: 2,
                price_cents: 900,
                scarce: true,
            },
        ],
        stock: vec![StockSample {
            t_ms: 1_000,
            negative: Vec::new(),
            min_available: 1,
        }],
        metrics: vec![
            metrics(0, "gateway#1", "gateway", 0.0, 0.0, 0.0),
            metrics(10_000, "gateway#1", "gateway", 100.0, 5.0, 5.0),
            metrics(0, "order-service#1", "order-service", 0.0, 0.0, 0.0),
            metrics(10_000, "order-service#1", "order-service", 40.0, 2.0, 5.0),
        ],
        notes: Vec::new(),
    }
}

fn order(id: &str, status: &str, total: i64, key: Option<&str>) -> OrderRow {
    OrderRow {
        id: id.into(),
        user_id: "u1".into(),
        status: status.into(),
        reason: (status == "cancelled").then(|| "payment_declined".into()),
        total_cents: total,
        key: key.map(String::from),
        saga: None,
    }
}

fn event(id: &str, kind: &str, order: &str) -> EventRow {
    EventRow {
        event_id: id.into(),
        event_type: kind.into(),
        order_id: order.into(),
        published: true,
    }
}

/// The rows of the clean run: o1 confirmed, o2 cancelled after a refund, o3 confirmed.
pub(crate) fn facts() -> Facts {
    let mut outbox = Vec::new();
    for (o, end) in [
        ("o1", "order.confirmed"),
        ("o2", "order.cancelled"),
        ("o3", "order.confirmed"),
    ] {
        outbox.push(event(&format!("{o}-c"), "order.created", o));
        outbox.push(event(&format!("{o}-e"), end, o));
    }
    Facts {
        orders: vec![
            order("o1", "confirmed", 500, Some("k1")),
            order("o2", "cancelled", 500, Some("k2")),
            order("o3", "confirmed", 500, None),
        ],
        notifications: outbox.clone(),
        outbox,
        payments: vec![
            PaymentRow {
                order_id: "o1".into(),
                status: "captured".into(),
                amount_cents: 500,
            },
            PaymentRow {
                order_id: "o2".into(),
                status: "refunded".into(),
                amount_cents: 500,
            },
            PaymentRow {
                order_id: "o3".into(),
                status: "captured".into(),
                amount_cents: 500,
            },
        ],
        ledger: vec![
            LedgerRow {
                order_id: "o1".into(),
                kind: "capture".into(),
                amount_cents: 500,
            },
            LedgerRow {
                order_id: "o2".into(),
                kind: "capture".into(),
                amount_cents: 500,
            },
            LedgerRow {
                order_id: "o2".into(),
                kind: "refund".into(),
                amount_cents: 500,
            },
            LedgerRow {
                order_id: "o3".into(),
                kind: "capture".into(),
                amount_cents: 500,
            },
        ],
        products: vec![
            ProductRow {
                id: P1.into(),
                available: 98,
                reserved: 0,
                sold: 2,
            },
            ProductRow {
                id: P2.into(),
                available: 2,
                reserved: 0,
                sold: 0,
            },
        ],
        reservations: vec![
            ReservationRow {
                order_id: "o1".into(),
                status: "committed".into(),
                product_id: P1.into(),
                quantity: 1,
            },
            ReservationRow {
                order_id: "o2".into(),
                status: "released".into(),
                product_id: P1.into(),
                quantity: 1,
            },
            ReservationRow {
                order_id: "o3".into(),
                status: "committed".into(),
                product_id: P1.into(),
                quantity: 1,
            },
        ],
        registered: [
            ("gateway".to_string(), 1),
            ("product-service".to_string(), 2),
        ]
        .into(),
        running: [
            ("gateway".to_string(), 1),
            ("product-service".to_string(), 2),
        ]
        .into(),
        upstreams: vec![UpstreamRow {
            service: "product-service".into(),
            instance: "product-1".into(),
            breaker: "closed".into(),
        }],
        depends: [("product-service".to_string(), vec!["postgres".to_string()])].into(),
        missing: Vec::new(),
    }
}

fn verdict(id: &str, h: &History, f: &Facts, faults: &[FaultSpan]) -> Verdict {
    let spec = CheckSpec::default();
    let ev = Evidence {
        history: h,
        faults,
        facts: f,
        spec: &spec,
    };
    let (_, check) = CHECKERS
        .iter()
        .find(|(n, _)| *n == id)
        .expect("a checker of that name");
    check(&ev)
}

fn passes(id: &str, h: &History, f: &Facts) {
    let v = verdict(id, h, f, &[]);
    assert!(v.passed, "{id} should pass: {:?}", v.evidence);
}

fn fails(id: &str, h: &History, f: &Facts, faults: &[FaultSpan], needle: &str) {
    let v = verdict(id, h, f, faults);
    assert!(!v.passed, "{id} should fail: {:?}", v.evidence);
    assert!(
        v.evidence.iter().any(|e| e.contains(needle)),
        "{id}: evidence does not name {needle:?}: {:?}",
        v.evidence
    );
}

#[test]
fn every_checker_passes_the_clean_run() {
    let (h, f) = (history(), facts());
    for (id, _) in CHECKERS {
        passes(id, &h, &f);
    }
}

#[test]
fn a_pending_order_fails_terminal_orders() {
    let mut f = facts();
    f.orders[0].status = "pending".into();
    f.orders[0].saga = Some("charging: payment timeout".into());
    fails("terminal-orders", &history(), &f, &[], "o1");
    fails("acknowledged-orders", &history(), &f, &[], "still pending");
}

#[test]
fn lost_or_unmatched_stock_fails_stock_conservation() {
    let mut f = facts();
    f.products[1].available = 1;
    fails("stock-conservation", &history(), &f, &[], P2);
    let mut f = facts();
    f.products[0].sold = 3;
    f.products[0].available = 97;
    fails(
        "stock-conservation",
        &history(),
        &f,
        &[],
        "its reservations say",
    );
}

#[test]
fn money_kept_for_a_cancelled_order_fails_money_balance_and_cancelled_refunded() {
    let mut f = facts();
    f.ledger
        .retain(|l| !(l.order_id == "o2" && l.kind == "refund"));
    f.payments[1].status = "captured".into();
    fails("money-balance", &history(), &f, &[], "o2");
    fails("cancelled-refunded", &history(), &f, &[], "o2");
}

#[test]
fn a_confirmed_order_without_a_capture_fails_one_capture_per_confirmed() {
    let mut f = facts();
    f.ledger.retain(|l| l.order_id != "o3");
    f.payments.retain(|p| p.order_id != "o3");
    fails("one-capture-per-confirmed", &history(), &f, &[], "o3");
}

#[test]
fn two_captures_fail_no_double_charge() {
    let mut f = facts();
    f.ledger.push(LedgerRow {
        order_id: "o1".into(),
        kind: "capture".into(),
        amount_cents: 500,
    });
    fails("no-double-charge", &history(), &f, &[], "o1: 2 capture");
}

#[test]
fn a_missing_or_duplicate_notification_fails_one_confirmed_notification() {
    let mut f = facts();
    f.notifications.retain(|n| n.event_id != "o1-e");
    fails("one-confirmed-notification", &history(), &f, &[], "o1");
    let mut f = facts();
    f.notifications
        .push(event("o3-dup", "order.confirmed", "o3"));
    fails("one-confirmed-notification", &history(), &f, &[], "o3");
}

#[test]
fn an_event_stuck_in_the_outbox_or_never_delivered_fails_no_event_lost() {
    let mut f = facts();
    f.outbox[1].published = false;
    fails("no-event-lost", &history(), &f, &[], "still in the outbox");
    let mut f = facts();
    f.notifications.retain(|n| n.event_id != "o3-c");
    fails("no-event-lost", &history(), &f, &[], "never delivered");
}

#[test]
fn an_acknowledged_order_that_does_not_exist_fails_acknowledged_orders() {
    let mut f = facts();
    f.orders.retain(|o| o.id != "o1");
    fails("acknowledged-orders", &history(), &f, &[], "does not exist");
}

#[test]
fn two_orders_from_keyless_posts_beyond_what_was_sent_fail_post_at_most_once() {
    let mut f = facts();
    // Two keyless POSTs (one ok, one indeterminate) may make two orders; three may not.
    f.orders.push(order("o4", "confirmed", 0, None));
    passes("post-at-most-once", &history(), &f);
    f.orders.push(order("o5", "confirmed", 0, None));
    fails(
        "post-at-most-once",
        &history(),
        &f,
        &[],
        "3 orders without a key",
    );
}

#[test]
fn two_orders_for_one_key_fail_idempotency_key() {
    let mut f = facts();
    f.orders.push(order("o9", "cancelled", 0, Some("k2")));
    fails("idempotency-key", &history(), &f, &[], "k2");
    let mut h = history();
    if let Some(o) = h.ops[0].order.as_mut() {
        o.key = Some("k2".into());
    }
    fails("idempotency-key", &h, &facts(), &[], "different orders");
}

#[test]
fn a_negative_sample_fails_stock_never_negative() {
    let mut h = history();
    h.stock.push(StockSample {
        t_ms: 9_000,
        negative: vec![format!("product {P2} available -1 reserved 3 sold 0")],
        min_available: -1,
    });
    fails("stock-never-negative", &h, &facts(), &[], "available -1");
}

#[test]
fn retries_beyond_the_budget_fail_retry_budget() {
    let mut h = history();
    // 40 originals earn 8 retries, the reserve pays 10 + 10/s: 300 retries in 2 s cannot be paid.
    h.metrics
        .push(metrics(12_000, "gateway#1", "gateway", 440.0, 305.0, 5.0));
    fails("retry-budget", &h, &facts(), &[], "gateway#1");
}

#[test]
fn order_service_serving_more_posts_than_the_gateway_received_fails_no_post_retries() {
    let mut h = history();
    h.metrics.push(metrics(
        20_000,
        "order-service#1",
        "order-service",
        40.0,
        2.0,
        25.0,
    ));
    fails("no-post-retries", &h, &facts(), &[], "more than once");
}

#[test]
fn errors_while_one_replica_of_two_is_down_fail_replica_fault_masked() {
    let mut h = history();
    for i in 0..10 {
        let mut o = op(
            20 + i,
            OpKind::Browse,
            11_000 + i as u64 * 100,
            Outcome::Info,
            Some(502),
        );
        o.error = Some("upstream_error".into());
        h.ops.push(o);
    }
    let fault = FaultSpan {
        name: "f1".into(),
        kind: "kill SIGKILL".into(),
        targets: vec![("product-service".into(), Some(1))],
        from: Vec::new(),
        from_ms: 10_000,
        to_ms: Some(15_000),
        maskable: true,
    };
    fails(
        "replica-fault-masked",
        &h,
        &facts(),
        std::slice::from_ref(&fault),
        "product-service",
    );
    // The same errors while the whole service is down are not the balancer's to mask.
    let mut all = fault.clone();
    all.targets = vec![("product-service".into(), None)];
    let v = verdict("replica-fault-masked", &h, &facts(), &[all]);
    assert!(v.passed, "{:?}", v.evidence);
    // Nor while a fault is also on the service's database.
    let db = FaultSpan {
        name: "f2".into(),
        targets: vec![("postgres".into(), None)],
        ..fault.clone()
    };
    let v = verdict("replica-fault-masked", &h, &facts(), &[fault, db]);
    assert!(v.passed, "{:?}", v.evidence);
}

#[test]
fn an_instance_missing_or_a_breaker_still_open_fails_instances_rejoin() {
    let mut f = facts();
    f.registered.insert("product-service".into(), 1);
    fails(
        "instances-rejoin",
        &history(),
        &f,
        &[],
        "2 replicas running, 1 registered",
    );
    let mut f = facts();
    f.upstreams[0].breaker = "open".into();
    fails("instances-rejoin", &history(), &f, &[], "breaker open");
    // Half-open admits the next request: in rotation, and said so.
    let mut f = facts();
    f.upstreams[0].breaker = "half_open".into();
    let v = verdict("instances-rejoin", &history(), &f, &[]);
    assert!(
        v.passed && v.evidence.iter().any(|e| e.contains("half-open")),
        "{:?}",
        v.evidence
    );
}

#[test]
fn an_accepted_logged_out_token_fails_unless_redis_was_faulted_then() {
    let mut h = history();
    h.ops[8] = probe(8, 20_000, ProbeToken::Revoked, "/api/v1/users/me", true);
    fails(
        "revoked-token-refused",
        &h,
        &facts(),
        &[],
        "logged-out token",
    );
    let redis = FaultSpan {
        name: "f1".into(),
        kind: "pause".into(),
        targets: vec![("redis".into(), None)],
        from: Vec::new(),
        from_ms: 19_000,
        to_ms: Some(25_000),
        maskable: true,
    };
    let v = verdict("revoked-token-refused", &h, &facts(), &[redis]);
    assert!(v.passed, "{:?}", v.evidence);
}

#[test]
fn an_accepted_expired_token_fails_expired_token_refused() {
    let mut h = history();
    h.ops[10] = probe(10, 21_000, ProbeToken::Expired, "/api/v1/orders", true);
    fails("expired-token-refused", &h, &facts(), &[], "expired token");
}

// A read that failed (a pool hung after a partition) once made every product look
// unbalanced: the verdict must fail for the read alone.
#[test]
fn a_database_that_could_not_be_read_fails_without_made_up_violations() {
    let mut f = facts();
    f.missing
        .push("product-service's database: query timed out after 10s".into());
    f.reservations.clear();
    let v = verdict("stock-conservation", &history(), &f, &[]);
    assert!(!v.passed);
    assert!(
        v.evidence
            .iter()
            .any(|e| e.contains("could not read product-service")),
        "{:?}",
        v.evidence
    );
    assert!(
        !v.evidence
            .iter()
            .any(|e| e.contains("its reservations say")),
        "{:?}",
        v.evidence
    );
}

// The settle loop stops early only when nothing it waits for could still change a verdict:
// a failed history check is final, an unsettled saga or a read that failed is not.
#[test]
fn only_a_failure_settling_cannot_mend_is_final() {
    let mut h = history();
    h.ops[10] = probe(10, 21_000, ProbeToken::Expired, "/api/v1/orders", true);
    let v = verdict("expired-token-refused", &h, &facts(), &[]);
    assert!(super::is_final_failure(&v), "{v:?}");

    let mut f = facts();
    f.orders[0].status = "pending".into();
    let v = verdict("terminal-orders", &history(), &f, &[]);
    assert!(!v.passed && !super::is_final_failure(&v), "{v:?}");

    let mut f = facts();
    f.missing
        .push("order-service's database: query timed out after 10s".into());
    let v = verdict("idempotency-key", &history(), &f, &[]);
    assert!(
        !v.passed && v.is_unread() && !super::is_final_failure(&v),
        "{v:?}"
    );

    let v = verdict("idempotency-key", &history(), &facts(), &[]);
    assert!(v.passed && !super::is_final_failure(&v));

    // Balances are final only once no saga is left: every order terminal.
    let spec = CheckSpec::default();
    let h = history();
    let quiet = |f: &Facts| {
        super::quiescent(&Evidence {
            history: &h,
            faults: &[],
            facts: f,
            spec: &spec,
        })
    };
    assert!(quiet(&facts()));
    let mut f = facts();
    f.orders[0].status = "pending".into();
    assert!(!quiet(&f));
    let mut f = facts();
    f.missing
        .push("order-service's database: query timed out after 10s".into());
    assert!(!quiet(&f));
    for id in super::FINAL_CHECKERS {
        assert!(super::is_checker(id), "{id} is not a checker");
    }
}

#[test]
fn sends_beyond_calls_or_calls_beyond_forwarded_requests_fail_attempts_per_call() {
    // The gateway re-sends failing requests around its client: 60 more calls than it
    // forwarded client requests.
    let mut h = history();
    let mut m = metrics(20_000, "gateway#1", "gateway", 200.0, 10.0, 8.0);
    m.forwarded = 130.0;
    h.metrics.push(m);
    fails(
        "attempts-per-call",
        &h,
        &facts(),
        &[],
        "sent upstream again",
    );
    // A client that attempts again without counting a retry.
    let mut h = history();
    let mut m = metrics(20_000, "order-service#1", "order-service", 140.0, 2.0, 9.0);
    m.calls = 60.0;
    h.metrics.push(m);
    fails(
        "attempts-per-call",
        &h,
        &facts(),
        &[],
        "neither a call's first",
    );
    // An image that does not count calls is not judged, and not failed.
    let mut h = history();
    for m in &mut h.metrics {
        m.calls = 0.0;
        m.forwarded = 0.0;
    }
    let v = verdict("attempts-per-call", &h, &facts(), &[]);
    assert!(v.passed, "{v:?}");
    assert!(v.evidence[0].contains("not judged"), "{v:?}");
}
