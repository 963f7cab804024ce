//! Throughput of the scenario load generator against wrk on the same trivial endpoint, in
//! the same run: a tiny axum server on 127.0.0.1:0 (its own one-thread runtime), then wrk
//! (one thread), then the load generator (one-thread runtime, closed model), each for the
//! same duration and connection count, after a short warm-up of each.
//!
//! `cargo run --release -p msctl-scenarios --example vs_wrk -- [SECONDS] [CONNECTIONS] [--json]`
//!
//! With `--json` it prints one JSON object (what `bench/loadgen.sh` reads); otherwise a few
//! readable lines. Exits 1 with a message when wrk is missing or its output cannot be read.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use msctl_scenarios::load::{self, LoadProgress, LoadRun, LoadStats, PreparedRequest};
use msctl_scenarios::model::LoadModel;

/// What one wrk run measured.
#[derive(Debug, Default)]
struct WrkStats {
    requests: u64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
    socket_errors: u64,
}

/// A wrk duration (`812.00us`, `1.20ms`, `2.01s`, `1.00m`) in milliseconds.
fn wrk_ms(v: &str) -> Option<f64> {
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().ok()?;
    let factor = match unit {
        "us" => 0.001,
        "ms" => 1.0,
        "s" => 1000.0,
        "m" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return None,
    };
    Some(n * factor)
}

fn parse_wrk(text: &str) -> Option<WrkStats> {
    let mut s = WrkStats::default();
    let mut seen_rps = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            s.rps = v.trim().parse().ok()?;
            seen_rps = true;
        } else if let Some(v) = t.strip_prefix("50%") {
            s.p50_ms = wrk_ms(v.trim())?;
        } else if let Some(v) = t.strip_prefix("99%") {
            s.p99_ms = wrk_ms(v.trim())?;
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            s.non_2xx = v.trim().parse().ok()?;
        } else if let Some(v) = t.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            s.socket_errors = v
                .split(',')
                .filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum();
        } else if t.contains(" requests in ") {
            s.requests = t.split_whitespace().next()?.parse().ok()?;
        }
    }
    seen_rps.then_some(s)
}

fn wrk(url: &str, secs: u64, conns: u32) -> Result<WrkStats, String> {
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{conns}"),
            &format!("-d{secs}s"),
            "--latency",
            url,
        ])
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                "wrk is not installed; install it with `apt-get install wrk`".to_owned()
            }
            _ => format!("cannot run wrk: {e}"),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "wrk failed ({}): {}{}",
            out.status,
            text,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    parse_wrk(&text).ok_or_else(|| format!("cannot read wrk's output:\n{text}"))
}

fn msctl_load(
    rt: &tokio::runtime::Runtime,
    url: &str,
    secs: u64,
    conns: u32,
) -> Result<LoadStats, String> {
    let url = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
    rt.block_on(load::run(
        &LoadRun {
            model: LoadModel::Vus(conns),
            duration: Duration::from_secs(secs),
            max_requests: msctl_scenarios::model::MAX_LOAD_REQUESTS,
            max_in_flight: conns,
            requests: vec![PreparedRequest::new(
                1,
                reqwest::Method::GET,
                url,
                Default::default(),
                None,
                None,
            )],
        },
        Arc::new(LoadProgress::default()),
    ))
}

fn main() {
    if let Err(e) = run() {
        eprintln!("vs_wrk: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let mut json = false;
    let mut positional = Vec::new();
    for a in std::env::args().skip(1) {
        if a == "--json" {
            json = true;
        } else {
            positional.push(a);
        }
    }
    let usage = "usage: vs_wrk [SECONDS] [CONNECTIONS] [--json]";
    let secs: u64 = match positional.first() {
        None => 5,
        Some(s) => s
            .parse()
            .ok()
            .filter(|s| (1..=600).contains(s))
            .ok_or_else(|| format!("SECONDS {s:?} must be 1–600\n{usage}"))?,
    };
    let conns: u32 = match positional.get(1) {
        None => 32,
        Some(c) => c
            .parse()
            .ok()
            .filter(|c| (1..=4096).contains(c))
            .ok_or_else(|| format!("CONNECTIONS {c:?} must be 1–4096\n{usage}"))?,
    };
    if positional.len() > 2 {
        return Err(usage.to_owned());
    }

    // The server gets its own runtime so the two clients measure against the same thing.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the server runtime: {e}"))?;
    let addr = server_rt
        .block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
            tokio::spawn(async move { axum::serve(listener, app).await });
            Ok::<_, std::io::Error>(addr)
        })
        .map_err(|e| format!("cannot start the test server on 127.0.0.1: {e}"))?;
    let url = format!("http://{addr}/health");
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the client runtime: {e}"))?;

    // Warm-up: connections, allocator and page cache settle before anything is measured.
    wrk(&url, 1, conns)?;
    msctl_load(&client_rt, &url, 1, conns)?;

    let w = wrk(&url, secs, conns)?;
    let m = msctl_load(&client_rt, &url, secs, conns)?;
    if w.requests == 0 || m.requests == 0 {
        return Err(format!(
            "a tool completed no request (wrk {}, msctl {}); is the machine overloaded?",
            w.requests, m.requests
        ));
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    if json {
        println!(
            "{}",
            serde_json::json!({
                "url": url,
                "seconds": secs,
                "connections": conns,
                "cores": cores,
                "wrk": {"requests": w.requests, "rps": w.rps, "p50_ms": w.p50_ms,
                        "p99_ms": w.p99_ms, "errors": w.non_2xx + w.socket_errors},
                "msctl": {"requests": m.requests, "rps": m.rps, "p50_ms": m.p50_ms,
                          "p99_ms": m.p99_ms, "errors": m.errors},
                "ratio": m.rps / w.rps,
            })
        );
    } else {
        println!(
            "endpoint {url}, {secs}s, {conns} connections, one client thread each (cores: {cores})"
        );
        println!(
            "wrk:            {:>10.0} req/s  (p50 {:.2}ms p99 {:.2}ms, {} errors)",
            w.rps,
            w.p50_ms,
            w.p99_ms,
            w.non_2xx + w.socket_errors
        );
        println!(
            "msctl load:     {:>10.0} req/s  (p50 {:.2}ms p99 {:.2}ms, {} errors)",
            m.rps, m.p50_ms, m.p99_ms, m.errors
        );
        println!("ratio msctl/wrk: {:.2}", m.rps / w.rps);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let text = "Running 1s test @ http://127.0.0.1:1/health
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   160.50us   80.00us   2.00ms   90.00%
  Latency Distribution
     50%  150.00us
     75%  170.00us
     90%  200.00us
     99%    1.20ms
  40000 requests in 1.00s, 3.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 5
Requests/sec:  39990.12
Transfer/sec:      3.00MB
";
        let s = parse_wrk(text).expect("parsed");
        assert_eq!(s.requests, 40000);
        assert!((s.rps - 39990.12).abs() < 1e-6);
        assert!((s.p50_ms - 0.15).abs() < 1e-9);
        assert!((s.p99_ms - 1.2).abs() < 1e-9);
        assert_eq!(s.non_2xx, 5);
        assert_eq!(s.socket_errors, 3);
        assert!(parse_wrk("garbage").is_none());
    }
}
