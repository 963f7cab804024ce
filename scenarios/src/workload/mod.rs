//! `workload` steps: concurrent clients that use the bundled shop through the gateway the
//! way real clients do, recording every operation in a [`History`] (Jepsen's model) that
//! `check` steps then judge.
//!
//! Each client registers and logs in, then, until the step's duration is over, picks its
//! next operation from a seeded random generator: browse the catalog, place an order (most
//! with an `Idempotency-Key`, some without; some with the declining card; some for the
//! run's scarce products so that reservations contend), look at an order, list orders and
//! notifications, log out and check that the old token is refused, or present a correctly
//! signed but expired token. An ambiguous answer to a keyed order is retried with the same
//! key, as a careful client does. The same seed gives the same plan of choices; what the
//! stack answers is what is recorded.
//!
//! Alongside, two samplers record the run's products' stock every second and every client
//! instance's retry counters (from its `/metrics`), for the stock and retry-budget checks.

pub mod client;
pub mod history;
pub mod prometheus;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::time::Instant;

use crate::environment::Environment;
use crate::sql::Databases;
pub use history::{History, MetricsSample, Op, OpKind, Outcome, ProductRecord, StockSample};

/// Most clients one workload may run.
pub const MAX_CLIENTS: u32 = 64;

/// What a `workload` step asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadSpec {
    /// Concurrent clients.
    pub clients: u32,
    /// How long clients keep starting operations.
    pub duration: Duration,
    /// Seed of every client's choices.
    pub seed: u64,
    /// Mean pause between one client's operations.
    pub think: Duration,
    /// Products with plenty of stock created for the run.
    pub products: u32,
    /// Products with little stock, so that reservations contend.
    pub scarce: u32,
    /// Stock of each scarce product.
    pub scarce_stock: u32,
    /// Share of operations that place an order (0–1).
    pub order_share: f64,
    /// Admin token for `/admin/seed` and metrics.
    pub admin_token: String,
    /// HS256 secret and issuer to sign the expired tokens of auth probes (no probes of
    /// expired tokens without them).
    pub jwt: Option<(String, String)>,
    /// Per-request timeout of the clients (above the gateway's own upstream timeout).
    pub timeout: Duration,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        Self {
            clients: 6,
            duration: Duration::from_secs(60),
            seed: 1,
            think: Duration::from_millis(250),
            products: 4,
            scarce: 2,
            scarce_stock: 8,
            order_share: 0.4,
            admin_token: "msctl-admin".into(),
            jwt: None,
            timeout: Duration::from_secs(12),
        }
    }
}

impl WorkloadSpec {
    /// The parameters in one line, for reports.
    pub fn summary(&self) -> String {
        format!(
            "clients={} duration={} think={} scarce={}x{} seed={}",
            self.clients,
            humantime::format_duration(self.duration),
            humantime::format_duration(self.think),
            self.scarce,
            self.scarce_stock,
            self.seed
        )
    }
}

/// Why a workload could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum WorkloadError {
    /// An endpoint or database was not there.
    #[error("{0}")]
    Environment(String),
    /// Creating the run's products failed.
    #[error("cannot create the workload's products through product-service's /admin/seed: {0}")]
    Seed(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
}

