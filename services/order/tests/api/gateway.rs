//! The whole order path through the real gateway and registry: JWT → gateway →
//! order-service → saga over product-service and payment-service found through the
//! registry. Prints the measured throughput and latency.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use service_kit::config::JwtConfig;
use service_kit::jwt::JwtKeys;
use service_kit::ServiceConfig;

use crate::helpers::*;

const SECRET: &str = "order-tests-jwt-secret-0123456789";

fn start(running: service_kit::RunningService) -> Running {
    let (addr, cancel) = (running.local_addr(), running.shutdown_token());
    let task = tokio::spawn(async move {
        let _ = running.run_until_stopped().await;
    });
    Running {
        addr,
        cancel,
        task: Some(task),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_flow_end_to_end_through_the_gateway() {
    const ORDERS: usize = 100;
    const CLIENTS: usize = 10;
    let world = World::new().await;
    let registry = start(
        registry::build(
            ServiceConfig::for_tests("registry"),
            registry::RegistrySettings {
                default_ttl: Duration::from_secs(2),
                health_interval: Duration::from_millis(500),
                health_timeout: Duration::from_millis(500),
                health_failures: 2,
                expiry_interval: Duration::from_millis(100),
            },
        )
        .await
        .expect("registry"),
    );
    let registry_url = registry.url("");
    let shop = Shop::open_with(Some(&registry_url)).await;
    let order = spawn_order(OrderSpec {
        registry: Some(registry_url.clone()),
        ..OrderSpec::new(&world)
    })
    .await;
    let jwt = JwtConfig {
        secret: SECRET.into(),
        issuer: "msctl".into(),
    };
    let mut gw_config = gateway::GatewayConfig::with_jwt(jwt.clone());
    gw_config.rate_limit = None;
    let mut gw_service = ServiceConfig::for_tests("gateway");
    gw_service.registry = Some(registered(&registry_url));
    gw_service.jwt = Some(jwt.clone());
    let gw = start(
        gateway::build(gw_service, gw_config)
            .await
            .expect("gateway"),
    );
    let http = http();
    let product = shop.add_product(1500, ORDERS as i64).await;
    let token = |user: &str| {
        JwtKeys::new(&jwt)
            .issue(user, Duration::from_secs(600))
            .expect("sign")
            .0
    };
    // Wait until the gateway routes to order-service and the saga finds its participants.
    let warm = token("warmup");
    let first = eventually("gateway routes orders", Duration::from_secs(30), || async {
        let r = http
            .post(gw.url("/api/v1/orders"))
            .bearer_auth(&warm)
            .json(&json!({"items": [{"product_id": product, "quantity": 1}], "card": GOOD_CARD}))
            .send()
            .await
            .ok()?;
        (r.status() == 202).then_some(r.json::<Value>().await.ok()?)
    })
    .await;
    let first_id = first["id"].as_str().expect("id").to_owned();
    eventually("first order confirmed", Duration::from_secs(30), || async {
        let r = http
            .get(gw.url(&format!("/api/v1/orders/{first_id}")))
            .bearer_auth(&warm)
            .send()
            .await
            .ok()?;
        let o: Value = r.json().await.ok()?;
        (o["status"] == "confirmed").then_some(())
    })
    .await;

    // Measure: CLIENTS concurrent clients place ORDERS - 1 orders through the gateway.
    let started = Instant::now();
    let per_client = (ORDERS - 1) / CLIENTS;
    let tokens: Vec<String> = (0..CLIENTS).map(|c| token(&format!("gw{c}"))).collect();
    let placed: Vec<Vec<Duration>> = futures_util::future::join_all(tokens.iter().map(|t| {
        let http = http.clone();
        let url = gw.url("/api/v1/orders");
        async move {
            let mut accept = Vec::new();
            for _ in 0..per_client {
                let t0 = Instant::now();
                let r = http
                    .post(&url)
                    .bearer_auth(t)
                    .json(&json!({"items": [{"product_id": product, "quantity": 1}], "card": GOOD_CARD}))
                    .send()
                    .await
                    .expect("POST through the gateway");
                assert_eq!(r.status(), 202);
                accept.push(t0.elapsed());
            }
            accept
        }
    }))
    .await;
    let total = per_client * CLIENTS + 1;
    eventually("every saga finished", Duration::from_secs(180), || async {
        let s = get_json(&http, &order.url("/admin/sagas"), "").await;
        (s["orders"]["pending"] == 0).then_some(())
    })
    .await;
    let wall = started.elapsed();
    let overview = get_json(
        &http,
        &order.url(&format!("/admin/sagas?limit={total}")),
        "",
    )
    .await;
    assert_eq!(overview["orders"]["confirmed"], total as i64, "{overview}");
    let mut settle: Vec<i64> = overview["recent"]
        .as_array()
        .expect("recent")
        .iter()
        .filter_map(|s| {
            let c = chrono::DateTime::parse_from_rfc3339(s["created_at"].as_str()?).ok()?;
            let u = chrono::DateTime::parse_from_rfc3339(s["updated_at"].as_str()?).ok()?;
            Some((u - c).num_milliseconds())
        })
        .collect();
    settle.sort();
    let mut accept: Vec<Duration> = placed.into_iter().flatten().collect();
    accept.sort();
    let p = |v: usize, q: f64| ((v as f64 * q).ceil() as usize).clamp(1, v) - 1;
    println!(
        "gateway figures: {} orders from {CLIENTS} clients in {wall:?} = {:.1} orders/s placed→confirmed; \
         202 latency p50 {:?} p99 {:?}; order created→confirmed p50 {} ms p99 {} ms",
        total - 1,
        (total - 1) as f64 / wall.as_secs_f64(),
        accept[p(accept.len(), 0.5)],
        accept[p(accept.len(), 0.99)],
        settle[p(settle.len(), 0.5)],
        settle[p(settle.len(), 0.99)],
    );
    assert_eq!(
        shop.stock(product).await,
        (ORDERS as i64 - total as i64, 0, total as i64)
    );
    let ledger = shop.ledger().await;
    assert_eq!(
        ledger["net_cents"].as_i64(),
        Some(1500 * total as i64),
        "{ledger}"
    );
    gw.stop().await;
    order.stop().await;
    shop.close().await;
    registry.stop().await;
}
