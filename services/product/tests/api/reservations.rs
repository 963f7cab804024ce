//! The reservation API: totals, all-or-nothing, idempotency, ordering races, concurrency.

use std::sync::Arc;

use serde_json::json;
use uuid::Uuid;

use crate::helpers::spawn_app;

#[tokio::test]
async fn reserve_prices_the_order_and_a_repeat_answers_the_same() {
    let app = spawn_app().await;
    let mug = app.create_product("Mug", 1250, 10).await;
    let pot = app.create_product("Pot", 3000, 2).await;
    let order = Uuid::new_v4();

    let first = app.reserve(order, &[(mug, 2), (pot, 1), (mug, 1)]).await;
    let again = app.reserve(order, &[(mug, 2), (pot, 1), (mug, 1)]).await;

    assert_eq!(first.0, 200);
    assert_eq!(
        first.1,
        json!({"order_id": order, "status": "reserved", "total_cents": 3 * 1250 + 3000})
    );
    assert_eq!(again, first, "same order id, same answer");
    assert_eq!(app.stock(mug).await, (7, 3, 0), "reserved once");
    assert_eq!(app.stock(pot).await, (1, 1, 0));
}

#[tokio::test]
async fn a_short_line_reserves_nothing_and_the_refusal_is_remembered() {
    let app = spawn_app().await;
    let plenty = app.create_product("Plenty", 100, 50).await;
    let scarce = app.create_product("Scarce", 100, 1).await;
    let order = Uuid::new_v4();

    let (status, body) = app.reserve(order, &[(plenty, 5), (scarce, 2)]).await;

    assert_eq!(status, 409);
    assert_eq!(body["code"], "out_of_stock");
    assert_eq!(body["product_id"], json!(scarce));
    assert_eq!(app.stock(plenty).await, (50, 0, 0), "all or nothing");
    assert_eq!(app.stock(scarce).await, (1, 0, 0));
    // A retry with the same order id gets the same refusal, even now that it would fit.
    let restock = app
        .client
        .put(app.url(&format!("/api/v1/products/{scarce}")))
        .header("x-user-id", crate::helpers::ADMIN.to_string())
        .json(&json!({"stock": 10}))
        .send()
        .await
        .expect("request");
    assert_eq!(restock.status(), 200);
    let (again, body2) = app.reserve(order, &[(plenty, 5), (scarce, 2)]).await;
    assert_eq!((again, &body2["code"]), (409, &json!("out_of_stock")));
    // Releasing a refused order is fine and changes nothing.
    assert_eq!(app.release(order).await.0, 200);
    assert_eq!(app.stock(plenty).await, (50, 0, 0));
}

#[tokio::test]
async fn unknown_products_are_out_of_stock() {
    let app = spawn_app().await;
    let (status, body) = app.reserve(Uuid::new_v4(), &[(Uuid::new_v4(), 1)]).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("out_of_stock")));
}

#[tokio::test]
async fn release_returns_stock_once() {
    let app = spawn_app().await;
    let p = app.create_product("Chair", 500, 4).await;
    let order = Uuid::new_v4();
    assert_eq!(app.reserve(order, &[(p, 3)]).await.0, 200);

    let first = app.release(order).await;
    let second = app.release(order).await;

    assert_eq!(
        first,
        (200, json!({"order_id": order, "status": "released"}))
    );
    assert_eq!(second, first);
    assert_eq!(app.stock(p).await, (4, 0, 0));
    // The order cannot take stock again nor be committed.
    let (status, body) = app.reserve(order, &[(p, 3)]).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("reservation_released"))
    );
    let (status, body) = app.commit(order).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("reservation_released"))
    );
    assert_eq!(app.stock(p).await, (4, 0, 0));
}

