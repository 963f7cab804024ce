use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use service_kit::resilience::rate_limit::RateLimit;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_beyond_the_bucket_gets_429_with_retry_after() {
    let reg = spawn_registry(0).await;
    let _p = spawn_upstream("product-service", &reg.url(), "a").await;
    wait_registered(&reg.url(), "product-service", 1).await;
    let mut cfg = gateway_config();
    cfg.rate_limit = Some(RateLimit {
        rate_per_sec: 1.0,
        burst: 5,
    });
    let gw = spawn_gateway(&reg.url(), cfg).await;
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..20 {
        let r = http
            .get(format!("{}/api/v1/products", gw.url()))
            .send()
            .await
            .expect("answer");
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            assert_eq!(
                r.json::<Value>().await.expect("json")["code"],
                "rate_limited"
            );
            statuses.push(429);
        } else {
            statuses.push(r.status().as_u16());
        }
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    // The burst of 5 passes; at 1 token/s at most one or two more can sneak in during the run.
    assert!((5..=7).contains(&ok), "{statuses:?}");
    assert_eq!(ok + limited, 20, "{statuses:?}");
    assert_eq!(statuses[..5], [200; 5]);
    let secs: u64 = retry_after
        .expect("Retry-After sent")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&secs));
    // The gateway's own health endpoint is not rate limited.
    assert_eq!(
        http.get(format!("{}/health", gw.url()))
            .send()
            .await
            .expect("answer")
            .status(),
        StatusCode::OK
    );
}

async fn upstream_state(http: &reqwest::Client, gw: &str, service: &str) -> Value {
    let v: Value = http
        .get(format!("{gw}/admin/upstreams"))
        .header("x-admin-token", ADMIN)
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    v["services"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["service"] == service).cloned())
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_upstream_trips_its_breaker_and_recovers_through_half_open() {
    let reg = spawn_registry(0).await;
    let up = spawn_upstream("product-service", &reg.url(), "a").await;
    wait_registered(&reg.url(), "product-service", 1).await;
    let mut cfg = gateway_config();
    cfg.policy.max_attempts = 1;
    cfg.policy.breaker.failure_threshold = 3;
    cfg.policy.breaker.open_for = Duration::from_millis(400);
    let gw = spawn_gateway(&reg.url(), cfg).await;
    let http = reqwest::Client::new();
    let get = || http.get(format!("{}/api/v1/products/1", gw.url())).send();

    assert_eq!(get().await.expect("answer").status(), StatusCode::OK);
    up.behaviour.fail_status.store(500, Ordering::SeqCst);
    for _ in 0..3 {
        // The upstream's own 500 is passed through while the breaker counts it.
        assert_eq!(
            get().await.expect("answer").status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    let hits_when_tripped = up.behaviour.hits.load(Ordering::SeqCst);
    let r = get().await.expect("answer");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(
        r.json::<Value>().await.expect("json")["code"],
        "upstream_unavailable"
    );
    assert_eq!(
        up.behaviour.hits.load(Ordering::SeqCst),
        hits_when_tripped,
        "open breaker let a request through"
    );
    let state = upstream_state(&http, &gw.url(), "product-service").await;
    assert_eq!(state["instances"][0]["breaker"], "open", "{state}");
    assert!(
        state["instances"][0]["ejected_for_ms"].as_u64().is_some(),
        "{state}"
    );

    // Still failing after the cool-down: the half-open trial fails and re-opens it.
    eventually(
        Duration::from_secs(5),
        "half-open trial reaches the upstream",
        || async {
            get()
                .await
                .map(|r| r.status() == StatusCode::INTERNAL_SERVER_ERROR)
                .unwrap_or(false)
        },
    )
    .await;
    let state = upstream_state(&http, &gw.url(), "product-service").await;
    assert_eq!(state["instances"][0]["breaker"], "open", "{state}");
    assert_eq!(state["instances"][0]["ejections"], 2, "{state}");

    // Healed: the next trial succeeds and closes the breaker.
    up.behaviour.fail_status.store(0, Ordering::SeqCst);
    eventually(
        Duration::from_secs(5),
        "breaker closes after a successful trial",
        || async {
            get()
                .await
                .map(|r| r.status() == StatusCode::OK)
                .unwrap_or(false)
        },
    )
    .await;
    let state = upstream_state(&http, &gw.url(), "product-service").await;
    assert_eq!(state["instances"][0]["breaker"], "closed", "{state}");
    for _ in 0..5 {
        assert_eq!(get().await.expect("answer").status(), StatusCode::OK);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_idempotent_post_is_never_retried_but_get_is() {
    let reg = spawn_registry(0).await;
    let a = spawn_upstream("order-service", &reg.url(), "a").await;
    let b = spawn_upstream("order-service", &reg.url(), "b").await;
    wait_registered(&reg.url(), "order-service", 2).await;
    let mut cfg = gateway_config();
    cfg.policy.max_attempts = 3;
    cfg.policy.breaker.failure_threshold = 100;
    let gw = spawn_gateway(&reg.url(), cfg).await;
    let http = reqwest::Client::new();
    for up in [&a, &b] {
        up.behaviour.fail_status.store(503, Ordering::SeqCst);
    }
    let hits = || a.behaviour.hits.load(Ordering::SeqCst) + b.behaviour.hits.load(Ordering::SeqCst);

    for i in 0..5 {
        let before = hits();
        let r = http
            .post(format!("{}/api/v1/orders", gw.url()))
            .bearer_auth(token("u1"))
            .json(&serde_json::json!({"n": i}))
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            r.json::<Value>().await.expect("json")["code"],
            "upstream_says_no"
        );
        assert_eq!(hits() - before, 1, "POST was retried");
    }
    // The same failure on an idempotent GET is retried on the other instance.
    let before = hits();
    let r = http
        .get(format!("{}/api/v1/orders/1", gw.url()))
        .bearer_auth(token("u1"))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(hits() - before >= 2, "GET was not retried");
    // And a GET that succeeds on retry hides the failure from the client.
    a.behaviour.fail_status.store(0, Ordering::SeqCst);
    for _ in 0..4 {
        let r = http
            .get(format!("{}/api/v1/orders/1", gw.url()))
            .bearer_auth(token("u1"))
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status(), StatusCode::OK);
    }
}
