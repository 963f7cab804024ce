//! Charge, refund and read: idempotency, declines, ordering races, concurrency.

use std::sync::Arc;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_app, CARD, DECLINED};

#[tokio::test]
async fn a_charge_captures_once_and_a_repeat_returns_the_same_payment() {
    let app = spawn_app().await;
    let order = Uuid::new_v4();

    let first = app.charge(order, 4200, CARD).await;
    let again = app.charge(order, 4200, CARD).await;

    assert_eq!(first.0, 200);
    assert_eq!(first.1["status"], "captured");
    assert_eq!(first.1["order_id"], json!(order));
    assert!(first.1["payment_id"].is_string());
    assert_eq!(again, first, "same order id, same answer");
    assert_eq!(app.ledger(order).await, vec![("capture".to_owned(), 4200)]);
}

#[tokio::test]
async fn concurrent_charges_of_one_order_capture_once() {
    let app = Arc::new(spawn_app().await);
    let order = Uuid::new_v4();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.charge(order, 999, CARD).await })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let (status, body) = t.await.expect("task");
        assert_eq!(status, 200);
        ids.insert(body["payment_id"].as_str().expect("id").to_owned());
    }
    assert_eq!(ids.len(), 1, "one payment id");
    assert_eq!(app.ledger(order).await, vec![("capture".to_owned(), 999)]);
}

#[tokio::test]
async fn declines_are_deterministic_and_remembered() {
    let app = spawn_app().await;
    for (order, amount, card, reason) in [
        (Uuid::new_v4(), 100, DECLINED, "card_declined"),
        (Uuid::new_v4(), 1_000_001, CARD, "amount_over_limit"),
    ] {
        let first = app.charge(order, amount, card).await;
        assert_eq!(first.0, 402);
        assert_eq!(first.1["code"], "declined");
        assert_eq!(first.1["reason"], reason);
        assert_eq!(app.charge(order, amount, card).await, first);
        // Even a retry with a good card gets the recorded answer.
        assert_eq!(app.charge(order, 100, CARD).await.0, 402);
        assert!(app.ledger(order).await.is_empty());
        assert_eq!(
            app.refund(order).await,
            (
                200,
                json!({"order_id": order, "status": "nothing_to_refund"})
            )
        );
    }
    assert_eq!(
        app.charge(Uuid::new_v4(), 1_000_000, CARD).await.0,
        200,
        "limit is inclusive"
    );
}

#[tokio::test]
async fn a_refund_happens_once_and_blocks_a_new_capture() {
    let app = spawn_app().await;
    let order = Uuid::new_v4();
    let (_, charged) = app.charge(order, 5000, CARD).await;

    let first = app.refund(order).await;
    let second = app.refund(order).await;

    assert_eq!(first.0, 200);
    assert_eq!(first.1["status"], "refunded");
    assert_eq!(first.1["payment_id"], charged["payment_id"]);
    assert_eq!(second, first);
    assert_eq!(
        app.ledger(order).await,
        vec![("capture".to_owned(), 5000), ("refund".to_owned(), 5000)]
    );
    let (status, body) = app.charge(order, 5000, CARD).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("payment_refunded"))
    );
    assert_eq!(app.ledger(order).await.len(), 2);
}

// Prevents: a charge that was delayed past its compensation (refund) capturing money for
// an order the saga already cancelled.
#[tokio::test]
async fn a_charge_arriving_after_its_refund_captures_nothing() {
    let app = spawn_app().await;
    let order = Uuid::new_v4();

    assert_eq!(
        app.refund(order).await,
        (
            200,
            json!({"order_id": order, "status": "nothing_to_refund"})
        )
    );
    let (status, body) = app.charge(order, 100, CARD).await;

    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("payment_voided"))
    );
    assert!(app.ledger(order).await.is_empty());
    assert_eq!(app.refund(order).await.1["status"], "nothing_to_refund");
}

#[tokio::test]
async fn a_payment_can_be_read_with_its_ledger_and_totals_balance() {
    let app = spawn_app().await;
    let a = Uuid::new_v4();
    let b = Uuid::new_v4();
    app.charge(a, 1000, CARD).await;
    app.charge(b, 300, "4242 4242 4242 4242").await;
    app.refund(b).await;

    let v: Value = app
        .client
        .get(app.url(&format!("/api/v1/payments/{b}")))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(v["status"], "refunded");
    assert_eq!(v["card_last4"], "4242");
    assert_eq!(v["ledger"].as_array().map(Vec::len), Some(2));
    let missing = app
        .client
        .get(app.url(&format!("/api/v1/payments/{}", Uuid::new_v4())))
        .send()
        .await
        .expect("request");
    assert_eq!(missing.status(), 404);
    let bad = app
        .client
        .get(app.url("/api/v1/payments/not-a-uuid"))
        .send()
        .await
        .expect("request");
    assert_eq!(bad.status(), 400);

    let totals: Value = app
        .client
        .get(app.url("/internal/ledger/totals"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(
        totals,
        json!({"captured_cents": 1300, "refunded_cents": 300, "net_cents": 1000, "captures": 2, "refunds": 1})
    );
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("payment_captured_cents_total 1300"),
        "{metrics}"
    );
}

#[tokio::test]
async fn bad_cards_and_amounts_are_4xx() {
    let app = spawn_app().await;
    for (body, code) in [
        (
            json!({"order_id": Uuid::new_v4(), "amount_cents": 0, "card": CARD}),
            "invalid_amount",
        ),
        (
            json!({"order_id": Uuid::new_v4(), "amount_cents": 10, "card": "4242424242424241"}),
            "invalid_card",
        ),
        (
            json!({"order_id": "x", "amount_cents": 10, "card": CARD}),
            "invalid_json",
        ),
        (
            json!({"order_id": Uuid::new_v4(), "amount_cents": 1.5, "card": CARD}),
            "invalid_json",
        ),
    ] {
        let (status, v) = app.post_json("/internal/payments/charge", &body).await;
        assert!((400..500).contains(&status), "{body} -> {status}");
        assert_eq!(v["code"], code, "{body}");
    }
}

// Prevents: a charge racing its own compensation leaving money captured for a cancelled
// order (the refund must win or the charge must be refused).
#[tokio::test]
async fn a_charge_racing_its_refund_never_leaves_money_captured() {
    let app = Arc::new(spawn_app().await);
    let orders: Vec<Uuid> = (0..20).map(|_| Uuid::new_v4()).collect();
    let mut tasks = Vec::new();
    for order in &orders {
        let (a, b) = (app.clone(), app.clone());
        let order = *order;
        tasks.push(tokio::spawn(
            async move { a.charge(order, 700, CARD).await.0 },
        ));
        tasks.push(tokio::spawn(async move { b.refund(order).await.0 }));
    }
    for t in tasks {
        let status = t.await.expect("task");
        assert!(status == 200 || status == 409, "status {status}");
    }
    for order in &orders {
        // Either the refund came first (tombstone; the charge was refused) or the charge
        // came first and the refund undid it: never a capture alone.
        let ledger = app.ledger(*order).await;
        assert!(
            ledger.is_empty()
                || ledger == vec![("capture".to_owned(), 700), ("refund".to_owned(), 700)],
            "{ledger:?}"
        );
    }
}
