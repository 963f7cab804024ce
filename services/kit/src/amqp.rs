//! The readiness of a service's RabbitMQ link (feature `amqp`).
//!
//! The component that owns the connection (order-service's outbox relay, the notification
//! consumer) reports it here when it is up and when it is lost; `/ready` then checks that
//! the connection is still usable by opening and closing a channel on it — a round trip
//! to the broker — rather than trusting a flag that a silently dead socket would not clear.

use std::sync::{Arc, Mutex};

use lapin::Connection;

#[derive(Default)]
struct Link {
    conn: Option<Arc<Connection>>,
    last_error: Option<String>,
}

/// The current RabbitMQ connection as its owner reported it; cheap to clone.
#[derive(Clone, Default)]
pub struct AmqpLink(Arc<Mutex<Link>>);

impl std::fmt::Debug for AmqpLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f.debug_struct("AmqpLink")
            .field("connected", &g.conn.is_some())
            .field("last_error", &g.last_error)
            .finish()
    }
}

impl AmqpLink {
    /// No connection yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The owner holds `conn` (connected, topology declared).
    pub fn up(&self, conn: Arc<Connection>) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.conn = Some(conn);
        g.last_error = None;
    }

    /// The owner lost its connection (or could not make one) because of `why`.
    pub fn down(&self, why: impl std::fmt::Display) {
        let mut g = self.0.lock().unwrap_or_else(|e| e.into_inner());
        g.conn = None;
        g.last_error = Some(why.to_string());
    }

    /// `/ready` check: the connection exists, is open, and the broker opens a channel on it.
    pub async fn check(self) -> Result<(), String> {
        let (conn, last_error) = {
            let g = self.0.lock().unwrap_or_else(|e| e.into_inner());
            (g.conn.clone(), g.last_error.clone())
        };
        let Some(conn) = conn else {
            return Err(match last_error {
                Some(e) => format!("rabbitmq: not connected ({e})"),
                None => "rabbitmq: not connected yet".to_owned(),
            });
        };
        if !conn.status().connected() {
            return Err(format!("rabbitmq: connection {:?}", conn.status().state()));
        }
        let channel = conn
            .create_channel()
            .await
            .map_err(|e| format!("rabbitmq: {e}"))?;
        channel
            .close(200, "readiness check")
            .await
            .map_err(|e| format!("rabbitmq: {e}"))
    }
}
