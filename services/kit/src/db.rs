//! A service's own PostgreSQL database (feature `db`): created on the shared server when
//! missing, connected through a pool, migrated; plus the `/ready` check and the mapping of
//! database errors to HTTP answers.
//!
//! Database per service (DESIGN §5): the service connects to the `postgres` maintenance
//! database with its own credentials to `CREATE DATABASE`, so a fresh Postgres needs no
//! init scripts. Two replicas starting together race harmlessly: "already exists" counts as
//! success, and sqlx's migrator takes an advisory lock.
//!
//! ```no_run
//! # async fn run(migrator: &sqlx::migrate::Migrator) -> Result<(), service_kit::db::DbError> {
//! use service_kit::db::{self, PoolSettings};
//! // In the service: static MIGRATOR: Migrator = sqlx::migrate!("./migrations");
//! let opts = db::connect_options("postgres://msctl:msctl@postgres:5432/products")?;
//! let pool = db::prepare(&opts, migrator, &PoolSettings::default()).await?;
//! # let _ = pool; Ok(()) }
//! ```

use std::str::FromStr;
use std::time::Duration;

use axum::http::StatusCode;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{ConnectOptions, Connection};

use crate::config::{ConfigError, Env};
use crate::error::ApiError;

/// Why the database could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL does not parse.
    #[error("DATABASE_URL is not a valid postgres URL: {0}")]
    Url(#[source] sqlx::Error),
    /// The database name cannot be used in `CREATE DATABASE`.
    #[error("database name {0:?} is not allowed; use 1-63 letters, digits and '_'")]
    Name(String),
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

/// How the pool is sized and how long start-up waits for the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolSettings {
    /// Largest number of connections the pool opens.
    pub max_connections: u32,
    /// How long a request waits for a free connection before it fails with
    /// `PoolTimedOut` (answered as 503 `database_unavailable` by [`db_error`]). Longer than
    /// the callers' per-attempt timeout (the kit client's and the gateway's 5 s): a burst
    /// larger than the pool queues for a connection rather than failing fast, and a
    /// caller that stopped waiting has already given up on its own.
    pub acquire_timeout: Duration,
    /// How long start-up keeps retrying while the server is not reachable yet.
    pub patience: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            patience: Duration::from_secs(30),
        }
    }
}

/// Whether `name` is safe to put, quoted, in `CREATE DATABASE`.
pub fn valid_database_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Parse `url` and check that it names a database that can be created safely.
pub fn connect_options(url: &str) -> Result<PgConnectOptions, DbError> {
    let opts = PgConnectOptions::from_str(url).map_err(DbError::Url)?;
    let name = opts.get_database().unwrap_or("postgres");
    if !valid_database_name(name) {
        return Err(DbError::Name(name.to_owned()));
    }
    Ok(opts)
}

/// Parse `DATABASE_URL` (or `default`) for a service's settings, as a [`ConfigError`]
/// naming the variable (without the password) when it is invalid.
pub fn database_options(env: &Env<'_>, default: &str) -> Result<PgConnectOptions, ConfigError> {
    let url = env
        .get("DATABASE_URL")
        .unwrap_or_else(|| default.to_owned());
    let invalid = |reason: String| ConfigError::Invalid {
        name: "DATABASE_URL".into(),
        value: redact(&url),
        reason,
    };
    let opts = PgConnectOptions::from_str(&url).map_err(|e| {
        invalid(format!(
            "expected a URL such as postgres://user:pass@host:5432/db ({e})"
        ))
    })?;
    match opts.get_database() {
        Some(db) if valid_database_name(db) => Ok(opts),
        Some(db) => Err(invalid(format!(
            "database name {db:?} must be 1-63 letters, digits or '_'"
        ))),
        None => {
            let example = default.rsplit('/').next().unwrap_or("db");
            Err(invalid(format!(
                "the URL must name a database, e.g. /{example}"
            )))
        }
    }
}

