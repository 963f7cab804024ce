//! Settings of payment-service: the kit's [`ServiceConfig`] plus the database.

use service_kit::config::{ConfigError, Env};
use service_kit::ServiceConfig;
use sqlx::postgres::PgConnectOptions;

/// Default `DATABASE_URL`: the stack's Postgres, database `payments`.
pub const DEFAULT_DATABASE_URL: &str = "postgres://msctl:msctl@postgres:5432/payments";

/// Everything payment-service needs at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Kit settings (name, port, registry, admin token).
    pub service: ServiceConfig,
    /// Connection options for the service's own database (`DATABASE_URL`).
    pub database: PgConnectOptions,
}

impl Settings {
    /// Read from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&Env::process())
    }

    /// Read through `env`.
    pub fn from_lookup(env: &Env<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            service: ServiceConfig::from_lookup_named(env, "payment-service", 8080)?,
            database: service_kit::db::database_options(env, DEFAULT_DATABASE_URL)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_point_at_the_stack() {
        let s = Settings::from_lookup(&Env::from_pairs(&[])).expect("defaults are valid");
        assert_eq!(s.service.service_name, "payment-service");
        assert_eq!(s.database.get_database(), Some("payments"));
    }

    #[test]
    fn a_bad_database_url_is_named_without_its_password() {
        let pairs = [("DATABASE_URL", "postgres://u:secret@h/bad;name")];
        let err = Settings::from_lookup(&Env::from_pairs(&pairs)).expect_err("invalid");
        let text = err.to_string();
        assert!(
            text.contains("DATABASE_URL") && !text.contains("secret"),
            "{text}"
        );
    }
}
