//! The load generator: a closed model (virtual users) or an open model (fixed arrival rate)
//! over a weighted request mix, latencies in an HDR histogram, and thresholds.
//!
//! Bounded by construction: a phase stops at its duration or its request count, whichever
//! comes first; the open model caps requests in flight and counts the arrivals it had to
//! drop, rather than queueing without end. Only 127.0.0.1 is a valid target: the load
//! generator must never be pointed at someone else's machine by a typo.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::model::{LoadModel, Thresholds};

/// One request of the mix, rendered.
#[derive(Debug, Clone)]
pub struct PreparedRequest {
    /// Relative weight.
    pub weight: u32,
    /// Method.
    pub method: reqwest::Method,
    /// URL (127.0.0.1 only).
    pub url: reqwest::Url,
    /// Headers.
    pub headers: reqwest::header::HeaderMap,
    /// Body bytes (with its content type in `headers`).
    pub body: Option<bytes_body::Body>,
    /// Statuses that count as success; `None` = 2xx and 3xx.
    pub ok_status: Option<Vec<u16>>,
    /// The URL, a header or the body holds [`UUID_PLACEHOLDER`]: each send replaces it
    /// with a fresh UUID.
    pub fresh_uuid: bool,
}

/// What `{{uuid}}` renders as inside a load phase. Every request replaces it with a fresh
/// UUID (the same one throughout that request), so e.g. each order POST carries its own
/// Idempotency-Key. It is a valid UUID itself, so a template that validates its input sees
/// a well-formed value.
pub const UUID_PLACEHOLDER: &str = "00000000-5ce7-4a10-8000-00000000feed";

impl PreparedRequest {
    /// A request of the mix; notices whether it carries [`UUID_PLACEHOLDER`].
    pub fn new(
        weight: u32,
        method: reqwest::Method,
        url: reqwest::Url,
        headers: reqwest::header::HeaderMap,
        body: Option<Vec<u8>>,
        ok_status: Option<Vec<u16>>,
    ) -> Self {
        let needle = UUID_PLACEHOLDER.as_bytes();
        let fresh_uuid = url.as_str().contains(UUID_PLACEHOLDER)
            || headers.values().any(|v| contains(v.as_bytes(), needle))
            || body.as_deref().is_some_and(|b| contains(b, needle));
        Self {
            weight,
            method,
            url,
            headers,
            body: body.map(std::sync::Arc::new),
            ok_status,
            fresh_uuid,
        }
    }

    /// This request as it is sent now: with a fresh UUID in place of the placeholder, or
    /// `None` when it has none (send it as it is, without copying).
    pub fn fresh(&self) -> Option<PreparedRequest> {
        if !self.fresh_uuid {
            return None;
        }
        let id = uuid::Uuid::new_v4().to_string();
        let mut out = self.clone();
        if self.url.as_str().contains(UUID_PLACEHOLDER) {
            if let Ok(u) = reqwest::Url::parse(&self.url.as_str().replace(UUID_PLACEHOLDER, &id)) {
                out.url = u;
            }
        }
        for v in out.headers.values_mut() {
            if contains(v.as_bytes(), UUID_PLACEHOLDER.as_bytes()) {
                if let Ok(text) = v.to_str() {
                    if let Ok(nv) = text.replace(UUID_PLACEHOLDER, &id).parse() {
                        *v = nv;
                    }
                }
            }
        }
        if let Some(b) = &self.body {
            if contains(b, UUID_PLACEHOLDER.as_bytes()) {
                // Same length, so a plain byte-wise substitution keeps the body valid.
                let mut bytes = b.as_ref().clone();
                let mut i = 0;
                while let Some(at) = find(&bytes[i..], UUID_PLACEHOLDER.as_bytes()) {
                    let start = i + at;
                    bytes[start..start + id.len()].copy_from_slice(id.as_bytes());
                    i = start + id.len();
                }
                out.body = Some(std::sync::Arc::new(bytes));
            }
        }
        Some(out)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

/// A cheaply cloned request body.
pub mod bytes_body {
    /// Shared body bytes.
    pub type Body = std::sync::Arc<Vec<u8>>;
}

/// Checks that a URL points at the loopback interface.
pub fn loopback_only(url: &reqwest::Url) -> Result<(), String> {
    let ok = match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "load targets must be on 127.0.0.1; {url} is not (use {{{{gateway}}}} or {{{{COMPONENT:PORT}}}})"
        ))
    }
}

