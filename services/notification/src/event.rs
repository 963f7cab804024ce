//! Order events as published by order-service's outbox, parsed at the edge.

use serde::Deserialize;
use uuid::Uuid;

/// The kinds of order event this service turns into notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// `order.created`.
    Created,
    /// `order.confirmed`.
    Confirmed,
    /// `order.cancelled`.
    Cancelled,
}

impl EventKind {
    /// The wire name (also the routing key).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "order.created",
            EventKind::Confirmed => "order.confirmed",
            EventKind::Cancelled => "order.cancelled",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "order.created" => Some(EventKind::Created),
            "order.confirmed" => Some(EventKind::Confirmed),
            "order.cancelled" => Some(EventKind::Cancelled),
            _ => None,
        }
    }
}

#[derive(Deserialize)]
struct Wire {
    event_id: Uuid,
    #[serde(rename = "type")]
    kind: String,
    order_id: Uuid,
    user_id: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    total_cents: Option<i64>,
}

/// A valid order event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderEvent {
    /// Unique per event; the de-duplication key.
    pub event_id: Uuid,
    /// Kind.
    pub kind: EventKind,
    /// Order.
    pub order_id: Uuid,
    /// Owner of the order.
    pub user_id: String,
    /// Cancellation reason.
    pub reason: Option<String>,
    /// Order total.
    pub total_cents: Option<i64>,
    /// The body as received, kept with the notification.
    pub raw: serde_json::Value,
}

/// Why a message is poison (dead-lettered, never retried).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoisonMessage {
    /// Not the expected JSON.
    #[error("not an order event: {0}")]
    Malformed(String),
    /// A field is out of range.
    #[error("invalid order event: {0}")]
    Invalid(String),
}

impl OrderEvent {
    /// Parse a message body.
    pub fn parse(body: &[u8]) -> Result<Self, PoisonMessage> {
        let raw: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| PoisonMessage::Malformed(e.to_string()))?;
        let w: Wire = serde_json::from_value(raw.clone())
            .map_err(|e| PoisonMessage::Malformed(e.to_string()))?;
        let kind = EventKind::parse(&w.kind)
            .ok_or_else(|| PoisonMessage::Invalid(format!("unknown event type {:?}", w.kind)))?;
        let user = w.user_id.trim();
        if user.is_empty() || user.len() > 128 {
            return Err(PoisonMessage::Invalid(
                "user_id must be 1 to 128 bytes".into(),
            ));
        }
        Ok(Self {
            event_id: w.event_id,
            kind,
            order_id: w.order_id,
            user_id: user.to_owned(),
            reason: w.reason.map(|r| r.chars().take(500).collect()),
            total_cents: w.total_cents,
            raw,
        })
    }

    /// The text shown to the user.
    pub fn message(&self) -> String {
        match self.kind {
            EventKind::Created => {
                format!("Order {} received; we are processing it.", self.order_id)
            }
            EventKind::Confirmed => match self.total_cents {
                Some(c) => format!(
                    "Order {} confirmed; {}.{:02} charged.",
                    self.order_id,
                    c / 100,
                    (c % 100).abs()
                ),
                None => format!("Order {} confirmed.", self.order_id),
            },
            EventKind::Cancelled => format!(
                "Order {} cancelled: {}.",
                self.order_id,
                self.reason.as_deref().unwrap_or("no reason given")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_published_event_parses() {
        let body = br#"{"event_id":"5f1c7b8e-8a4b-4c39-9a57-2d7b1d0e2f11","type":"order.confirmed",
            "occurred_at":"2026-11-22T20:00:00Z","order_id":"0b8a7c43-6a8e-4d5e-9b0f-3a0f6b3c2d10",
            "user_id":"u1","status":"confirmed","reason":null,"total_cents":1234,"items":[]}"#;
        let e = OrderEvent::parse(body).expect("valid");
        assert_eq!(e.kind, EventKind::Confirmed);
        assert_eq!(e.user_id, "u1");
        assert!(e.message().contains("12.34"), "{}", e.message());
    }

    #[test]
    fn poison_messages_are_recognised() {
        for body in [
            &b"not json"[..],
            br#"{"event_id":"x","type":"order.created","order_id":"0b8a7c43-6a8e-4d5e-9b0f-3a0f6b3c2d10","user_id":"u"}"#,
            br#"{"event_id":"5f1c7b8e-8a4b-4c39-9a57-2d7b1d0e2f11","type":"user.created","order_id":"0b8a7c43-6a8e-4d5e-9b0f-3a0f6b3c2d10","user_id":"u"}"#,
            br#"{"event_id":"5f1c7b8e-8a4b-4c39-9a57-2d7b1d0e2f11","type":"order.created","order_id":"0b8a7c43-6a8e-4d5e-9b0f-3a0f6b3c2d10","user_id":"  "}"#,
        ] {
            assert!(OrderEvent::parse(body).is_err());
        }
    }

    proptest! {
        /// Arbitrary bytes never panic the parser.
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = OrderEvent::parse(&body);
        }
    }
}
