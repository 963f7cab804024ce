//! Settings of payment-service: the kit's [`ServiceConfig`] plus the database.

use std::str::FromStr;

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
            database: database_options(env, DEFAULT_DATABASE_URL)?,
        })
    }
}

/// Parse `DATABASE_URL` (or `default`) and check the database name can be created safely.
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
        Some(db) if crate::db::valid_database_name(db) => Ok(opts),
        Some(db) => Err(invalid(format!(
            "database name {db:?} must be 1-63 letters, digits or '_'"
        ))),
        None => Err(invalid(
            "the URL must name a database, e.g. /payments".into(),
        )),
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
