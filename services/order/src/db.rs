//! The service's own database: the kit's create-if-missing, pool and migrate
//! ([`service_kit::db`]) with this crate's migrations.

use service_kit::db::{DbError, PoolSettings};
use sqlx::migrate::Migrator;
use sqlx::PgPool;

/// The migrations in `services/order/migrations`, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Connect to `url`, creating its database when it does not exist and waiting for the
/// server as `settings` says, and run the migrations.
pub async fn prepare(url: &str, settings: &PoolSettings) -> Result<PgPool, DbError> {
    let opts = service_kit::db::connect_options(url)?;
    service_kit::db::prepare(&opts, &MIGRATOR, settings).await
}