/// The URL without its password, for error messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:<redacted>{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Connect, retrying every 500 ms for up to `patience`: the server may still be starting.
async fn connect_with_retry(
    opts: &PgConnectOptions,
    patience: Duration,
) -> Result<sqlx::PgConnection, DbError> {
    let started = tokio::time::Instant::now();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match opts.connect().await {
            Ok(c) => return Ok(c),
            Err(e) if started.elapsed() < patience => {
                tracing::warn!(attempt = attempts, error = %e, "postgres not reachable yet");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(source) => {
                return Err(DbError::Unreachable {
                    host: opts.get_host().to_owned(),
                    port: opts.get_port(),
                    attempts,
                    source,
                })
            }
        }
    }
}

/// Create the database named in `opts` unless it exists.
#[tracing::instrument(skip(opts), fields(db = opts.get_database().unwrap_or("")))]
pub async fn ensure_database(opts: &PgConnectOptions, patience: Duration) -> Result<(), DbError> {
    let name = opts.get_database().unwrap_or("postgres").to_owned();
    if !valid_database_name(&name) {
        return Err(DbError::Name(name));
    }
    let maintenance = opts.clone().database("postgres");
    let mut conn = connect_with_retry(&maintenance, patience).await?;
    let exists: Option<i32> = sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut conn)
        .await
        .map_err(|source| DbError::Create {
            name: name.clone(),
            source,
        })?;
    if exists.is_none() {
        let sql = format!("CREATE DATABASE \"{name}\"");
        match sqlx::query(&sql).execute(&mut conn).await {
            Ok(_) => tracing::info!(db = %name, "database created"),
            // 42P04 duplicate_database; 23505 when two creators race on the catalog index.
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42P04") | Some("23505")) => {}
            Err(source) => return Err(DbError::Create { name, source }),
        }
    }
    let _ = conn.close().await;
    Ok(())
}

/// Create the database if needed, open a pool sized by `settings` and run `migrator`.
pub async fn prepare(
    opts: &PgConnectOptions,
    migrator: &Migrator,
    settings: &PoolSettings,
) -> Result<PgPool, DbError> {
    ensure_database(opts, settings.patience).await?;
    let name = opts.get_database().unwrap_or("").to_owned();
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(settings.acquire_timeout)
        .connect_with(opts.clone())
        .await
        .map_err(|source| DbError::Unreachable {
            host: opts.get_host().to_owned(),
            port: opts.get_port(),
            attempts: 1,
            source,
        })?;
    migrator
        .run(&pool)
        .await
        .map_err(|source| DbError::Migrate { name, source })?;
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

/// Whether `e` says the database cannot take the request now (pool exhausted, server
/// unreachable, out of connection slots, starting or shutting down) rather than that the
/// request is wrong: retrying later may succeed.
pub fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        // 53300 too_many_connections, 57P01 admin_shutdown, 57P03 cannot_connect_now.
        sqlx::Error::Database(d) => matches!(
            d.code().as_deref(),
            Some("53300") | Some("57P01") | Some("57P03")
        ),
        _ => false,
    }
}

/// Map a database error: the database being unavailable ([`is_unavailable`]) is 503
/// `database_unavailable` with `Retry-After` (callers retry; no 500 storm under load),
/// anything else 500 with the cause logged.
pub fn db_error(e: sqlx::Error) -> ApiError {
    match &e {
        e if is_unavailable(e) => {
            tracing::warn!(error = %e, "database unavailable");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "database_unavailable",
                "the database is unavailable; retry later",
            )
            .with_retry_after(Duration::from_secs(1))
        }
        _ => ApiError::internal(&e),
    }
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
        assert!(matches!(
            connect_options("postgres://u:p@h/a-b"),
            Err(DbError::Name(_))
        ));
        assert!(connect_options("postgres://u:p@h/products").is_ok());
    }

    #[test]
    fn a_bad_database_url_is_named_without_its_password() {
        for (url, hint) in [
            ("postgres://u:secret@h/bad;name", "letters"),
            ("postgres://u:secret@h/", "DATABASE_URL"),
        ] {
            let pairs = [("DATABASE_URL", url)];
            let err = database_options(
                &Env::from_pairs(&pairs),
                "postgres://msctl:msctl@postgres:5432/payments",
            )
            .expect_err("invalid");
            let text = err.to_string();
            assert!(
                text.contains("DATABASE_URL") && !text.contains("secret") && text.contains(hint),
                "{text}"
            );
        }
    }
}
