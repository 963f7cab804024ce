//! What the checkers read from the stack after a workload: the run's orders, sagas, outbox,
//! payments, ledger, notifications, products and reservations (from each service's own
//! database), the registry's instances and the gateway's upstreams. Only rows of the
//! workload's own users and products are read, so earlier runs on the same stack do not
//! blur the evidence.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::environment::Environment;
use crate::sql::{Databases, Row};
use crate::workload::History;

/// One order row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrderRow {
    /// Id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// `pending`, `confirmed`, `cancelled`.
    pub status: String,
    /// Cancellation reason.
    pub reason: Option<String>,
    /// Total.
    pub total_cents: i64,
    /// `Idempotency-Key`.
    pub key: Option<String>,
    /// Saga state and last error (for orders not terminal).
    pub saga: Option<String>,
}

/// One outbox event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventRow {
    /// Event id.
    pub event_id: String,
    /// `order.created`, …
    pub event_type: String,
    /// Order.
    pub order_id: String,
    /// Published to the broker (outbox rows); always true for notifications.
    pub published: bool,
}

/// One payment (the idempotency record per order).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PaymentRow {
    /// Order.
    pub order_id: String,
    /// `captured`, `declined`, `refunded`, `voided`.
    pub status: String,
    /// Amount.
    pub amount_cents: i64,
}

/// One money movement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LedgerRow {
    /// Order.
    pub order_id: String,
    /// `capture` or `refund`.
    pub kind: String,
    /// Amount.
    pub amount_cents: i64,
}

/// One product's counters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProductRow {
    /// Id.
    pub id: String,
    /// Available.
    pub available: i64,
    /// Reserved.
    pub reserved: i64,
    /// Sold.
    pub sold: i64,
}

/// One reservation line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ReservationRow {
    /// Order.
    pub order_id: String,
    /// `reserved`, `committed`, `released`, `rejected`.
    pub status: String,
    /// Product.
    pub product_id: String,
    /// Quantity.
    pub quantity: i64,
}

/// One gateway upstream instance.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpstreamRow {
    /// Service.
    pub service: String,
    /// Instance id.
    pub instance: String,
    /// `closed`, `open`, `half_open`.
    pub breaker: String,
}

/// Everything read after a workload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// Orders of the run's users.
    pub orders: Vec<OrderRow>,
    /// Their outbox events.
    pub outbox: Vec<EventRow>,
    /// Their notifications.
    pub notifications: Vec<EventRow>,
    /// Their payments.
    pub payments: Vec<PaymentRow>,
    /// Their ledger rows.
    pub ledger: Vec<LedgerRow>,
    /// The run's products.
    pub products: Vec<ProductRow>,
    /// Reservation lines of the run's products.
    pub reservations: Vec<ReservationRow>,
    /// Service → healthy instances in the registry.
    pub registered: BTreeMap<String, u32>,
    /// Component → running replicas that expose metrics (what should be registered).
    pub running: BTreeMap<String, u32>,
    /// The gateway's upstream instances.
    pub upstreams: Vec<UpstreamRow>,
    /// Component → the components it depends on (from the stack file).
    pub depends: BTreeMap<String, Vec<String>>,
    /// What could not be read (each makes the checkers that need it fail).
    pub missing: Vec<String>,
}

fn text(r: &Row, k: &str) -> String {
    match r.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

fn opt_text(r: &Row, k: &str) -> Option<String> {
    match r.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        _ => None,
    }
}