/// splitmix64: a seed per client and per purpose from one seed.
pub fn mix(seed: u64, salt: u64) -> u64 {
    let mut x = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A version-4-shaped UUID from a seed and salt (fresh per run because the run id is
/// mixed in by callers).
pub fn seeded_uuid(seed: u64, salt: u64) -> uuid::Uuid {
    let hi = mix(seed, salt);
    let lo = mix(hi, salt ^ 0x5151);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// A string's stable 64-bit hash (FNV-1a), to mix run ids into seeds.
pub fn hash_str(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The run's products: a few plentiful, a few scarce. Names carry the run id.
pub fn plan_products(spec: &WorkloadSpec, run_id: &str) -> Vec<ProductRecord> {
    let base = mix(spec.seed, hash_str(run_id));
    let mut rng = StdRng::seed_from_u64(base);
    (0..spec.products + spec.scarce)
        .map(|i| {
            let scarce = i >= spec.products;
            ProductRecord {
                id: seeded_uuid(base, u64::from(i) + 1).to_string(),
                stock: if scarce {
                    i64::from(spec.scarce_stock)
                } else {
                    1_000_000
                },
                price_cents: rng.gen_range(100..5_000),
                scarce,
            }
        })
        .collect()
}

/// Runs the workload to its end and returns what happened. `offset_s` is the time since
/// the scenario started (recorded so that faults and operations share one clock).
pub async fn run(
    env: Arc<dyn Environment>,
    databases: Arc<Databases>,
    spec: &WorkloadSpec,
    run_id: &str,
    offset_s: f64,
) -> Result<History, WorkloadError> {
    let products = plan_products(spec, run_id);
    seed_products(env.as_ref(), spec, run_id, &products).await?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(spec.timeout)
        .connect_timeout(Duration::from_secs(2))
        .pool_idle_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| WorkloadError::Client(e.to_string()))?;

    let started = Instant::now();
    let started_at = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let deadline = started + spec.duration;
    let shared = Arc::new(client::Shared {
        env: env.clone(),
        http: http.clone(),
        spec: spec.clone(),
        run_id: run_id.to_string(),
        products: products.clone(),
        started,
        deadline,
    });
    let clients: Vec<_> = (0..spec.clients)
        .map(|i| {
            let shared = shared.clone();
            tokio::spawn(async move { client::Client::new(shared, i).run().await })
        })
        .collect();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let stock = tokio::spawn(sample_stock(
        env.clone(),
        databases.clone(),
        products.clone(),
        started,
        stop.clone(),
    ));
    let metrics = tokio::spawn(sample_metrics(
        env.clone(),
        http.clone(),
        started,
        stop.clone(),
    ));

    let mut ops = Vec::new();
    let mut users = Vec::new();
    let mut notes = Vec::new();
    // Clients stop starting operations at the deadline; the ones in flight end within the
    // request timeout (and a keyed retry or two).
    let hard_stop = deadline + spec.timeout * 3 + Duration::from_secs(5);
    for c in clients {
        match tokio::time::timeout_at(hard_stop, c).await {
            Ok(Ok(out)) => {
                ops.extend(out.ops);
                users.extend(out.user);
            }
            Ok(Err(e)) => notes.push(format!("a client task ended abnormally: {e}")),
            Err(_) => notes.push("a client was still busy at the hard stop".into()),
        }
    }
    let _ = stop_tx.send(true);
    let (stock, stock_notes) = stock.await.unwrap_or_default();
    let (metrics, metric_notes) = metrics.await.unwrap_or_default();
    notes.extend(stock_notes);
    notes.extend(metric_notes);
    ops.sort_by_key(|o: &Op| (o.invoke_ms, o.client));
    // Retries name their original by its position: renumber after sorting.
    let positions: std::collections::HashMap<(u32, usize), usize> = ops
        .iter()
        .enumerate()
        .map(|(i, o)| ((o.client, o.index), i))
        .collect();
    for o in &mut ops {
        if let Some(order) = &mut o.order {
            if let Some(r) = order.retry_of {
                order.retry_of = positions.get(&(o.client, r)).copied();
            }
        }
    }
    for (i, o) in ops.iter_mut().enumerate() {
        o.index = i;
    }
    Ok(History {
        started_at,
        offset_s,
        duration_s: spec.duration.as_secs_f64(),
        clients: spec.clients,
        ops,
        users,
        products,
        stock,
        metrics,
        notes,
    })
}

async fn seed_products(
    env: &dyn Environment,
    spec: &WorkloadSpec,
    run_id: &str,
    products: &[ProductRecord],
) -> Result<(), WorkloadError> {
    let addr = env
        .endpoint("product-service", Some(9000))
        .map_err(|e| WorkloadError::Environment(e.0))?;
    let body = json!({
        "products": products.iter().enumerate().map(|(i, p)| json!({
            "id": p.id,
            "name": format!("explore {run_id} {}{i}", if p.scarce { "scarce " } else { "" }),
            "description": "created by a msctl workload",
            "price_cents": p.price_cents,
            "stock": p.stock,
        })).collect::<Vec<_>>()
    });
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| WorkloadError::Client(e.to_string()))?;
    let mut last = String::new();
    // The stack may still be settling from an earlier run: a few tries.
    for attempt in 0..5u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(500 * u64::from(attempt))).await;
        }
        match http
            .post(format!("http://{addr}/admin/seed"))
            .header("X-Admin-Token", &spec.admin_token)
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => {
                let status = r.status();
                last = format!("{status}: {}", r.text().await.unwrap_or_default());
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(WorkloadError::Seed(last))
}

fn ms_since(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Every second: the run's products' counters; any negative one is recorded by name.
async fn sample_stock(
    env: Arc<dyn Environment>,
    databases: Arc<Databases>,
    products: Vec<ProductRecord>,
    started: Instant,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> (Vec<StockSample>, Vec<String>) {
    let ids = products
        .iter()
        .map(|p| format!("'{}'", p.id))
        .collect::<Vec<_>>()
        .join(",");
    let query = format!(
        "SELECT id::text AS id, available, reserved, sold FROM products WHERE id IN ({ids})"
    );
    let mut samples = Vec::new();
    let mut failures = 0u32;
    let mut last_error = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let rows = match env.database_url("product-service") {
            Ok(url) => databases.rows(&url, &query).await,
            Err(e) => Err(e.0),
        };
        match rows {
            Ok(rows) => {
                let mut negative = Vec::new();
                let mut min_available = i64::MAX;
                for r in rows {
                    let get = |k: &str| r.get(k).and_then(serde_json::Value::as_i64).unwrap_or(0);
                    let (a, re, s) = (get("available"), get("reserved"), get("sold"));
                    min_available = min_available.min(a);
                    if a < 0 || re < 0 || s < 0 {
                        negative.push(format!(
                            "product {} available {a} reserved {re} sold {s}",
                            r.get("id").and_then(|v| v.as_str()).unwrap_or("?")
                        ));
                    }
                }
                samples.push(StockSample {
                    t_ms: ms_since(started),
                    negative,
                    min_available: if min_available == i64::MAX {
                        0
                    } else {
                        min_available
                    },
                });
            }
            // Expected while Postgres is faulted; counted, not fatal.
            Err(e) => {
                failures += 1;
                last_error = Some(e);
            }
        }
    }
    let notes = last_error
        .map(|e| vec![format!("{failures} stock samples failed (last: {e})")])
        .unwrap_or_default();
    (samples, notes)
}

/// Every second: each client instance's attempt, retry and order-POST counters.
async fn sample_metrics(
    env: Arc<dyn Environment>,
    http: reqwest::Client,
    started: Instant,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> (Vec<MetricsSample>, Vec<String>) {
    let mut samples = Vec::new();
    let mut failures = 0u32;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_round = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => last_round = true,
        }
        let targets = env.metrics_targets();
        let scrapes = targets.iter().map(|t| {
            let http = http.clone();
            async move {
                let url = format!("http://{}{}", t.addr, t.path);
                let text = http
                    .get(url)
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                Some((t, text))
            }
        });
        let t_ms = ms_since(started);
        for res in futures_util::future::join_all(scrapes).await {
            let Some((t, text)) = res else {
                failures += 1;
                continue;
            };
            let series = prometheus::parse(&text);
            samples.push(MetricsSample {
                t_ms,
                instance: t.instance.clone(),
                component: t.component.clone(),
                attempts: prometheus::sum(&series, "upstream_requests_total", &[]),
                retries: prometheus::sum(&series, "upstream_retries_total", &[]),
                order_posts: prometheus::sum(
                    &series,
                    "http_requests_total",
                    &[("method", "POST"), ("route", "/api/v1/orders")],
                ),
                calls: prometheus::sum(&series, "upstream_calls_total", &[]),
                forwarded: prometheus::sum(&series, "gateway_forwarded_total", &[]),
            });
        }
        if last_round {
            break;
        }
    }
    let notes = if failures > 0 {
        vec![format!(
            "{failures} metrics scrapes failed (instances down or paused)"
        )]
    } else {
        Vec::new()
    };
    (samples, notes)
}

/// Totals of a history, for step details and reports.
pub fn summarize(h: &History) -> serde_json::Value {
    let mut by_outcome = std::collections::BTreeMap::new();
    let mut by_kind = std::collections::BTreeMap::new();
    for o in &h.ops {
        *by_outcome.entry(o.outcome.word()).or_insert(0u64) += 1;
        *by_kind.entry(o.kind.name()).or_insert(0u64) += 1;
    }
    json!({
        "clients": h.clients,
        "duration_s": h.duration_s,
        "operations": h.ops.len(),
        "by_outcome": by_outcome,
        "by_kind": by_kind,
        "orders_sent": h.of(OpKind::PlaceOrder).count(),
        "orders_acknowledged": h.acknowledged().count(),
        "users": h.users.len(),
        "notes": h.notes,
    })
}

/// Draws from `weights` (need not sum to 1).
pub fn pick<T: Copy>(rng: &mut StdRng, weights: &[(T, f64)]) -> T {
    let total: f64 = weights.iter().map(|(_, w)| w).sum();
    let mut x = rng.gen::<f64>() * total;
    for (v, w) in weights {
        if x < *w {
            return *v;
        }
        x -= w;
    }
    weights[weights.len() - 1].0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_and_run_plan_the_same_products_and_another_run_fresh_ones() {
        let spec = WorkloadSpec::default();
        let a = plan_products(&spec, "run1");
        let b = plan_products(&spec, "run1");
        let c = plan_products(&spec, "run2");
        assert_eq!(
            a.iter().map(|p| &p.id).collect::<Vec<_>>(),
            b.iter().map(|p| &p.id).collect::<Vec<_>>()
        );
        assert!(a.iter().zip(&c).all(|(x, y)| x.id != y.id));
        assert_eq!(a.iter().filter(|p| p.scarce).count(), 2);
        assert!(a.iter().all(|p| uuid::Uuid::parse_str(&p.id).is_ok()));
    }
}
