//! The public catalog: admin checks, cache, search, seeding.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_app, ADMIN, ADMIN_TOKEN};

#[tokio::test]
async fn only_catalog_admins_may_create_products() {
    // Arrange
    let app = spawn_app().await;
    let body = json!({"name": "Mug", "price_cents": 1200, "stock": 5});
    let post = |h: Option<(&'static str, String)>| {
        let mut r = app.client.post(app.url("/api/v1/products")).json(&body);
        if let Some((k, v)) = h {
            r = r.header(k, v);
        }
        r.send()
    };
    // Act / Assert
    let anon = post(None).await.expect("request");
    assert_eq!(anon.status(), 401);
    let v: Value = anon.json().await.expect("json");
    assert_eq!(v["code"], "unauthorized");
    let user = post(Some(("x-user-id", Uuid::new_v4().to_string())))
        .await
        .expect("request");
    assert_eq!(user.status(), 403);
    let wrong = post(Some(("x-admin-token", "nope".into())))
        .await
        .expect("request");
    assert_eq!(wrong.status(), 403);
    let admin = post(Some(("x-user-id", ADMIN.to_string())))
        .await
        .expect("request");
    assert_eq!(admin.status(), 201);
    let token = post(Some(("x-admin-token", ADMIN_TOKEN.into())))
        .await
        .expect("request");
    assert_eq!(token.status(), 201);
}

#[tokio::test]
async fn get_reads_through_the_cache_and_writes_invalidate_it() {
    let app = spawn_app().await;
    let id = app.create_product("Lamp", 4500, 7).await;
    let get = || {
        app.client
            .get(app.url(&format!("/api/v1/products/{id}")))
            .send()
    };

    let first = get().await.expect("request");
    assert_eq!(first.headers()["x-cache"], "miss");
    let v: Value = first.json().await.expect("json");
    assert_eq!(
        v["stock"],
        json!({"available": 7, "reserved": 0, "sold": 0})
    );
    let second = get().await.expect("request");
    assert_eq!(second.headers()["x-cache"], "hit");

    let put = app
        .client
        .put(app.url(&format!("/api/v1/products/{id}")))
        .header("x-user-id", ADMIN.to_string())
        .json(&json!({"price_cents": 3900}))
        .send()
        .await
        .expect("request");
    assert_eq!(put.status(), 200);
    let after = get().await.expect("request");
    assert_eq!(after.headers()["x-cache"], "miss", "PUT must invalidate");
    let v: Value = after.json().await.expect("json");
    assert_eq!(v["price_cents"], 3900);

    // A reservation changes the stock shown, so it invalidates too.
    let (status, _) = app.reserve(Uuid::new_v4(), &[(id, 2)]).await;
    assert_eq!(status, 200);
    let v: Value = get().await.expect("request").json().await.expect("json");
    assert_eq!(
        v["stock"],
        json!({"available": 5, "reserved": 2, "sold": 0})
    );
}

#[tokio::test]
async fn search_matches_names_literally_and_paginates() {
    let app = spawn_app().await;
    for name in ["Red Mug", "Blue Mug", "Teapot", "100% Cotton Shirt"] {
        app.create_product(name, 100, 1).await;
    }
    let list = |q: &str| {
        app.client
            .get(app.url("/api/v1/products"))
            .query(&[("q", q), ("limit", "1")])
            .send()
    };
    let v: Value = list("mug")
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(v["total"], 2);
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1));
    let v: Value = list("%")
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(v["total"], 1, "% is literal, not a wildcard: {v}");
    let all: Value = app
        .client
        .get(app.url("/api/v1/products?offset=1&limit=2"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(all["total"], 4);
    assert_eq!(all["items"][0]["name"], "Blue Mug", "sorted by name: {all}");
    let bad = app
        .client
        .get(app.url("/api/v1/products?limit=0"))
        .send()
        .await
        .expect("request");
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn deleted_products_disappear_but_their_reservations_still_settle() {
    let app = spawn_app().await;
    let id = app.create_product("Gone", 100, 3).await;
    let order = Uuid::new_v4();
    assert_eq!(app.reserve(order, &[(id, 2)]).await.0, 200);
    let del = app
        .client
        .delete(app.url(&format!("/api/v1/products/{id}")))
        .header("x-admin-token", ADMIN_TOKEN)
        .send()
        .await
        .expect("request");
    assert_eq!(del.status(), 204);
    let get = app
        .client
        .get(app.url(&format!("/api/v1/products/{id}")))
        .send()
        .await
        .expect("request");
    assert_eq!(get.status(), 404);
    assert_eq!(app.release(order).await.0, 200);
    assert_eq!(app.stock(id).await, (3, 0, 0));
    let (status, v) = app.reserve(Uuid::new_v4(), &[(id, 1)]).await;
    assert_eq!((status, v["code"].as_str()), (409, Some("out_of_stock")));
}

#[tokio::test]
async fn seeding_the_fixture_twice_creates_each_product_once() {
    let app = spawn_app().await;
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/seed/products.json"
    );
    let file: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    let n = file["products"].as_array().map(Vec::len).expect("products");
    assert!(n >= 10, "about ten seed products");
    let seed = || {
        app.client
            .post(app.url("/admin/seed"))
            .header("x-admin-token", ADMIN_TOKEN)
            .json(&file)
            .send()
    };
    let first: Value = seed().await.expect("request").json().await.expect("json");
    assert_eq!(first, json!({"created": n, "existing": 0}));
    let second: Value = seed().await.expect("request").json().await.expect("json");
    assert_eq!(second, json!({"created": 0, "existing": n}));
    let unauthenticated = app
        .client
        .post(app.url("/admin/seed"))
        .json(&file)
        .send()
        .await
        .expect("request");
    assert_eq!(unauthenticated.status(), 401);
}

#[tokio::test]
async fn health_ready_metrics_and_openapi_are_served() {
    let app = spawn_app().await;
    for path in ["/health", "/ready", "/openapi.json"] {
        let r = app.client.get(app.url(path)).send().await.expect("request");
        assert_eq!(r.status(), 200, "{path}");
    }
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert!(doc["paths"]["/internal/reservations"].is_object());
    app.reserve(Uuid::new_v4(), &[(Uuid::new_v4(), 1)]).await;
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("text");
    assert!(
        text.contains("product_reservations_total{result=\"out_of_stock\"} 1"),
        "{text}"
    );
}

// Prevents: a Redis outage taking the catalog down with it; the cache is an optimisation.
#[tokio::test]
async fn without_redis_the_catalog_is_served_from_postgres_and_not_ready() {
    let app = crate::helpers::spawn_app_with_redis("redis://127.0.0.1:1").await;
    let id = app.create_product("No cache", 100, 2).await;

    let get = app
        .client
        .get(app.url(&format!("/api/v1/products/{id}")))
        .send()
        .await
        .expect("request");
    let reserve = app.reserve(Uuid::new_v4(), &[(id, 1)]).await;
    let ready = app
        .client
        .get(app.url("/ready"))
        .send()
        .await
        .expect("request");

    assert_eq!(get.status(), 200);
    assert_eq!(reserve.0, 200);
    assert_eq!(ready.status(), 503);
    let v: Value = ready.json().await.expect("json");
    assert_eq!(v["checks"]["postgres"], "ok");
}
