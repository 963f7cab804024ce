//! The registry's HTTP API against a real registry on 127.0.0.1.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode as AxumStatus;
use axum::routing::get;
use axum::Router;
use registry::RegistrySettings;
use serde_json::{json, Value};
use service_kit::config::RegistryConfig;
use service_kit::{ServiceConfig, ServiceHost};
use tokio_util::sync::CancellationToken;

struct Reg {
    url: String,
    cancel: CancellationToken,
}

impl Drop for Reg {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

async fn spawn_registry() -> Reg {
    let settings = RegistrySettings {
        default_ttl: Duration::from_secs(10),
        health_interval: Duration::from_millis(100),
        health_timeout: Duration::from_millis(500),
        health_failures: 2,
        expiry_interval: Duration::from_millis(50),
    };
    let running = registry::build(ServiceConfig::for_tests("registry"), settings)
        .await
        .expect("binds");
    let url = format!("http://{}", running.local_addr());
    let cancel = running.shutdown_token();
    tokio::spawn(running.run_until_stopped());
    Reg { url, cancel }
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !check().await {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn registration(id: &str, port: u16) -> Value {
    json!({"service": "product-service", "id": id, "address": "127.0.0.1", "port": port})
}

async fn instances(http: &reqwest::Client, reg: &Reg, query: &str) -> Value {
    http.get(format!("{}/v1/services/product-service{query}", reg.url))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn register_heartbeat_deregister_and_validation() {
    let reg = spawn_registry().await;
    let http = reqwest::Client::new();
    for bad in [
        json!({"service": "bad name!", "id": "a", "address": "h", "port": 1}),
        json!({"service": "s", "id": "", "address": "h", "port": 1}),
        json!({"service": "s", "id": "a", "address": "h", "port": 0}),
        json!({"service": "s", "id": "a", "address": "h", "port": 1, "health_url": "ftp://x"}),
        json!({"service": "s", "id": "a", "address": "h", "port": 1, "ttl_ms": 1}),
        json!({"service": "s"}),
    ] {
        let r = http
            .put(format!("{}/v1/instances", reg.url))
            .json(&bad)
            .send()
            .await
            .expect("answer");
        assert!(r.status().is_client_error(), "{bad} -> {}", r.status());
        assert!(r.json::<Value>().await.expect("json body")["code"].is_string());
    }
    let r = http
        .put(format!("{}/v1/instances", reg.url))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 400);

    let r = http
        .put(format!("{}/v1/instances", reg.url))
        .json(&registration("p-1", 9001))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    let v = instances(&http, &reg, "").await;
    assert_eq!(v["instances"][0]["id"], "p-1");
    assert_eq!(v["instances"][0]["healthy"], true);
    let list: Value = http
        .get(format!("{}/v1/services", reg.url))
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    assert_eq!(
        list["services"][0],
        json!({"name": "product-service", "instances": 1, "healthy": 1})
    );

    assert_eq!(
        http.put(format!("{}/v1/instances/p-1/heartbeat", reg.url))
            .send()
            .await
            .expect("answer")
            .status(),
        200
    );
    let r = http
        .put(format!("{}/v1/instances/nope/heartbeat", reg.url))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 404);
    assert_eq!(
        r.json::<Value>().await.expect("json")["code"],
        "unknown_instance"
    );
    assert_eq!(
        http.delete(format!("{}/v1/instances/p-1", reg.url))
            .send()
            .await
            .expect("answer")
            .status(),
        204
    );
    assert_eq!(
        http.delete(format!("{}/v1/instances/p-1", reg.url))
            .send()
            .await
            .expect("answer")
            .status(),
        404
    );
    assert_eq!(instances(&http, &reg, "").await["instances"], json!([]));
}

#[tokio::test]
async fn instances_without_heartbeats_expire() {
    let reg = spawn_registry().await;
    let http = reqwest::Client::new();
    let mut r = registration("short", 9002);
    r["ttl_ms"] = json!(300);
    http.put(format!("{}/v1/instances", reg.url))
        .json(&r)
        .send()
        .await
        .expect("answer");
    assert_eq!(
        instances(&http, &reg, "").await["instances"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    eventually("expiry", || async {
        instances(&http, &reg, "").await["instances"] == json!([])
    })
    .await;
}

#[tokio::test]
async fn blocking_query_returns_on_change_or_after_wait() {
    let reg = spawn_registry().await;
    let http = reqwest::Client::new();
    let index = instances(&http, &reg, "").await["index"]
        .as_u64()
        .expect("index");

    let start = Instant::now();
    let v = instances(&http, &reg, &format!("?index={index}&wait=200ms")).await;
    assert_eq!(v["index"].as_u64(), Some(index));
    assert!(start.elapsed() >= Duration::from_millis(200));

    let (h2, url) = (http.clone(), reg.url.clone());
    let registrar = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        h2.put(format!("{url}/v1/instances"))
            .json(&registration("p-9", 9009))
            .send()
            .await
            .expect("answer");
    });
    let start = Instant::now();
    let v = instances(&http, &reg, &format!("?index={index}&wait=20s")).await;
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "blocking query did not wake up"
    );
    assert!(v["index"].as_u64() > Some(index));
    assert_eq!(v["instances"][0]["id"], "p-9");
    registrar.await.expect("registered");

    let r = http
        .get(format!("{}/v1/services/product-service?index=x", reg.url))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 400);
    let r = http
        .get(format!(
            "{}/v1/services/product-service?index=1&wait=soon",
            reg.url
        ))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn failing_health_checks_hide_an_instance_until_it_recovers() {
    let reg = spawn_registry().await;
    let http = reqwest::Client::new();
    let status = Arc::new(AtomicU16::new(200));
    let app = Router::new()
        .route(
            "/health",
            get(|State(s): State<Arc<AtomicU16>>| async move {
                AxumStatus::from_u16(s.load(Ordering::SeqCst)).unwrap_or(AxumStatus::OK)
            }),
        )
        .with_state(status.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let mut r = registration("checked", port);
    r["health_url"] = json!(format!("http://127.0.0.1:{port}/health"));
    http.put(format!("{}/v1/instances", reg.url))
        .json(&r)
        .send()
        .await
        .expect("answer");

    status.store(500, Ordering::SeqCst);
    eventually("unhealthy instance hidden", || async {
        instances(&http, &reg, "").await["instances"] == json!([])
    })
    .await;
    let all = instances(&http, &reg, "?all=true").await;
    assert_eq!(all["instances"][0]["healthy"], false);
    status.store(200, Ordering::SeqCst);
    eventually("recovered instance visible", || async {
        instances(&http, &reg, "").await["instances"]
            .as_array()
            .map(Vec::len)
            == Some(1)
    })
    .await;
}

#[tokio::test]
async fn a_kit_service_registers_and_deregisters_on_graceful_shutdown() {
    let reg = spawn_registry().await;
    let http = reqwest::Client::new();
    let mut cfg = ServiceConfig::for_tests("product-service");
    cfg.registry = Some(RegistryConfig {
        url: reg.url.clone(),
        advertise_host: "127.0.0.1".into(),
        instance_id: None,
        heartbeat: Duration::from_millis(100),
        ttl: Duration::from_secs(30),
    });
    let running = ServiceHost::new(cfg)
        .bind(Router::new())
        .await
        .expect("binds");
    let port = running.local_addr().port();
    let stop = running.shutdown_token();
    let task = tokio::spawn(running.run_until_stopped());
    eventually("registered", || async {
        instances(&http, &reg, "").await["instances"][0]["port"] == json!(port)
    })
    .await;
    assert_eq!(
        instances(&http, &reg, "").await["instances"][0]["id"],
        format!("product-service-127.0.0.1-{port}")
    );
    stop.cancel();
    task.await.expect("joined").expect("clean shutdown");
    // Gone at once, not after the 30 s TTL.
    assert_eq!(instances(&http, &reg, "").await["instances"], json!([]));
}