#[tokio::test]
async fn commit_sells_once_and_a_later_release_changes_nothing() {
    let app = spawn_app().await;
    let p = app.create_product("Desk", 9900, 3).await;
    let order = Uuid::new_v4();
    assert_eq!(app.reserve(order, &[(p, 2)]).await.0, 200);

    let first = app.commit(order).await;
    let second = app.commit(order).await;

    assert_eq!(
        first,
        (200, json!({"order_id": order, "status": "committed"}))
    );
    assert_eq!(second, first);
    assert_eq!(app.stock(p).await, (1, 0, 2));
    assert_eq!(
        app.release(order).await,
        (200, json!({"order_id": order, "status": "committed"}))
    );
    // A replayed reserve after commit reports the committed reservation.
    let (status, body) = app.reserve(order, &[(p, 2)]).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("committed")));
    assert_eq!(body["total_cents"], 2 * 9900);
    assert_eq!(app.stock(p).await, (1, 0, 2));
}

#[tokio::test]
async fn commit_of_an_unknown_order_is_not_found() {
    let app = spawn_app().await;
    let (status, body) = app.commit(Uuid::new_v4()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (404, Some("reservation_not_found"))
    );
}

// Prevents: a reserve that was retried or delayed past its compensation (release) taking
// stock for an order the saga already cancelled.
#[tokio::test]
async fn a_reserve_arriving_after_its_release_takes_no_stock() {
    let app = spawn_app().await;
    let p = app.create_product("Late", 100, 5).await;
    let order = Uuid::new_v4();

    assert_eq!(
        app.release(order).await,
        (200, json!({"order_id": order, "status": "released"}))
    );
    let (status, body) = app.reserve(order, &[(p, 1)]).await;

    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("reservation_released"))
    );
    assert_eq!(app.stock(p).await, (5, 0, 0));
}

