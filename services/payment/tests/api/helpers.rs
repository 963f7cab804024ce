//! `spawn_app`: payment-service on 127.0.0.1:0 against a fresh database on the shared
//! test Postgres.

use std::str::FromStr;

use msctl_stack::testing::TestInfra;
use payment_service::config::Settings;
use payment_service::startup::Application;
use serde_json::{json, Value};
use service_kit::ServiceConfig;
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;
use tokio::sync::OnceCell;
use uuid::Uuid;

pub const CARD: &str = "4242424242424242";
pub const DECLINED: &str = "4000000000000002";

static INFRA: OnceCell<TestInfra> = OnceCell::const_new();

/// Postgres, booted once per test binary.
pub async fn infra() -> &'static TestInfra {
    INFRA
        .get_or_init(|| async {
            TestInfra::boot(env!("CARGO_MANIFEST_DIR"), &["postgres"])
                .await
                .expect("boot postgres (is the Docker engine up?)")
        })
        .await
}

/// A running service and a handle on its database.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub pool: PgPool,
    shutdown: tokio_util::sync::CancellationToken,
    /// (maintenance database URL, test database name), dropped with the app.
    database: (String, String),
}

impl Drop for TestApp {
    /// Stop the service and drop its database, so runs do not pile databases up in the
    /// shared test Postgres. On a thread of its own: `Drop` cannot await.
    fn drop(&mut self) {
        self.shutdown.cancel();
        let (url, db) = self.database.clone();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&url).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
                    .execute(&mut c)
                    .await
                    .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("could not drop test database {}", self.database.1);
        }
    }
}

pub async fn spawn_app() -> TestApp {
    let infra = infra().await;
    let db = format!("payment_test_{}", Uuid::new_v4().simple());
    let url = infra.postgres_url(&db).expect("postgres port");
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
        database: (infra.postgres_url("postgres").expect("postgres port"), db),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// POST `body`; a 503 (database pool exhausted on a loaded machine) is retried, as
    /// every caller of these services does.
    pub async fn post_json(&self, path: &str, body: &Value) -> (u16, Value) {
        for _ in 0..50 {
            let r = self
                .client
                .post(self.url(path))
                .json(body)
                .send()
                .await
                .expect("request");
            let status = r.status().as_u16();
            if status != 503 {
                return (status, r.json().await.unwrap_or(Value::Null));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("POST {path} still 503 after 50 tries");
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
