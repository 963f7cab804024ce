//! `spawn_app`: product-service on 127.0.0.1:0 against a fresh database on the shared
//! test Postgres, with its own Redis key prefix.

use std::str::FromStr;
use std::time::Duration;

use msctl_stack::testing::TestInfra;
use product_service::config::Settings;
use product_service::startup::Application;
use serde_json::{json, Value};
use service_kit::ServiceConfig;
use service_testkit::TestDatabase;
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;
use uuid::Uuid;

/// The admin the tests configure in `PRODUCT_ADMIN_USERS`.
pub const ADMIN: Uuid = Uuid::from_u128(0xa0);
/// The admin token of `ServiceConfig::for_tests`.
pub const ADMIN_TOKEN: &str = "test-admin-token";

/// Postgres and Redis, booted once per test binary.
pub async fn infra() -> &'static TestInfra {
    service_testkit::infra(&["postgres", "redis"]).await
}

/// A running service and a handle on its database.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    shutdown: tokio_util::sync::CancellationToken,
    /// The test database, dropped after the service stopped.
    _database: TestDatabase,
    /// How this instance was configured, for [`TestApp::spawn_replica`].
    settings: Settings,
}

/// A second instance over the same database and Redis prefix (the stack runs two).
pub struct Replica {
    pub address: String,
    shutdown: tokio_util::sync::CancellationToken,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Drop for TestApp {
    /// Stop the service; its database is dropped after, with the [`TestDatabase`] field.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn spawn_app() -> TestApp {
    let redis = infra().await.redis_url().expect("redis port");
    spawn_app_with_redis(&redis).await
}

/// Like [`spawn_app`] with another Redis URL (e.g. one nobody listens on).
pub async fn spawn_app_with_redis(redis_url: &str) -> TestApp {
    let infra = infra().await;
    let database = TestDatabase::fresh(infra, "product_test_");
    let (db, url) = (database.name.clone(), database.url.clone());
    let settings = Settings {
        service: ServiceConfig::for_tests("product-service"),
        database: PgConnectOptions::from_str(&url).expect("url"),
        redis_url: redis_url.to_owned(),
        redis_prefix: format!("{db}:"),
        cache_ttl: Duration::from_secs(30),
        admin_users: vec![ADMIN],
    };
    let app = Application::build(settings.clone())
        .await
        .expect("build app");
    let address = format!("http://{}", app.local_addr());
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    let pool = PgPool::connect(&url).await.expect("test pool");
    TestApp {
        address,
        client: reqwest::Client::new(),
        pool,
        shutdown,
        _database: database,
        settings,
    }
}

impl TestApp {
    pub async fn spawn_replica(&self) -> Replica {
        let app = Application::build(self.settings.clone())
            .await
            .expect("build replica");
        let address = format!("http://{}", app.local_addr());
        let shutdown = app.shutdown_token();
        tokio::spawn(app.run_until_stopped());
        Replica { address, shutdown }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Create a product as the admin; returns its id.
    pub async fn create_product(&self, name: &str, price_cents: i64, stock: i64) -> Uuid {
        let r = self
            .client
            .post(self.url("/api/v1/products"))
            .header("x-user-id", ADMIN.to_string())
            .json(&json!({"name": name, "price_cents": price_cents, "stock": stock}))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        let v: Value = r.json().await.expect("json");
        Uuid::parse_str(v["id"].as_str().expect("id")).expect("uuid")
    }

    /// (available, reserved, sold) straight from the database.
    pub async fn stock(&self, id: Uuid) -> (i64, i64, i64) {
        sqlx::query_as("SELECT available, reserved, sold FROM products WHERE id = $1")
            .bind(id)
            .fetch_one(&self.pool)
            .await
            .expect("stock")
    }

    pub async fn reserve(&self, order_id: Uuid, items: &[(Uuid, i64)]) -> (u16, Value) {
        let items: Vec<Value> = items
            .iter()
            .map(|(p, q)| json!({"product_id": p, "quantity": q}))
            .collect();
        self.post_json(
            "/internal/reservations",
            &json!({"order_id": order_id, "items": items}),
        )
        .await
    }

    /// POST `body`, retrying 503 (see [`service_testkit::post_json`]).
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        service_testkit::post_json(&self.client, &self.url(path), body).await
    }

    pub async fn release(&self, order_id: Uuid) -> (u16, Value) {
        self.post_json(
            &format!("/internal/reservations/{order_id}/release"),
            &Value::Null,
        )
        .await
    }

    pub async fn commit(&self, order_id: Uuid) -> (u16, Value) {
        self.post_json(
            &format!("/internal/reservations/{order_id}/commit"),
            &Value::Null,
        )
        .await
    }
}
