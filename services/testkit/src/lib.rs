//! `service-testkit`: what the services' integration tests share (a dev-dependency only).
//!
//! - [`infra`]: the real Postgres / Redis / RabbitMQ of the `msctl-test` project, booted
//!   once per test binary;
//! - [`TestDatabase`]: a fresh database name on that Postgres, dropped with the guard, so
//!   runs do not pile databases up in the shared server;
//! - [`post_json`]: a POST that retries 503 like every caller of these services does;
//! - [`malformed`]: the generated-malformed-input property test ("never a 5xx, every 4xx
//!   has a JSON `code`").

pub mod malformed;

use msctl_stack::testing::TestInfra;
use serde_json::Value;
use tokio::sync::OnceCell;

static INFRA: OnceCell<TestInfra> = OnceCell::const_new();

/// `components` of the repository's stack (e.g. `["postgres", "redis"]`) under the shared
/// test project, booted by the first caller in this test binary.
pub async fn infra(components: &[&str]) -> &'static TestInfra {
    INFRA
        .get_or_init(|| async {
            TestInfra::boot(env!("CARGO_MANIFEST_DIR"), components)
                .await
                .unwrap_or_else(|e| {
                    panic!("boot {components:?} (is the Docker engine reachable?): {e}")
                })
        })
        .await
}

/// A database of the test Postgres reserved for one test: its name is fresh, the service
/// under test creates it, and dropping the guard drops it (`WITH (FORCE)`, so connections
/// a stopping service still holds do not keep it).
#[derive(Debug)]
pub struct TestDatabase {
    /// The database name.
    pub name: String,
    /// Its URL on 127.0.0.1.
    pub url: String,
    maintenance_url: String,
}

impl TestDatabase {
    /// `prefix` followed by a fresh UUID, e.g. `user_test_3f…`.
    pub fn fresh(infra: &TestInfra, prefix: &str) -> Self {
        Self::named(infra, &format!("{prefix}{}", uuid::Uuid::new_v4().simple()))
    }

    /// Exactly `name` (the caller makes it unique).
    pub fn named(infra: &TestInfra, name: &str) -> Self {
        Self {
            name: name.to_owned(),
            url: infra.postgres_url(name).expect("postgres port"),
            maintenance_url: infra.postgres_url("postgres").expect("postgres port"),
        }
    }
}

impl Drop for TestDatabase {
    /// On a thread of its own: `Drop` cannot await, and the test's runtime may be gone.
    fn drop(&mut self) {
        let (url, db) = (self.maintenance_url.clone(), self.name.clone());
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
            eprintln!("could not drop test database {}", self.name);
        }
    }
}

/// POST `body` to `url`; a 503 (database pool exhausted on a loaded machine) is retried, as
/// every caller of these services does. Returns the status and the JSON body (`null` when
/// there is none).
pub async fn post_json(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    for _ in 0..50 {
        let r = client.post(url).json(body).send().await.expect("request");
        let status = r.status().as_u16();
        if status != 503 {
            return (status, r.json().await.unwrap_or(Value::Null));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("POST {url} still 503 after 50 tries");
}
