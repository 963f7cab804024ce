//! `sql` steps: run a SELECT against a component's database and return its rows as JSON.
//!
//! The query is wrapped as `SELECT row_to_json(q)::text FROM (<query>) q`, so any column type
//! (bigint, numeric sums, uuid, jsonb, timestamps) comes back as JSON without the harness
//! knowing the types, and column order is kept.

use std::collections::HashMap;
use std::time::Duration;

use indexmap::IndexMap;
use serde_json::Value;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;
use tokio::sync::Mutex;

/// Longest a query may take.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// One row: column → value, in column order.
pub type Row = IndexMap<String, Value>;

/// Pools by database URL, opened on first use.
#[derive(Default)]
pub struct Databases {
    pools: Mutex<HashMap<String, PgPool>>,
}

impl Databases {
    async fn pool(&self, url: &str) -> Result<PgPool, String> {
        let mut pools = self.pools.lock().await;
        if let Some(p) = pools.get(url) {
            return Ok(p.clone());
        }
        let opts: PgConnectOptions = url
            .parse()
            .map_err(|e| format!("invalid database URL: {e}"))?;
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(5))
            .connect_lazy_with(opts);
        pools.insert(url.to_string(), pool.clone());
        Ok(pool)
    }

    /// Runs `query` (a SELECT, without a trailing semicolon) and returns its rows.
    ///
    /// A query that takes longer than [`QUERY_TIMEOUT`] is abandoned and its pool dropped:
    /// after a network fault a pooled connection can hang on a peer that is gone, and a
    /// pool of hung connections would refuse every later query.
    pub async fn rows(&self, url: &str, query: &str) -> Result<Vec<Row>, String> {
        let pool = self.pool(url).await?;
        let query = query.trim().trim_end_matches(';');
        let wrapped = format!("SELECT row_to_json(q)::text FROM ({query}) AS q");
        let fetched =
            tokio::time::timeout(QUERY_TIMEOUT, sqlx::query_scalar(&wrapped).fetch_all(&pool))
                .await;
        let texts: Vec<String> = match fetched {
            Ok(r) => r.map_err(|e| format!("query failed: {e}"))?,
            Err(_) => {
                self.pools.lock().await.remove(url);
                return Err(format!(
                    "query timed out after {}s",
                    QUERY_TIMEOUT.as_secs()
                ));
            }
        };
        texts
            .iter()
            .map(|t| serde_json::from_str::<Row>(t).map_err(|e| format!("bad row JSON: {e}")))
            .collect()
    }

    /// The first column of the first row (`None` when there is no row).
    pub async fn scalar(&self, url: &str, query: &str) -> Result<Option<Value>, String> {
        let rows = self.rows(url, query).await?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().map(|(_, v)| v)))
    }

    /// Closes every pool.
    pub async fn close(&self) {
        for (_, p) in self.pools.lock().await.drain() {
            p.close().await;
        }
    }
}

/// Hides the password of a database URL for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        Err(_) => "<invalid url>".to_string(),
    }
}
