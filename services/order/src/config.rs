//! Order-service settings beyond the kit's, from environment variables.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `DATABASE_URL` | required | `postgres://…/orders`; the database is created if missing |
//! | `AMQP_URL` | required | `amqp://…/%2f` |
//! | `ORDERS_EXCHANGE` | `orders` | topic exchange the outbox relay publishes to |
//! | `PRODUCT_SERVICE` / `PAYMENT_SERVICE` | `product-service` / `payment-service` | registry names |
//! | `SAGA_CONCURRENCY` | `16` | sagas executed at once by this instance |
//! | `SAGA_LEASE` | `30s` | how long a claimed saga is reserved for this instance |
//! | `SAGA_DEADLINE` | `5m` | after this, forward steps that keep failing give up (compensate) |
//! | `SAGA_RETRY_MAX` | `5s` | longest pause between retries of a failing step |

use std::time::Duration;

use service_kit::config::{ConfigError, Env};
use service_kit::ServiceConfig;

/// Tuning of the saga engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SagaSettings {
    /// Registry name of the product service.
    pub product_service: String,
    /// Registry name of the payment service.
    pub payment_service: String,
    /// Sagas run at once by one instance.
    pub concurrency: usize,
    /// Lease on a claimed saga; another instance takes over after it lapses (crash).
    pub lease: Duration,
    /// Forward steps give up (and the saga compensates) after this age.
    pub deadline: Duration,
    /// First pause between retries of a failing step.
    pub retry_base: Duration,
    /// Longest pause between retries.
    pub retry_max: Duration,
    /// How often the worker looks for due sagas when not woken.
    pub poll_interval: Duration,
}

impl Default for SagaSettings {
    fn default() -> Self {
        Self {
            product_service: "product-service".into(),
            payment_service: "payment-service".into(),
            concurrency: 16,
            lease: Duration::from_secs(30),
            deadline: Duration::from_secs(300),
            retry_base: Duration::from_millis(100),
            retry_max: Duration::from_secs(5),
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// Everything order-service needs.
#[derive(Clone)]
pub struct OrderConfig {
    /// The kit's settings.
    pub service: ServiceConfig,
    /// Postgres URL of the `orders` database.
    pub database_url: String,
    /// RabbitMQ URL.
    pub amqp_url: String,
    /// Exchange for order events.
    pub exchange: String,
    /// Saga engine tuning.
    pub saga: SagaSettings,
}

impl std::fmt::Debug for OrderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrderConfig")
            .field("service", &self.service)
            .field("database_url", &"<redacted>")
            .field("amqp_url", &"<redacted>")
            .field("exchange", &self.exchange)
            .field("saga", &self.saga)
            .finish()
    }
}

impl OrderConfig {
    /// Read from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&Env::process())
    }

    /// Read through `env`; `SERVICE_NAME` defaults to `order-service`, `PORT` to 8080.
    pub fn from_lookup(env: &Env<'_>) -> Result<Self, ConfigError> {
        let service = ServiceConfig::from_lookup_named(env, "order-service", 8080)?;
        let database_url = env.required_url(
            "DATABASE_URL",
            &["postgres", "postgresql"],
            "set it to e.g. postgres://msctl:msctl@postgres:5432/orders",
        )?;
        let amqp_url = env.required_url(
            "AMQP_URL",
            &["amqp", "amqps"],
            "set it to e.g. amqp://msctl:msctl@rabbitmq:5672/%2f",
        )?;
        let d = SagaSettings::default();
        let concurrency: usize = env.parse_or("SAGA_CONCURRENCY", d.concurrency, "a number")?;
        if concurrency == 0 {
            return Err(ConfigError::Invalid {
                name: "SAGA_CONCURRENCY".into(),
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        let saga = SagaSettings {
            product_service: env.get("PRODUCT_SERVICE").unwrap_or(d.product_service),
            payment_service: env.get("PAYMENT_SERVICE").unwrap_or(d.payment_service),
            concurrency,
            lease: env.duration_or("SAGA_LEASE", d.lease)?,
            deadline: env.duration_or("SAGA_DEADLINE", d.deadline)?,
            retry_base: d.retry_base,
            retry_max: env.duration_or("SAGA_RETRY_MAX", d.retry_max)?,
            poll_interval: d.poll_interval,
        };
        Ok(Self {
            service,
            database_url,
            amqp_url,
            exchange: env
                .get("ORDERS_EXCHANGE")
                .unwrap_or_else(|| "orders".into()),
            saga,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: [(&str, &str); 2] = [
        (
            "DATABASE_URL",
            "postgres://msctl:msctl@postgres:5432/orders",
        ),
        ("AMQP_URL", "amqp://msctl:msctl@rabbitmq:5672/%2f"),
    ];

    #[test]
    fn defaults_apply() {
        let cfg = OrderConfig::from_lookup(&Env::from_pairs(&BASE)).expect("valid");
        assert_eq!(cfg.service.service_name, "order-service");
        assert_eq!(cfg.service.port, 8080);
        assert_eq!(cfg.exchange, "orders");
        assert_eq!(cfg.saga, SagaSettings::default());
    }

    #[test]
    fn bad_or_missing_values_name_the_variable() {
        for (pairs, var) in [
            (vec![BASE[1]], "DATABASE_URL"),
            (vec![BASE[0]], "AMQP_URL"),
            (vec![("DATABASE_URL", "mysql://x"), BASE[1]], "DATABASE_URL"),
            (vec![BASE[0], ("AMQP_URL", "http://x")], "AMQP_URL"),
            (vec![BASE[0], BASE[1], ("SAGA_LEASE", "long")], "SAGA_LEASE"),
            (
                vec![BASE[0], BASE[1], ("SAGA_CONCURRENCY", "0")],
                "SAGA_CONCURRENCY",
            ),
        ] {
            let err = OrderConfig::from_lookup(&Env::from_pairs(&pairs)).expect_err(var);
            assert!(err.to_string().contains(var), "{var}: {err}");
        }
    }
}
