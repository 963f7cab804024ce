//! Validated inputs: handlers only see these types, never raw strings or numbers.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use service_kit::ApiError;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Most distinct products in one order.
pub const MAX_ITEMS: usize = 50;
/// Most units of one product in one order.
pub const MAX_QUANTITY: i64 = 1_000;

/// `POST /api/v1/orders` body as sent; see [`NewOrder::parse`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewOrderBody {
    /// Lines of the order.
    pub items: Vec<ItemBody>,
    /// Payment method passed to payment-service.
    pub card: String,
}

/// One line as sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemBody {
    /// Product id.
    pub product_id: Uuid,
    /// Units.
    pub quantity: i64,
}

/// One validated line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderItem {
    /// Product id.
    pub product_id: Uuid,
    /// Units, 1..=[`MAX_QUANTITY`].
    pub quantity: i64,
}

/// A validated order request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    /// Lines, one per product, sorted by product id (duplicates merged).
    pub items: Vec<OrderItem>,
    /// Payment method.
    pub card: String,
}

impl NewOrder {
    /// Validate a request body.
    pub fn parse(body: NewOrderBody) -> Result<Self, ApiError> {
        if body.items.is_empty() {
            return Err(ApiError::bad_request(
                "invalid_items",
                "items must list at least one product",
            ));
        }
        let mut merged: BTreeMap<Uuid, i64> = BTreeMap::new();
        for item in &body.items {
            if !(1..=MAX_QUANTITY).contains(&item.quantity) {
                return Err(ApiError::bad_request(
                    "invalid_quantity",
                    format!(
                        "quantity {} for product {} is out of range; use 1 to {MAX_QUANTITY}",
                        item.quantity, item.product_id
                    ),
                ));
            }
            let q = merged.entry(item.product_id).or_insert(0);
            *q += item.quantity;
            if *q > MAX_QUANTITY {
                return Err(ApiError::bad_request(
                    "invalid_quantity",
                    format!(
                        "product {} is ordered {} times in total; at most {MAX_QUANTITY}",
                        item.product_id, *q
                    ),
                ));
            }
        }
        if merged.len() > MAX_ITEMS {
            return Err(ApiError::bad_request(
                "invalid_items",
                format!("an order lists at most {MAX_ITEMS} products"),
            ));
        }
        let card = body.card.trim();
        if card.is_empty() || card.len() > 64 || card.chars().any(char::is_control) {
            return Err(ApiError::bad_request(
                "invalid_card",
                "card must be 1 to 64 printable characters",
            ));
        }
        Ok(Self {
            items: merged
                .into_iter()
                .map(|(product_id, quantity)| OrderItem {
                    product_id,
                    quantity,
                })
                .collect(),
            card: card.to_owned(),
        })
    }

    /// A fingerprint of the request, to tell a replay from a different request reusing
    /// the same idempotency key. Only a hash of the card is kept.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        for i in &self.items {
            h.update(i.product_id.as_bytes());
            h.update(i.quantity.to_be_bytes());
        }
        h.update(self.card.as_bytes());
        hex::encode(h.finalize())
    }
}

/// The caller, from `X-User-Id` (set by the gateway from the JWT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserId(String);

impl UserId {
    /// Validate the header value.
    pub fn parse(value: Option<&http::HeaderValue>) -> Result<Self, ApiError> {
        let Some(v) = value else {
            return Err(ApiError::unauthorized(
                "missing X-User-Id; call through the gateway with a bearer token",
            ));
        };
        let s = v.to_str().unwrap_or_default().trim();
        if s.is_empty() || s.len() > 128 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::bad_request(
                "invalid_user_id",
                "X-User-Id must be 1 to 128 visible ASCII characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A validated `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validate the header, if present.
    pub fn parse(value: Option<&http::HeaderValue>) -> Result<Option<Self>, ApiError> {
        let Some(v) = value else { return Ok(None) };
        let s = v.to_str().unwrap_or_default().trim();
        if s.is_empty() || s.len() > 255 || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::bad_request(
                "invalid_idempotency_key",
                "Idempotency-Key must be 1 to 255 visible ASCII characters",
            ));
        }
        Ok(Some(Self(s.to_owned())))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Lifecycle of an order as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// The saga is running.
    Pending,
    /// Stock committed and payment captured.
    Confirmed,
    /// Compensated; see the reason.
    Cancelled,
}

impl OrderStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Cancelled => "cancelled",
        }
    }

    /// Parse a stored or query value.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(OrderStatus::Pending),
            "confirmed" => Some(OrderStatus::Confirmed),
            "cancelled" => Some(OrderStatus::Cancelled),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(items: Vec<(Uuid, i64)>, card: &str) -> NewOrderBody {
        NewOrderBody {
            items: items
                .into_iter()
                .map(|(product_id, quantity)| ItemBody {
                    product_id,
                    quantity,
                })
                .collect(),
            card: card.into(),
        }
    }

    #[test]
    fn duplicates_are_merged_and_sorted() {
        let (a, b) = (Uuid::from_u128(2), Uuid::from_u128(1));
        let o = NewOrder::parse(body(vec![(a, 1), (b, 2), (a, 3)], " 4242 ")).expect("valid");
        assert_eq!(
            o.items,
            vec![
                OrderItem {
                    product_id: b,
                    quantity: 2
                },
                OrderItem {
                    product_id: a,
                    quantity: 4
                }
            ]
        );
        assert_eq!(o.card, "4242");
    }

    #[test]
    fn invalid_requests_get_stable_codes() {
        let p = Uuid::from_u128(7);
        for (b, code) in [
            (body(vec![], "4242"), "invalid_items"),
            (body(vec![(p, 0)], "4242"), "invalid_quantity"),
            (body(vec![(p, -5)], "4242"), "invalid_quantity"),
            (body(vec![(p, 600), (p, 600)], "4242"), "invalid_quantity"),
            (body(vec![(p, 1)], "  "), "invalid_card"),
            (body(vec![(p, 1)], "42\n42"), "invalid_card"),
        ] {
            assert_eq!(NewOrder::parse(b).expect_err(code).code, code);
        }
        let many = (0..51).map(|i| (Uuid::from_u128(i), 1)).collect();
        assert_eq!(
            NewOrder::parse(body(many, "4242"))
                .expect_err("too many")
                .code,
            "invalid_items"
        );
    }

    #[test]
    fn the_fingerprint_changes_with_the_card_and_items() {
        let p = Uuid::from_u128(7);
        let a = NewOrder::parse(body(vec![(p, 1)], "4242")).expect("valid");
        let b = NewOrder::parse(body(vec![(p, 1)], "4000")).expect("valid");
        let c = NewOrder::parse(body(vec![(p, 2)], "4242")).expect("valid");
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_eq!(a.fingerprint(), a.clone().fingerprint());
    }

    #[test]
    fn user_and_key_headers_are_checked() {
        assert_eq!(
            UserId::parse(None).expect_err("missing").code,
            "unauthorized"
        );
        let bad = http::HeaderValue::from_static("a b");
        assert_eq!(
            UserId::parse(Some(&bad)).expect_err("space").code,
            "invalid_user_id"
        );
        assert_eq!(
            IdempotencyKey::parse(Some(&bad)).expect_err("space").code,
            "invalid_idempotency_key"
        );
        assert_eq!(IdempotencyKey::parse(None), Ok(None));
    }
}
