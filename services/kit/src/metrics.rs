//! Prometheus metrics in the text exposition format, without a global registry.
//!
//! Every service gets `http_requests_total{method,route,status}` and
//! `http_request_duration_seconds{method,route}` from the [`track`] middleware, and can
//! register its own counters and gauges with [`Metrics::counter`] and [`Metrics::gauge`].
//! Routes are labelled by their template (`/api/v1/products/{id}`), never the raw path, so
//! label cardinality stays bounded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Upper bounds (seconds) of the latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A monotonically increasing counter.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Add one.
    pub fn inc(&self) {
        self.add(1);
    }
    /// Add `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Clone, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// Set the value.
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    /// Add `d` (may be negative).
    pub fn add(&self, d: i64) {
        self.0.fetch_add(d, Ordering::Relaxed);
    }
    /// Current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default, Clone)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

#[derive(Debug)]
enum Family {
    Counter {
        help: String,
        series: BTreeMap<String, Counter>,
    },
    Gauge {
        help: String,
        series: BTreeMap<String, Gauge>,
    },
}

/// What one (method, route) pair has served: a count per status and the latency histogram.
#[derive(Debug, Default)]
struct RouteSeries {
    statuses: BTreeMap<u16, u64>,
    latency: Histogram,
}

#[derive(Debug, Default)]
struct Inner {
    /// method → route → series. Nested so that recording a request looks the series up with
    /// borrowed `&str`s and allocates only the first time a pair is seen (one lock, no
    /// `String` per request).
    served: Mutex<BTreeMap<String, BTreeMap<String, RouteSeries>>>,
    families: Mutex<BTreeMap<String, Family>>,
}

/// The metrics of one service; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Metrics(Arc<Inner>);

/// Attach this to a response (as an extension) to label it with a route template when
/// axum's matched path is not available (e.g. the gateway's catch-all proxy).
#[derive(Debug, Clone)]
pub struct RouteLabel(pub String);

fn label_set(labels: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{k}=\"{}\"", escape(v));
    }
    s
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn series_name(name: &str, labels: &str) -> String {
    if labels.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{labels}}}")
    }
}

