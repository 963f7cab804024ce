//! The outbox relay: publishes outbox rows to the RabbitMQ topic exchange with publisher
//! confirms, and marks a row sent only after the broker confirmed it.
//!
//! Delivery is at least once: a crash between the broker's confirm and the commit of
//! `published_at` publishes that event again, and consumers de-duplicate by `event_id`
//! (also sent as the AMQP `message_id`). Rows are claimed with `FOR UPDATE SKIP LOCKED`, so
//! several instances relay without publishing the same row at the same time. While
//! RabbitMQ is down rows simply accumulate (see `outbox_unpublished`) and the relay
//! reconnects with backoff. Events are published `mandatory`: one that no queue would
//! receive (the consumer has not declared its queue yet) comes back and stays unsent.

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::publisher_confirm::Confirmation;
use lapin::types::{FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use service_kit::amqp::AmqpLink;
use service_kit::metrics::{Counter, Gauge, Metrics};
use sqlx::{PgPool, Row};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

/// Rows published per transaction.
const BATCH: i64 = 200;
/// How long to wait for the broker's confirm of a batch.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Relay failure; the batch is retried.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// RabbitMQ failure; the connection is rebuilt.
    #[error("rabbitmq: {0}")]
    Amqp(#[from] lapin::Error),
    /// The broker did not confirm in time.
    #[error("rabbitmq did not confirm within {0:?}")]
    ConfirmTimeout(Duration),
    /// Database failure.
    #[error("outbox: {0}")]
    Sql(#[from] sqlx::Error),
}

/// Publishes the outbox; see the module docs.
#[derive(Clone)]
pub struct OutboxRelay {
    pool: PgPool,
    amqp_url: String,
    exchange: String,
    wake: Arc<Notify>,
    published: Counter,
    nacked: Counter,
    unroutable: Counter,
    connected: Gauge,
    link: AmqpLink,
}

impl std::fmt::Debug for OutboxRelay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutboxRelay")
            .field("exchange", &self.exchange)
            .finish_non_exhaustive()
    }
}

