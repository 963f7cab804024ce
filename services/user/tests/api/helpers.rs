//! `spawn_app`: user-service on 127.0.0.1:0 against a fresh database on the shared test
//! Postgres, with its own Redis key prefix and cheap argon2 parameters.

use std::str::FromStr;
use std::time::Duration;

use msctl_stack::testing::TestInfra;
use serde_json::{json, Value};
use service_kit::config::JwtConfig;
use service_kit::ServiceConfig;
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;
use tokio::sync::OnceCell;
use user_service::config::{HashCost, Settings};
use user_service::startup::Application;
use uuid::Uuid;

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const JWT_SECRET: &str = "test-secret-0123456789abcdef";

static INFRA: OnceCell<TestInfra> = OnceCell::const_new();

/// Postgres and Redis, booted once per test binary.
pub async fn infra() -> &'static TestInfra {
    INFRA
        .get_or_init(|| async {
            TestInfra::boot(env!("CARGO_MANIFEST_DIR"), &["postgres", "redis"])
                .await
                .expect("boot postgres and redis (is the Docker engine up?)")
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
    spawn_app_with_ttl(Duration::from_secs(3600)).await
}

pub async fn spawn_app_with_ttl(token_ttl: Duration) -> TestApp {
    let infra = infra().await;
    let db = format!("user_test_{}", Uuid::new_v4().simple());
    let url = infra.postgres_url(&db).expect("postgres port");
    let mut service = ServiceConfig::for_tests("user-service");
    service.jwt = Some(JwtConfig {
        secret: JWT_SECRET.into(),
        issuer: "msctl".into(),
    });
    let settings = Settings {
        service,
        database: PgConnectOptions::from_str(&url).expect("url"),
        redis_url: infra.redis_url().expect("redis port"),
        redis_prefix: format!("{db}:"),
        token_ttl,
        hash_cost: HashCost {
            memory_kib: 256,
            iterations: 1,
        },
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

    pub async fn register(&self, email: &str, password: &str, name: &str) -> (u16, Value) {
        self.post_json(
            "/api/v1/users/register",
            &json!({"email": email, "password": password, "name": name}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> (u16, Value) {
        self.post_json(
            "/api/v1/users/login",
            &json!({"email": email, "password": password}),
        )
        .await
    }

    /// Register and log in; returns (user id, token).
    pub async fn signed_in(&self, email: &str) -> (String, String) {
        let (status, _) = self.register(email, "password-123", "Someone").await;
        assert_eq!(status, 201);
        let (status, v) = self.login(email, "password-123").await;
        assert_eq!(status, 200, "{v}");
        (
            v["user_id"].as_str().expect("id").to_owned(),
            v["token"].as_str().expect("token").to_owned(),
        )
    }

    /// A request as the gateway forwards it: X-User-Id and the bearer token.
    pub fn as_user(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &str,
        token: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .header("x-user-id", user)
            .bearer_auth(token)
    }
}
