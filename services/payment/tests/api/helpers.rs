//! `spawn_app`: payment-service on 127.0.0.1:0 against a fresh database on the shared
//! test Postgres.

use std::str::FromStr;

use msctl_stack::testing::TestInfra;
use payment_service::config::Settings;
use payment_service::startup::Application;
use serde_json::{json, Value};
use service_kit::ServiceConfig;
use service_testkit::TestDatabase;
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;
use uuid::Uuid;

pub const CARD: &str = "4242424242424242";
pub const DECLINED: &str = "4000000000000002";

/// Postgres, booted once per test binary.
pub async fn infra() -> &'static TestInfra {
    service_testkit::infra(&["postgres"]).await
}

/// A running service and a handle on its database.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    shutdown: tokio_util::sync::CancellationToken,
    /// The test database, dropped after the service stopped.
    _database: TestDatabase,
}

impl Drop for TestApp {
    /// Stop the service; its database is dropped after, with the [`TestDatabase`] field.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn spawn_app() -> TestApp {
    let infra = infra().await;
    let database = TestDatabase::fresh(infra, "payment_test_");
    let url = database.url.clone();
    let settings = Settings {
        service: ServiceConfig::for_tests("payment-service"),
        database: PgConnectOptions::from_str(&url).expect("url"),
    };
    let app = Application::build(settings).await.expect("build app");
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
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// POST `body`, retrying 503 (see [`service_testkit::post_json`]).
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        service_testkit::post_json(&self.client, &self.url(path), body).await
    }

    pub async fn charge(&self, order_id: Uuid, amount_cents: i64, card: &str) -> (u16, Value) {
        self.post_json(
            "/internal/payments/charge",
            &json!({"order_id": order_id, "amount_cents": amount_cents, "card": card}),
        )
        .await
    }

    pub async fn refund(&self, order_id: Uuid) -> (u16, Value) {
        self.post_json(
            &format!("/internal/payments/{order_id}/refund"),
            &Value::Null,
        )
        .await
    }

    /// Ledger rows of `order_id` as (kind, amount).
    pub async fn ledger(&self, order_id: Uuid) -> Vec<(String, i64)> {
        sqlx::query_as("SELECT kind, amount_cents FROM ledger WHERE order_id = $1 ORDER BY id")
            .bind(order_id)
            .fetch_all(&self.pool)
            .await
            .expect("ledger")
    }
}