/// What a load phase measured.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LoadStats {
    /// Completed requests (answered or failed).
    pub requests: u64,
    /// Failed requests: transport errors and statuses outside the success set.
    pub errors: u64,
    /// Transport errors (connection refused, timeouts) among the errors.
    pub transport_errors: u64,
    /// Open model: arrivals dropped because `max_in_flight` requests were pending.
    pub dropped: u64,
    /// Wall time of the phase, seconds.
    pub seconds: f64,
    /// Completed requests per second.
    pub rps: f64,
    /// errors / requests.
    pub error_rate: f64,
    /// Latency percentiles and extremes, milliseconds.
    pub p50_ms: f64,
    /// 95th percentile, ms.
    pub p95_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
    /// Mean, ms.
    pub mean_ms: f64,
    /// Maximum, ms.
    pub max_ms: f64,
    /// Count by status (`"transport"` for no answer).
    pub by_status: BTreeMap<String, u64>,
}

/// One threshold violation, worded for the report.
pub fn check_thresholds(t: &Thresholds, s: &LoadStats) -> Vec<String> {
    let mut out = Vec::new();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (name, limit, seen) in [
        ("p50", t.p50, s.p50_ms),
        ("p95", t.p95, s.p95_ms),
        ("p99", t.p99, s.p99_ms),
    ] {
        if let Some(limit) = limit {
            if seen > ms(limit) {
                out.push(format!("{name} ≤ {}ms: saw {seen:.1}ms", ms(limit)));
            }
        }
    }
    if let Some(max) = t.error_rate {
        if s.error_rate > max {
            out.push(format!(
                "error_rate ≤ {max}: saw {:.4} ({} of {} failed; {:?})",
                s.error_rate, s.errors, s.requests, s.by_status
            ));
        }
    }
    if let Some(min) = t.min_rps {
        if s.rps < min {
            out.push(format!("min_rps ≥ {min}: saw {:.1} req/s", s.rps));
        }
    }
    if s.requests == 0 {
        out.push("no request completed".to_string());
    }
    out
}

/// Everything one load phase needs.
#[derive(Debug, Clone)]
pub struct LoadRun {
    /// Closed or open model.
    pub model: LoadModel,
    /// How long.
    pub duration: Duration,
    /// Request bound.
    pub max_requests: u64,
    /// Open model's in-flight cap.
    pub max_in_flight: u32,
    /// The mix.
    pub requests: Vec<PreparedRequest>,
}

/// Progress counters a caller can read while the phase runs.
#[derive(Debug, Default)]
pub struct LoadProgress {
    /// Completed requests.
    pub done: AtomicU64,
    /// Failed requests.
    pub errors: AtomicU64,
}

struct Recorder {
    hist: Histogram<u64>,
    errors: u64,
    transport: u64,
    by_status: BTreeMap<String, u64>,
}

impl Recorder {
    fn new() -> Self {
        Self {
            // 1 µs to 10 min at 3 significant figures.
            hist: Histogram::new_with_bounds(1, 600_000_000, 3)
                .unwrap_or_else(|_| unreachable!("static bounds are valid")),
            errors: 0,
            transport: 0,
            by_status: BTreeMap::new(),
        }
    }

    fn merge(&mut self, other: Recorder) {
        let _ = self.hist.add(&other.hist);
        self.errors += other.errors;
        self.transport += other.transport;
        for (k, v) in other.by_status {
            *self.by_status.entry(k).or_default() += v;
        }
    }
}

