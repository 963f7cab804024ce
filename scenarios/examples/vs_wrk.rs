//! Throughput of the scenario load generator against wrk on the same trivial endpoint, in
//! the same run: a tiny axum server on 127.0.0.1:0, then wrk, then the load generator, each
//! for the same duration and connection count.
//!
//! `cargo run --release -p msctl-scenarios --example vs_wrk -- [SECONDS] [CONNECTIONS]`

use std::sync::Arc;
use std::time::Duration;

use msctl_scenarios::load::{self, LoadProgress, LoadRun, PreparedRequest};
use msctl_scenarios::model::LoadModel;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let secs: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5);
    let conns: u32 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(32);

    // The server gets its own runtime so the two clients measure against the same thing.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let addr = server_rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok::<_, std::io::Error>(addr)
    })?;
    let url = format!("http://{addr}/health");

    let out = std::process::Command::new("wrk")
        .args([
            "-t",
            "1",
            "-c",
            &conns.to_string(),
            "-d",
            &format!("{secs}s"),
            &url,
        ])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let wrk_rps: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("cannot read wrk's output:\n{text}"))?;

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let stats = client_rt.block_on(load::run(
        &LoadRun {
            model: LoadModel::Vus(conns),
            duration: Duration::from_secs(secs),
            max_requests: msctl_scenarios::model::MAX_LOAD_REQUESTS,
            max_in_flight: conns,
            requests: vec![PreparedRequest::new(
                1,
                reqwest::Method::GET,
                reqwest::Url::parse(&url)?,
                Default::default(),
                None,
                None,
            )],
        },
        Arc::new(LoadProgress::default()),
    ))?;
    println!(
        "endpoint {url}, {secs}s, {conns} connections, one client thread each (cores: {})",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("wrk:            {wrk_rps:>10.0} req/s");
    println!(
        "msctl load:     {:>10.0} req/s  (p50 {:.2}ms p99 {:.2}ms, {} errors)",
        stats.rps, stats.p50_ms, stats.p99_ms, stats.errors
    );
    println!("ratio msctl/wrk: {:.2}", stats.rps / wrk_rps);
    Ok(())
}
