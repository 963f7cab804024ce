//! `spawn_app`: user-service on 127.0.0.1:0 against a fresh database on the shared test
//! Postgres, with its own Redis key prefix and cheap argon2 parameters.

use std::str::FromStr;
use std::time::Duration;

use msctl_stack::testing::TestInfra;
use serde_json::{json, Value};
use service_kit::config::JwtConfig;
use service_kit::ServiceConfig;
use service_testkit::TestDatabase;
use sqlx::postgres::PgConnectOptions;
use sqlx::PgPool;
use user_service::config::{HashCost, Settings};
use user_service::startup::Application;

pub const ADMIN_TOKEN: &str = "test-admin-token";
pub const JWT_SECRET: &str = "test-secret-0123456789abcdef";

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
}

impl Drop for TestApp {
    /// Stop the service; its database is dropped after, with the [`TestDatabase`] field.
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with_ttl(Duration::from_secs(3600)).await
}

pub async fn spawn_app_with_ttl(token_ttl: Duration) -> TestApp {
    let infra = infra().await;
    let database = TestDatabase::fresh(infra, "user_test_");
    let (db, url) = (database.name.clone(), database.url.clone());
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
