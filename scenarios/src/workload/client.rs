//! One workload client: a user of the shop with its own seeded choices, recording each
//! operation it makes.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::history::{Line, Op, OpKind, OrderAttempt, Outcome, Probe, ProbeToken, UserRecord};
use super::{hash_str, mix, pick, ProductRecord, WorkloadSpec};
use crate::environment::Environment;

/// The card payment-service always accepts.
pub const GOOD_CARD: &str = "4242424242424242";
/// The card payment-service always declines.
pub const DECLINING_CARD: &str = "4000000000000002";

/// What every client of one workload shares.
pub struct Shared {
    /// Where the gateway is.
    pub env: Arc<dyn Environment>,
    /// Pooled HTTP client.
    pub http: reqwest::Client,
    /// The step's parameters.
    pub spec: WorkloadSpec,
    /// The scenario run id (in emails and keys, so runs never collide).
    pub run_id: String,
    /// The run's products.
    pub products: Vec<ProductRecord>,
    /// Clock origin of the history.
    pub started: Instant,
    /// No operation starts after this.
    pub deadline: Instant,
}

/// What a client hands back.
pub struct ClientOutput {
    /// Its operations (indexes are per client until the history is merged).
    pub ops: Vec<Op>,
    /// The user it registered.
    pub user: Option<UserRecord>,
}

/// The answer to one request, classified.
struct Answer {
    outcome: Outcome,
    status: Option<u16>,
    request_id: Option<String>,
    body: Value,
    error: Option<String>,
}

/// How a transport error or status maps to an outcome. A refused connection and a 4xx
/// certainly did nothing; the gateway's own 503s (no instance, breaker open) and 429 were
/// never forwarded; anything else that is not 2xx may have taken effect upstream.
pub fn classify(status: Option<u16>, code: Option<&str>, connect_refused: bool) -> Outcome {
    match status {
        Some(s) if (200..300).contains(&s) => Outcome::Ok,
        Some(s) if (400..500).contains(&s) => Outcome::Fail,
        Some(503) if matches!(code, Some("no_instances" | "upstream_unavailable")) => Outcome::Fail,
        Some(_) => Outcome::Info,
        None if connect_refused => Outcome::Fail,
        None => Outcome::Info,
    }
}

/// Operations a client chooses between (the session cycle is logout, probe, login).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    Browse,
    Product,
    Order,
    GetOrder,
    ListOrders,
    Notifications,
    SessionCycle,
    ExpiredProbe,
}

/// One client.
pub struct Client {
    shared: Arc<Shared>,
    n: u32,
    rng: StdRng,
    ops: Vec<Op>,
    email: String,
    password: String,
    user_id: Option<String>,
    token: Option<String>,
    orders: Vec<String>,
    seq: u32,
}

impl Client {
    /// Client `n` of the workload; its choices come from the workload seed and `n`.
    pub fn new(shared: Arc<Shared>, n: u32) -> Self {
        let rng = StdRng::seed_from_u64(mix(shared.spec.seed, u64::from(n) + 1));
        let email = format!("wl-{}-{n}@example.com", shared.run_id);
        let password = format!("pw-{:016x}", mix(hash_str(&shared.run_id), u64::from(n)));
        Self {
            shared,
            n,
            rng,
            ops: Vec::new(),
            email,
            password,
            user_id: None,
            token: None,
            orders: Vec::new(),
            seq: 0,
        }
    }

