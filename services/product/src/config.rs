//! Settings of product-service: the kit's [`ServiceConfig`] plus the database, Redis and
//! who may change the catalog. Read once at start; see `services/product/README.md`.

use std::time::Duration;

use service_kit::config::{ConfigError, Env};
use service_kit::ServiceConfig;
use sqlx::postgres::PgConnectOptions;
use uuid::Uuid;

/// The seeded administrator (`fixtures/seed/users.json`), allowed to change the catalog
/// through the gateway unless `PRODUCT_ADMIN_USERS` says otherwise.
pub const SEED_ADMIN_ID: Uuid = Uuid::from_u128(0x00000000_0000_4000_8000_000000000001);

/// Everything product-service needs at start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Kit settings (name, port, registry, admin token).
    pub service: ServiceConfig,
    /// Connection options for the service's own database (`DATABASE_URL`).
    pub database: PgConnectOptions,
    /// `REDIS_URL`.
    pub redis_url: String,
    /// Prefix of every Redis key (`REDIS_PREFIX`); replicas must share it, tests isolate
    /// themselves with it.
    pub redis_prefix: String,
    /// How long a cached product lives (`PRODUCT_CACHE_TTL`); bounds staleness should an
    /// invalidation race with a read-through fill.
    pub cache_ttl: Duration,
    /// Users (`X-User-Id`) allowed to create, update and delete products
    /// (`PRODUCT_ADMIN_USERS`, comma-separated UUIDs).
    pub admin_users: Vec<Uuid>,
}

/// Default `DATABASE_URL`: the stack's Postgres, database `products`.
pub const DEFAULT_DATABASE_URL: &str = "postgres://msctl:msctl@postgres:5432/products";
/// Default `REDIS_URL`.
pub const DEFAULT_REDIS_URL: &str = "redis://redis:6379";

impl Settings {
    /// Read from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&Env::process())
    }

    /// Read through `env`.
    pub fn from_lookup(env: &Env<'_>) -> Result<Self, ConfigError> {
        let service = ServiceConfig::from_lookup_named(env, "product-service", 8080)?;
        let database = service_kit::db::database_options(env, DEFAULT_DATABASE_URL)?;
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
        let admin_users = match env.get("PRODUCT_ADMIN_USERS") {
            None => vec![SEED_ADMIN_ID],
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    Uuid::parse_str(s).map_err(|_| ConfigError::Invalid {
                        name: "PRODUCT_ADMIN_USERS".into(),
                        value: list.clone(),
                        reason: format!("{s:?} is not a UUID; give comma-separated user ids"),
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Self {
            service,
            database,
            redis_url,
            redis_prefix: env
                .get("REDIS_PREFIX")
                .unwrap_or_else(|| "product-service:".into()),
            cache_ttl: env.duration_or("PRODUCT_CACHE_TTL", Duration::from_secs(30))?,
            admin_users,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_point_at_the_stack() {
        let s = Settings::from_lookup(&Env::from_pairs(&[])).expect("defaults are valid");
        assert_eq!(s.service.service_name, "product-service");
        assert_eq!(s.service.port, 8080);
        assert_eq!(s.database.get_database(), Some("products"));
        assert_eq!(s.redis_url, DEFAULT_REDIS_URL);
        assert_eq!(s.admin_users, vec![SEED_ADMIN_ID]);
    }

    #[test]
    fn bad_values_name_the_variable_and_hide_the_password() {
        for (pairs, var) in [
            (vec![("DATABASE_URL", "mysql://x")], "DATABASE_URL"),
            (
                vec![("DATABASE_URL", "postgres://u:secret@h/bad-name")],
                "DATABASE_URL",
            ),
            (vec![("REDIS_URL", "localhost:6379")], "REDIS_URL"),
            (vec![("PRODUCT_ADMIN_USERS", "root")], "PRODUCT_ADMIN_USERS"),
            (vec![("PRODUCT_CACHE_TTL", "soon")], "PRODUCT_CACHE_TTL"),
        ] {
            let err = Settings::from_lookup(&Env::from_pairs(&pairs)).expect_err(var);
            let text = err.to_string();
            assert!(text.contains(var), "{var}: {text}");
            assert!(!text.contains("secret"), "{text}");
        }
    }

    #[test]
    fn admin_users_are_a_comma_separated_list() {
        let a = "6f1c2d7e-3b1a-4c55-9d7e-2a9f0b8c1d11";
        let pairs = [(
            "PRODUCT_ADMIN_USERS",
            "6f1c2d7e-3b1a-4c55-9d7e-2a9f0b8c1d11, ",
        )];
        let s = Settings::from_lookup(&Env::from_pairs(&pairs)).expect("valid");
        assert_eq!(s.admin_users, vec![Uuid::parse_str(a).expect("uuid")]);
    }
}
