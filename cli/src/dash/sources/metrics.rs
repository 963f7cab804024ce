//! Request rate, p99 latency and error share of every replica that publishes Prometheus
//! metrics, from two consecutive scrapes of its `/metrics` on its 127.0.0.1 port. Probe
//! and scrape routes (`/health`, `/ready`, `/metrics`) and admin calls (`/admin/…`, which
//! include the dashboard's own polling) are left out so that an idle stack reads 0 req/s.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::dash::state::{Replica, Traffic, Update};

/// Scrape interval.
pub const EVERY: Duration = Duration::from_secs(2);

/// Cumulative counters of one scrape.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sample {
    /// Requests.
    pub requests: f64,
    /// 5xx answers.
    pub errors: f64,
    /// Latency histogram: (upper bound in seconds, cumulative count), ascending.
    pub buckets: Vec<(f64, f64)>,
}

/// Routes that are probes or admin calls rather than traffic.
fn is_probe(labels: &str) -> bool {
    label(labels, "route")
        .is_some_and(|r| matches!(r, "/health" | "/ready" | "/metrics") || r.starts_with("/admin"))
}

/// The value of label `name` in a `{a="x",b="y"}` label set.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("{name}=\"");
    let start = labels.find(&key)? + key.len();
    let rest = &labels[start..];
    rest.find('"').map(|end| &rest[..end])
}

/// Parses the Prometheus text format for `http_requests_total` and
/// `http_request_duration_seconds_bucket`, summed over routes and methods.
pub fn parse(text: &str) -> Sample {
    let mut sample = Sample::default();
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match series.find('{') {
            Some(i) => (&series[..i], &series[i..]),
            None => (series, ""),
        };
        if is_probe(labels) {
            continue;
        }
        match name {
            "http_requests_total" => {
                sample.requests += value;
                if label(labels, "status").is_some_and(|s| s.starts_with('5')) {
                    sample.errors += value;
                }
            }
            "http_request_duration_seconds_bucket" => {
                let le = match label(labels, "le") {
                    Some("+Inf") => f64::INFINITY,
                    Some(v) => match v.parse() {
                        Ok(v) => v,
                        Err(_) => continue,
                    },
                    None => continue,
                };
                match buckets.iter_mut().find(|(b, _)| *b == le) {
                    Some((_, c)) => *c += value,
                    None => buckets.push((le, value)),
                }
            }
            _ => {}
        }
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    sample.buckets = buckets;
    sample
}

/// The 99th percentile of a cumulative histogram, interpolated inside its bucket like
/// PromQL's `histogram_quantile`; `None` when it is empty.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let within = count - prev.1;
            let frac = if within > 0.0 {
                (rank - prev.1) / within
            } else {
                1.0
            };
            return Some(prev.0 + (le - prev.0) * frac);
        }
        prev = (le, count);
    }
    Some(prev.0)
}

/// Traffic between two scrapes `secs` apart. A counter that went down (the replica
/// restarted) counts from zero.
pub fn traffic(before: &Sample, after: &Sample, secs: f64) -> Traffic {
    let reset = after.requests < before.requests;
    let base = if reset { &Sample::default() } else { before };
    let requests = after.requests - base.requests;
    let errors = after.errors - base.errors;
    let delta: Vec<(f64, f64)> = after
        .buckets
        .iter()
        .map(|&(le, c)| {
            let was = base
                .buckets
                .iter()
                .find(|(b, _)| *b == le)
                .map_or(0.0, |x| x.1);
            (le, (c - was).max(0.0))
        })
        .collect();
    Traffic {
        rps: if secs > 0.0 { requests / secs } else { 0.0 },
        p99: quantile(0.99, &delta),
        error_percent: if requests > 0.0 {
            errors / requests * 100.0
        } else {
            0.0
        },
    }
}

/// Scrapes every replica with a metrics port every [`EVERY`].
pub async fn run(
    client: reqwest::Client,
    rows: watch::Receiver<Vec<Replica>>,
    tx: mpsc::Sender<Update>,
    cancel: CancellationToken,
) {
    let mut last: BTreeMap<String, (Instant, Sample)> = BTreeMap::new();
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tick.tick() => {}
        }
        let targets: Vec<(String, u16, String)> = rows
            .borrow()
            .iter()
            .filter(|r| r.state == "running")
            .filter_map(|r| {
                r.metrics
                    .as_ref()
                    .map(|(port, path)| (r.name.clone(), *port, path.clone()))
            })
            .collect();
        let scrapes = targets.into_iter().map(|(name, port, path)| {
            let client = client.clone();
            async move {
                let url = format!("http://127.0.0.1:{port}{path}");
                let got = async {
                    let resp = client.get(&url).send().await?.error_for_status()?;
                    resp.text().await
                }
                .await;
                (name, got.map(|t| parse(&t)).map_err(|e| e.to_string()))
            }
        });
        let results = futures_util::future::join_all(scrapes).await;
        let now = Instant::now();
        let mut out = BTreeMap::new();
        let mut seen = Vec::new();
        for (name, result) in results {
            seen.push(name.clone());
            match result {
                Ok(sample) => {
                    if let Some((at, before)) = last.get(&name) {
                        let secs = now.duration_since(*at).as_secs_f64();
                        out.insert(name.clone(), Ok(traffic(before, &sample, secs)));
                    }
                    last.insert(name, (now, sample));
                }
                Err(e) => {
                    last.remove(&name);
                    out.insert(name, Err(e));
                }
            }
        }
        last.retain(|k, _| seen.contains(k));
        if tx.send(Update::Traffic(out)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP http_requests_total Requests.
http_requests_total{method="GET",route="/health",status="200"} 1000
http_requests_total{method="GET",route="/admin/upstreams",status="200"} 77
http_requests_total{method="GET",route="/api/v1/products",status="200"} 90
http_requests_total{method="GET",route="/api/v1/products",status="503"} 10
http_request_duration_seconds_bucket{method="GET",route="/api/v1/products",le="0.01"} 50
http_request_duration_seconds_bucket{method="GET",route="/api/v1/products",le="0.1"} 99
http_request_duration_seconds_bucket{method="GET",route="/api/v1/products",le="+Inf"} 100
http_request_duration_seconds_bucket{method="GET",route="/health",le="+Inf"} 1000
"#;

    #[test]
    fn probes_are_not_traffic() {
        let s = parse(TEXT);
        assert_eq!(s.requests, 100.0);
        assert_eq!(s.errors, 10.0);
        assert_eq!(
            s.buckets,
            vec![(0.01, 50.0), (0.1, 99.0), (f64::INFINITY, 100.0)]
        );
    }

    #[test]
    fn rate_p99_and_errors_come_from_the_difference() {
        let t = traffic(&Sample::default(), &parse(TEXT), 10.0);
        assert_eq!(t.rps, 10.0);
        assert_eq!(t.error_percent, 10.0);
        let p99 = t.p99.expect("requests");
        assert!((p99 - 0.1).abs() < 1e-9, "{p99}");
    }

    #[test]
    fn a_restarted_replica_counts_from_zero() {
        // Counters reset by a restart must not show as negative traffic.
        let before = Sample {
            requests: 500.0,
            errors: 0.0,
            buckets: vec![],
        };
        let t = traffic(&before, &parse(TEXT), 10.0);
        assert_eq!(t.rps, 10.0);
    }

    #[test]
    fn an_empty_histogram_has_no_p99() {
        assert_eq!(quantile(0.99, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None);
    }
}
