//! The RabbitMQ consumer: declares the topology, consumes order events with manual acks,
//! stores one notification per event, and dead-letters poison messages.
//!
//! Per delivery:
//! - a body that is not a valid order event → `nack(requeue = false)`; the queue's
//!   dead-letter exchange routes it to the dead-letter queue for inspection;
//! - a valid event → `INSERT … ON CONFLICT (event_id) DO NOTHING`, then `ack`: a
//!   redelivered or republished event (at-least-once outbox) is stored once;
//! - a database failure → `nack(requeue = true)` after a pause, so the event is retried.
//!
//! The connection is rebuilt with backoff whenever RabbitMQ goes away.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use service_kit::amqp::AmqpLink;
use service_kit::metrics::{Counter, Gauge, Metrics};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Topology;
use crate::event::OrderEvent;

/// Consumer failure; the connection is rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    /// RabbitMQ failure.
    #[error("rabbitmq: {0}")]
    Amqp(#[from] lapin::Error),
}

/// Declare the exchange, the dead-letter exchange and queue, and the durable queue bound
/// to `order.*`.
pub async fn declare(channel: &Channel, t: &Topology) -> Result<(), lapin::Error> {
    let durable_exchange = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let durable_queue = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            &t.exchange,
            ExchangeKind::Topic,
            durable_exchange,
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            &t.dead_letter_exchange,
            ExchangeKind::Fanout,
            durable_exchange,
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(&t.dead_letter_queue, durable_queue, FieldTable::default())
        .await?;
    channel
        .queue_bind(
            &t.dead_letter_queue,
            &t.dead_letter_exchange,
            "",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-dead-letter-exchange"),
        AMQPValue::LongString(LongString::from(t.dead_letter_exchange.as_str())),
    );
    channel.queue_declare(&t.queue, durable_queue, args).await?;
    channel
        .queue_bind(
            &t.queue,
            &t.exchange,
            "order.*",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Consumes order events; see the module docs.
#[derive(Clone)]
pub struct EventConsumer {
    pool: PgPool,
    amqp_url: String,
    topology: Topology,
    prefetch: u16,
    stored: Counter,
    duplicates: Counter,
    dead_lettered: Counter,
    connected: Gauge,
    link: AmqpLink,
}

impl std::fmt::Debug for EventConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventConsumer")
            .field("topology", &self.topology)
            .finish_non_exhaustive()
    }
}

/// What happened to one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handled {
    Stored,
    Duplicate,
    DeadLettered,
    Requeued,
}

impl EventConsumer {
    /// A consumer storing into `pool`; it reports its connection to `link` (the `/ready`
    /// check).
    pub fn new(
        pool: PgPool,
        amqp_url: String,
        topology: Topology,
        prefetch: u16,
        metrics: &Metrics,
        link: AmqpLink,
    ) -> Self {
        let events = |outcome: &str| {
            metrics.counter(
                "notification_events_total",
                "Order events consumed, by outcome.",
                &[("outcome", outcome)],
            )
        };
        Self {
            pool,
            amqp_url,
            topology,
            prefetch,
            stored: events("stored"),
            duplicates: events("duplicate"),
            dead_lettered: events("dead_lettered"),
            connected: metrics.gauge(
                "notification_amqp_connected",
                "Whether the consumer holds a RabbitMQ connection (1) or not (0).",
                &[],
            ),
            link,
        }
    }

    /// Run on `tracker` until `cancel`.
    pub fn spawn(&self, tracker: &TaskTracker, cancel: CancellationToken) {
        let c = self.clone();
        tracker.spawn(async move { c.run(cancel).await });
    }