/// A fast per-task generator for the weighted pick (xorshift64*; quality is irrelevant here,
/// speed and no shared state are what matter).
struct Pick {
    state: u64,
    cumulative: Vec<u64>,
}

impl Pick {
    fn new(seed: u64, requests: &[PreparedRequest]) -> Self {
        let mut acc = 0;
        let cumulative = requests
            .iter()
            .map(|r| {
                acc += u64::from(r.weight.max(1));
                acc
            })
            .collect();
        Self {
            state: seed | 1,
            cumulative,
        }
    }

    fn next(&mut self) -> usize {
        if self.cumulative.len() == 1 {
            return 0;
        }
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        let r = self.state.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let total = *self.cumulative.last().unwrap_or(&1);
        let x = r % total;
        self.cumulative.partition_point(|&c| c <= x)
    }
}

/// One finished request: its latency and what came back.
#[derive(Debug, Clone, Copy)]
struct Sample {
    micros: u64,
    /// The status, or `None` when no answer came (transport error, timeout).
    status: Option<u16>,
    /// Counted as an error: no answer, a status outside the success set, or a broken body.
    failed: bool,
}

impl Sample {
    fn new(started: Instant, outcome: Option<(u16, bool)>, ok_status: &Option<Vec<u16>>) -> Self {
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        match outcome {
            Some((status, body_ok)) => {
                let ok = match ok_status {
                    Some(list) => list.contains(&status),
                    None => (200..400).contains(&status),
                };
                Self {
                    micros,
                    status: Some(status),
                    failed: !ok || !body_ok,
                }
            }
            None => Self {
                micros,
                status: None,
                failed: true,
            },
        }
    }
}

impl Recorder {
    fn add(&mut self, s: Sample) {
        let _ = self.hist.record(s.micros.clamp(1, 600_000_000));
        match s.status {
            Some(status) => *self.by_status.entry(status.to_string()).or_default() += 1,
            None => {
                *self.by_status.entry("transport".to_string()).or_default() += 1;
                self.transport += 1;
            }
        }
        if s.failed {
            self.errors += 1;
        }
    }
}

/// One request through the reqwest client (targets the raw path cannot serve).
async fn one(client: &reqwest::Client, r: &PreparedRequest) -> Sample {
    let started = Instant::now();
    let fresh = r.fresh();
    let r = fresh.as_ref().unwrap_or(r);
    let mut req = client
        .request(r.method.clone(), r.url.clone())
        .headers(r.headers.clone());
    if let Some(b) = &r.body {
        req = req.body(b.as_ref().clone());
    }
    let outcome = match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            // Read the whole body: a request is complete when its answer is.
            let body_ok = resp.bytes().await.is_ok();
            Some((status, body_ok))
        }
        Err(_) => None,
    };
    Sample::new(started, outcome, &r.ok_status)
}

/// One virtual user's own HTTP/1 connection (wrk's model): no pool, no per-request
/// client machinery; reconnects after a transport error.
struct Connection {
    addr: std::net::SocketAddr,
    sender: Option<hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>>,
}

