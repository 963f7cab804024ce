//! The public API without participants: validation, idempotency, ownership, admin.

use serde_json::{json, Value};

use crate::helpers::*;

fn item() -> Value {
    json!([{"product_id": uuid::Uuid::new_v4(), "quantity": 2}])
}

#[tokio::test]
async fn a_new_order_is_accepted_as_pending_and_readable_by_its_owner_only() {
    let world = World::new().await;
    let order = spawn_order(OrderSpec::new(&world)).await;
    let http = http();

    let resp = place(&http, &order, "alice", item(), "4242424242424242", None).await;
    assert_eq!(resp.status(), 202);
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("Location");
    let body: Value = resp.json().await.expect("json");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["user_id"], "alice");
    let id = body["id"].as_str().expect("id").to_owned();
    assert_eq!(location, format!("/api/v1/orders/{id}"));

    let mine = get_json(&http, &order.url(&location), "alice").await;
    assert_eq!(mine["id"], id.as_str());
    let theirs = http
        .get(order.url(&location))
        .header("x-user-id", "bob")
        .send()
        .await
        .expect("GET");
    assert_eq!(theirs.status(), 404);
    let list = get_json(&http, &order.url("/api/v1/orders"), "alice").await;
    assert_eq!(list["orders"].as_array().map(Vec::len), Some(1));
    let empty = get_json(&http, &order.url("/api/v1/orders"), "bob").await;
    assert_eq!(empty["orders"].as_array().map(Vec::len), Some(0));
    order.stop().await;
}

#[tokio::test]
async fn the_same_idempotency_key_returns_the_same_order_and_starts_no_second_saga() {
    let world = World::new().await;
    let order = spawn_order(OrderSpec::new(&world)).await;
    let http = http();
    let items = item();

    let first: Value = place(&http, &order, "alice", items.clone(), "4242", Some("k-1"))
        .await
        .json()
        .await
        .expect("json");
    let again = place(&http, &order, "alice", items.clone(), "4242", Some("k-1")).await;
    assert_eq!(again.status(), 202);
    assert_eq!(
        again
            .headers()
            .get("idempotent-replayed")
            .map(|v| v.as_bytes()),
        Some(&b"true"[..])
    );
    let again: Value = again.json().await.expect("json");
    assert_eq!(first["id"], again["id"]);

    // Concurrent replays also collapse onto one order.
    let replays =
        (0..10).map(|_| place(&http, &order, "alice", items.clone(), "4242", Some("k-2")));
    let ids: std::collections::HashSet<String> = futures_util::future::join_all(replays)
        .await
        .into_iter()
        .map(|r| {
            assert_eq!(r.status(), 202);
            r.headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{ids:?}");

    // Another user may use the same key.
    let other: Value = place(&http, &order, "bob", items.clone(), "4242", Some("k-1"))
        .await
        .json()
        .await
        .expect("json");
    assert_ne!(other["id"], first["id"]);

    // A different request with a used key is refused.
    let reused = place(&http, &order, "alice", item(), "4242", Some("k-1")).await;
    assert_eq!(reused.status(), 409);
    let body: Value = reused.json().await.expect("json");
    assert_eq!(body["code"], "idempotency_key_reused");

    let sagas = get_json(&http, &order.url("/admin/sagas"), "").await;
    let total: i64 = sagas["orders"]
        .as_object()
        .expect("orders")
        .values()
        .filter_map(Value::as_i64)
        .sum();
    assert_eq!(total, 3, "one order per (user, key): {sagas}");
    order.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_4xx_with_stable_codes() {
    let world = World::new().await;
    let order = spawn_order(OrderSpec::new(&world)).await;
    let http = http();
    let p = uuid::Uuid::new_v4();
    let cases: Vec<(String, Option<&str>, u16, &str)> = vec![
        (
            r#"{"items":[],"card":"4242"}"#.into(),
            None,
            401,
            "unauthorized",
        ),
        ("{".into(), Some("u"), 400, "invalid_json"),
        (
            r#"{"items":[],"card":"4242"}"#.into(),
            Some("u"),
            400,
            "invalid_items",
        ),
        (
            format!(r#"{{"items":[{{"product_id":"{p}","quantity":0}}],"card":"4242"}}"#),
            Some("u"),
            400,
            "invalid_quantity",
        ),
        (
            format!(r#"{{"items":[{{"product_id":"{p}","quantity":1}}],"card":""}}"#),
            Some("u"),
            400,
            "invalid_card",
        ),
        (
            r#"{"items":[{"product_id":"nope","quantity":1}],"card":"4242"}"#.into(),
            Some("u"),
            422,
            "invalid_json",
        ),
        (
            format!(r#"{{"items":[{{"product_id":"{p}","quantity":1.5}}],"card":"4242"}}"#),
            Some("u"),
            422,
            "invalid_json",
        ),
        (
            format!(r#"{{"items":[{{"product_id":"{p}","quantity":1}}],"card":"4242","x":1}}"#),
            Some("u"),
            422,
            "invalid_json",
        ),
    ];
    for (body, user, status, code) in cases {
        let mut req = http
            .post(order.url("/api/v1/orders"))
            .header("content-type", "application/json")
            .body(body.clone());
        if let Some(u) = user {
            req = req.header("x-user-id", u);
        }
        let resp = req.send().await.expect("POST");
        assert_eq!(resp.status().as_u16(), status, "{body}");
        let json: Value = resp.json().await.expect("json error body");
        assert_eq!(json["code"], code, "{body}");
    }
    for (path, code) in [
        ("/api/v1/orders/not-a-uuid", "invalid_id"),
        ("/api/v1/orders?limit=0", "invalid_limit"),
        ("/api/v1/orders?status=lost", "invalid_status"),
    ] {
        let resp = http
            .get(order.url(path))
            .header("x-user-id", "u")
            .send()
            .await
            .expect("GET");
        assert_eq!(resp.status(), 400, "{path}");
        let json: Value = resp.json().await.expect("json");
        assert_eq!(json["code"], code, "{path}");
    }
    order.stop().await;
}

#[tokio::test]
async fn admin_sagas_needs_the_token_and_kit_endpoints_answer() {
    let world = World::new().await;
    let order = spawn_order(OrderSpec::new(&world)).await;
    let http = http();
    let anon = http
        .get(order.url("/admin/sagas"))
        .send()
        .await
        .expect("GET");
    assert_eq!(anon.status(), 401);
    let ok = get_json(&http, &order.url("/admin/sagas"), "").await;
    assert!(ok["sagas"]["reserving"].is_i64(), "{ok}");
    assert!(ok["outbox"]["unpublished"].is_i64(), "{ok}");
    for path in ["/health", "/ready", "/metrics", "/openapi.json"] {
        let r = http.get(order.url(path)).send().await.expect("GET");
        assert_eq!(r.status(), 200, "{path}");
    }
    let doc: Value = http
        .get(order.url("/openapi.json"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert!(doc["paths"]["/api/v1/orders"]["post"].is_object());
    order.stop().await;
}