    async fn run(self, cancel: CancellationToken) {
        let mut failures: u32 = 0;
        loop {
            let result = tokio::select! {
                () = cancel.cancelled() => break,
                r = self.consume(&cancel, &mut failures) => r,
            };
            self.connected.set(0);
            match result {
                Ok(()) if cancel.is_cancelled() => break,
                Ok(()) => {
                    self.link.down("rabbitmq closed the consumer");
                    tracing::warn!("rabbitmq closed the consumer; reconnecting");
                }
                Err(e) => {
                    self.link.down(&e);
                    tracing::warn!(error = %e, "notification consumer failed; reconnecting");
                }
            }
            failures += 1;
            let pause = Duration::from_millis((100u64 << failures.min(5)).min(2_000));
            tokio::select! {
                () = cancel.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        self.link.down("shutting down");
        self.connected.set(0);
    }

    async fn consume(
        &self,
        cancel: &CancellationToken,
        failures: &mut u32,
    ) -> Result<(), ConsumerError> {
        let conn = std::sync::Arc::new(
            Connection::connect(&self.amqp_url, ConnectionProperties::default()).await?,
        );
        let result = self.consume_on(&conn, cancel, failures).await;
        let _ = conn.close(200, "bye").await;
        result
    }

    async fn consume_on(
        &self,
        conn: &std::sync::Arc<Connection>,
        cancel: &CancellationToken,
        failures: &mut u32,
    ) -> Result<(), ConsumerError> {
        let channel = conn.create_channel().await?;
        declare(&channel, &self.topology).await?;
        channel
            .basic_qos(self.prefetch, BasicQosOptions::default())
            .await?;
        let mut deliveries = channel
            .basic_consume(
                &self.topology.queue,
                "notification-service",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(queue = %self.topology.queue, "consuming order events");
        self.link.up(conn.clone());
        self.connected.set(1);
        *failures = 0;
        loop {
            let next = tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                d = deliveries.next() => d,
            };
            let Some(delivery) = next else {
                return Ok(());
            };
            let delivery = delivery?;
            self.handle(delivery).await?;
        }
    }

    async fn handle(&self, delivery: Delivery) -> Result<Handled, ConsumerError> {
        let event = match OrderEvent::parse(&delivery.data) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, delivery_tag = delivery.delivery_tag, "poison message; dead-lettering");
                delivery
                    .nack(BasicNackOptions {
                        requeue: false,
                        ..Default::default()
                    })
                    .await?;
                self.dead_lettered.inc();
                return Ok(Handled::DeadLettered);
            }
        };
        if cfg!(feature = "bug-ack-before-insert") {
            // seeded bug (fidelity suite): "ack early so the broker can move on" — the
            // delivery is acked before the insert, so a failed insert loses the event.
            delivery.ack(BasicAckOptions::default()).await?;
            return match crate::store::insert(&self.pool, &event).await {
                Ok(true) => {
                    self.stored.inc();
                    Ok(Handled::Stored)
                }
                Ok(false) => {
                    self.duplicates.inc();
                    Ok(Handled::Duplicate)
                }
                Err(e) => {
                    tracing::warn!(error = %e, event_id = %event.event_id, "cannot store notification");
                    Ok(Handled::Requeued)
                }
            };
        }
        match crate::store::insert(&self.pool, &event).await {
            Ok(true) => {
                delivery.ack(BasicAckOptions::default()).await?;
                self.stored.inc();
                Ok(Handled::Stored)
            }
            Ok(false) => {
                delivery.ack(BasicAckOptions::default()).await?;
                self.duplicates.inc();
                Ok(Handled::Duplicate)
            }
            Err(e) if cfg!(feature = "bug-db-error-acked") => {
                // seeded bug (fidelity suite): "don't let one bad row block the queue" — a
                // failed insert is logged and acked instead of requeued.
                tracing::warn!(error = %e, event_id = %event.event_id, "cannot store notification; skipping");
                delivery.ack(BasicAckOptions::default()).await?;
                Ok(Handled::Requeued)
            }
            Err(e) => {
                tracing::warn!(error = %e, event_id = %event.event_id, "cannot store notification; requeueing");
                tokio::time::sleep(Duration::from_millis(500)).await;
                delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await?;
                Ok(Handled::Requeued)
            }
        }
    }
}