impl Connection {
    async fn send(&mut self, r: &PreparedRequest) -> Option<(u16, bool)> {
        use http_body_util::BodyExt;
        // A connection the server closed while it sat idle is replaced, not counted as an
        // error.
        if self.sender.as_ref().is_some_and(|s| s.is_closed()) {
            self.sender = None;
        }
        if self.sender.is_none() {
            let stream = tokio::net::TcpStream::connect(self.addr).await.ok()?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .ok()?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut()?;
        let fresh = r.fresh();
        let r = fresh.as_ref().unwrap_or(r);
        let mut builder = hyper::Request::builder()
            .method(r.method.clone())
            .uri(&r.url[url::Position::BeforePath..url::Position::AfterQuery])
            .header(
                hyper::header::HOST,
                &r.url[url::Position::BeforeHost..url::Position::AfterPort],
            );
        for (k, v) in &r.headers {
            builder = builder.header(k, v);
        }
        let body = r
            .body
            .as_ref()
            .map(|b| bytes::Bytes::from(b.as_ref().clone()))
            .unwrap_or_default();
        let req = builder.body(http_body_util::Full::new(body)).ok()?;
        let answer = async {
            sender.ready().await.ok()?;
            let resp = sender.send_request(req).await.ok()?;
            let status = resp.status().as_u16();
            let body_ok = resp.into_body().collect().await.is_ok();
            Some((status, body_ok))
        }
        .await;
        if answer.is_none() {
            self.sender = None;
        }
        answer
    }
}

/// Idle raw connections to one target, for the open model: an arrival takes one (or a new,
/// unconnected one) and gives it back when its answer came.
struct IdlePool {
    addr: std::net::SocketAddr,
    idle: std::sync::Mutex<Vec<Connection>>,
}

impl IdlePool {
    fn new(addr: std::net::SocketAddr) -> Self {
        Self {
            addr,
            idle: std::sync::Mutex::new(Vec::new()),
        }
    }

    fn take(&self) -> Connection {
        self.idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or(Connection {
                addr: self.addr,
                sender: None,
            })
    }