fn int(r: &Row, k: &str) -> i64 {
    match r.get(k) {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn quoted(ids: impl Iterator<Item = String>) -> String {
    let list: Vec<String> = ids
        // Ids come from our own workload; keep anything else out of the SQL text anyway.
        .filter(|s| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .map(|s| format!("'{s}'"))
        .collect();
    if list.is_empty() {
        "NULL".into()
    } else {
        list.join(",")
    }
}

struct Reader<'a> {
    env: &'a dyn Environment,
    db: &'a Databases,
    missing: Vec<String>,
}

impl Reader<'_> {
    async fn rows(&mut self, component: &str, query: String) -> Vec<Row> {
        let res = match self.env.database_url(component) {
            Ok(url) => self.db.rows(&url, &query).await,
            Err(e) => Err(e.0),
        };
        res.unwrap_or_else(|e| {
            self.missing.push(format!("{component}'s database: {e}"));
            Vec::new()
        })
    }
}

/// Reads the facts of `history`'s run.
pub async fn gather(
    env: &dyn Environment,
    db: &Databases,
    history: &History,
    admin_token: &str,
) -> Facts {
    let mut r = Reader {
        env,
        db,
        missing: Vec::new(),
    };
    let users = quoted(history.users.iter().map(|u| u.user_id.clone()));
    let mut facts = Facts::default();
    let orders = r
        .rows(
            "order-service",
            format!(
                "SELECT o.id::text AS id, o.user_id, o.status, o.reason, COALESCE(o.total_cents, 0) AS total_cents, \
                 o.idempotency_key, CASE WHEN o.status = 'pending' THEN s.state || COALESCE(': ' || s.last_error, '') END AS saga \
                 FROM orders o LEFT JOIN sagas s ON s.order_id = o.id WHERE o.user_id IN ({users}) ORDER BY o.created_at"
            ),
        )
        .await;
    facts.orders = orders
        .iter()
        .map(|o| OrderRow {
            id: text(o, "id"),
            user_id: text(o, "user_id"),
            status: text(o, "status"),
            reason: opt_text(o, "reason"),
            total_cents: int(o, "total_cents"),
            key: opt_text(o, "idempotency_key"),
            saga: opt_text(o, "saga"),
        })
        .collect();
    let ids = quoted(facts.orders.iter().map(|o| o.id.clone()));
    let products = quoted(history.products.iter().map(|p| p.id.clone()));
    let outbox = r
        .rows(
            "order-service",
            format!("SELECT event_id::text AS event_id, event_type, order_id::text AS order_id, published_at IS NOT NULL AS published FROM outbox WHERE order_id IN ({ids})"),
        )
        .await;
    facts.outbox = outbox.iter().map(event).collect();
    let notes = r
        .rows(
            "notification-service",
            format!("SELECT event_id::text AS event_id, event_type, order_id::text AS order_id, true AS published FROM notifications WHERE order_id IN ({ids})"),
        )
        .await;
    facts.notifications = notes.iter().map(event).collect();
    let payments = r
        .rows(
            "payment-service",
            format!("SELECT order_id::text AS order_id, status, amount_cents FROM payments WHERE order_id IN ({ids})"),
        )
        .await;
    facts.payments = payments
        .iter()
        .map(|p| PaymentRow {
            order_id: text(p, "order_id"),
            status: text(p, "status"),
            amount_cents: int(p, "amount_cents"),
        })
        .collect();
    let ledger = r
        .rows(
            "payment-service",
            format!("SELECT order_id::text AS order_id, kind, amount_cents FROM ledger WHERE order_id IN ({ids})"),
        )
        .await;
    facts.ledger = ledger
        .iter()
        .map(|l| LedgerRow {
            order_id: text(l, "order_id"),
            kind: text(l, "kind"),
            amount_cents: int(l, "amount_cents"),
        })
        .collect();
    let rows = r
        .rows(
            "product-service",
            format!("SELECT id::text AS id, available, reserved, sold FROM products WHERE id IN ({products})"),
        )
        .await;
    facts.products = rows
        .iter()
        .map(|p| ProductRow {
            id: text(p, "id"),
            available: int(p, "available"),
            reserved: int(p, "reserved"),
            sold: int(p, "sold"),
        })
        .collect();
    let rows = r
        .rows(
            "product-service",
            format!(
                "SELECT r.order_id::text AS order_id, r.status, i.product_id::text AS product_id, i.quantity \
                 FROM reservation_items i JOIN reservations r USING (order_id) WHERE i.product_id IN ({products})"
            ),
        )
        .await;
    facts.reservations = rows
        .iter()
        .map(|x| ReservationRow {
            order_id: text(x, "order_id"),
            status: text(x, "status"),
            product_id: text(x, "product_id"),
            quantity: int(x, "quantity"),
        })
        .collect();
    let mut missing = r.missing;
    for t in env.metrics_targets() {
        *facts.running.entry(t.component).or_default() += 1;
    }
    let names: Vec<String> = facts.running.keys().cloned().collect();
    for c in names {
        let deps = env.depends_on(&c);
        facts.depends.insert(c, deps);
    }
    registry_view(env, &mut facts, &mut missing).await;
    upstreams_view(env, admin_token, &mut facts, &mut missing).await;
    facts.missing = missing;
    facts
}

fn event(r: &Row) -> EventRow {
    EventRow {
        event_id: text(r, "event_id"),
        event_type: text(r, "event_type"),
        order_id: text(r, "order_id"),
        published: r.get("published").and_then(Value::as_bool).unwrap_or(false),
    }
}

fn http() -> Option<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(std::time::Duration::from_secs(5))
        .build()
        .ok()
}

