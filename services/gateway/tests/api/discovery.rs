use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_restart_leads_every_instance_to_re_register() {
    let reg = spawn_registry(0).await;
    let port = reg.addr.port();
    let url = reg.url();
    let _a = spawn_upstream("product-service", &url, "a").await;
    let _b = spawn_upstream("product-service", &url, "b").await;
    let _c = spawn_upstream("payment-service", &url, "a").await;
    wait_registered(&url, "product-service", 2).await;
    wait_registered(&url, "payment-service", 1).await;

    reg.stop().await;
    // A new registry on the same address starts empty; heartbeats get 404 and every
    // instance registers again.
    let reg = spawn_registry(port).await;
    wait_registered(&url, "product-service", 2).await;
    wait_registered(&url, "payment-service", 1).await;
    drop(reg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_keeps_routing_on_its_last_view_while_the_registry_is_down() {
    let reg = spawn_registry(0).await;
    let port = reg.addr.port();
    let url = reg.url();
    let _a = spawn_upstream("product-service", &url, "a").await;
    let _b = spawn_upstream("product-service", &url, "b").await;
    wait_registered(&url, "product-service", 2).await;
    let gw = spawn_gateway(&url, gateway_config()).await;
    let http = reqwest::Client::new();
    let get = || http.get(format!("{}/api/v1/products", gw.url())).send();
    assert_eq!(get().await.expect("answer").status(), StatusCode::OK);

    reg.stop().await;
    // The gateway notices the outage and marks its view stale, but keeps serving it.
    eventually(Duration::from_secs(10), "view marked stale", || async {
        let v: Value = match http
            .get(format!("{}/admin/upstreams", gw.url()))
            .bearer_auth(ADMIN)
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        v["services"][0]["stale"] == true
    })
    .await;
    for _ in 0..20 {
        assert_eq!(get().await.expect("answer").status(), StatusCode::OK);
    }
    // A registry that comes back empty does not wipe the view during its warm-up, and the
    // instances re-register into it.
    let reg = spawn_registry(port).await;
    for _ in 0..10 {
        assert_eq!(get().await.expect("answer").status(), StatusCode::OK);
    }
    wait_registered(&url, "product-service", 2).await;
    eventually(Duration::from_secs(10), "view fresh again", || async {
        let v: Value = match http
            .get(format!("{}/admin/upstreams", gw.url()))
            .bearer_auth(ADMIN)
            .send()
            .await
        {
            Ok(r) => r.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        v["services"][0]["stale"] == false
    })
    .await;
    assert_eq!(get().await.expect("answer").status(), StatusCode::OK);
    drop(reg);
}
