//! Notification-service settings beyond the kit's, from environment variables.
//!
//! | variable | default | meaning |
//! | --- | --- | --- |
//! | `DATABASE_URL` | required | `postgres://…/notifications`; created if missing |
//! | `AMQP_URL` | required | `amqp://…/%2f` |
//! | `ORDERS_EXCHANGE` | `orders` | topic exchange order events arrive on |
//! | `NOTIFICATIONS_QUEUE` | `notifications.order-events` | durable queue consumed |
//! | `NOTIFICATIONS_PREFETCH` | `32` | unacknowledged deliveries in flight |

use service_kit::config::{ConfigError, Env};
use service_kit::ServiceConfig;

/// Everything notification-service needs.
#[derive(Clone)]
pub struct NotificationConfig {
    /// The kit's settings.
    pub service: ServiceConfig,
    /// Postgres URL of the `notifications` database.
    pub database_url: String,
    /// RabbitMQ URL.
    pub amqp_url: String,
    /// Queue names.
    pub topology: Topology,
    /// Basic QoS prefetch.
    pub prefetch: u16,
}

impl std::fmt::Debug for NotificationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotificationConfig")
            .field("service", &self.service)
            .field("topology", &self.topology)
            .field("prefetch", &self.prefetch)
            .finish_non_exhaustive()
    }
}

/// Exchange and queue names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Topic exchange of order events (`orders`).
    pub exchange: String,
    /// Durable queue bound to it with `order.*` (`notifications.order-events`).
    pub queue: String,
    /// Fanout exchange poison messages are dead-lettered to (`<queue>.dlx`).
    pub dead_letter_exchange: String,
    /// Durable queue holding poison messages (`<queue>.dead`).
    pub dead_letter_queue: String,
}

impl Topology {
    /// Names derived from `exchange` and `queue`.
    pub fn new(exchange: &str, queue: &str) -> Self {
        Self {
            exchange: exchange.to_owned(),
            queue: queue.to_owned(),
            dead_letter_exchange: format!("{queue}.dlx"),
            dead_letter_queue: format!("{queue}.dead"),
        }
    }
}

impl NotificationConfig {
    /// Read from the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&Env::process())
    }

    /// Read through `env`; `SERVICE_NAME` defaults to `notification-service`.
    pub fn from_lookup(env: &Env<'_>) -> Result<Self, ConfigError> {
        let service = ServiceConfig::from_lookup_named(env, "notification-service", 8080)?;
        let database_url = env.required_url(
            "DATABASE_URL",
            &["postgres", "postgresql"],
            "set it to e.g. postgres://msctl:msctl@postgres:5432/notifications",
        )?;
        let amqp_url = env.required_url(
            "AMQP_URL",
            &["amqp", "amqps"],
            "set it to e.g. amqp://msctl:msctl@rabbitmq:5672/%2f",
        )?;
        let prefetch: u16 = env.parse_or("NOTIFICATIONS_PREFETCH", 32, "a number 1-65535")?;
        if prefetch == 0 {
            return Err(ConfigError::Invalid {
                name: "NOTIFICATIONS_PREFETCH".into(),
                value: "0".into(),
                reason: "must be at least 1".into(),
            });
        }
        let exchange = env
            .get("ORDERS_EXCHANGE")
            .unwrap_or_else(|| "orders".into());
        let queue = env
            .get("NOTIFICATIONS_QUEUE")
            .unwrap_or_else(|| "notifications.order-events".into());
        Ok(Self {
            service,
            database_url,
            amqp_url,
            topology: Topology::new(&exchange, &queue),
            prefetch,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: [(&str, &str); 2] = [
        (
            "DATABASE_URL",
            "postgres://msctl:msctl@postgres:5432/notifications",
        ),
        ("AMQP_URL", "amqp://msctl:msctl@rabbitmq:5672/%2f"),
    ];

    #[test]
    fn defaults_apply() {
        let cfg = NotificationConfig::from_lookup(&Env::from_pairs(&BASE)).expect("valid");
        assert_eq!(cfg.service.service_name, "notification-service");
        assert_eq!(cfg.topology.exchange, "orders");
        assert_eq!(cfg.topology.queue, "notifications.order-events");
        assert_eq!(
            cfg.topology.dead_letter_exchange,
            "notifications.order-events.dlx"
        );
        assert_eq!(
            cfg.topology.dead_letter_queue,
            "notifications.order-events.dead"
        );
        assert_eq!(cfg.prefetch, 32);
    }

    #[test]
    fn bad_or_missing_values_name_the_variable() {
        for (pairs, var) in [
            (vec![BASE[1]], "DATABASE_URL"),
            (vec![BASE[0]], "AMQP_URL"),
            (vec![BASE[0], ("AMQP_URL", "http://x")], "AMQP_URL"),
            (
                vec![BASE[0], BASE[1], ("NOTIFICATIONS_PREFETCH", "0")],
                "NOTIFICATIONS_PREFETCH",
            ),
            (
                vec![BASE[0], BASE[1], ("NOTIFICATIONS_PREFETCH", "x")],
                "NOTIFICATIONS_PREFETCH",
            ),
        ] {
            let err = NotificationConfig::from_lookup(&Env::from_pairs(&pairs)).expect_err(var);
            assert!(err.to_string().contains(var), "{var}: {err}");
        }
    }
}
