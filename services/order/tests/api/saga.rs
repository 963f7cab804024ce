//! The order saga against the real product-service and payment-service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use order_service::saga::{SagaState, SagaStep};
use order_service::Boundary;
use serde_json::{json, Value};

use crate::helpers::*;

async fn place_one(
    http: &reqwest::Client,
    order: &Running,
    user: &str,
    product: uuid::Uuid,
    qty: i64,
    card: &str,
) -> String {
    let r = place(
        http,
        order,
        user,
        json!([{"product_id": product, "quantity": qty}]),
        card,
        None,
    )
    .await;
    assert_eq!(r.status(), 202);
    let v: Value = r.json().await.expect("json");
    v["id"].as_str().expect("id").to_owned()
}

async fn notifications_of(http: &reqwest::Client, n: &Running, order: &str) -> Vec<String> {
    let v = get_json(
        http,
        &n.url(&format!("/admin/notifications?order_id={order}")),
        "",
    )
    .await;
    let mut kinds: Vec<String> = v["notifications"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["event_type"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    kinds.sort();
    kinds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_happy_path_confirms_commits_the_stock_and_captures_the_total() {
    let _broker = crate::broker::BROKER.read().await;
    let world = World::new().await;
    let shop = Shop::open().await;
    let notify = spawn_notification(&world).await;
    let order = spawn_order(OrderSpec {
        directory: Some(shop.directory.clone()),
        ..OrderSpec::new(&world)
    })
    .await;
    let http = http();
    let p = shop.add_product(1250, 10).await;
    let id = place_one(&http, &order, "ann", p, 2, GOOD_CARD).await;
    let o = settled(&http, &order, "ann", &id).await;
    assert_eq!(o["status"], "confirmed", "{o}");
    assert_eq!(o["total_cents"], 2500);
    assert_eq!(shop.stock(p).await, (8, 0, 2));
    let ledger = shop.ledger().await;
    assert_eq!(
        (ledger["net_cents"].as_i64(), ledger["captures"].as_i64()),
        (Some(2500), Some(1)),
        "{ledger}"
    );
    let kinds = eventually(
        "created + confirmed notifications",
        Duration::from_secs(20),
        || async {
            let k = notifications_of(&http, &notify, &id).await;
            (k.len() >= 2).then_some(k)
        },
    )
    .await;
    assert_eq!(kinds, vec!["order.confirmed", "order.created"]);
    let journal = get_json(&http, &order.url(&format!("/admin/sagas/{id}")), "").await;
    let steps: Vec<&str> = journal["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["step"].as_str())
        .collect();
    assert_eq!(steps, vec!["reserve", "charge", "commit"], "{journal}");
    order.stop().await;
    notify.stop().await;
    shop.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declined_payment_cancels_and_releases_the_stock() {
    let world = World::new().await;
    let shop = Shop::open().await;
    let order = spawn_order(OrderSpec {
        directory: Some(shop.directory.clone()),
        ..OrderSpec::new(&world)
    })
    .await;
    let http = http();
    let p = shop.add_product(999, 5).await;
    let id = place_one(&http, &order, "bea", p, 3, DECLINED_CARD).await;
    let o = settled(&http, &order, "bea", &id).await;
    assert_eq!(o["status"], "cancelled", "{o}");
    assert_eq!(o["reason"], "payment_declined");
    assert_eq!(shop.stock(p).await, (5, 0, 0));
    let ledger = shop.ledger().await;
    assert_eq!(ledger["net_cents"], 0, "{ledger}");
    assert_eq!(ledger["captures"], 0, "{ledger}");
    order.stop().await;
    shop.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_stock_cancels_and_charges_nothing() {
    let world = World::new().await;
    let shop = Shop::open().await;
    let order = spawn_order(OrderSpec {
        directory: Some(shop.directory.clone()),
        ..OrderSpec::new(&world)
    })
    .await;
    let http = http();
    let p = shop.add_product(500, 2).await;
    let id = place_one(&http, &order, "cal", p, 3, GOOD_CARD).await;
    let o = settled(&http, &order, "cal", &id).await;
    assert_eq!(o["status"], "cancelled", "{o}");
    assert_eq!(o["reason"], "out_of_stock");
    assert_eq!(shop.stock(p).await, (2, 0, 0));
    let (status, payment) = shop.payment_of(&id, "cal").await;
    assert_eq!(status, 404, "no payment was attempted: {payment}");
    let journal = get_json(&http, &order.url(&format!("/admin/sagas/{id}")), "").await;
    let steps: Vec<&str> = journal["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["step"].as_str())
        .collect();
    assert_eq!(steps, vec!["reserve"], "{journal}");
    order.stop().await;
    shop.close().await;
}

/// Kill order-service at `boundary` for every saga that reaches it, then start a new
/// instance on the same database: every saga finishes, and stock and money balance.
async fn crash_at_and_resume(shop: &Shop, boundary: Boundary) {
    let world = World::new().await;
    let http = http();
    let p = shop.add_product(700, 10).await;
    let before = shop.ledger().await["net_cents"].as_i64().unwrap_or(0);
    let crashed = Arc::new(Mutex::new(HashMap::<uuid::Uuid, usize>::new()));
    let seen = crashed.clone();
    let hook: order_service::CrashHook = Arc::new(move |id, b| {
        if b == boundary {
            *seen.lock().expect("lock").entry(id).or_insert(0) += 1;
            true
        } else {
            false
        }
    });
    let lease = Duration::from_secs(1);
    let first = spawn_order(OrderSpec {
        directory: Some(shop.directory.clone()),
        hook: Some(hook),
        saga: fast_saga(lease),
        ..OrderSpec::new(&world)
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push((
            place_one(&http, &first, &format!("k{i}"), p, 1, GOOD_CARD).await,
            true,
        ));
    }
    ids.push((
        place_one(&http, &first, "kd", p, 2, DECLINED_CARD).await,
        false,
    ));
    let expected = match boundary {
        Boundary::AfterCall(SagaStep::Release) | Boundary::AfterRecord(SagaState::Releasing) => 1,
        Boundary::AfterCall(SagaStep::Charge)
        | Boundary::AfterCall(SagaStep::Commit)
        | Boundary::AfterRecord(SagaState::Committing) => 3,
        _ => 4,
    };
    eventually(
        &format!("{expected} sagas stopped at {boundary:?}"),
        Duration::from_secs(30),
        || async { (crashed.lock().expect("lock").len() >= expected).then_some(()) },
    )
    .await;
    // The "killed" instance goes away; its leases on the crashed sagas are not given back.
    first.stop().await;
    let second = spawn_order(OrderSpec {
        directory: Some(shop.directory.clone()),
        saga: fast_saga(lease),
        ..OrderSpec::new(&world)
    })
    .await;
    let mut confirmed_total = 0;
    for (id, good) in &ids {
        let user = get_json(&http, &second.url("/admin/sagas?limit=50"), "").await["recent"]
            .as_array()
            .and_then(|r| {
                r.iter()
                    .find(|s| s["order_id"] == id.as_str())
                    .and_then(|s| s["user_id"].as_str().map(str::to_owned))
            })
            .expect("saga listed");
        let o = settled(&http, &second, &user, id).await;
        let want = if *good { "confirmed" } else { "cancelled" };
        assert_eq!(o["status"], want, "{boundary:?}: {o}");
        if *good {
            confirmed_total += o["total_cents"].as_i64().expect("total");
        }
    }
    assert_eq!(shop.stock(p).await, (7, 0, 3), "{boundary:?}");
    let net = shop.ledger().await["net_cents"].as_i64().unwrap_or(0);
    assert_eq!(
        net - before,
        confirmed_total,
        "{boundary:?}: money captured − refunded = confirmed totals"
    );
    second.stop().await;
}

/// The refund compensation: one of three paid orders has its reservation released behind
/// the saga's back just before the commit (so the commit is refused and the saga refunds),
/// and order-service is killed at `boundary` of that refund; a new instance finishes it.
/// The refund happens exactly once, and stock and money balance.
async fn crash_around_refund_and_resume(shop: &Shop, boundary: Boundary) {
    let world = World::new().await;
    let http = http();
    let p = shop.add_product(700, 10).await;
    let before = shop.ledger().await;
    let sabotaged = Arc::new(Mutex::new(None::<uuid::Uuid>));
    let crashed = Arc::new(Mutex::new(0usize));
    let (target, count) = (sabotaged.clone(), crashed.clone());
    let release_url = shop.product.url("/internal/reservations");
    let hook: order_service::CrashHook = Arc::new(move |id, b| {
        if b == Boundary::AfterRecord(SagaState::Committing) {
            // The first saga about to commit loses its reservation, synchronously, so the
            // commit that follows is refused: no timing involved.
            let mut t = target.lock().expect("lock");
            if t.is_none() {
                *t = Some(id);
                drop(t);
                let url = format!("{release_url}/{id}/release");
                let status = tokio::task::block_in_place(|| {
                    tokio::runtime::Handle::current().block_on(async {
                        crate::helpers::http()
                            .post(url)
                            .send()
                            .await
                            .map(|r| r.status())
                    })
                });
                assert_eq!(status.expect("release").as_u16(), 200);
            }
            return false;
        }
        if *target.lock().expect("lock") != Some(id) {
            return false;
        }
        // Once "killed" there, this instance makes no more recorded progress on the saga
        // (a re-claim after its lease lapsed stops at the next boundary).
        let mut n = count.lock().expect("lock");
        if b == boundary || *n > 0 {
            *n += 1;
            return true;
        }
        false
    });
    let lease = Duration::from_secs(1);
    let first = spawn_order(OrderSpec {
        directory: Some(shop.directory.clone()),
        hook: Some(hook),
        saga: fast_saga(lease),
        ..OrderSpec::new(&world)
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let user = format!("r{i}");
        ids.push((place_one(&http, &first, &user, p, 1, GOOD_CARD).await, user));
    }
    eventually(
        &format!("the refunding saga stopped at {boundary:?}"),
        Duration::from_secs(30),
        || async { (*crashed.lock().expect("lock") >= 1).then_some(()) },
    )
    .await;
    first.stop().await;
    let second = spawn_order(OrderSpec {
        directory: Some(shop.directory.clone()),
        saga: fast_saga(lease),
        ..OrderSpec::new(&world)
    })
    .await;
    let refunded = sabotaged
        .lock()
        .expect("lock")
        .expect("a saga was sabotaged");
    let mut confirmed_total = 0;
    for (id, user) in &ids {
        let o = settled(&http, &second, user, id).await;
        if *id == refunded.to_string() {
            assert_eq!(o["status"], "cancelled", "{boundary:?}: {o}");
            assert!(
                o["reason"]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("commit_rejected"),
                "{boundary:?}: {o}"
            );
            let (status, payment) = shop.payment_of(id, user).await;
            assert_eq!(
                (status, payment["status"].as_str()),
                (200, Some("refunded")),
                "{boundary:?}: {payment}"
            );
            let journal = get_json(&http, &second.url(&format!("/admin/sagas/{id}")), "").await;
            let refunds = journal["steps"]
                .as_array()
                .expect("steps")
                .iter()
                .filter(|s| s["step"] == "refund")
                .count();
            assert_eq!(refunds, 1, "{boundary:?}: one recorded refund: {journal}");
        } else {
            assert_eq!(o["status"], "confirmed", "{boundary:?}: {o}");
            confirmed_total += o["total_cents"].as_i64().expect("total");
        }
    }
    assert_eq!(shop.stock(p).await, (8, 0, 2), "{boundary:?}");
    let after = shop.ledger().await;
    let delta = |k: &str| after[k].as_i64().unwrap_or(0) - before[k].as_i64().unwrap_or(0);
    assert_eq!(
        (delta("captures"), delta("refunds"), delta("refunded_cents")),
        (3, 1, 700),
        "{boundary:?}: three captures, one refund of the sabotaged order: {after}"
    );
    assert_eq!(
        delta("net_cents"),
        confirmed_total,
        "{boundary:?}: money captured − refunded = confirmed totals"
    );
    second.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_order_service_resumes_every_saga_after_restart_at_every_step_boundary() {
    let shop = Shop::open().await;
    for boundary in [
        Boundary::AfterCall(SagaStep::Reserve),
        Boundary::AfterRecord(SagaState::Charging),
        Boundary::AfterCall(SagaStep::Charge),
        Boundary::AfterRecord(SagaState::Committing),
        Boundary::AfterCall(SagaStep::Commit),
        Boundary::AfterCall(SagaStep::Release),
        Boundary::AfterRecord(SagaState::Releasing),
    ] {
        crash_at_and_resume(&shop, boundary).await;
    }
    // Around the refund compensation: before it runs, and after payment-service refunded
    // but before the saga recorded it (the refund is re-run: exactly once all the same).
    for boundary in [
        Boundary::AfterRecord(SagaState::Refunding),
        Boundary::AfterCall(SagaStep::Refund),
    ] {
        crash_around_refund_and_resume(&shop, boundary).await;
    }
    shop.close().await;
}

/// Many concurrent orders for limited stock: exactly the stock is sold, the rest are
/// cancelled out of stock, and stock, money and notifications balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_orders_for_limited_stock_confirm_exactly_the_stock() {
    let _broker = crate::broker::BROKER.read().await;
    const STOCK: i64 = 15;
    const ORDERS: usize = 60;
    let world = World::new().await;
    let shop = Shop::open().await;
    let notify = spawn_notification(&world).await;
    let order = spawn_order(OrderSpec {
        directory: Some(shop.directory.clone()),
        ..OrderSpec::new(&world)
    })
    .await;
    let http = http();
    let p = shop.add_product(1999, STOCK).await;
    let started = Instant::now();
    let placed = futures_util::future::join_all((0..ORDERS).map(|i| {
        let (http, order) = (http.clone(), &order);
        async move {
            let user = format!("c{i}");
            let id = place_one(&http, order, &user, p, 1, GOOD_CARD).await;
            (user, id)
        }
    }))
    .await;
    // One poller (the saga overview), not one per order, so the test does not load the
    // machine it measures.
    eventually("every saga finished", Duration::from_secs(120), || async {
        let s = get_json(&http, &order.url("/admin/sagas"), "").await;
        (s["orders"]["pending"] == 0).then_some(())
    })
    .await;
    let mut settled_all = Vec::new();
    for (user, id) in &placed {
        settled_all.push((
            get_json(&http, &order.url(&format!("/api/v1/orders/{id}")), user).await,
            (),
        ));
    }
    let wall = started.elapsed();
    let confirmed: Vec<&Value> = settled_all
        .iter()
        .map(|(o, _)| o)
        .filter(|o| o["status"] == "confirmed")
        .collect();
    let cancelled: Vec<&Value> = settled_all
        .iter()
        .map(|(o, _)| o)
        .filter(|o| o["status"] == "cancelled")
        .collect();
    assert_eq!(confirmed.len() as i64, STOCK, "exactly the stock is sold");
    assert_eq!(cancelled.len(), ORDERS - STOCK as usize);
    assert!(
        cancelled.iter().all(|o| o["reason"] == "out_of_stock"),
        "{cancelled:?}"
    );
    assert_eq!(
        shop.stock(p).await,
        (0, 0, STOCK),
        "initial = available + reserved + sold"
    );
    let ledger = shop.ledger().await;
    let totals: i64 = confirmed
        .iter()
        .filter_map(|o| o["total_cents"].as_i64())
        .sum();
    assert_eq!(ledger["net_cents"].as_i64(), Some(totals), "{ledger}");
    assert_eq!(ledger["captures"].as_i64(), Some(STOCK), "{ledger}");
    // One order.confirmed notification per confirmed order, one order.cancelled per cancelled.
    for (o, _) in &settled_all {
        let id = o["id"].as_str().expect("id");
        let want = if o["status"] == "confirmed" {
            "order.confirmed"
        } else {
            "order.cancelled"
        };
        let kinds = eventually("notifications", Duration::from_secs(30), || async {
            let k = notifications_of(&http, &notify, id).await;
            (k.len() >= 2).then_some(k)
        })
        .await;
        assert_eq!(kinds, {
            let mut v = vec![want.to_owned(), "order.created".to_owned()];
            v.sort();
            v
        });
    }
    // Server-side latency: order created → saga finished, from the saga overview.
    let recent = get_json(&http, &order.url("/admin/sagas?limit=500"), "").await;
    let mut server: Vec<f64> = recent["recent"]
        .as_array()
        .expect("recent")
        .iter()
        .filter_map(|s| {
            let c = chrono::DateTime::parse_from_rfc3339(s["created_at"].as_str()?).ok()?;
            let u = chrono::DateTime::parse_from_rfc3339(s["updated_at"].as_str()?).ok()?;
            Some((u - c).num_milliseconds() as f64)
        })
        .collect();
    server.sort_by(f64::total_cmp);
    let spct =
        |p: f64| server[((server.len() as f64 * p).ceil() as usize).clamp(1, server.len()) - 1];
    println!(
        "saga figures (in-process, no gateway): {ORDERS} concurrent orders settled in {wall:?} = {:.1} orders/s; created→settled p50 {} ms, p99 {} ms",
        ORDERS as f64 / wall.as_secs_f64(),
        spct(0.5),
        spct(0.99)
    );
    let metrics = http
        .get(order.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in metrics
        .lines()
        .filter(|l| l.starts_with("saga_steps_total") || l.starts_with("upstream_"))
    {
        println!("{line}");
    }
    order.stop().await;
    notify.stop().await;
    shop.close().await;
}

/// A commit refused after the charge (the reservation was released behind the saga's
/// back) compensates in reverse: refund, then release; the order ends cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_commit_refunds_the_charge_and_cancels() {
    let world = World::new().await;
    let shop = Shop::open().await;
    let http = http();
    let p = shop.add_product(4100, 3).await;
    // Stop before the commit, release the reservation directly, then resume.
    let hook: order_service::CrashHook =
        Arc::new(|_, b| b == Boundary::AfterRecord(SagaState::Committing));
    let first = spawn_order(OrderSpec {
        directory: Some(shop.directory.clone()),
        hook: Some(hook),
        saga: fast_saga(Duration::from_secs(1)),
        ..OrderSpec::new(&world)
    })
    .await;
    let id = place_one(&http, &first, "ivy", p, 1, GOOD_CARD).await;
    eventually("charged", Duration::from_secs(30), || async {
        let (s, v) = shop.payment_of(&id, "ivy").await;
        (s == 200 && v["status"] == "captured").then_some(())
    })
    .await;
    first.stop().await;
    let released = http
        .post(
            shop.product
                .url(&format!("/internal/reservations/{id}/release")),
        )
        .send()
        .await
        .expect("release");
    assert_eq!(released.status(), 200);
    let second = spawn_order(OrderSpec {
        directory: Some(shop.directory.clone()),
        saga: fast_saga(Duration::from_secs(1)),
        ..OrderSpec::new(&world)
    })
    .await;
    let o = settled(&http, &second, "ivy", &id).await;
    assert_eq!(o["status"], "cancelled", "{o}");
    assert!(
        o["reason"]
            .as_str()
            .unwrap_or("")
            .starts_with("commit_rejected"),
        "{o}"
    );
    let ledger = shop.ledger().await;
    assert_eq!(
        (
            ledger["captured_cents"].as_i64(),
            ledger["refunded_cents"].as_i64()
        ),
        (Some(4100), Some(4100)),
        "{ledger}"
    );
    assert_eq!(shop.stock(p).await, (3, 0, 0));
    let journal = get_json(&http, &second.url(&format!("/admin/sagas/{id}")), "").await;
    let steps: Vec<&str> = journal["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["step"].as_str())
        .collect();
    assert_eq!(
        steps,
        vec!["reserve", "charge", "commit", "refund", "release"],
        "{journal}"
    );
    second.stop().await;
    shop.close().await;
}