/// Declare the durable topic exchange order events go to.
pub async fn declare_exchange(channel: &Channel, exchange: &str) -> Result<(), lapin::Error> {
    channel
        .exchange_declare(
            exchange,
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
}

impl OutboxRelay {
    /// A relay publishing to `exchange`; woken through `wake` when rows are written. It
    /// reports its connection to `link` (the `/ready` check).
    pub fn new(
        pool: PgPool,
        amqp_url: String,
        exchange: String,
        wake: Arc<Notify>,
        metrics: &Metrics,
        link: AmqpLink,
    ) -> Self {
        Self {
            pool,
            amqp_url,
            exchange,
            wake,
            link,
            published: metrics.counter(
                "outbox_published_total",
                "Outbox events confirmed by RabbitMQ.",
                &[],
            ),
            nacked: metrics.counter(
                "outbox_nacked_total",
                "Outbox events RabbitMQ refused (retried).",
                &[],
            ),
            unroutable: metrics.counter(
                "outbox_unroutable_total",
                "Outbox events returned because no queue is bound to the exchange (retried).",
                &[],
            ),
            connected: metrics.gauge(
                "outbox_amqp_connected",
                "Whether the relay holds a RabbitMQ connection (1) or not (0).",
                &[],
            ),
        }
    }

    /// Run on `tracker` until `cancel`.
    pub fn spawn(&self, tracker: &TaskTracker, cancel: CancellationToken) {
        let relay = self.clone();
        tracker.spawn(async move { relay.run(cancel).await });
    }

    async fn connect(&self) -> Result<(Arc<Connection>, Channel), lapin::Error> {
        let conn =
            Arc::new(Connection::connect(&self.amqp_url, ConnectionProperties::default()).await?);
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        declare_exchange(&channel, &self.exchange).await?;
        Ok((conn, channel))
    }

    async fn run(self, cancel: CancellationToken) {
        let mut link: Option<(Arc<Connection>, Channel)> = None;
        let mut failures: u32 = 0;
        loop {
            if cancel.is_cancelled() {
                break;
            }
            if link.is_none() {
                match self.connect().await {
                    Ok(l) => {
                        tracing::info!(exchange = %self.exchange, "outbox relay connected to rabbitmq");
                        self.link.up(l.0.clone());
                        link = Some(l);
                        self.connected.set(1);
                        failures = 0;
                    }
                    Err(e) => {
                        self.link.down(&e);
                        failures += 1;
                        tracing::warn!(error = %e, failures, "outbox relay cannot reach rabbitmq; retrying");
                        if !pause(&cancel, backoff(failures)).await {
                            break;
                        }
                        continue;
                    }
                }
            }
            let Some((_, channel)) = link.as_ref() else {
                continue;
            };
            match self.publish_batch(channel).await {
                Ok(n) if n as i64 == BATCH => {
                    failures = 0;
                    continue;
                }
                Ok(_) => {
                    failures = 0;
                    // Rows left unsent (returned or refused) wait for the next round.
                    tokio::select! {
                        () = cancel.cancelled() => break,
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "outbox relay failed; retrying");
                    // seeded bug (fidelity suite): only a failed connect rebuilds the link;
                    // a publish that fails on a channel the broker closed is just retried
                    // on that same dead channel, forever.
                    if !cfg!(feature = "bug-relay-no-reconnect")
                        && matches!(e, RelayError::Amqp(_) | RelayError::ConfirmTimeout(_))
                    {
                        self.link.down(&e);
                        if let Some((conn, _)) = link.take() {
                            let _ = conn.close(0, "reconnecting").await;
                        }
                        self.connected.set(0);
                    }
                    if !pause(&cancel, backoff(failures)).await {
                        break;
                    }
                }
            }
        }
        self.link.down("shutting down");
        if let Some((conn, _)) = link {
            let _ = conn.close(200, "shutdown").await;
        }
        self.connected.set(0);
    }

    /// Publish one batch of unsent rows; returns how many were confirmed.
    async fn publish_batch(&self, channel: &Channel) -> Result<usize, RelayError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT id, event_id, event_type, payload FROM outbox
             WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
        )
        .bind(BATCH)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut pending = Vec::with_capacity(rows.len());
        let mut acked = Vec::with_capacity(rows.len());
        let mut failure: Option<RelayError> = None;
        for row in &rows {
            let id: i64 = row.try_get("id")?;
            let event_id: Uuid = row.try_get("event_id")?;
            let kind: String = row.try_get("event_type")?;
            let payload: serde_json::Value = row.try_get("payload")?;
            let body = serde_json::to_vec(&payload).unwrap_or_default();
            let props = BasicProperties::default()
                .with_message_id(ShortString::from(event_id.to_string()))
                .with_type(ShortString::from(kind.clone()))
                .with_content_type(ShortString::from("application/json"))
                .with_delivery_mode(2)
                .with_timestamp(chrono::Utc::now().timestamp().max(0) as u64);
            match channel
                .basic_publish(
                    &self.exchange,
                    &kind,
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    &body,
                    props,
                )
                .await
            {
                // seeded bug (fidelity suite): "basic_publish returned Ok, so it is sent" —
                // the row is marked published without waiting for the broker's confirm.
                Ok(_) if cfg!(feature = "bug-relay-no-confirm") => acked.push(id),
                Ok(confirm) => pending.push((id, confirm)),
                Err(e) => {
                    failure = Some(e.into());
                    break;
                }
            }
        }
        for (id, confirm) in pending {
            match tokio::time::timeout(CONFIRM_TIMEOUT, confirm).await {
                Ok(Ok(Confirmation::Ack(None))) => acked.push(id),
                // Published `mandatory`: no queue is bound yet (the consumer has not
                // declared it). Keep the row and try again rather than lose the event.
                Ok(Ok(Confirmation::Ack(Some(_)))) => self.unroutable.inc(),
                Ok(Ok(_)) => self.nacked.inc(),
                Ok(Err(e)) => {
                    failure.get_or_insert(e.into());
                    break;
                }
                Err(_) => {
                    failure.get_or_insert(RelayError::ConfirmTimeout(CONFIRM_TIMEOUT));
                    break;
                }
            }
        }
        if !acked.is_empty() {
            sqlx::query("UPDATE outbox SET published_at = now() WHERE id = ANY($1)")
                .bind(&acked)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.published.add(acked.len() as u64);
        match failure {
            Some(e) => Err(e),
            None => Ok(acked.len()),
        }
    }
}

fn backoff(failures: u32) -> Duration {
    Duration::from_millis((100u64 << failures.min(5)).min(2_000))
}

/// Sleep unless cancelled; `false` when cancelled.
async fn pause(cancel: &CancellationToken, d: Duration) -> bool {
    tokio::select! {
        () = cancel.cancelled() => false,
        () = tokio::time::sleep(d) => true,
    }
}
