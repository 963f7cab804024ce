//! A Redis connection opened on first use (feature `redis`), so a service starts (and keeps
//! serving from Postgres) while Redis is down; the connection manager reconnects after I/O
//! errors. Short timeouts keep a slow Redis from stalling requests: for the services Redis
//! is a cache or a revocation list checked on the side, not their store of record.

use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

/// A lazily connected, shared Redis handle; cheap to clone.
#[derive(Clone)]
pub struct RedisHandle {
    client: ::redis::Client,
    conn: std::sync::Arc<OnceCell<ConnectionManager>>,
    prefix: std::sync::Arc<str>,
}

impl std::fmt::Debug for RedisHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHandle")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisHandle {
    /// A handle for `url` whose keys start with `prefix`; nothing is connected yet.
    pub fn new(url: &str, prefix: &str) -> ::redis::RedisResult<Self> {
        Ok(Self {
            client: ::redis::Client::open(url)?,
            conn: std::sync::Arc::new(OnceCell::new()),
            prefix: prefix.into(),
        })
    }

    /// `prefix` + `key`.
    pub fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// The shared connection, connecting on first use.
    pub async fn conn(&self) -> ::redis::RedisResult<ConnectionManager> {
        let client = self.client.clone();
        self.conn
            .get_or_try_init(|| async move {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Duration::from_millis(500))
                    .set_response_timeout(Duration::from_millis(500))
                    .set_number_of_retries(1)
                    .set_max_delay(200);
                ConnectionManager::new_with_config(client, config).await
            })
            .await
            .cloned()
    }

    /// `/ready` check: PING.
    pub async fn ping(self) -> Result<(), String> {
        let mut c = self.conn().await.map_err(|e| format!("redis: {e}"))?;
        ::redis::cmd("PING")
            .query_async::<String>(&mut c)
            .await
            .map(|_| ())
            .map_err(|e| format!("redis: {e}"))
    }
}
