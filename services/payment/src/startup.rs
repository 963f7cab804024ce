//! Building the application: database, state, routes, and the kit's host.

use std::net::SocketAddr;

use service_kit::app::AppError;
use service_kit::{RunningService, ServiceHost};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::db;
use crate::state::AppState;
use crate::{openapi, routes};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Database setup failed.
    #[error(transparent)]
    Database(#[from] service_kit::db::DbError),
    /// Binding the listener failed.
    #[error(transparent)]
    App(#[from] AppError),
}

/// A built, bound payment-service.
#[derive(Debug)]
pub struct Application {
    running: RunningService,
}

impl Application {
    /// Prepare the database (create, migrate) and bind the port.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let pool = db::connect_and_migrate(&settings.database).await?;
        let mut host = ServiceHost::new(settings.service.clone());
        let state = AppState::new(pool.clone(), host.metrics());
        let ready_pool = pool.clone();
        host.readiness_check("postgres", move || {
            service_kit::db::ping(ready_pool.clone())
        })
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
