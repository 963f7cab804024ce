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
    let _broker = crate::broker::BROKER.read().await;
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

/// Orders keep flowing (and sagas finish) while RabbitMQ is down; every event is
/// delivered exactly once after it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_written_while_rabbitmq_is_down_are_all_delivered_once_it_is_back() {
    use crate::broker::*;
    let _exclusive = BROKER.write().await;
    let infra = infra().await;
    let current = amqp_url(infra);
    let port = current
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .and_then(|p| p.parse().ok())
        .expect("amqp port");
    let hop = Hop::start(port).await;
    let mut world = World::new().await;
    world.amqp_url = format!("amqp://msctl:msctl@127.0.0.1:{}/%2f", hop.port);
    let notify = spawn_notification(&world).await;
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
    let shop = Shop::open().await;
    let product = shop.add_product(300, 20).await;
    let order = spawn_order(OrderSpec {
        directory: Some(shop.directory.clone()),
        ..OrderSpec::new(&world)
    })
    .await;
    let body = move |i: usize| {
        let card = if i % 4 == 3 { DECLINED_CARD } else { GOOD_CARD };
        json!({"items": [{"product_id": product, "quantity": 1}], "card": card})
    };
    let mut ids: Vec<(String, String)> = Vec::new();
    for i in 0..5 {
        let user = format!("u{i}");
        let r = http
            .post(order.url("/api/v1/orders"))
            .header("x-user-id", &user)
            .json(&body(i))
            .send()
            .await
            .expect("POST");
        let o: Value = r.json().await.expect("json");
        ids.push((user, o["id"].as_str().expect("id").to_owned()));
    }
    eventually(
        "first events delivered",
        Duration::from_secs(30),
        || async { (notifications(&http, &notify, "").await.len() == 10).then_some(()) },
    )
    .await;
    // /ready of both includes their RabbitMQ connection.
    for base in [order.url(""), notify.url("")] {
        assert_eq!(
            rabbitmq_readiness(&http, &base).await,
            (200, "ok".to_owned()),
            "{base}"
        );
    }

    // The outage: the body runs in its own task so RabbitMQ is restored even if it fails.
    stop_rabbitmq().await;
    let during = {
        let (http, order_url, notify_url) = (http.clone(), order.url(""), notify.url(""));
        tokio::spawn(async move {
            // Both stop being ready: their connection to RabbitMQ is gone.
            for base in [&order_url, &notify_url] {
                eventually(
                    "not ready without rabbitmq",
                    Duration::from_secs(30),
                    || async {
                        let (status, check) = rabbitmq_readiness(&http, base).await;
                        (status == 503 && !check.is_empty() && check != "ok").then_some(())
                    },
                )
                .await;
            }
            let mut ids = Vec::new();
            for i in 0..20 {
                let user = format!("d{i}");
                let r = http
                    .post(format!("{order_url}/api/v1/orders"))
                    .header("x-user-id", &user)
                    .json(&body(i))
                    .send()
                    .await
                    .expect("POST while rabbitmq is down");
                assert_eq!(
                    r.status(),
                    202,
                    "orders are accepted while rabbitmq is down"
                );
                let o: Value = r.json().await.expect("json");
                ids.push((user, o["id"].as_str().expect("id").to_owned()));
            }
            // 20 order.created, then one order.confirmed/cancelled per finished saga.
            let lag = eventually(
                "sagas finished, outbox lag visible",
                Duration::from_secs(60),
                || {
                    let http = http.clone();
                    let url = format!("{order_url}/admin/sagas");
                    async move {
                        let s: Value = http
                            .get(url)
                            .header("x-admin-token", ADMIN)
                            .send()
                            .await
                            .ok()?
                            .json()
                            .await
                            .ok()?;
                        (s["orders"]["pending"] == 0 && s["outbox"]["unpublished"].as_i64()? >= 40)
                            .then_some(s["outbox"]["unpublished"].clone())
                    }
                },
            )
            .await;
            (ids, lag)
        })
        .await
    };
    let port = start_rabbitmq().await;
    hop.retarget(port);
    let (during_ids, lag) = match during {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    assert_eq!(lag.as_i64(), Some(40), "{lag}");
    ids.extend(during_ids);
    for base in [order.url(""), notify.url("")] {
        eventually("ready again", Duration::from_secs(60), || async {
            (rabbitmq_readiness(&http, &base).await == (200, "ok".to_owned())).then_some(())
        })
        .await;
    }

    let all = eventually(
        "every event delivered after the outage",
        Duration::from_secs(90),
        || async {
            let n = notifications(&http, &notify, "").await;
            (n.len() >= 2 * ids.len()).then_some(n)
        },
    )
    .await;
    // Per order exactly one order.created and one order.confirmed or order.cancelled
    // (matching the order's final status): none lost, none doubled.
    let mut per_order: std::collections::HashMap<String, Vec<String>> = Default::default();
    for n in &all {
        per_order
            .entry(n["order_id"].as_str().unwrap_or("").to_owned())
            .or_default()
            .push(n["event_type"].as_str().unwrap_or("").to_owned());
    }
    for (user, id) in &ids {
        let o = get_json(&http, &order.url(&format!("/api/v1/orders/{id}")), user).await;
        let mut want = vec![
            "order.created".to_owned(),
            format!("order.{}", o["status"].as_str().unwrap_or("?")),
        ];
        want.sort();
        let mut got = per_order.get(id).cloned().unwrap_or_default();
        got.sort();
        assert_eq!(got, want, "order {id}");
    }
    assert_eq!(all.len(), 2 * ids.len());
    eventually("outbox drained", Duration::from_secs(20), || async {
        let s = get_json(&http, &order.url("/admin/sagas"), "").await;
        (s["outbox"]["unpublished"] == 0).then_some(())
    })
    .await;
    order.stop().await;
    notify.stop().await;
    shop.close().await;
}

/// `GET /ready` of the service at `base`: its status and its `rabbitmq` check.
async fn rabbitmq_readiness(http: &reqwest::Client, base: &str) -> (u16, String) {
    let Ok(r) = http.get(format!("{base}/ready")).send().await else {
        return (0, String::new());
    };
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or_default();
    (
        status,
        v["checks"]["rabbitmq"].as_str().unwrap_or("").to_owned(),
    )
}