    fn give_back(&self, conn: Connection) {
        if conn.sender.is_some() {
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(conn);
        }
    }
}

/// The socket address of a plain-HTTP loopback URL, when the raw path can serve it.
fn raw_target(url: &reqwest::Url) -> Option<std::net::SocketAddr> {
    if url.scheme() != "http" {
        return None;
    }
    let port = url.port_or_known_default()?;
    match url.host()? {
        url::Host::Ipv4(ip) => Some((ip, port).into()),
        url::Host::Ipv6(ip) => Some((ip, port).into()),
        url::Host::Domain("localhost") => Some((std::net::Ipv4Addr::LOCALHOST, port).into()),
        url::Host::Domain(_) => None,
    }
}

/// A client tuned for load: a pool as large as the concurrency, no proxy.
pub fn client(concurrency: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(concurrency)
        .timeout(crate::model::DEFAULT_REQUEST_TIMEOUT)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Runs a load phase to completion, on a thread of its own with a single-threaded runtime
/// (wrk's model): requests never hop between worker threads, which on a small machine cost
/// more CPU in wake-ups than the requests themselves, and the phase does not compete with
/// the engine's other tasks (e.g. continuous steady-state probes) for a scheduler.
pub async fn run(run: &LoadRun, progress: Arc<LoadProgress>) -> Result<LoadStats, String> {
    let phase = run.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("msctl-load".to_string())
        .spawn(move || {
            let out = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(run_here(&phase, progress)),
                Err(e) => Err(format!("cannot start the load generator's runtime: {e}")),
            };
            let _ = tx.send(out);
        })
        .map_err(|e| format!("cannot start the load generator's thread: {e}"))?;
    rx.await
        .map_err(|_| "the load generator's thread ended without a result".to_string())?
}

async fn run_here(run: &LoadRun, progress: Arc<LoadProgress>) -> Result<LoadStats, String> {
    for r in &run.requests {
        loopback_only(&r.url)?;
    }
    if run.requests.is_empty() {
        return Err("no requests in the mix".to_string());
    }
    let concurrency = match run.model {
        LoadModel::Vus(v) => v as usize,
        LoadModel::Rate(_) => run.max_in_flight as usize,
    };
    let client = client(concurrency)?;
    let started = Instant::now();
    let deadline = started + run.duration;
    let issued = Arc::new(AtomicU64::new(0));
    let requests = Arc::new(run.requests.clone());
    let mut total = Recorder::new();
    let mut dropped = 0u64;
    match run.model {
        LoadModel::Vus(vus) => {
            let mut tasks = Vec::new();
            for vu in 0..vus {
                let client = client.clone();
                let requests = requests.clone();
                let issued = issued.clone();
                let progress = progress.clone();
                let max = run.max_requests;
                tasks.push(tokio::spawn(async move {
                    let mut rec = Recorder::new();
                    let mut pick = Pick::new(0x9E37_79B9_7F4A_7C15 ^ u64::from(vu), &requests);
                    // One connection per target, as wrk keeps one per virtual user.
                    let mut conns: Vec<Option<Connection>> = requests
                        .iter()
                        .map(|r| raw_target(&r.url).map(|addr| Connection { addr, sender: None }))
                        .collect();
                    let grace = deadline + Duration::from_secs(10);
                    while Instant::now() < deadline {
                        if issued.fetch_add(1, Ordering::Relaxed) >= max {
                            break;
                        }
                        let before = rec.errors;
                        let i = pick.next();
                        let r = &requests[i];
                        match conns[i].as_mut() {
                            Some(conn) => {
                                let started = Instant::now();
                                tokio::select! {
                                    outcome = conn.send(r) => {
                                        let refused = outcome.is_none();
                                        rec.add(Sample::new(started, outcome, &r.ok_status));
                                        if refused {
                                            // Do not spin on a target that is down.
                                            tokio::time::sleep(Duration::from_millis(10)).await;
                                        }
                                    }
                                    _ = tokio::time::sleep_until(grace.min(started + crate::model::DEFAULT_REQUEST_TIMEOUT)) => {
                                        conn.sender = None;
                                        rec.add(Sample::new(started, None, &r.ok_status));
                                        if Instant::now() >= grace { break; }
                                    }
                                }
                            }
                            None => {
                                tokio::select! {
                                    sample = one(&client, r) => rec.add(sample),
                                    _ = tokio::time::sleep_until(grace) => break,
                                }
                            }
                        }
                        progress.done.fetch_add(1, Ordering::Relaxed);
                        if rec.errors > before {
                            progress.errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    rec
                }));
            }
            for t in tasks {
                match t.await {
                    Ok(rec) => total.merge(rec),
                    Err(e) => return Err(format!("a virtual user failed: {e}")),
                }
            }
        }
        LoadModel::Rate(rate) => {
            let slots = Arc::new(Semaphore::new(run.max_in_flight as usize));
            // Each arrival is its own task and sends back one small sample; the histogram
            // lives here only. (A recorder per arrival meant a 160 KiB histogram allocated,
            // zeroed and merged per request: most of the phase's CPU, and its memory grew
            // with requests in flight.)
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Sample>();
            let period = Duration::from_secs_f64(1.0 / rate);
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut pick = Pick::new(0x9E37_79B9_7F4A_7C15, &requests);
            let mut pending = tokio::task::JoinSet::new();
            // Plain-HTTP loopback targets go over raw HTTP/1 connections kept in an idle
            // pool per request of the mix, as the closed model does (reqwest's per-request
            // machinery cost more CPU than the rest of an arrival); others use the client.
            let pools: Arc<Vec<Option<IdlePool>>> = Arc::new(
                requests
                    .iter()
                    .map(|r| raw_target(&r.url).map(IdlePool::new))
                    .collect(),
            );
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = tokio::time::sleep_until(deadline) => break,
                }
                if Instant::now() >= deadline
                    || issued.fetch_add(1, Ordering::Relaxed) >= run.max_requests
                {
                    break;
                }
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    dropped += 1;
                    continue;
                };
                let client = client.clone();
                let requests = requests.clone();
                let tx = tx.clone();
                let progress = progress.clone();
                let pools = pools.clone();
                let i = pick.next();
                pending.spawn(async move {
                    let r = &requests[i];
                    let sample = match &pools[i] {
                        Some(pool) => {
                            let mut conn = pool.take();
                            let started = Instant::now();
                            let outcome = tokio::time::timeout(
                                crate::model::DEFAULT_REQUEST_TIMEOUT,
                                conn.send(r),
                            )
                            .await
                            .ok()
                            .flatten();
                            if outcome.is_some() {
                                pool.give_back(conn);
                            }
                            Sample::new(started, outcome, &r.ok_status)
                        }
                        None => one(&client, r).await,
                    };
                    progress.done.fetch_add(1, Ordering::Relaxed);
                    if sample.failed {
                        progress.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    drop(permit);
                    let _ = tx.send(sample);
                });
                // Reap finished tasks so the set stays as small as what is in flight.
                while pending.try_join_next().is_some() {}
                while let Ok(sample) = rx.try_recv() {
                    total.add(sample);
                }
            }
            drop(tx);
            // Requests still in flight get the request timeout's grace, then are cut off.
            let _ = tokio::time::timeout(Duration::from_secs(15), async {
                while pending.join_next().await.is_some() {}
            })
            .await;
            pending.abort_all();
            while let Ok(sample) = rx.try_recv() {
                total.add(sample);
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    let requests = total.hist.len();
    let q = |p: f64| total.hist.value_at_quantile(p) as f64 / 1000.0;
    Ok(LoadStats {
        requests,
        errors: total.errors,
        transport_errors: total.transport,
        dropped,
        seconds,
        rps: requests as f64 / seconds,
        error_rate: if requests == 0 {
            0.0
        } else {
            total.errors as f64 / requests as f64
        },
        p50_ms: q(0.5),
        p95_ms: q(0.95),
        p99_ms: q(0.99),
        mean_ms: total.hist.mean() / 1000.0,
        max_ms: total.hist.max() as f64 / 1000.0,
        by_status: total.by_status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stats(p50: f64, p95: f64, p99: f64, requests: u64, errors: u64, rps: f64) -> LoadStats {
        LoadStats {
            requests,
            errors,
            transport_errors: 0,
            dropped: 0,
            seconds: 1.0,
            rps,
            error_rate: if requests == 0 {
                0.0
            } else {
                errors as f64 / requests as f64
            },
            p50_ms: p50,
            p95_ms: p95,
            p99_ms: p99,
            mean_ms: p50,
            max_ms: p99,
            by_status: BTreeMap::new(),
        }
    }

    #[test]
    fn thresholds_name_what_they_saw() {
        let t = Thresholds {
            p95: Some(Duration::from_millis(100)),
            error_rate: Some(0.01),
            min_rps: Some(50.0),
            ..Default::default()
        };
        assert!(check_thresholds(&t, &stats(10.0, 90.0, 200.0, 1000, 5, 100.0)).is_empty());
        let v = check_thresholds(&t, &stats(10.0, 150.0, 200.0, 1000, 50, 10.0));
        assert_eq!(v.len(), 3, "{v:?}");
        assert!(v[0].starts_with("p95 ≤ 100ms: saw 150.0ms"), "{v:?}");
        assert!(v[1].contains("error_rate"), "{v:?}");
        assert!(v[2].contains("min_rps"), "{v:?}");
    }

    #[test]
    fn only_loopback_targets_are_allowed() {
        let u = |s: &str| reqwest::Url::parse(s).expect("url");
        assert!(loopback_only(&u("http://127.0.0.1:8080/x")).is_ok());
        assert!(loopback_only(&u("http://localhost:1/")).is_ok());
        assert!(loopback_only(&u("http://[::1]:1/")).is_ok());
        assert!(loopback_only(&u("http://10.0.0.1/")).is_err());
        assert!(loopback_only(&u("http://example.com/")).is_err());
    }

    proptest! {
        #[test]
        fn thresholds_pass_exactly_when_every_limit_holds(
            p95 in 0.0f64..500.0, limit in 1u64..500, errors in 0u64..100, max_rate in 0.0f64..0.2,
        ) {
            let t = Thresholds { p95: Some(Duration::from_millis(limit)), error_rate: Some(max_rate), ..Default::default() };
            let s = stats(1.0, p95, p95, 100, errors, 10.0);
            let ok = p95 <= limit as f64 && (errors as f64 / 100.0) <= max_rate;
            prop_assert_eq!(check_thresholds(&t, &s).is_empty(), ok);
        }

        #[test]
        fn the_weighted_pick_stays_in_range_and_follows_weights(weights in proptest::collection::vec(1u32..10, 1..6), seed in any::<u64>()) {
            let reqs: Vec<PreparedRequest> = weights.iter().map(|w| PreparedRequest::new(
                *w,
                reqwest::Method::GET,
                reqwest::Url::parse("http://127.0.0.1/").expect("url"),
                Default::default(),
                None,
                None,
            )).collect();
            let mut pick = Pick::new(seed, &reqs);
            let mut counts = vec![0u32; reqs.len()];
            for _ in 0..2000 {
                let i = pick.next();
                prop_assert!(i < reqs.len());
                counts[i] += 1;
            }
            // Every entry gets picked (weights ≥ 1 of at most 54).
            prop_assert!(counts.iter().all(|c| *c > 0), "{:?}", counts);
        }
    }

    // Regression: `{{uuid}}` was rendered once per phase, so every order POST of a load
    // step shared one Idempotency-Key and all but the first were replays.
    #[test]
    fn every_send_gets_its_own_uuid_in_url_headers_and_body() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "idempotency-key",
            format!("k-{UUID_PLACEHOLDER}").parse().expect("header"),
        );
        let body = format!("{{\"a\":\"{UUID_PLACEHOLDER}\",\"b\":\"{UUID_PLACEHOLDER}\"}}");
        let r = PreparedRequest::new(
            1,
            reqwest::Method::POST,
            reqwest::Url::parse(&format!("http://127.0.0.1/x/{UUID_PLACEHOLDER}")).expect("url"),
            headers,
            Some(body.into_bytes()),
            None,
        );
        assert!(r.fresh_uuid);
        let one = r.fresh().expect("fresh");
        let two = r.fresh().expect("fresh");
        let key = |p: &PreparedRequest| {
            p.headers["idempotency-key"]
                .to_str()
                .expect("str")
                .to_string()
        };
        assert_ne!(key(&one), key(&two));
        let id = key(&one).trim_start_matches("k-").to_string();
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
        assert_eq!(one.url.path(), format!("/x/{id}"));
        let b: serde_json::Value =
            serde_json::from_slice(one.body.as_deref().expect("body")).expect("json");
        assert_eq!(b["a"], id.as_str());
        assert_eq!(b["b"], id.as_str());
        let plain = PreparedRequest::new(
            1,
            reqwest::Method::GET,
            reqwest::Url::parse("http://127.0.0.1/").expect("url"),
            Default::default(),
            None,
            None,
        );
        assert!(!plain.fresh_uuid && plain.fresh().is_none());
    }

    #[tokio::test]
    async fn a_phase_is_bounded_by_its_request_count() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let req = PreparedRequest::new(
            1,
            reqwest::Method::GET,
            reqwest::Url::parse(&format!("http://{addr}/")).expect("url"),
            Default::default(),
            None,
            None,
        );
        for model in [LoadModel::Vus(4), LoadModel::Rate(2000.0)] {
            let stats = super::run(
                &LoadRun {
                    model,
                    duration: Duration::from_secs(20),
                    max_requests: 200,
                    max_in_flight: 50,
                    requests: vec![req.clone()],
                },
                Arc::new(LoadProgress::default()),
            )
            .await
            .expect("runs");
            assert_eq!(stats.requests + stats.dropped, 200, "{model:?}: {stats:?}");
            assert_eq!(stats.errors, 0, "{stats:?}");
            assert!(stats.seconds < 15.0, "{stats:?}");
        }
        server.abort();
    }
}
