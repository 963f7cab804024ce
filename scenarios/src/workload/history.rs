//! The operation history of a workload, Jepsen style: every client operation with its
//! invocation and completion time and an outcome that is `ok`, `fail` (it certainly did not
//! happen) or `info` (indeterminate: a timeout, a reset, a 502/504 — it may have happened).
//! Checkers read only this, the databases and the metrics samples, so a history saved in a
//! report can be checked again.

use serde::{Deserialize, Serialize};

/// How an operation ended, as the client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It happened (a 2xx answer).
    Ok,
    /// It certainly did not happen: refused before reaching the service (connection
    /// refused, 4xx, the gateway's own 503).
    Fail,
    /// Unknown: it may or may not have taken effect (timeout, reset, 5xx from upstream).
    Info,
}

impl Outcome {
    /// The word used in reports.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Fail => "fail",
            Outcome::Info => "info",
        }
    }
}

/// What an operation was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    /// `POST /api/v1/users/register`.
    Register,
    /// `POST /api/v1/users/login`.
    Login,
    /// `POST /api/v1/users/logout`.
    Logout,
    /// `GET /api/v1/products…`.
    Browse,
    /// `POST /api/v1/orders`.
    PlaceOrder,
    /// `GET /api/v1/orders/{id}`.
    GetOrder,
    /// `GET /api/v1/orders`.
    ListOrders,
    /// `GET /api/v1/notifications`.
    Notifications,
    /// A request made with a token that must be refused (logged out or expired).
    AuthProbe,
}

impl OpKind {
    /// Snake-case name, as in reports.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Register => "register",
            OpKind::Login => "login",
            OpKind::Logout => "logout",
            OpKind::Browse => "browse",
            OpKind::PlaceOrder => "place_order",
            OpKind::GetOrder => "get_order",
            OpKind::ListOrders => "list_orders",
            OpKind::Notifications => "notifications",
            OpKind::AuthProbe => "auth_probe",
        }
    }

    /// The gateway route (and so the service) the operation goes to.
    pub fn route(self) -> &'static str {
        match self {
            OpKind::Register | OpKind::Login | OpKind::Logout => "users",
            OpKind::Browse => "products",
            OpKind::PlaceOrder | OpKind::GetOrder | OpKind::ListOrders => "orders",
            OpKind::Notifications => "notifications",
            OpKind::AuthProbe => "users",
        }
    }
}

/// One line of an order as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// Product id.
    pub product: String,
    /// Quantity.
    pub quantity: u32,
}

/// The order-specific part of a `place_order` operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderAttempt {
    /// `Idempotency-Key` sent, if any.
    pub key: Option<String>,
    /// Lines.
    pub lines: Vec<Line>,
    /// Paid with the card that payment-service declines.
    pub declining_card: bool,
    /// Order id from a 202 answer.
    pub order_id: Option<String>,
    /// This POST repeats the operation at this index with the same key (an ambiguous answer
    /// retried, as a careful client does).
    pub retry_of: Option<usize>,
}

/// Which kind of token an auth probe used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProbeToken {
    /// A token whose session was logged out.
    Revoked,
    /// A correctly signed token whose `exp` has passed.
    Expired,
}

/// The probe-specific part of an `auth_probe` operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// The token used.
    pub token: ProbeToken,
    /// Method and path asked for.
    pub request: String,
    /// The request was answered with a 2xx: the token was accepted.
    pub accepted: bool,
}

/// One client operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Op {
    /// Position in the history (ops are sorted by invocation time).
    pub index: usize,
    /// Client number (0-based).
    pub client: u32,
    /// What it was.
    pub kind: OpKind,
    /// Invocation, ms since the workload started.
    pub invoke_ms: u64,
    /// Completion, ms since the workload started.
    pub complete_ms: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// HTTP status, when there was an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `X-Request-Id` of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The user the client acted as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Order details (`place_order`, `get_order`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<OrderAttempt>,
    /// Probe details (`auth_probe`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<Probe>,
    /// The error or the answer's `code`, when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Op {
    /// Latency in ms.
    pub fn latency_ms(&self) -> u64 {
        self.complete_ms.saturating_sub(self.invoke_ms)
    }
}

/// A user a client registered.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserRecord {
    /// Client number.
    pub client: u32,
    /// Id from the register answer.
    pub user_id: String,
    /// Email used.
    pub email: String,
}

/// A product the workload created for itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProductRecord {
    /// Id.
    pub id: String,
    /// Stock it was created with.
    pub stock: i64,
    /// Price.
    pub price_cents: i64,
    /// Few in stock, so that reservations contend.
    pub scarce: bool,
}

/// The workload's products' stock at one moment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StockSample {
    /// ms since the workload started.
    pub t_ms: u64,
    /// Products whose available, reserved or sold counter was negative, with the values.
    pub negative: Vec<String>,
    /// Smallest `available` seen.
    pub min_available: i64,
}

/// The retry counters of one client instance (a gateway or service replica) at one moment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MetricsSample {
    /// ms since the workload started.
    pub t_ms: u64,
    /// `component#replica`.
    pub instance: String,
    /// Component.
    pub component: String,
    /// Σ `upstream_requests_total` (every attempt to any upstream).
    pub attempts: f64,
    /// Σ `upstream_retries_total`.
    pub retries: f64,
    /// `http_requests_total{method="POST",route="/api/v1/orders"}` summed over statuses:
    /// order POSTs this instance served.
    pub order_posts: f64,
    /// Σ `upstream_calls_total`: requests its client made, one per call before attempts
    /// (0 where the image does not count them).
    #[serde(default)]
    pub calls: f64,
    /// `gateway_forwarded_total`: client requests a gateway forwarded (0 elsewhere).
    #[serde(default)]
    pub forwarded: f64,
}

/// Everything a workload run recorded.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct History {
    /// Wall-clock start, RFC 3339.
    pub started_at: String,
    /// Seconds from the scenario's start to the workload's start (to line up with faults).
    pub offset_s: f64,
    /// Planned length, seconds.
    pub duration_s: f64,
    /// Clients.
    pub clients: u32,
    /// Operations, by invocation time.
    pub ops: Vec<Op>,
    /// Users registered.
    pub users: Vec<UserRecord>,
    /// Products created for the run.
    pub products: Vec<ProductRecord>,
    /// Stock samples.
    pub stock: Vec<StockSample>,
    /// Retry-counter samples of every client instance.
    pub metrics: Vec<MetricsSample>,
    /// Problems of the workload itself (a sampler that could not reach a database).
    pub notes: Vec<String>,
}

impl History {
    /// Operations of one kind.
    pub fn of(&self, kind: OpKind) -> impl Iterator<Item = &Op> {
        self.ops.iter().filter(move |o| o.kind == kind)
    }

    /// Order ids acknowledged with 202.
    pub fn acknowledged(&self) -> impl Iterator<Item = (&Op, &str)> {
        self.of(OpKind::PlaceOrder).filter_map(|o| {
            (o.outcome == Outcome::Ok)
                .then_some(())
                .and(o.order.as_ref()?.order_id.as_deref())
                .map(|id| (o, id))
        })
    }
}