    fn ms(&self) -> u64 {
        u64::try_from(self.shared.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn over(&self) -> bool {
        Instant::now() >= self.shared.deadline
    }

    /// Runs until the deadline.
    pub async fn run(mut self) -> ClientOutput {
        // Spread the clients' first requests over the first think period.
        let stagger = self.shared.spec.think.mul_f64(self.rng.gen::<f64>());
        tokio::time::sleep(stagger).await;
        while !self.over() {
            if self.token.is_none() {
                self.session().await;
                continue;
            }
            let order_share = self.shared.spec.order_share.clamp(0.0, 1.0);
            let rest = 1.0 - order_share;
            let choice = pick(
                &mut self.rng,
                &[
                    (Choice::Order, order_share),
                    (Choice::Browse, rest * 0.30),
                    (Choice::Product, rest * 0.15),
                    (Choice::GetOrder, rest * 0.25),
                    (Choice::ListOrders, rest * 0.08),
                    (Choice::Notifications, rest * 0.08),
                    (Choice::SessionCycle, rest * 0.08),
                    (Choice::ExpiredProbe, rest * 0.06),
                ],
            );
            match choice {
                Choice::Browse => {
                    let limit = self.rng.gen_range(5..=25);
                    self.simple(OpKind::Browse, &format!("/api/v1/products?limit={limit}"))
                        .await;
                }
                Choice::Product => {
                    let i = self.rng.gen_range(0..self.shared.products.len().max(1));
                    if let Some(p) = self.shared.products.get(i) {
                        let path = format!("/api/v1/products/{}", p.id);
                        self.simple(OpKind::Browse, &path).await;
                    }
                }
                Choice::Order => self.order().await,
                Choice::GetOrder => self.get_order().await,
                Choice::ListOrders => self.simple(OpKind::ListOrders, "/api/v1/orders").await,
                Choice::Notifications => {
                    self.simple(OpKind::Notifications, "/api/v1/notifications")
                        .await;
                }
                Choice::SessionCycle => self.session_cycle().await,
                Choice::ExpiredProbe => self.expired_probe().await,
            }
            self.think().await;
        }
        let user = self.user_id.clone().map(|user_id| UserRecord {
            client: self.n,
            user_id,
            email: self.email.clone(),
        });
        ClientOutput {
            ops: self.ops,
            user,
        }
    }

    async fn think(&mut self) {
        let f = self.rng.gen_range(0.5..1.5);
        tokio::time::sleep(self.shared.spec.think.mul_f64(f)).await;
    }

    /// Registers (once) and logs in; on failure waits a little and returns.
    async fn session(&mut self) {
        if self.user_id.is_none() {
            let body = json!({"email": self.email, "password": self.password, "name": format!("client {}", self.n)});
            let a = self
                .call(
                    OpKind::Register,
                    reqwest::Method::POST,
                    "/api/v1/users/register",
                    None,
                    None,
                    Some(&body),
                    None,
                )
                .await;
            // 409: an earlier, ambiguous attempt did register; logging in will tell.
            if a.outcome != Outcome::Ok && a.status != Some(409) {
                self.backoff().await;
                return;
            }
        }
        let body = json!({"email": self.email, "password": self.password});
        let a = self
            .call(
                OpKind::Login,
                reqwest::Method::POST,
                "/api/v1/users/login",
                None,
                None,
                Some(&body),
                None,
            )
            .await;
        if a.outcome == Outcome::Ok {
            self.token = a
                .body
                .get("token")
                .and_then(Value::as_str)
                .map(String::from);
            if let Some(id) = a.body.get("user_id").and_then(Value::as_str) {
                self.user_id = Some(id.to_string());
                if let Some(last) = self.ops.last_mut() {
                    last.user_id = Some(id.to_string());
                }
            }
        } else {
            self.backoff().await;
        }
    }

    async fn backoff(&mut self) {
        let ms = self.rng.gen_range(200..800);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }

    async fn simple(&mut self, kind: OpKind, path: &str) {
        let token = self.token.clone();
        self.call(
            kind,
            reqwest::Method::GET,
            path,
            token.as_deref(),
            None,
            None,
            None,
        )
        .await;
    }

    fn order_lines(&mut self) -> Vec<Line> {
        let (plenty, scarce): (Vec<&ProductRecord>, Vec<&ProductRecord>) =
            self.shared.products.iter().partition(|p| !p.scarce);
        let mut lines: Vec<Line> = Vec::new();
        let count = if self.rng.gen_bool(0.8) { 1 } else { 2 };
        for _ in 0..count {
            let use_scarce = !scarce.is_empty() && (plenty.is_empty() || self.rng.gen_bool(0.4));
            let pool = if use_scarce { &scarce } else { &plenty };
            if pool.is_empty() {
                break;
            }
            let p = pool[self.rng.gen_range(0..pool.len())];
            if lines.iter().any(|l| l.product == p.id) {
                continue;
            }
            let quantity = if p.scarce {
                self.rng.gen_range(1..=2)
            } else {
                self.rng.gen_range(1..=3)
            };
            lines.push(Line {
                product: p.id.clone(),
                quantity,
            });
        }
        lines
    }

    async fn order(&mut self) {
        let lines = self.order_lines();
        if lines.is_empty() {
            return;
        }
        let declining = self.rng.gen_bool(0.12);
        self.seq += 1;
        let key = self
            .rng
            .gen_bool(0.85)
            .then(|| format!("wl-{}-{}-{}", self.shared.run_id, self.n, self.seq));
        let body = json!({
            "items": lines.iter().map(|l| json!({"product_id": l.product, "quantity": l.quantity})).collect::<Vec<_>>(),
            "card": if declining { DECLINING_CARD } else { GOOD_CARD },
        });
        let mut attempt = OrderAttempt {
            key: key.clone(),
            lines,
            declining_card: declining,
            order_id: None,
            retry_of: None,
        };
        let token = self.token.clone();
        let first = self.ops.len();
        // A keyed POST whose answer was ambiguous is sent again with the same key, twice
        // at most: the key must make that safe.
        for retry in 0..3 {
            if retry > 0 {
                if self.over() {
                    break;
                }
                attempt.retry_of = Some(first);
                tokio::time::sleep(Duration::from_millis(300 * retry)).await;
            }
            let a = self
                .call(
                    OpKind::PlaceOrder,
                    reqwest::Method::POST,
                    "/api/v1/orders",
                    token.as_deref(),
                    key.as_deref(),
                    Some(&body),
                    Some(attempt.clone()),
                )
                .await;
            if a.outcome == Outcome::Ok {
                if let Some(id) = a.body.get("id").and_then(Value::as_str) {
                    self.orders.push(id.to_string());
                    if let Some(last) = self.ops.last_mut() {
                        if let Some(o) = &mut last.order {
                            o.order_id = Some(id.to_string());
                        }
                    }
                }
                return;
            }
            if a.outcome != Outcome::Info || key.is_none() {
                return;
            }
        }
    }

    async fn get_order(&mut self) {
        if self.orders.is_empty() {
            return self.simple(OpKind::ListOrders, "/api/v1/orders").await;
        }
        let id = self.orders[self.rng.gen_range(0..self.orders.len())].clone();
        let token = self.token.clone();
        let detail = OrderAttempt {
            key: None,
            lines: Vec::new(),
            declining_card: false,
            order_id: Some(id.clone()),
            retry_of: None,
        };
        self.call(
            OpKind::GetOrder,
            reqwest::Method::GET,
            &format!("/api/v1/orders/{id}"),
            token.as_deref(),
            None,
            None,
            Some(detail),
        )
        .await;
    }

    /// Log out, check that the old token is refused, log in again.
    async fn session_cycle(&mut self) {
        let Some(old) = self.token.clone() else {
            return;
        };
        let a = self
            .call(
                OpKind::Logout,
                reqwest::Method::POST,
                "/api/v1/users/logout",
                Some(&old),
                None,
                None,
                None,
            )
            .await;
        if a.outcome != Outcome::Ok {
            return;
        }
        self.token = None;
        self.probe(ProbeToken::Revoked, &old, "/api/v1/users/me")
            .await;
        self.probe(ProbeToken::Revoked, &old, "/api/v1/orders")
            .await;
    }

    async fn expired_probe(&mut self) {
        let (Some((secret, issuer)), Some(user)) =
            (self.shared.spec.jwt.clone(), self.user_id.clone())
        else {
            return;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = json!({
            "sub": user,
            "iss": issuer,
            "iat": now.saturating_sub(3_720),
            "exp": now.saturating_sub(120),
            "jti": format!("expired-{}-{}-{}", self.shared.run_id, self.n, self.seq),
        });
        let Ok(token) = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        ) else {
            return;
        };
        self.seq += 1;
        self.probe(ProbeToken::Expired, &token, "/api/v1/orders")
            .await;
    }

    async fn probe(&mut self, token_kind: ProbeToken, token: &str, path: &str) {
        let a = self
            .call(
                OpKind::AuthProbe,
                reqwest::Method::GET,
                path,
                Some(token),
                None,
                None,
                None,
            )
            .await;
        if let Some(last) = self.ops.last_mut() {
            let accepted = a.status.is_some_and(|s| (200..300).contains(&s));
            // The probe's own outcome: refused with 401 is what it asked for.
            if a.status == Some(401) {
                last.outcome = Outcome::Ok;
                last.error = None;
            }
            last.probe = Some(Probe {
                token: token_kind,
                request: format!("GET {path}"),
                accepted,
            });
        }
    }

    /// Sends one request through the gateway and records it.
    #[allow(clippy::too_many_arguments)]
    async fn call(
        &mut self,
        kind: OpKind,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Option<&Value>,
        order: Option<OrderAttempt>,
    ) -> Answer {
        let invoke_ms = self.ms();
        let answer = match self.shared.env.endpoint("gateway", None) {
            Ok(addr) => {
                let mut req = self
                    .shared
                    .http
                    .request(method, format!("http://{addr}{path}"));
                if let Some(t) = token {
                    req = req.bearer_auth(t);
                }
                if let Some(k) = key {
                    req = req.header("Idempotency-Key", k);
                }
                if let Some(b) = body {
                    req = req.json(b);
                }
                send(req).await
            }
            Err(e) => Answer {
                outcome: Outcome::Fail,
                status: None,
                request_id: None,
                body: Value::Null,
                error: Some(e.0),
            },
        };
        let op = Op {
            index: self.ops.len(),
            client: self.n,
            kind,
            invoke_ms,
            complete_ms: self.ms(),
            outcome: answer.outcome,
            status: answer.status,
            request_id: answer.request_id.clone(),
            user_id: self.user_id.clone(),
            order,
            probe: None,
            error: answer.error.clone(),
        };
        self.ops.push(op);
        answer
    }
}

async fn send(req: reqwest::RequestBuilder) -> Answer {
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let request_id = resp
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(String::from);
            match resp.bytes().await {
                Ok(bytes) => {
                    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                    let code = body.get("code").and_then(Value::as_str).map(String::from);
                    let outcome = classify(Some(status), code.as_deref(), false);
                    Answer {
                        outcome,
                        status: Some(status),
                        request_id,
                        body,
                        error: (outcome != Outcome::Ok)
                            .then(|| code.unwrap_or_else(|| format!("status {status}"))),
                    }
                }
                // The status came but the body did not: it happened or not, unknown.
                Err(e) => Answer {
                    outcome: if (200..300).contains(&status) {
                        Outcome::Info
                    } else {
                        classify(Some(status), None, false)
                    },
                    status: Some(status),
                    request_id,
                    body: Value::Null,
                    error: Some(format!("body: {e}")),
                },
            }
        }
        Err(e) => {
            let refused = e.is_connect();
            Answer {
                outcome: classify(None, None, refused),
                status: None,
                request_id: None,
                body: Value::Null,
                error: Some(error_chain(&e)),
            }
        }
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_are_definite_only_when_nothing_can_have_happened() {
        assert_eq!(classify(Some(202), None, false), Outcome::Ok);
        assert_eq!(
            classify(Some(401), Some("unauthorized"), false),
            Outcome::Fail
        );
        assert_eq!(
            classify(Some(503), Some("no_instances"), false),
            Outcome::Fail
        );
        assert_eq!(
            classify(Some(503), Some("upstream_unavailable"), false),
            Outcome::Fail
        );
        // An upstream's own 503 (its database is down) may come after a commit.
        assert_eq!(
            classify(Some(503), Some("database_unavailable"), false),
            Outcome::Info
        );
        assert_eq!(
            classify(Some(504), Some("upstream_timeout"), false),
            Outcome::Info
        );
        assert_eq!(classify(Some(502), None, false), Outcome::Info);
        assert_eq!(classify(None, None, true), Outcome::Fail);
        assert_eq!(classify(None, None, false), Outcome::Info);
    }
}
