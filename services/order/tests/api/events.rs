//! Outbox → RabbitMQ → notification-service, with real brokers.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;

async fn notifications(http: &reqwest::Client, n: &Running, query: &str) -> Vec<Value> {
    let v = get_json(
        http,
        &n.url(&format!("/admin/notifications?limit=1000{query}")),
        "",
    )
    .await;
    v["notifications"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn order_created_is_published_through_the_outbox_and_stored_once() {
    let world = World::new().await;
    let notify = spawn_notification(&world).await;
    // Let the consumer declare and bind its queue before anything is published.
    let http = http();
    eventually("consumer connected", Duration::from_secs(20), || async {
        let m = http
            .get(notify.url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        m.lines()
            .any(|l| l == "notification_amqp_connected 1")
            .then_some(())
    })
    .await;
    let order = spawn_order(OrderSpec::new(&world)).await;
    let placed: Value = place(
        &http,
        &order,
        "carol",
        json!([{"product_id": uuid::Uuid::new_v4(), "quantity": 1}]),
        "4242",
        None,
    )
    .await
    .json()
    .await
    .expect("json");
    let id = placed["id"].as_str().expect("id").to_owned();
    let got = eventually(
        "order.created notification",
        Duration::from_secs(20),
        || async {
            let n = notifications(&http, &notify, &format!("&order_id={id}")).await;
            (!n.is_empty()).then_some(n)
        },
    )
    .await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["event_type"], "order.created");
    assert_eq!(got[0]["user_id"], "carol");
    // The user sees it through the public API, scoped to them.
    let mine = get_json(
        &http,
        &notify.url(&format!("/api/v1/notifications?order_id={id}")),
        "carol",
    )
    .await;
    assert_eq!(mine["notifications"].as_array().map(Vec::len), Some(1));
    let theirs = get_json(
        &http,
        &notify.url(&format!("/api/v1/notifications?order_id={id}")),
        "dave",
    )
    .await;
    assert_eq!(theirs["notifications"].as_array().map(Vec::len), Some(0));
    // The outbox drained.
    let sagas = eventually("outbox drained", Duration::from_secs(10), || async {
        let s = get_json(&http, &order.url("/admin/sagas"), "").await;
        (s["outbox"]["unpublished"] == 0).then_some(s)
    })
    .await;
    assert_eq!(sagas["outbox"]["unpublished"], 0);
    order.stop().await;
    notify.stop().await;
}
