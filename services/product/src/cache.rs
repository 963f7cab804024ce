//! Read-through cache of product views in Redis, shared by every replica.
//!
//! Reads try Redis first and fill it from Postgres on a miss; every write to a product
//! (CRUD and the reservation API, which change its stock counters) deletes its key after
//! the transaction commits. A fill that races an invalidation can put back a stale view,
//! so entries also expire (`PRODUCT_CACHE_TTL`). Redis failures are counted and ignored:
//! the cache must never make a request fail.

use std::time::Duration;

use redis::AsyncCommands;
use service_kit::metrics::{Counter, Metrics};
use uuid::Uuid;

use crate::routes::products::ProductView;
use service_kit::redis_conn::RedisHandle;

/// The product cache.
#[derive(Debug, Clone)]
pub struct ProductCache {
    redis: RedisHandle,
    ttl: Duration,
    hits: Counter,
    misses: Counter,
    errors: Counter,
}

impl ProductCache {
    /// A cache over `redis` whose entries live `ttl`.
    pub fn new(redis: RedisHandle, ttl: Duration, metrics: &Metrics) -> Self {
        let c = |result| {
            metrics.counter(
                "product_cache_requests_total",
                "Product cache look-ups by result (hit, miss, error).",
                &[("result", result)],
            )
        };
        Self {
            redis,
            ttl,
            hits: c("hit"),
            misses: c("miss"),
            errors: c("error"),
        }
    }

    fn key(&self, id: Uuid) -> String {
        self.redis.key(&format!("product:{id}"))
    }

    /// The cached view of `id`, if any.
    #[tracing::instrument(skip(self))]
    pub async fn get(&self, id: Uuid) -> Option<ProductView> {
        let result: redis::RedisResult<Option<String>> = async {
            let mut c = self.redis.conn().await?;
            c.get(self.key(id)).await
        }
        .await;
        match result {
            Ok(Some(json)) => match serde_json::from_str(&json) {
                Ok(v) => {
                    self.hits.inc();
                    Some(v)
                }
                Err(_) => {
                    self.misses.inc();
                    None
                }
            },
            Ok(None) => {
                self.misses.inc();
                None
            }
            Err(e) => {
                self.errors.inc();
                tracing::warn!(error = %e, "product cache read failed");
                None
            }
        }
    }

    /// Store `view`.
    pub async fn put(&self, view: &ProductView) {
        let Ok(json) = serde_json::to_string(view) else {
            return;
        };
        let result: redis::RedisResult<()> = async {
            let mut c = self.redis.conn().await?;
            c.set_ex(self.key(view.id), json, self.ttl.as_secs().max(1))
                .await
        }
        .await;
        if let Err(e) = result {
            self.errors.inc();
            tracing::warn!(error = %e, "product cache fill failed");
        }
    }

    /// Forget `ids` (after a write committed).
    pub async fn invalidate(&self, ids: &[Uuid]) {
        if ids.is_empty() {
            return;
        }
        let keys: Vec<String> = ids.iter().map(|id| self.key(*id)).collect();
        let result: redis::RedisResult<()> = async {
            let mut c = self.redis.conn().await?;
            c.del(keys).await
        }
        .await;
        if let Err(e) = result {
            self.errors.inc();
            tracing::warn!(error = %e, "product cache invalidation failed");
        }
    }
}
