//! DESIGN §5's invariants over the run's rows: every order terminal, stock conserved, money
//! balanced, one capture and one `order.confirmed` notification per confirmed order, every
//! charge of a cancelled order refunded, no event lost.

use std::collections::{BTreeMap, BTreeSet};

use super::{Evidence, Verdict};

/// A checker that could not read what it needs fails, saying so, and draws no conclusion
/// from the rest (half-read rows would make up violations).
/// How the invariant of a checker that could not read its rows begins.
pub(crate) const UNREAD: &str = "not judged:";

pub(crate) fn unread(checker: &str, missing: Vec<String>) -> Verdict {
    Verdict::from_violations(
        checker,
        &format!("{UNREAD} the rows it needs could not be read"),
        "the rows could not be read".into(),
        missing,
    )
}

pub(crate) fn missing_for(ev: &Evidence<'_>, components: &[&str]) -> Vec<String> {
    ev.facts
        .missing
        .iter()
        .filter(|m| components.iter().any(|c| m.starts_with(c)))
        .map(|m| format!("could not read {m}"))
        .collect()
}

/// Every order of the run ends `confirmed` or `cancelled`.
pub fn terminal_orders(ev: &Evidence<'_>) -> Verdict {
    let mut v = missing_for(ev, &["order-service"]);
    if !v.is_empty() {
        return unread("terminal-orders", v);
    }
    for o in &ev.facts.orders {
        if o.status != "confirmed" && o.status != "cancelled" {
            v.push(format!(
                "order {} is {} (saga: {})",
                o.id,
                o.status,
                o.saga.as_deref().unwrap_or("?")
            ));
        }
    }
    Verdict::from_violations(
        "terminal-orders",
        "every order reaches confirmed or cancelled",
        format!("{} orders of the run's users", ev.facts.orders.len()),
        v,
    )
}

/// initial stock = available + reserved + sold for each product of the run, and reserved /
/// sold agree with the reservations.
pub fn stock_conservation(ev: &Evidence<'_>) -> Verdict {
    let mut v = missing_for(ev, &["product-service"]);
    if !v.is_empty() {
        return unread("stock-conservation", v);
    }
    let mut held: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for r in &ev.facts.reservations {
        let e = held.entry(r.product_id.as_str()).or_default();
        match r.status.as_str() {
            "reserved" => e.0 += r.quantity,
            "committed" => e.1 += r.quantity,
            _ => {}
        }
    }
    for p in &ev.history.products {
        let Some(row) = ev.facts.products.iter().find(|r| r.id == p.id) else {
            if v.is_empty() {
                v.push(format!("product {} is missing from the database", p.id));
            }
            continue;
        };
        let total = row.available + row.reserved + row.sold;
        if total != p.stock {
            v.push(format!(
                "product {}: created with {} but available {} + reserved {} + sold {} = {total}",
                p.id, p.stock, row.available, row.reserved, row.sold
            ));
        }
        let (reserved, sold) = held.get(p.id.as_str()).copied().unwrap_or_default();
        if reserved != row.reserved || sold != row.sold {
            v.push(format!(
                "product {}: counters say reserved {} sold {}, its reservations say reserved {reserved} sold {sold}",
                p.id, row.reserved, row.sold
            ));
        }
    }
    Verdict::from_violations(
        "stock-conservation",
        "for every product, initial stock = available + reserved + sold, and reserved/sold match the reservations",
        format!(
            "{} products, {} reservation lines",
            ev.history.products.len(),
            ev.facts.reservations.len()
        ),
        v,
    )
}

/// Σ captured − Σ refunded over the run's orders = Σ totals of the confirmed ones.
pub fn money_balance(ev: &Evidence<'_>) -> Verdict {
    let mut v = missing_for(ev, &["payment-service", "order-service"]);
    if !v.is_empty() {
        return unread("money-balance", v);
    }
    let mut net: BTreeMap<&str, i64> = BTreeMap::new();
    for l in &ev.facts.ledger {
        let e = net.entry(l.order_id.as_str()).or_default();
        match l.kind.as_str() {
            "capture" => *e += l.amount_cents,
            "refund" => *e -= l.amount_cents,
            _ => {}
        }
    }
    let mut captured = 0i64;
    let mut expected = 0i64;
    for o in &ev.facts.orders {
        let n = net.get(o.id.as_str()).copied().unwrap_or(0);
        captured += n;
        let want = if o.status == "confirmed" {
            o.total_cents
        } else {
            0
        };
        expected += want;
        if n != want && o.status != "pending" {
            v.push(format!(
                "order {} ({}): captured − refunded = {n}, expected {want}",
                o.id, o.status
            ));
        }
    }
    Verdict::from_violations(
        "money-balance",
        "money captured − refunded = sum of confirmed order totals",
        format!("captured − refunded {captured}, confirmed totals {expected}"),
        v,
    )
}

/// A confirmed order has exactly one capture and a payment in state `captured`.
pub fn one_capture_per_confirmed(ev: &Evidence<'_>) -> Verdict {
    let mut v = missing_for(ev, &["payment-service", "order-service"]);
    if !v.is_empty() {
        return unread("one-capture-per-confirmed", v);
    }
    let captures = count(
        ev.facts
            .ledger
            .iter()
            .filter(|l| l.kind == "capture")
            .map(|l| l.order_id.as_str()),
    );
    let confirmed: Vec<_> = ev
        .facts
        .orders
        .iter()
        .filter(|o| o.status == "confirmed")
        .collect();
    for o in &confirmed {
        let n = captures.get(o.id.as_str()).copied().unwrap_or(0);
        let status = ev
            .facts
            .payments
            .iter()
            .find(|p| p.order_id == o.id)
            .map(|p| p.status.as_str())
            .unwrap_or("none");
        if n != 1 || status != "captured" {
            v.push(format!(
                "confirmed order {}: {n} capture(s), payment {status}",
                o.id
            ));
        }
    }
    Verdict::from_violations(
        "one-capture-per-confirmed",
        "a confirmed order has exactly one captured payment",
        format!("{} confirmed orders", confirmed.len()),
        v,
    )
}