#[tokio::test]
async fn concurrent_reservations_never_oversell() {
    let app = Arc::new(spawn_app().await);
    let stock = 10;
    let p = app.create_product("Hot item", 700, stock).await;
    let other = app.create_product("Other", 300, 1000).await;

    // 60 orders of 1 (some also taking another product, in either line order) race for
    // 10 units; each order id is sent three times at once.
    let orders: Vec<Uuid> = (0..60).map(|_| Uuid::new_v4()).collect();
    let mut tasks = Vec::new();
    for (i, order) in orders.iter().enumerate() {
        for _ in 0..3 {
            let app = app.clone();
            let order = *order;
            let items = if i % 2 == 0 {
                vec![(p, 1), (other, 1)]
            } else {
                vec![(other, 1), (p, 1)]
            };
            tasks.push(tokio::spawn(async move {
                // 503 (pool exhausted under this burst) is retryable, as the saga does.
                for _ in 0..50 {
                    let r = app.reserve(order, &items).await;
                    if r.0 != 503 {
                        return (order, r);
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                panic!("still 503 after 50 tries");
            }));
        }
    }
    let mut by_order: std::collections::HashMap<Uuid, Vec<u16>> = Default::default();
    for t in tasks {
        let (order, (status, _)) = t.await.expect("task");
        assert!(status == 200 || status == 409, "status {status}");
        by_order.entry(order).or_default().push(status);
    }

    let reserved: Vec<Uuid> = by_order
        .iter()
        .filter(|(_, s)| s[0] == 200)
        .map(|(o, _)| *o)
        .collect();
    for statuses in by_order.values() {
        assert!(
            statuses.iter().all(|s| *s == statuses[0]),
            "one answer per order: {statuses:?}"
        );
    }
    assert_eq!(
        reserved.len() as i64,
        stock,
        "exactly the stock is reserved"
    );
    assert_eq!(app.stock(p).await, (0, stock, 0));
    assert_eq!(app.stock(other).await, (1000 - stock, stock, 0));

    // Settle half by commit, half by release, concurrently and twice each.
    let mut tasks = Vec::new();
    for (i, order) in reserved.iter().enumerate() {
        for _ in 0..2 {
            let app = app.clone();
            let order = *order;
            tasks.push(tokio::spawn(async move {
                for _ in 0..50 {
                    let status = if i % 2 == 0 {
                        app.commit(order).await.0
                    } else {
                        app.release(order).await.0
                    };
                    if status != 503 {
                        return status;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                panic!("still 503 after 50 tries");
            }));
        }
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), 200);
    }
    let (available, reserved_now, sold) = app.stock(p).await;
    assert_eq!(available + reserved_now + sold, stock, "invariant");
    assert_eq!((available, reserved_now, sold), (stock / 2, 0, stock / 2));
}

// Prevents: two replicas (the stack runs product-service twice) overselling between them,
// or one replica serving a cached view the other has made stale.
#[tokio::test]
async fn two_replicas_share_stock_and_cache_invalidation() {
    let app = Arc::new(spawn_app().await);
    let replica = app.spawn_replica().await;
    let stock = 6;
    let p = app.create_product("Shared", 250, stock).await;
    let view = |base: &str| {
        let url = format!("{base}/api/v1/products/{p}");
        let client = app.client.clone();
        async move {
            let r = client.get(url).send().await.expect("request");
            let v: serde_json::Value = r.json().await.expect("json");
            v["stock"].clone()
        }
    };
    // Warm the cache through the replica.
    assert_eq!(view(&replica.address).await["available"], stock);

    let mut tasks = Vec::new();
    for i in 0..24 {
        let base = if i % 2 == 0 {
            app.address.clone()
        } else {
            replica.address.clone()
        };
        let client = app.client.clone();
        tasks.push(tokio::spawn(async move {
            let body =
                json!({"order_id": Uuid::new_v4(), "items": [{"product_id": p, "quantity": 1}]});
            for _ in 0..50 {
                let r = client
                    .post(format!("{base}/internal/reservations"))
                    .json(&body)
                    .send()
                    .await
                    .expect("request");
                let status = r.status().as_u16();
                if status != 503 {
                    return status;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("still 503 after 50 tries");
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.expect("task") {
            200 => ok += 1,
            409 => {}
            other => panic!("status {other}"),
        }
    }

    assert_eq!(ok, stock);
    assert_eq!(app.stock(p).await, (0, stock, 0));
    // Writes through either instance invalidated the shared cache.
    assert_eq!(
        view(&replica.address).await,
        json!({"available": 0, "reserved": stock, "sold": 0})
    );
}

/// Many sagas reserving the same hot product at once (the order service runs 32 sagas per
/// instance): every request is answered 200 or 409 in one try, never a 5xx. Sent raw, with
/// no 503 retry, through both replicas like the stack's two instances.
// Regression: at 32 concurrent reservations the 16-connection pool timed out (requests held
// connections while queueing on the hot row's lock) and answered 503s that opened the
// saga's circuit breaker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_reservations_gets_no_5xx() {
    const ORDERS: usize = 48;
    let app = Arc::new(spawn_app().await);
    let replica = app.spawn_replica().await;
    let stock = (ORDERS / 2) as i64;
    let hot = app.create_product("Hot", 100, stock).await;
    let other = app.create_product("Other", 100, 10_000).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("client");
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..ORDERS)
        .map(|i| {
            let base = if i % 2 == 0 {
                app.address.clone()
            } else {
                replica.address.clone()
            };
            let items = if i % 3 == 0 {
                json!([{"product_id": hot, "quantity": 1}, {"product_id": other, "quantity": 2}])
            } else {
                json!([{"product_id": hot, "quantity": 1}])
            };
            let body = json!({"order_id": Uuid::new_v4(), "items": items});
            let client = client.clone();
            tokio::spawn(async move {
                let r = client
                    .post(format!("{base}/internal/reservations"))
                    .json(&body)
                    .send()
                    .await
                    .expect("answer");
                let status = r.status().as_u16();
                (status, r.text().await.unwrap_or_default())
            })
        })
        .collect();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for t in tasks {
        let (status, body) = t.await.expect("task");
        assert!(status < 500, "{status} {body}");
        *statuses.entry(status).or_default() += 1;
    }
    println!(
        "{ORDERS} concurrent reservations in {:?}: {statuses:?}",
        started.elapsed()
    );
    assert_eq!(
        statuses.get(&200).copied(),
        Some(stock as usize),
        "{statuses:?}"
    );
    assert_eq!(statuses.get(&409).copied(), Some(ORDERS - stock as usize));
    assert_eq!(app.stock(hot).await, (0, stock, 0));
}
