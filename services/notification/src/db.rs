//! The service's own database: created on the shared server if missing, then migrated.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};

/// Why the database could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// `DATABASE_URL` does not parse.
    #[error("DATABASE_URL is not a valid postgres URL: {0}")]
    Url(#[source] sqlx::Error),
    /// The database name cannot be used in `CREATE DATABASE`.
    #[error("database name {0:?} is not allowed; use letters, digits and '_'")]
    Name(String),
    /// The server could not be reached in time.
    #[error("cannot reach postgres after {attempts} attempts: {source}")]
    Unreachable {
        /// Attempts made.
        attempts: u32,
        /// Last error.
        #[source]
        source: sqlx::Error,
    },
    /// A statement failed.
    #[error("database error: {0}")]
    Sql(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Connect to `url`, creating its database (through the `postgres` maintenance database)
/// when it does not exist, retrying for up to `patience` while the server starts, and run
/// the migrations.
pub async fn prepare(
    url: &str,
    max_connections: u32,
    patience: Duration,
) -> Result<PgPool, DbError> {
    let opts = PgConnectOptions::from_str(url).map_err(DbError::Url)?;
    let name = opts.get_database().unwrap_or("postgres").to_owned();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(DbError::Name(name));
    }
    let maintenance = opts.clone().database("postgres");
    let started = tokio::time::Instant::now();
    let mut attempts = 0;
    let mut admin = loop {
        attempts += 1;
        match maintenance.connect().await {
            Ok(c) => break c,
            Err(e) if started.elapsed() < patience => {
                tracing::warn!(error = %e, attempts, "postgres not reachable yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(source) => return Err(DbError::Unreachable { attempts, source }),
        }
    };
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut admin)
        .await?;
    if exists.is_none() {
        let created = sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut admin)
            .await;
        match created {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another instance created it at the same moment.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04") | Some("23505")) => {}
            Err(e) => return Err(e.into()),
        }
    }
    drop(admin);
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(opts)
        .await?;
    sqlx::migrate!("./migrations").run(&pool).await?;
    Ok(pool)
}
