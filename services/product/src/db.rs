//! The service's own database: the kit's create-if-missing, pool and migrate
//! ([`service_kit::db`]) with this crate's migrations.

use service_kit::db::{DbError, PoolSettings};
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool};

/// The migrations in `services/product/migrations`, embedded at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Create the database if needed, open the pool and migrate.
pub async fn connect_and_migrate(opts: &PgConnectOptions) -> Result<PgPool, DbError> {
    service_kit::db::prepare(opts, &MIGRATOR, &PoolSettings::default()).await
}
