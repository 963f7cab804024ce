//! The service's own database: create it on the shared server if missing, connect, migrate.
//!
//! Database per service (DESIGN §5): the service connects to the `postgres` maintenance
//! database with the same credentials to `CREATE DATABASE`, so a fresh Postgres needs no
//! init scripts. Two replicas starting together race harmlessly: "already exists" counts as
//! success, and sqlx's migrator takes an advisory lock.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

/// Why the database could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DbSetupError {
    /// The server did not answer in time.
    #[error("cannot reach postgres at {host}:{port} after {attempts} attempts: {source}; is the postgres component up?")]
    Unreachable {
        /// Host.
        host: String,
        /// Port.
        port: u16,
        /// How many connection attempts were made.
        attempts: u32,
        /// Last error.
        #[source]
        source: sqlx::Error,
    },
    /// `CREATE DATABASE` failed for another reason than "already exists".
    #[error("cannot create database {name:?}: {source}")]
    Create {
        /// Database.
        name: String,
        /// Cause.
        #[source]
        source: sqlx::Error,
    },
    /// A migration failed.
    #[error("migrating database {name:?} failed: {source}")]
    Migrate {
        /// Database.
        name: String,
        /// Cause.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
}

/// Whether `name` is safe to put, quoted, in `CREATE DATABASE`.
pub fn valid_database_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Connect with retries: the database may still be starting (container just created).
async fn connect_with_retry(
    opts: &PgConnectOptions,
    attempts: u32,
) -> Result<sqlx::PgConnection, DbSetupError> {
    let mut last = None;
    for i in 0..attempts {
        match opts.connect().await {
            Ok(c) => return Ok(c),
            Err(e) => {
                tracing::warn!(attempt = i + 1, error = %e, "postgres not reachable yet");
                last = Some(e);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    Err(DbSetupError::Unreachable {
        host: opts.get_host().to_owned(),
        port: opts.get_port(),
        attempts,
        source: last.unwrap_or(sqlx::Error::PoolTimedOut),
    })
}

/// Create the database named in `opts` unless it exists.
#[tracing::instrument(skip(opts), fields(db = opts.get_database().unwrap_or("")))]
pub async fn ensure_database(opts: &PgConnectOptions) -> Result<(), DbSetupError> {
    let name = opts.get_database().unwrap_or("postgres").to_owned();
    let maintenance = opts.clone().database("postgres");
    let mut conn = connect_with_retry(&maintenance, 60).await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut conn)
        .await
        .map_err(|source| DbSetupError::Create {
            name: name.clone(),
            source,
        })?;
    if exists.is_none() && valid_database_name(&name) {
        let sql = format!("CREATE DATABASE \"{name}\"");
        match sqlx::query(&sql).execute(&mut conn).await {
            Ok(_) => tracing::info!(db = %name, "database created"),
            // 42P04 duplicate_database; 23505 when two creators race on the catalog index.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04") | Some("23505")) => {}
            Err(source) => return Err(DbSetupError::Create { name, source }),
        }
    }
    let _ = conn.close().await;
    Ok(())
}

/// Create the database if needed, open a pool and run the migrations.
pub async fn connect_and_migrate(opts: &PgConnectOptions) -> Result<PgPool, DbSetupError> {
    ensure_database(opts).await?;
    let name = opts.get_database().unwrap_or("").to_owned();
    let pool = PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(3))
        .connect_with(opts.clone())
        .await
        .map_err(|source| DbSetupError::Unreachable {
            host: opts.get_host().to_owned(),
            port: opts.get_port(),
            attempts: 1,
            source,
        })?;
    sqlx::migrate!("./migrations")
        .run(&pool)
        .await
        .map_err(|source| DbSetupError::Migrate { name, source })?;
    Ok(pool)
}

/// `/ready` check: one round trip.
pub async fn ping(pool: PgPool) -> Result<(), String> {
    sqlx::query("SELECT 1")
        .execute(&pool)
        .await
        .map(|_| ())
        .map_err(|e| format!("postgres: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_names_that_could_break_quoting_are_refused() {
        assert!(valid_database_name("products"));
        assert!(valid_database_name("t_0f3a"));
        for bad in ["", "a\"b", "a-b", "x y", &"a".repeat(64)] {
            assert!(!valid_database_name(bad), "{bad}");
        }
    }
}
