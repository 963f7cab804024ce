//! Logout: revoked token ids (`jti`) in Redis, each kept exactly as long as the token
//! would still be valid, so the set never grows past the live tokens.
//!
//! Key: `<REDIS_PREFIX>revoked:<jti>`. Anyone holding a token can ask
//! `GET /internal/tokens/{jti}/revoked` (the gateway, for instance).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::AsyncCommands;

use service_kit::redis_conn::RedisHandle;

/// The revocation list.
#[derive(Debug, Clone)]
pub struct Revocations {
    redis: RedisHandle,
}

/// Seconds until `exp` (a JWT expiry), at least 1.
pub fn remaining(exp: u64) -> Duration {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    Duration::from_secs(exp.saturating_sub(now).max(1))
}

impl Revocations {
    /// Over `redis`.
    pub fn new(redis: RedisHandle) -> Self {
        Self { redis }
    }

    fn key(&self, jti: &str) -> String {
        self.redis.key(&format!("revoked:{jti}"))
    }

    /// Revoke `jti` until `exp` (+ a few seconds of the validators' clock leeway).
    #[tracing::instrument(skip(self))]
    pub async fn revoke(&self, jti: &str, exp: u64) -> redis::RedisResult<()> {
        let ttl = remaining(exp) + Duration::from_secs(5);
        let mut c = self.redis.conn().await?;
        c.set_ex(self.key(jti), "1", ttl.as_secs()).await
    }

    /// Whether `jti` is revoked.
    #[tracing::instrument(skip(self))]
    pub async fn is_revoked(&self, jti: &str) -> redis::RedisResult<bool> {
        let mut c = self.redis.conn().await?;
        c.exists(self.key(jti)).await
    }
}