/// A cancelled order keeps no money: any capture was refunded.
pub fn cancelled_refunded(ev: &Evidence<'_>) -> Verdict {
    let mut v = missing_for(ev, &["payment-service", "order-service"]);
    if !v.is_empty() {
        return unread("cancelled-refunded", v);
    }
    let cancelled: Vec<_> = ev
        .facts
        .orders
        .iter()
        .filter(|o| o.status == "cancelled")
        .collect();
    let mut charged = 0;
    for o in &cancelled {
        let kinds: Vec<&str> = ev
            .facts
            .ledger
            .iter()
            .filter(|l| l.order_id == o.id)
            .map(|l| l.kind.as_str())
            .collect();
        let captured = kinds.contains(&"capture");
        charged += usize::from(captured);
        let refunded = kinds.contains(&"refund");
        let status = ev
            .facts
            .payments
            .iter()
            .find(|p| p.order_id == o.id)
            .map(|p| p.status.as_str());
        if (captured && !refunded) || status == Some("captured") {
            v.push(format!(
                "cancelled order {} ({}): ledger {:?}, payment {}",
                o.id,
                o.reason.as_deref().unwrap_or("no reason"),
                kinds,
                status.unwrap_or("none")
            ));
        }
    }
    Verdict::from_violations(
        "cancelled-refunded",
        "every cancellation after a charge is refunded",
        format!(
            "{} cancelled orders, {charged} of them charged",
            cancelled.len()
        ),
        v,
    )
}

/// No order is captured (or refunded) twice.
pub fn no_double_charge(ev: &Evidence<'_>) -> Verdict {
    let mut v = missing_for(ev, &["payment-service"]);
    if !v.is_empty() {
        return unread("no-double-charge", v);
    }
    let by = count(
        ev.facts
            .ledger
            .iter()
            .map(|l| (l.order_id.as_str(), l.kind.as_str())),
    );
    for ((order, kind), n) in &by {
        if *n > 1 {
            v.push(format!("order {order}: {n} {kind} rows"));
        }
    }
    Verdict::from_violations(
        "no-double-charge",
        "no order is charged (or refunded) twice",
        format!("{} ledger rows", ev.facts.ledger.len()),
        v,
    )
}

/// A confirmed order has exactly one `order.confirmed` notification; others none.
pub fn one_confirmed_notification(ev: &Evidence<'_>) -> Verdict {
    let mut v = missing_for(ev, &["notification-service", "order-service"]);
    if !v.is_empty() {
        return unread("one-confirmed-notification", v);
    }
    let n = count(
        ev.facts
            .notifications
            .iter()
            .filter(|e| e.event_type == "order.confirmed")
            .map(|e| e.order_id.as_str()),
    );
    for o in &ev.facts.orders {
        let got = n.get(o.id.as_str()).copied().unwrap_or(0);
        let want = usize::from(o.status == "confirmed");
        if got != want {
            v.push(format!(
                "order {} ({}): {got} order.confirmed notification(s), expected {want}",
                o.id, o.status
            ));
        }
    }
    Verdict::from_violations(
        "one-confirmed-notification",
        "a confirmed order has exactly one order.confirmed notification",
        format!("{} notifications", ev.facts.notifications.len()),
        v,
    )
}

/// Every event written to the outbox was published and delivered (one notification per
/// event id); every order has its `order.created` and terminal event.
pub fn no_event_lost(ev: &Evidence<'_>) -> Verdict {
    let mut v = missing_for(ev, &["notification-service", "order-service"]);
    if !v.is_empty() {
        return unread("no-event-lost", v);
    }
    let delivered: BTreeSet<&str> = ev
        .facts
        .notifications
        .iter()
        .map(|e| e.event_id.as_str())
        .collect();
    let mut unpublished = 0;
    for e in &ev.facts.outbox {
        if !e.published {
            unpublished += 1;
            v.push(format!(
                "event {} ({} of order {}) is still in the outbox",
                e.event_id, e.event_type, e.order_id
            ));
        } else if !delivered.contains(e.event_id.as_str()) {
            v.push(format!(
                "event {} ({} of order {}) was published but never delivered",
                e.event_id, e.event_type, e.order_id
            ));
        }
    }
    let kinds: BTreeSet<(&str, &str)> = ev
        .facts
        .outbox
        .iter()
        .map(|e| (e.order_id.as_str(), e.event_type.as_str()))
        .collect();
    for o in &ev.facts.orders {
        if !kinds.contains(&(o.id.as_str(), "order.created")) {
            v.push(format!(
                "order {}: no order.created event was written",
                o.id
            ));
        }
        let terminal = format!("order.{}", o.status);
        if o.status != "pending" && !kinds.contains(&(o.id.as_str(), terminal.as_str())) {
            v.push(format!(
                "order {} is {} but no {terminal} event was written",
                o.id, o.status
            ));
        }
    }
    Verdict::from_violations(
        "no-event-lost",
        "no event is lost: every outbox event is published and delivered once",
        format!(
            "{} outbox events ({unpublished} unpublished), {} delivered",
            ev.facts.outbox.len(),
            delivered.len()
        ),
        v,
    )
}

fn count<K: Ord>(items: impl Iterator<Item = K>) -> BTreeMap<K, usize> {
    let mut m = BTreeMap::new();
    for k in items {
        *m.entry(k).or_default() += 1;
    }
    m
}
