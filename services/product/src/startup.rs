//! Building the application: database, Redis, state, routes, and the kit's host.

use std::net::SocketAddr;

use service_kit::app::AppError;
use service_kit::redis_conn::RedisHandle;
use service_kit::{RunningService, ServiceHost};
use tokio_util::sync::CancellationToken;

use crate::cache::ProductCache;
use crate::config::Settings;
use crate::db;
use crate::state::{AppState, CatalogAdmins};
use crate::{openapi, routes};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Database setup failed.
    #[error(transparent)]
    Database(#[from] service_kit::db::DbError),
    /// `REDIS_URL` was refused by the client.
    #[error("REDIS_URL is invalid: {0}")]
    Redis(#[from] redis::RedisError),
    /// Binding the listener failed.
    #[error(transparent)]
    App(#[from] AppError),
}

/// A built, bound product-service.
#[derive(Debug)]
pub struct Application {
    running: RunningService,
}

impl Application {
    /// Prepare the database (create, migrate), connect Redis lazily and bind the port.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let pool = db::connect_and_migrate(&settings.database).await?;
        let redis = RedisHandle::new(&settings.redis_url, &settings.redis_prefix)?;
        let mut host = ServiceHost::new(settings.service.clone());
        let cache = ProductCache::new(redis.clone(), settings.cache_ttl, host.metrics());
        let admins = CatalogAdmins::new(
            settings.service.admin_token.as_deref(),
            &settings.admin_users,
        );
        let state = AppState::new(pool.clone(), cache, admins, host.metrics());
        let ready_pool = pool.clone();
        host.readiness_check("postgres", move || {
            service_kit::db::ping(ready_pool.clone())
        })
        .readiness_check("redis", move || redis.clone().ping())
        .openapi(openapi::document())
        .on_shutdown(async move { pool.close().await });
        let running = host.bind(routes::router(state)).await?;
        Ok(Self { running })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.running.local_addr()
    }

    /// Cancel to stop gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.running.shutdown_token()
    }

    /// Register, serve until stopped, shut down gracefully.
    pub async fn run_until_stopped(self) -> Result<(), AppError> {
        self.running.run_until_stopped().await
    }
}