impl Metrics {
    /// An empty set of metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record one served request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut served = self.0.served.lock().unwrap_or_else(|e| e.into_inner());
        if !served.contains_key(method) {
            served.insert(method.to_owned(), BTreeMap::new());
        }
        let routes = served.get_mut(method).expect("inserted above");
        if !routes.contains_key(route) {
            routes.insert(route.to_owned(), RouteSeries::default());
        }
        let series = routes.get_mut(route).expect("inserted above");
        *series.statuses.entry(status).or_insert(0) += 1;
        let h = &mut series.latency;
        h.count += 1;
        h.sum += seconds;
        for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
            if seconds <= *le {
                h.buckets[i] += 1;
            }
        }
    }

    /// The counter `name{labels}`, created on first use. `name` should end in `_total`.
    pub fn counter(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Counter {
        let mut f = self.0.families.lock().unwrap_or_else(|e| e.into_inner());
        let fam = f.entry(name.to_owned()).or_insert_with(|| Family::Counter {
            help: help.to_owned(),
            series: BTreeMap::new(),
        });
        match fam {
            Family::Counter { series, .. } => series.entry(label_set(labels)).or_default().clone(),
            // A name reused with another type: hand out a detached counter rather than
            // corrupt the exposition; this is a programming error caught in review/tests.
            Family::Gauge { .. } => Counter::default(),
        }
    }

    /// The gauge `name{labels}`, created on first use.
    pub fn gauge(&self, name: &str, help: &str, labels: &[(&str, &str)]) -> Gauge {
        let mut f = self.0.families.lock().unwrap_or_else(|e| e.into_inner());
        let fam = f.entry(name.to_owned()).or_insert_with(|| Family::Gauge {
            help: help.to_owned(),
            series: BTreeMap::new(),
        });
        match fam {
            Family::Gauge { series, .. } => series.entry(label_set(labels)).or_default().clone(),
            Family::Counter { .. } => Gauge::default(),
        }
    }

    /// Total requests recorded for `route` with `status` (all methods); for tests.
    pub fn requests_for(&self, route: &str, status: u16) -> u64 {
        let served = self.0.served.lock().unwrap_or_else(|e| e.into_inner());
        served
            .values()
            .filter_map(|routes| routes.get(route))
            .filter_map(|series| series.statuses.get(&status))
            .sum()
    }

    /// The text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP http_requests_total HTTP requests served, by method, route and status.\n# TYPE http_requests_total counter\n");
        let served = self.0.served.lock().unwrap_or_else(|e| e.into_inner());
        let pairs = || {
            served
                .iter()
                .flat_map(|(m, routes)| routes.iter().map(move |(route, s)| (m, route, s)))
        };
        for (m, route, series) in pairs() {
            for (st, n) in &series.statuses {
                let labels =
                    label_set(&[("method", m), ("route", route), ("status", &st.to_string())]);
                let _ = writeln!(out, "http_requests_total{{{labels}}} {n}");
            }
        }
        out.push_str("# HELP http_request_duration_seconds Time to serve HTTP requests.\n# TYPE http_request_duration_seconds histogram\n");
        for (m, route, series) in pairs() {
            let h = &series.latency;
            let base = label_set(&[("method", m), ("route", route)]);
            for (i, le) in LATENCY_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "http_request_duration_seconds_bucket{{{base},le=\"{le}\"}} {}",
                    h.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "http_request_duration_seconds_bucket{{{base},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "http_request_duration_seconds_sum{{{base}}} {}", h.sum);
            let _ = writeln!(
                out,
                "http_request_duration_seconds_count{{{base}}} {}",
                h.count
            );
        }
        drop(served);
        let f = self.0.families.lock().unwrap_or_else(|e| e.into_inner());
        for (name, fam) in f.iter() {
            match fam {
                Family::Counter { help, series } => {
                    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                    for (labels, c) in series {
                        let _ = writeln!(out, "{} {}", series_name(name, labels), c.get());
                    }
                }
                Family::Gauge { help, series } => {
                    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
                    for (labels, g) in series {
                        let _ = writeln!(out, "{} {}", series_name(name, labels), g.get());
                    }
                }
            }
        }
        out
    }
}

/// Middleware: count and time every request by method, route template and status.
pub async fn track(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    metrics.timed(req, |req| next.run(req)).await
}

impl Metrics {
    /// Serve `req` with `inner` and record it, as [`track`] does; the kit's host calls this
    /// inside its single middleware.
    pub(crate) async fn timed<F, Fut>(&self, req: Request, inner: F) -> Response
    where
        F: FnOnce(Request) -> Fut,
        Fut: Future<Output = Response>,
    {
        let start = Instant::now();
        let method = req.method().clone();
        let matched = req.extensions().get::<MatchedPath>().cloned();
        let resp = inner(req).await;
        let route = match resp.extensions().get::<RouteLabel>() {
            Some(label) => label.0.as_str(),
            None => matched.as_ref().map_or("unmatched", MatchedPath::as_str),
        };
        self.observe_request(
            method.as_str(),
            route,
            resp.status().as_u16(),
            start.elapsed().as_secs_f64(),
        );
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_contains_requests_histogram_and_custom_series() {
        let m = Metrics::new();
        m.observe_request("GET", "/x", 200, 0.003);
        m.counter(
            "orders_created_total",
            "Orders created.",
            &[("kind", "a\"b")],
        )
        .add(2);
        m.gauge("in_flight", "In flight.", &[]).set(-1);
        let text = m.render();
        assert!(text.contains("http_requests_total{method=\"GET\",route=\"/x\",status=\"200\"} 1"));
        assert!(text.contains(
            "http_request_duration_seconds_bucket{method=\"GET\",route=\"/x\",le=\"0.0025\"} 0"
        ));
        assert!(text.contains(
            "http_request_duration_seconds_bucket{method=\"GET\",route=\"/x\",le=\"0.005\"} 1"
        ));
        assert!(text.contains("orders_created_total{kind=\"a\\\"b\"} 2"));
        assert!(text.contains("in_flight -1"));
    }
}