async fn get_json(url: String, token: Option<&str>) -> Result<Value, String> {
    let client = http().ok_or("cannot build an HTTP client")?;
    let mut req = client.get(&url);
    if let Some(t) = token {
        req = req.header("X-Admin-Token", t);
    }
    let resp = req.send().await.map_err(|e| format!("{url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url}: status {}", resp.status()));
    }
    resp.json().await.map_err(|e| format!("{url}: {e}"))
}

async fn registry_view(env: &dyn Environment, facts: &mut Facts, missing: &mut Vec<String>) {
    let addr = match env.endpoint("registry", None) {
        Ok(a) => a,
        Err(e) => return missing.push(format!("registry: {}", e.0)),
    };
    let services: Vec<String> = facts
        .running
        .keys()
        .filter(|c| c.as_str() != "registry")
        .cloned()
        .collect();
    for s in services {
        match get_json(format!("http://{addr}/v1/services/{s}"), None).await {
            Ok(v) => {
                let n = v
                    .get("instances")
                    .and_then(Value::as_array)
                    .map(|a| a.len())
                    .or_else(|| v.as_array().map(|a| a.len()))
                    .unwrap_or(0);
                facts
                    .registered
                    .insert(s, u32::try_from(n).unwrap_or(u32::MAX));
            }
            // 404: the registry knows no instance of it.
            Err(e) if e.ends_with("404 Not Found") => {
                facts.registered.insert(s, 0);
            }
            Err(e) => missing.push(format!("registry: {e}")),
        }
    }
}

async fn upstreams_view(
    env: &dyn Environment,
    admin_token: &str,
    facts: &mut Facts,
    missing: &mut Vec<String>,
) {
    let addr = match env.endpoint("gateway", Some(9000)) {
        Ok(a) => a,
        Err(e) => return missing.push(format!("gateway admin port: {}", e.0)),
    };
    match get_json(format!("http://{addr}/admin/upstreams"), Some(admin_token)).await {
        Ok(v) => facts.upstreams = parse_upstreams(&v),
        Err(e) => missing.push(format!("gateway upstreams: {e}")),
    }
}

/// Reads `GET /admin/upstreams`: `{services: {name: {instances: [{id, breaker, …}]}}}` or a
/// list of services with `name` and `instances`.
pub fn parse_upstreams(v: &Value) -> Vec<UpstreamRow> {
    let mut out = Vec::new();
    let services: Vec<(String, &Value)> = match v.get("services").unwrap_or(v) {
        Value::Object(m) => m.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(a) => a
            .iter()
            .map(|s| {
                (
                    s.get("service")
                        .or_else(|| s.get("name"))
                        .and_then(Value::as_str)
                        .unwrap_or("?")
                        .to_string(),
                    s,
                )
            })
            .collect(),
        _ => Vec::new(),
    };
    for (name, s) in services {
        for i in s
            .get("instances")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.push(UpstreamRow {
                service: name.clone(),
                instance: i
                    .get("id")
                    .or_else(|| i.get("instance"))
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string(),
                breaker: i
                    .get("breaker")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string(),
            });
        }
    }
    out
}
