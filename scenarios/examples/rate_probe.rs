//! One open-model load phase (fixed arrival rate) against one URL, with the scenario
//! engine's load generator, printed as a single JSON object. `bench/gateway.sh` uses it as
//! the same meter for every target (upstream directly, nginx, the msctl gateway).
//!
//! `cargo run --release -p msctl-scenarios --example rate_probe -- URL RATE SECONDS
//! [MAX_IN_FLIGHT] [-H 'Name: value']...`
//!
//! The URL must be on 127.0.0.1 (the load generator refuses anything else). The process
//! exits 1 with a message on stderr when the phase cannot run; errors and dropped arrivals
//! are reported in the JSON, not as a failure, so the caller decides what they mean.

use std::sync::Arc;
use std::time::Duration;

use msctl_scenarios::load::{self, LoadProgress, LoadRun, PreparedRequest};
use msctl_scenarios::model::LoadModel;

/// What the command line asked for.
struct Probe {
    url: reqwest::Url,
    rate: f64,
    seconds: f64,
    max_in_flight: u32,
    headers: reqwest::header::HeaderMap,
}

fn usage() -> String {
    "usage: rate_probe URL RATE SECONDS [MAX_IN_FLIGHT] [-H 'Name: value']...".to_owned()
}

fn parse_args(args: impl Iterator<Item = String>) -> Result<Probe, String> {
    let mut positional = Vec::new();
    let mut headers = reqwest::header::HeaderMap::new();
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        if a == "-H" || a == "--header" {
            let h = args
                .next()
                .ok_or_else(|| format!("{a} needs a value like 'Name: value'\n{}", usage()))?;
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| format!("header {h:?} must look like 'Name: value'"))?;
            let name: reqwest::header::HeaderName = name
                .trim()
                .parse()
                .map_err(|e| format!("header name in {h:?} is invalid: {e}"))?;
            let value: reqwest::header::HeaderValue = value
                .trim()
                .parse()
                .map_err(|e| format!("header value in {h:?} is invalid: {e}"))?;
            headers.append(name, value);
        } else if a == "-h" || a == "--help" {
            return Err(usage());
        } else {
            positional.push(a);
        }
    }
    let [url, rate, seconds, rest @ ..] = positional.as_slice() else {
        return Err(usage());
    };
    let url = reqwest::Url::parse(url).map_err(|e| format!("URL {url:?} is invalid: {e}"))?;
    load::loopback_only(&url)?;
    let rate: f64 = rate
        .parse()
        .ok()
        .filter(|r: &f64| r.is_finite() && *r > 0.0 && *r <= 1_000_000.0)
        .ok_or_else(|| {
            format!("RATE {rate:?} must be a number of requests per second in (0, 1e6]")
        })?;
    let seconds: f64 = seconds
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 3600.0)
        .ok_or_else(|| format!("SECONDS {seconds:?} must be a number in (0, 3600]"))?;
    let max_in_flight = match rest {
        [] => 256,
        [m] => m
            .parse()
            .ok()
            .filter(|m| *m > 0)
            .ok_or_else(|| format!("MAX_IN_FLIGHT {m:?} must be a positive integer"))?,
        _ => return Err(usage()),
    };
    Ok(Probe {
        url,
        rate,
        seconds,
        max_in_flight,
        headers,
    })
}

fn main() {
    let probe = match parse_args(std::env::args().skip(1)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("rate_probe: {e}");
            std::process::exit(2);
        }
    };
    match run(&probe) {
        Ok(json) => println!("{json}"),
        Err(e) => {
            eprintln!("rate_probe: {e}");
            std::process::exit(1);
        }
    }
}

fn run(probe: &Probe) -> Result<serde_json::Value, String> {
    // One worker thread, as wrk gets in the comparisons: on a small machine the meter must
    // not take the cores the measured servers need.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let duration = Duration::from_secs_f64(probe.seconds);
    let stats = rt.block_on(load::run(
        &LoadRun {
            model: LoadModel::Rate(probe.rate),
            duration,
            // Twice what the rate asks for: the bound is the duration.
            max_requests: ((probe.rate * probe.seconds * 2.0) as u64).max(1),
            max_in_flight: probe.max_in_flight,
            requests: vec![PreparedRequest::new(
                1,
                reqwest::Method::GET,
                probe.url.clone(),
                probe.headers.clone(),
                None,
                None,
            )],
        },
        Arc::new(LoadProgress::default()),
    ))?;
    Ok(serde_json::json!({
        "url": probe.url.as_str(),
        "target_rps": probe.rate,
        "seconds": stats.seconds,
        "requests": stats.requests,
        "achieved_rps": stats.rps,
        "p50_ms": stats.p50_ms,
        "p95_ms": stats.p95_ms,
        "p99_ms": stats.p99_ms,
        "max_ms": stats.max_ms,
        "errors": stats.errors,
        "transport_errors": stats.transport_errors,
        "dropped": stats.dropped,
        "max_in_flight": probe.max_in_flight,
        "by_status": stats.by_status,
    }))
}
