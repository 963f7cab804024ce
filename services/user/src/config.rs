//! Settings of user-service: the kit's [`ServiceConfig`] (which must carry the JWT
//! secret), the database, Redis, token lifetime and password-hashing cost.

use std::time::Duration;

use service_kit::config::{ConfigError, Env};
use service_kit::ServiceConfig;
use sqlx::postgres::PgConnectOptions;

/// Default `DATABASE_URL`: the stack's Postgres, database `users`.
pub const DEFAULT_DATABASE_URL: &str = "postgres://msctl:msctl@postgres:5432/users";
/// Default `REDIS_URL`.
pub const DEFAULT_REDIS_URL: &str = "redis://redis:6379";

/// Argon2id cost. The defaults are OWASP's recommendation (19 MiB, 2 passes, 1 lane);
/// tests lower them to stay fast in debug builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    /// Memory in KiB (`ARGON2_MEMORY_KIB`).
    pub memory_kib: u32,
    /// Passes (`ARGON2_ITERATIONS`).
    pub iterations: u32,
}

impl Default for HashCost {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
        }
    }
}

/// Everything user-service needs at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Kit settings; `service.jwt` is always `Some` here.
    pub service: ServiceConfig,
    /// Connection options for the service's own database (`DATABASE_URL`).
    pub database: PgConnectOptions,
    /// `REDIS_URL`.
    pub redis_url: String,
    /// Prefix of every Redis key (`REDIS_PREFIX`).
    pub redis_prefix: String,
    /// Lifetime of issued tokens (`TOKEN_TTL`, default 1h).
    pub token_ttl: Duration,
    /// Password hashing cost.
    pub hash_cost: HashCost,
}

impl Settings {
    /// Read from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&Env::process())
    }

    /// Read through `env`; `JWT_SECRET` is required (this service issues the tokens).
    pub fn from_lookup(env: &Env<'_>) -> Result<Self, ConfigError> {
        let service = ServiceConfig::from_lookup_named(env, "user-service", 8080)?;
        if service.jwt.is_none() {
            return Err(ConfigError::Missing {
                name: "JWT_SECRET",
                hint: "user-service signs the access tokens; set the same JWT_SECRET (16+ bytes) as the gateway",
            });
        }
        let redis_url = env
            .get("REDIS_URL")
            .unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned());
        if !(redis_url.starts_with("redis://") || redis_url.starts_with("rediss://")) {
            return Err(ConfigError::Invalid {
                name: "REDIS_URL".into(),
                value: redis_url,
                reason: "expected a URL such as redis://redis:6379".into(),
            });
        }
        let token_ttl = env.duration_or("TOKEN_TTL", Duration::from_secs(3600))?;
        if token_ttl < Duration::from_secs(1) {
            return Err(ConfigError::Invalid {
                name: "TOKEN_TTL".into(),
                value: format!("{token_ttl:?}"),
                reason: "must be at least 1s".into(),
            });
        }
        let memory_kib = env.parse_or("ARGON2_MEMORY_KIB", 19 * 1024u32, "KiB, 8 or more")?;
        let iterations = env.parse_or("ARGON2_ITERATIONS", 2u32, "a count, 1 or more")?;
        if memory_kib < 8 || iterations < 1 {
            return Err(ConfigError::Invalid {
                name: "ARGON2_MEMORY_KIB".into(),
                value: format!("{memory_kib} KiB, {iterations} iterations"),
                reason: "memory must be at least 8 KiB and ARGON2_ITERATIONS at least 1".into(),
            });
        }
        Ok(Self {
            service,
            database: service_kit::db::database_options(env, DEFAULT_DATABASE_URL)?,
            redis_url,
            redis_prefix: env
                .get("REDIS_PREFIX")
                .unwrap_or_else(|| "user-service:".into()),
            token_ttl,
            hash_cost: HashCost {
                memory_kib,
                iterations,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: (&str, &str) = ("JWT_SECRET", "0123456789abcdef0123");

    #[test]
    fn defaults_point_at_the_stack() {
        let s = Settings::from_lookup(&Env::from_pairs(&[SECRET])).expect("valid");
        assert_eq!(s.service.service_name, "user-service");
        assert_eq!(s.database.get_database(), Some("users"));
        assert_eq!(s.token_ttl, Duration::from_secs(3600));
        assert_eq!(s.hash_cost, HashCost::default());
    }

    #[test]
    fn the_jwt_secret_is_required() {
        let err = Settings::from_lookup(&Env::from_pairs(&[])).expect_err("secret needed");
        assert!(err.to_string().contains("JWT_SECRET"), "{err}");
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (pair, var) in [
            (("TOKEN_TTL", "forever"), "TOKEN_TTL"),
            (("ARGON2_MEMORY_KIB", "lots"), "ARGON2_MEMORY_KIB"),
            (("ARGON2_ITERATIONS", "0"), "ARGON2_MEMORY_KIB"),
            (("REDIS_URL", "redis:6379"), "REDIS_URL"),
            (("DATABASE_URL", "postgres://u:secret@h/"), "DATABASE_URL"),
        ] {
            let err = Settings::from_lookup(&Env::from_pairs(&[SECRET, pair])).expect_err(var);
            let text = err.to_string();
            assert!(
                text.contains(var) && !text.contains("secret@"),
                "{var}: {text}"
            );
        }
    }
}
