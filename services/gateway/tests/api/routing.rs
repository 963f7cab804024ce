use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_prefix_balances_and_sets_identity() {
    let reg = spawn_registry(0).await;
    let p1 = spawn_upstream("product-service", &reg.url(), "a").await;
    let p2 = spawn_upstream("product-service", &reg.url(), "b").await;
    let u1 = spawn_upstream("user-service", &reg.url(), "a").await;
    wait_registered(&reg.url(), "product-service", 2).await;
    wait_registered(&reg.url(), "user-service", 1).await;
    let gw = spawn_gateway(&reg.url(), gateway_config()).await;
    let http = reqwest::Client::new();

    // Public product reads reach both instances in turn; a client-supplied identity header
    // never reaches the upstream.
    let mut seen = HashSet::new();
    for _ in 0..4 {
        let r = http
            .get(format!("{}/api/v1/products/42?x=1", gw.url()))
            .header("x-user-id", "admin")
            .send()
            .await
            .expect("gateway answers");
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().contains_key("x-request-id"));
        let v: Value = r.json().await.expect("json");
        assert!(
            v["headers"].get("x-user-id").is_none(),
            "spoofed identity forwarded: {v}"
        );
        seen.insert(v["instance"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(
        seen,
        HashSet::from([
            "product-service-a".to_owned(),
            "product-service-b".to_owned()
        ])
    );

    // Authenticated user route: X-User-Id comes from the token, the request id and a
    // traceparent are propagated.
    let r = http
        .get(format!("{}/api/v1/users/me", gw.url()))
        .bearer_auth(token("user-7"))
        .header("x-user-id", "someone-else")
        .header("x-request-id", "req-abc")
        .send()
        .await
        .expect("gateway answers");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["instance"], "user-service-a");
    assert_eq!(v["headers"]["x-user-id"], "user-7");
    assert_eq!(v["headers"]["x-request-id"], "req-abc");
    assert!(v["headers"]["traceparent"]
        .as_str()
        .is_some_and(|t| t.starts_with("00-")));

    // Never routed: internal and admin paths, unknown routes.
    for path in [
        "/internal/x",
        "/api/v1/products/internal/reserve",
        "/api/v1/widgets/1",
        "/api/v1/users/admin",
    ] {
        let r = http
            .get(format!("{}{path}", gw.url()))
            .bearer_auth(token("u"))
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{path}");
        let v: Value = r.json().await.expect("json error body");
        assert!(v["code"].is_string());
    }
    // A route with no registered instance is a clear 503.
    let r = http
        .get(format!("{}/api/v1/orders/1", gw.url()))
        .bearer_auth(token("u"))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        r.json::<Value>().await.expect("json")["code"],
        "no_instances"
    );

    // The admin API needs the token and shows the upstreams.
    let r = http
        .get(format!("{}/admin/upstreams", gw.url()))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = http
        .get(format!("{}/admin/upstreams", gw.url()))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.expect("json");
    let products = v["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["service"] == "product-service")
        .cloned()
        .expect("product-service listed");
    assert_eq!(products["instances"].as_array().map(Vec::len), Some(2));
    assert_eq!(products["instances"][0]["breaker"], "closed");

    // Metrics are labelled by route template.
    let m = http
        .get(format!("{}/metrics", gw.url()))
        .send()
        .await
        .expect("answer")
        .text()
        .await
        .expect("text");
    assert!(
        m.contains("route=\"/api/v1/products\",status=\"200\""),
        "{m}"
    );

    drop((p1, p2, u1, gw, reg));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_balancing_strategy_spreads_load_over_instances() {
    use service_kit::resilience::balancer::LoadBalancing;
    let reg = spawn_registry(0).await;
    let a = spawn_upstream("product-service", &reg.url(), "a").await;
    let b = spawn_upstream("product-service", &reg.url(), "b").await;
    wait_registered(&reg.url(), "product-service", 2).await;
    let http = reqwest::Client::new();
    for strategy in [
        LoadBalancing::RoundRobin,
        LoadBalancing::LeastConnections,
        LoadBalancing::PowerOfTwoChoices,
    ] {
        let mut cfg = gateway_config();
        cfg.policy.balancing = strategy;
        let gw = spawn_gateway(&reg.url(), cfg).await;
        let hits = |u: &Upstream| u.behaviour.hits.load(std::sync::atomic::Ordering::SeqCst);
        let (a0, b0) = (hits(&a), hits(&b));
        // Concurrent requests, so in-flight counts matter to the load-aware strategies.
        let mut tasks = Vec::new();
        for _ in 0..40 {
            let (http, url) = (http.clone(), format!("{}/api/v1/products/1", gw.url()));
            tasks.push(tokio::spawn(async move {
                http.get(url).send().await.map(|r| r.status().as_u16())
            }));
        }
        for t in tasks {
            assert_eq!(
                t.await.expect("joined").expect("answer"),
                200,
                "{strategy:?}"
            );
        }
        let (da, db) = (hits(&a) - a0, hits(&b) - b0);
        assert_eq!(da + db, 40, "{strategy:?}");
        assert!(da >= 5 && db >= 5, "{strategy:?} sent {da}/{db}");
        gw.stop().await;
    }
}
